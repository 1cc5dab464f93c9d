"""Alerting for one phasewatch instance: router, outbox, silences, channels, summaries.

``AlertEngine.build`` wires the parts from the ``alerting`` config; ``tick(now)`` is the
``deliver-alerts`` job (flush due groups into the outbox, deliver what is due) and
``daily_job(now)`` the ``daily-health-check`` job (the summary once a day at the configured
local time, exactly once per date even across restarts).
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Mapping, Sequence
from dataclasses import replace
from datetime import datetime, timedelta
from typing import TYPE_CHECKING, TypeVar
from zoneinfo import ZoneInfo

from prometheus_client import Counter, Gauge

from alerts.channel_watch import ChannelWatch
from alerts.channels.base import Channel, ReportChannel
from alerts.channels.memory import MemoryChannel
from alerts.channels.registry import DEFAULT_RATE_PER_S, SecretResolver, build_channels
from alerts.config import WEEKDAYS, AlertingConfig, MemoryChannelConfig
from alerts.daily import DailySummary, DeliveryHealth, HealthSnapshot, HeldItem, build_summary
from alerts.daily_render import render_text, to_report
from alerts.inhibition import Graph, Inhibitor, pipeline_graph, service_phases
from alerts.kpis import Incident, KpiInputs, RunOutcome, WeeklyKpis, weekly_kpis
from alerts.lifecycle import Lifecycle
from alerts.outbox import DeliveryPass, Exclusive, Outbox, enqueue_report
from alerts.ratelimit import TokenBucket
from alerts.retry import RetryPolicy
from alerts.router import AlertRouter
from alerts.severity import CriticalMap, SeverityPolicy, critical_processors
from alerts.silences import SilenceStore
from alerts.snapshot import (
    ActionCountSource,
    DeployCountSource,
    RunOutcomeSource,
    SnapshotSource,
    alert_items,
    tracker_run_outcomes,
    tracker_runs,
)
from alerts.store import AlertStore
from monitor.clock import Clock
from monitor.store.base import ComponentStore

if TYPE_CHECKING:
    from monitor.config import Config
    from monitor.tracker import RunTracker

log = logging.getLogger(__name__)

DAILY = "daily_summary"
PRUNE_EVERY = timedelta(hours=1)
KEEP_DONE = timedelta(days=35)


def _under_way(tracker: RunTracker) -> Callable[[str, str, str, str], bool]:
    """Whether a tracked run's phase has begun: any of its processors reported."""
    def under_way(pipeline: str, run_date: str, mode: str, phase: str) -> bool:
        run = tracker.get((pipeline, run_date, mode))
        found = run.phases.get(phase) if run is not None else None
        return found is not None and (bool(found.processors) or found.first_start is not None)
    return under_way


def _with_channels(cfg: AlertingConfig, names: Sequence[str]) -> AlertingConfig:
    """The config with its channels replaced by in-process ones (tests, dry runs)."""
    channels = tuple(MemoryChannelConfig(kind="memory", name=n) for n in names)
    daily = cfg.daily_summary.model_copy(update={"channels": ()})
    return cfg.model_copy(update={
        "channels": channels, "routes": (), "default_channels": None, "daily_summary": daily,
    })


T = TypeVar("T")


def _kpi_source(source: Callable[..., T], fallback: T, *args: object) -> T:
    """A KPI source's answer, or ``fallback`` ("n/a") when it fails: a broken source must
    not take the daily summary down with it (logged once here)."""
    try:
        return source(*args)
    except Exception:
        log.exception("event=alerts.kpi_source_failed source=%r", source)
        return fallback


