"""``phasewatch demo``: simulated days of the NBA example through the whole stack.

The scenario follows the pipeline facts: overnight work for yesterday's games from
midnight ET (scrapers, raw processors, analytics, grading, precompute at 06:00, first
predictions at 08:00, export), then the same-day run for today's games (Phase 3 at
10:30, Phase 4 at 11:00, predictions at 11:30). Durations are drawn from a seeded
generator around typical values; one critical processor fails and is retried, an
optional one fails for good, one processor runs hours late, a service is unhealthy
for 25 minutes, a trigger is ignored once, a prediction batch stalls at 96%, and a
Cloud Scheduler job's target answers 404 for a day (its endpoint renamed by a deploy).

A check runner acts too: the demo writes a small SQLite "warehouse" (the schedule and
the teams with box scores for each game date) and adds a check that reads it at 06:00 ET
for yesterday's games; on one day three teams' box scores are missing.
"""

from __future__ import annotations

import json
import random
import sqlite3
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, time, timedelta
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import yaml

from monitor.config import Config, default_config_text, parse_config

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


TRIGGER_LAG = timedelta(minutes=3)  # how soon a phase starts once phasewatch triggers it
# The example's Cloud Scheduler jobs (scheduler.jobs in examples/nba.yaml): name, ET time, URL.
SCHEDULER_JOBS = (
    ("overnight-phase4", time(6, 0), "http://127.0.0.1:8104/process-date"),
    ("same-day-phase3", time(10, 30), "http://127.0.0.1:8103/process-date"),
    ("same-day-predictions", time(11, 30), "http://127.0.0.1:8105/start"),
)


