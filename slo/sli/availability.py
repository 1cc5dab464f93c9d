"""availability: share of a service's health probes whose status counts as good."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime
from typing import TYPE_CHECKING

from monitor.interest import EventKey
from slo.ledger import UnitLedger
from slo.sli.base import CheckReading, HealthProbe, epoch
from slo.spec import AvailabilitySLI, SLOSpec

if TYPE_CHECKING:
    from monitor.config import PipelineConfig
    from monitor.tracker import Update


class Availability:
    """One unit per probe (keyed by its time): a repeated probe replaces, never adds."""

    def __init__(self, spec: SLOSpec, pipeline: PipelineConfig) -> None:
        assert isinstance(spec.sli, AvailabilitySLI)
        self.spec = spec
        self.service = spec.sli.service
        self.good = frozenset(spec.sli.good)

    def wants(self, key: EventKey) -> bool:
        return False

    def on_update(self, update: Update, ledger: UnitLedger) -> None:
        return None

    def on_updates(self, updates: Sequence[Update], ledger: UnitLedger) -> None:
        return None

    def on_probe(self, probe: HealthProbe, ledger: UnitLedger) -> None:
        if probe.service != self.service:
            return
        if probe.pipeline is not None and probe.pipeline != self.spec.pipeline:
            return
        ts = epoch(probe.time)
        ledger.set(f"{self.service}@{ts}", ts, probe.status in self.good)

    def on_check(self, reading: CheckReading, ledger: UnitLedger) -> None:
        return None

    def advance(self, now: datetime, ledger: UnitLedger) -> None:
        return None

    def expected_units(self, start: int, end: int) -> int | None:
        return None
