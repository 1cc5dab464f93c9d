"""Open alerts about things the config no longer has, resolved when phasewatch starts.

An alert resolves when its source sees its problem gone. A config change can remove the
source: a check, an SLO, a scheduler job, an expectation, a service, a processor or a phase
taken out (or a pipeline). Its open alert, restored from the outbox, would then never
resolve and be reminded for ever. At start the alerts whose labels name something the
config does not know are resolved (said in the log); a processor renamed with its old name
kept as an alias is still known (its alerts resolve by its success under the new name).

The other way round: events naming a processor the config does not know (renamed in a
deploy, the config not yet) are refused; those a Pub/Sub message brought are dead-lettered,
and ``tell_unknown`` raises one ``unknown_processor`` warning per name (a POST is answered
422 naming the field), which the restart with a config that knows the name resolves.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping, Sequence
from datetime import datetime

from alerts.model import Alert, alert_key
from alerts.router import Router
from monitor.config import Config

UNKNOWN = "unknown_processor"

log = logging.getLogger(__name__)


def orphaned(config: Config, labels: Mapping[str, str]) -> str | None:
    """Why an alert with ``labels`` can no longer be judged under ``config``, or None."""
    pipelines = config.pipeline_map
    pipeline_id = labels.get("pipeline")
    pipeline = pipelines.get(pipeline_id) if pipeline_id is not None else None
    if pipeline_id is not None and pipeline is None:
        return f"pipeline {pipeline_id!r} is no longer configured"
    named: dict[str, set[str]] = {
        "slo": {s.name for s in config.slos},
        "check": {c.name for c in config.checks},
        "job": {j.name for j in config.scheduler.jobs},
        "service": {s for p in pipelines.values() for s in p.services},
    }
    for label, known in named.items():
        value = labels.get(label)
        if value is not None and value not in known:
            return f"{label} {value!r} is no longer configured"
    if pipeline is None:
        return None
    if labels.get("alertname") == UNKNOWN:
        phase = pipeline.phase_map.get(labels.get("phase", ""))
        name = labels.get("name", "")
        if phase is not None and name in phase.canonical_names:
            return f"processor {name!r} of {phase.id} is configured now"
    expectation = labels.get("expectation")
    if expectation is not None and expectation not in {e.name for e in pipeline.expectations}:
        return f"expectation {expectation!r} is no longer configured in {pipeline.id}"
    phase_id = labels.get("phase")
    phases = pipeline.phase_map
    if phase_id is not None and phase_id not in phases:
        return f"phase {phase_id!r} is no longer configured in {pipeline.id}"
    processor = labels.get("processor")
    if processor is not None:
        names = (phases[phase_id].canonical_names if phase_id is not None
                 else {n for p in phases.values() for n in p.canonical_names})
        if processor not in names:
            where = f"{phase_id} of {pipeline.id}" if phase_id is not None else pipeline.id
            return f"processor {processor!r} is no longer configured in {where}"
    return None


def resolve_orphans(config: Config, router: Router, now: datetime) -> list[str]:
    """Resolve every open alert ``orphaned`` under ``config``; returns their keys."""
    resolved = []
    for alert in router.active():
        why = orphaned(config, alert.labels)
        if why is None:
            continue
        router.resolve(alert.key, now)
        resolved.append(alert.key)
        log.warning("event=alert.orphan_resolved key=%s why=%r", alert.key, why)
    return resolved


def tell_unknown(config: Config, router: Router, unknown: Sequence[tuple[str, str, str]],
                 now: datetime) -> None:
    """One warning per processor name a phase does not know (``Collector.unknown_listeners``):
    its events are refused, so its runs are invisible and the phase waits for the old name."""
    for pipeline_id, phase_id, name in unknown:
        pipeline = config.pipeline_map[pipeline_id]
        phase = pipeline.phase_map[phase_id]
        labels = {"pipeline": pipeline_id, "phase": phase_id, "name": name}
        configured = ", ".join(p.name for p in phase.processors) or "none"
        router.fire(Alert(
            alert_key(UNKNOWN, labels), "warning",
            f"unknown processor {name} of {pipeline_id}/{phase_id}: its Pub/Sub messages are "
            "dead-lettered; renamed in a deploy? Add it to the phase, or as an alias of the "
            "processor it replaces",
            now, f"configured in {pipeline_id}/{phase_id}: {configured}; the refused messages: "
            "GET /v1/dead-letters", {"alertname": UNKNOWN, **labels}))
