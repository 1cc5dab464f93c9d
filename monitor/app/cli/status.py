"""Readable run tables for ``phasewatch status`` and the demo."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime
from zoneinfo import ZoneInfo

from monitor.config import Config
from monitor.tracker import PhaseRun, RunState

_MARK = {
    "complete": "ok", "degraded": "deg", "failed": "FAIL", "running": "run", "pending": "-",
}


def _clock(when: datetime | None, tz: ZoneInfo) -> str:
    return when.astimezone(tz).strftime("%m-%d %H:%M") if when else "-"


def _duration(seconds: float | None) -> str:
    if seconds is None:
        return "-"
    minutes = round(seconds / 60)
    return f"{minutes // 60}h{minutes % 60:02d}m" if minutes >= 60 else f"{minutes}m"


def phase_cell(phase: PhaseRun) -> str:
    """``ok 5/5``, ``FAIL 2/5``, ``run 1/2`` or ``-`` for one phase of a run."""
    mark = _MARK[phase.status]
    expected = phase.expectation.expected
    if not expected:
        return mark
    return f"{mark} {len(phase.done)}/{len(expected)}"


def run_notes(run: RunState) -> str:
    """Failures, missing critical work and skipped processors of a run, briefly."""
    notes: list[str] = []
    for phase in run.phases.values():
        for proc in phase.processors.values():
            if proc.failures:
                retried = " (recovered)" if proc.status == "succeeded" else ""
                notes.append(f"{phase.phase}/{proc.name} failed x{proc.failures}{retried}")
        if phase.status == "degraded":
            notes.append(f"{phase.phase} degraded without {', '.join(phase.missing)}")
        if phase.status in ("running", "failed") and phase.critical_missing:
            notes.append(f"{phase.phase} waiting on {', '.join(phase.critical_missing)}")
    return "; ".join(notes)


def render_runs(runs: Sequence[RunState], config: Config) -> str:
    """One line per run: each phase's state, the run's span of time, and notes."""
    if not runs:
        return "no runs tracked"
    lines: list[str] = []
    for pipeline in config.pipelines:
        mine = [r for r in runs if r.pipeline == pipeline.id]
        if not mine:
            continue
        tz = pipeline.tz
        phase_ids = [p.id for p in pipeline.phases]
        header = ["run_date", "mode", *phase_ids, "first event", "last event", "notes"]
        rows = [header]
        for run in sorted(mine, key=lambda r: (r.run_date, r.mode)):
            rows.append(
                [run.run_date.isoformat(), run.mode]
                + [phase_cell(run.phases[p]) for p in phase_ids]
                + [_clock(run.first_event_at, tz), _clock(run.last_event_at, tz), run_notes(run)]
            )
        widths = [max(len(row[i]) for row in rows) for i in range(len(header) - 1)]
        lines.append(f"pipeline {pipeline.id} (times in {pipeline.timezone})")
        for row in rows:
            cells = [cell.ljust(width) for cell, width in zip(row, widths, strict=False)]
            lines.append("  " + "  ".join(cells) + "  " + row[-1])
    return "\n".join(line.rstrip() for line in lines)


def render_phase_detail(run: RunState, config: Config) -> str:
    """Per-processor detail of one run: status, start, finish, duration, records."""
    tz = config.pipeline_map[run.pipeline].tz
    lines = [f"{run.pipeline} {run.run_date} {run.mode}"]
    for phase in run.phases.values():
        lines.append(f"  {phase.phase}: {phase.status}"
                     + (f" (missing {', '.join(phase.missing)})" if phase.missing else ""))
        for proc in phase.processors.values():
            records = f" records={proc.records}" if proc.records is not None else ""
            lines.append(
                f"    {proc.name:<30} {proc.status:<9} {_clock(proc.started_at, tz)} -> "
                f"{_clock(proc.finished_at, tz)}  {_duration(proc.duration_s)}{records}"
            )
    return "\n".join(lines)
