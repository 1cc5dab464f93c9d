"""What an alert about a run says besides its summary: the job's own last word and the
check values the phase depends on.

The person paged at 3 a.m. should not have to open the logs to learn why a processor
skipped ("no games final yet") or what the feature-store check said: the alert's details
carry (a) the last *decision event* the jobs of the phase reported for the run — the
latest finish with an ``error`` or ``attributes`` (a skip's reason, a failure's error) —
and (b) the latest value of each check the phase depends on (its check gates, the
``lockouts_check`` of its processors, the checks of the playbooks and automatic cascades
that act on it).
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from datetime import datetime
from typing import Any

from monitor.actuator.config import CheckGateConfig
from monitor.actuator.context import Context
from monitor.config import PipelineConfig

SCAN = 50  # latest finishes of a run's phase looked at for a decision
MAX_TEXT = 300  # of an error or attribute value shown


def describe(ctx: Context, pipeline: str, run: tuple[str, str, str] | None,
             phases: Sequence[str], processor: str | None = None,
             checks: Sequence[str] | None = None) -> str:
    """The details lines for an alert about ``phases`` of ``run`` (and ``processor``);
    ``checks`` default to those the phases depend on. Never raises (an alert goes out
    with what could be found)."""
    lines: list[str] = []
    config = ctx.pipeline(pipeline)
    try:
        if run is not None and config is not None:
            decision = last_decision(ctx, run, phases, processor)
            if decision is not None:
                lines.append("last decision reported: " + _render_decision(decision, config))
        names = list(checks) if checks is not None else (
            [n for phase in phases for n in phase_checks(ctx, pipeline, phase)])
        for name in dict.fromkeys(names):
            value = ctx.checks.latest(name)
            if value is None:
                lines.append(f"check {name}: no result yet")
                continue
            when = _local(value.at, config)
            missing = f", {len(value.entities)} entities listed" if value.entities else ""
            lines.append(f"check {name} = {value.value:g} (measured {when}{missing})")
    except Exception:  # context is a courtesy: never let it stop the alert
        return "\n".join(lines)
    return "\n".join(lines)


def last_decision(ctx: Context, run: tuple[str, str, str], phases: Sequence[str],
                  processor: str | None = None) -> dict[str, Any] | None:
    """The latest finish of the run's ``phases`` (of ``processor``, if given) that says
    why: with an ``error`` or ``attributes``; None when none does."""
    if not phases:
        return None
    marks = ", ".join("?" * len(phases))
    query = (f"SELECT body FROM events WHERE pipeline = ? AND run_date = ? AND mode = ?"
             f" AND phase IN ({marks}) AND status IN ('succeeded', 'failed', 'skipped')")
    params: list[object] = [*run, *phases]
    if processor is not None:
        query += " AND processor = ?"
        params.append(processor)
    rows = ctx.store.component.read(query + f" ORDER BY ts DESC, seq DESC LIMIT {SCAN}", params)
    for (body,) in rows:
        event = json.loads(body)
        if event.get("error") or event.get("attributes"):
            return dict(event)
    return None


def phase_checks(ctx: Context, pipeline: str, phase: str) -> list[str]:
    """The checks a phase depends on: its check gates, its processors' lockout checks, and
    the checks of the playbooks and automatic cascades acting on it."""
    config = ctx.phase(pipeline, phase)
    if config is None:
        return []
    names = [g.check for g in config.policy.gates or () if isinstance(g, CheckGateConfig)]
    names += [p.coverage.lockouts_check for p in config.processors
              if p.coverage is not None and p.coverage.lockouts_check is not None]
    for playbook in ctx.acfg.playbooks:
        if (playbook.pipeline, playbook.phase) == (pipeline, phase):
            release = getattr(playbook, "release", None)
            names += [c for c in (getattr(playbook, "check", None),
                                  release.check if release is not None else None) if c]
    names += [a.check for a in ctx.acfg.cascades if (a.pipeline, a.phase) == (pipeline, phase)]
    return names


def _render_decision(event: dict[str, Any], config: PipelineConfig) -> str:
    who = event.get("processor") or f"{event.get('phase')} (phase-level)"
    at = _local(datetime.fromisoformat(str(event["timestamp"])), config)
    parts = [f"{who} {event.get('status')} at {at}"]
    attributes = event.get("attributes") or {}
    if attributes:
        parts.append(", ".join(f"{k}={str(v)[:MAX_TEXT]}" for k, v in sorted(attributes.items())))
    if event.get("error"):
        parts.append(f"error: {str(event['error']).strip().splitlines()[0][:MAX_TEXT]}")
    return "; ".join(parts)


def _local(when: datetime, config: PipelineConfig | None) -> str:
    if config is None:
        return when.isoformat()
    return f"{when.astimezone(config.tz):%Y-%m-%d %H:%M %Z}"
