"""Readable run tables for ``phasewatch status`` and the demo, within the terminal's width."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime
from zoneinfo import ZoneInfo

from rich.console import Group, RenderableType
from rich.padding import Padding
from rich.table import Table
from rich.text import Text

from monitor.app.cli.console import (
    bare_table,
    labelled_table,
    natural_width,
    render_text,
    stdout_console,
    table,
)
from monitor.app.runnotes import note_list
from monitor.config import Config, PipelineConfig
from monitor.tracker import PhaseRun, RunState

_MARK = {
    "complete": "ok", "degraded": "deg", "failed": "FAIL", "running": "run", "pending": "-",
}
_INDENT = 2  # the tables stand under their pipeline's title


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


def run_notes(run: RunState, config: Config | None = None) -> str:
    """Failures, missing critical work and order breaks of a run, briefly, on one line."""
    return "; ".join(note_list(run, config))


def _grid(pipeline: PipelineConfig, runs: Sequence[RunState]) -> Table:
    """Runs down, phases across: the natural layout when the terminal is wide enough."""
    tz = pipeline.tz
    phase_ids = [p.id for p in pipeline.phases]
    t = table("run_date", "mode", *phase_ids, "first event", "last event")
    for run in runs:
        t.add_row(run.run_date.isoformat(), run.mode, *(phase_cell(run.phases[p]) for p in phase_ids),
                  _clock(run.first_event_at, tz), _clock(run.last_event_at, tz))
    return t


def _transposed(pipeline: PipelineConfig, runs: Sequence[RunState]) -> Table:
    """Phases down, runs across: for a narrow terminal (a run is one short column)."""
    tz = pipeline.tz
    t = bare_table()
    t.add_column("phase", overflow="fold")
    for run in runs:
        t.add_column(f"{run.run_date.isoformat()}\n{run.mode}", overflow="fold")
    for spec in pipeline.phases:
        t.add_row(spec.id, *(phase_cell(run.phases[spec.id]) for run in runs))
    t.add_row("first event", *(_clock(run.first_event_at, tz) for run in runs))
    t.add_row("last event", *(_clock(run.last_event_at, tz) for run in runs))
    return t


def _chunks(pipeline: PipelineConfig, runs: Sequence[RunState], width: int) -> list[list[RunState]]:
    """Runs in groups whose transposed table fits ``width`` (at least one run per group)."""
    groups: list[list[RunState]] = [[]]
    for run in runs:
        wider = _transposed(pipeline, [*groups[-1], run])
        if groups[-1] and natural_width(wider) + _INDENT > width:
            groups.append([])
        groups[-1].append(run)
    return groups


def _notes(runs: Sequence[RunState], config: Config) -> Table | None:
    t = labelled_table()
    for run in runs:
        notes = run_notes(run, config)
        if notes:
            t.add_row(f"{run.run_date} {run.mode}:", notes)
    return t if t.row_count else None


def runs_renderable(runs: Sequence[RunState], config: Config, width: int) -> RenderableType:
    """Each pipeline's runs as a table that fits ``width``, then their notes."""
    if not runs:
        return Text("no runs tracked")
    parts: list[RenderableType] = []
    for pipeline in config.pipelines:
        mine = sorted((r for r in runs if r.pipeline == pipeline.id),
                      key=lambda r: (r.run_date, r.mode))
        if not mine:
            continue
        parts.append(Text(f"pipeline {pipeline.id} (times in {pipeline.timezone})"))
        grid = _grid(pipeline, mine)
        if natural_width(grid) + _INDENT <= width:
            parts.append(Padding(grid, (0, 0, 0, _INDENT)))
        else:
            for i, group in enumerate(_chunks(pipeline, mine, width)):
                parts += [Text("")] if i else []
                parts.append(Padding(_transposed(pipeline, group), (0, 0, 0, _INDENT)))
        notes = _notes(mine, config)
        if notes is not None:
            parts += [Text("  notes:"), Padding(notes, (0, 0, 0, 4))]
    return Group(*parts)


def render_runs(runs: Sequence[RunState], config: Config, width: int | None = None) -> str:
    """The run tables as plain text no wider than ``width`` (default: the terminal's)."""
    width = width or stdout_console().width
    return render_text(runs_renderable(runs, config, width), width=width)


def _brief(error: str | None, limit: int = 160) -> str:
    """An error's last line (a traceback's exception), cut at ``limit`` (``--json`` has it whole)."""
    lines = [line for line in (error or "").strip().splitlines() if line.strip()]
    last = lines[-1].strip() if lines else ""
    return last if len(last) <= limit else last[: limit - 1] + "…"


def phase_detail_renderable(run: RunState, config: Config) -> RenderableType:
    """Per-processor detail of one run: status, start, finish, duration, records, error."""
    tz = config.pipeline_map[run.pipeline].tz
    parts: list[RenderableType] = [Text(f"{run.pipeline} {run.run_date} {run.mode}")]
    for phase in run.phases.values():
        missing = f" (missing {', '.join(phase.missing)})" if phase.missing else ""
        parts.append(Padding(Text(f"{phase.phase}: {phase.status}{missing}"), (0, 0, 0, 2)))
        if not phase.processors:
            continue
        t = table("processor", "status", "start", "finish", "took", "records", wrap=("processor",))
        errors = labelled_table()
        for proc in phase.processors.values():
            t.add_row(proc.name, proc.status, _clock(proc.started_at, tz),
                      _clock(proc.finished_at, tz), _duration(proc.duration_s),
                      "-" if proc.records is None else str(proc.records))
            if proc.error:
                errors.add_row(f"{proc.name}:", _brief(proc.error))
        parts.append(Padding(t, (0, 0, 0, 4)))
        if errors.row_count:
            parts += [Padding(Text("errors (last line):"), (0, 0, 0, 4)),
                      Padding(errors, (0, 0, 0, 6))]
    return Group(*parts)
