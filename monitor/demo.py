"""``phasewatch demo``: simulated days of the NBA example through the whole stack.

The scenario follows the pipeline facts: overnight work for yesterday's games from
midnight ET (scrapers, raw processors, analytics, grading, precompute at 06:00, first
predictions at 08:00, export), then the same-day run for today's games (Phase 3 at
10:30, Phase 4 at 11:00, predictions at 11:30). Durations are drawn from a seeded
generator around typical values; one critical processor fails and is retried, an
optional one fails for good, and one processor runs hours late.
"""

from __future__ import annotations

import json
import random
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, time, timedelta
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

DEMO_START = date(2026, 1, 12)
ET = ZoneInfo("America/New_York")

# Typical minutes per processor (median of the generated durations).
PHASE2 = {
    "p2_odds_game_lines": 3.0, "p2_nbacom_gamebook_pdf": 12.0, "p2_nbacom_boxscores": 6.0,
    "p2_bigdataball_pbp": 9.0, "p2_odds_player_props": 4.0,
}
PHASE3_OVERNIGHT = {
    "team_offense_game_summary": 6.0, "team_defense_game_summary": 6.0,
    "upcoming_player_game_context": 10.0, "upcoming_team_game_context": 4.0,
}
PHASE3_SAME_DAY = {"upcoming_player_game_context": 12.0, "upcoming_team_game_context": 5.0}
PHASE4 = {
    "team_defense_zone_analysis": 8.0, "player_shot_zone_analysis": 10.0,
    "player_composite_factors": 12.0, "player_daily_cache": 15.0, "ml_feature_store": 18.0,
}


