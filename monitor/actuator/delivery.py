"""The trigger protocol after the decision: gates, sinks, retries, escalation.

A delivery claims a due *pending* row (a conditional update, so two deliveries never send
the same trigger at once), runs the gates, and sends to each of the phase's targets that has
not accepted yet. Success is written only after every target accepted; a failure schedules
the next attempt with capped full jitter; a failing gate defers with a jittered retry time.
An attempt's result is an ``Outcome`` (the row's conditional update, its audit line, and
what to tell once written), so that a caller may write several in one transaction
(``record``; the first-attempt sender does, monitor.actuator.sender).
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from phasewatch_client.retry import delay, jittered, wait_full_jitter

from monitor.actuator.alert_context import describe
from monitor.actuator.config import HttpTrigger, PubSubTrigger
from monitor.actuator.context import Context
from monitor.actuator.gates.base import GateContext, GateResult
from monitor.actuator.gates.health import HealthGate
from monitor.actuator.notify import blocked_service, run_labels
from monitor.actuator.policy import taken_over
from monitor.actuator.sinks.base import SinkResult, Target, TriggerRequest
from monitor.actuator.store import AuditEntry, TriggerRow, TriggerUpdate
from monitor.config import PhaseConfig, PipelineConfig

log = logging.getLogger(__name__)

RETRY_AFTER_INTERNAL_ERROR = timedelta(minutes=1)
RETRY_AFTER_CAP_S = 3600.0  # a target's Retry-After honoured up to an hour


@dataclass(frozen=True)
class Sent:
    """One target's answer within an attempt."""

    index: int
    target: Target
    result: SinkResult

    def as_dict(self) -> dict[str, Any]:
        return {"target": _describe(self.target), "outcome": self.result.outcome,
                "detail": self.result.detail}


def _describe(target: Target) -> str:
    if isinstance(target, HttpTrigger):
        return f"http {target.url}"
    if isinstance(target, PubSubTrigger):
        return f"pubsub {target.topic}"
    return "log"


def send_all(ctx: Context, targets: Sequence[Target], skip: frozenset[int],
             request: TriggerRequest) -> list[Sent]:
    """Send ``request`` to every target not in ``skip``; a missing sink is a permanent failure."""
    out: list[Sent] = []
    for index, target in enumerate(targets):
        if index in skip:
            continue
        sink = ctx.sinks.get(target.kind)
        try:
            result = _no_sink(ctx, target) if sink is None else sink.send(target, request)
        except Exception as exc:
            result = _sink_raised(target, exc)
        out.append(Sent(index, target, result))
    return out


async def send_all_async(ctx: Context, targets: Sequence[Target], skip: frozenset[int],
                         request: TriggerRequest) -> list[Sent]:
    """``send_all`` awaited: sinks with ``send_async`` (HTTP) send on the loop, the others
    (Pub/Sub's blocking publish) in a worker thread."""
    out: list[Sent] = []
    for index, target in enumerate(targets):
        if index in skip:
            continue
        sink = ctx.sinks.get(target.kind)
        try:
            if sink is None:
                result = _no_sink(ctx, target)
            elif (send_async := getattr(sink, "send_async", None)) is not None:
                result = await send_async(target, request)
            else:
                result = await asyncio.to_thread(sink.send, target, request)
        except Exception as exc:
            result = _sink_raised(target, exc)
        out.append(Sent(index, target, result))
    return out


def _no_sink(ctx: Context, target: Target) -> SinkResult:
    return SinkResult("failed", f"no sink for {target.kind!r}; configured: "
                      f"{', '.join(sorted(ctx.sinks)) or 'none'}", retryable=False)


def _sink_raised(target: Target, exc: Exception) -> SinkResult:
    """A sink must not raise; if one does, it is a failed (retryable) send."""
    log.exception("event=sink.raised kind=%s", target.kind)
    return SinkResult("failed", f"sink error: {type(exc).__name__}: {exc}"[:300])


