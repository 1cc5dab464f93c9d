"""Prometheus metrics (DESIGN §6). Label values come only from configured names."""

from __future__ import annotations

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, disable_created_metrics
from prometheus_client.exposition import CONTENT_TYPE_LATEST, generate_latest
from prometheus_client.openmetrics.exposition import (
    CONTENT_TYPE_LATEST as OPENMETRICS_CONTENT_TYPE,
)
from prometheus_client.openmetrics.exposition import generate_latest as generate_openmetrics

from slo.metrics import SLOGauges

# Seconds to hours: a processor may take 2 s or 4 h.
DURATION_BUCKETS = (
    1, 5, 15, 30, 60, 120, 300, 600, 900, 1800, 3600, 7200, 14400, 28800, 57600, 86400,
)


class Metrics:
    """phasewatch's metrics in a registry of their own (one per service instance)."""

    def __init__(self, registry: CollectorRegistry | None = None) -> None:
        # *_created series double the exposition and mean nothing for these counters.
        disable_created_metrics()  # type: ignore[no-untyped-call]
        self.registry = registry or CollectorRegistry()
        r = self.registry
        self.events = Counter(
            "phasewatch_events", "Events accepted, by pipeline, phase, processor and status.",
            ["pipeline", "phase", "processor", "status"], registry=r,
        )
        self.rejected = Counter(
            "phasewatch_events_rejected", "Events or requests rejected, by reason.",
            ["reason"], registry=r,
        )
        self.duplicates = Counter(
            "phasewatch_events_duplicate", "Events acknowledged but ignored as already stored.",
            registry=r,
        )
        self.dead_letters = Counter(
            "phasewatch_dead_letters", "Pub/Sub messages that can never be valid, kept aside.",
            ["reason"], registry=r,
        )
        self.processor_duration = Histogram(
            "phasewatch_processor_duration_seconds", "Duration of finished processor runs.",
            ["pipeline", "phase", "processor", "status"], buckets=DURATION_BUCKETS, registry=r,
        )
        self.phase_duration = Histogram(
            "phasewatch_phase_duration_seconds",
            "Phase duration from its first start to the moment it became complete.",
            ["pipeline", "phase", "mode"], buckets=DURATION_BUCKETS, registry=r,
        )
        self.phase_transitions = Counter(
            "phasewatch_phase_transitions",
            "Changes of a phase's state in a run (completed, failed) and trigger outcomes.",
            ["pipeline", "phase", "outcome"], registry=r,
        )
        self.telemetry_errors = Counter(
            "phasewatch_telemetry_errors", "Telemetry failures, logged and never raised.",
            ["component"], registry=r,
        )
        self.runs_tracked = Gauge(
            "phasewatch_runs_tracked", "Runs held in the tracker's memory.", registry=r,
        )
        self.runs_evicted = Counter(
            "phasewatch_runs_evicted",
            "Runs dropped from memory: age (past runs.track_days) or cap (runs.max_tracked).",
            ["reason"], registry=r,
        )
        for reason in ("age", "cap"):
            self.runs_evicted.labels(reason)
        self.job_runs = Counter(
            "phasewatch_job_runs",
            "Runs of the periodic jobs (on the ticks and POST /v1/jobs/{name}) by job and outcome"
            " (ok, failed): the watchdog's dead-man's switch (deploy/watchdog).",
            ["job_name", "outcome"], registry=r,  # not `job`: the scrape target's own label
        )
        self.rows_pruned = Counter(
            "phasewatch_store_rows_pruned",
            "Rows the prune job deleted past their retention, by table (retention section).",
            ["table"], registry=r,
        )
        self.connections_closed = Counter(
            "phasewatch_connections_closed",
            "Connections the server closed by a bound: header_timeout, body_timeout, evicted "
            "(to make room under server.max_connections) or refused (all busy).",
            ["reason"], registry=r,
        )
        self.alerts = Counter(
            "phasewatch_alerts",
            "Alert notifications by channel, severity and outcome (delivered, retry, failed,"
            " silenced, inhibited).",
            ["channel", "severity", "outcome"], registry=r,
        )
        self.slo = SLOGauges(r)
        self.anomalies = Counter(
            "phasewatch_anomalies", "Duration and lateness outliers flagged.",
            ["pipeline", "phase", "kind"], registry=r,
        )
        # Actuator: outcomes of triggers go to phase_transitions (triggered, deferred,
        # trigger_failed, escalated, already_running, dry_run, no_effect).
        self.service_health = Gauge(
            "phasewatch_service_health",
            "Latest health probe of a service: 1 pass, 0.5 warn (degraded), 0 fail.",
            ["service"], registry=r,
        )
        self.manual_interventions = Counter(
            "phasewatch_manual_interventions",
            "Manual actions (trigger, skip, retry) taken through phasewatch.",
            ["pipeline", "action"], registry=r,
        )
        # Metric export (export.cloud_monitoring): what was written, what was not and why,
        # and every request's outcome.
        self.export_points = Counter(
            "phasewatch_export_points", "Points written by a metric exporter.",
            ["exporter"], registry=r,
        )
        self.export_dropped = Counter(
            "phasewatch_export_points_dropped",
            "Points a metric exporter did not write, by reason (too_old, too_new, too_frequent,"
            " too_many_labels, invalid_label, too_many_buckets, descriptor_failed, write_failed).",
            ["exporter", "reason"], registry=r,
        )
        self.export_requests = Counter(
            "phasewatch_export_requests",
            "Requests of a metric exporter by method and outcome (ok or the gRPC status), one"
            " per attempt.",
            ["exporter", "method", "outcome"], registry=r,
        )

        # Mirrors (mirror.bigquery): rows written, rows not written and why, requests, backlog.
        self.mirror_rows = Counter(
            "phasewatch_mirror_rows", "Rows a mirror wrote, by table.", ["mirror", "table"],
            registry=r,
        )
        self.mirror_dropped = Counter(
            "phasewatch_mirror_rows_dropped",
            "Rows a mirror did not write, by table and reason (queue_full: the bounded queue was"
            " full; rejected: refused for good; shutdown: still unwritten at shutdown).",
            ["mirror", "table", "reason"], registry=r,
        )
        self.mirror_requests = Counter(
            "phasewatch_mirror_requests",
            "Insert requests of a mirror by outcome (ok, partial, unavailable, rejected), one per"
            " attempt.", ["mirror", "outcome"], registry=r,
        )
        self.mirror_queue = Gauge(
            "phasewatch_mirror_queue_rows", "Rows waiting to be written by a mirror.", ["mirror"],
            registry=r,
        )

        # Shown by the dashboards (dashboards/, `phasewatch dashboards build`).
        self.timeouts = Gauge(
            "phasewatch_timeout_seconds",
            "Timeout last applied to a running processor or phase: the adaptive one once there"
            " is history, else the configured one (processor empty for a phase).",
            ["pipeline", "phase", "processor", "mode"], registry=r,
        )
        self.actions = Counter(
            "phasewatch_actions",
            "Lines of the actuator's audit log (actions taken, decisions not taken) by kind,"
            " action and outcome.",
            ["pipeline", "phase", "kind", "action", "outcome"], registry=r,
        )
        self.deploys = Counter(
            "phasewatch_deploys", "Deploys of configured services, by how phasewatch learnt of"
            " them (probe, api, replay).", ["service", "source"], registry=r,
        )
        self.alert_backlog = Gauge(
            "phasewatch_alert_outbox_pending",
            "Alert notifications and reports queued in the outbox, not yet delivered.",
            ["channel"], registry=r,
        )

        # Data checks (configured ones only: names from config).
        self.check_value = Gauge(
            "phasewatch_check_value", "The latest result of each configured data check.",
            ["check"], registry=r,
        )
        self.check_runs = Counter(
            "phasewatch_check_runs",
            "Scheduled runs of data checks by outcome (recorded, failed, timeout, bad_answer,"
            " unavailable).",
            ["check", "outcome"], registry=r,
        )

    def exposition(self, accept: str | None = None) -> tuple[bytes, str]:
        """The metrics text and its content type (OpenMetrics when the scraper asks for it)."""
        if accept and "application/openmetrics-text" in accept:
            return (
                generate_openmetrics(self.registry),  # type: ignore[no-untyped-call]
                OPENMETRICS_CONTENT_TYPE,
            )
        return generate_latest(self.registry), CONTENT_TYPE_LATEST
