"""success_ratio: share of runs (or attempts) of a phase or its processors that succeed."""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING

from monitor.interest import EventKey
from slo.ledger import UnitLedger
from slo.sli.base import TERMINAL, EventSLI, epoch, run_key_text, run_unit
from slo.spec import SLOSpec, SuccessRatioSLI

if TYPE_CHECKING:
    from monitor.config import PipelineConfig
    from monitor.tracker import RunState, Update


class SuccessRatio(EventSLI):
    """Good: succeeded or skipped. Bad: failed. Runs keep their latest verdict."""

    def __init__(self, spec: SLOSpec, pipeline: PipelineConfig) -> None:
        super().__init__(spec, pipeline)
        assert isinstance(spec.sli, SuccessRatioSLI)
        self.attempts = spec.sli.count == "attempts"

    def wants(self, key: EventKey) -> bool:
        if self.attempts or self.processor_level:
            return self.wants_at_level(key, TERMINAL)
        return self.wants_phase(key)  # phase runs: any event may complete or fail the phase

    def on_updates(self, updates: Sequence[Update], ledger: UnitLedger) -> None:
        """Attempts and processor runs: every update sent is a finish at the SLI's level
        (``wants``), and a run's mode and unit are worked out once for its events that come
        together in the batch. Phase runs: ``on_update`` of each."""
        if not (self.attempts or self.processor_level):
            super().on_updates(updates, ledger)
            return
        modes, attempts = self.modes, self.attempts
        last: RunState | None = None
        selected, unit = False, ""
        for update in updates:
            run = update.run
            if run is not last:
                last, selected = run, modes is None or run.mode in modes
                unit = run_key_text(run)
            if not selected:
                continue
            event = update.event
            good = event.status != "failed"
            if attempts:
                ledger.set(event.event_id, epoch(event.timestamp), good)
            else:  # at a processor level: a processor's event
                ledger.set(f"{unit}/{event.processor}", epoch(event.timestamp), good, latest=True)

    def on_update(self, update: Update, ledger: UnitLedger) -> None:
        if not self.selects(update):
            return
        event = update.event
        if self.attempts or self.processor_level:
            if event.status not in TERMINAL or not self.at_level(event):
                return
            good = event.status != "failed"
            if self.attempts:
                ledger.set(event.event_id, epoch(event.timestamp), good)
            else:
                ledger.set(run_unit(update, event), epoch(event.timestamp), good, latest=True)
            return
        # Phase runs: the tracker's verdict, kept while a retry is in flight.
        phase = update.phase
        complete, failed = phase.judgement()
        if complete:
            when = phase.completed_at or event.timestamp
            ledger.set(run_unit(update), epoch(when), True)
        elif failed:
            when = phase.failed_at or event.timestamp
            ledger.set(run_unit(update), epoch(when), False)