@dataclass(frozen=True)
class Attempt:
    """A claimed trigger cleared to go: the request, and the targets to send it to."""

    row: TriggerRow
    token: str
    reason: str
    note: str | None
    targets: tuple[Target, ...]
    request: TriggerRequest


@dataclass(frozen=True)
class Outcome:
    """An attempt's result, ready to write: the row's conditional update with its audit line,
    and what to tell (log, metrics, alerts) once the update applied."""

    update: TriggerUpdate
    then: Callable[[], None]


class Delivery:
    """Delivers due triggers; every outcome is one conditional update plus its audit line."""

    def __init__(self, ctx: Context) -> None:
        self.ctx = ctx

    def deliver(self, trigger_id: int, now: datetime) -> TriggerRow | None:
        """Try one trigger if it is due and free; returns the row as it was claimed."""
        token = self.ctx.store.new_claim()
        row = self.ctx.store.claim_trigger(trigger_id, token, now)
        if row is None:
            return None
        self.deliver_claimed(row, token, now)
        return row

    def deliver_claimed(self, row: TriggerRow, token: str, now: datetime) -> None:
        """Deliver a row this caller holds the claim of (the deciding call writes it claimed)."""
        try:
            self._deliver(row, token, now)
        except Exception:
            self.internal_error(row, token, now)

    def internal_error(self, row: TriggerRow, token: str, now: datetime) -> None:
        """Log what escaped an attempt and put the row back to pending for a later retry."""
        log.exception("event=trigger.delivery_error id=%d", row.id)
        self.release(row.id, token, now)

    def release(self, trigger_id: int, token: str | None, now: datetime) -> None:
        """Back to pending, retried (same idempotency key) a minute later: for an attempt
        whose outcome could not be decided or written."""
        self.ctx.store.update_trigger(trigger_id, {
            "state": "pending", "claim": None, "last_error": "internal error (see log)",
            "next_attempt_at": now + RETRY_AFTER_INTERNAL_ERROR,
        }, claim=token)

    def answers_now(self, row: TriggerRow, now: datetime) -> bool:
        """Whether the row's gates can answer without I/O (every health probe they need is
        recent enough); the data gates read memory and the store."""
        ctx = self.ctx
        pipeline = ctx.pipeline(row.pipeline)
        phase = ctx.phase(row.pipeline, row.phase)
        if pipeline is None or phase is None or row.force:
            return True
        gate_ctx = GateContext(pipeline, phase, ctx.run(row.run), now)
        return all(gate.answers_now(gate_ctx) for gate in ctx.gates(pipeline, phase)
                   if isinstance(gate, HealthGate))

    def _deliver(self, row: TriggerRow, token: str, now: datetime) -> None:
        attempt = self.prepare(row, token, now)
        if attempt is not None:
            sent = send_all(self.ctx, attempt.targets, row.delivered, attempt.request)
            self.record([self.outcome(attempt, now, sent)])

    def prepare(self, row: TriggerRow, token: str, now: datetime) -> Attempt | None:
        """Everything before the send: None when the row was settled here instead (kill
        switch, superseded, guard, gate, dry run, no longer configured)."""
        ctx = self.ctx
        pipeline = ctx.pipeline(row.pipeline)
        phase = ctx.phase(row.pipeline, row.phase)
        if pipeline is None or phase is None or not phase.triggers:
            self._finish_failed(row, token, now, "the phase is no longer configured with triggers")
            return None
        automated = not row.manual
        if automated and not ctx.acfg.enabled:
            self._hold(row, token, now, "kill_switch", "actuator.enabled is false (kill switch)")
            return None
        run = ctx.run(row.run)
        if automated and row.generation == 0 and run is not None and taken_over(run.phases[row.phase]):
            self._superseded(row, token, now)
            return None
        if row.generation > 0 and automated:
            guard = ctx.guards.blocking(row.pipeline, row.phase, row.run)
            if guard is not None:
                self._defer(row, token, now, GateResult(False, "guard", guard.detail))
                return None
        if not row.force:
            gate_ctx = GateContext(pipeline, phase, run, now)
            for gate in ctx.gates(pipeline, phase):
                result = gate.check(gate_ctx)
                if not result.passed:
                    self._defer(row, token, now, result)
                    return None
        reason = row.send_reason or ("retry" if row.attempts or row.deferrals else row.reason)
        note = _recovered_note(row)
        if ctx.acfg.dry_run:
            self._dry_run(row, token, now, reason, note)
            return None
        request = TriggerRequest(
            row.pipeline, row.run_date, row.mode, row.phase, reason, row.attempts + 1,
            row.idem_key, row.rule, row.processors,
            extra=row.detail.get("payload") or {},  # a re-run's flags (cascade.py)
        )
        return Attempt(row, token, reason, note, tuple(phase.triggers), request)

    def outcome(self, attempt: Attempt, now: datetime, sent: list[Sent]) -> Outcome:
        """What the targets' answers make of the attempt (not written yet: ``record``)."""
        row = attempt.row
        delivered = row.delivered | {s.index for s in sent if s.result.ok}
        if len(delivered) == len(attempt.targets):
            return self._succeeded(row, attempt.token, now, attempt.reason, attempt.note, sent,
                                   delivered)
        return self._failed(row, attempt.token, now, attempt.reason, sent, delivered)

    def record(self, outcomes: Sequence[Outcome]) -> None:
        """Write ``outcomes`` in one transaction, then tell what each one that applied changed."""
        applied = self.ctx.store.update_triggers([o.update for o in outcomes])
        for outcome, ok in zip(outcomes, applied, strict=True):
            if not ok:
                continue
            try:
                outcome.then()
            except Exception:  # written already: one failing alert must not silence the others
                log.exception("event=trigger.tell_failed id=%d", outcome.update.trigger_id)

    # --- outcomes --------------------------------------------------------------------

    def _audit(self, row: TriggerRow, now: datetime, kind: str, action: str, outcome: str,
               **kw: Any) -> AuditEntry:
        return AuditEntry(now, kind, action, outcome, row.pipeline, row.run_date, row.mode,
                          row.phase, manual=row.manual, **kw)

    def _succeeded(self, row: TriggerRow, token: str, now: datetime, reason: str,
                   note: str | None, sent: list[Sent], delivered: frozenset[int]) -> Outcome:
        running = any(s.result.outcome == "already_running" for s in sent)
        outcome = "already_running" if running else "succeeded"
        audit = self._audit(
            row, now, "trigger", "trigger", outcome, reason=reason, attempt=row.attempts + 1,
            detail={"rule": row.rule, "decision_reason": row.reason, "note": note,
                    "generation": row.generation, "targets": [s.as_dict() for s in sent]},
        )
        update = TriggerUpdate(row.id, {
            "state": "succeeded", "claim": None, "attempts": row.attempts + 1,
            "delivered": delivered, "succeeded_at": now,
            "outcome": "already_running" if running else "accepted", "last_error": None,
            "blocked_by": None, "deferred_since": None, "send_reason": None, "verified_at": None,
        }, [audit], claim=token)
        return Outcome(update, lambda: self._tell_succeeded(row, now, reason, running))

    def _tell_succeeded(self, row: TriggerRow, now: datetime, reason: str, running: bool) -> None:
        ctx = self.ctx
        log.info("event=trigger.succeeded pipeline=%s run_date=%s mode=%s phase=%s reason=%s "
                 "attempt=%d", row.pipeline, row.run_date, row.mode, row.phase, reason,
                 row.attempts + 1)
        ctx.metrics.phase_transitions.labels(
            row.pipeline, row.phase, "already_running" if running else "triggered").inc()
        labels = run_labels(row.pipeline, row.run_date, row.mode, row.phase)
        ctx.notifier.resolve("trigger_undelivered", labels, now)
        ctx.notifier.resolve("trigger_deferred", {**labels, "service": blocked_service(row.blocked_by)},
                             now)

    def _failed(self, row: TriggerRow, token: str, now: datetime, reason: str,
                sent: list[Sent], delivered: frozenset[int]) -> Outcome:
        ctx = self.ctx
        cfg = ctx.acfg.retry
        attempts = row.attempts + 1
        errors = "; ".join(f"{_describe(s.target)}: {s.result.detail}" for s in sent if not s.result.ok)
        permanent = any(not s.result.retryable for s in sent if not s.result.ok)
        age = now - row.decided_at
        give_up = permanent or age >= timedelta(hours=cfg.give_up_after_h)
        escalate = give_up or attempts >= cfg.escalate_after_attempts or (
            age >= timedelta(minutes=cfg.escalate_after_min))
        retry_at = None if give_up else now + max(
            delay(wait_full_jitter(cfg.initial_s, cfg.max_s, ctx.rng), attempts), asked_wait(sent))
        audit = self._audit(
            row, now, "trigger", "trigger", "failed", reason=reason, attempt=attempts,
            detail={"rule": row.rule, "decision_reason": row.reason, "error": errors,
                    "retry_at": retry_at.isoformat() if retry_at else None,
                    "permanent": permanent, "generation": row.generation,
                    "targets": [s.as_dict() for s in sent]},
        )
        changes: dict[str, Any] = {
            "claim": None, "attempts": attempts, "delivered": delivered, "last_error": errors,
            "escalated": row.escalated or escalate,
        }
        if give_up:
            changes["state"] = "failed"
        else:
            changes.update(state="pending", next_attempt_at=retry_at)
        return Outcome(TriggerUpdate(row.id, changes, [audit], claim=token),
                       lambda: self._tell_failed(row, now, attempts, errors, escalate, give_up))

    def _tell_failed(self, row: TriggerRow, now: datetime, attempts: int, errors: str,
                     escalate: bool, give_up: bool) -> None:
        ctx = self.ctx
        log.warning("event=trigger.failed pipeline=%s run_date=%s phase=%s attempt=%d error=%r",
                    row.pipeline, row.run_date, row.phase, attempts, errors)
        ctx.metrics.phase_transitions.labels(row.pipeline, row.phase, "trigger_failed").inc()
        if (escalate and not row.escalated) or give_up:
            what = "trigger failed for good" if give_up else "trigger not delivered"
            ctx.metrics.phase_transitions.labels(row.pipeline, row.phase, "escalated").inc()
            ctx.notifier.fire(
                "trigger_undelivered", "critical",
                f"{what}: {row.phase} of {row.pipeline} {row.run_date} ({row.mode}) after "
                f"{attempts} attempt(s): {errors}",
                now, run_labels(row.pipeline, row.run_date, row.mode, row.phase),
            )

    def _defer(self, row: TriggerRow, token: str, now: datetime, result: GateResult) -> None:
        ctx = self.ctx
        cfg = ctx.acfg.deferral
        deferrals = row.deferrals + 1
        since = row.deferred_since or now
        give_up = now - since >= timedelta(hours=cfg.give_up_after_h)
        retry_at = None if give_up else now + delay(
            jittered(cfg.retry_after_s, cfg.jitter_ratio, ctx.rng), 1)
        audit = self._audit(
            row, now, "deferral", "trigger", "abandoned" if give_up else "deferred",
            reason=result.reason, service=result.service,
            detail={"retry_at": retry_at.isoformat() if retry_at else None,
                    "deferral": deferrals, "gate_detail": result.detail,
                    "decision_reason": row.reason, "rule": row.rule},
        )
        changes: dict[str, Any] = {
            "claim": None, "deferrals": deferrals, "deferred_since": since,
            "blocked_by": f"{result.reason}:{result.service or ''}", "last_error": result.detail,
        }
        if give_up:
            changes["state"] = "failed"
        else:
            changes.update(state="pending", next_attempt_at=retry_at)
        if not ctx.store.update_trigger(row.id, changes, [audit], claim=token):
            return
        log.info("event=trigger.deferred pipeline=%s run_date=%s phase=%s reason=%s service=%s "
                 "retry_at=%s", row.pipeline, row.run_date, row.phase, result.reason,
                 result.service, retry_at)
        ctx.metrics.phase_transitions.labels(row.pipeline, row.phase, "deferred").inc()
        if deferrals == cfg.alert_after or give_up:
            subject = result.service or result.reason
            pipeline = ctx.pipeline(row.pipeline)
            upstream = pipeline.upstream_of(row.phase) if pipeline else ()
            ctx.notifier.fire(
                "trigger_deferred", "critical",
                f"trigger of {row.phase} for {row.pipeline} {row.run_date} ({row.mode}) held "
                f"{deferrals} times by {subject}: {result.detail}"
                + ("; abandoned" if give_up else "; retrying after it recovers"),
                now, run_labels(row.pipeline, row.run_date, row.mode, row.phase,
                                service=result.service),
                details=describe(ctx, row.pipeline, row.run, (*upstream, row.phase)),
            )

    def _hold(self, row: TriggerRow, token: str, now: datetime, blocked_by: str, why: str) -> None:
        """Keep a trigger pending without counting a deferral (kill switch)."""
        audit = [] if row.blocked_by == blocked_by else [
            self._audit(row, now, "decision", "trigger", "not_taken", reason=blocked_by,
                        detail={"why": why})]
        self.ctx.store.update_trigger(row.id, {
            "state": "pending", "claim": None, "blocked_by": blocked_by,
            "next_attempt_at": now + timedelta(seconds=self.ctx.acfg.deferral.retry_after_s),
        }, audit, claim=token)

    def _dry_run(self, row: TriggerRow, token: str, now: datetime, reason: str,
                 note: str | None) -> None:
        audit = self._audit(row, now, "trigger", "trigger", "dry_run", reason=reason,
                            attempt=row.attempts + 1,
                            detail={"rule": row.rule, "decision_reason": row.reason, "note": note})
        if self.ctx.store.update_trigger(row.id, {"state": "dry_run", "claim": None}, [audit],
                                         claim=token):
            self.ctx.metrics.phase_transitions.labels(row.pipeline, row.phase, "dry_run").inc()

    def _superseded(self, row: TriggerRow, token: str, now: datetime) -> None:
        """The phase started by another path while the trigger waited: sending it would repeat it."""
        audit = self._audit(row, now, "decision", "trigger", "not_taken", reason="target_started",
                            detail={"why": "the phase started without phasewatch while the "
                                    "trigger was held", "deferrals": row.deferrals})
        if self.ctx.store.update_trigger(row.id, {"state": "superseded", "claim": None}, [audit],
                                         claim=token):
            labels = run_labels(row.pipeline, row.run_date, row.mode, row.phase)
            self.ctx.notifier.resolve("trigger_undelivered", labels, now)
            self.ctx.notifier.resolve(
                "trigger_deferred", {**labels, "service": blocked_service(row.blocked_by)}, now)

    def _finish_failed(self, row: TriggerRow, token: str, now: datetime, why: str) -> None:
        audit = self._audit(row, now, "trigger", "trigger", "failed", reason=row.reason,
                            detail={"error": why})
        self.ctx.store.update_trigger(row.id, {"state": "failed", "claim": None, "last_error": why},
                                      [audit], claim=token)


def asked_wait(sent: Sequence[Sent]) -> timedelta:
    """The longest wait the refusing targets asked for (``Retry-After``, at most an hour):
    a target over its quota answers 429 until the quota refills, and a retry before then is
    one more refused call (and another attempt towards the escalation)."""
    asked = [s.result.retry_after_s for s in sent
             if not s.result.ok and s.result.retry_after_s is not None]
    return timedelta(seconds=min(max(asked, default=0.0), RETRY_AFTER_CAP_S))


def _recovered_note(row: TriggerRow) -> str | None:
    """Why a held trigger goes out now ("retry after health recovers")."""
    if not row.deferrals or not row.blocked_by:
        return None
    gate = row.blocked_by.split(":", 1)[0]
    return f"retry after {gate} recovers"


def describe_targets(pipeline: PipelineConfig, phase: PhaseConfig) -> list[str]:
    return [_describe(t) for t in phase.triggers]
