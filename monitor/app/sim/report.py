"""What ``phasewatch demo`` prints: the run table, then what phasewatch said and found."""

from __future__ import annotations

import textwrap
from collections import Counter
from typing import Any

from monitor.app.anomalies import clock_offset, human_duration
from monitor.app.cli.console import stdout_console
from monitor.app.cli.status import render_runs
from monitor.app.sim.replay import ReplayOutcome
from monitor.config import Config

SHOWN_RUN_DATES = 4


def _alerts(report: dict[str, Any]) -> list[str]:
    """Each alert once (trigger, then resolve), with how many reminders repeat_interval sent."""
    reminders: Counter[str] = Counter()
    seen: set[tuple[str, str]] = set()
    lines: list[tuple[str, str]] = []
    for item in report["alerts"]:
        mark = (item["key"], item["action"])
        if mark in seen:
            reminders[item["key"]] += 1
            continue
        seen.add(mark)
        lines.append((item["key"], f"  {item['time'][:16]}  {item['action']:<7} "
                                   f"{item['severity']:<8} {item['summary']}"))
    out = [text + (f"  (+{reminders[key]} reminders)" if item_is_first(key, text, lines)
                   and reminders[key] else "") for key, text in lines]
    return out or ["  none"]


def item_is_first(key: str, text: str, lines: list[tuple[str, str]]) -> bool:
    """Whether ``text`` is the first line shown for ``key`` (reminders are noted there)."""
    return next(t for k, t in lines if k == key) == text


def _actions(report: dict[str, Any]) -> list[str]:
    """What the actuator did besides routine triggers: deferrals, degraded and retried
    triggers, recoveries."""
    reasons = Counter(t["reason"] for t in report["triggers"])
    out = [f"  {len(report['triggers'])} triggers: "
           + ", ".join(f"{reason} {n}" for reason, n in reasons.most_common())]
    notable: list[tuple[str, str]] = []
    for t in report["triggers"]:
        if t["reason"] != "all_complete":
            note = f" ({t['note']})" if t.get("note") else ""
            notable.append((t["time"], f"trigger   {t['phase']} of {t['run_date']} {t['mode']}: "
                                       f"{t['reason']} {t.get('rule') or ''}, attempt "
                                       f"{t['attempt']}, {t['outcome']}{note}"))
    for d in report["deferrals"]:
        notable.append((d["time"], f"deferred  {d['phase']} of {d['run_date']}: {d['reason']} "
                                   f"{d.get('service') or ''}, retry at {d['retry_at'][11:16]}"))
    for r in report["recoveries"]:
        notable.append((r["time"], f"recovery  {r['phase']} of {r['run_date']}: {r['action']} "
                                   f"{r.get('batch_id') or ''} ({r.get('rule')}), {r['outcome']}"))
    out += [f"  {when[:16]}  {text}" for when, text in sorted(notable)]
    return out


def _anomalies(report: dict[str, Any]) -> list[str]:
    lines = []
    for item in report["anomalies"]:
        where = "/".join(str(item[k]) for k in ("phase", "processor") if item.get(k))
        show = human_duration if item["kind"] == "duration" else clock_offset
        lines.append(f"  {item['time'][:16]}  {item['kind']:<8} {where} ({item['run_date']} "
                     f"{item['mode']}): {show(item['value'])}, expected about "
                     f"{show(item['expected'])} (score {item['score']:.1f})")
    return lines or ["  none"]


def _checks(report: dict[str, Any]) -> list[str]:
    """The scheduled check runs: what each measured (and found missing), or why it failed."""
    lines = []
    for run in report.get("checks") or []:
        if run["outcome"] == "recorded":
            missing = f"; missing {', '.join(run['entities'])}" if run.get("entities") else ""
            what = f"{run['value']:g} (run date {run['run_date']}){missing}"
        else:
            what = f"could not run ({run['reason']}): {run['detail']}"
        lines.append(f"  {run['time'][:16]}  {run['check']}: {what}")
    return lines or ["  none"]


def render_demo(outcome: ReplayOutcome, config: Config, days: int, events: int,
                width: int | None = None) -> str:
    """The demo's summary (runs, alerts, anomalies and SLOs), lines no wider than ``width``."""
    width = width or stdout_console().width
    report = outcome.report
    shown = sorted({r.run_date for r in outcome.runs})[-SHOWN_RUN_DATES:]
    recent = [r for r in outcome.runs if r.run_date in shown]
    out = [
        f"phasewatch demo: {days} simulated days of the NBA pipeline, {events} events",
        "",
        render_runs(recent, config, width),
        f"  ({len(outcome.runs) - len(recent)} earlier runs not shown: all are in report.json)"
        if len(recent) < len(outcome.runs) else "",
        "",
        "actuator (times UTC):",
        *_actions(report),
        "",
        "alerts sent (times UTC):",
        *_alerts(report),
        "",
        "anomalies (times UTC):",
        *_anomalies(report),
        "",
        "scheduled data checks (times UTC):",
        *_checks(report),
    ]
    summaries = report.get("daily_summaries") or []
    if summaries:
        out += ["", "latest daily health summary (sent to the configured channels):",
                *("  " + line for line in summaries[-1]["text"].splitlines())]
    if report["slos"]:
        out += ["", "SLOs:"]
        for slo in report["slos"]:
            sli = "no data" if slo["sli"] is None else f"{slo['sli']:.2%}"
            out.append(f"  {slo['name']:<40} {slo['status']:<8} SLI {sli:<8} objective "
                       f"{slo['objective']:.1%}  budget left {slo['budget_remaining']:.0%}")
    return "\n".join(_fit(line, width) for line in "\n".join(out).splitlines())


def _fit(line: str, width: int) -> str:
    """A long line wrapped to ``width``, continued under the text after its leading time."""
    if len(line) <= width:
        return line
    head = len(line) - len(line.lstrip(" "))
    indent = head + 18 if line[head:head + 4].isdigit() else head + 2  # "2026-01-21T16:45  "
    return textwrap.fill(line, width=width, subsequent_indent=" " * indent,
                         break_long_words=True, break_on_hyphens=False)
