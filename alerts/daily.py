"""The daily health summary as a pure function of a snapshot.

Whoever collects the snapshot (the engine from the tracker and the router; the rest of
phasewatch through snapshot sources) decides what is in it; ``build_summary`` only judges
it. Status rules, worst wins:

- critical: a service failing; a phase failed in yesterday's or today's runs; a check
  graded critical; a critical alert firing unsuppressed (an SLO is at most a warning: a
  spent budget is a ticket).
- degraded: a service warning; a phase degraded; a phase of a past run date missing (not
  complete at summary time); a check graded warning; an SLO warning; a warning alert
  firing; alert deliveries that failed for good in the last 24 h.
- healthy otherwise. Anomalies, actions and services of unknown health are reported, not
  judged.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import date, datetime
from typing import Any, Literal
from zoneinfo import ZoneInfo

from alerts.config import CheckThreshold
from alerts.kpis import WeeklyKpis
from alerts.notification import ReportStatus

Level = Literal["ok", "warning", "critical", "unknown"]
LEVEL_RANK: dict[str, int] = {"unknown": 0, "ok": 0, "warning": 1, "critical": 2}
STATUS_OF_RANK: dict[int, ReportStatus] = {0: "healthy", 1: "degraded", 2: "critical"}
_SERVICE_LEVEL: dict[str, Level] = {"fail": "critical", "warn": "warning"}


@dataclass(frozen=True)
class ServiceHealth:
    """A watched service's health at snapshot time (``pass`` / ``warn`` / ``fail``)."""

    name: str
    status: Literal["pass", "warn", "fail", "unknown"]
    detail: str = ""


@dataclass(frozen=True)
class PhaseSummary:
    """One phase of one run: its tracker status and how much of the expected work is done."""

    phase: str
    status: str  # complete | degraded | failed | running | pending
    done: int = 0
    expected: int = 0
    missing: tuple[str, ...] = ()


@dataclass(frozen=True)
class RunSummary:
    """One run (pipeline, run date, mode) with its phases, triggers and deferrals."""

    pipeline: str
    run_date: date
    mode: str
    phases: tuple[PhaseSummary, ...]
    triggers: int | None = None  # None: not known (no actuator wired)
    deferrals: int | None = None


@dataclass(frozen=True)
class CheckValue:
    """A data check's latest result (coverage, completeness, readiness), 0..1 or a count."""

    name: str
    value: float | None
    at: datetime | None = None


@dataclass(frozen=True)
class SloBudget:
    """One SLO's standing, as the SLO evaluator judged it."""

    name: str
    objective: float
    sli: float | None
    budget_remaining: float | None  # runs (or events) that may still miss
    status: Literal["ok", "warning", "critical", "no_data"]


@dataclass(frozen=True)
class AnomalyItem:
    time: datetime
    pipeline: str
    phase: str
    processor: str | None
    kind: str
    value: float
    expected: float
    score: float


@dataclass(frozen=True)
class ActionItem:
    """An automated or manual action on the pipeline (trigger, retry, recovery, skip)."""

    time: datetime
    kind: Literal["automated", "manual"]
    action: str
    pipeline: str = ""
    run_date: str = ""
    phase: str = ""
    outcome: str = ""


@dataclass(frozen=True)
class AlertItem:
    key: str
    severity: str
    summary: str
    opened_at: datetime
    suppressed: bool = False
    count: int = 1
    acked_by: str | None = None  # a person acknowledged it (PagerDuty)


@dataclass(frozen=True)
class DeliveryHealth:
    pending: int
    oldest_pending_at: datetime | None
    failed_24h: int


@dataclass(frozen=True)
class HeldItem:
    """Something a person holds quiet or still (an active silence, a paused scheduler job):
    listed every morning, so one forgotten after its reason passed is seen."""

    what: str
    by: str
    since: datetime
    until: datetime | None = None  # None: until a person undoes it
    note: str = ""


