"""What ``phasewatch demo`` prints: the run table, then what phasewatch said and found."""

from __future__ import annotations

from typing import Any

from monitor.anomalies import clock_offset, human_duration
from monitor.config import Config
from monitor.replay import ReplayOutcome
from monitor.status import render_runs

SHOWN_RUN_DATES = 4


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
        show = human_duration if item["kind"] == "duration" else clock_offset
        lines.append(f"  {item['time'][:16]}  {item['kind']:<8} {where} ({item['run_date']} "
                     f"{item['mode']}): {show(item['value'])}, expected about "
                     f"{show(item['expected'])} (score {item['score']:.1f})")
    return lines or ["  none"]


def render_demo(outcome: ReplayOutcome, config: Config, days: int, events: int) -> str:
    """The demo's summary: runs, alerts, anomalies and SLOs."""
    report = outcome.report
    shown = sorted({r.run_date for r in outcome.runs})[-SHOWN_RUN_DATES:]
    recent = [r for r in outcome.runs if r.run_date in shown]
    out = [
        f"phasewatch demo: {days} simulated days of the NBA pipeline, {events} events",
        "",
        render_runs(recent, config),
        f"  ({len(outcome.runs) - len(recent)} earlier runs not shown: phasewatch status --db ...)"
        if len(recent) < len(outcome.runs) else "",
        "",
        "alerts sent (times UTC):",
        *_alerts(report),
        "",
        "anomalies (times UTC):",
        *_anomalies(report),
    ]
    if report["slos"]:
        out += ["", "SLOs:"]
        for slo in report["slos"]:
            out.append(f"  {slo['name']:<40} {slo['status']:<8} sli={slo['sli']} "
                       f"objective={slo['objective']} budget_remaining={slo['budget_remaining']}")
    return "\n".join(out)
