"""Gate and health-probe protocols: what may hold a trigger back, and why."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import date, datetime
from typing import Literal, Protocol

from monitor.actuator.config import ServiceConfig
from monitor.checks.result import CheckResult
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


CheckValue = CheckResult
"""A data check's latest result (coverage, freshness, row counts; missing ``entities``)."""


class CheckSource(Protocol):
    """Where data gates read check results (``monitor.checks.engine.Checks``: whatever sent
    them, runners, ``POST /v1/checks``, ``phasewatch check record`` or a replay's lines)."""

    def latest(self, name: str, run_date: date | None = None) -> CheckValue | None:
        """The result of check ``name`` that stands, or None when it never ran; with
        ``run_date``, the newest about that run date (or about none)."""
        ...
