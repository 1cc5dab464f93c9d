"""Gate and health-probe protocols: what may hold a trigger back, and why."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, Literal, Protocol

from monitor.actuator.config import ServiceConfig
from monitor.config import PhaseConfig, PipelineConfig
from monitor.tracker import RunState

HealthStatus = Literal["pass", "warn", "fail"]
Endpoint = Literal["health", "ready", "deep"]


@dataclass(frozen=True)
class HealthResult:
    """One probe of a service: pass, warn (degraded) or fail, with why."""

    service: str
    status: HealthStatus
    detail: str
    checked_at: datetime
    http_status: int | None = None
    version: str | None = None  # the body's version / releaseId: a change is a deploy

    def healthy(self, warn_is_healthy: bool = True) -> bool:
        return self.status == "pass" or (warn_is_healthy and self.status == "warn")


class HealthProbe(Protocol):
    """Probes a service's health endpoints (``HttpHealthProbe``; ``SimulatedProbe`` in replay)."""

    def probe(
        self, service: str, config: ServiceConfig, endpoints: Sequence[Endpoint], at: datetime
    ) -> HealthResult:
        """The worst of the given endpoints' answers; never raises for the service's failures."""
        ...


class HealthSource(Protocol):
    """Where a health gate gets a recent probe result (the actuator's health monitor)."""

    def current(self, service: str, endpoints: Sequence[Endpoint], now: datetime) -> HealthResult:
        """A probe at most the configured age old, probing now when there is none."""
        ...

    def fresh(self, service: str, endpoints: Sequence[Endpoint], now: datetime) -> bool:
        """Whether ``current`` would answer from memory, without probing."""
        ...


@dataclass(frozen=True)
class GateContext:
    """What a gate sees: the target phase, its run (if tracked yet) and the time."""

    pipeline: PipelineConfig
    phase: PhaseConfig
    run: RunState | None
    now: datetime


@dataclass(frozen=True)
class GateResult:
    """A gate's answer; ``reason`` is the gate kind (health, coverage, check, guard)."""

    passed: bool
    reason: str
    detail: str = ""
    service: str | None = None

    @classmethod
    def ok(cls, reason: str) -> GateResult:
        return cls(True, reason)


class Gate(Protocol):
    """One condition a trigger must meet before it is sent."""

    kind: str

    def check(self, ctx: GateContext) -> GateResult:
        """Pass, or say what holds the trigger (the actuator defers and retries)."""
        ...


@dataclass(frozen=True)
class CheckValue:
    """A data check's latest result (coverage, freshness, row counts).

    ``detail`` is the rest of the stored result, ``{"name", "value", "at", "entities":
    [...]}``: ``entities`` lists the entity ids the check found missing (games, players),
    which the ``rerun_missing`` playbook sends in its trigger."""

    name: str
    value: float
    at: datetime
    detail: Mapping[str, Any] = field(default_factory=dict)

    @property
    def entities(self) -> tuple[str, ...]:
        """The missing entity ids the result lists (none when it lists none)."""
        found = self.detail.get("entities")
        if not isinstance(found, list | tuple):
            return ()
        return tuple(str(e) for e in found)


class CheckSource(Protocol):
    """Where data gates read check results (the store live, the replay's check lines)."""

    def latest(self, name: str) -> CheckValue | None:
        """The newest result of check ``name``, or None when it never ran."""
        ...
