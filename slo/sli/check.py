"""check: share of run dates whose data check result is within ``[min, max]``.

One unit per run date (the result's own ``run_date``, else the date it was measured on in
the pipeline's timezone), judged by its latest result: a re-run of the check that passes
repairs the run, as a retry that succeeds repairs a success ratio. A run date the check
never reported on is not counted.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime
from typing import TYPE_CHECKING

from monitor.interest import EventKey
from slo.ledger import UnitLedger
from slo.sli.base import CheckReading, HealthProbe, epoch
from slo.spec import CheckSLI, SLOSpec

if TYPE_CHECKING:
    from monitor.config import PipelineConfig
    from monitor.tracker import Update


class Check:
    """Units keyed ``<check>/<run date>``; good when the value is within the bounds."""

    def __init__(self, spec: SLOSpec, pipeline: PipelineConfig) -> None:
        assert isinstance(spec.sli, CheckSLI)
        self.spec = spec
        self.name = spec.sli.check
        self.min = spec.sli.min
        self.max = spec.sli.max
        self.tz = pipeline.tz

    def on_check(self, reading: CheckReading, ledger: UnitLedger) -> None:
        if reading.name != self.name:
            return
        if reading.pipeline is not None and reading.pipeline != self.spec.pipeline:
            return
        day = reading.run_date or reading.time.astimezone(self.tz).date()
        good = (self.min is None or reading.value >= self.min) and (
            self.max is None or reading.value <= self.max)
        ledger.set(f"{self.name}/{day.isoformat()}", epoch(reading.time), good, latest=True)

    def wants(self, key: EventKey) -> bool:
        return False

    def on_update(self, update: Update, ledger: UnitLedger) -> None:
        return None

    def on_updates(self, updates: Sequence[Update], ledger: UnitLedger) -> None:
        return None

    def on_probe(self, probe: HealthProbe, ledger: UnitLedger) -> None:
        return None

    def advance(self, now: datetime, ledger: UnitLedger) -> None:
        return None

    def expected_units(self, start: int, end: int) -> int | None:
        return None
