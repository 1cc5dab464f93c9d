"""Which panels each pipeline's dashboards hold, from its config.

Two boards per pipeline: the overview (events, durations against their timeouts,
transitions and actions, anomalies, services, alerts) and the SLOs (per SLO the SLI
against its objective, the budget left in its unit and as a share, the burn rates). Every
metric named here is one of phasewatch's ``/metrics`` (DESIGN §6); the test suite checks
them against the exposition of a demo run.
"""

from __future__ import annotations

from monitor.config import Config, PhaseConfig, PipelineConfig
from monitor.dashboards.model import (
    PIPELINE,
    Board,
    Match,
    Metric,
    Panel,
    Query,
    Section,
    Threshold,
)
from slo.spec import SLOSpec

EVENTS = Metric("phasewatch_events", "counter")
REJECTED = Metric("phasewatch_events_rejected", "counter")
DUPLICATES = Metric("phasewatch_events_duplicate", "counter")
DEAD_LETTERS = Metric("phasewatch_dead_letters", "counter")
PROCESSOR_DURATION = Metric("phasewatch_processor_duration_seconds", "histogram")
PHASE_DURATION = Metric("phasewatch_phase_duration_seconds", "histogram")
TIMEOUT = Metric("phasewatch_timeout_seconds", "gauge")
TRANSITIONS = Metric("phasewatch_phase_transitions", "counter")
ACTIONS = Metric("phasewatch_actions", "counter")
MANUAL = Metric("phasewatch_manual_interventions", "counter")
ANOMALIES = Metric("phasewatch_anomalies", "counter")
SERVICE_HEALTH = Metric("phasewatch_service_health", "gauge")
DEPLOYS = Metric("phasewatch_deploys", "counter")
ALERTS = Metric("phasewatch_alerts", "counter")
ALERT_BACKLOG = Metric("phasewatch_alert_outbox_pending", "gauge")
SLO_SLI = Metric("phasewatch_slo_sli_ratio", "gauge")
SLO_BUDGET_RATIO = Metric("phasewatch_slo_error_budget_remaining_ratio", "gauge")
SLO_BUDGET = Metric("phasewatch_slo_error_budget_remaining", "gauge")
SLO_BURN = Metric("phasewatch_slo_burn_rate", "gauge")
RUNS_TRACKED = Metric("phasewatch_runs_tracked", "gauge")
TELEMETRY_ERRORS = Metric("phasewatch_telemetry_errors", "counter")

OF_PIPELINE = Match("pipeline", PIPELINE)
RETRY_OUTCOMES = "deferred|trigger_failed|no_effect|escalated"


def boards(config: Config, pipeline: PipelineConfig) -> list[Board]:
    """A pipeline's overview, and its SLO board when it has SLOs."""
    slos = [s for s in config.slos if s.pipeline == pipeline.id]
    return [overview(pipeline)] + ([slo_board(pipeline, slos)] if slos else [])


def _regex(values: list[str]) -> str:
    return "|".join(_regex_escape(v) for v in values)


def _regex_escape(value: str) -> str:
    return "".join("\\" + c if c in ".+*?()[]{}|^$\\" else c for c in value)


def _phase_name(phase: PhaseConfig) -> str:
    return f"{phase.id} ({phase.name})" if phase.name else phase.id


def overview(pipeline: PipelineConfig) -> Board:
    """Events, durations against timeouts, transitions and actions, anomalies, services, alerts."""
    return Board(f"{pipeline.id}-overview", f"phasewatch {pipeline.id}: overview", (
        _events(), _durations(pipeline), _actions(), _services(pipeline), _alerts(),
    ))


def _events() -> Section:
    return Section("Events", (
        Panel("Events accepted by status", "per_second",
              (Query(EVENTS, "rate", ("status",), (OF_PIPELINE,)),), stacked=True),
        Panel("Events accepted by phase", "per_second",
              (Query(EVENTS, "rate", ("phase",), (OF_PIPELINE,)),), stacked=True),
        Panel("Rejected, duplicate and dead-lettered (all pipelines)", "per_second", (
            Query(REJECTED, "rate", ("reason",), legend="rejected"),
            Query(DUPLICATES, "rate", legend="duplicate"),
            Query(DEAD_LETTERS, "rate", ("reason",), legend="dead letter"),
        ), description="Events or requests phasewatch refused, acknowledged as already stored, "
                       "or set aside as Pub/Sub messages that can never be valid."),
    ))


def _durations(pipeline: PipelineConfig) -> Section:
    whole = (OF_PIPELINE, Match("processor", ""))
    panels = [
        Panel("Phase duration p95 against its timeout", "seconds", (
            Query(PHASE_DURATION, "quantile", ("phase",), (OF_PIPELINE,), quantile=0.95,
                  legend="p95"),
            Query(TIMEOUT, "value", ("phase",), whole, legend="timeout"),
        ), description="From a phase's first start to its completion; the timeout is the "
                       "adaptive one once there is history, else the configured one."),
        Panel("Phase duration p50 by mode", "seconds", (
            Query(PHASE_DURATION, "quantile", ("phase", "mode"), (OF_PIPELINE,), quantile=0.5,
                  legend="p50"),
        )),
    ]
    for phase in pipeline.phases:
        if not phase.processors:
            continue
        in_phase = (OF_PIPELINE, Match("phase", phase.id))
        panels.append(Panel(
            f"Processors of {_phase_name(phase)}: p95 against timeout", "seconds", (
                Query(PROCESSOR_DURATION, "quantile", ("processor",),
                      (*in_phase, Match("status", "succeeded")), quantile=0.95, legend="p95"),
                Query(TIMEOUT, "value", ("processor",), (*in_phase, Match("processor", "", "!=")),
                      legend="timeout"),
            ),
        ))
    return Section("Durations against their timeouts", tuple(panels))


