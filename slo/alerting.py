"""Which alerts an evaluated SLO calls for: a policy made for pipelines that run daily.

- Cold start: while the window holds fewer than ``min_units`` units (for a calendar window:
  the period is expected to hold fewer), the status is ``insufficient_data`` and nothing is
  raised: one late run among the first ten is not a budget.
- SLOs counted in runs: one bad run with budget left is one info notice (``slo_bad_run``,
  never reminded); ``consecutive_bad`` bad runs in a row (two by default; SLOs with one
  unit per run, not per processor run) page once per streak, as soon as the second one is
  counted (at its deadline, for a deadline SLO; a run that never happened is bad then
  too); an exhausted budget is one ticket (``slo_budget_exhausted``, a warning) that
  resolves when the budget recovers, and replaces the ticket-level burn-rate alerts.
- SLOs counted in events or probes: the exhausted ticket, and one warning while the budget
  is low or projected to run out (low wins); never an alert per event or per probe (a
  service's outage is ``service_unhealthy``, one alert per outage).
- Multi-window multi-burn-rate alerts (SRE workbook) wherever a pair's long window holds
  at least ``min_events`` units: on a daily pipeline the hour-long windows hold one run or
  none, and a single late run would page.

Every key is stable and carries no time: the same condition on the same SLO (and run)
always has the same key, so the router deduplicates repeats and the engine resolves the
key when the condition clears. Alerts about one run carry its ``run_date`` label (graph
inhibition matches on it).
"""

from __future__ import annotations

import re
from collections.abc import Collection
from fractions import Fraction
from typing import TYPE_CHECKING

from alerts.model import Alert, Severity, alert_key
from slo.spec import SLOSpec

if TYPE_CHECKING:
    from slo.evaluator import SLOStatus

TIER = {"critical": "page", "warning": "ticket"}
_DATE = re.compile(r"\d{4}-\d{2}-\d{2}")
BAD_RUN = "slo_bad_run"


def alerts_for(
    spec: SLOSpec, status: SLOStatus, pairs: list[tuple[str, float, int, int]],
    firing: Collection[str] = (),
) -> list[Alert]:
    """The alerts one SLO calls for at ``status.as_of`` (``firing``: keys raised before)."""
    if status.status == "insufficient_data":
        return []
    burns = _burn_rate_alerts(spec, status, pairs)
    if _exhausted(status):  # the budget ticket says it: a ticket-level burn adds nothing
        burns = [a for a in burns if a.severity == "critical"]
    if status.unit == "runs":
        return burns + _run_alerts(spec, status, firing)
    return burns + _volume_alerts(spec, status)


def _burn_rate_alerts(
    spec: SLOSpec, status: SLOStatus, pairs: list[tuple[str, float, int, int]]
) -> list[Alert]:
    counts = {w.minutes: w for w in status.windows}
    allowed = 1 - Fraction(str(spec.objective))
    minimum = spec.alerting.min_events
    hits: dict[str, list[str]] = {}
    for severity, factor, long_m, short_m in pairs:
        long_w, short_w = counts[long_m], counts[short_m]
        if long_w.total < minimum or short_w.total == 0:
            continue
        threshold = Fraction(str(factor)) * allowed
        if all(
            Fraction(w.total - w.good, w.total) >= threshold for w in (long_w, short_w)
        ):
            hits.setdefault(severity, []).append(
                f"{long_w.burn_rate:.1f}x over {long_w.label} and {short_w.burn_rate:.1f}x over "
                f"{short_w.label} (threshold {factor:g}x)"
            )
    out = []
    for severity, reasons in hits.items():
        labels = {**status.labels, "tier": TIER[severity]}
        out.append(_alert(
            "slo_burn_rate", labels, severity,  # type: ignore[arg-type]
            f"SLO {spec.name}: error budget burning fast ({TIER[severity]}): {reasons[0]}",
            "; ".join(reasons), status,
        ))
    return out


def _detail(spec: SLOSpec, status: SLOStatus) -> str:
    budget, unit = status.budget_total, status.unit
    return (f"{status.budget_consumed} bad of {status.total} {unit} in {status.window}; budget "
            f"{float(budget):.2f} {unit} ({(1 - spec.objective) * 100:g}% of {status.budget_basis})")


def _exhausted(status: SLOStatus) -> bool:
    return status.budget_consumed > 0 and status.budget_consumed >= status.budget_total


def _exhausted_alert(spec: SLOSpec, status: SLOStatus) -> list[Alert]:
    if not spec.alerting.budget.exhausted or not _exhausted(status):
        return []
    budget, unit = status.budget_total, status.unit
    return [_alert(
        "slo_budget_exhausted", status.labels, "warning",
        f"SLO {spec.name}: error budget exhausted ({status.budget_consumed} of "
        f"{float(budget):.2f} {unit} in {status.window})", _detail(spec, status), status,
    )]


