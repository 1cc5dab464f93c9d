"""Which alerts an evaluated SLO calls for.

Multi-window multi-burn-rate alerts (SRE workbook) are judged only for a pair whose long
window holds at least ``min_events`` units: on a pipeline that runs a few times a day the
hour-long windows hold one run or none, and a single late run would page. Budget alerts
are judged at any volume, in the SLO's own units. Every alert key is stable: the same
condition on the same SLO (and run) always has the same key, so the router deduplicates
repeats and the engine resolves the key when the condition clears.
"""

from __future__ import annotations

from datetime import UTC, datetime
from fractions import Fraction
from typing import TYPE_CHECKING

from alerts.model import Alert, Severity, alert_key
from slo.spec import SLOSpec

if TYPE_CHECKING:
    from slo.evaluator import SLOStatus

TIER = {"critical": "page", "warning": "ticket"}


def alerts_for(
    spec: SLOSpec, status: SLOStatus, pairs: list[tuple[str, float, int, int]]
) -> list[Alert]:
    """Burn-rate and budget alerts for one SLO at ``status.as_of``."""
    return _burn_rate_alerts(spec, status, pairs) + _budget_alerts(spec, status)


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


def _budget_alerts(spec: SLOSpec, status: SLOStatus) -> list[Alert]:
    policy = spec.alerting.budget
    budget, bad = status.budget_total, status.budget_consumed
    unit, window = status.unit, status.window
    detail = (
        f"{bad} bad of {status.total} {unit} in {window}; budget {float(budget):.2f} {unit} "
        f"({(1 - spec.objective) * 100:g}% of {status.budget_basis})"
    )
    out = []
    exhausted = bad > 0 and bad >= budget
    if policy.exhausted and exhausted:
        out.append(_alert(
            "slo_budget_exhausted", status.labels, "critical",
            f"SLO {spec.name}: error budget exhausted ({bad} of {float(budget):.2f} {unit} "
            f"in {window})", detail, status,
        ))
    low = policy.low_remaining_pct
    if low is not None and budget and not exhausted and (budget - bad) < Fraction(str(low)) / 100 * budget:
        out.append(_alert(
            "slo_budget_low", status.labels, "warning",
            f"SLO {spec.name}: {status.budget_remaining:.0%} of the error budget left "
            f"({float(budget - bad):.2f} {unit} in {window})", detail, status,
        ))
    projected = status.projected_bad
    if (
        policy.projected_exhaustion and budget and not exhausted
        and projected is not None and projected >= budget and projected > bad
    ):
        out.append(_alert(
            "slo_budget_projected", status.labels, "warning",
            f"SLO {spec.name}: error budget projected to run out ({float(projected):.2f} of "
            f"{float(budget):.2f} {unit} at the window's pace)", detail, status,
        ))
    for key, ts in status.bad_units:
        share = Fraction(1) / budget
        labels = {**status.labels, "unit": key}
        when = datetime.fromtimestamp(ts, UTC).isoformat()
        out.append(_alert(
            "slo_bad_unit", labels, "info",
            f"SLO {spec.name}: {key} was bad ({when}) and used {float(share):.0%} of the "
            f"error budget", detail, status,
        ))
    return out


def _alert(
    kind: str, labels: dict[str, str], severity: Severity, summary: str, details: str,
    status: SLOStatus,
) -> Alert:
    return Alert(
        key=alert_key(kind, labels), severity=severity, summary=summary, at=status.as_of,
        details=details, labels=dict(labels),
    )