def _actions() -> Section:
    return Section("Transitions and actions", (
        Panel("Phase transitions by outcome", "per_second",
              (Query(TRANSITIONS, "rate", ("outcome",), (OF_PIPELINE,)),), stacked=True,
              description="Completed and failed phases, and the outcomes of phasewatch's triggers."),
        Panel("Deferrals, retries and escalations", "per_second", (
            Query(TRANSITIONS, "rate", ("phase", "outcome"),
                  (OF_PIPELINE, Match("outcome", RETRY_OUTCOMES, "=~"))),
        ), description="Triggers held by a gate (deferred), failed and retried, retriggered "
                       "for no effect, or escalated to a person."),
        Panel("Recoveries and playbook actions", "per_second", (
            Query(ACTIONS, "rate", ("kind", "action", "outcome"),
                  (OF_PIPELINE, Match("kind", "recovery|deferral|verification|guard", "=~"))),
        ), description="The actuator's audit log as a rate: recovery steps (check-stalled, "
                       "reset, start...), their deferrals, verifications and guards."),
        Panel("Manual interventions", "per_second",
              (Query(MANUAL, "rate", ("action",), (OF_PIPELINE,)),)),
        Panel("Anomalies by phase and kind", "per_second",
              (Query(ANOMALIES, "rate", ("phase", "kind"), (OF_PIPELINE,)),),
              description="Duration and lateness outliers the streaming detector flagged."),
    ))


def _services(pipeline: PipelineConfig) -> Section:
    services = sorted(pipeline.services)
    of_services = (Match("service", _regex(services), "=~"),) if services else ()
    return Section("Services and deploys", (
        Panel(f"Service health of {pipeline.id} (1 pass, 0.5 warn, 0 fail)", "ratio",
              (Query(SERVICE_HEALTH, "value", ("service",), of_services),),
              thresholds=(Threshold(0.5, "degraded", "below"),)),
        Panel(f"Deploys of {pipeline.id}'s services", "per_second",
              (Query(DEPLOYS, "rate", ("service",), of_services),),
              description="Deploys seen by a health probe's version, reported to /v1/deploys, "
                          "or replayed."),
    ), per_row=2)


def _alerts() -> Section:
    return Section("Alerts and delivery (all pipelines)", (
        Panel("Alert notifications by severity", "per_second",
              (Query(ALERTS, "rate", ("severity",)),), stacked=True),
        Panel("Alert notifications by channel and outcome", "per_second",
              (Query(ALERTS, "rate", ("channel", "outcome")),),
              description="delivered, retry, failed, silenced, inhibited"),
        Panel("Delivery backlog", "count",
              (Query(ALERT_BACKLOG, "value", ("channel",)),),
              description="Notifications queued in the outbox and not yet delivered."),
        Panel("Runs tracked in memory", "count", (Query(RUNS_TRACKED, "value"),)),
        Panel("Telemetry errors", "per_second",
              (Query(TELEMETRY_ERRORS, "rate", ("component",)),),
              description="Failures of tracing or metrics, logged and counted, never raised."),
    ))


def slo_board(pipeline: PipelineConfig, slos: list[SLOSpec]) -> Board:
    """Per SLO: the SLI against its objective, the budget left (in its unit, as a share), burn."""
    sections = tuple(_slo_section(spec) for spec in slos)
    return Board(f"{pipeline.id}-slos", f"phasewatch {pipeline.id}: SLOs", sections)


def _slo_section(spec: SLOSpec) -> Section:
    of_slo = (Match("slo", spec.name),)
    objective = f"objective {spec.objective:g}"
    return Section(spec.name, (
        Panel(f"{spec.name}: SLI against its {objective}", "ratio",
              (Query(SLO_SLI, "value", matches=of_slo, legend="SLI"),),
              thresholds=(Threshold(spec.objective, objective, "below"),)),
        Panel(f"{spec.name}: budget left ({spec.unit})", "count",
              (Query(SLO_BUDGET, "value", matches=of_slo, legend=f"{spec.unit} left"),),
              thresholds=(Threshold(0, "exhausted", "below"),),
              description=f"Bad {spec.unit} the SLO may still have in its window."),
        Panel(f"{spec.name}: budget left (share)", "ratio",
              (Query(SLO_BUDGET_RATIO, "value", matches=of_slo, legend="budget left"),),
              thresholds=(Threshold(0, "exhausted", "below"),)),
        Panel(f"{spec.name}: burn rate by window", "count",
              (Query(SLO_BURN, "value", ("window",), of_slo),),
              thresholds=(Threshold(1, "budget spent exactly by the window's end", "above"),)),
    ), subtitle=_slo_subtitle(spec), per_row=4)


def _slo_subtitle(spec: SLOSpec) -> str:
    what = spec.description or f"{spec.sli.kind} of {spec.pipeline}"
    return f"{what}. Objective {spec.objective:g} over {spec.window.label}."
