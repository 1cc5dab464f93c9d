"""What a load test sends, and when: a timeline of events at offsets from its start.

- ``synthetic_plan``: P pipelines x N processors x R runs; each run's processors report
  ``started`` and then ``succeeded`` within its slot, the runs spread over the duration.
- ``replay_plan``: a recorded day (one day of the demo's simulator, or a JSON Lines file)
  played at ``speed`` times its pace, its run dates moved so that its day is today.

Each planned event is sent with the time it is sent as its ``timestamp`` (``data_as_of``
keeps its distance to it), so the phasewatch under test judges it on its own clock.
"""

from __future__ import annotations

import json
import random
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from typing import Any

from monitor.app.load.config import WORK, pipeline_id, processor_name

# The run dates a synthetic load may use: today and the 365 days before (inside the default
# accepted window of 400 days).
MAX_RUNS = 366
_EVENT_FIELDS_DROPPED = ("type",)


@dataclass(frozen=True)
class Planned:
    """One event to send ``at_s`` seconds after the start; ``age_s``: data_as_of before it."""

    at_s: float
    event: dict[str, Any]
    data_age_s: float | None = None

    def as_json(self) -> list[Any]:
        return [round(self.at_s, 4), self.event, self.data_age_s]


def synthetic_plan(pipelines: int, processors: int, runs: int, duration_s: float, *,
                   today: date, session: str, seed: int = 7) -> list[Planned]:
    """Every run's started and succeeded events, in send order over 80% of ``duration_s``
    (the rest leaves time for the last decisions)."""
    if not 1 <= runs <= MAX_RUNS:
        raise ValueError(f"runs must be 1 to {MAX_RUNS} (run dates of the accepted window)")
    rng = random.Random(seed)
    slot = 0.8 * duration_s / runs
    out: list[Planned] = []
    for p in range(pipelines):
        pid = pipeline_id(p)
        for r in range(runs):
            run_date = (today - timedelta(days=r)).isoformat()
            begin = r * slot + (p / pipelines) * slot * 0.25
            for j in range(processors):
                name = processor_name(j)
                start = begin + rng.uniform(0, slot / 2)
                end = start + rng.uniform(0, slot / 2)
                for status, at in (("started", start), ("succeeded", end)):
                    out.append(Planned(at, {
                        "event_id": f"lt-{session}-{pid}-{run_date}-{name}-{status}",
                        "pipeline": pid, "run_date": run_date, "phase": WORK,
                        "processor": name, "status": status,
                        **({"records": 100, "expected_records": 100} if status == "succeeded" else {}),
                    }))
    out.sort(key=lambda p: p.at_s)
    return out


def replay_plan(lines: Iterable[dict[str, Any]], speed: float, *, today: date, session: str,
                timezone: str = "UTC") -> list[Planned]:
    """The events among ``lines`` (replay lines; others are skipped), from the first one on,
    at ``speed`` times their pace; run dates move by the days between the first event's
    day (in ``timezone``) and ``today``."""
    from zoneinfo import ZoneInfo

    events = [dict(line) for line in lines if "type" not in line]
    if not events:
        raise ValueError("no events to replay (every line is a health, target or check line)")
    times = [_parse_time(e["timestamp"]) for e in events]
    first = min(times)
    shift = today - first.astimezone(ZoneInfo(timezone)).date()
    out = []
    for event, at in sorted(zip(events, times, strict=True), key=lambda x: x[1]):
        body = {k: v for k, v in event.items() if k not in _EVENT_FIELDS_DROPPED}
        body["event_id"] = f"lt-{session}-{event['event_id']}"
        body["run_date"] = (date.fromisoformat(event["run_date"]) + shift).isoformat()
        body.pop("timestamp", None)
        age = None
        if body.get("data_as_of"):
            age = max(0.0, (at - _parse_time(body.pop("data_as_of"))).total_seconds())
        out.append(Planned((at - first).total_seconds() / speed, body, age))
    return out


def recorded_day(day: int = 1) -> list[dict[str, Any]]:
    """The events and world lines of day ``day`` of the demo's simulator (midnight to
    midnight in the example's timezone): three runs of the NBA pipeline."""
    from monitor.app.sim.demo import DEMO_START, ET, Scenario

    work = DEMO_START + timedelta(days=day)
    lines = Scenario(days=max(3, day + 1)).build()
    return [line for line in lines
            if _parse_time(line["timestamp"]).astimezone(ET).date() == work]


def read_jsonl(path: Path) -> list[dict[str, Any]]:
    """The JSON objects of a JSON Lines file (ValueError naming the line when one is not)."""
    out = []
    for number, raw in enumerate(path.read_text("utf-8").splitlines(), start=1):
        if not raw.strip():
            continue
        try:
            value = json.loads(raw)
        except json.JSONDecodeError as exc:
            raise ValueError(f"line {number}: not valid JSON: {exc.msg}") from None
        if not isinstance(value, dict) or ("type" not in value and not _is_event(value)):
            raise ValueError(f"line {number}: not an event (needs event_id, pipeline, run_date, "
                             "phase, status, timestamp) nor a replay line with a type")
        out.append(value)
    return out


def _is_event(value: dict[str, Any]) -> bool:
    need = ("event_id", "pipeline", "run_date", "phase", "status", "timestamp")
    if not all(isinstance(value.get(k), str) for k in need):
        return False
    try:
        date.fromisoformat(value["run_date"])
        _parse_time(value["timestamp"])
    except ValueError:
        return False
    return True


def _parse_time(text: str) -> datetime:
    when = datetime.fromisoformat(text.replace("Z", "+00:00"))
    return when if when.tzinfo else when.replace(tzinfo=UTC)
