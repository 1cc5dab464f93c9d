"""Recovery plans: the ordered steps that unstick a stalled batch or processor.

Each step is an HTTP call from the phase's recovery config (``/check-stalled``, ``/reset``,
``/start``...) or ``retrigger`` (the phase's own triggers, for its missing processors). A
step runs only when the kill switch is off, no guard blocks the phase, the run's and the
day's action budgets allow it, the same action was not taken within the cooldown, and the
services it depends on are healthy; otherwise it waits (deferred, jittered) or the plan is
blocked. Plans are rows in the store, claimed like triggers, so a crash resumes them.
"""

from __future__ import annotations

import logging
from datetime import datetime, timedelta
from typing import Any

from phasewatch_client.retry import delay, jittered, wait_full_jitter

from monitor.actuator.config import HttpTrigger, RecoveryActionConfig, RecoveryConfig
from monitor.actuator.context import Context
from monitor.actuator.delivery import send_all
from monitor.actuator.gates.base import GateResult
from monitor.actuator.notify import blocked_service, run_labels
from monitor.actuator.sinks.base import SinkResult, TriggerRequest
from monitor.actuator.store import AuditEntry, PlanRow
from monitor.config import PhaseConfig, PipelineConfig

log = logging.getLogger(__name__)

RETRIGGER = RecoveryActionConfig(kind="retrigger", scope="run", restarts=True)


