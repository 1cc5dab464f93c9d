"""Prometheus gauges for SLO status (DESIGN §6 names), set from evaluated statuses."""

from __future__ import annotations

from collections.abc import Iterable

from prometheus_client import CollectorRegistry, Gauge

from slo.evaluator import SLOStatus


class SLOGauges:
    """``phasewatch_slo_sli_ratio{slo}``, ``phasewatch_slo_error_budget_remaining_ratio{slo}``,
    ``phasewatch_slo_error_budget_remaining{slo,unit}``, ``phasewatch_slo_burn_rate{slo,window}``;
    label values come only from configured SLOs."""

    def __init__(self, registry: CollectorRegistry | None) -> None:
        self.sli = Gauge(
            "phasewatch_slo_sli_ratio",
            "Good units / total units in the SLO window (absent when nothing was due).",
            ["slo"], registry=registry,
        )
        self.budget_remaining = Gauge(
            "phasewatch_slo_error_budget_remaining_ratio",
            "Share of the error budget left: 1 untouched, 0 exhausted, negative when breached.",
            ["slo"], registry=registry,
        )
        self.budget_remaining_units = Gauge(
            "phasewatch_slo_error_budget_remaining",
            "Bad units (runs, events or probes: the unit label) the SLO may still have in its"
            " window; negative when breached.",
            ["slo", "unit"], registry=registry,
        )
        self.burn_rate = Gauge(
            "phasewatch_slo_burn_rate",
            "Bad-unit ratio over a window divided by the allowed ratio (1 - objective).",
            ["slo", "window"], registry=registry,
        )
        self._with_sli: set[str] = set()

    def update(self, statuses: Iterable[SLOStatus]) -> None:
        """Set every gauge from one evaluation."""
        for status in statuses:
            name = status.name
            sli = status.sli
            if sli is None:
                if name in self._with_sli:
                    self.sli.remove(name)
                    self._with_sli.discard(name)
            else:
                self.sli.labels(name).set(sli)
                self._with_sli.add(name)
            self.budget_remaining.labels(name).set(status.budget_remaining)
            self.budget_remaining_units.labels(name, status.unit).set(
                float(status.budget_remaining_units))
            self.burn_rate.labels(name, status.window).set(status.burn_rate)
            for window in status.windows:
                self.burn_rate.labels(name, window.label).set(window.burn_rate)
