"""Watching the effect of transitions: triggers that changed nothing, phases that are late.

- effect verification: a succeeded trigger must be followed by activity of the triggered
  phase within T (``start_within_min``); otherwise "trigger had no effect", a bounded
  re-trigger (reason ``retry``), and a critical alert when the re-triggers are spent;
- "already running" answers: when the phase has not moved for the configured time, the
  phase's ``on_already_running`` recovery runs (e.g. ``/reset`` then ``/start``);
- phase overdue: due by the rules but not started within T, or started and not finished
  within its (adaptive) timeout, naming the missing processors;
- phase stuck: the upstream is incomplete, not due by any rule, and idle for
  ``stuck_after_min``.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from datetime import datetime, timedelta

from alerts.model import KNOWN_GAP
from monitor.actuator.alert_context import describe
from monitor.actuator.context import Context
from monitor.actuator.notify import run_labels
from monitor.actuator.policy import active_since, evaluate, phase_finished, phase_started
from monitor.actuator.store import AuditEntry, TriggerRow
from monitor.config import PhaseConfig, PipelineConfig
from monitor.tracker import RunState

log = logging.getLogger(__name__)

AlertSlot = tuple[tuple[str, str, str], str, str]  # (run key, phase, alert kind)
TRIGGER_ALERTS = ("trigger_no_effect", "trigger_undelivered", "trigger_deferred")
KNOWN_GAP_WITHIN = timedelta(days=7)


class Verifier:
    """Effect verification of succeeded triggers (run on every tick)."""

    def __init__(self, ctx: Context) -> None:
        self.ctx = ctx

    def start_within(self, phase: PhaseConfig) -> timedelta:
        minutes = phase.policy.start_within_min or self.ctx.acfg.verification.start_within_min
        return timedelta(minutes=minutes)

    def check(self, now: datetime) -> list[int]:
        """Verify every unverified succeeded trigger; returns the ids to deliver again."""
        self.settle(now)
        again: list[int] = []
        for row in self.ctx.store.unverified():
            if row.succeeded_at is not None and self._verify(row, now):
                again.append(row.id)
        return again

    def settle(self, now: datetime) -> None:
        """Resolve the trigger alerts whose phase has shown its effect since, by any path: an
        escalated "no effect", an undelivered or held trigger is over once the phase ran
        (a schedule, a person, another trigger), and the rows behind them are not watched
        any more."""
        notifier = self.ctx.notifier
        for kind in TRIGGER_ALERTS:
            for labels in notifier.active(kind):
                if not {"pipeline", "run_date", "mode", "phase"} <= labels.keys():
                    continue
                run = (labels["pipeline"], labels["run_date"], labels["mode"])
                row = self.ctx.store.find_trigger(run, labels["phase"])
                if row is not None and self.effect_seen(row):
                    notifier.resolve(kind, labels, now)

    def effect_seen(self, row: TriggerRow) -> bool:
        run = self.ctx.run(row.run)
        # A re-run (cascade, playbook): the phase ran before, only new activity counts.
        rerun = bool(row.detail.get("rerun")) or row.detail.get("cascade") is not None
        if not rerun and run is not None and phase_started(run.phases[row.phase]):
            return True
        since = row.decided_at
        for other in self.ctx.tracker.runs(pipeline=row.pipeline):
            if other.run_date.isoformat() == row.run_date and active_since(other.phases[row.phase], since):
                return True
        return False

    def _verify(self, row: TriggerRow, now: datetime) -> bool:
        ctx = self.ctx
        phase = ctx.phase(row.pipeline, row.phase)
        if phase is None or row.succeeded_at is None:
            return False
        labels = run_labels(row.pipeline, row.run_date, row.mode, row.phase)
        if self.effect_seen(row):
            audit = AuditEntry(now, "verification", "verify", "effect_seen", row.pipeline,
                               row.run_date, row.mode, row.phase, attempt=row.attempts,
                               detail={"triggered_at": row.succeeded_at.isoformat()})
            if ctx.store.update_trigger(row.id, {"verified_at": now}, [audit], state="succeeded"):
                ctx.notifier.resolve("trigger_no_effect", labels, now)
            return False
        waited = now - row.succeeded_at
        policy = phase.policy.recovery.on_already_running if phase.policy.recovery else None
        if row.outcome == "already_running" and policy is not None and waited >= timedelta(
            minutes=policy.idle_min
        ):
            self._already_running(row, policy.actions, now)
        if waited < self.start_within(phase):
            return False
        cfg = ctx.acfg.verification
        minutes = self.start_within(phase).total_seconds() / 60
        # A re-run (cascade.py) starts at a later generation of the row: count from there.
        retriggers = row.generation - int(row.detail.get("first_generation") or 0)
        if retriggers < cfg.max_retriggers:
            audit = AuditEntry(now, "verification", "retrigger", "no_effect", row.pipeline,
                               row.run_date, row.mode, row.phase, reason="retry",
                               attempt=row.attempts,
                               detail={"generation": row.generation + 1,
                                       "triggered_at": row.succeeded_at.isoformat()})
            changed = ctx.store.update_trigger(row.id, {
                "state": "pending", "generation": row.generation + 1, "send_reason": "retry",
                "idem_key": retrigger_key(row.idem_key, retriggers + 1),
                "next_attempt_at": now, "delivered": frozenset(), "outcome": None,
                "succeeded_at": None, "deferrals": 0, "deferred_since": None, "blocked_by": None,
            }, [audit], state="succeeded")
            if changed:
                ctx.metrics.phase_transitions.labels(row.pipeline, row.phase, "no_effect").inc()
                log.warning("event=trigger.no_effect pipeline=%s run_date=%s phase=%s generation=%d",
                            row.pipeline, row.run_date, row.phase, row.generation + 1)
                ctx.notifier.fire(
                    "trigger_no_effect", "warning",
                    f"trigger had no effect: {row.phase} of {row.pipeline} {row.run_date} "
                    f"({row.mode}) did not start within {minutes:g} min of its trigger; "
                    f"re-triggering ({retriggers + 1}/{cfg.max_retriggers})",
                    now, labels,
                )
            return changed
        audit = AuditEntry(now, "verification", "verify", "gave_up", row.pipeline, row.run_date,
                           row.mode, row.phase, attempt=row.attempts,
                           detail={"retriggers": retriggers})
        if ctx.store.update_trigger(row.id, {"state": "failed", "verified_at": now,
                                             "last_error": "no effect"}, [audit], state="succeeded"):
            ctx.metrics.phase_transitions.labels(row.pipeline, row.phase, "escalated").inc()
            ctx.notifier.fire(
                "trigger_no_effect", "critical",
                f"trigger had no effect: {row.phase} of {row.pipeline} {row.run_date} ({row.mode}) "
                f"has not started after {retriggers} re-trigger(s); automated retries stopped",
                now, labels,
            )
        return False

    def _already_running(self, row: TriggerRow, steps: tuple[str, ...], now: datetime) -> None:
        plan = self.ctx.store.create_plan(
            row.run, row.phase, subject="start", rule="already_running", steps=steps, now=now,
            audit=[AuditEntry(now, "decision", "recovery", "taken", row.pipeline, row.run_date,
                              row.mode, row.phase, reason="already_running",
                              detail={"steps": list(steps)})],
        )
        if plan is not None:
            self.ctx.submit("plan", plan.id)


class Watcher:
    """Phase overdue and phase stuck alerts (run on every tick)."""

    def __init__(self, ctx: Context, verifier: Verifier) -> None:
        self.ctx = ctx
        self.verifier = verifier
        self._due_since: dict[tuple[tuple[str, str, str], str], datetime] = {}
        self._firing: dict[AlertSlot, dict[str, str | None]] = {}

    def check(self, now: datetime, decided: set[tuple[str, str, str, str]]) -> None:
        seen: set[AlertSlot] = set()
        for run in self.ctx.recent_runs(now):
            pipeline = self.ctx.pipeline(run.pipeline)
            if pipeline is None:
                continue
            for phase in pipeline.phases:
                self._phase(pipeline, phase, run, now, decided, seen)
        for key in [k for k in self._firing if k not in seen]:
            self.ctx.notifier.resolve(key[2], self._firing.pop(key), now)

    def _fire(self, key: AlertSlot, seen: set[AlertSlot], labels: dict[str, str | None],
              severity: str, summary: str, now: datetime, phases: tuple[str, ...] = (),
              annotations: dict[str, str] | None = None) -> None:
        seen.add(key)
        if key not in self._firing:
            self._firing[key] = labels
            # The jobs' last word and the checks these phases depend on (alert_context.py).
            details = describe(self.ctx, key[0][0], key[0], phases or (key[1],))
            self.ctx.notifier.fire(key[2], "critical" if severity == "critical" else "warning",
                                   summary, now, labels, details=details, annotations=annotations)

    def _phase(self, pipeline: PipelineConfig, phase: PhaseConfig, run: RunState, now: datetime,
               decided: set[tuple[str, str, str, str]], seen: set[AlertSlot]) -> None:
        ctx = self.ctx
        if phase.policy.modes is not None and run.mode not in phase.policy.modes:
            return
        if ctx.guards.held(run.pipeline, phase.id, run.key) is not None:
            return  # a playbook holds it (quarantine, deferral) and said until when
        phase_run = run.phases[phase.id]
        rd = run.run_date.isoformat()
        where = f"{phase.id} of {run.pipeline} {rd} ({run.mode})"
        if phase_started(phase_run):
            self._due_since.pop((run.key, phase.id), None)
            if phase_finished(phase_run):
                return
            start = phase_run.first_start or phase_run.first_completion
            if start is None:
                return
            static = (phase.policy.finish_within_min or ctx.acfg.stalled.phase_timeout_min) * 60
            timeout = ctx.timeout_s(run.pipeline, phase.id, None, run.mode, static)
            running = (now - start).total_seconds()
            if running >= timeout and (run.key, phase.id, "phase_overdue") not in self._firing:
                # A re-run phasewatch sent (cascade, playbook) starts the clock again.
                row = ctx.store.find_trigger(run.key, phase.id)
                if row is not None and row.detail.get("rerun") and row.decided_at > start:
                    running = (now - row.decided_at).total_seconds()
            if running >= timeout:
                missing = phase_run.missing
                firing = (run.key, phase.id, "phase_overdue") in self._firing
                gap = None if firing else self._known_gap(run, phase.id, missing)
                self._fire((run.key, phase.id, "phase_overdue"), seen,
                           run_labels(run.pipeline, rd, run.mode, phase.id), "warning",
                           f"phase overdue: {where} running {running / 60:.0f} min, past its "
                           f"timeout of {timeout / 60:.0f} min; missing {missing or ['(phase-level)']}",
                           now, annotations={KNOWN_GAP: gap} if gap else None)
            return
        if not pipeline.upstream_of(phase.id):
            return
        if (*run.key, phase.id) in decided:
            # phasewatch triggered it: effect verification watches it from here on.
            if (run.key, phase.id, "phase_overdue") in self._firing:
                seen.add((run.key, phase.id, "phase_overdue"))
            return
        verdict = evaluate(pipeline, phase, run, now)
        if not verdict.due:
            self._due_since.pop((run.key, phase.id), None)
            if not any(run.phases[up].completed_at for up in verdict.upstream):
                self._stuck(pipeline, phase, run, verdict.missing, verdict.done,
                            verdict.last_completion, now, seen)
            return
        since = self._due_since.setdefault((run.key, phase.id), min(
            now, verdict.last_completion or now) if verdict.reason == "all_complete" else now)
        if now - since >= self.verifier.start_within(phase):
            expected = list(phase_run.expectation.expected) or ["(phase-level)"]
            ups = ", ".join(verdict.upstream)
            self._fire((run.key, phase.id, "phase_overdue"), seen,
                       run_labels(run.pipeline, rd, run.mode, phase.id), "warning",
                       f"phase overdue: {where} has not started "
                       f"{(now - since).total_seconds() / 60:.0f} min after {ups} was done "
                       f"({verdict.rule}); missing {expected}", now,
                       (*verdict.upstream, phase.id))

    def _known_gap(self, run: RunState, phase: str, missing: Sequence[str]) -> str | None:
        """Why this overdue phase is a gap already told: the run before it in its mode
        (within ``KNOWN_GAP_WITHIN``) left the phase unfinished missing the same processors
        (one that stopped reporting). Told when it begins, not each night; the
        expected-list drift alert names it a week on. None when it is news."""
        if not missing:
            return None
        before = next((r for r in self.ctx.tracker.runs(pipeline=run.pipeline)  # newest first
                       if r.mode == run.mode and r.run_date < run.run_date), None)
        if before is None or run.run_date - before.run_date > KNOWN_GAP_WITHIN:
            return None
        phase_run = before.phases.get(phase)
        if phase_run is None or phase_finished(phase_run) or sorted(phase_run.missing) != sorted(missing):
            return None
        return f"{phase} of {run.pipeline} {before.run_date.isoformat()} ({run.mode}) missed the same"

    def prune(self, tracked: set[tuple[str, str, str]]) -> None:
        """Forget due times of runs no longer tracked."""
        self._due_since = {k: v for k, v in self._due_since.items() if k[0] in tracked}

    def due_since(self, run: tuple[str, str, str], phase: str) -> datetime | None:
        return self._due_since.get((run, phase))

    def _stuck(self, pipeline: PipelineConfig, phase: PhaseConfig, run: RunState,
               missing: tuple[str, ...], done: tuple[str, ...], last: datetime | None,
               now: datetime, seen: set[AlertSlot]) -> None:
        minutes = phase.policy.stuck_after_min
        if minutes is None or last is None or not missing:
            return
        ups = pipeline.upstream_of(phase.id)
        if any(self.ctx.guards.held(run.pipeline, up, run.key) for up in ups):
            return  # a playbook holds the upstream (quarantine, deferral) and said until when
        firing = (run.key, phase.id, "phase_stuck") in self._firing
        if now - last >= timedelta(minutes=minutes) and not firing:
            # A re-run of the upstream phasewatch sent (cascade, playbook) starts the clock again.
            for up in ups:
                row = self.ctx.store.find_trigger(run.key, up)
                if row is not None and row.detail.get("rerun") and row.decided_at > last:
                    last = row.decided_at
        if now - last < timedelta(minutes=minutes):
            return
        joined = "+".join(ups)
        rd = run.run_date.isoformat()
        self._fire((run.key, phase.id, "phase_stuck"), seen,
                   run_labels(run.pipeline, rd, run.mode, joined, target=phase.id), "warning",
                   f"{joined}→{phase.id} stuck for {run.pipeline} {rd} ({run.mode}): "
                   f"{len(done)}/{len(done) + len(missing)} done, nothing new for "
                   f"{(now - last).total_seconds() / 60:.0f} min; missing {list(missing)}", now,
                   (*ups, phase.id), {"missing": ",".join(missing)})


def retrigger_key(key: str, n: int) -> str:
    """The idempotency key of the ``n``-th re-trigger of a trigger sent with ``key``: its own,
    since a target that honours the key answers a repeat from what it did the first time
    (nothing, here) without running anything; the same key again on a retry of that send."""
    base, sep, suffix = key.rpartition(":retrigger-")
    return f"{base if sep and suffix.isdigit() else key}:retrigger-{n}"