def _run_alerts(spec: SLOSpec, status: SLOStatus, firing: Collection[str]) -> list[Alert]:
    policy = spec.alerting.budget
    out = _exhausted_alert(spec, status)
    streak = status.streak
    in_a_row = policy.consecutive_bad
    # Runs in a row: one unit per run (a processor's runs are the guards' failed_runs).
    per_run = getattr(spec.sli, "processors", None) is None
    paging = per_run and in_a_row is not None and len(streak) >= in_a_row
    if paging:
        severity: Severity = "critical" if spec.sli.kind == "deadline" else "warning"
        latest = run_labels(streak[0][0])
        runs = ", ".join(run_labels(key).get("run_date", key) for key, _ in reversed(streak))
        out.append(Alert(
            key=alert_key("slo_bad_runs_in_a_row", status.labels), severity=severity,
            summary=f"SLO {spec.name}: {len(streak)} bad runs in a row ({runs})",
            at=status.as_of, details=_detail(spec, status),
            labels={**status.labels, **latest, "alertname": "slo_bad_runs_in_a_row"},
        ))
    share = policy.single_bad_unit_pct
    budget = status.budget_total
    # A notice for the latest run when it alone is bad and budget is left; once told, it stays
    # up (silently: info is never reminded) until the run leaves the window, however the
    # budget fares meanwhile. An older bad run is never announced weeks after the fact.
    fresh = (share is not None and budget > 0 and not _exhausted(status) and len(streak) == 1
             and Fraction(str(share)) / 100 * budget <= 1)
    newest = streak[0][0] if fresh else None
    left = float(budget - status.budget_consumed)
    for key, _ts in status.bad_units:
        about = run_labels(key)
        if not about:
            continue
        labels = {**status.labels, **about}
        alert_id = alert_key(BAD_RUN, labels)
        if key != newest and alert_id not in firing:
            continue
        used = float(Fraction(1) / budget) if budget else 1.0
        out.append(Alert(
            key=alert_id, severity="info",
            summary=f"SLO {spec.name}: the run of {labels['run_date']} was bad and used "
                    f"{used:.0%} of the error budget ({left:.2f} {status.unit} left in "
                    f"{status.window})",
            at=status.as_of, details=_detail(spec, status),
            labels={**labels, "alertname": BAD_RUN},
        ))
    return out


def _volume_alerts(spec: SLOSpec, status: SLOStatus) -> list[Alert]:
    policy = spec.alerting.budget
    out = _exhausted_alert(spec, status)
    if out:
        return out
    budget, bad, unit, window = status.budget_total, status.budget_consumed, status.unit, status.window
    low = policy.low_remaining_pct
    if low is not None and budget and (budget - bad) < Fraction(str(low)) / 100 * budget:
        return [_alert(
            "slo_budget_low", status.labels, "warning",
            f"SLO {spec.name}: {status.budget_remaining:.0%} of the error budget left "
            f"({float(budget - bad):.2f} {unit} in {window})", _detail(spec, status), status,
        )]
    projected = status.projected_bad
    if (policy.projected_exhaustion and budget and projected is not None
            and projected >= budget and projected > bad):
        return [_alert(
            "slo_budget_projected", status.labels, "warning",
            f"SLO {spec.name}: error budget projected to run out ({float(projected):.2f} of "
            f"{float(budget):.2f} {unit} at the window's pace)", _detail(spec, status), status,
        )]
    return []


def run_labels(unit: str) -> dict[str, str]:
    """The labels of a run unit's key: ``2026-01-17`` (a run date),
    ``2026-01-17/overnight[/processor]`` (a run, and a processor's run in it), or
    ``<check>/2026-01-17`` (a check's run date); empty for a key naming no run date."""
    parts = unit.split("/")
    if _DATE.fullmatch(parts[0]):
        labels = {"run_date": parts[0]}
        if len(parts) > 1 and parts[1]:
            labels["mode"] = parts[1]
        if len(parts) > 2 and parts[2]:
            labels["processor"] = parts[2]
        return labels
    if len(parts) == 2 and _DATE.fullmatch(parts[1]):
        return {"run_date": parts[1]}
    return {}


def _alert(
    kind: str, labels: dict[str, str], severity: Severity, summary: str, details: str,
    status: SLOStatus,
) -> Alert:
    return Alert(
        key=alert_key(kind, labels), severity=severity, summary=summary, at=status.as_of,
        details=details, labels=dict(labels),
    )
