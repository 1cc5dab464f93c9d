"""freshness: share of successful runs whose ``data_as_of`` was at most ``max_age_h`` old."""

from __future__ import annotations

from typing import TYPE_CHECKING

from monitor.interest import EventKey
from slo.ledger import UnitLedger
from slo.sli.base import SUCCEEDED, EventSLI, epoch, run_unit
from slo.spec import FreshnessSLI, SLOSpec

if TYPE_CHECKING:
    from monitor.config import PipelineConfig
    from monitor.tracker import Update


class Freshness(EventSLI):
    """Age = completion time - data_as_of of the run's latest success (backfill runs are
    not counted unless ``modes`` names them)."""

    def __init__(self, spec: SLOSpec, pipeline: PipelineConfig) -> None:
        super().__init__(spec, pipeline)
        assert isinstance(spec.sli, FreshnessSLI)
        self.max_age_s = spec.sli.max_age_h * 3600
        self.missing_bad = spec.sli.missing == "bad"
        self.modes = frozenset(spec.sli.counted_modes)

    def wants(self, key: EventKey) -> bool:
        return self.wants_at_level(key, SUCCEEDED)

    def on_update(self, update: Update, ledger: UnitLedger) -> None:
        event = update.event
        if event.status != "succeeded" or not self.selects(update) or not self.at_level(event):
            return
        if event.data_as_of is None:
            if not self.missing_bad:
                return
            good = False
        else:
            good = (event.timestamp - event.data_as_of).total_seconds() <= self.max_age_s
        ledger.set(run_unit(update, event), epoch(event.timestamp), good, latest=True)