@dataclass
class Scenario:
    """Builds the lines of a demo (events plus the world's health, check and scheduler lines),
    in time order.

    The simulated pipeline answers phasewatch's triggers: a downstream phase starts a few
    minutes after its upstream completes, as it does when the trigger goes out at once.
    Near the end it misbehaves in the ways the actuator and detectors are for.
    """

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
            "status": status, "timestamp": _utc(at),
        }
        if processor:
            body["processor"] = processor
        body.update({k: v for k, v in fields.items() if v is not None})
        self.lines.append(body)

    def world(self, kind: str, at: datetime, **fields: Any) -> None:
        self.lines.append({"type": kind, "timestamp": _utc(at), **fields})

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
                       expected_records=expected, data_as_of=_utc(end))
        return end

    def phase_level(self, run_date: date, phase: str, start: datetime,
                    typical_min: float) -> datetime:
        self.event(run_date, phase, "started", start)
        end = start + timedelta(minutes=self.minutes(typical_min))
        self.event(run_date, phase, "succeeded", end)
        return end

    def build(self) -> list[dict[str, Any]]:
        self.tomorrow(DEMO_START + timedelta(days=1), DEMO_START)
        for day in range(self.days):
            today = DEMO_START + timedelta(days=day + 1)
            self.overnight(today - timedelta(days=1), today, day)
            self.scheduler(today, day)
            self.same_day(today, day)
            self.tomorrow(today + timedelta(days=1), today)
        self.lines.sort(key=lambda e: e["timestamp"])
        return self.lines

    def at(self, day: date, hh: int, mm: int, jitter_min: float = 0.0) -> datetime:
        base = datetime.combine(day, time(hh, mm), ET)
        return base + timedelta(minutes=self.rng.uniform(0, jitter_min))

    def _is(self, day: int, back: int) -> bool:
        """Whether ``day`` is the ``back``-th last simulated day (1 = the last)."""
        return day == self.days - back

    def scheduler(self, work: date, day: int) -> None:
        """The scheduler jobs' attempts (no random draw: the rest of the scenario is unchanged).

        Five days before the end, a deploy renamed the analytics service's endpoint: the
        same-day-phase3 job gets 404 at 10:30 and on its retry; it works again the next day.
        """
        for job, at, url in SCHEDULER_JOBS:
            fired = datetime.combine(work, at, ET) + timedelta(seconds=2)
            broken = job == "same-day-phase3" and self._is(day, 5)
            self.world("scheduler", fired, job=job, status=404 if broken else 200, url=url)
            if broken:
                self.world("scheduler", fired + timedelta(minutes=3), job=job, status=404, url=url)

    def overnight(self, game_date: date, work: date, day: int) -> None:
        """Yesterday's games, from midnight ET: box scores, analytics, grading, precompute."""
        scraped = self.phase_level(game_date, "phase1", self.at(work, 0, 5, 3), 30)
        for name, typical in PHASE2.items():
            fail = "HTTP 503 from the play-by-play source" if (
                self._is(day, 2) and name == "p2_bigdataball_pbp") else None
            self.processor_run(game_date, "phase2", name,
                               scraped + timedelta(minutes=self.rng.uniform(5, 20)), typical,
                               fail=fail)
        done2 = max(t for t in self._finished(game_date, "phase2"))
        start3 = done2 + timedelta(minutes=self.rng.uniform(2, 6))  # the push subscription
        ends: list[datetime] = []
        for name, typical in PHASE3_OVERNIGHT.items():
            # the last day: one optional processor runs for hours (a duration anomaly; the
            # mode-aware rule triggers Phase 4 degraded without waiting for it)
            slow = 210.0 if self._is(day, 1) and name == "team_defense_game_summary" else typical
            end = self.processor_run(game_date, "phase3", name, start3, slow,
                                     records=self._players(name), expected=self._expected(name))
            if slow == typical:
                ends.append(end)
            if name == "team_offense_game_summary":
                ends.append(self.processor_run(
                    game_date, "phase3", "player_game_summary", end + timedelta(minutes=1), 14.0,
                    records=240, expected=250))
        done3 = max(ends)
        graded = self.phase_level(game_date, "grading", done3 + TRIGGER_LAG, 20)
        self.world("check", graded, name="grading_completeness",
                   value=round(self.rng.uniform(0.82, 0.99), 3))
        self.downstream(game_date, done3, retry_fail=self._is(day, 2))

    def same_day(self, game_date: date, day: int) -> None:
        """Today's games, refreshed late morning (same-day Phase 3 at 10:30)."""
        start = self.at(game_date, 10, 30, 2)
        if self._is(day, 3):
            # the precompute service is down for 25 minutes: the Phase 4 trigger waits
            self.world("health", start, service="nba-phase4-precompute-processors",
                       status="fail", body={"status": "unhealthy", "error": "TypeError at startup"})
            self.world("health", start + timedelta(minutes=25),
                       service="nba-phase4-precompute-processors", status="pass",
                       body={"status": "healthy", "service": "precompute-processor"})
        ends = [self.processor_run(game_date, "phase3", name, start, typical,
                                   records=self._players(name), expected=self._expected(name))
                for name, typical in PHASE3_SAME_DAY.items()]
        done3 = max(ends)
        if self._is(day, 3):
            done3 = max(done3, start + timedelta(minutes=25 + 6))  # started once the retry went out
        self.downstream(game_date, done3, stall=self._is(day, 1), ignored=self._is(day, 4))

    def tomorrow(self, game_date: date, work: date) -> None:
        """Tomorrow's games, the evening before (Phase 3 at 17:00): predictions a day early."""
        start = self.at(work, 17, 0, 2)
        ends = [self.processor_run(game_date, "phase3", name, start, typical,
                                   records=self._players(name), expected=self._expected(name))
                for name, typical in PHASE3_SAME_DAY.items()]
        self.downstream(game_date, max(ends))

    def downstream(self, game_date: date, done3: datetime, *, retry_fail: bool = False,
                   stall: bool = False, ignored: bool = False) -> None:
        """Phase 4, predictions and export, each started when phasewatch triggers it."""
        start4 = done3 + TRIGGER_LAG
        ends: list[datetime] = []
        for name, typical in PHASE4.items():
            if retry_fail and name == "player_daily_cache":
                end = self.processor_run(game_date, "phase4", name, start4, typical,
                                         fail="BigQuery serialization conflict on player_daily_cache")
                ends.append(self.processor_run(game_date, "phase4", name,
                                               end + timedelta(minutes=5), typical))
            else:
                ends.append(self.processor_run(game_date, "phase4", name, start4, typical))
        done4 = max(ends)
        self.world("check", done4, name="feature_store_clean_player_pct",
                   value=round(self.rng.uniform(85, 97), 1))
        done5 = self.predictions(game_date, done4 + TRIGGER_LAG, stall=stall)
        self.world("check", done5, name="prediction_coverage",
                   value=round(self.rng.uniform(0.85, 0.98), 3))
        # the export ignores its first trigger once: phasewatch re-triggers after 15 min
        lag = timedelta(minutes=18) if ignored else TRIGGER_LAG
        self.phase_level(game_date, "phase6", done5 + lag, 8)

    def predictions(self, game_date: date, start: datetime, *, stall: bool = False) -> datetime:
        """The coordinator starts a batch; workers report progress until every player is done."""
        total = 440 + self.rng.randint(0, 40)
        coordinator_end = self.processor_run(game_date, "phase5", "prediction-coordinator",
                                             start, 1.0)
        batch = f"batch_{game_date.isoformat()}_{int(start.timestamp())}"
        at = coordinator_end
        self.event(game_date, "phase5", "started", at, "prediction-worker",
                   batch_id=batch, done=0, total=total)
        done = 0
        stuck_at = int(total * 0.96)
        while done < total:
            at += timedelta(minutes=4)
            if stall and done == stuck_at:
                # stuck at 96%: after 10 idle minutes phasewatch calls /check-stalled,
                # and the coordinator completes the batch
                at += timedelta(minutes=8)
                done = total
            elif stall:
                done = min(stuck_at, done + 150)
            else:
                done = min(total, done + self.rng.randint(70, 110))
            status = "succeeded" if done == total else "progress"
            self.event(game_date, "phase5", status, at, "prediction-worker", batch_id=batch,
                       done=done, total=total, records=done * 2 if status == "succeeded" else None)
        return at

    def _finished(self, run_date: date, phase: str) -> list[datetime]:
        """Finish times of the processors of ``phase`` in this run so far."""
        return [datetime.fromisoformat(e["timestamp"]) for e in self.lines
                if e.get("run_date") == run_date.isoformat() and e.get("phase") == phase
                and e.get("status") in ("succeeded", "failed")]

    def _players(self, name: str) -> int | None:
        return 430 + self.rng.randint(0, 50) if name == "upcoming_player_game_context" else None

    def _expected(self, name: str) -> int | None:
        return 481 if name == "upcoming_player_game_context" else None


