"""Run-date mismatches: an event whose run date does not fit its mode (``mode_window``).

A scheduled "today" job that resolves yesterday's date sends ``same_day`` events for
yesterday; phasewatch would otherwise fold them silently into yesterday's same-day run.
With ``on_mismatch: alert`` (the default) the first such event of a run raises "run date
mismatch" (warning) at once, naming the day the mode expects; it resolves once no
mismatched event of that run came for ``resolve_after_min``. (``reject`` turns the event
away at ingest instead, in the collector; ``accept`` does neither.) Imported history and
events outside the actionable horizon never alert.
"""

from __future__ import annotations

import threading
from collections.abc import Sequence
from datetime import date, datetime, timedelta

from monitor import horizon
from monitor.actuator.context import Context
from monitor.actuator.notify import run_labels
from monitor.config import within
from monitor.tracker import RunKey, RunState, Update

KIND = "run_date_mismatch"
MAX_WINDOWS = 4096  # cached windows of runs (cleared when full)
Bounds = tuple[datetime | None, datetime | None] | None


class RunDateWatch:
    """Alerts on mismatched run dates (a collector listener) and resolves them on the tick."""

    def __init__(self, ctx: Context) -> None:
        self.ctx = ctx
        self._lock = threading.Lock()
        self._last: dict[RunKey, tuple[datetime, dict[str, str | None]]] = {}
        # On the ingest path: one dict lookup and two comparisons an event.
        self._windows: dict[tuple[str, date, str], Bounds] = {}
        # Alerts fired before a restart resolve after a quiet period from now.
        now = ctx.clock.now()
        for labels in ctx.notifier.active(KIND):
            names = ("pipeline", "run_date", "mode")
            if set(names) <= labels.keys():
                key = (labels["pipeline"], labels["run_date"], labels["mode"])
                self._last[key] = (now, dict(labels))

    def on_updates(self, updates: Sequence[Update]) -> None:
        """A collector listener: judge each newly stored event of a batch, oldest first.

        A run's window is looked up once for its events that come together in the batch:
        an event then costs two comparisons."""
        last: RunState | None = None
        bounds: Bounds = None
        for update in updates:
            if update.backfill:
                continue
            run = update.run
            if run is not last:
                last, bounds = run, self._bounds(run)
            if bounds is not None and not within(update.event.timestamp, bounds):
                self._mismatched(update)

    def _bounds(self, run: RunState) -> Bounds:
        """The instants at which events of ``run`` fit its mode (None: all do, or no alert)."""
        pipeline = self.ctx.pipeline(run.pipeline)
        if pipeline is None or pipeline.mode_window.on_mismatch != "alert":
            return None
        window = (run.pipeline, run.run_date, run.mode)
        try:
            return self._windows[window]
        except KeyError:
            if len(self._windows) >= MAX_WINDOWS:
                self._windows.clear()
            bounds = self._windows[window] = pipeline.mode_window_bounds(run.run_date, run.mode)
            return bounds

    def _mismatched(self, update: Update) -> None:
        """An event outside its run's mode window: alert once per run (inside the horizon)."""
        event = update.event
        pipeline = self.ctx.pipeline(event.pipeline)
        assert pipeline is not None
        mode = update.run.mode
        key = update.run.key
        why = pipeline.mode_mismatch(event.run_date, mode, event.timestamp)
        if why is None:
            return
        if horizon.outside(pipeline, event, mode, self.ctx.clock.now()) is not None:
            return
        labels = run_labels(*key)
        with self._lock:
            known = key in self._last
            self._last[key] = (event.timestamp, labels)
        if known:
            return
        where = event.phase + (f"/{event.processor}" if event.processor else "")
        self.ctx.notifier.fire(
            KIND, "warning",
            f"run date mismatch: {why}; {where} reported into the {mode} run of "
            f"{event.run_date.isoformat()} (a job that resolved the wrong day?)",
            event.timestamp, labels, annotations={"phase": event.phase,
                                                  **({"processor": event.processor}
                                                     if event.processor else {})},
        )

    def check(self, now: datetime) -> None:
        """Resolve the alerts of runs with no mismatched event for ``resolve_after_min``."""
        with self._lock:
            items = list(self._last.items())
        for key, (last, labels) in items:
            pipeline = self.ctx.pipeline(key[0])
            quiet = timedelta(minutes=pipeline.mode_window.resolve_after_min if pipeline else 60)
            if now - last < quiet:
                continue
            with self._lock:
                if self._last.get(key, (None,))[0] != last:
                    continue
                del self._last[key]
            self.ctx.notifier.resolve(KIND, labels, now)
