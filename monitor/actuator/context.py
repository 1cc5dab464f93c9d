"""What every part of the actuator shares: config, clock, store, alerts, sinks, gates."""

from __future__ import annotations

import random
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from datetime import date, datetime, timedelta

from monitor.actuator.config import ActuatorConfig
from monitor.actuator.gates.base import CheckSource, Gate
from monitor.actuator.gates.registry import GateDeps, build_gates
from monitor.actuator.guards import Guards
from monitor.actuator.health import HealthMonitor
from monitor.actuator.notify import Notifier
from monitor.actuator.sinks.base import TriggerSink
from monitor.actuator.store import ActuatorStore
from monitor.clock import Clock
from monitor.config import Config, PhaseConfig, PipelineConfig
from monitor.horizon import outside_run_dates
from monitor.telemetry.metrics import Metrics
from monitor.tracker import RunState, RunTracker

# (pipeline, phase, processor or None for the whole phase, mode) -> seconds, or None for
# "no opinion" (the static timeout from config applies). Adaptive timeouts plug in here.
Timeouts = Callable[[str, str, str | None, str], float | None]
Submit = Callable[[str, int], None]  # ("trigger" | "plan", row id): deliver it now or soon


@dataclass
class Context:
    """The actuator's collaborators, built once by ``install``."""

    config: Config
    clock: Clock
    store: ActuatorStore
    notifier: Notifier
    metrics: Metrics
    tracker: RunTracker
    health: HealthMonitor
    checks: CheckSource
    guards: Guards
    sinks: Mapping[str, TriggerSink]
    rng: random.Random
    timeouts: Timeouts | None = None
    submit: Submit = lambda kind, row_id: None
    _gates: dict[tuple[str, str], list[Gate]] = field(default_factory=dict)

    @property
    def acfg(self) -> ActuatorConfig:
        return self.config.actuator

    def pipeline(self, name: str) -> PipelineConfig | None:
        return self.config.pipeline_map.get(name)

    def phase(self, pipeline: str, phase: str) -> PhaseConfig | None:
        p = self.config.pipeline_map.get(pipeline)
        return p.phase_map.get(phase) if p else None

    def gates(self, pipeline: PipelineConfig, phase: PhaseConfig) -> list[Gate]:
        key = (pipeline.id, phase.id)
        gates = self._gates.get(key)
        if gates is None:
            deps = GateDeps(self.health, self.checks, self.acfg.health.warn_is_healthy)
            gates = self._gates[key] = build_gates(phase, deps)
        return gates

    def run(self, key: tuple[str, str, str]) -> RunState | None:
        return self.tracker.get(key)

    def recent_runs(self, now: datetime) -> list[RunState]:
        """Tracked runs the actuator may act on: inside their pipeline's actionable horizon
        (``monitor.horizon``) with an event within ``window_h`` (older ones are left alone)."""
        since = now - timedelta(hours=self.acfg.window_h)
        out = []
        for run in self.tracker:
            if run.last_event_at is None or run.last_event_at < since:
                continue
            pipeline = self.pipeline(run.pipeline)
            if pipeline is None or outside_run_dates(pipeline, run.run_date, run.mode, now):
                continue
            out.append(run)
        return out

    def timeout_s(self, pipeline: str, phase: str, processor: str | None, mode: str,
                  static_s: float) -> float:
        """The adaptive timeout when the hook has one, else ``static_s`` (and on the dashboards)."""
        seconds = static_s
        if self.timeouts is not None:
            try:
                value = self.timeouts(pipeline, phase, processor, mode)
            except Exception:
                value = None
            if value is not None and value > 0:
                seconds = float(value)
        self.metrics.timeouts.labels(pipeline, phase, processor or "", mode).set(seconds)
        return seconds


def run_key(pipeline: str, run_date: date | str, mode: str) -> tuple[str, str, str]:
    return (pipeline, run_date if isinstance(run_date, str) else run_date.isoformat(), mode)
