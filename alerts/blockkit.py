"""Slack Block Kit messages for notifications, as plain dicts within Slack's limits.

Pure functions: no SDK here (the Slack channel module sends what these build). Limits:
at most 50 blocks per message, section text at most 3000 characters, header text at most
150, at most 10 elements in a context block.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from datetime import UTC, datetime
from typing import Any

from alerts.notification import Notification
from alerts.text import cut_mrkdwn, mrkdwn, plain

MAX_BLOCKS = 50
MAX_SECTION_TEXT = 3000
MAX_HEADER_TEXT = 150
MAX_CONTEXT_ELEMENTS = 10
MAX_FALLBACK_TEXT = 3000

Block = dict[str, Any]

SEVERITY_ICON = {
    "critical": ":red_circle:", "warning": ":large_orange_circle:", "info": ":information_source:",
}
RESOLVED_ICON = ":white_check_mark:"


def header(text: str) -> Block:
    text = plain(text, MAX_HEADER_TEXT)
    return {"type": "header", "text": {"type": "plain_text", "text": text, "emoji": True}}


def section(text: str) -> Block:
    """A section of mrkdwn that is already escaped (cut without breaking an entity)."""
    return {"type": "section", "text": {"type": "mrkdwn", "text": cut_mrkdwn(text, MAX_SECTION_TEXT)}}


def context(items: Iterable[str]) -> Block:
    """A context block of escaped mrkdwn items (at most 10: the rest joined in the last)."""
    elements = [{"type": "mrkdwn", "text": cut_mrkdwn(t, MAX_SECTION_TEXT)} for t in items if t]
    if len(elements) > MAX_CONTEXT_ELEMENTS:
        rest = " · ".join(e["text"] for e in elements[MAX_CONTEXT_ELEMENTS - 1:])
        last = {"type": "mrkdwn", "text": cut_mrkdwn(rest, MAX_SECTION_TEXT)}
        elements = [*elements[: MAX_CONTEXT_ELEMENTS - 1], last]
    return {"type": "context", "elements": elements or [{"type": "mrkdwn", "text": " "}]}


def divider() -> Block:
    return {"type": "divider"}


def clamp(blocks: Sequence[Block]) -> list[Block]:
    """At most 50 blocks: the last kept one says how many were left out."""
    if len(blocks) <= MAX_BLOCKS:
        return list(blocks)
    omitted = len(blocks) - (MAX_BLOCKS - 1)
    return [*blocks[: MAX_BLOCKS - 1], context([f"… {omitted} more blocks not shown"])]


def lines_to_sections(lines: Sequence[str], limit: int = MAX_SECTION_TEXT) -> list[Block]:
    """Pack lines into as few sections as fit the text limit (long lines are truncated)."""
    out: list[Block] = []
    chunk = ""
    for line in lines:
        line = cut_mrkdwn(line, limit)
        if chunk and len(chunk) + 1 + len(line) > limit:
            out.append(section(chunk))
            chunk = ""
        chunk = f"{chunk}\n{line}" if chunk else line
    if chunk:
        out.append(section(chunk))
    return out


def duration_text(seconds: float) -> str:
    """How long something lasted, for a person: "12 min", "5 h 07 min", "6 d 23 h"."""
    minutes = max(int(seconds // 60), 0)
    if minutes < 60:
        return f"{minutes} min"
    hours, minutes = divmod(minutes, 60)
    return f"{hours} h {minutes:02d} min" if hours < 48 else f"{hours // 24} d {hours % 24} h"


def _utc(when: datetime) -> str:
    return when.astimezone(UTC).strftime("%Y-%m-%d %H:%M UTC")


def title_text(notification: Notification) -> str:
    """One line: what happened, for the fallback text and the first block."""
    alert = notification.alert
    count = f" ({alert.count} occurrences)" if alert.count > 1 else ""
    if notification.action == "resolve":
        took = duration_text((notification.at - notification.opened_at).total_seconds())
        return f"RESOLVED after {took}: {alert.summary}{count}"
    prefix = "Still firing" if notification.repeat else (
        "NOTICE" if notification.notice else alert.severity.upper())
    return f"{prefix}: {alert.summary}{count}"


def notification_blocks(notification: Notification) -> list[Block]:
    """The Block Kit form of one notification."""
    alert = notification.alert
    icon = RESOLVED_ICON if notification.action == "resolve" else SEVERITY_ICON[alert.severity]
    body = f"{icon} *{mrkdwn(title_text(notification), MAX_SECTION_TEXT)}*"
    if alert.details and notification.action != "resolve":
        body += "\n" + mrkdwn(alert.details, MAX_SECTION_TEXT)
    blocks = [section(body)]
    facts = [f"`{_code(k)}={_code(v)}`" for k, v in sorted(alert.labels.items())]
    facts.append(f"since {_utc(notification.opened_at)}")
    blocks.append(context([" ".join(facts[:-1]), facts[-1]] if len(facts) > 1 else facts))
    if alert.links:
        links = " · ".join(
            f"<{_link(url)}|{mrkdwn(name)}>" for name, url in sorted(alert.links.items())
        )
        blocks.append(context([links]))
    return clamp(blocks)


def _link(url: str) -> str:
    return plain(url).replace("<", "%3C").replace(">", "%3E").replace("|", "%7C")


def _code(text: str) -> str:
    """Text for inside a code span: escaped, and a backquote cannot end the span early."""
    return mrkdwn(text.replace("`", "'"), 300)


def fallback_text(notification: Notification) -> str:
    """The top-level ``text``: what Slack shows in notifications (mrkdwn, so escaped too)."""
    return mrkdwn(title_text(notification), MAX_FALLBACK_TEXT)


def report_text(title: str) -> str:
    """The top-level ``text`` of a report (the daily summary)."""
    return mrkdwn(title, MAX_FALLBACK_TEXT)


def labels_line(labels: Mapping[str, str]) -> str:
    return " ".join(f"{k}={v}" for k, v in sorted(labels.items()))
