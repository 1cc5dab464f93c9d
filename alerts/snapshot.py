"""Collecting the daily snapshot and the weekly KPI inputs from what phasewatch knows.

The engine fills what the alerts package owns (runs from the tracker, firing alerts,
delivery health, incidents); other components add theirs through sources: a
``SnapshotSource`` takes the snapshot so far and returns it enriched (services, checks,
SLO budgets, anomalies, actions, trigger and deferral counts per run).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from datetime import date, datetime, timedelta
from typing import TYPE_CHECKING

from alerts.daily import AlertItem, HealthSnapshot, PhaseSummary, RunSummary
from alerts.kpis import RunOutcome
from alerts.router import AlertStatus

if TYPE_CHECKING:
    from alerts.store import Episode
    from monitor.config import Config
    from monitor.tracker import RunState, RunTracker

SnapshotSource = Callable[[HealthSnapshot], HealthSnapshot]
RunOutcomeSource = Callable[[datetime, datetime], Sequence[RunOutcome]]
"""(start, end) → whether each run in the window met its SLOs (from the SLO evaluator)."""
ActionCountSource = Callable[[datetime, datetime], tuple[int, int]]
"""(start, end) → (manual interventions, automated recoveries) in the window (actuator)."""
DeployCountSource = Callable[[datetime, datetime, Sequence["Episode"]], tuple[int, int]]
"""(start, end, alert episodes opened then) → (deploys, deploys followed by a deploy-regression
alert) in the window."""


def _phases(run: RunState) -> tuple[PhaseSummary, ...]:
    return tuple(
        PhaseSummary(p.phase, p.status, len(p.done), len(p.expectation.expected), tuple(p.missing))
        for p in run.phases.values()
    )


def tracker_runs(tracker: RunTracker, config: Config, at: datetime) -> tuple[RunSummary, ...]:
    """Yesterday's and today's runs of every pipeline (dates in the pipeline's timezone)."""
    out: list[RunSummary] = []
    for pipeline in config.pipelines:
        today = at.astimezone(pipeline.tz).date()
        for run_date in (today - timedelta(days=1), today):
            runs = tracker.runs(pipeline=pipeline.id, run_date=run_date)
            for run in sorted(runs, key=lambda r: r.mode):
                out.append(RunSummary(pipeline.id, run.run_date, run.mode, _phases(run)))
    return tuple(out)


def alert_items(statuses: Sequence[AlertStatus]) -> tuple[AlertItem, ...]:
    return tuple(
        AlertItem(s.alert.key, s.alert.severity, s.alert.summary, s.opened_at,
                  s.state == "suppressed", s.alert.count, s.acked_by)
        for s in statuses
    )


def run_met(run: RunState) -> bool:
    """Fallback judgement when no SLO evaluator is wired: no phase failed, and every phase
    that expects work finished complete or degraded."""
    for phase in run.phases.values():
        if phase.status == "failed":
            return False
        if phase.expectation.expected and phase.status not in ("complete", "degraded"):
            return False
    return True


def tracker_run_outcomes(tracker: RunTracker, config: Config, start: datetime,
                         end: datetime) -> list[RunOutcome]:
    """Runs whose date falls in [start, end) and is before ``end``'s day (finished days)."""
    out = []
    for pipeline in config.pipelines:
        first: date = start.astimezone(pipeline.tz).date()
        last: date = end.astimezone(pipeline.tz).date()
        for run in tracker.runs(pipeline=pipeline.id):
            if first <= run.run_date < last:
                out.append(RunOutcome(pipeline.id, run.run_date, run.mode, run_met(run)))
    return out
