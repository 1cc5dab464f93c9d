"""The outside world of a replay: health and trigger targets from its ``health`` / ``target``
/ ``check`` lines (a ``World``, such as ``monitor.app.sim.replay.SimulatedWorld``), behind the
real protocols.

A service with no health line passes; a phase with no target line accepts triggers.
Health bodies go through the same reading as live probes, so a replayed body that names
the wrong service is unhealthy exactly as it would be live.
"""

from __future__ import annotations

import json
import threading
from collections.abc import Mapping, Sequence
from datetime import date, datetime
from typing import Any, Protocol

from monitor.actuator.config import ServiceConfig
from monitor.actuator.gates.base import CheckValue, Endpoint, HealthResult
from monitor.actuator.gates.health import body_version, interpret
from monitor.actuator.sinks.base import SinkResult, Target, TriggerRequest, TriggerSink


class HealthAnswer(Protocol):
    """What a service's health endpoint answers from now on (``status`` and maybe a body)."""

    @property
    def status(self) -> str: ...

    @property
    def body(self) -> dict[str, Any] | None: ...


class TargetAnswer(Protocol):
    """Whether a phase's trigger target accepts (``ok``) or fails (``fail``) from now on."""

    @property
    def status(self) -> str: ...


class CheckAnswer(Protocol):
    """A data check's latest result (and the entity ids it found missing, if any)."""

    @property
    def value(self) -> float: ...

    @property
    def timestamp(self) -> datetime: ...

    @property
    def entities(self) -> Sequence[str] | None: ...


class World(Protocol):
    """The latest answers by service, by phase and by check name."""

    @property
    def health(self) -> Mapping[str, HealthAnswer]: ...

    @property
    def targets(self) -> Mapping[str, TargetAnswer]: ...

    @property
    def checks(self) -> Mapping[str, CheckAnswer]: ...


class SimulatedProbe:
    """A HealthProbe answering from the world's latest ``health`` line for the service."""

    def __init__(self, world: World) -> None:
        self.world = world

    def probe(self, service: str, config: ServiceConfig, endpoints: Sequence[Endpoint],
              at: datetime) -> HealthResult:
        line = self.world.health.get(service)
        if line is None:
            return HealthResult(service, "pass", "no health line (assumed healthy)", at, 200)
        code = 503 if line.status == "fail" else 200
        body = line.body if line.body is not None else {"status": line.status}
        raw = json.dumps(body).encode()
        status, detail = interpret(code, raw, config, "health")
        return HealthResult(service, status, detail, at, code, body_version(raw))


class SimulatedSink:
    """A TriggerSink answering from the world's latest ``target`` line for the phase."""

    def __init__(self, world: World) -> None:
        self.world = world
        self.sent: list[tuple[Target, TriggerRequest, SinkResult]] = []
        self._lock = threading.Lock()

    def send(self, target: Target, request: TriggerRequest) -> SinkResult:
        line = self.world.targets.get(request.phase)
        if line is not None and line.status == "fail":
            result = SinkResult("failed", "simulated target failure")
        else:
            result = SinkResult("accepted", "simulated target accepted")
        with self._lock:
            self.sent.append((target, request, result))
        return result

    def close(self) -> None:
        return None


class SimulatedChecks:
    """A CheckSource answering from a world's check answers, for tests that set them
    directly (a replay records its ``check`` lines in the check store, as live results)."""

    def __init__(self, world: World) -> None:
        self.world = world

    def latest(self, name: str, run_date: date | None = None) -> CheckValue | None:
        """The world's answer (its lines carry no run date: about every one)."""
        line = self.world.checks.get(name)
        if line is None:
            return None
        entities = tuple(line.entities) if line.entities is not None else None
        return CheckValue(name, line.value, line.timestamp, entities, source="replay")


def simulated(world: World) -> tuple[SimulatedProbe, dict[str, TriggerSink], SimulatedChecks]:
    """(probe, sinks, checks) for ``Phasewatch.build`` in replay and demo."""
    sink = SimulatedSink(world)
    return SimulatedProbe(world), {"http": sink, "pubsub": sink, "log": sink}, SimulatedChecks(world)