def _utc(at: datetime) -> str:
    return at.astimezone(UTC).isoformat().replace("+00:00", "Z")


def write_scenario(path: Path, days: int, seed: int = 7) -> int:
    """Write the demo's lines (events, health, check and scheduler lines) as JSON Lines; returns how
    many are events."""
    lines = Scenario(days, seed).build()
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_text("".join(json.dumps(line) + "\n" for line in lines), "utf-8")
    tmp.replace(path)
    return sum("type" not in line for line in lines)


TEAMS = (
    "ATL", "BKN", "BOS", "CHA", "CHI", "CLE", "DAL", "DEN", "DET", "GSW", "HOU", "IND", "LAC",
    "LAL", "MEM", "MIA", "MIL", "MIN", "NOP", "NYK", "OKC", "ORL", "PHI", "PHX", "POR", "SAC",
    "SAS", "TOR", "UTA", "WAS",
)
GAP_BACK = 3  # the game date (counted back from the last) whose box scores miss three teams
DEMO_CHECK = "boxscore_missing_teams"


def write_warehouse(path: Path, days: int, seed: int = 7) -> int:
    """The demo's SQLite warehouse: each game date's schedule and box-score teams; returns
    how many teams miss box scores (all on one date)."""
    rng = random.Random(seed)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(path.name + ".tmp")
    tmp.unlink(missing_ok=True)
    db = sqlite3.connect(tmp)
    missing = 0
    with db:
        db.execute("CREATE TABLE schedule (game_date TEXT, game_id TEXT, home TEXT, away TEXT)")
        db.execute("CREATE TABLE boxscores (game_date TEXT, game_id TEXT, team TEXT)")
        for day in range(days):
            game_date = (DEMO_START + timedelta(days=day)).isoformat()
            teams = rng.sample(TEAMS, 2 * rng.randint(5, 8))
            for n in range(len(teams) // 2):
                game_id = f"{game_date.replace('-', '')}{n:02d}"
                home, away = teams[2 * n], teams[2 * n + 1]
                db.execute("INSERT INTO schedule VALUES (?, ?, ?, ?)", (game_date, game_id, home, away))
                for team in (home, away):
                    if day == days - GAP_BACK and missing < 3:
                        missing += 1  # the scraper never got these teams' box scores
                        continue
                    db.execute("INSERT INTO boxscores VALUES (?, ?, ?)", (game_date, game_id, team))
    db.close()
    tmp.replace(path)
    return missing


def demo_check(warehouse: Path) -> dict[str, object]:
    """The check the demo adds to the bundled config: the teams of yesterday's games without
    box scores, from the demo's SQLite warehouse at 06:00 ET."""
    return {
        "name": DEMO_CHECK, "title": "Teams without box scores", "pipeline": "nba",
        "kind": "sql", "runner": {"kind": "sqlite", "path": str(warehouse)},
        "schedule": "0 6 * * *", "run_date_days_ago": 1, "returns": "missing",
        "query": "SELECT team FROM (SELECT home AS team FROM schedule WHERE game_date ="
                 " :run_date UNION SELECT away FROM schedule WHERE game_date = :run_date)"
                 " WHERE team NOT IN (SELECT team FROM boxscores WHERE game_date = :run_date)"
                 " ORDER BY team",
        "warn_when": "> 0", "critical_when": "> 4",
    }


def demo_config(warehouse: Path) -> Config:
    """The bundled NBA config with the demo's SQLite check added."""
    data = yaml.safe_load(default_config_text())
    data["checks"] = [*data.get("checks", []), demo_check(warehouse)]
    return parse_config(yaml.safe_dump(data, sort_keys=False), "<demo config>")
