"""duration: share of successful runs that took at most ``max_s`` seconds."""

from __future__ import annotations

from typing import TYPE_CHECKING

from monitor.interest import EventKey
from slo.ledger import UnitLedger
from slo.sli.base import SUCCEEDED, EventSLI, epoch, run_unit
from slo.spec import DurationSLI, SLOSpec

if TYPE_CHECKING:
    from monitor.config import PipelineConfig
    from monitor.tracker import Update


class Duration(EventSLI):
    """Processor runs: the reported (or derived) duration of a success. Phases: first start
    to complete. Failures are the success ratio's business and are not counted here."""

    def __init__(self, spec: SLOSpec, pipeline: PipelineConfig) -> None:
        super().__init__(spec, pipeline)
        assert isinstance(spec.sli, DurationSLI)
        self.max_s = spec.sli.max_s

    def wants(self, key: EventKey) -> bool:
        if self.processor_level:
            return self.wants_at_level(key, SUCCEEDED)
        return self.wants_phase(key)  # phases: whichever event completes the phase

    def on_update(self, update: Update, ledger: UnitLedger) -> None:
        if not self.selects(update):
            return
        event = update.event
        if self.processor_level:
            if event.status != "succeeded" or not self.at_level(event):
                return
            if update.duration_s is None:
                return
            good = update.duration_s <= self.max_s
            ledger.set(run_unit(update, event), epoch(event.timestamp), good, latest=True)
            return
        phase = update.phase
        if not update.phase_completed or phase.first_start is None:
            return
        done = phase.completed_at or event.timestamp
        seconds = max((done - phase.first_start).total_seconds(), 0.0)
        ledger.set(run_unit(update), epoch(done), seconds <= self.max_s)
