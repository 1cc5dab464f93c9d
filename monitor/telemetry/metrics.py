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
