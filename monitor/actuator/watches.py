"""The actuator's data watches and cascades, wired as jobs (``install_watches``).

- ``actuator-watch`` (every tick): entity coverage drops and mass lockouts, subscribers not
  invoked, drift resolution, run-date mismatches (judged per event by a listener, resolved
  here), cascade re-runs (and their automatic start on a check);
- ``actuator-drift`` (every ``drift.interval_min``): the expected-list drift scan of the store.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from datetime import datetime, timedelta
from functools import partial
from typing import TYPE_CHECKING

from monitor.actuator.cascade import Cascades, CascadeStore, cascade_phases
from monitor.actuator.config import AutoCascadeConfig, CascadePlaybook
from monitor.actuator.drift import ExpectedListDrift
from monitor.actuator.entities import EntityCoverage
from monitor.actuator.rundates import RunDateWatch
from monitor.actuator.subscription import SubscriberWatch
from monitor.horizon import outside_run_dates
from monitor.tracker import RunState

AutoCascade = AutoCascadeConfig | CascadePlaybook  # what starts a cascade on a check

if TYPE_CHECKING:
    from monitor.actuator.engine import Actuator
    from monitor.host import Host

log = logging.getLogger(__name__)


class Watches:
    """Everything ``actuator-watch`` runs, in order."""

    def __init__(self, actuator: Actuator) -> None:
        ctx = actuator.ctx
        events = actuator.store.component
        self.actuator = actuator
        self.entities = EntityCoverage(ctx, events)
        self.subscribers = SubscriberWatch(ctx)
        self.drift = ExpectedListDrift(ctx, events)
        self.run_dates = RunDateWatch(ctx)
        self.cascades = Cascades(actuator, CascadeStore(events))

    def tick(self, now: datetime) -> None:
        # Each watch on its own: one that fails must not stop the others (cascades above all).
        for name, step in (("entities", self.entities.check),
                           ("subscribers", self.subscribers.check),
                           ("drift", self.drift.check), ("run_dates", self.run_dates.check),
                           ("auto_cascades", self._auto_cascades),
                           ("cascades", self.cascades.tick)):
            try:
                step(now)
            except Exception:
                log.exception("event=watch.failed watch=%s", name)

    def _auto_cascades(self, now: datetime) -> None:
        """Start the configured cascades when their check newly passes (confirms the fix).

        "Newly" is a transition: the previous reading handled failed and this one passes. The
        last handled reading of each entry is kept in the store, so a restart neither forgets
        a failing reading (the pass after it still starts the cascade) nor takes the reading
        that started a cascade for a new one (which would start a second cascade once the
        first one ended). The first reading ever seen only sets the baseline. A crash between
        the start and the record repeats the start, which the one-running-cascade-per-run
        rule makes a no-op.
        """
        for auto in self.actuator.ctx.acfg.cascades:
            self.on_check(auto, f"{auto.pipeline}:{auto.phase}:{auto.check}", now,
                          partial(self._start_auto, auto, now))

    def on_check(self, auto: AutoCascade, name: str, now: datetime,
                 start: Callable[[], None]) -> None:
        """Call ``start`` when ``auto``'s check newly passes (its readings handled under
        ``name``; see ``_auto_cascades``)."""
        value = self.actuator.ctx.checks.latest(auto.check)
        if value is None:
            return
        store = self.cascades.store
        seen = store.check_seen(name)
        if seen is not None and value.at <= seen[0]:
            return  # this reading (or a newer one) was handled already
        passed = _passes(auto, value.value)
        if passed and seen is not None and not seen[1]:
            start()
        store.saw_check(name, value.at, passed)

    def runs_to_rerun(self, auto: AutoCascade, now: datetime) -> list[RunState]:
        """Recent runs inside the horizon whose ``auto.phase`` coverage drop still fires."""
        pipeline = self.actuator.ctx.pipeline(auto.pipeline)
        if pipeline is None:
            return []
        since = now - timedelta(hours=auto.within_h)
        found = []
        for run in self.actuator.ctx.tracker.runs(pipeline=pipeline.id):
            if run.last_event_at is None or run.last_event_at < since:
                continue
            if outside_run_dates(pipeline, run.run_date, run.mode, now):
                continue  # history is never re-run automatically (a person may, by hand)
            if self._needs_rerun(run.key, auto.phase):
                found.append(run)
        return found

    def _start_auto(self, auto: AutoCascadeConfig, now: datetime) -> None:
        """A cascade of ``auto.phase`` for each recent run whose coverage drop still fires."""
        pipeline = self.actuator.ctx.pipeline(auto.pipeline)
        if pipeline is None:
            return
        for run in self.runs_to_rerun(auto, now):
            phases = cascade_phases(pipeline, auto.phase, run.mode, cascade=True)
            # None when the run has a cascade running already (manual or automatic).
            self.cascades.start(run.key, phases, reason="recovery", manual=False,
                                force=False, actor=f"check:{auto.check}", now=now)

    def _needs_rerun(self, run: tuple[str, str, str], phase: str) -> bool:
        """A run whose ``phase`` has an entity coverage drop that is still active."""
        return any(slot[0] == run and slot[1] == phase for slot in self.entities.active())


def _passes(auto: AutoCascade, value: float) -> bool:
    return (auto.min is None or value >= auto.min) and (auto.max is None or value <= auto.max)


def install_watches(host: Host, actuator: Actuator) -> Watches:
    """Register the watch jobs on ``host``."""
    watches = Watches(actuator)
    host.add_listener(watches.run_dates.on_updates)
    host.add_job("actuator-watch", watches.tick)
    host.add_job("actuator-drift", watches.drift.scan,
               every_s=actuator.config.actuator.drift.interval_min * 60)
    return watches
