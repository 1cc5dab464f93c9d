"""The run board: recent runs of each pipeline per phase and mode, coloured by state.

Built from ``GET /v1/runs`` items (dicts), so that the page shows what the API says.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import date, datetime
from typing import Any

from monitor.app.page.style import tone
from monitor.app.page.timefmt import Clock
from monitor.config import Config
from monitor.fields import MODES

RUN_DATES_SHOWN = 4
_WORD = {"complete": "ok", "degraded": "degraded", "failed": "failed", "running": "running",
         "pending": ""}


@dataclass(frozen=True)
class Cell:
    """One phase of one run: its state, a short label and the detail shown on hover."""

    status: str
    tone: str
    label: str
    title: str


@dataclass(frozen=True)
class Row:
    """One run (run date and mode) across the pipeline's phases."""

    run_date: str
    mode: str
    today: bool
    cells: tuple[Cell, ...]
    notes: tuple[str, ...]
    last_event: str


@dataclass(frozen=True)
class Board:
    """A pipeline's recent runs; ``earlier``: tracked runs left off the board."""

    pipeline: str
    timezone: str
    phases: tuple[str, ...]
    rows: tuple[Row, ...]
    earlier: int


def boards(runs: Sequence[Mapping[str, Any]], config: Config, now: datetime) -> list[Board]:
    """One board per configured pipeline with tracked runs, newest run date first."""
    out: list[Board] = []
    for pipeline in config.pipelines:
        mine = [r for r in runs if r["pipeline"] == pipeline.id]
        if not mine:
            continue
        clock = Clock(pipeline.tz)
        shown_dates = sorted({r["run_date"] for r in mine}, reverse=True)[:RUN_DATES_SHOWN]
        shown = sorted((r for r in mine if r["run_date"] in shown_dates),
                       key=lambda r: (_neg_date(r["run_date"]), mode_rank(r["mode"])))
        today = now.astimezone(pipeline.tz).date().isoformat()
        rows = tuple(_row(r, clock, today) for r in shown)
        out.append(Board(pipeline.id, pipeline.timezone, tuple(p.id for p in pipeline.phases),
                         rows, len(mine) - len(shown)))
    return out


def _neg_date(text: str) -> int:
    return -date.fromisoformat(text).toordinal()


def mode_rank(mode: str) -> int:
    return MODES.index(mode) if mode in MODES else len(MODES)


def _row(run: Mapping[str, Any], clock: Clock, today: str) -> Row:
    cells = tuple(_cell(phase, clock) for phase in run["phases"])
    notes = [*run.get("notes", ()), *_errors(run)]
    return Row(run["run_date"], run["mode"] or "-", run["run_date"] == today, cells,
               tuple(notes), clock.short(run["last_event_at"]))


def _cell(phase: Mapping[str, Any], clock: Clock) -> Cell:
    status = phase["status"]
    expected = len(phase["expected"])
    count = f"{len(phase['done'])}/{expected}" if expected else ""
    label = " ".join(part for part in (_WORD.get(status, status), count) if part) or "-"
    detail = [f"{phase['phase']}: {status}"]
    if expected:
        detail.append(f"done {count}")
    for key in ("failed", "running", "missing"):
        if phase[key]:
            detail.append(f"{key}: {', '.join(phase[key])}")
    if phase["completed_at"]:
        detail.append(f"complete at {clock.short(phase['completed_at'])}")
    return Cell(status, tone(status), label, "; ".join(detail))


def _errors(run: Mapping[str, Any]) -> list[str]:
    """The last error line of each processor whose latest attempt failed."""
    out = []
    for phase in run["phases"]:
        for proc in phase["processors"]:
            if proc["status"] == "failed" and proc["error"]:
                out.append(f"{phase['phase']}/{proc['name']}: {last_line(proc['error'])}")
    return out


def last_line(text: str, limit: int = 160) -> str:
    """A message's last non-blank line (a traceback's exception), cut at ``limit``."""
    lines = [line.strip() for line in text.strip().splitlines() if line.strip()]
    last = lines[-1] if lines else ""
    return last if len(last) <= limit else last[: limit - 1] + "…"
