"""phasewatch slo: SLO specs, SLIs, error budgets, burn rates and anomaly detection."""

from __future__ import annotations

from typing import TYPE_CHECKING

from monitor.lazy import lazy_exports

if TYPE_CHECKING:
    from slo.evaluator import SLOEngine, SLOStatus, WindowCount
    from slo.ledger import UnitLedger
    from slo.metrics import SLOGauges
    from slo.rules import prometheus_rules, rules_yaml
    from slo.sli import REGISTRY, SLI, HealthProbe
    from slo.spec import AlertingPolicy, SLOSpec

_LAZY = {
    **dict.fromkeys(("SLOEngine", "SLOStatus", "WindowCount"), "slo.evaluator"),
    **dict.fromkeys(("UnitLedger",), "slo.ledger"),
    **dict.fromkeys(("SLOGauges",), "slo.metrics"),
    **dict.fromkeys(("prometheus_rules", "rules_yaml"), "slo.rules"),
    **dict.fromkeys(("REGISTRY", "SLI", "HealthProbe"), "slo.sli"),
    **dict.fromkeys(("AlertingPolicy", "SLOSpec"), "slo.spec"),
}

__all__ = [
    "REGISTRY",
    "SLI",
    "AlertingPolicy",
    "HealthProbe",
    "SLOEngine",
    "SLOGauges",
    "SLOSpec",
    "SLOStatus",
    "UnitLedger",
    "WindowCount",
    "prometheus_rules",
    "rules_yaml",
]


__getattr__ = lazy_exports(__name__, _LAZY)
