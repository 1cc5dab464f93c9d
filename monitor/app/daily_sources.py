"""Fills the daily health summary from the running components (health, SLOs, anomalies, actions)."""

from __future__ import annotations

from dataclasses import replace
from datetime import datetime, timedelta
from typing import TYPE_CHECKING, Any, Literal

from alerts.daily import (
    ActionItem,
    AnomalyItem,
    CheckValue,
    HealthSnapshot,
    ServiceHealth,
    SloBudget,
)

if TYPE_CHECKING:
    from alerts.engine import AlertEngine
    from monitor.actuator.engine import Actuator
    from monitor.host import Host

# A spent budget is a ticket, as its alert is (never a critical day for a whole window);
# a cold start is not judged.
_SLO_STATUS: dict[str, Literal["ok", "warning", "critical"]] = {
    "ok": "ok", "warning": "warning", "breach": "warning", "insufficient_data": "ok",
}
_ACTION_KINDS = ("trigger", "recovery", "manual")
DAY = timedelta(hours=24)


def install_daily_sources(host: Host, alerting: AlertEngine, actuator: Actuator | None) -> None:
    """Register the snapshot source that gives the daily summary every component's view: the
    host's ``slos`` and ``anomalies`` report sections and the actuator's health, checks and
    actions."""
    alerting.snapshot_sources.append(lambda snapshot: fill_snapshot(host, actuator, snapshot))


def fill_snapshot(host: Host, actuator: Actuator | None, snapshot: HealthSnapshot) -> HealthSnapshot:
    """``snapshot`` with services, SLO budgets, anomalies and actions of the last 24 h."""
    at = snapshot.at
    return replace(
        snapshot,
        services=_services(actuator),
        slos=tuple(_slo(s) for s in host.report_section("slos")),
        anomalies=tuple(_anomaly(a) for a in host.report_section("anomalies")
                        if datetime.fromisoformat(a["time"]) >= at - DAY),
        actions=_actions(actuator, at),
        checks=_checks(host, actuator),
    )


def _checks(host: Host, actuator: Actuator | None) -> tuple[CheckValue, ...]:
    """The latest result of each check the summary grades (as reported: a ratio 0..1)."""
    if actuator is None:
        return ()
    out = []
    for threshold in host.config.alerting.daily_summary.checks:
        found = actuator.ctx.checks.latest(threshold.name)
        out.append(CheckValue(threshold.name, found.value if found else None,
                              found.at if found else None))
    return tuple(out)


def _services(actuator: Actuator | None) -> tuple[ServiceHealth, ...]:
    if actuator is None:
        return ()
    known: dict[str, Literal["pass", "warn", "fail"]] = {"pass": "pass", "warn": "warn", "fail": "fail"}
    return tuple(
        ServiceHealth(row["service"], known.get(row["status"], "unknown"), row["detail"] or "")
        for row in actuator.store.health()
    )


def _slo(status: dict[str, Any]) -> SloBudget:
    level = "no_data" if status["sli"] is None else _SLO_STATUS.get(status["status"], "warning")
    return SloBudget(status["name"], status["objective"], status["sli"],
                     status.get("budget_remaining_units", status["budget_remaining"]), level)


def _anomaly(item: dict[str, Any]) -> AnomalyItem:
    return AnomalyItem(datetime.fromisoformat(item["time"]), item["pipeline"], item["phase"],
                       item["processor"], item["kind"], item["value"], item["expected"] or 0.0,
                       item["score"])


def _actions(actuator: Actuator | None, at: datetime) -> tuple[ActionItem, ...]:
    if actuator is None:
        return ()
    rows = actuator.store.audit_rows(kinds=_ACTION_KINDS, since=at - DAY)
    out = []
    for row in rows:
        if row.get("outcome") in ("not_taken", "deferred"):
            continue
        out.append(ActionItem(
            datetime.fromisoformat(row["time"]), "manual" if row.get("manual") else "automated",
            f"{row['action']} ({row.get('reason') or row.get('rule') or row['kind']})",
            row.get("pipeline") or "", row.get("run_date") or "", row.get("phase") or "",
            row.get("outcome") or "",
        ))
    return tuple(out)
