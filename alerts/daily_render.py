"""The daily summary as plain text (CLI, log, file) and as Slack Block Kit."""

from __future__ import annotations

from collections import Counter
from datetime import date, datetime
from zoneinfo import ZoneInfo

from alerts.blockkit import Block, clamp, context, divider, duration_text, header, lines_to_sections
from alerts.daily import DailySummary, HeldItem, RunSummary, phase_level
from alerts.kpis import kpi_lines
from alerts.notification import Report
from alerts.text import mrkdwn

STATUS_ICON = {"healthy": ":large_green_circle:", "degraded": ":large_yellow_circle:",
               "critical": ":red_circle:"}
LEVEL_ICON = {"critical": ":red_circle:", "warning": ":large_yellow_circle:", "ok": "",
              "unknown": ""}
_MARK = {"complete": "ok", "degraded": "deg", "failed": "FAIL", "running": "run", "pending": "-"}


def _local(when: datetime, tz: str) -> str:
    return when.astimezone(ZoneInfo(tz)).strftime("%a %Y-%m-%d %H:%M %Z")


def title(summary: DailySummary) -> str:
    s = summary.snapshot
    return f"phasewatch daily health, {_local(s.at, s.timezone)}: {summary.status.upper()}"


def _run_line(run: RunSummary, today: date) -> str:
    past = run.run_date < today
    cells = []
    for p in run.phases:
        missing = past and phase_level(p, True) == "warning" and p.status in ("pending", "running")
        mark = "missing" if missing else _MARK.get(p.status, p.status)
        count = f" {p.done}/{p.expected}" if p.expected else ""
        cells.append(f"{p.phase} {mark}{count}")
    extra = []
    if run.triggers is not None:
        extra.append(f"triggers {run.triggers}")
    if run.deferrals is not None:
        extra.append(f"deferrals {run.deferrals}")
    tail = f" | {', '.join(extra)}" if extra else ""
    return f"{run.pipeline} {run.run_date} {run.mode}: {' · '.join(cells)}{tail}"


def _held_line(held: HeldItem, tz: str, now: datetime) -> str:
    age = duration_text((now - held.since).total_seconds())
    until = f", until {_local(held.until, tz)}" if held.until else ", until undone"
    note = f" ({held.note})" if held.note else ""
    return f"{held.what}: by {held.by} since {_local(held.since, tz)} ({age}){until}{note}"


def sections(summary: DailySummary) -> list[tuple[str, list[str]]]:
    """(heading, lines) pairs shared by the text and the Block Kit forms."""
    s = summary.snapshot
    out: list[tuple[str, list[str]]] = []
    out.append(("Findings", [f"[{f.level}] {f.text}" for f in summary.findings] or ["none"]))
    if s.services:
        counts = Counter(x.status for x in s.services)
        head = ", ".join(f"{counts[k]} {k}" for k in ("pass", "warn", "fail", "unknown") if counts[k])
        bad = [f"{x.name}: {x.status}" + (f" ({x.detail})" if x.detail else "")
               for x in s.services if x.status != "pass"]
        out.append(("Services", [head, *bad]))
    else:
        out.append(("Services", ["no health probes reported"]))
    today = s.local_today
    out.append(("Runs (yesterday and today)", [_run_line(r, today) for r in s.runs] or ["no runs"]))
    if summary.checks:
        out.append(("Checks", [
            f"{c.title}: {c.shown()} ({c.level})" for c in summary.checks
        ]))
    if s.slos:
        out.append(("SLO budgets", [
            f"{x.name}: {x.status}, SLI "
            + ("n/a" if x.sli is None else f"{x.sli * 100:.1f}%")
            + f" vs {x.objective * 100:g}%, budget left "
            + ("n/a" if x.budget_remaining is None else f"{x.budget_remaining:g}")
            for x in s.slos
        ]))
    out.append(("Anomalies (24 h)", [
        f"{a.time.astimezone(ZoneInfo(s.timezone)):%H:%M} {a.kind} {a.pipeline}/{a.phase}"
        + (f"/{a.processor}" if a.processor else "")
        + f": {a.value:.0f} vs {a.expected:.0f} expected (score {a.score:.1f})"
        for a in s.anomalies[:10]
    ] + ([f"… {len(s.anomalies) - 10} more"] if len(s.anomalies) > 10 else []) or ["none"]))
    auto = sum(1 for a in s.actions if a.kind == "automated")
    manual = len(s.actions) - auto
    action_lines = [f"{auto} automated, {manual} manual"] + [
        f"{a.time.astimezone(ZoneInfo(s.timezone)):%H:%M} {a.kind} {a.action}"
        + "".join(f" {v}" for v in (a.pipeline, a.run_date, a.phase) if v)
        + (f" ({a.outcome})" if a.outcome else "")
        for a in s.actions[-10:]
    ]
    out.append(("Actions (24 h)", action_lines))
    firing = [a for a in s.alerts if not a.suppressed]
    alert_lines = [f"{len(firing)} firing, {len(s.alerts) - len(firing)} suppressed"] + [
        f"[{a.severity}] {a.summary}" + (f" ({a.count} occurrences)" if a.count > 1 else "")
        for a in firing[:10]
    ]
    if s.delivery is not None:
        alert_lines.append(f"delivery: {s.delivery.pending} pending, "
                           f"{s.delivery.failed_24h} failed in 24 h")
    out.append(("Alerts", alert_lines))
    if s.held:  # only when a person holds something: a forgotten one is seen each morning
        out.append(("Held by people", [_held_line(h, s.timezone, s.at) for h in s.held]))
    if s.weekly is not None:
        out.append(("Weekly KPIs", kpi_lines(s.weekly)))
    return out


def render_text(summary: DailySummary) -> str:
    lines = [title(summary)]
    for heading, body in sections(summary):
        lines.append("")
        lines.append(f"{heading}:")
        lines.extend(f"  {line}" for line in body)
    return "\n".join(lines)


def render_blocks(summary: DailySummary) -> list[Block]:
    """Block Kit within Slack's limits (≤ 50 blocks, ≤ 3000 characters a section)."""
    blocks: list[Block] = [header(title(summary))]
    for heading, body in sections(summary):
        icon_lines = []
        for line in body:
            text = mrkdwn(line)
            if heading == "Findings" and line.startswith("["):
                level = line[1:line.index("]")]
                text = f"{LEVEL_ICON.get(level, '')} {mrkdwn(line[line.index(']') + 2:])}".strip()
            icon_lines.append(text)
        blocks.append(divider())
        blocks.extend(lines_to_sections([f"*{mrkdwn(heading)}*", *icon_lines]))
    s = summary.snapshot
    blocks.append(context([f"{STATUS_ICON[summary.status]} overall {summary.status}",
                           f"generated {_local(s.at, s.timezone)}"]))
    return clamp(blocks)


def to_report(summary: DailySummary) -> Report:
    return Report(kind="daily_summary", title=title(summary), text=render_text(summary),
                  at=summary.snapshot.at, status=summary.status, blocks=render_blocks(summary))
