"""Weekly KPIs: reliability, MTTR, manual interventions, automated recoveries, deployment
failure rate, health score.

Pure functions of their inputs. The health score (0-10) weighs four components, each
scaled to 0..1:

- reliability R = clamp((r - 0.90) / (0.999 - 0.90)): 90 % of runs meeting their SLOs or
  fewer scores 0, 99.9 % scores 1. Weight 0.40.
- MTTR M = 1 at ≤ 5 min, 0 at ≥ 4 h, log-linear between: 1 - ln(mttr / 5 min) / ln(48);
  1 when nothing needed resolving. Weight 0.25.
- manual interventions I = 1 / (1 + interventions per week). Weight 0.20.
- self-healing A = automated recoveries / (automated recoveries + manual interventions);
  1 when neither happened. Weight 0.15.

score = 10 * sum(w_i * c_i) / sum(w_i) over the components that have data (a component without data
drops out instead of counting as perfect or as zero). No runs in the window, no score.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import date, datetime
from typing import Any

MTTR_GOOD_S = 5 * 60.0
MTTR_BAD_S = 4 * 3600.0
RELIABILITY_FLOOR, RELIABILITY_TARGET = 0.90, 0.999
WEIGHTS = {"reliability": 0.40, "mttr": 0.25, "manual": 0.20, "self_healing": 0.15}


@dataclass(frozen=True)
class RunOutcome:
    """Whether one run met its SLOs."""

    pipeline: str
    run_date: date
    mode: str
    met_slo: bool


@dataclass(frozen=True)
class Incident:
    """An alert episode someone was told about: opened → resolved (None while open)."""

    key: str
    severity: str
    opened_at: datetime
    resolved_at: datetime | None

    @property
    def time_to_resolve_s(self) -> float | None:
        if self.resolved_at is None:
            return None
        return max((self.resolved_at - self.opened_at).total_seconds(), 0.0)


@dataclass(frozen=True)
class KpiInputs:
    start: datetime
    end: datetime
    runs: Sequence[RunOutcome] = ()
    incidents: Sequence[Incident] = ()
    manual_interventions: int | None = None  # None: no source wired
    automated_recoveries: int | None = None
    deploys: int | None = None  # deploys in the window (None: no source)
    failed_deploys: int | None = None  # of them, followed by a deploy-regression alert


@dataclass(frozen=True)
class WeeklyKpis:
    start: datetime
    end: datetime
    runs: int
    runs_met: int
    reliability: float | None
    incidents: int
    resolved: int
    mttr_s: float | None
    manual_interventions_per_week: float | None
    automated_recoveries: int | None
    health_score: float | None
    components: dict[str, float] = field(default_factory=dict)
    deploys: int | None = None
    failed_deploys: int | None = None

    @property
    def deployment_failure_rate(self) -> float | None:
        """Deploys followed by a deploy-regression alert / deploys (None without deploys)."""
        if not self.deploys or self.failed_deploys is None:
            return None
        return self.failed_deploys / self.deploys

    def as_dict(self) -> dict[str, Any]:
        return {
            "start": self.start.isoformat(), "end": self.end.isoformat(), "runs": self.runs,
            "runs_met": self.runs_met, "reliability": self.reliability,
            "incidents": self.incidents, "resolved": self.resolved, "mttr_s": self.mttr_s,
            "manual_interventions_per_week": self.manual_interventions_per_week,
            "automated_recoveries": self.automated_recoveries,
            "health_score": self.health_score, "components": dict(self.components),
            "deploys": self.deploys, "failed_deploys": self.failed_deploys,
            "deployment_failure_rate": self.deployment_failure_rate,
        }


def _clamp(x: float) -> float:
    return min(max(x, 0.0), 1.0)


def reliability_component(r: float) -> float:
    return _clamp((r - RELIABILITY_FLOOR) / (RELIABILITY_TARGET - RELIABILITY_FLOOR))


def mttr_component(mttr_s: float | None) -> float:
    if mttr_s is None or mttr_s <= MTTR_GOOD_S:
        return 1.0
    return _clamp(1.0 - math.log(mttr_s / MTTR_GOOD_S) / math.log(MTTR_BAD_S / MTTR_GOOD_S))


def health_score(components: dict[str, float]) -> float | None:
    """10 * the weighted mean of the components present; None when none are."""
    weight = sum(WEIGHTS[name] for name in components)
    if not weight:
        return None
    return round(10.0 * sum(WEIGHTS[n] * v for n, v in components.items()) / weight, 1)


def weekly_kpis(inputs: KpiInputs) -> WeeklyKpis:
    """The KPI table for [start, end)."""
    days = max((inputs.end - inputs.start).total_seconds() / 86400.0, 1e-9)
    runs = len(inputs.runs)
    met = sum(1 for r in inputs.runs if r.met_slo)
    reliability = met / runs if runs else None
    durations = [d for i in inputs.incidents if (d := i.time_to_resolve_s) is not None]
    mttr = sum(durations) / len(durations) if durations else None
    manual = inputs.manual_interventions
    per_week = None if manual is None else manual * 7.0 / days
    components: dict[str, float] = {}
    if reliability is not None:
        components["reliability"] = reliability_component(reliability)
    components["mttr"] = mttr_component(mttr)
    if per_week is not None:
        components["manual"] = 1.0 / (1.0 + per_week)
    auto = inputs.automated_recoveries
    if auto is not None and manual is not None:
        total = auto + manual
        components["self_healing"] = auto / total if total else 1.0
    return WeeklyKpis(
        inputs.start, inputs.end, runs, met, reliability, len(inputs.incidents),
        len(durations), mttr, per_week, auto,
        health_score(components) if reliability is not None else None,
        {k: round(v, 3) for k, v in components.items()}, inputs.deploys, inputs.failed_deploys,
    )


def _minutes(seconds: float | None) -> str:
    if seconds is None:
        return "n/a"
    return f"{seconds / 60:.1f} min" if seconds < 5400 else f"{seconds / 3600:.1f} h"


def kpi_lines(k: WeeklyKpis) -> list[str]:
    """The KPI table as text lines (CLI, the daily summary's weekly part)."""
    rel = "n/a (no runs)" if k.reliability is None else (
        f"{k.reliability * 100:.1f}% ({k.runs_met}/{k.runs} runs met their SLOs)")
    manual = "n/a (no source)" if k.manual_interventions_per_week is None else (
        f"{k.manual_interventions_per_week:.2f} / week")
    auto = "n/a (no source)" if k.automated_recoveries is None else str(k.automated_recoveries)
    score = "n/a" if k.health_score is None else f"{k.health_score:.1f} / 10"
    rate = k.deployment_failure_rate
    deploys = ("n/a (no source)" if k.deploys is None else "n/a (no deploys)" if rate is None
               else f"{rate * 100:.1f}% ({k.failed_deploys}/{k.deploys} deploys followed by a "
                    "deploy regression)")
    return [
        f"reliability            {rel}",
        f"MTTR                   {_minutes(k.mttr_s)} ({k.resolved} of {k.incidents} incidents resolved)",
        f"manual interventions   {manual}",
        f"automated recoveries   {auto}",
        f"deploy failure rate    {deploys}",
        f"health score           {score}",
    ]


def render_weekly(k: WeeklyKpis) -> str:
    head = f"phasewatch weekly KPIs {k.start:%Y-%m-%d %H:%M} → {k.end:%Y-%m-%d %H:%M} UTC"
    return "\n".join([head, *kpi_lines(k)])
