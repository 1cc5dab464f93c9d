"""The actuator: decides transitions on events and ticks, and drives delivery and recovery.

On each accepted event (a collector listener, after commit) it folds the event into the
guards and, when the event completes upstream work, evaluates the transition policy of the
phases that follow. A due phase gets a *pending* trigger row in the deciding transaction,
then delivery runs: inline on simulated time (replay, tests: deterministic order), or on
real time on the sender thread (first attempts: monitor.actuator.sender) or a dispatch
worker (retries, deferred triggers, recovery): the ingest path never waits for a sink nor
writes an attempt's outcome. Each tick re-evaluates time-based rules (tiers, backstops),
delivers due retries, verifies effects, raises overdue / stuck alerts and recovers stalled
work.
"""

from __future__ import annotations

import logging
import random
import threading
from collections import Counter
from collections.abc import Callable, Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from datetime import datetime, timedelta
from typing import TYPE_CHECKING, Any

from monitor import horizon
from monitor.actuator.audit import report_items
from monitor.actuator.context import Context, Timeouts
from monitor.actuator.delivery import Delivery
from monitor.actuator.gates.base import CheckSource, HealthProbe
from monitor.actuator.guards import GUARDED, Guards
from monitor.actuator.health import HealthMonitor
from monitor.actuator.notify import Notifier, run_labels
from monitor.actuator.playbooks import install_playbooks
from monitor.actuator.policy import (
    RECURRING_WITHIN,
    Verdict,
    due_backstop,
    evaluate,
    same_gap,
    taken_over,
)
from monitor.actuator.recovery import Recovery
from monitor.actuator.sender import Sender
from monitor.actuator.sinks.base import TriggerSink
from monitor.actuator.stalled import Stalled
from monitor.actuator.store import ActuatorStore, AuditEntry, TriggerRow
from monitor.actuator.verification import Verifier, Watcher
from monitor.actuator.watches import install_watches
from monitor.clock import SystemClock
from monitor.config import PhaseConfig, PipelineConfig
from monitor.interest import EventKey, Interest, key_of
from monitor.tracker import DONE, RunKey, RunState, Update

if TYPE_CHECKING:
    from monitor.host import Host

log = logging.getLogger(__name__)

STALE_CLAIM = timedelta(minutes=10)
DISPATCH_WORKERS = 2
NOTE_BUFFER = 500
PRUNE_EVERY = timedelta(hours=1)
DecisionKey = tuple[str, str, str, str]  # (pipeline, run_date, mode, phase)