class AlertEngine:
    """Everything alerting, sharing one clock and one database."""

    def __init__(
        self, cfg: AlertingConfig, db: ComponentStore, clock: Clock, channels: Mapping[str, Channel], *,
        graph: Graph | None = None, counter: Counter | None = None,
        tracker: RunTracker | None = None, config: Config | None = None,
        critical: CriticalMap | None = None,
        backlog: Gauge | None = None, exclusive: Exclusive | None = None,
    ) -> None:
        self.cfg = cfg
        self.clock = clock
        self.channels = dict(channels)
        self.store = AlertStore(db)
        self.silences = SilenceStore(db, timedelta(hours=cfg.silences.max_duration_h))
        severity = SeverityPolicy(critical or {}, cfg.severity)
        self.inhibitor = Inhibitor(graph or {}, cfg.graph_inhibition, cfg.inhibit_rules,
                                   services=service_phases(config) if config else None,
                                   correlation=cfg.correlation, critical=severity.is_critical,
                                   under_way=_under_way(tracker) if tracker is not None else None)
        self.router = AlertRouter(cfg, self.store, clock, silences=self.silences,
                                  inhibitor=self.inhibitor, counter=counter, severity=severity)
        rates = {}
        for c in cfg.channels:
            rate = c.rate_per_s or DEFAULT_RATE_PER_S.get(c.kind)
            if rate:
                rates[c.name] = TokenBucket(rate, c.burst)
        self.outbox = Outbox(db, self.channels, RetryPolicy(cfg.delivery), rates=rates,
                             counter=counter, batch_limit=cfg.delivery.batch_limit,
                             backlog=backlog, exclusive=exclusive)
        self.channel_watch = ChannelWatch(
            self.router, self.outbox, paging={c.name: c.paging for c in cfg.channels},
            failing_after_s=cfg.delivery.failing_after_s)
        self.tracker = tracker
        self.config = config
        self.lifecycle = Lifecycle(self.router, tracker) if tracker is not None else None
        self.snapshot_sources: list[SnapshotSource] = []
        self.run_outcomes: RunOutcomeSource | None = None
        self.action_counts: ActionCountSource | None = None
        self.deploy_counts: DeployCountSource | None = None
        self.summaries: list[DailySummary] = []  # the daily summaries this process sent
        self._last_prune: datetime | None = None
        self.last_pass = DeliveryPass()

    @classmethod
    def build(
        cls, cfg: AlertingConfig, *, db: ComponentStore, clock: Clock, secret: SecretResolver,
        counter: Counter | None = None, config: Config | None = None,
        tracker: RunTracker | None = None, channels: Sequence[Channel] | None = None,
        dry_run: bool = False, backlog: Gauge | None = None, exclusive: Exclusive | None = None,
    ) -> AlertEngine:
        """Wire the engine. ``channels`` replaces the configured ones (every alert goes to
        each of them); ``dry_run`` keeps the configured names but delivers in memory;
        ``exclusive`` keeps delivery to one process at a time among those sharing ``db``."""
        built: dict[str, Channel]
        if channels is not None:
            cfg = _with_channels(cfg, [c.name for c in channels])
            built = {c.name: c for c in channels}
        elif dry_run:
            built = {c.name: MemoryChannel(c.name) for c in cfg.channels}
        else:
            built = build_channels(cfg.channels, secret)
        graph = pipeline_graph(config) if config is not None else {}
        critical = critical_processors(config) if config is not None else {}
        return cls(cfg, db, clock, built, graph=graph, counter=counter, tracker=tracker,
                   config=config, critical=critical, backlog=backlog, exclusive=exclusive)

    # --- jobs ----------------------------------------------------------------------------

    def tick(self, now: datetime) -> DeliveryPass:
        """The ``deliver-alerts`` job: resolve what is over by any path (the catalogue's
        lifecycle), flush due groups into the outbox, deliver due rows, judge the channels
        by what they took (their own alerts go out on the next tick)."""
        if self.lifecycle is not None:
            self.lifecycle.tick(now)
        self.router.tick(now)
        result = self.outbox.deliver(now)
        self.channel_watch.tick(now)
        if self._last_prune is None or now - self._last_prune >= PRUNE_EVERY:
            self._last_prune = now
            self.outbox.prune(now - KEEP_DONE)
        return result

    def deliver_alerts(self, now: datetime) -> None:
        """``tick`` as a phasewatch job (the pass's counts go to ``last_pass``)."""
        self.last_pass = self.tick(now)

    def daily_due(self, now: datetime) -> str | None:
        """The local date whose summary is due at ``now`` and not sent yet (None if none)."""
        daily = self.cfg.daily_summary
        if not daily.enabled:
            return None
        local = now.astimezone(ZoneInfo(daily.timezone))
        hour, minute = daily.hour_minute
        if (local.hour, local.minute) < (hour, minute):
            return None
        period = local.date().isoformat()
        return None if self.store.report_sent(DAILY, period) else period

    def daily_job(self, now: datetime) -> None:
        """The ``daily-health-check`` job: send today's summary once it is due."""
        if self.daily_due(now) is not None:
            self.run_daily_health_check(now, send=True)

    def run_daily_health_check(self, now: datetime, *, send: bool = True) -> DailySummary:
        """Judge the current snapshot; with ``send``, send it unless today's already went."""
        summary = self.daily_summary(now)
        if send:
            self.send_summary(summary)
        return summary

    # --- the daily summary ----------------------------------------------------------------

    def snapshot(self, now: datetime) -> HealthSnapshot:
        """What phasewatch knows now, for the daily summary (sources add their parts)."""
        daily = self.cfg.daily_summary
        stats = self.outbox.stats(now - timedelta(hours=24))
        snap = HealthSnapshot(
            at=now, timezone=daily.timezone,
            runs=tracker_runs(self.tracker, self.config, now)
            if self.tracker is not None and self.config is not None else (),
            alerts=alert_items(self.router.statuses(now)),
            held=tuple(HeldItem(f"silence {x.id} ({', '.join(str(m) for m in x.matchers)})",
                                x.author, x.starts_at, x.ends_at, x.comment)
                       for x in self.silences.silences(now) if x.state(now) == "active"),
            delivery=DeliveryHealth(stats.pending, stats.oldest_pending_at, stats.dead_since),
        )
        local = now.astimezone(ZoneInfo(daily.timezone))
        if WEEKDAYS[local.weekday()] == daily.weekly_on:
            snap = replace(snap, weekly=self.weekly(now))
        for source in self.snapshot_sources:
            try:
                snap = source(snap)
            except Exception:
                log.exception("event=alerts.snapshot_source_failed source=%r", source)
        return snap

    def daily_summary(self, now: datetime) -> DailySummary:
        return build_summary(self.snapshot(now), self.cfg.daily_summary.checks)

    def send_summary(self, summary: DailySummary) -> bool:
        """Queue the summary for its channels once per local date, then deliver; False when
        that date's summary had already gone out."""
        now = summary.snapshot.at
        period = now.astimezone(ZoneInfo(self.cfg.daily_summary.timezone)).date().isoformat()
        report = to_report(summary)
        channels = [c for c in self.cfg.summary_channels()
                    if isinstance(self.channels.get(c), ReportChannel)]
        with self.store.db.transaction() as conn:
            if not AlertStore.record_report(conn, DAILY, period, now, summary.status):
                return False
            for channel in channels:
                enqueue_report(conn, channel=channel, report=report,
                               key=f"report:{DAILY}:{period}", now=now)
        self.summaries.append(summary)
        log.info("event=alerts.daily_summary period=%s status=%s channels=%s", period,
                 summary.status, ",".join(channels))
        self.outbox.deliver(now)
        return True

    # --- weekly KPIs -------------------------------------------------------------------

    def weekly(self, now: datetime, days: int = 7) -> WeeklyKpis:
        """KPIs over the ``days`` days up to ``now``."""
        start = now - timedelta(days=days)
        episodes = self.store.episodes(start, now)
        runs: list[RunOutcome] = []
        if self.run_outcomes is not None:
            nothing: Sequence[RunOutcome] = ()
            runs = list(_kpi_source(self.run_outcomes, nothing, start, now))
        elif self.tracker is not None and self.config is not None:
            runs = tracker_run_outcomes(self.tracker, self.config, start, now)
        incidents = [
            Incident(e.alert.key, e.alert.severity, e.opened_at, e.resolved_at)
            for e in episodes if e.notified and e.alert.severity in ("critical", "warning")
        ]
        none: tuple[int | None, int | None] = (None, None)
        manual, automated = none
        if self.action_counts is not None:
            manual, automated = _kpi_source(self.action_counts, none, start, now)
        deploys, failed = none
        if self.deploy_counts is not None:
            deploys, failed = _kpi_source(self.deploy_counts, none, start, now, episodes)
        return weekly_kpis(KpiInputs(start, now, runs, incidents, manual, automated, deploys,
                                     failed))

    def summaries_report(self) -> list[dict[str, object]]:
        """The daily summaries sent by this process (a replay report section)."""
        return [{"time": s.snapshot.at.isoformat(), "status": s.status,
                 "findings": [f.text for f in s.findings], "text": render_text(s)}
                for s in self.summaries]

    def close(self) -> None:
        self.router.flush_state()
        for channel in self.channels.values():
            close = getattr(channel, "close", None)
            if callable(close):
                close()
