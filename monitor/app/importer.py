"""Importing history (``phasewatch import``): events stored and learned from, never acted on.

A team adopting phasewatch loads its past runs first, so that SLO budgets and anomaly
baselines start from the truth. An import is a *backfill*: every event is validated,
stored (a repeated ``event_id`` is a duplicate, so an interrupted import can simply be run
again) and folded into run state, SLOs and detectors, but the actuator never acts on it
and no alert is opened about it (``Update.backfill``, ``monitor.horizon``).
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from datetime import date
from pathlib import Path

from monitor.collector import Collector
from monitor.errors import EventError, Problem
from monitor.events import Event, parse_events

BATCH = 500  # events per transaction (or per request with --url)


@dataclass(frozen=True)
class LineProblem:
    """Why line ``line`` of the file cannot be imported."""

    line: int
    problems: tuple[Problem, ...]

    def render(self) -> str:
        return f"line {self.line}: " + "; ".join(p.render() for p in self.problems)


@dataclass
class ImportSummary:
    """What an import read, stored and skipped."""

    lines: int = 0
    imported: int = 0
    duplicates: int = 0
    invalid: list[LineProblem] = field(default_factory=list)
    outside_window: int = 0  # older (or later) than the accepted run dates (``runs``)
    runs: set[tuple[str, str, str]] = field(default_factory=set)
    first_run_date: date | None = None
    last_run_date: date | None = None

    def note(self, event: Event) -> None:
        """Count ``event``'s run and run date (a valid event, imported or duplicate)."""
        self.runs.add((event.pipeline, event.run_date.isoformat(), event.mode or ""))
        if self.first_run_date is None or event.run_date < self.first_run_date:
            self.first_run_date = event.run_date
        if self.last_run_date is None or event.run_date > self.last_run_date:
            self.last_run_date = event.run_date

    def as_dict(self) -> dict[str, object]:
        return {
            "lines": self.lines, "imported": self.imported, "duplicates": self.duplicates,
            "invalid": len(self.invalid), "outside_window": self.outside_window,
            "runs": len(self.runs),
            "pipelines": sorted({run[0] for run in self.runs}),
            "first_run_date": self.first_run_date.isoformat() if self.first_run_date else None,
            "last_run_date": self.last_run_date.isoformat() if self.last_run_date else None,
            "acted": 0, "alerted": 0,
        }


def read_events(path: Path, collector: Collector,
                summary: ImportSummary) -> list[Event]:
    """Every valid event of a JSON Lines file, names resolved against the config; each
    invalid line goes to ``summary.invalid`` (with its line number) instead, and an event
    whose run date is outside the accepted window (``runs.accept_past_days``: history
    older than phasewatch keeps) is counted in ``summary.outside_window`` and skipped."""
    events: list[Event] = []
    with path.open("rb") as fh:
        for number, raw in enumerate(fh, start=1):
            if not raw.strip():
                continue
            summary.lines += 1
            try:
                parsed = parse_events(raw, "application/json")
                if len(parsed) != 1:
                    raise EventError("invalid_event", [Problem(
                        "(line)", "one event object per line; allowed: a JSON object")])
                (event,) = collector.resolve(parsed, owned=True, backfill=True)
            except EventError as exc:
                if exc.reason == "run_date_window":  # too old to keep: skipped, not an error
                    summary.outside_window += 1
                    continue
                problems = exc.problems or [Problem("(line)", exc.reason)]
                summary.invalid.append(LineProblem(number, tuple(problems)))
                continue
            events.append(event)
    return events


def batches(events: Sequence[Event], size: int = BATCH) -> Iterator[Sequence[Event]]:
    for start in range(0, len(events), size):
        yield events[start:start + size]


Send = Callable[[Sequence[Event]], tuple[int, int]]
"""Store one batch as a backfill; returns (imported, duplicates)."""


def store_with(collector: Collector) -> Send:
    """Import into the store ``collector`` writes to (one transaction a batch)."""

    def send(batch: Sequence[Event]) -> tuple[int, int]:
        result = collector.ingest(batch, backfill=True)
        return result.accepted, result.duplicates

    return send


def run_import(events: Sequence[Event], send: Send, summary: ImportSummary,
               on_batch: Callable[[int], None] = lambda n: None) -> ImportSummary:
    """Send ``events`` in batches through ``send``; counts land in ``summary``."""
    for batch in batches(events):
        imported, duplicates = send(batch)
        summary.imported += imported
        summary.duplicates += duplicates
        for event in batch:
            summary.note(event)
        on_batch(len(batch))
    return summary
