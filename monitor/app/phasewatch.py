"""Wires the components together: one ``Phasewatch`` per process (serve) or simulation (replay).

``Phasewatch`` is the ``monitor.host.Host`` the components are built on. Several processes
may share one PostgreSQL store: each stores the events it receives and follows those the
others store (``follow``), so every process's run state is the whole store's; one of them
leads (``cluster``) and runs the jobs and the listeners that act.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import date, datetime, timedelta
from pathlib import Path
from typing import Any

from opentelemetry.sdk.trace import SpanProcessor

from alerts.correlation import Correlator
from alerts.engine import AlertEngine
from alerts.router import AlertRouter, Channel
from monitor.actuator.engine import Actuator, install
from monitor.actuator.expectations import install_expectations
from monitor.actuator.gates import CheckSource, HealthProbe, HttpHealthProbe
from monitor.actuator.gates.base import HealthResult
from monitor.actuator.sinks import TriggerSink, default_sinks
from monitor.app.anomalies import AnomalyMonitor
from monitor.app.daily_sources import install_daily_sources
from monitor.app.kpi_sources import install_kpi_sources
from monitor.app.orphans import resolve_orphans, tell_unknown
from monitor.app.retention import install_retention
from monitor.app.slo_history import stored_probes
from monitor.app.snapshot import StateSnapshots
from monitor.checks.engine import Checks, install_checks
from monitor.checks.result import CheckResult
from monitor.checks.runners import RUNNERS, RunnerFactory, local_runners
from monitor.clock import Clock, SystemClock
from monitor.collector import Collector, IngestResult
from monitor.config import HISTORY_DAYS, Config, resolve_secret
from monitor.errors import ConfigError, Problem
from monitor.events import Event
from monitor.host import Job, PushHandler, ReportSection
from monitor.publish.publisher import Publisher, install_publisher
from monitor.publish.senders import Sender
from monitor.scheduler.watch import SchedulerWatch, install_scheduler
from monitor.store.base import ComponentStore, EventStore, ProgressRead, Repeat, RunKey
from monitor.store.cluster import Coordinator
from monitor.store.probes import ProbeLog
from monitor.store.registry import coordinator, open_store
from monitor.store.sqlite import SQLiteStore
from monitor.store.window import window_start
from monitor.telemetry.exporters import EXPORTERS, ExporterFactory
from monitor.telemetry.metrics import Metrics
from monitor.telemetry.mirror import Mirror, MirrorSink
from monitor.telemetry.periodic import Exporter, PeriodicExport
from monitor.telemetry.tracing import RunTracer, build_tracer_provider
from monitor.tracker import RunTracker, Update
from slo.evaluator import SLOEngine
from slo.sli.base import CheckReading
from slo.sli.base import HealthProbe as SLOProbe

log = logging.getLogger(__name__)


def _inside(windows: Mapping[str, tuple[date, date]], pipeline: str, run_date: date) -> bool:
    """Whether ``run_date`` is within ``pipeline``'s accepted run dates (``windows``)."""
    first, last = windows.get(pipeline, (date.max, date.min))
    return first <= run_date <= last


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
    each_instance: bool = False
    wake: Callable[[datetime, datetime], bool] | None = None  # (last run, now): due early

    def due(self, now: datetime) -> bool:
        """Whether a tick at ``now`` should run the job (never run, its interval passed, or
        its ``wake`` says something happened since its last run)."""
        if self.every_s is None or self.last_run is None:
            return True
        if (now - self.last_run).total_seconds() >= self.every_s:
            return True
        return self.wake is not None and self.wake(self.last_run, now)


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
    cluster: Coordinator
    position: int = 0  # how far this process has read the store's events
    replayed: int = 0  # how far the start-up replay read them (up to the judged mark)
    led: bool = False  # whether it led when it last looked (a tick; a shared store's follow)
    jobs: dict[str, Job] = field(default_factory=dict)
    job_runs: dict[str, JobRun] = field(default_factory=dict)
    sections: dict[str, ReportSection] = field(default_factory=dict)
    rebuilders: list[Callable[[Update], None]] = field(default_factory=list)
    anomalies: AnomalyMonitor = field(init=False)
    slo: SLOEngine = field(init=False)
    probes: ProbeLog = field(init=False)
    alerting: AlertEngine = field(init=False)
    checks: Checks = field(init=False)
    actuator: Actuator | None = field(default=None, init=False)
    correlator: Correlator = field(init=False)
    started_at: datetime = field(init=False)  # when the metrics began counting
    export: PeriodicExport | None = field(default=None, init=False)
    scheduler: SchedulerWatch = field(init=False)
    publisher: Publisher | None = field(default=None, init=False)
    mirror: Mirror | None = field(default=None, init=False)
    snapshots: StateSnapshots | None = field(default=None, init=False)

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
        check_runners: Mapping[str, RunnerFactory] | None = None,
        publish_senders: Mapping[str, Sender] | None = None,
        history_days: int = HISTORY_DAYS,
        snapshots: bool = False,
        snapshot_saves: bool = True,
        progress: ProgressRead = "all",
        judge: bool = True,
    ) -> Phasewatch:
        """Open the store, rebuild run state from it, and wire telemetry and alerting.

        ``check_runners``: the runners scheduled checks may use (default: every runner on
        real time; on simulated time only the local ones, as a replay never queries a
        warehouse: its ``check`` lines stand in). ``checks`` replaces where the actuator
        reads check results (tests). ``history_days``: the run dates the rebuild replays (a
        cold CLI command that needs a shorter window passes it, see ``cold_window_days``).
        ``snapshots``: restore the state the events build from the store's snapshot (and
        replay only the events after it), and unless not ``snapshot_saves`` save it
        periodically and on ``close`` (``monitor.app.snapshot``; ``serve`` saves, the cold CLI
        commands only restore). ``progress="first"``: a cold command that reads no
        heartbeat replays no repeated progress event (``rebuild``). ``judge``: the events
        stored after the store's judged mark (a process killed between storing a batch and
        judging it) are judged once built, as ingest would have, not replayed in silence,
        and the mark is kept from then on (``judge_stored``; a store of one process only);
        the cold commands, which must neither act nor tell, pass False.
        """
        clock = clock or SystemClock()
        store = store or open_store(str(db_path), config.store)
        cluster = coordinator(store, config.store, clock)
        cluster.join()  # alive; it may lead once built (the lease would run out while rebuilding)
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
        # store has no tables for components). ``channels`` replaces the configured channels
        # (tests); ``dry_run_alerts`` delivers to in-memory channels of the configured names.
        alerting = AlertEngine.build(
            config.alerting, db=store if isinstance(store, ComponentStore) else SQLiteStore(":memory:"),
            clock=clock, secret=resolve_secret, counter=metrics.alerts, config=config,
            tracker=tracker, channels=channels, dry_run=dry_run_alerts, backlog=metrics.alert_backlog,
            exclusive=cluster.exclusive,
        )
        router = alerting.router
        app = cls(config, clock, store, metrics, tracker, tracer, collector, router, cluster)
        app.started_at = started_at
        collector.acting = lambda: cluster.leading
        collector.unknown_listeners.append(
            lambda unknown, now: tell_unknown(config, router, unknown, now))
        alerting.channel_watch.acting = lambda: cluster.leading
        collector.learners = app.rebuilders
        app.alerting = alerting
        app.probes = ProbeLog(alerting.store.db)
        app.anomalies = AnomalyMonitor(config, metrics, router, clock)
        collector.listeners.append(app.anomalies.on_updates)
        app.rebuilders.append(app.anomalies.replay)
        app.add_report_section("anomalies", app.anomalies.as_report)
        app.slo = SLOEngine(config)
        collector.listeners.append(app.slo.on_updates)
        app.rebuilders.append(app.slo.on_update)
        app.add_report_section("slos", app.slo_report)
        # One incident for processors failing with one error signature (alerts/correlation.py).
        app.correlator = Correlator(config.alerting.correlation, router, router.severity)
        collector.listeners.append(app.correlator.on_updates)
        app.rebuilders.append(app.correlator.replay)
        if snapshots and isinstance(store, ComponentStore):
            app.snapshots = StateSnapshots(store, config, {
                "tracker": tracker, "slo": app.slo, "anomalies": app.anomalies,
                "correlator": app.correlator,
            }, history_days, background=isinstance(clock, SystemClock), saves=snapshot_saves)
        # A shared store's mark is its leader's: the events after it are judged by this
        # process if it leads once built, else learned when the mark passes them (``follow``).
        judged = store.judged() if judge else None
        app.rebuild(history_days, progress, judged=judged)
        cluster.join()  # again after a long rebuild: alive before the actuator claims anything
        if check_runners is None:
            check_runners = RUNNERS if isinstance(clock, SystemClock) else local_runners()
        app.checks = install_checks(app, check_runners)
        app.checks.observers.append(app.observe_check)
        for result in app.checks.store.since(clock.now() - timedelta(days=HISTORY_DAYS)):
            app.observe_check(result)  # the SLIs relearn the check results they count
        # The actuator: real HTTP probes and the configured sinks unless replay / tests give
        # simulated ones (monitor.actuator.simulated).
        app.actuator = install(
            app, probe=probe or HttpHealthProbe(config.actuator.health.timeout_s),
            sinks=sinks if sinks is not None else default_sinks(),
            checks=checks if checks is not None else app.checks,
            timeouts=app.anomalies.learned_timeout,
        )
        app.actuator.ctx.health.listeners.append(app.observe_probe)
        app.restore_health()
        # After the health probes of a tick, so an outage's end is counted before the alerts
        # it inhibited are flushed; early when a deadline passed or a probe status changed.
        app.add_job("slo", app.evaluate_slos, every_s=config.server.slo_interval_s)
        app.job_runs["slo"].wake = app.slo.wake
        app.add_job("correlate-failures", app.correlator.tick)
        app.add_job("deliver-alerts", alerting.deliver_alerts, each_instance=True)
        app.add_job("daily-health-check", alerting.daily_job)
        app.add_report_section("daily_summaries", alerting.summaries_report)
        install_daily_sources(app, alerting, app.actuator)
        install_kpi_sources(alerting, app.slo, app.actuator)
        install_expectations(app, app.actuator)
        cluster.heartbeat()  # built: lead if no other instance does
        app.scheduler = install_scheduler(app, check_value=app.check_value)
        app.actuator.ctx.notifier.explainers.append(app.scheduler.explain)  # paused jobs in pages
        alerting.snapshot_sources.append(app.scheduler.held)  # and in the daily summary
        # "Data available" events read the checks the actuator's gates read.
        app.publisher = install_publisher(app, app.actuator.ctx.checks, publish_senders)
        install_retention(app)  # the prune job: history past the retention section
        # Open alerts about what this config no longer has would never resolve.
        resolve_orphans(config, router, clock.now())
        if app.snapshots is not None and app.snapshots.saves:
            app.add_job("snapshot", app.save_snapshot, every_s=config.server.snapshot_interval_s)
        if judge:
            app.judge_stored(judged)
        return app

    def rebuild(self, history_days: int = HISTORY_DAYS, progress: ProgressRead = "all", *,
                judged: int | None = None) -> int:
        """Rebuild run state (and every rebuilder's) from the store; returns events replayed.
        Up to position ``judged`` if given (the events after it are for ``judge_stored``).

        Replayed in arrival order, exactly as live ingest saw them, each with the time it
        was stored: the events of the last ``history_days`` run dates (or ``runs.track_days``
        if longer), and those of every older run the tracker would still hold because it
        received an event in the last ``runs.track_days`` (a backfill being loaded), at most
        ``runs.max_tracked`` of them. The tracker keeps what it keeps live, and rebuilders
        (anomaly detectors, SLO aggregates) relearn their history but raise nothing. An
        event whose run date is outside today's accepted window (stored before the window
        existed) is left out. With ``snapshots``, a valid snapshot stands for the events it
        summarises: only the events stored after it are replayed, whatever their run date
        (the live process applied them all).

        ``progress="first"`` (the cold commands ``health-check`` and ``report --weekly``, never
        ``serve``): a progress event that repeats the event stored just before it
        (``EventStore.events``) is not parsed nor applied; only its run is seen then (the
        tracker drops the runs seen longest ago: the runs held stay the same at every
        event). A repeat changes nothing else those commands read: a processor's status,
        a phase's verdict, an SLO unit, an anomaly series or a failure; only a run's latest
        event time, a processor's last heartbeat and a batch's progress, which the actuator's
        stall watches read (not evaluated by those commands) (docs/benchmarks.md, "Cold CLI
        paths"; ``tests/test_cold_rebuild.py``).
        """
        now = self.clock.now()
        runs = self.config.runs
        since: date = window_start(now.date(), max(history_days, runs.track_days))
        windows = self._accepted(now)
        self.position = self.store.position()  # later events come through ``follow``
        until = self.position if judged is None else min(judged, self.position)
        self.replayed = until
        restored = self.snapshots.restore(now, self.position, judged) if self.snapshots else None
        if self.store.shared:  # the events after the mark: judged if this process leads
            self.position = until
        older: list[RunKey] = []
        if restored is None:
            self.tracker.rebuild(())
            older = self.store.runs_received_since(
                now - timedelta(days=runs.track_days), before_run_date=since,
                until=until, limit=runs.max_tracked,
            )
            history = self.store.history(since_run_date=since, runs=older, until=until,
                                         progress=progress)
        else:
            history = self.store.history(since_run_date=None, after=restored.position,
                                         until=until)
        count = 0
        for stored in history:
            if isinstance(stored, Repeat):  # its run's events are applied; it was seen then
                pipeline, run_date, _ = stored.run
                if _inside(windows, pipeline, date.fromisoformat(run_date)):
                    self.tracker.seen(stored.run, min(stored.received_at, now))
                    count += stored.count
                continue
            event = stored.event
            if not _inside(windows, event.pipeline, event.run_date):
                continue
            try:
                update = self.tracker.apply(event, min(stored.received_at, now))
                for rebuilder in self.rebuilders:
                    rebuilder(update)
            except Exception:  # one bad stored event must not stop the service from starting
                self.metrics.telemetry_errors.labels("rebuild").inc()
                log.exception("event=rebuild.event_failed event_id=%s", event.event_id)
                continue
            count += 1
        self.tracker.sweep(now, force=True)
        self.metrics.runs_tracked.set(len(self.tracker))
        probes = self._replay_probes()
        if count or probes or restored:
            log.info("event=state.rebuilt events=%d runs=%d older_runs=%d probes=%d snapshot=%s",
                     count, len(self.tracker), len(older), probes,
                     restored.position if restored else "none")
        return count

    def _accepted(self, now: datetime) -> dict[str, tuple[date, date]]:
        """Each pipeline's accepted run dates at ``now``: a stored event outside them (stored
        before the window existed) is neither replayed nor judged."""
        runs = self.config.runs
        return {p.id: runs.window(now.astimezone(p.tz).date()) for p in self.config.pipelines}

    def judge_stored(self, judged: int | None) -> int:
        """Judge the events stored after position ``judged`` (the store's judged mark, None
        for a store that never kept one) up to the rebuild's position, as ingest would have:
        run state, then the listeners, which act and tell (or learn, for a backfill). A
        process killed between storing a batch and judging it left them so: the producer's
        retry is a duplicate, and a replay in silence would have lost their alerts and
        actions. Then keep the mark as batches are judged; returns the events judged.

        A shared store's events after the mark are the leader's to judge: this process
        judges them if it leads, else learns up to the mark (``follow``)."""
        if self.store.shared:
            return self.follow()
        after = self.position if judged is None else min(judged, self.position)
        windows = self._accepted(self.clock.now())
        count = 0
        while after < self.position:
            events, read_to = self.store.tail(after, own=True)
            if read_to == after:
                break
            after = read_to
            count += self.collector.follow(
                [t for t in events if _inside(windows, t.event.pipeline, t.event.run_date)])
        if count:
            log.warning("event=state.judged_after_restart events=%d position=%d: stored before "
                        "the last stop and never judged (killed mid-batch)", count, self.position)
        self.collector.judge_from(self.position)
        return count

    def save_snapshot(self, now: datetime | None = None, *, wait: bool = False) -> None:
        """Save the state the events build into the store (the ``snapshot`` job, and on
        ``close``), unless a snapshot of later events is stored already; on real time the
        write finishes on a thread of its own unless ``wait``."""
        if self.snapshots is None or not self.snapshots.saves:
            return
        when = now or self.clock.now()
        self.follow()  # shared store: every event up to ``position`` is applied
        if self.store.shared and not self.cluster.leading:  # its own later ones are not
            position: int | None = self.position
        else:
            position = self.snapshots.table.applied_position(self.position, self.store.instance)
        if position is None:  # the stored snapshot (if any) stays valid: a start replays more
            log.warning("event=snapshot.skipped reason=%r", "events another process stored "
                        "while this one ran are not applied (the next start reads them)")
            return
        since = window_start(when.date(), self.snapshots.history_days)
        self.snapshots.save(position, since, when, self.store.instance, wait=wait)

    def _replay_probes(self) -> int:
        """Feed the stored probes of the availability windows to the SLO engine (on start)."""
        keep = self.slo.probe_retention_minutes
        if not keep:
            return 0
        count = 0
        since = self.clock.now() - timedelta(minutes=keep)
        for probe in stored_probes(self.probes, since=since):
            self.slo.observe_probe(probe)
            count += 1
        return count

    def follow(self) -> int:
        """Fold in the events stored since the last look (a shared store); returns how many.

        Up to the store's judged mark they were judged by the leader: learned here in
        silence. The leader then judges those after it, whichever process stored them
        (its own as it stored them): after a failover or a restart, what the last leader
        left unjudged is judged once, not learned by everyone. A follower goes no further
        than the mark, unless no leader ever kept one (a store of an older version)."""
        if not self.store.shared:
            return 0
        leading = self.cluster.leading
        mark = self.store.judged()
        count = 0
        if mark is not None and self.position < mark:
            count += self._follow(mark, acting=False)
        took = leading and not self.led
        self._lead(leading)  # the last leader's state taken up before judging after it
        if leading:
            judged = self._follow(None, acting=True)
            self.collector.followed(self.position)
            if judged and took:
                log.warning("event=state.judged_after_takeover events=%d mark=%s position=%d: "
                            "stored after the last leader's judged mark", judged, mark,
                            self.position)
            count += judged
        elif mark is None:
            count += self._follow(None, acting=False)
        return count

    def _follow(self, until: int | None, *, acting: bool) -> int:
        count = 0
        while True:
            events, position = self.store.tail(self.position, own=True, until=until,
                                               skip=self.collector.own_judged)
            if position == self.position:
                return count
            self.position = position
            count += self.collector.follow(events, acting=acting)
            if acting:
                self.collector.followed(position)

    def evaluate_slos(self, now: datetime) -> None:
        """The ``slo`` job: evaluate every SLO, raise and clear alerts, export the gauges."""
        self.metrics.slo.update(self.slo.tick(now, self.router))
        keep = self.slo.probe_retention_minutes
        if keep:
            self.probes.prune(now - timedelta(minutes=keep))

    def observe_probe(self, result: HealthResult) -> None:
        """A health probe's result: stored (availability SLOs are rebuilt from it) and counted."""
        if self.slo.probe_retention_minutes:
            self.probes.record(result.service, result.checked_at, result.status)
        self.slo.observe_probe(SLOProbe(result.service, result.checked_at, result.status))

    def check_value(self, name: str, run_date: date) -> float | None:
        """A data check's latest value about ``run_date`` (None: no result about it)."""
        result = self.checks.latest(name, run_date)
        return result.value if result is not None else None

    def observe_check(self, result: CheckResult) -> None:
        """A data check's result, for the SLOs of kind ``check``."""
        self.slo.observe_check(CheckReading(result.name, result.value, result.at,
                                            result.run_date, result.pipeline))

    def slo_report(self, history: bool = False) -> list[dict[str, Any]]:
        """Every SLO's status now (``GET /v1/slos``); ``history``: with its units per day."""
        return [status.as_dict() for status in self.slo.evaluate(self.clock.now(), daily=history)]

    def add_job(self, name: str, job: Job, every_s: float | None = None, *,
                each_instance: bool = False) -> None:
        """Register periodic work, run on the ticks at least ``every_s`` apart (default: every
        tick) and on demand as ``POST /v1/jobs/{name}``; by the leading instance only,
        unless ``each_instance``."""
        if name in self.jobs:
            raise ValueError(f"job {name!r} is already registered")
        self.jobs[name] = job
        self.job_runs[name] = JobRun(name, every_s=every_s, each_instance=each_instance)
        for outcome in ("ok", "failed"):  # at 0 from the start: the first run is an increase
            self.metrics.job_runs.labels(name, outcome)

    def may_run(self, name: str) -> bool:
        """Whether this instance runs job ``name`` (it leads, or the job runs everywhere)."""
        return self.cluster.leading or self.job_runs[name].each_instance

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
        self.metrics.job_runs.labels(name, "failed" if record.last_error else "ok").inc()
        record.last_run = when
        record.runs += 1
        return record

    def add_push_handler(self, handler: PushHandler) -> None:
        """Offer Pub/Sub push messages to ``handler`` before the event path (collector)."""
        self.collector.push_handlers.append(handler)
    def run_job_if_registered(self, name: str) -> None:
        """Run job ``name`` now if it exists and is this instance's to run (a last pass at
        shutdown)."""
        if name in self.jobs and self.may_run(name):
            self.run_job(name)

    def add_report_section(self, name: str, section: ReportSection) -> None:
        """Contribute a list to the replay report (``slos``, ``anomalies``, ``triggers``...)."""
        self.sections[name] = section

    def report_section(self, name: str) -> list[dict[str, Any]]:
        """The current list of one report section."""
        return self.sections[name]()

    def add_listener(self, listener: Callable[[Sequence[Update]], None]) -> None:
        """Call ``listener`` with the updates of each newly stored batch (a collector listener)."""
        self.collector.listeners.append(listener)

    def ingest(self, events: Sequence[Event]) -> IngestResult:
        """Store and fold in events as if a producer had sent them."""
        return self.collector.ingest(events)

    def report_sections(self) -> dict[str, list[dict[str, Any]]]:
        return {name: section() for name, section in self.sections.items()}

    def tick(self, now: datetime | None = None) -> None:
        """Keep this instance's leases, catch up with the store, and run every periodic
        job that is due at ``now`` and is this instance's to run."""
        when = now or self.clock.now()
        leading = self.cluster.heartbeat()
        self.follow()
        self._lead(leading)
        for name, record in self.job_runs.items():
            if self.may_run(name) and record.due(when):
                self.run_job(name, when)

    def _lead(self, leading: bool) -> None:
        if leading and not self.led:
            self.take_lead()
        self.led = leading

    def take_lead(self) -> None:
        """This instance starts leading: it takes up the alerts the previous leader raised,
        the outages it told, and (a shared store) the guards it kept."""
        self.alerting.router.restore()
        self.restore_health()
        if self.store.shared and self.actuator is not None:
            self.actuator.take_lead(self.position)

    def restore_health(self) -> None:
        """The health monitor takes up the outages told before (a restart, a new leader):
        those still firing, and the recent resolves its flap detection compares with."""
        if self.actuator is None:
            return
        now = self.clock.now()
        flap = timedelta(minutes=self.config.actuator.health.flap_window_min)
        self.actuator.ctx.health.restore(
            self.alerting.router.active(),
            self.alerting.store.episodes_resolved(now - flap, now + timedelta(seconds=1)))

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

    def start_mirror(self, sink: MirrorSink | None = None) -> None:
        """Copy events, checks, probes, alert outcomes and daily SLO results to BigQuery on a
        thread of their own when ``mirror.bigquery`` is configured (``serve`` does; replay and
        demo never do). Ingest only offers rows to a bounded queue (``monitor.app.mirror``).

        ``sink`` replaces the one built from the config and the default credentials (tests).
        ConfigError when google-cloud-bigquery, the credentials or the project are missing.
        """
        config = self.config.mirror.bigquery
        if config is None or self.mirror is not None:
            return
        if sink is None:
            try:  # google-cloud-bigquery is loaded only when the mirror is on
                from monitor.telemetry import bigquery
            except ImportError as exc:
                raise ConfigError("mirror.bigquery", [Problem(
                    "(package)", f"needs google-cloud-bigquery ({exc.name} is not installed); "
                    "allowed: pip install 'phasewatch[gcp]', or remove mirror.bigquery",
                )]) from None
            sink = bigquery.BigQuerySink(bigquery.client_for(config), config)
        from monitor.app.mirror import MirrorFeed
        from monitor.telemetry.mirror_tables import ENCODERS

        self.mirror = Mirror(sink, ENCODERS, self.metrics, name="bigquery", batch=config.batch,
                             interval_s=config.interval_s, queue_max=config.queue_max)
        MirrorFeed(self, self.mirror).install()
        self.mirror.start()

    def close(self) -> None:
        if self.snapshots is not None:  # first: the state as the last request left it
            self.snapshots.close()  # a periodic save in flight ends first
            try:
                self.save_snapshot(wait=True)
            except Exception:  # the next start rebuilds from the events: never block a stop
                log.exception("event=snapshot.save_failed")
        if self.export is not None:  # first: its last write reads the final values
            self.export.shutdown()
        if self.publisher is not None:
            self.publisher.close()
        if self.mirror is not None:  # before the store closes: its last rows are queued
            self.run_job_if_registered("mirror-bigquery")
            self.mirror.shutdown()
        if self.actuator is not None:
            self.actuator.close()
        self.checks.close()
        self.alerting.close()
        self.tracer.shutdown()
        self.cluster.close()
        self.store.close()
