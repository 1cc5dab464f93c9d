"""Guards: stop automated retries where they cannot help, and say so once.

- retry storm: more than N starts of one processor for one run within a window;
- deterministic failure: the same error signature K times in a row for a processor, named
  by its category (``signatures.classify``: "schema drift", "service crash signature
  (ImportError)"...) with the category's severity; the streaks are kept in the store;
- failing runs: K consecutive failed runs of a processor — each failed invocation is a run,
  in the order they arrive, across run dates and modes; a success or a skip ends the streak
  (a processor that fails twice a night is flagged on the second night, not days later).
  A success for an older run date than a run in which the processor still stands failed
  ends neither streak nor the phase's guard: a backfill of last week succeeding on last
  week's data says nothing about tonight's run failing on tonight's.

Both streaks count a failure once per attempt: a `failed` event of the invocation counted
last, with no `started` of the processor since, is the same failure reported again (a
publisher's retried publish, a redelivered completion message), not another attempt. A
failure that arrives after a later success of the same run (a backlog delivered out of
order) was over before it arrived: it counts in neither.

A tripped guard (kept in the store) blocks automated re-triggers and recoveries of the
phase (deterministic failure, any run) or of the run's phase (retry storm). It clears when
the processor succeeds, when a service of the phase passes its health probe again after
failing (a fix was deployed), or by a manual retry.

Playbooks hold a run's phase the same way (``hold``: kinds ``quarantine`` and
``deferred``, see ``monitor.actuator.playbooks``); such a hold is released by its playbook
(or a person's retry, or the processor's success), never by a health recovery alone.
"""

from __future__ import annotations

import logging
import re
import threading
from collections import deque
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from datetime import datetime, timedelta
from functools import lru_cache

from alerts.model import Severity
from monitor.actuator.config import GuardsConfig
from monitor.actuator.notify import Notifier
from monitor.actuator.signatures import StreakStore, classify
from monitor.actuator.store import ActuatorStore, AuditEntry
from monitor.config import Config
from monitor.events import Event
from monitor.tracker import RunTracker, Update

log = logging.getLogger(__name__)

_UUID = re.compile(r"\b[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}\b", re.I)
_HEX = re.compile(r"\b0x[0-9a-f]+\b|\b[0-9a-f]{16,}\b", re.I)
_NUMBER = re.compile(r"\d+(?:\.\d+)?")
_SPACE = re.compile(r"\s+")


def error_signature(error: str) -> str:
    """The error's first line with ids, addresses and numbers masked: same cause, same text."""
    return _signature(error)


# A failing processor sends the same message again and again (each retry, each night): the
# masks run once per distinct message.
@lru_cache(maxsize=256)
def _signature(error: str) -> str:
    lines = [line for line in error.strip().splitlines() if line.strip()]
    if not lines:
        return ""
    # A traceback's last line names the exception; a message's first line says what failed.
    line = lines[-1] if lines[0].startswith("Traceback") else lines[0]
    line = _UUID.sub("<id>", line)
    line = _HEX.sub("<hex>", line)
    line = _NUMBER.sub("<n>", line)
    return _SPACE.sub(" ", line).strip()[:200]


GUARDED = frozenset({"started", "failed", "succeeded", "skipped"})  # what observe() folds in
_WINDOWS_BEFORE_SWEEP = 4096  # start windows kept before stale ones are swept
HOLDS = frozenset({"quarantine", "deferred"})  # guards a playbook places and releases


@dataclass(frozen=True)
class Guard:
    """A tripped guard and what it blocks."""

    key: str
    kind: str  # retry_storm | deterministic_failure
    pipeline: str
    phase: str
    processor: str | None
    run_date: str | None
    mode: str | None
    detail: str

    def blocks(self, pipeline: str, phase: str, run: tuple[str, str, str] | None,
               processor: str | None = None) -> bool:
        if pipeline != self.pipeline or phase != self.phase:
            return False
        if processor is not None and self.processor is not None and processor != self.processor:
            return False
        if self.run_date is not None and run is not None:
            return (self.run_date, self.mode) == (run[1], run[2])
        return True


