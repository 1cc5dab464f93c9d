"""coverage: share of successful runs with ``records / expected_records`` at least ``min_ratio``."""

from __future__ import annotations

from fractions import Fraction
from typing import TYPE_CHECKING

from monitor.interest import EventKey
from slo.ledger import UnitLedger
from slo.sli.base import SUCCEEDED, EventSLI, epoch, run_unit
from slo.spec import CoverageSLI, SLOSpec

if TYPE_CHECKING:
    from monitor.config import PipelineConfig
    from monitor.tracker import Update


class Coverage(EventSLI):
    """A run that expected nothing (``expected_records`` = 0) is good."""

    def __init__(self, spec: SLOSpec, pipeline: PipelineConfig) -> None:
        super().__init__(spec, pipeline)
        assert isinstance(spec.sli, CoverageSLI)
        self.min_ratio = exact_ratio(spec.sli.min_ratio)
        self.missing_bad = spec.sli.missing == "bad"

    def wants(self, key: EventKey) -> bool:
        return self.wants_at_level(key, SUCCEEDED)

    def on_update(self, update: Update, ledger: UnitLedger) -> None:
        event = update.event
        if event.status != "succeeded" or not self.selects(update) or not self.at_level(event):
            return
        if event.records is None or event.expected_records is None:
            if not self.missing_bad:
                return
            good = False
        else:
            # Exact: min_ratio 0.55 is 11/20, and 55 of 100 meets it (in floats 0.55 * 100
            # is 55.000000000000007 and it would not).
            good = event.records * self.min_ratio.denominator >= (
                self.min_ratio.numerator * event.expected_records)
        ledger.set(run_unit(update, event), epoch(event.timestamp), good, latest=True)


def exact_ratio(value: float) -> Fraction:
    """The ratio as written in the config (``0.55`` is 11/20, not the nearest binary float)."""
    return Fraction(str(value))
