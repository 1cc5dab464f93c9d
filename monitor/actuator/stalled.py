"""Stalled work: batches whose progress stopped, processors running past their timeout.

Batch rules come from the phase's recovery config (the defaults below alert without
acting): at least / at most a fraction done, idle for a while, older than a limit (a batch
superseded by a newer batch of the same processor and run that finished is not judged: its
stall, if alerted, resolves). A
processor is stalled when it runs past its adaptive timeout (the static one until there
is history), or when its ``progress`` heartbeats stop. A match raises one alert and, when
the phase configures actions for it, creates a recovery plan (once per subject and rule,
and not within the cooldown of the previous plan for the same subject).
"""

from __future__ import annotations

import logging
from dataclasses import replace
from datetime import datetime, timedelta
from typing import Any

from monitor.actuator.alert_context import describe
from monitor.actuator.config import BatchStallRule
from monitor.actuator.context import Context
from monitor.actuator.notify import run_labels
from monitor.actuator.store import AuditEntry
from monitor.config import PhaseConfig, PipelineConfig
from monitor.tracker import BatchProgress, PhaseRun, RunState

log = logging.getLogger(__name__)

DEFAULT_BATCH_RULES = (
    BatchStallRule(name="near_complete", min_fraction=0.95, idle_min=10),
    BatchStallRule(name="too_old", older_than_min=30, idle_min=5),
    BatchStallRule(name="no_progress", max_fraction=0.0, idle_min=15),
)


def batch_fraction(batch: BatchProgress) -> float | None:
    if not batch.total:
        return None
    return (batch.done or 0) / batch.total


def batch_open(batch: BatchProgress) -> bool:
    return not batch.finished and not (
        batch.total is not None and batch.done is not None and batch.done >= batch.total
    )


def superseded(batch: BatchProgress, batches: list[BatchProgress]) -> bool:
    """A newer batch of the same processor in the same run finished: the run's work was
    done again (after a /reset and /start, say), so this one no longer holds anything up."""
    return any(other.finished and other.processor == batch.processor
               and other.first_seen > batch.first_seen for other in batches)


def matching_rule(rules: tuple[BatchStallRule, ...], batch: BatchProgress,
                  now: datetime) -> BatchStallRule | None:
    """The first rule whose every bound holds for an open batch."""
    fraction = batch_fraction(batch)
    idle = now - batch.last_progress_at
    age = now - batch.first_seen
    for rule in rules:
        if rule.min_fraction is not None and (fraction is None or fraction < rule.min_fraction):
            continue
        if rule.max_fraction is not None and (fraction is None or fraction > rule.max_fraction):
            continue
        if rule.idle_min is not None and idle < timedelta(minutes=rule.idle_min):
            continue
        if rule.older_than_min is not None and age < timedelta(minutes=rule.older_than_min):
            continue
        return rule
    return None


