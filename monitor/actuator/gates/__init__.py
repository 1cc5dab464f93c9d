"""Gates: the protocols, one module per family, and the registry keyed by config ``kind``."""

from monitor.actuator.gates.base import (
    CheckSource,
    CheckValue,
    Gate,
    GateContext,
    GateResult,
    HealthProbe,
    HealthResult,
    HealthSource,
)
from monitor.actuator.gates.data import CheckGate, CoverageGate
from monitor.actuator.gates.health import HealthGate, HttpHealthProbe, interpret
from monitor.actuator.gates.registry import GATES, GateDeps, build_gates

__all__ = [
    "GATES",
    "CheckGate",
    "CheckSource",
    "CheckValue",
    "CoverageGate",
    "Gate",
    "GateContext",
    "GateDeps",
    "GateResult",
    "HealthGate",
    "HealthProbe",
    "HealthResult",
    "HealthSource",
    "HttpHealthProbe",
    "build_gates",
    "interpret",
]
