"""phasewatch slo: SLO specs, SLIs, error budgets, burn rates and anomaly detection."""

from slo.evaluator import SLOEngine, SLOStatus, WindowCount
from slo.ledger import UnitLedger
from slo.metrics import SLOGauges
from slo.rules import prometheus_rules, rules_yaml
from slo.sli import REGISTRY, SLI, HealthProbe
from slo.spec import AlertingPolicy, SLOSpec

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