@dataclass
class Scenario:
    """Builds the event lines of a demo in time order."""

    days: int
    seed: int = 7
    lines: list[dict[str, Any]] = field(default_factory=list)

    def __post_init__(self) -> None:
        self.rng = random.Random(self.seed)
        self._n = 0

    def minutes(self, typical: float) -> float:
        """A heavy-ish tailed duration around ``typical`` minutes."""
        return typical * self.rng.lognormvariate(0.0, 0.18)

    def event(self, run_date: date, phase: str, status: str, at: datetime,
              processor: str | None = None, **fields: Any) -> None:
        self._n += 1
        body: dict[str, Any] = {
            "event_id": f"demo-{self._n:06d}", "pipeline": "nba",
            "run_date": run_date.isoformat(), "phase": phase,
            "status": status, "timestamp": at.astimezone(UTC).isoformat().replace("+00:00", "Z"),
        }
        if processor:
            body["processor"] = processor
        body.update({k: v for k, v in fields.items() if v is not None})
        self.lines.append(body)

    def processor_run(self, run_date: date, phase: str, name: str, start: datetime,
                      typical_min: float, *, fail: str | None = None,
                      records: int | None = None, expected: int | None = None) -> datetime:
        """started then succeeded (or failed with ``fail``); returns the finish time."""
        self.event(run_date, phase, "started", start, name)
        end = start + timedelta(minutes=self.minutes(typical_min))
        if fail:
            self.event(run_date, phase, "failed", end, name, error=fail)
        else:
            self.event(run_date, phase, "succeeded", end, name, records=records,
                       expected_records=expected, data_as_of=end.astimezone(UTC).isoformat())
        return end

    def phase_level(self, run_date: date, phase: str, start: datetime, typical_min: float) -> datetime:
        self.event(run_date, phase, "started", start)
        end = start + timedelta(minutes=self.minutes(typical_min))
        self.event(run_date, phase, "succeeded", end)
        return end

    def build(self) -> list[dict[str, Any]]:
        for day in range(self.days):
            game_date = DEMO_START + timedelta(days=day)
            self.overnight(game_date, day)
            self.same_day(game_date + timedelta(days=1))
        self.lines.sort(key=lambda e: e["timestamp"])
        return self.lines

    def at(self, day: date, hh: int, mm: int, jitter_min: float = 0.0) -> datetime:
        base = datetime.combine(day, time(hh, mm), ET)
        return base + timedelta(minutes=self.rng.uniform(0, jitter_min))

    def overnight(self, game_date: date, day: int) -> None:
        """Yesterday's games, processed from midnight ET of the next day."""
        work = game_date + timedelta(days=1)
        late_day = day == self.days - 1
        failing_day = day == max(self.days - 2, 0)
        scraped = self.phase_level(game_date, "phase1", self.at(work, 0, 5, 3), 30)
        for name, typical in PHASE2.items():
            fail = "HTTP 503 from the play-by-play source" if (
                failing_day and name == "p2_bigdataball_pbp") else None
            self.processor_run(game_date, "phase2", name,
                               scraped + timedelta(minutes=self.rng.uniform(5, 20)), typical,
                               fail=fail)
        start3 = self.at(work, 1, 15, 5)
        for name, typical in PHASE3_OVERNIGHT.items():
            slow = 210.0 if late_day and name == "team_defense_game_summary" else typical
            end = self.processor_run(game_date, "phase3", name, start3, slow,
                                     records=self._players(name), expected=self._expected(name))
            if name == "team_offense_game_summary":
                self.processor_run(game_date, "phase3", "player_game_summary",
                                   end + timedelta(minutes=1), 14.0, records=240, expected=250)
        self.phase_level(game_date, "grading", self.at(work, 2, 40, 10), 20)
        start4 = self.at(work, 6, 0, 2)
        for name, typical in PHASE4.items():
            if failing_day and name == "player_daily_cache":
                end = self.processor_run(game_date, "phase4", name, start4, typical,
                                         fail="BigQuery serialization conflict on player_daily_cache")
                self.processor_run(game_date, "phase4", name, end + timedelta(minutes=5), typical)
            else:
                self.processor_run(game_date, "phase4", name, start4, typical)
        self.predictions(game_date, self.at(work, 8, 0, 1))

    def same_day(self, game_date: date) -> None:
        """Today's games: context at 10:30, precompute at 11:00, predictions at 11:30."""
        for name, typical in PHASE3_SAME_DAY.items():
            self.processor_run(game_date, "phase3", name, self.at(game_date, 10, 30, 2), typical,
                               records=self._players(name), expected=self._expected(name))
        for name, typical in PHASE4.items():
            self.processor_run(game_date, "phase4", name, self.at(game_date, 11, 0, 2), typical)
        self.predictions(game_date, self.at(game_date, 11, 30, 1))

    def predictions(self, game_date: date, start: datetime) -> None:
        """The coordinator starts a batch; workers report progress until every player is done."""
        total = 440 + self.rng.randint(0, 40)
        coordinator_end = self.processor_run(game_date, "phase5", "prediction-coordinator",
                                             start, 1.0)
        batch = f"batch_{game_date.isoformat()}_{int(start.timestamp())}"
        at = coordinator_end
        self.event(game_date, "phase5", "started", at, "prediction-worker",
                   batch_id=batch, done=0, total=total)
        done = 0
        while done < total:
            at += timedelta(minutes=4)
            done = min(total, done + self.rng.randint(70, 110))
            status = "succeeded" if done == total else "progress"
            self.event(game_date, "phase5", status, at, "prediction-worker", batch_id=batch,
                       done=done, total=total, records=done * 2 if status == "succeeded" else None)
        self.phase_level(game_date, "phase6", at + timedelta(minutes=3), 8)

    def _players(self, name: str) -> int | None:
        return 430 + self.rng.randint(0, 50) if name == "upcoming_player_game_context" else None

    def _expected(self, name: str) -> int | None:
        return 481 if name == "upcoming_player_game_context" else None


def write_scenario(path: Path, days: int, seed: int = 7) -> int:
    """Write the demo's events as JSON Lines; returns how many."""
    lines = Scenario(days, seed).build()
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_text("".join(json.dumps(line) + "\n" for line in lines), "utf-8")
    tmp.replace(path)
    return len(lines)