class Stalled:
    """Finds stalled work on each tick; alerts once and plans recoveries."""

    def __init__(self, ctx: Context) -> None:
        self.ctx = ctx
        self._alerted: dict[str, tuple[str, dict[str, str | None]]] = {}
        self._noted: set[str] = set()

    def check(self, now: datetime) -> list[int]:
        """Scan recent runs; returns the ids of recovery plans created."""
        created: list[int] = []
        seen: set[str] = set()
        for run in self.ctx.recent_runs(now):
            pipeline = self.ctx.pipeline(run.pipeline)
            if pipeline is None:
                continue
            for phase in pipeline.phases:
                phase_run = run.phases[phase.id]
                created += self._batches(pipeline, phase, run, phase_run, now, seen)
                created += self._processors(pipeline, phase, run, phase_run, now, seen)
        for key in [k for k in self._alerted if k not in seen]:
            kind, labels = self._alerted.pop(key)
            self.ctx.notifier.resolve(kind, labels, now)
        return created

    def _batches(self, pipeline: PipelineConfig, phase: PhaseConfig, run: RunState,
                 phase_run: PhaseRun, now: datetime, seen: set[str]) -> list[int]:
        recovery = phase.policy.recovery
        rules = recovery.batches if recovery and recovery.batches else DEFAULT_BATCH_RULES
        created: list[int] = []
        batches = list(phase_run.batches.values())
        for batch in batches:
            if not batch_open(batch) or superseded(batch, batches):
                continue
            rule = matching_rule(rules, batch, now)
            if rule is None:
                continue
            fraction = batch_fraction(batch)
            done = f"{fraction:.0%} ({batch.done or 0}/{batch.total})" if fraction is not None else "?"
            idle = (now - batch.last_progress_at).total_seconds() / 60
            age = (now - batch.first_seen).total_seconds() / 60
            labels = run_labels(run.pipeline, run.run_date.isoformat(), run.mode, phase.id,
                                batch_id=batch.batch_id)
            key = f"batch:{run.key}:{phase.id}:{batch.batch_id}"
            seen.add(key)
            if key not in self._alerted:
                self._alerted[key] = ("batch_stalled", labels)
                self.ctx.notifier.fire(
                    "batch_stalled", "warning",
                    f"stalled batch {batch.batch_id} in {phase.id} of {run.pipeline} "
                    f"{run.run_date} ({run.mode}): {done} done, no progress for {idle:.0f} min, "
                    f"{age:.0f} min old (rule {rule.name})",
                    now, labels,
                )
            if rule.actions:
                plan = self._plan(run, phase, f"batch:{batch.batch_id}", rule.name, rule.actions,
                                  now, batch.updated_at, batch_id=batch.batch_id,
                                  detail={"fraction": fraction, "idle_min": round(idle, 1),
                                          "age_min": round(age, 1)})
                if plan is not None:
                    created.append(plan)
        return created

    def _processors(self, pipeline: PipelineConfig, phase: PhaseConfig, run: RunState,
                    phase_run: PhaseRun, now: datetime, seen: set[str]) -> list[int]:
        ctx = self.ctx
        batch_owners = {b.processor for b in list(phase_run.batches.values()) if batch_open(b)}
        recovery = phase.policy.recovery
        created: list[int] = []
        for name, proc in list(phase_run.processors.items()):
            if name in batch_owners:
                continue
            static = ctx.acfg.stalled.processor_timeout_min * 60
            timeout = ctx.timeout_s(run.pipeline, phase.id, name, run.mode, static)
            if proc.open_invocations:
                self._hung(run, phase, name, list(proc.open_invocations.items()), timeout, now,
                           seen)
            if proc.status != "running" or proc.started_at is None:
                continue
            running = (now - proc.started_at).total_seconds()
            dead = timedelta(minutes=ctx.acfg.stalled.heartbeat_dead_min)
            why: str | None = None
            # With invocation ids, a start past its timeout is a hung invocation (above).
            if running >= timeout and not proc.invocations:
                why = f"running {running / 60:.0f} min, past its timeout of {timeout / 60:.0f} min"
            elif proc.last_heartbeat is not None and proc.last_heartbeat > proc.started_at and (
                now - proc.last_heartbeat >= dead
            ):
                why = f"no heartbeat for {(now - proc.last_heartbeat).total_seconds() / 60:.0f} min"
            if why is None:
                continue
            key = f"proc:{run.key}:{phase.id}:{name}"
            seen.add(key)
            labels = run_labels(run.pipeline, run.run_date.isoformat(), run.mode, phase.id,
                                processor=name)
            if key not in self._alerted:
                self._alerted[key] = ("processor_stalled", labels)
                ctx.notifier.fire(
                    "processor_stalled", "warning",
                    f"stalled processor {name} in {phase.id} of {run.pipeline} {run.run_date} "
                    f"({run.mode}): {why}", now, labels,
                    details=describe(ctx, run.pipeline, run.key, (phase.id,), name),
                )
            if recovery is not None and recovery.stalled_processors:
                activity = max(t for t in (proc.started_at, proc.last_heartbeat) if t is not None)
                plan = self._plan(run, phase, f"processor:{name}", "stalled_processor",
                                  recovery.stalled_processors, now, activity, processor=name,
                                  detail={"why": why})
                if plan is not None:
                    created.append(plan)
        return created

    def _hung(self, run: RunState, phase: PhaseConfig, name: str,
              open_invocations: list[tuple[str, datetime]], timeout: float, now: datetime,
              seen: set[str]) -> None:
        """One alert per processor and run for its invocations started past the timeout."""
        hung = [(inv, at) for inv, at in open_invocations
                if (now - at).total_seconds() >= timeout]
        if not hung:
            return
        key = f"hung:{run.key}:{phase.id}:{name}"
        seen.add(key)
        if key in self._alerted:
            return
        labels = run_labels(run.pipeline, run.run_date.isoformat(), run.mode, phase.id,
                            processor=name)
        self._alerted[key] = ("invocations_hung", labels)
        shown = ", ".join(inv for inv, _ in hung[:10]) + (" ..." if len(hung) > 10 else "")
        oldest = min(at for _, at in hung)
        self.ctx.notifier.fire(
            "invocations_hung", "warning",
            f"{len(hung)} invocation{'s' if len(hung) != 1 else ''} of {name} in {phase.id} of "
            f"{run.pipeline} {run.run_date} ({run.mode}) started and never finished, past the timeout of "
            f"{timeout / 60:.0f} min (the oldest {(now - oldest).total_seconds() / 60:.0f} min "
            f"ago): {shown}", now, labels,
            details="\n".join([describe(self.ctx, run.pipeline, run.key, (phase.id,), name),
                               "hung invocations: " + ", ".join(inv for inv, _ in hung)]).strip(),
        )

    def _plan(self, run: RunState, phase: PhaseConfig, subject: str, rule: str,
              steps: tuple[str, ...], now: datetime, activity: datetime, *,
              batch_id: str | None = None, processor: str | None = None,
              detail: dict[str, object]) -> int | None:
        ctx = self.ctx
        note = f"{run.key}:{phase.id}:{subject}:{rule}"
        base = AuditEntry(now, "decision", "recovery", "not_taken", run.pipeline,
                          run.run_date.isoformat(), run.mode, phase.id, processor, batch_id,
                          detail={"rule": rule, "steps": list(steps), **detail})
        if not ctx.acfg.enabled:
            if note not in self._noted:
                self._noted.add(note)
                ctx.store.audit([_with(base, reason="kill_switch")])
            return None
        last = ctx.store.last_plan_at(run.key, phase.id, subject)
        if last is not None and last >= activity:
            # Recovered once and silent since: another rule would only repeat the actions
            # on a subject that has not reported; its stall alert stays up instead.
            if note not in self._noted:
                self._noted.add(note)
                ctx.store.audit([_with(base, reason="no_activity_since_recovery")])
            return None
        if last is not None and now - last < timedelta(minutes=ctx.acfg.budget.cooldown_min):
            if note not in self._noted:
                self._noted.add(note)
                ctx.store.audit([_with(base, reason="cooldown")])
            return None
        plan = ctx.store.create_plan(
            run.key, phase.id, subject=subject, rule=rule, steps=steps, now=now,
            batch_id=batch_id, processor=processor,
            audit=[_with(base, outcome="taken", reason=rule)],
        )
        if plan is None:
            return None
        log.info("event=recovery.planned pipeline=%s run_date=%s phase=%s subject=%s rule=%s "
                 "steps=%s", run.pipeline, run.run_date, phase.id, subject, rule, ",".join(steps))
        return plan.id


def _with(entry: AuditEntry, **changes: Any) -> AuditEntry:
    return replace(entry, **changes)