@dataclass(frozen=True)
class HealthSnapshot:
    """Everything the daily summary talks about, collected at ``at``."""

    at: datetime
    timezone: str = "UTC"
    services: tuple[ServiceHealth, ...] = ()
    runs: tuple[RunSummary, ...] = ()
    checks: tuple[CheckValue, ...] = ()
    slos: tuple[SloBudget, ...] = ()
    anomalies: tuple[AnomalyItem, ...] = ()
    actions: tuple[ActionItem, ...] = ()
    alerts: tuple[AlertItem, ...] = ()
    held: tuple[HeldItem, ...] = ()
    delivery: DeliveryHealth | None = None
    weekly: WeeklyKpis | None = None

    @property
    def local_today(self) -> date:
        return self.at.astimezone(ZoneInfo(self.timezone)).date()


@dataclass(frozen=True)
class GradedCheck:
    name: str
    title: str
    value: float | None
    level: Level
    threshold: CheckThreshold | None = None

    def shown(self) -> str:
        if self.value is None:
            return "no data"
        if self.threshold is None or self.threshold.percent:
            return f"{self.value * 100:.0f}%" if self.threshold is not None else f"{self.value:g}"
        return f"{self.value:g}"


@dataclass(frozen=True)
class Finding:
    level: Level
    area: str
    text: str


@dataclass(frozen=True)
class DailySummary:
    """The judged snapshot: an overall status and the findings that made it."""

    snapshot: HealthSnapshot
    status: ReportStatus
    findings: tuple[Finding, ...]
    checks: tuple[GradedCheck, ...] = field(default_factory=tuple)

    @property
    def healthy(self) -> bool:
        return self.status == "healthy"

    def as_dict(self) -> dict[str, Any]:
        s = self.snapshot
        return {
            "time": s.at.isoformat(), "status": self.status, "healthy": self.healthy,
            "findings": [{"level": f.level, "area": f.area, "text": f.text} for f in self.findings],
            "services": [{"name": x.name, "status": x.status, "detail": x.detail} for x in s.services],
            "runs": [_run_dict(r) for r in s.runs],
            "checks": [{"name": c.name, "title": c.title, "value": c.value, "level": c.level}
                       for c in self.checks],
            "slos": [{"name": x.name, "objective": x.objective, "sli": x.sli,
                      "budget_remaining": x.budget_remaining, "status": x.status} for x in s.slos],
            "anomalies": [{"time": a.time.isoformat(), "pipeline": a.pipeline, "phase": a.phase,
                           "processor": a.processor, "kind": a.kind, "value": a.value,
                           "expected": a.expected, "score": a.score} for a in s.anomalies],
            "actions": [{"time": a.time.isoformat(), "kind": a.kind, "action": a.action,
                         "pipeline": a.pipeline, "run_date": a.run_date, "phase": a.phase,
                         "outcome": a.outcome} for a in s.actions],
            "alerts": [{"key": a.key, "severity": a.severity, "summary": a.summary,
                        "opened_at": a.opened_at.isoformat(), "suppressed": a.suppressed,
                        "count": a.count} for a in s.alerts],
            "held": [{"what": h.what, "by": h.by, "since": h.since.isoformat(),
                      "until": h.until.isoformat() if h.until else None, "note": h.note}
                     for h in s.held],
            "delivery": None if s.delivery is None else {
                "pending": s.delivery.pending, "failed_24h": s.delivery.failed_24h,
                "oldest_pending_at": (s.delivery.oldest_pending_at.isoformat()
                                      if s.delivery.oldest_pending_at else None),
            },
            "weekly": s.weekly.as_dict() if s.weekly else None,
        }


def _run_dict(r: RunSummary) -> dict[str, Any]:
    return {
        "pipeline": r.pipeline, "run_date": r.run_date.isoformat(), "mode": r.mode,
        "triggers": r.triggers, "deferrals": r.deferrals,
        "phases": [{"phase": p.phase, "status": p.status, "done": p.done, "expected": p.expected,
                    "missing": list(p.missing)} for p in r.phases],
    }