class Actuator:
    """Transition decisions, trigger delivery, verification and recovery on one host."""

    def __init__(
        self, host: Host, *, probe: HealthProbe, sinks: Mapping[str, TriggerSink],
        checks: CheckSource, timeouts: Timeouts | None = None,
        background: bool | None = None, seed: int | None = None,
    ) -> None:
        self.host = host
        self.config = host.config
        self.clock = host.clock
        store = ActuatorStore(host.store, self._count_audit,  # type: ignore[arg-type]
                              instance=host.store.instance)
        store.migrate()
        notifier = Notifier(host.router)
        self.background = isinstance(host.clock, SystemClock) if background is None else background
        if seed is None and not self.background:
            seed = 0  # simulated time: the same replay gives the same report
        health = HealthMonitor(host.config, probe, store, host.metrics, notifier, self._on_recovered)
        self.ctx = Context(
            host.config, host.clock, store, notifier, host.metrics, host.tracker, health,
            checks, Guards(host.config, store, notifier, host.tracker),
            dict(sinks), random.Random(seed), timeouts, self._submit,
        )
        self._probe = probe
        self.delivery = Delivery(self.ctx)
        self.recovery = Recovery(self.ctx)
        self.verifier = Verifier(self.ctx)
        self.watcher = Watcher(self.ctx, self.verifier)
        self.stalled = Stalled(self.ctx)
        self._targets: dict[tuple[str, str], list[PhaseConfig]] = {}
        for pipeline in host.config.pipelines:
            for phase in pipeline.phases:
                if phase.triggers:
                    for up in pipeline.upstream_of(phase.id):
                        self._targets.setdefault((pipeline.id, up), []).append(phase)
        self._interest: Interest[str] = Interest(("guards", "rules"), self._wants)
        since = (host.clock.now() - timedelta(days=30)).date().isoformat()
        self._decided: set[DecisionKey] = {
            (r.pipeline, r.run_date, r.mode, r.phase) for r in store.triggers(since_run_date=since)
        }
        self._noted: set[tuple[DecisionKey, str]] = set()
        self._notes: list[AuditEntry] = []
        self._pruned_at: datetime | None = None
        self._lock = threading.Lock()
        self._tick_lock = threading.Lock()
        self._pool: ThreadPoolExecutor | None = None
        self._queued = 0
        self._idle = threading.Condition()
        self._sender = Sender(self.delivery, self.clock.now, self._done_one)
        self._relearn_starts()
        released = store.release_orphans(host.cluster.alive)
        if released:
            log.warning("event=actuator.resumed deliveries=%d (interrupted by a stop)", released)
        if self.background:
            now = self.clock.now()
            for trigger_id in store.due_triggers(now):
                self._submit("trigger", trigger_id)
            for plan_id in store.due_plans(now):
                self._submit("plan", plan_id)

    @property
    def store(self) -> ActuatorStore:
        return self.ctx.store

    def take_lead(self, judged: int) -> None:
        """This process starts leading a shared store: the guards take up what the last
        leader kept in the store, and the start windows the starts judged up to position
        ``judged`` (the store's judged mark; this process judges the ones after it)."""
        self.ctx.guards.load()
        self._relearn_starts(judged)

    def _relearn_starts(self, until: int | None = None) -> None:
        """After a restart: the retry-storm windows take up the starts stored within the
        last window that the live path would have counted (not imported history, inside
        the actionable horizon), so a storm straddling the restart is told when it would
        have been without it. Up to position ``until`` (default: the start-up replay's)."""
        now = self.clock.now()
        store = self.host.store
        since = now - timedelta(minutes=self.config.actuator.guards.retry_storm_window_min)
        outside = horizon.Horizon(self.config, now)
        starts = []
        for stored in store.received_since(since, until=self.host.replayed if until is None else until):
            event = stored.event
            if (stored.backfill or event.status != "started" or event.processor is None
                    or event.mode is None or "guards" not in self._interest[key_of(event)]
                    or outside(event, event.mode) is not None):
                continue
            key = (event.pipeline, event.run_date.isoformat(), event.mode, event.phase,
                   event.processor)
            starts.append((key, event.timestamp))
        self.ctx.guards.relearn(starts)

    # --- events ----------------------------------------------------------------------

    def on_update(self, update: Update) -> None:
        """Collector listener for one update (``on_updates``)."""
        self.on_updates((update,))

    def on_updates(self, updates: Sequence[Update]) -> None:
        """Collector listener, a stored batch: for each event in turn, the guards, then the
        transitions it may have made due. Only the events either can use reach them (an
        index by pipeline, phase, processor and status: ``monitor.interest``).

        Imported history (``update.backfill``) is never acted on; an event outside the
        actionable horizon (an old run date, or an old event) is audited as not taken.
        """
        now = self.clock.now()
        outside = horizon.Horizon(self.config, now)
        interest = self._interest
        observe = self.ctx.guards.observe
        last: RunState | None = None
        run_key: RunKey = ("", "", "")
        run_outside: str | None = None
        told: set[str] = set()
        why: str | None
        for update in updates:
            if update.backfill:
                continue
            event = update.event
            parts = interest[update.key]
            if not parts:
                continue
            run = update.run
            if run is not last:  # a batch brings a run's events together: its bounds once
                last, run_key = run, run.key
                run_outside = outside.run(run.pipeline, run.run_date, run.mode)
                told = set()
            if run_outside is not None:
                # A run outside the horizon: its events only say so, once per run and phase
                # to trigger. After an upstream phase's first event has, its others (most of
                # the run's events, in a batch spanning days) have nothing left to note.
                if "rules" not in parts or event.phase in told:
                    continue
                told.add(event.phase)
                why = run_outside
            else:
                why = outside.stale(event)
                if why is None and "guards" in parts:
                    observe(update)
                if "rules" not in parts:
                    continue
            targets = self._targets[(event.pipeline, event.phase)]
            if why is None:
                pipeline = self.config.pipeline_map[event.pipeline]
                for phase in targets:
                    self.consider(pipeline, phase, run, now, source="event", inside=True)
                continue
            for phase in targets:
                key: DecisionKey = (*run_key, phase.id)
                if (key, "outside_horizon") not in self._noted:  # once per run and phase
                    self._note(key, "outside_horizon", now, why, {"event_id": event.event_id},
                               reason="outside_horizon")

    def _wants(self, part: str, key: EventKey) -> bool:
        """Whether the guards (``Guards.observe``) or the transition rules can use events
        of ``key``: the guards a processor's start or end, the rules an upstream phase's
        work done."""
        pipeline, phase, processor, status = key
        if part == "guards":
            return processor is not None and status in GUARDED
        return status in DONE and bool(self._targets.get((pipeline, phase)))

    def consider(self, pipeline: PipelineConfig, phase: PhaseConfig, run: RunState,
                 now: datetime, *, source: str = "tick", inside: bool = False) -> int | None:
        """Decide whether to trigger ``phase`` in ``run``; returns the new trigger's id.
        ``inside``: the caller found the run inside the horizon at ``now`` already."""
        key: DecisionKey = (*run.key, phase.id)
        if key in self._decided:
            return None
        policy = phase.policy
        if policy.modes is not None and run.mode not in policy.modes:
            return None
        outside = None if inside else horizon.outside_run_dates(pipeline, run.run_date, run.mode,
                                                                 now)
        if outside is not None:
            self._note(key, "outside_horizon", now, outside, reason="outside_horizon")
            return None
        if taken_over(run.phases[phase.id]):
            self._note(key, "already_started", now, "the phase started without phasewatch")
            return None
        verdict = evaluate(pipeline, phase, run, now)
        reason, rule = verdict.reason, verdict.rule
        # A backstop sends whatever exists upstream, but not nothing: with no upstream
        # completion at all, the stuck and overdue alerts say what is wrong instead.
        backstop = None if verdict.due or verdict.first_completion is None else due_backstop(
            pipeline, phase, run, now)
        if backstop is not None:
            reason, rule = "backstop", f"backstop {backstop.mode} {backstop.at}"
        elif not verdict.due:
            self._note(key, f"waiting:{len(verdict.done)}", now, "not due by any rule",
                       verdict.detail(), reason="waiting")
            return None
        elif policy.trigger_when == "overdue":
            since = self.watcher.due_since(run.key, phase.id)
            if source != "tick" or since is None or now - since < self.verifier.start_within(phase):
                return None
            reason, rule = "retry", "overdue_backup"
        if not self.config.actuator.enabled:
            self._note(key, "kill_switch", now, "actuator.enabled is false (kill switch)",
                       verdict.detail(), reason="kill_switch")
            return None
        assert reason is not None
        detail = {**verdict.detail(), "rule": rule, "source": source}
        audit = AuditEntry(now, "decision", "trigger", "taken", *key, reason=reason, detail=detail)
        token = self.store.new_claim()
        row = self.store.decide(run.key, phase.id, reason=reason, rule=rule, now=now,
                                detail=detail, audit=[*self.take_notes(), audit], claim=token)
        with self._lock:
            self._decided.add(key)
        if row is None:
            return None  # another event or instance decided first: its row is the one
        log.info("event=trigger.decided pipeline=%s run_date=%s mode=%s phase=%s reason=%s rule=%s",
                 *key, reason, rule)
        self._announce(key, reason, rule, verdict, now, row)
        self._dispatch_first(row, token)
        return row.id

    def _announce(self, key: DecisionKey, reason: str, rule: str | None, verdict: Verdict,
                  now: datetime, row: TriggerRow) -> None:
        labels = run_labels(*key)
        missing = list(verdict.missing)
        if (reason == "backstop" or verdict.degraded) and self._recurring(row, reason, missing, now):
            log.info("event=trigger.degraded_again pipeline=%s run_date=%s mode=%s phase=%s "
                     "missing=%s", *key, ",".join(missing))
            return
        if reason == "backstop":  # an action taken, like a degraded trigger: told once
            self.ctx.notifier.notice(
                "backstop_trigger",
                f"backstop: {key[3]} of {key[0]} {key[1]} ({key[2]}) triggered at {rule} with "
                f"{len(verdict.done)}/{verdict.expected} done; missing {missing}", now, labels,
            )
        elif verdict.degraded:
            self.ctx.notifier.notice(
                "degraded_trigger",
                f"degraded trigger: {key[3]} of {key[0]} {key[1]} ({key[2]}) by {reason} ({rule}) "
                f"with {len(verdict.done)}/{verdict.expected} done; missing {missing}", now, labels,
            )

    def _recurring(self, row: TriggerRow, reason: str, missing: list[str], now: datetime) -> bool:
        """Whether the trigger decided before it in this mode went the same way (a backstop,
        or degraded) missing the same processors: a known gap (a processor that never
        reports in a mode, a month backfilled) is one notice when it begins, not one a run."""
        before = self.store.previous_trigger(row, now - RECURRING_WITHIN)
        if before is None or before.manual or before.reason == "all_complete":
            return False
        return (before.reason == "backstop") == (reason == "backstop") and same_gap(
            missing, before.detail.get("missing"))

    def _note(self, key: DecisionKey, what: str, now: datetime, why: str,
              detail: dict[str, object] | None = None, reason: str | None = None) -> None:
        """Audit a decision considered and not taken, once per run, phase and cause."""
        if (key, what) in self._noted:  # most calls repeat a note (per event): no lock
            return
        with self._lock:
            if (key, what) in self._noted:
                return
            self._noted.add((key, what))
            # Buffered: written with the next decision or tick, not one transaction each on
            # the ingest path (a lost note on a crash is a lost "considered, not taken").
            self._notes.append(AuditEntry(now, "decision", "trigger", "not_taken", *key,
                                          reason=reason or what,
                                          detail={"why": why, **(detail or {})}))
            full = len(self._notes) >= NOTE_BUFFER
        if full:
            self.flush_notes()

    def take_notes(self) -> list[AuditEntry]:
        with self._lock:
            notes, self._notes = self._notes, []
        return notes

    def flush_notes(self) -> None:
        """Write the buffered not-taken decisions to the audit log."""
        notes = self.take_notes()
        if notes:
            self.store.audit(notes)

    # --- periodic work ---------------------------------------------------------------

    def health_job(self, now: datetime) -> None:
        """The ``actuator-health`` job: probe every service once per interval."""
        self.ctx.health.probe_due(now)

    def tick(self, now: datetime) -> None:
        """The ``actuator`` job: rules on time, due deliveries, verification, stalled work."""
        with self._tick_lock:
            self.flush_notes()
            self._prune(now)
            self.store.release_claims(older_than=now - STALE_CLAIM)
            self.store.release_orphans(self.host.cluster.alive)
            self.ctx.notifier.expire(now)
            self.watcher.check(now, self._decided)
            for run in self.ctx.recent_runs(now):
                pipeline = self.config.pipeline_map.get(run.pipeline)
                if pipeline is None:
                    continue
                for phase in pipeline.phases:
                    if phase.triggers:
                        self.consider(pipeline, phase, run, now)
            for trigger_id in self.store.due_triggers(now):
                self.delivery.deliver(trigger_id, now)
            for trigger_id in self.verifier.check(now):
                self.delivery.deliver(trigger_id, now)
            self.stalled.check(now)
            for plan_id in self.store.due_plans(now):
                self.recovery.run(plan_id, now)

    def _prune(self, now: datetime) -> None:
        """Forget in-memory marks of runs the tracker no longer holds (hourly)."""
        if self._pruned_at is not None and now - self._pruned_at < PRUNE_EVERY:
            return
        self._pruned_at = now
        tracked = {run.key for run in self.ctx.tracker}
        with self._lock:
            self._decided = {k for k in self._decided if k[:3] in tracked}
            self._noted = {n for n in self._noted if n[0][:3] in tracked}
        self.ctx.guards.prune(tracked)
        self.watcher.prune(tracked)

    def _on_recovered(self, service: str, now: datetime) -> None:
        """A service passes again: what waited on it goes now; its phases' guards clear."""
        triggers, plans = self.store.wake(f"health:{service}", now)
        for pipeline in self.config.pipelines:
            for phase in pipeline.phases:
                if service in phase.services:
                    self.ctx.guards.clear_phase(pipeline.id, phase.id, now,
                                                f"{service} is healthy again", holds=False)
        if self.background:
            for trigger_id in triggers:
                self._submit("trigger", trigger_id)
            for plan_id in plans:
                self._submit("plan", plan_id)

    # --- dispatch --------------------------------------------------------------------

    def _submit(self, kind: str, row_id: int) -> None:
        self._dispatch(lambda: self._run(kind, row_id))

    def _dispatch(self, work: Callable[[], object]) -> None:
        """Run ``work`` now (simulated time) or on a dispatch worker (real time)."""
        if not self.background:
            work()
            return
        with self._lock:
            if self._pool is None:
                # A few workers: one slow target (a 30 s timeout) must not hold the others.
                self._pool = ThreadPoolExecutor(DISPATCH_WORKERS, "actuator-dispatch")
            pool = self._pool
        with self._idle:
            self._queued += 1
        pool.submit(self._work, work)

    def _dispatch_first(self, row: TriggerRow, token: str) -> None:
        """A new trigger's first attempt: on the sender thread when the gates answer from
        memory (real time), else like any other delivery.

        The sender sends it as soon as it has the row, and its recorder writes the outcome
        with the others that answered meanwhile: in a burst of completions the ingest
        thread writes one transaction per trigger, the decision, and no send waits behind
        it. A gate that must probe would block the sender's loop for up to the probe's
        timeout: such a row goes to a dispatch worker.
        """
        if self.background and self.delivery.answers_now(row, self.clock.now()):
            with self._idle:
                self._queued += 1
            if self._sender.submit(row, token):
                return
            self._done_one()  # the sender is closed: a worker sends it
        self._dispatch(lambda: self.delivery.deliver_claimed(row, token, self.clock.now()))

    def _done_one(self) -> None:
        with self._idle:
            self._queued -= 1
            self._idle.notify_all()

    def _run(self, kind: str, row_id: int) -> None:
        now = self.clock.now()
        if kind == "trigger":
            self.delivery.deliver(row_id, now)
        else:
            self.recovery.run(row_id, now)

    def _work(self, work: Callable[[], object]) -> None:
        try:
            work()
        except Exception:
            log.exception("event=actuator.dispatch_failed")
        finally:
            self._done_one()

    def wait_idle(self, timeout_s: float) -> bool:
        """Block until every submitted delivery ran (background mode); False on timeout."""
        with self._idle:
            return self._idle.wait_for(lambda: self._queued == 0, timeout_s)

    # --- for the service and other components ----------------------------------------

    def submit(self, kind: str, row_id: int) -> None:
        """Deliver a trigger (``"trigger"``) or run a recovery plan (``"plan"``) now or soon."""
        self._submit(kind, row_id)

    def _count_audit(self, entries: Sequence[AuditEntry]) -> None:
        """The actions metric: one increment per distinct label set of a write, not per line
        (a decision writes the notes buffered since the last one with it)."""
        counts = Counter((e.pipeline or "", e.phase or "", e.kind, e.action, e.outcome)
                         for e in entries)
        actions = self.host.metrics.actions
        for labels, count in counts.items():
            actions.labels(*labels).inc(count)

    def set_timeouts(self, timeouts: Timeouts | None) -> None:
        """Connect adaptive timeouts: ``(pipeline, phase, processor | None, mode) -> seconds | None``."""
        self.ctx.timeouts = timeouts

    def mark_decided(self, run: tuple[str, str, str], phase: str) -> None:
        with self._lock:
            self._decided.add((*run, phase))

    def report(self, kind: str) -> list[dict[str, Any]]:
        """A replay report list: ``triggers``, ``deferrals`` or ``recoveries``."""
        self.flush_notes()
        return report_items(self.store, kind)

    def close(self) -> None:
        """Let the sender (10 s at most) and the dispatch workers finish, then release
        sinks and the probe."""
        self._sender.close()
        with self._lock:
            pool, self._pool = self._pool, None
        if pool is not None:
            pool.shutdown(wait=True)
        self.flush_notes()
        self.ctx.health.close()
        for sink in self.ctx.sinks.values():
            try:
                sink.close()
            except Exception:
                log.warning("event=sink.close_failed", exc_info=True)
        close = getattr(self._probe, "close", None)
        if callable(close):
            close()


def install(
    host: Host, *, probe: HealthProbe, sinks: Mapping[str, TriggerSink], checks: CheckSource,
    timeouts: Timeouts | None = None, background: bool | None = None, seed: int | None = None,
) -> Actuator:
    """Build the actuator on ``host`` and wire it: listener, jobs, report sections."""
    actuator = Actuator(host, probe=probe, sinks=sinks, timeouts=timeouts, checks=checks,
                        background=background, seed=seed)
    host.add_listener(actuator.on_updates)
    host.add_job("actuator-health", actuator.health_job)
    host.add_job("actuator", actuator.tick)
    for name in ("triggers", "deferrals", "recoveries"):
        host.add_report_section(name, lambda name=name: actuator.report(name))  # type: ignore[misc]
    watches = install_watches(host, actuator)  # data watches and cascade re-runs (watches.py)
    install_playbooks(host, actuator, watches)  # remediation playbooks (playbooks/)
    return actuator
