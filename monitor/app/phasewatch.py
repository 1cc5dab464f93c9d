"""Wires the components together: one ``Phasewatch`` per process (serve) or simulation (replay).

``Phasewatch`` is the ``monitor.host.Host`` the components are built on.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import date, datetime
from pathlib import Path
from typing import Any

from opentelemetry.sdk.trace import SpanProcessor

from alerts.engine import AlertEngine
from alerts.router import AlertRouter, Channel
from monitor.actuator.engine import Actuator, install
from monitor.actuator.expectations import install_expectations
from monitor.actuator.gates import CheckSource, HealthProbe, HttpHealthProbe
from monitor.actuator.gates.base import HealthResult
from monitor.actuator.sinks import TriggerSink, default_sinks
from monitor.app.anomalies import AnomalyMonitor
from monitor.app.daily_sources import install_daily_sources
from monitor.clock import Clock, SystemClock
from monitor.collector import Collector, IngestResult
from monitor.config import Config, resolve_secret
from monitor.errors import ConfigError, Problem
from monitor.events import Event
from monitor.host import Job, ReportSection
from monitor.store.base import EventStore
from monitor.store.sqlite import SQLiteStore
from monitor.store.window import window_events, window_start
from monitor.telemetry.exporters import EXPORTERS, ExporterFactory
from monitor.telemetry.metrics import Metrics
from monitor.telemetry.periodic import Exporter, PeriodicExport
from monitor.telemetry.tracing import RunTracer, build_tracer_provider
from monitor.tracker import RunTracker, Update
from slo.evaluator import SLOEngine
from slo.sli.base import HealthProbe as SLOProbe

log = logging.getLogger(__name__)

HISTORY_DAYS = 70  # run dates replayed on start: the detectors' 8 weeks of seasonality, SLO windows


def cold_window_days(config: Config, days: int = 0, *, slos: bool = True) -> int:
    """The run dates a cold command replays: the tracked run dates (the runs it shows),
    ``days`` + 2 (a report's own window, and the runs that started the day before it) and,
    with ``slos``, the longest SLO window with its margin (the SLO budgets it shows)."""
    return max(SLOEngine(config).history_days if slos else 0, config.runs.track_days, days + 2)


@dataclass
class JobRun:
    """When a periodic job last ran and how it ended."""

    name: str
    last_run: datetime | None = None
    last_error: str | None = None
    runs: int = 0
    every_s: float | None = None

    def due(self, now: datetime) -> bool:
        """Whether a tick at ``now`` should run the job (never run, or its interval passed)."""
        if self.every_s is None or self.last_run is None:
            return True
        return (now - self.last_run).total_seconds() >= self.every_s


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
    router: AlertRouter
    jobs: dict[str, Job] = field(default_factory=dict)
    job_runs: dict[str, JobRun] = field(default_factory=dict)
    sections: dict[str, ReportSection] = field(default_factory=dict)
    rebuilders: list[Callable[[Update], None]] = field(default_factory=list)
    anomalies: AnomalyMonitor = field(init=False)
    slo: SLOEngine = field(init=False)
    alerting: AlertEngine = field(init=False)
    actuator: Actuator | None = field(default=None, init=False)
    started_at: datetime = field(init=False)  # when the metrics began counting
    export: PeriodicExport | None = field(default=None, init=False)

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
        dry_run_alerts: bool = False,
        probe: HealthProbe | None = None,
        sinks: Mapping[str, TriggerSink] | None = None,
        checks: CheckSource | None = None,
        exporters: Mapping[str, ExporterFactory] = EXPORTERS,
        history_days: int = HISTORY_DAYS,
    ) -> Phasewatch:
        """Open the store, rebuild run state from it, and wire telemetry and alerting.

        ``history_days``: the run dates the rebuild replays (a cold CLI command that needs a
        shorter window passes it, see ``cold_window_days``).
        """
        clock = clock or SystemClock()
        store = store or SQLiteStore(db_path)
        started_at = clock.now()
        metrics = Metrics()
        tracker = RunTracker(
            config, retention_days=config.runs.track_days, clock=clock,
            max_runs=config.runs.max_tracked,
            on_evict=lambda reason, n: metrics.runs_evicted.labels(reason).inc(n),
        )
        provider = build_tracer_provider(config.telemetry, span_processor, exporters)
        tracer = RunTracer(provider, metrics)
        collector = Collector(config, store, tracker, metrics, tracer, clock)
        # Alert state and the outbox live in the store's database (a throwaway one when the
        # store is not SQLite). ``channels`` replaces the configured channels (tests);
        # ``dry_run_alerts`` delivers to in-memory channels of the configured names (replay).
        alerting = AlertEngine.build(
            config.alerting, db=store if isinstance(store, SQLiteStore) else SQLiteStore(":memory:"),
            clock=clock, secret=resolve_secret, counter=metrics.alerts, config=config,
            tracker=tracker, channels=channels, dry_run=dry_run_alerts, backlog=metrics.alert_backlog,
        )
        router = alerting.router
        app = cls(config, clock, store, metrics, tracker, tracer, collector, router)
        app.started_at = started_at
        app.alerting = alerting
        app.anomalies = AnomalyMonitor(config, metrics, router, clock)
        collector.listeners.append(app.anomalies.on_update)
        app.rebuilders.append(app.anomalies.replay)
        app.add_report_section("anomalies", app.anomalies.as_report)
        app.slo = SLOEngine(config)
        collector.listeners.append(app.slo.on_update)
        app.rebuilders.append(app.slo.on_update)
        app.add_job("slo", app.evaluate_slos, every_s=config.server.slo_interval_s)
        app.add_report_section("slos", app.slo_report)
        app.rebuild(history_days)
        # The actuator: real HTTP probes and the configured sinks unless replay / tests give
        # simulated ones (monitor.actuator.simulated).
        app.actuator = install(
            app, probe=probe or HttpHealthProbe(config.actuator.health.timeout_s),
            sinks=sinks if sinks is not None else default_sinks(), checks=checks,
            timeouts=app.anomalies.learned_timeout,
        )
        app.actuator.ctx.health.listeners.append(app.observe_probe)
        app.add_job("deliver-alerts", alerting.deliver_alerts)
        app.add_job("daily-health-check", alerting.daily_job)
        app.add_report_section("daily_summaries", alerting.summaries_report)
        install_daily_sources(app, alerting, app.actuator)
        install_expectations(app, app.actuator)
        return app

    def rebuild(self, history_days: int = HISTORY_DAYS) -> int:
        """Rebuild run state (and every rebuilder's) from the store; returns events replayed.

        Events of the last ``history_days`` run dates are replayed in arrival order, exactly
        as live ingest saw them: the tracker keeps the recent runs, and rebuilders (anomaly
        detectors, SLO aggregates) relearn their history but raise nothing. An event whose
        run date is outside today's accepted window (stored before the window existed) is
        left out, and each event's own time stands for when it arrived.
        """
        now = self.clock.now()
        since: date = window_start(now.date(), history_days)
        windows = {p.id: self.config.runs.window(now.astimezone(p.tz).date())
                   for p in self.config.pipelines}
        self.tracker.rebuild(())
        count = 0
        for event in window_events(self.store, since):
            first, last = windows.get(event.pipeline, (date.max, date.min))
            if not first <= event.run_date <= last:
                continue
            try:
                update = self.tracker.apply(event, min(event.timestamp, now))
                for rebuilder in self.rebuilders:
                    rebuilder(update)
            except Exception:  # one bad stored event must not stop the service from starting
                self.metrics.telemetry_errors.labels("rebuild").inc()
                log.exception("event=rebuild.event_failed event_id=%s", event.event_id)
                continue
            count += 1
        self.tracker.sweep(now, force=True)
        self.metrics.runs_tracked.set(len(self.tracker))
        if count:
            log.info("event=state.rebuilt events=%d runs=%d", count, len(self.tracker))
        return count

    def evaluate_slos(self, now: datetime) -> None:
        """The ``slo`` job: evaluate every SLO, raise and clear alerts, export the gauges."""
        self.metrics.slo.update(self.slo.tick(now, self.router))

    def observe_probe(self, result: HealthResult) -> None:
        """A health probe's result, for the availability SLOs."""
        self.slo.observe_probe(SLOProbe(result.service, result.checked_at, result.status))

    def slo_report(self, history: bool = False) -> list[dict[str, Any]]:
        """Every SLO's status now (``GET /v1/slos``); ``history``: with its units per day."""
        return [status.as_dict() for status in self.slo.evaluate(self.clock.now(), daily=history)]

    def add_job(self, name: str, job: Job, every_s: float | None = None) -> None:
        """Register periodic work, run on the ticks at least ``every_s`` apart (default: every
        tick) and on demand as ``POST /v1/jobs/{name}``."""
        if name in self.jobs:
            raise ValueError(f"job {name!r} is already registered")
        self.jobs[name] = job
        self.job_runs[name] = JobRun(name, every_s=every_s)

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

    def report_section(self, name: str) -> list[dict[str, Any]]:
        """The current list of one report section."""
        return self.sections[name]()

    def add_listener(self, listener: Callable[[Update], None]) -> None:
        """Call ``listener`` with each newly stored event's update (a collector listener)."""
        self.collector.listeners.append(listener)

    def ingest(self, events: Sequence[Event]) -> IngestResult:
        """Store and fold in events as if a producer had sent them."""
        return self.collector.ingest(events)

    def report_sections(self) -> dict[str, list[dict[str, Any]]]:
        return {name: section() for name, section in self.sections.items()}

    def tick(self, now: datetime | None = None) -> None:
        """Run every periodic job that is due at ``now``."""
        when = now or self.clock.now()
        for name, record in self.job_runs.items():
            if record.due(when):
                self.run_job(name, when)

    def start_export(self, exporter: Exporter | None = None) -> None:
        """Write the metrics to Cloud Monitoring on a thread of their own when
        ``export.cloud_monitoring`` is configured (``serve`` does; replay and demo never do).

        ``exporter`` replaces the one built from the config and the default credentials
        (tests). ConfigError when google-cloud-monitoring, the credentials or the project
        are missing.
        """
        config = self.config.export.cloud_monitoring
        if config is None or self.export is not None:
            return
        if exporter is None:
            try:  # google-cloud-monitoring is loaded only when the export is on
                from monitor.telemetry import cloud_monitoring
            except ImportError as exc:
                raise ConfigError("export.cloud_monitoring", [Problem(
                    "(package)", f"needs google-cloud-monitoring ({exc.name} is not installed); "
                    "allowed: pip install 'phasewatch[gcp]', or remove export.cloud_monitoring",
                )]) from None
            exporter = cloud_monitoring.build(config, self.metrics, start=self.started_at,
                                              clock=self.clock)
        self.export = PeriodicExport(exporter, self.clock, config.interval_s, self.metrics,
                                     "cloud_monitoring")
        self.export.start()

    def close(self) -> None:
        if self.export is not None:  # first: its last write reads the final values
            self.export.shutdown()
        if self.actuator is not None:
            self.actuator.close()
        self.alerting.close()
        self.tracer.shutdown()
        self.store.close()