def grade_check(value: CheckValue, threshold: CheckThreshold | None) -> GradedCheck:
    """ok / warning / critical by the configured thresholds (unknown without one or a value)."""
    title = (threshold.title if threshold and threshold.title else value.name.replace("_", " "))
    if threshold is None or value.value is None:
        return GradedCheck(value.name, title, value.value, "unknown", threshold)
    v = value.value
    if threshold.higher_is_better:
        level: Level = "ok" if v >= threshold.ok_at_least else (
            "warning" if v >= threshold.warning_at_least else "critical")
    else:
        level = "ok" if v <= threshold.ok_at_least else (
            "warning" if v <= threshold.warning_at_least else "critical")
    return GradedCheck(value.name, title, v, level, threshold)


def phase_level(phase: PhaseSummary, past_run: bool) -> Level:
    if phase.status == "failed":
        return "critical"
    if phase.status == "degraded":
        return "warning"
    if past_run and phase.status in ("pending", "running") and phase.expected:
        return "warning"  # missing: a run of an earlier date should be done by now
    return "ok"


def build_summary(snapshot: HealthSnapshot,
                  thresholds: Sequence[CheckThreshold] = ()) -> DailySummary:
    """Judge a snapshot: findings (worst first) and the overall status."""
    findings: list[Finding] = []
    today = snapshot.local_today
    for svc in snapshot.services:
        level = _SERVICE_LEVEL.get(svc.status, "ok")
        if level != "ok":
            detail = f": {svc.detail}" if svc.detail else ""
            findings.append(Finding(level, "services", f"{svc.name} is {svc.status}{detail}"))
    for run in snapshot.runs:
        past = run.run_date < today
        for phase in run.phases:
            level = phase_level(phase, past)
            if level == "ok":
                continue
            what = "missing" if phase.status in ("pending", "running") else phase.status
            missing = f"; missing {', '.join(phase.missing[:5])}" if phase.missing else ""
            more = f" (+{len(phase.missing) - 5})" if len(phase.missing) > 5 else ""
            findings.append(Finding(level, "runs", f"{run.pipeline} {run.run_date} ({run.mode}): "
                                    f"{phase.phase} {what}, {phase.done}/{phase.expected} done"
                                    f"{missing}{more}"))
    by_name = {t.name: t for t in thresholds}
    graded = tuple(grade_check(c, by_name.get(c.name)) for c in snapshot.checks)
    for check in graded:
        if check.level in ("warning", "critical"):
            findings.append(Finding(check.level, "checks", f"{check.title} {check.shown()}"))
    for slo in snapshot.slos:
        if slo.status in ("warning", "critical"):
            left = "" if slo.budget_remaining is None else f", budget left {slo.budget_remaining:g}"
            findings.append(Finding(slo.status, "slos", f"SLO {slo.name} is {slo.status}{left}"))
    for alert in snapshot.alerts:
        if alert.suppressed or alert.severity not in ("critical", "warning"):
            continue
        level = "critical" if alert.severity == "critical" else "warning"
        acked = f" (acknowledged by {alert.acked_by})" if alert.acked_by else ""
        findings.append(Finding(level, "alerts", f"firing since "
                                f"{alert.opened_at:%Y-%m-%d %H:%M} UTC{acked}: {alert.summary}"))
    if snapshot.delivery is not None and snapshot.delivery.failed_24h:
        findings.append(Finding("warning", "delivery", f"{snapshot.delivery.failed_24h} alert "
                                "deliveries failed for good in the last 24 h"))
    findings.sort(key=lambda f: -LEVEL_RANK[f.level])
    worst = max((LEVEL_RANK[f.level] for f in findings), default=0)
    return DailySummary(snapshot, STATUS_OF_RANK[worst], tuple(findings), graded)
