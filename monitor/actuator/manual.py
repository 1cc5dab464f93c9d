"""Manual actions (``POST /v1/actions/trigger``): trigger a phase, skip a processor, retry,
re-run a phase (and with ``cascade`` every downstream phase after it, see ``cascade.py``).

Every manual action is validated (errors name the field and the allowed values), audited
with its actor, and counted in ``phasewatch_manual_interventions_total`` — the number the
operators want near zero. Manual actions ignore the kill switch, guards and budgets (a
person decided), but triggers still pass the health gate unless ``force`` is true.
"""

from __future__ import annotations

import uuid
from collections.abc import Mapping
from datetime import date
from typing import TYPE_CHECKING, Annotated, Any, Literal

from phasewatch_client.event import MAX_DATE, MIN_DATE
from pydantic import BaseModel, ConfigDict, Field, StringConstraints, ValidationError

from monitor.actuator.cascade import Cascades, CascadeStore, cascade_phases
from monitor.actuator.errors import ActionError
from monitor.actuator.store import AuditEntry, TriggerRow
from monitor.config import PhaseConfig, PipelineConfig
from monitor.errors import Problem
from monitor.events import Event
from monitor.validation import problems_from_validation_error, render_value

if TYPE_CHECKING:
    from monitor.actuator.engine import Actuator

ShortText = Annotated[str, StringConstraints(min_length=1, max_length=128)]


