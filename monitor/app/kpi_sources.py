"""The weekly KPIs' real sources (``phasewatch report --weekly``, the Monday summary).

- reliability: the SLOs counted in runs; a run date met its SLOs when every one of its
  units in the window was good (a deadline missed, a failed processor run, a coverage
  drop each make its day bad): the same verdicts as ``slo report``;
- manual interventions: manual actions (triggers, skips, retries and re-runs a person
  started, from the audit log) and silences created;
- automated recoveries: recovery actions that ran, re-triggers after a trigger had no
  effect, and cascade re-runs phasewatch started by itself;
- deployment failure rate: deploys followed by a deploy-regression alert (the
  ``service_unhealthy`` episode that names the deploy).

MTTR comes from the alert episodes themselves (opened → resolved, for alerts someone was
told about), in ``AlertEngine.weekly``.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime
from typing import TYPE_CHECKING

from alerts.kpis import RunOutcome
from alerts.store import Episode

if TYPE_CHECKING:
    from alerts.engine import AlertEngine
    from monitor.actuator.engine import Actuator
    from slo.evaluator import SLOEngine

RECOVERED = ("accepted", "already_running")


def install_kpi_sources(alerting: AlertEngine, slo: SLOEngine, actuator: Actuator | None) -> None:
    """Point the weekly KPIs at the SLO engine, the audit log, the silences and the deploys."""
    alerting.run_outcomes = lambda start, end: slo_run_outcomes(slo, start, end)
    if actuator is not None:
        alerting.action_counts = lambda start, end: action_counts(alerting, actuator, start, end)
        alerting.deploy_counts = lambda start, end, episodes: deploy_counts(
            actuator, start, end, episodes)


def slo_run_outcomes(slo: SLOEngine, start: datetime, end: datetime) -> list[RunOutcome]:
    """One outcome per (pipeline, run date) that SLOs counted in runs judged in the window."""
    met: dict[tuple[str, object], bool] = {}
    for pipeline, run_date, good in slo.run_verdicts(start, end):
        key = (pipeline, run_date)
        met[key] = met.get(key, True) and good
    return [RunOutcome(pipeline, run_date, "", ok)  # type: ignore[arg-type]
            for (pipeline, run_date), ok in sorted(met.items(), key=lambda kv: str(kv[0]))]


def action_counts(alerting: AlertEngine, actuator: Actuator, start: datetime,
                  end: datetime) -> tuple[int, int]:
    """(manual interventions, automated recoveries) in ``[start, end)``."""
    manual = automated = 0
    for row in actuator.store.audit_rows(kinds=("manual", "recovery", "verification", "cascade"),
                                         since=start):
        if datetime.fromisoformat(row["time"]) >= end:
            continue
        kind, action, outcome = row["kind"], row["action"], row.get("outcome")
        if row.get("manual"):
            manual += kind == "manual" and outcome == "accepted"
        elif (kind == "recovery" and outcome in RECOVERED) or (
                kind == "verification" and action == "retrigger") or (
                kind == "cascade" and action == "start"):
            automated += 1
    silences = [s for s in alerting.silences.silences(end, include_expired=True)
                if start <= s.created_at < end]
    return manual + len(silences), automated


def deploy_counts(actuator: Actuator, start: datetime, end: datetime,
                  episodes: Sequence[Episode]) -> tuple[int, int]:
    """(deploys in ``[start, end)``, those a deploy-regression alert names)."""
    deploys = [d for d in actuator.ctx.health.deploys.list(limit=10_000) if start <= d.at < end]
    regressed = {(e.alert.labels.get("service"), e.alert.labels.get("deployed_at"))
                 for e in episodes if e.alert.name == "service_unhealthy"
                 and e.alert.labels.get("cause") == "deploy_regression"}
    failed = sum(1 for d in deploys if (d.service, d.at.isoformat()) in regressed)
    return len(deploys), failed
