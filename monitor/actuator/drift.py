"""Expected-list drift: a processor expected in a mode that never reports while its phase does.

Incident 13's Phase 2 expected list named six processors when only five publish per date,
so the orchestrator's count never reached "complete" for a week. Every
``drift.interval_min`` the events of the last ``drift.window_days`` run dates are scanned in
the store (by run date, which the store indexes: the scan runs under the state lock): for
each phase and mode, a processor of the mode's expected list with no event at all, while
other processors of the phase reported on at least ``drift.min_run_dates`` run dates (and
the phase has events of an older run date, so the whole window was watched),
raises one low-severity (info, P3) alert "expected-list drift". It resolves as soon
as a tracked run shows the processor (checked on every tick) or the next scan finds it.
"""

from __future__ import annotations

from collections import defaultdict
from datetime import datetime, timedelta

from monitor.actuator.context import Context
from monitor.store.base import ComponentStore

Slot = tuple[str, str, str, str]  # (pipeline, phase, mode, processor)


class ExpectedListDrift:
    """Scans the stored events for expected processors that never report."""

    def __init__(self, ctx: Context, events: ComponentStore) -> None:
        self.ctx = ctx
        self.events = events
        self._firing: dict[Slot, dict[str, str | None]] = {}
        self._watched: set[tuple[str, str]] = set()  # (pipeline, phase) seen before a window
        # Alerts are durable: adopt those fired before a restart, so that they resolve too.
        for labels in ctx.notifier.active("expected_list_drift"):
            if {"pipeline", "phase", "mode", "processor"} <= labels.keys():
                adopted: dict[str, str | None] = dict(labels)
                self._firing[(labels["pipeline"], labels["phase"], labels["mode"],
                              labels["processor"])] = adopted

    def scan(self, now: datetime) -> None:
        """The ``actuator-drift`` job: judge every pipeline, phase and mode from the store."""
        cfg = self.ctx.acfg.drift
        drifting: set[Slot] = set()
        for pipeline in self.ctx.config.pipelines:
            today = now.astimezone(pipeline.tz).date()
            first = today - timedelta(days=cfg.window_days)
            since = first.isoformat()
            rows = self.events.read(
                "SELECT phase, mode, processor, run_date FROM events WHERE pipeline = ?"
                " AND run_date >= ? AND run_date <= ? AND processor IS NOT NULL"
                " GROUP BY phase, mode, processor, run_date",
                (pipeline.id, since, today.isoformat()),
            )
            dates: dict[tuple[str, str], dict[str, set[str]]] = defaultdict(lambda: defaultdict(set))
            for phase, mode, processor, run_date in rows:
                dates[(phase, mode)][processor].add(run_date)
            # "Never in N days" needs N days of history: phases watched for less are not judged.
            for (phase_id, mode), by_processor in dates.items():
                phase = pipeline.phase_map.get(phase_id)
                before = (first - timedelta(days=cfg.window_days)).isoformat()
                if phase is None or not self._watched_before(pipeline.id, phase_id, before, since):
                    continue
                for name in phase.expectation(mode).expected:
                    if name in by_processor:
                        continue
                    others = set().union(*by_processor.values())
                    if len(others) >= cfg.min_run_dates:
                        slot = (pipeline.id, phase_id, mode, name)
                        drifting.add(slot)
                        self._fire(slot, len(others), cfg.window_days, now)
        for slot in [s for s in self._firing if s not in drifting]:
            self.ctx.notifier.resolve("expected_list_drift", self._firing.pop(slot), now)

    def _watched_before(self, pipeline: str, phase: str, start: str, end: str) -> bool:
        """Whether the phase had events of a run date in ``[start, end)`` (the window before
        the judged one: a bounded read of the store's index), remembered once it had."""
        if (pipeline, phase) in self._watched:
            return True
        if self.events.read(
            "SELECT 1 FROM events WHERE pipeline = ? AND run_date >= ? AND run_date < ?"
            " AND phase = ? LIMIT 1", (pipeline, start, end, phase),
        ):
            self._watched.add((pipeline, phase))
            return True
        return False

    def check(self, now: datetime) -> None:
        """On every tick: resolve at once when a tracked run shows a drifting processor."""
        if not self._firing:
            return
        for run in self.ctx.recent_runs(now):
            for slot in [s for s in self._firing if s[0] == run.pipeline and s[2] == run.mode]:
                phase_run = run.phases.get(slot[1])
                if phase_run is not None and slot[3] in phase_run.processors:
                    self.ctx.notifier.resolve("expected_list_drift", self._firing.pop(slot), now)

    def _fire(self, slot: Slot, run_dates: int, days: float, now: datetime) -> None:
        if slot in self._firing:
            return
        pipeline, phase, mode, processor = slot
        labels: dict[str, str | None] = {"pipeline": pipeline, "phase": phase, "mode": mode,
                                         "processor": processor}
        self._firing[slot] = labels
        self.ctx.notifier.fire(
            "expected_list_drift", "info",
            f"expected-list drift: {processor} expected in {mode} but never reported in "
            f"{days:g} days ({phase} of {pipeline} reported on {run_dates} run dates); "
            f"remove it from modes.{mode}.expected or find why it stopped",
            now, labels,
        )
