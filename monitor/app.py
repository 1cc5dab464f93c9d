"""Wires the components together: one ``Phasewatch`` per process (serve) or simulation (replay)."""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import date, datetime, timedelta
from pathlib import Path
from typing import Any

from opentelemetry.sdk.trace import SpanProcessor

from alerts.router import Channel, LogChannel, SimpleRouter
from monitor.clock import Clock, SystemClock
from monitor.collector import Collector
from monitor.config import Config
from monitor.store.base import EventStore
from monitor.store.sqlite import SQLiteStore
from monitor.telemetry.metrics import Metrics
from monitor.telemetry.tracing import RunTracer, build_tracer_provider
from monitor.tracker import RunTracker

log = logging.getLogger(__name__)

Job = Callable[[datetime], None]
ReportSection = Callable[[], list[dict[str, Any]]]
REBUILD_DAYS = 14


@dataclass
class JobRun:
    """When a periodic job last ran and how it ended."""

    name: str
    last_run: datetime | None = None
    last_error: str | None = None
    runs: int = 0


@dataclass
class Phasewatch:
    """Every component of one phasewatch instance, sharing one clock, store and registry."""

    config: Config
    clock: Clock
    store: EventStore
    metrics: Metrics
    tracker: RunTracker
    tracer: RunTracer
    collector: Collector
    router: SimpleRouter
    jobs: dict[str, Job] = field(default_factory=dict)
    job_runs: dict[str, JobRun] = field(default_factory=dict)
    sections: dict[str, ReportSection] = field(default_factory=dict)

    @classmethod
    def build(
        cls,
        config: Config,
        *,
        db_path: str | Path = "phasewatch.db",
        clock: Clock | None = None,
        span_processor: SpanProcessor | None = None,
        channels: list[Channel] | None = None,
        store: EventStore | None = None,
    ) -> Phasewatch:
        """Open the store, rebuild run state from it, and wire telemetry and alerting."""
        clock = clock or SystemClock()
        store = store or SQLiteStore(db_path)
        metrics = Metrics()
        tracker = RunTracker(config, retention_days=REBUILD_DAYS)
        provider = build_tracer_provider(config.telemetry, span_processor)
        tracer = RunTracer(provider, metrics)
        collector = Collector(config, store, tracker, metrics, tracer, clock)
        router = SimpleRouter(channels if channels is not None else [LogChannel()])
        app = cls(config, clock, store, metrics, tracker, tracer, collector, router)
        app.rebuild()
        return app

    def rebuild(self) -> int:
        """Rebuild run state from the store (recent run dates only); returns events replayed."""
        since: date = self.clock.now().date() - timedelta(days=REBUILD_DAYS + 2)
        count = self.tracker.rebuild(self.store.events(since_run_date=since))
        self.metrics.runs_tracked.set(len(self.tracker))
        if count:
            log.info("event=tracker.rebuilt events=%d runs=%d", count, len(self.tracker))
        return count

    def add_job(self, name: str, job: Job) -> None:
        """Register periodic work; it runs on every tick and as ``POST /v1/jobs/{name}``."""
        if name in self.jobs:
            raise ValueError(f"job {name!r} is already registered")
        self.jobs[name] = job
        self.job_runs[name] = JobRun(name)

    def run_job(self, name: str, now: datetime | None = None) -> JobRun:
        """Run one job now; its failure is recorded and logged, never raised."""
        job = self.jobs[name]
        when = now or self.clock.now()
        record = self.job_runs[name]
        try:
            job(when)
            record.last_error = None
        except Exception as exc:
            record.last_error = repr(exc)
            log.exception("event=job.failed job=%s", name)
        record.last_run = when
        record.runs += 1
        return record

    def add_report_section(self, name: str, section: ReportSection) -> None:
        """Contribute a list to the replay report (``slos``, ``anomalies``, ``triggers``...)."""
        self.sections[name] = section

    def report_sections(self) -> dict[str, list[dict[str, Any]]]:
        return {name: section() for name, section in self.sections.items()}

    def tick(self, now: datetime | None = None) -> None:
        """Run every periodic job once at ``now``."""
        when = now or self.clock.now()
        for name in self.jobs:
            self.run_job(name, when)

    def close(self) -> None:
        self.tracer.shutdown()
        self.store.close()
