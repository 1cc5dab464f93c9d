"""A run's notes: failures, missing critical work and order breaks, in a line each.

``phasewatch status``, ``GET /v1/runs`` (each run's ``notes``) and the dashboard page show them.
"""

from __future__ import annotations

from monitor.config import Config, PipelineConfig
from monitor.tracker import PhaseRun, RunState


def note_list(run: RunState, config: Config | None = None) -> list[str]:
    """Failures, missing critical work and order breaks (``depends_on``) of a run."""
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
        if config is not None:
            notes += order_breaks(phase, config.pipeline_map[run.pipeline])
    return notes


def order_breaks(phase: PhaseRun, pipeline: PipelineConfig) -> list[str]:
    """Processors that started before a processor they depend on (``depends_on``) finished."""
    spec = next((p for p in pipeline.phases if p.id == phase.phase), None)
    if spec is None:
        return []
    out: list[str] = []
    for proc in spec.processors:
        started = phase.processors.get(proc.name)
        if started is None or started.started_at is None:
            continue
        for dep in proc.depends_on:
            before = phase.processors.get(dep)
            done = before.finished_at if before and before.status == "succeeded" else None
            if done is None or done > started.started_at:
                out.append(f"{phase.phase}/{proc.name} started before {dep} finished")
    return out