class ManualAction(BaseModel):
    """The body of ``POST /v1/actions/trigger``."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    action: Literal["trigger", "skip", "retry", "rerun"]
    pipeline: ShortText
    run_date: Annotated[date, Field(ge=MIN_DATE, le=MAX_DATE)]
    mode: Literal["overnight", "same_day", "tomorrow", "backfill"] | None = Field(
        default=None, description="default: derived from the run date like an event's"
    )
    phase: ShortText
    processor: ShortText | None = Field(
        default=None, description="skip: required; trigger / retry: only this processor"
    )
    force: bool = Field(default=False, description="trigger: send even when a gate fails")
    cascade: bool = Field(
        default=False, description="rerun: then each downstream phase, once its upstream has "
        "finished anew",
    )
    note: Annotated[str, StringConstraints(max_length=500)] | None = None
    actor: ShortText | None = None


def parse_action(body: bytes | str | Mapping[str, Any]) -> ManualAction:
    """Validate a manual action body; ActionError (422) names each bad field."""
    try:
        if isinstance(body, bytes | str):
            return ManualAction.model_validate_json(body)
        return ManualAction.model_validate(body)
    except ValidationError as exc:
        problems = problems_from_validation_error(exc, root=ManualAction)
        raise ActionError("bad_action", problems) from None


def manual_action(actuator: Actuator, body: bytes | str | Mapping[str, Any], *,
                  actor: str | None = None) -> dict[str, Any]:
    """Carry out one manual action now; returns what was done (raises ActionError 4xx)."""
    action = parse_action(body)
    pipeline, phase, processor = _resolve_names(actuator, action)
    now = actuator.clock.now()
    mode = action.mode or pipeline.mode_for(action.run_date, now.astimezone(pipeline.tz).date())
    if mode is None:
        raise ActionError("bad_action", [Problem(
            "mode", "required: no mode rule matches the run date; allowed: overnight, same_day, "
            "tomorrow, backfill")])
    run = (pipeline.id, action.run_date.isoformat(), mode)
    who = action.actor or actor
    if action.action == "skip":
        outcome = _skip(actuator, action, run, processor, who)
    elif action.action == "trigger" and processor is None:
        outcome = _trigger(actuator, action, run, phase)
    elif action.action == "rerun":
        outcome = _rerun(actuator, action, run, phase, pipeline, who)
    else:
        outcome = _retry(actuator, action, run, phase, processor)
    actuator.store.audit([AuditEntry(
        now, "manual", action.action, "accepted", *run, phase.id, processor, manual=True,
        actor=who, reason=action.note, detail={"result": outcome, "force": action.force,
                                                 "cascade": action.cascade},
    )])
    actuator.ctx.metrics.manual_interventions.labels(pipeline.id, action.action).inc()
    return {"action": action.action, "pipeline": pipeline.id, "run_date": run[1], "mode": mode,
            "phase": phase.id, "processor": processor, **outcome}


def _resolve_names(
    actuator: Actuator, action: ManualAction
) -> tuple[PipelineConfig, PhaseConfig, str | None]:
    config = actuator.config
    pipeline = config.pipeline_map.get(action.pipeline)
    if pipeline is None:
        raise ActionError("unknown_name", [Problem(
            "pipeline", f"unknown pipeline; allowed: {', '.join(sorted(config.pipeline_map))}",
            render_value(action.pipeline))])
    phase = pipeline.phase_map.get(action.phase)
    if phase is None:
        raise ActionError("unknown_name", [Problem(
            "phase", f"unknown phase of {pipeline.id}; allowed: {', '.join(pipeline.phase_map)}",
            render_value(action.phase))])
    processor: str | None = None
    if action.processor is not None:
        processor = phase.canonical_names.get(action.processor)
        if processor is None:
            allowed = ", ".join(p.name for p in phase.processors) or "none (phase-level only)"
            raise ActionError("unknown_name", [Problem(
                "processor", f"unknown processor of {pipeline.id}/{phase.id}; allowed: {allowed}",
                render_value(action.processor))])
    if action.action == "skip" and processor is None:
        raise ActionError("bad_action", [Problem(
            "processor", "required for skip: the processor to mark skipped")])
    if action.action == "rerun" and processor is not None:
        raise ActionError("bad_action", [Problem(
            "processor", "not allowed for rerun: a re-run runs the whole phase; use retry for "
            "one processor", render_value(processor))])
    if action.action in ("trigger", "retry", "rerun") and not phase.triggers:
        with_triggers = [p.id for p in pipeline.phases if p.triggers]
        raise ActionError("bad_action", [Problem(
            "phase", f"{phase.id} has no triggers, so phasewatch cannot start it; allowed: "
            f"{', '.join(with_triggers) or 'none'}", render_value(phase.id))])
    return pipeline, phase, processor


def _skip(actuator: Actuator, action: ManualAction, run: tuple[str, str, str],
          processor: str | None, actor: str | None) -> dict[str, Any]:
    assert processor is not None
    attributes = {"manual": "true", "actor": actor or "unknown"}
    if action.note:
        attributes["note"] = action.note
    event = Event(
        event_id=f"manual-skip-{uuid.uuid4().hex}", pipeline=run[0], run_date=action.run_date,
        mode=run[2], phase=action.phase, processor=processor, status="skipped",  # type: ignore[arg-type]
        timestamp=actuator.clock.now(), attributes=attributes,
    )
    actuator.host.ingest([event])
    return {"outcome": "skipped", "event_id": event.event_id}


def _trigger(actuator: Actuator, action: ManualAction, run: tuple[str, str, str],
             phase: PhaseConfig) -> dict[str, Any]:
    store = actuator.store
    now = actuator.clock.now()
    row = store.find_trigger(run, phase.id)
    if row is None:
        row = store.decide(run, phase.id, reason="manual", rule=None, now=now, manual=True,
                           force=action.force, detail={"note": action.note})
        if row is not None:
            actuator.mark_decided(run, phase.id)
    elif row.state == "sending":
        raise ActionError("busy", [Problem(
            "phase", "a delivery of this trigger is in flight; retry shortly")], status_code=409)
    else:
        changes: dict[str, Any] = {
            "state": "pending", "next_attempt_at": now, "send_reason": "manual", "manual": True,
            "force": action.force,
        }
        if row.state != "pending":
            # A new generation, with effect verification's re-trigger budget counted from it.
            changes.update(generation=row.generation + 1, delivered=frozenset(), outcome=None,
                           succeeded_at=None, verified_at=None, deferrals=0, deferred_since=None,
                           blocked_by=None, escalated=False,
                           detail={**row.detail, "first_generation": row.generation + 1})
        if not store.update_trigger(row.id, changes, state=row.state):
            raise ActionError("busy", [Problem("phase", "the trigger changed meanwhile; retry")],
                              status_code=409)
    row = _deliver(actuator, row)
    return {"outcome": "trigger_queued", "trigger": _row(row)}


def _rerun(actuator: Actuator, action: ManualAction, run: tuple[str, str, str],
           phase: PhaseConfig, pipeline: PipelineConfig, actor: str | None) -> dict[str, Any]:
    cascades = Cascades(actuator, CascadeStore(actuator.store.component))
    phases = cascade_phases(pipeline, phase.id, run[2], cascade=action.cascade)
    row = cascades.start(run, phases, reason="manual", manual=True, force=action.force,
                         actor=actor, now=actuator.clock.now())
    if row is None:
        (busy,) = cascades.store.running(run)
        raise ActionError("busy", [Problem(
            "run_date", f"re-run {busy.id} of this run is still going ({' → '.join(busy.phases)} "
            f"at {busy.phases[busy.step]}); wait for it to finish")], status_code=409)
    return {"outcome": "rerun_started", "cascade": row.as_dict()}


def _retry(actuator: Actuator, action: ManualAction, run: tuple[str, str, str],
           phase: PhaseConfig, processor: str | None) -> dict[str, Any]:
    store = actuator.store
    now = actuator.clock.now()
    cleared = actuator.ctx.guards.clear_phase(run[0], phase.id, now, "manual retry", processor)
    if processor is not None:
        plan = store.create_plan(run, phase.id, subject=f"processor:{processor}",
                                 rule=f"manual-{uuid.uuid4().hex[:8]}", steps=("retrigger",),
                                 now=now, processor=processor, manual=True)
        assert plan is not None
        actuator.submit("plan", plan.id)
        return {"outcome": "retrigger_queued", "plan_id": plan.id, "guards_cleared": cleared}
    woken: list[int] = []
    row = store.find_trigger(run, phase.id)
    if row is not None and row.state in ("failed", "pending") and store.update_trigger(row.id, {
        "state": "pending", "next_attempt_at": now, "manual": True, "force": action.force,
        "escalated": False, "send_reason": "retry", "deferred_since": None,
    }, state=row.state):
        woken.append(row.id)
        actuator.submit("trigger", row.id)
    plans = [p for p in store.plans(pipeline=run[0], phase=phase.id,
                                    states=("failed", "blocked", "pending")) if p.run == run]
    for plan in plans:
        if store.update_plan(plan.id, {"state": "pending", "next_attempt_at": now, "manual": True,
                                       "attempts": 0}, state=plan.state):
            actuator.submit("plan", plan.id)
    if not woken and not plans and not cleared:
        raise ActionError("nothing_to_retry", [Problem(
            "phase", f"no failed, held or blocked action of {phase.id} for this run; use action "
            "trigger to start it", render_value(phase.id))], status_code=409)
    return {"outcome": "retry_queued", "triggers": woken, "plans": [p.id for p in plans],
            "guards_cleared": cleared}


def _deliver(actuator: Actuator, row: TriggerRow | None) -> TriggerRow | None:
    if row is None:
        return None
    actuator.submit("trigger", row.id)
    return actuator.store.trigger(row.id)


def _row(row: TriggerRow | None) -> dict[str, Any] | None:
    if row is None:
        return None
    return {"id": row.id, "state": row.state, "reason": row.reason, "attempts": row.attempts,
            "generation": row.generation, "last_error": row.last_error,
            "blocked_by": row.blocked_by}
