"""What ``phasewatch demo`` prints: the run table, then what phasewatch said and found."""

from __future__ import annotations

from typing import Any

from monitor.config import Config
from monitor.replay import ReplayOutcome
from monitor.status import render_runs


def _alerts(report: dict[str, Any]) -> list[str]:
    lines = []
    for item in report["alerts"]:
        lines.append(f"  {item['time'][:16]}  {item['action']:<7} {item['severity']:<8} "
                     f"{item['summary']}")
    return lines or ["  none"]


def _anomalies(report: dict[str, Any]) -> list[str]:
    lines = []
    for item in report["anomalies"]:
        where = "/".join(str(item[k]) for k in ("phase", "processor") if item.get(k))
        lines.append(f"  {item['time'][:16]}  {item['kind']:<8} {where}: {item['value']:.0f} "
                     f"(expected {item['expected']:.0f}, score {item['score']:.1f})")
    return lines or ["  none"]


def render_demo(outcome: ReplayOutcome, config: Config, days: int, events: int) -> str:
    """The demo's summary: runs, alerts, anomalies and SLOs."""
    report = outcome.report
    out = [
        f"phasewatch demo: {days} simulated days of the NBA pipeline, {events} events",
        "",
        render_runs(outcome.runs, config),
        "",
        "alerts sent:",
        *_alerts(report),
        "",
        "duration anomalies:",
        *_anomalies(report),
    ]
    if report["slos"]:
        out += ["", "SLOs:"]
        for slo in report["slos"]:
            out.append(f"  {slo['name']:<40} {slo['status']:<8} sli={slo['sli']} "
                       f"objective={slo['objective']} budget_remaining={slo['budget_remaining']}")
    return "\n".join(out)