class Recovery:
    """Runs due recovery plans, one step after another."""

    def __init__(self, ctx: Context) -> None:
        self.ctx = ctx

    def run(self, plan_id: int, now: datetime) -> PlanRow | None:
        token = self.ctx.store.new_claim()
        row = self.ctx.store.claim_plan(plan_id, token, now)
        if row is None:
            return None
        try:
            self._run(row, token, now)
        except Exception:
            log.exception("event=recovery.error id=%d", row.id)
            self.ctx.store.update_plan(row.id, {
                "state": "pending", "claim": None, "last_error": "internal error (see log)",
                "next_attempt_at": now + timedelta(minutes=1),
            }, claim=token)
        return row

    def _run(self, row: PlanRow, token: str, now: datetime) -> None:
        ctx = self.ctx
        pipeline = ctx.pipeline(row.pipeline)
        phase = ctx.phase(row.pipeline, row.phase)
        recovery = phase.policy.recovery if phase else None
        if pipeline is None or phase is None or recovery is None:
            self._end(row, token, now, "failed", "recovery is no longer configured")
            return
        automated = not row.manual
        if automated and not ctx.acfg.enabled:
            self._wait(row, token, now, GateResult(False, "kill_switch", "actuator.enabled is false"),
                       count=False)
            return
        executed: list[str] = []
        step, attempts = row.step, row.attempts
        while step < len(row.steps):
            name = row.steps[step]
            action = RETRIGGER if name == "retrigger" else recovery.actions[name]
            hold = self._hold(row, pipeline, phase, recovery, action, now) if automated else None
            if hold is not None:
                if hold.reason == "budget":
                    self._end(row, token, now, "blocked", hold.detail, step=step)
                    self._budget_alert(row, hold.detail, now)
                else:
                    self._wait(row, token, now, hold, step=step)
                return
            recent = ctx.store.last_action_at(
                row.run, row.phase, name, row.batch_id if action.scope == "batch" else None)
            cooldown = timedelta(minutes=ctx.acfg.budget.cooldown_min)
            if automated and recent is not None and now - recent < cooldown:
                ctx.store.update_plan(row.id, {"step": step + 1, "attempts": 0}, [self._audit(
                    row, now, name, "skipped", reason="cooldown",
                    detail={"last_taken": recent.isoformat()})], claim=token)
                step, attempts = step + 1, 0
                continue
            result = self._execute(row, pipeline, phase, name, action, attempts + 1)
            audit = self._audit(row, now, name, result.outcome if not ctx.acfg.dry_run else "dry_run",
                                reason="manual" if row.manual else "recovery",
                                attempt=attempts + 1, detail={"detail": result.detail})
            if not result.ok:
                self._step_failed(row, token, now, step, attempts + 1, name, result, audit)
                return
            ctx.store.update_plan(row.id, {"step": step + 1, "attempts": 0, "last_error": None},
                                  [audit], claim=token)
            executed.append(name)
            step, attempts = step + 1, 0
        self._end(row, token, now, "done", None, step=step)
        self._recovered(row, phase, executed, now)

    # --- checks before a step --------------------------------------------------------

    def _hold(self, row: PlanRow, pipeline: PipelineConfig, phase: PhaseConfig,
              recovery: RecoveryConfig, action: RecoveryActionConfig, now: datetime) -> GateResult | None:
        ctx = self.ctx
        services = action.services or recovery.services or phase.services
        for service in services:
            health = ctx.health.current(service, ("health", "ready"), now)
            if not health.healthy(ctx.acfg.health.warn_is_healthy):
                return GateResult(False, "health", f"{service}: {health.detail}", service)
        guard = ctx.guards.blocking(row.pipeline, row.phase, row.run, row.processor)
        if guard is not None and (action.restarts or action.kind == "retrigger"):
            return GateResult(False, "guard", guard.detail)
        budget = ctx.acfg.budget
        per_run = ctx.store.executed_actions(pipeline=row.pipeline, run=row.run)
        if per_run >= budget.per_run:
            return GateResult(False, "budget",
                              f"{per_run} actions taken for this run (budget {budget.per_run})")
        per_day = ctx.store.executed_actions(pipeline=row.pipeline, since=now - timedelta(days=1))
        if per_day >= budget.per_day:
            return GateResult(False, "budget", f"{per_day} actions in 24 h (budget {budget.per_day})")
        return None

    # --- the step itself -------------------------------------------------------------

    def _execute(self, row: PlanRow, pipeline: PipelineConfig, phase: PhaseConfig, name: str,
                 action: RecoveryActionConfig, attempt: int) -> SinkResult:
        ctx = self.ctx
        if ctx.acfg.dry_run:
            return SinkResult("accepted", "dry run: not sent")
        processors: tuple[str, ...] = (row.processor,) if row.processor else ()
        if action.kind == "retrigger":
            run = ctx.run(row.run)
            if not processors and run is not None:
                processors = tuple(run.phases[row.phase].missing)
        request = TriggerRequest(
            row.pipeline, row.run_date, row.mode, row.phase,
            "manual" if row.manual else "recovery", attempt,
            f"{row.pipeline}:{row.run_date}:{row.mode}:{row.phase}:{row.subject}:{row.rule}:{name}",
            rule=row.rule, processors=processors, action=name, batch_id=row.batch_id,
            extra=action.body,
        )
        if action.kind == "retrigger":
            sent = send_all(ctx, phase.triggers, frozenset(), request)
            failed = [s.result for s in sent if not s.result.ok]
            return failed[0] if failed else SinkResult(
                "accepted", "; ".join(s.result.detail for s in sent))
        assert action.url is not None
        target = HttpTrigger(kind="http", url=action.url, method=action.method,
                             token_env=action.token_env, auth=action.auth,
                             audience=action.audience, timeout_s=action.timeout_s,
                             already_running_status=action.already_running_status)
        return send_all(ctx, (target,), frozenset(), request)[0].result

    # --- outcomes --------------------------------------------------------------------

    def _audit(self, row: PlanRow, now: datetime, action: str, outcome: str, *,
               kind: str = "recovery", **kw: Any) -> AuditEntry:
        detail = {"rule": row.rule, "subject": row.subject, **kw.pop("detail", {})}
        return AuditEntry(now, kind, action, outcome, row.pipeline, row.run_date, row.mode,
                          row.phase, row.processor, row.batch_id, manual=row.manual,
                          detail=detail, **kw)

    def _step_failed(self, row: PlanRow, token: str, now: datetime, step: int, attempts: int,
                     name: str, result: SinkResult, audit: AuditEntry) -> None:
        ctx = self.ctx
        if not result.retryable or attempts >= ctx.acfg.budget.step_attempts:
            ctx.store.update_plan(row.id, {"state": "failed", "claim": None, "step": step,
                                           "attempts": attempts, "last_error": result.detail,
                                           "finished_at": now}, [audit], claim=token)
            ctx.notifier.fire(
                "recovery_failed", "warning",
                f"recovery of {_subject(row)} in {row.phase} of {row.pipeline} {row.run_date} "
                f"failed at {name}: {result.detail}",
                now, run_labels(row.pipeline, row.run_date, row.mode, row.phase,
                                batch_id=row.batch_id, processor=row.processor),
            )
            return
        retry = wait_full_jitter(ctx.acfg.retry.initial_s, ctx.acfg.retry.max_s, ctx.rng)
        ctx.store.update_plan(row.id, {
            "state": "pending", "claim": None, "step": step, "attempts": attempts,
            "last_error": result.detail, "next_attempt_at": now + delay(retry, attempts),
        }, [audit], claim=token)

    def _wait(self, row: PlanRow, token: str, now: datetime, hold: GateResult, *,
              step: int | None = None, count: bool = True) -> None:
        ctx = self.ctx
        cfg = ctx.acfg.deferral
        retry_at = now + delay(jittered(cfg.retry_after_s, cfg.jitter_ratio, ctx.rng), 1)
        deferrals = row.deferrals + (1 if count else 0)
        step = row.step if step is None else step
        audit = [self._audit(
            row, now, row.steps[step], "deferred", kind="deferral", reason=hold.reason,
            service=hold.service,
            detail={"retry_at": retry_at.isoformat(), "deferral": deferrals,
                    "gate_detail": hold.detail},
        )] if count else []
        ctx.store.update_plan(row.id, {
            "state": "pending", "claim": None, "step": step, "deferrals": deferrals,
            "blocked_by": f"{hold.reason}:{hold.service or ''}", "next_attempt_at": retry_at,
            "last_error": hold.detail,
        }, audit, claim=token)
        if count and deferrals == cfg.alert_after:
            ctx.notifier.fire(
                "recovery_deferred", "warning",
                f"recovery of {_subject(row)} in {row.phase} of {row.pipeline} {row.run_date} held "
                f"{deferrals} times by {hold.service or hold.reason}: {hold.detail}",
                now, run_labels(row.pipeline, row.run_date, row.mode, row.phase,
                                service=hold.service, batch_id=row.batch_id),
            )

    def _end(self, row: PlanRow, token: str, now: datetime, state: str, why: str | None, *,
             step: int | None = None) -> None:
        changes: dict[str, Any] = {"state": state, "claim": None, "finished_at": now,
                                   "last_error": why}
        if step is not None:
            changes["step"] = step
        audit = [] if state == "done" else [self._audit(
            row, now, row.steps[min(step or row.step, len(row.steps) - 1)], "not_taken",
            kind="decision", reason="budget" if state == "blocked" else "config",
            detail={"why": why})]
        self.ctx.store.update_plan(row.id, changes, audit, claim=token)

    def _budget_alert(self, row: PlanRow, why: str, now: datetime) -> None:
        self.ctx.notifier.fire(
            "action_budget_exhausted", "warning",
            f"automated recovery of {row.phase} in {row.pipeline} {row.run_date} stopped: {why}",
            now, {"pipeline": row.pipeline, "phase": row.phase},
        )

    def _recovered(self, row: PlanRow, phase: PhaseConfig, executed: list[str],
                   now: datetime) -> None:
        ctx = self.ctx
        labels = run_labels(row.pipeline, row.run_date, row.mode, row.phase,
                            batch_id=row.batch_id, processor=row.processor)
        ctx.notifier.resolve("recovery_deferred", run_labels(
            row.pipeline, row.run_date, row.mode, row.phase, service=blocked_service(row.blocked_by),
            batch_id=row.batch_id), now)
        if not executed:
            return
        what = "stalled batch" if row.batch_id else "stalled work"
        ctx.notifier.notice(
            "stalled_recovered",
            f"{what} auto-recovered: {_subject(row)} in {row.phase} of {row.pipeline} "
            f"{row.run_date} ({row.rule}: {', '.join(executed)})",
            now, labels,
        )
        if row.manual:
            return
        count = ctx.store.finished_plans_since(row.pipeline, row.phase, now - timedelta(days=1))
        if count >= ctx.acfg.budget.recurring_per_day:
            ctx.notifier.fire(
                "recovery_recurring", "warning",
                f"{row.phase} of {row.pipeline} needed {count} automated recoveries in 24 h",
                now, {"pipeline": row.pipeline, "phase": row.phase},
            )


def _subject(row: PlanRow) -> str:
    if row.batch_id:
        return f"batch {row.batch_id}"
    if row.processor:
        return f"processor {row.processor}"
    return row.subject
