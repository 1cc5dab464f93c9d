"""The gate registry: config ``kind`` → builder, and the gates of a phase's trigger."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from monitor.actuator.config import CheckGateConfig, CoverageGateConfig, GateConfig, HealthGateConfig
from monitor.actuator.gates.base import CheckSource, Gate, HealthSource
from monitor.actuator.gates.data import CheckGate, CoverageGate
from monitor.actuator.gates.health import HealthGate
from monitor.config import PhaseConfig


@dataclass(frozen=True)
class GateDeps:
    """What gate builders may use."""

    health: HealthSource
    checks: CheckSource
    warn_is_healthy: bool = True


def _health(cfg: GateConfig, phase: PhaseConfig, deps: GateDeps) -> Gate:
    assert isinstance(cfg, HealthGateConfig)
    services = cfg.services if cfg.services is not None else phase.services
    return HealthGate(services, cfg.endpoints, deps.health, deps.warn_is_healthy)


def _coverage(cfg: GateConfig, phase: PhaseConfig, deps: GateDeps) -> Gate:
    assert isinstance(cfg, CoverageGateConfig)
    return CoverageGate(cfg)


def _check(cfg: GateConfig, phase: PhaseConfig, deps: GateDeps) -> Gate:
    assert isinstance(cfg, CheckGateConfig)
    return CheckGate(cfg, deps.checks)


GATES: dict[str, Callable[[GateConfig, PhaseConfig, GateDeps], Gate]] = {
    "health": _health, "coverage": _coverage, "check": _check,
}


def build_gates(phase: PhaseConfig, deps: GateDeps) -> list[Gate]:
    """The gates of a phase's trigger: configured ones, or a health gate on its services."""
    configs = phase.policy.gates
    if configs is None:
        configs = (HealthGateConfig(kind="health"),) if phase.services else ()
    gates: list[Gate] = []
    for cfg in configs:
        builder = GATES.get(cfg.kind)
        if builder is None:  # config validation makes this unreachable; say so if not
            raise ValueError(f"unknown gate kind {cfg.kind!r}; allowed: {', '.join(GATES)}")
        gates.append(builder(cfg, phase, deps))
    return gates