class Guards:
    """Watches events for storms and repeated failures; answers "is this blocked?"."""

    def __init__(self, config: Config, store: ActuatorStore, notifier: Notifier,
                 tracker: RunTracker) -> None:
        self.cfg: GuardsConfig = config.actuator.guards
        self.config = config
        self.store = store
        self.notifier = notifier
        self.tracker = tracker
        self._lock = threading.Lock()
        self._starts: dict[tuple[str, ...], deque[datetime]] = {}
        self._sweep_at = _WINDOWS_BEFORE_SWEEP  # sweep when this many windows are kept
        self._streak_store = StreakStore(store.component)
        self._streaks: dict[tuple[str, str, str], tuple[str, int]] = {}
        self._failures: dict[tuple[str, str, str], tuple[int, str | None]] = {}
        # The invocation whose failure the signature streak counted last, until the
        # processor starts again: its failure reported again is not another attempt. After a
        # restart: the last failure the stored failure streak counted.
        self._reported: dict[tuple[str, str, str], str] = {}
        self._active: dict[str, Guard] = {}
        self.load()

    def load(self) -> None:
        """Take up the streaks and guards kept in the store (at start, and when this process
        starts leading: the last leader kept them there while it judged); the start windows
        are relearned (``relearn``)."""
        streaks = self._streak_store.load()
        failures = self._streak_store.load_failures()
        active: dict[str, Guard] = {}
        for row in self.store.active_guards():
            key, kind, pipeline, phase, processor, run_date, mode, detail = row
            if not self._configured(pipeline, phase, processor):
                # Taken out of the config since it tripped: it would block the phase for
                # ever (its alert is resolved at start as an orphan, monitor.app.orphans).
                log.warning("event=guard.unconfigured key=%s", key)
                continue
            active[key] = Guard(key, kind, pipeline, phase, processor, run_date, mode, detail)
        with self._lock:
            self._streaks = streaks
            self._failures = failures
            self._reported = {key: invocation for key, (_, invocation) in failures.items()
                              if invocation}
            self._active = active
            self._starts.clear()

    def observe(self, update: Update) -> None:
        """Fold one accepted event into the guards (the collector listener calls this)."""
        event = update.event
        if event.processor is None or event.status not in GUARDED:
            return
        if event.status == "started":
            self._started(update)
        elif event.status == "failed":
            self._failed(update)
        elif event.status in ("succeeded", "skipped"):
            self._succeeded(update)

    def relearn(self, starts: Iterable[tuple[tuple[str, ...], datetime]]) -> None:
        """Count ``starts`` ((run, phase, processor) key, time), in arrival order, into the
        start windows without tripping anything (after a restart: a storm that tripped
        before it is an active guard already)."""
        window = timedelta(minutes=self.cfg.retry_storm_window_min)
        with self._lock:
            for key, at in starts:
                times = self._starts.setdefault(key, deque())
                times.append(at)
                while times and times[0] < at - window:
                    times.popleft()

    def _sweep(self, before: datetime) -> None:
        """Drop start windows whose last start is older than the window (bounded memory
        between ticks; the caller holds the lock)."""
        for key in [k for k, starts in self._starts.items() if starts[-1] < before]:
            del self._starts[key]
        # Next sweep once the live windows have doubled: a sweep that finds every window
        # still live would otherwise repeat on every start (O(windows) per event).
        self._sweep_at = max(_WINDOWS_BEFORE_SWEEP, 2 * len(self._starts))

    def prune(self, tracked: set[tuple[str, str, str]]) -> None:
        """Drop the start windows of runs no longer tracked."""
        with self._lock:
            for key in [k for k in self._starts if k[:3] not in tracked]:
                del self._starts[key]

    def blocking(self, pipeline: str, phase: str, run: tuple[str, str, str] | None,
                 processor: str | None = None) -> Guard | None:
        with self._lock:
            guards = list(self._active.values())
        return next((g for g in guards if g.blocks(pipeline, phase, run, processor)), None)

    def active(self) -> list[Guard]:
        with self._lock:
            return list(self._active.values())

    def clear(self, key: str, at: datetime, why: str) -> bool:
        with self._lock:
            guard = self._active.pop(key, None)
        if guard is None:
            return False
        # Its alert resolved before the guard is cleared in the store: a kill in between
        # leaves the guard stored, and what cleared it (a success judged again after the
        # restart, a person's retry) clears it again; the other way round, the alert stayed
        # open with no guard left to clear.
        if guard.kind not in HOLDS:  # a playbook's hold raised no alert of its own
            self.notifier.resolve(guard.kind, self._labels(guard), at)
        self.store.clear_guard(key, at)
        self.store.audit([self._audit(guard, at, "cleared", why)])
        log.info("event=guard.cleared key=%s why=%s", key, why)
        return True

    def clear_phase(self, pipeline: str, phase: str, at: datetime, why: str,
                    processor: str | None = None, *, holds: bool = True) -> list[str]:
        """Clear the guards of a phase (or of one processor in it); returns their keys.
        ``holds=False`` leaves the playbooks' holds (a health recovery is not their release)."""
        keys = [g.key for g in self.active() if g.pipeline == pipeline and g.phase == phase
                and (processor is None or g.processor in (None, processor))
                and (holds or g.kind not in HOLDS)]
        return [k for k in keys if self.clear(k, at, why)]

    def hold(self, guard: Guard, at: datetime) -> bool:
        """Place a playbook's hold (kind ``quarantine`` or ``deferred``): it blocks like a
        tripped guard, audited, without an alert of its own (the playbook notifies).
        False when it is held already."""
        assert guard.kind in HOLDS, guard.kind
        with self._lock:
            if guard.key in self._active:
                return False
            self._active[guard.key] = guard
        self.store.save_guard(guard.key, guard.kind, guard.pipeline, guard.phase, guard.processor,
                              guard.run_date, guard.mode, at, guard.detail)
        self.store.audit([self._audit(guard, at, "tripped", guard.detail)])
        log.info("event=guard.held key=%s detail=%r", guard.key, guard.detail)
        return True

    def held(self, pipeline: str, phase: str, run: tuple[str, str, str]) -> Guard | None:
        """A playbook's hold on the run's phase (quarantine, deferral), if any."""
        return next((g for g in self.active() if g.kind in HOLDS
                     and g.blocks(pipeline, phase, run)), None)

    def get(self, key: str) -> Guard | None:
        with self._lock:
            return self._active.get(key)

    # --- the three guards ------------------------------------------------------------

    def _started(self, update: Update) -> None:
        event = update.event
        assert event.processor is not None
        run = update.run.key
        key = (*run, event.phase, event.processor)
        window = timedelta(minutes=self.cfg.retry_storm_window_min)
        with self._lock:
            self._reported.pop((event.pipeline, event.phase, event.processor), None)
            if len(self._starts) >= self._sweep_at:
                self._sweep(event.timestamp - window)
            starts = self._starts.setdefault(key, deque())
            starts.append(event.timestamp)
            while starts and starts[0] < event.timestamp - window:
                starts.popleft()
            count = len(starts)
        if count > self.cfg.retry_storm_starts:
            detail = (f"{event.processor} started {count} times in "
                      f"{self.cfg.retry_storm_window_min:g} min")
            self._trip(Guard(
                f"retry_storm:{':'.join(key)}", "retry_storm", event.pipeline, event.phase,
                event.processor, run[1], run[2], detail,
            ), event.timestamp, "warning",
                f"retry storm: {detail} for {run[0]} {run[1]} ({run[2]}); automated re-triggers stopped")

    def _failed(self, update: Update) -> None:
        event = update.event
        assert event.processor is not None
        proc = update.phase.processors.get(event.processor)
        if proc is not None and proc.status in ("succeeded", "skipped") and (
            proc.status_at is not None and proc.status_at > event.timestamp
        ):
            # Delivered after a later success of the same run (a backlog flushed out of
            # order): the failure was already over when it arrived; no streak, no alert.
            return
        signature = error_signature(event.error or "")
        key = (event.pipeline, event.phase, event.processor)
        streak: tuple[str, int] | None = None
        attempt = _attempt(event)
        with self._lock:
            again = self._reported.get(key) == attempt
            self._reported[key] = attempt
        if signature and not again:
            with self._lock:
                last, count = self._streaks.get(key, ("", 0))
                streak = (signature, count + 1 if last == signature else 1)
                self._streaks[key] = streak
        failures = self._count_failure(update)
        if streak is not None and streak[1] >= self.cfg.same_error_times:
            self._deterministic(update, *streak)
        if failures is not None:
            self._failed_runs(update, failures[0])
        # Stored after what they decided: a kill in between leaves the failure uncounted in
        # the store, and the restart, judging it again, decides again (a guard already
        # stored is not tripped twice, but its alert is fired if it was not: _trip).
        if streak is not None or failures is not None:
            self._streak_store.save(key, event.timestamp, signature=streak, failures=failures)

    def _deterministic(self, update: Update, signature: str, count: int) -> None:
        """The same signature ``count`` times: alert by its category, and (mostly) stop retries."""
        event = update.event
        assert event.processor is not None
        key = (event.pipeline, event.phase, event.processor)
        category = classify(event.error or "", self.cfg.categories)
        headline = category.headline if category else "deterministic failure"
        severity = category.severity if category else "critical"
        detail = f"{event.processor} failed {count} times in a row with: {signature}"
        annotations = {"category": category.name} if category else {}
        if category is not None and not category.stops_retries:
            labels = {"pipeline": event.pipeline, "phase": event.phase, "processor": event.processor}
            self.notifier.fire("deterministic_failure", _severity(severity),
                               f"{headline}: {detail}; retries continue", event.timestamp, labels,
                               annotations=annotations)
            return
        self._trip(Guard(
            f"deterministic_failure:{':'.join(key)}", "deterministic_failure",
            event.pipeline, event.phase, event.processor, None, None, detail,
        ), event.timestamp, severity, f"{headline}: {detail}; automated retries stopped",
            annotations)

    def _succeeded(self, update: Update) -> None:
        event = update.event
        assert event.processor is not None
        at = event.timestamp
        # The processor's streaks, guards and alerts, also those kept under a name it had
        # before a config change renamed it (the old name kept as an alias): its success
        # ends them all, as it would have under the old name.
        with self._lock:
            stored = {*self._streaks, *self._failures}
        names = {event.processor} | {
            k[2] for k in stored if k[:2] == (event.pipeline, event.phase)
            and self._now_named(*k) == event.processor}
        run = update.run.key
        # Asked of the tracker once, and only when something would end (a closure: most
        # successes end nothing, and functools.cache's wrapper cost more than the rest).
        answer: list[bool] = []

        def on_older_data() -> bool:
            if not answer:
                answer.append(self._fails_in_a_newer_run(update))
            return answer[0]

        for guard in self.active():
            if self._now_named(guard.pipeline, guard.phase, guard.processor) == event.processor and (
                guard.blocks(event.pipeline, event.phase, run, guard.processor)
            ):
                if guard.run_date is None and on_older_data():
                    continue  # phase-wide, and a newer run still fails: not over
                self.clear(guard.key, at, "processor succeeded")
        for name in sorted(names):
            key = (event.pipeline, event.phase, name)
            if (key in self._streaks or key in self._failures) and on_older_data():
                continue
            with self._lock:
                had = self._streaks.pop(key, None)
                failing = self._failures.pop(key, None)
                self._reported.pop(key, None)
            if had is not None or failing is not None:
                self._streak_store.drop(key)
            labels = {"pipeline": event.pipeline, "phase": event.phase, "processor": name}
            self.notifier.resolve("failed_runs", labels, at)
            if had is not None:  # an alert-only category (no guard to clear) resolves here
                self.notifier.resolve("deterministic_failure", labels, at)

    def _fails_in_a_newer_run(self, update: Update) -> bool:
        """Whether the processor stands failed in a run of a later run date than this success
        is for: a backfill or a re-run of an older date succeeding on its own data says
        nothing about tonight's run, still failing on tonight's."""
        event = update.event
        for run in self.tracker.runs(pipeline=event.pipeline):
            if run.run_date > event.run_date:
                phase = run.phases.get(event.phase)
                proc = phase.processors.get(event.processor or "") if phase is not None else None
                if proc is not None and proc.status == "failed":
                    return True
        return False

    def _names(self, pipeline: str, phase: str) -> Mapping[str, str] | None:
        """The phase's processor names and aliases, each to its name now; None when the config
        no longer has the phase."""
        pipeline_cfg = self.config.pipeline_map.get(pipeline)
        phase_cfg = pipeline_cfg.phase_map.get(phase) if pipeline_cfg is not None else None
        return phase_cfg.canonical_names if phase_cfg is not None else None

    def _configured(self, pipeline: str, phase: str, processor: str | None) -> bool:
        """The config still has this pipeline, phase and processor (by name or alias)."""
        names = self._names(pipeline, phase)
        return names is not None and (processor is None or processor in names)

    def _now_named(self, pipeline: str, phase: str, name: str | None) -> str | None:
        """What the config calls ``name`` now: a processor renamed since its streak or guard
        was stored, its old name kept as an alias, is its new name."""
        names = self._names(pipeline, phase) if name is not None else None
        return names.get(name, name) if names is not None and name is not None else name

    def _count_failure(self, update: Update) -> tuple[int, str | None] | None:
        """The processor's failure streak with this failure, or None when it is a redelivered
        failure of the invocation counted last."""
        event = update.event
        assert event.processor is not None
        key = (event.pipeline, event.phase, event.processor)
        invocation = _attempt(event)
        with self._lock:
            streak, last = self._failures.get(key, (0, None))
            if invocation == last:
                return None
            self._failures[key] = (streak + 1, invocation)
        return streak + 1, invocation

    def _failed_runs(self, update: Update, streak: int) -> None:
        event = update.event
        assert event.processor is not None
        if streak >= self.cfg.failed_runs:
            labels = {"pipeline": event.pipeline, "phase": event.phase, "processor": event.processor}
            self.notifier.fire(
                "failed_runs", "warning",
                f"{event.processor} failed in {streak} consecutive runs of {event.pipeline} "
                f"(the latest of {event.run_date} {update.run.mode})",
                event.timestamp, labels, details=event.error or "",
            )

    def _trip(self, guard: Guard, at: datetime, severity: str, summary: str,
              annotations: dict[str, str] | None = None) -> None:
        with self._lock:
            active = guard.key in self._active
            self._active.setdefault(guard.key, guard)
        if active:
            # Tripped already. Its alert is firing, unless a kill fell between storing the
            # guard and firing it: the restart judges that batch again and fires it here.
            if not self.notifier.firing(guard.kind, self._labels(guard)):
                log.warning("event=guard.alert_refired key=%s: the guard was stored, its alert "
                            "never fired (killed in between)", guard.key)
                self.notifier.fire(guard.kind, _severity(severity), summary, at,
                                   self._labels(guard), annotations=annotations)
            return
        self.store.save_guard(guard.key, guard.kind, guard.pipeline, guard.phase, guard.processor,
                              guard.run_date, guard.mode, at, guard.detail)
        self.store.audit([self._audit(guard, at, "tripped", guard.detail)])
        log.warning("event=guard.tripped key=%s detail=%r", guard.key, guard.detail)
        self.notifier.fire(guard.kind, _severity(severity), summary, at, self._labels(guard),
                           annotations=annotations)

    @staticmethod
    def _audit(guard: Guard, at: datetime, outcome: str, reason: str) -> AuditEntry:
        return AuditEntry(at, "guard", guard.kind, outcome, guard.pipeline, guard.run_date,
                          guard.mode, guard.phase, guard.processor, reason=reason,
                          detail={"key": guard.key})

    @staticmethod
    def _labels(guard: Guard) -> dict[str, str | None]:
        return {"pipeline": guard.pipeline, "phase": guard.phase, "processor": guard.processor,
                "run_date": guard.run_date, "mode": guard.mode}


def _attempt(event: Event) -> str:
    """What identifies the attempt a failure reports: its invocation id; without one, the
    event itself (judged a second time only by a restart after a kill that left it judged
    and not yet marked so: the same attempt, not another one)."""
    return event.invocation_id or f"event:{event.event_id}"


def _severity(text: str) -> Severity:
    return "critical" if text == "critical" else "info" if text == "info" else "warning"
