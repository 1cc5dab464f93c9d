"""A user's text (an error message, a summary, a label value) is inert in every channel.

Measured (issue 16): an event's error text ``<!channel> <https://evil.example/x|click>`` was
escaped in the Slack blocks but reached the top-level ``text`` raw, and the top-level text is
what Slack shows in notifications: it would ping the whole channel with a disguised link.
"""

from __future__ import annotations

import json
import re
from dataclasses import replace
from datetime import UTC, datetime
from typing import Any

import pytest

from alerts.blockkit import MAX_FALLBACK_TEXT, MAX_SECTION_TEXT, fallback_text, notification_blocks
from alerts.channels.alertmanager import alert_body
from alerts.channels.pagerduty import MAX_SUMMARY, event_body
from alerts.notification import Notification
from monitor.clock import FakeClock
from monitor.store.sqlite import SQLiteStore
from tests.test_alerts_channels import build, drive, peers
from tests.test_alerts_support import make_alert

__all__ = ["peers"]  # the fixture, imported for this module's tests

AT = datetime(2026, 1, 18, 6, tzinfo=UTC)
HOSTILE = [
    "<!channel> <https://evil.example/x|click>",
    "<!here> <!everyone> <@U12345> <#C12345>",
    "&lt;!channel&gt; already escaped",
    "bell\x07 null\x00 escape\x1b[31m red del\x7f c1\x85 end",
    "right-to-left \u202egnp.exe\u202c and zero width \u200b here \ufeff",
    "*bold* _it_ ~strike~ `code` > quote",
    "x" * 100_000,
]
CONTROL = re.compile("[\x00-\x08\x0b-\x1f\x7f-\x9f\u200b-\u200f\u202a-\u202e\u2066-\u2069\ufeff]")


def notification(text: str) -> Notification:
    alert = make_alert("processor_failed", AT, "critical", summary=f"p2 failed: {text}",
                       pipeline="nba", phase="phase2", processor="p2_odds_game_lines")
    return Notification("trigger", replace(alert, details=f"error: {text}"), AT)


def raw_markup(text: str) -> list[str]:
    """Slack control sequences in mrkdwn: ``<...>`` (mentions, links) and bare ``&``."""
    return re.findall(r"<[^>]*>", text) + re.findall(r"&(?!amp;|lt;|gt;)", text)


def mrkdwn_texts(blocks: list[dict[str, Any]]) -> list[str]:
    out = []
    for block in blocks:
        if block["type"] == "section":
            out.append(block["text"]["text"])
        elif block["type"] == "context":
            out += [e["text"] for e in block["elements"]]
    return out


@pytest.mark.parametrize("text", HOSTILE, ids=range(len(HOSTILE)))
def test_slack_fallback_text_is_escaped(text: str) -> None:
    fallback = fallback_text(notification(text))
    assert raw_markup(fallback) == []
    assert not CONTROL.search(fallback)
    assert len(fallback) <= MAX_FALLBACK_TEXT


@pytest.mark.parametrize("text", HOSTILE, ids=range(len(HOSTILE)))
def test_slack_blocks_are_escaped(text: str) -> None:
    for mrkdwn in mrkdwn_texts(notification_blocks(notification(text))):
        assert raw_markup(mrkdwn) == [], mrkdwn[:200]
        assert not CONTROL.search(mrkdwn)
        assert len(mrkdwn) <= MAX_SECTION_TEXT


def test_slack_escaping_keeps_the_words_readable() -> None:
    fallback = fallback_text(notification("<!channel> <https://evil.example/x|click> & co"))
    assert "&lt;!channel&gt; &lt;https://evil.example/x|click&gt; &amp; co" in fallback


def test_a_cut_never_leaves_half_an_entity() -> None:
    for pad in range(8):
        fallback = fallback_text(notification("x" * (MAX_FALLBACK_TEXT - 40 + pad) + "<" * 50))
        assert raw_markup(fallback) == [] and not re.search(r"&[a-z]*…$", fallback)


@pytest.mark.parametrize("text", HOSTILE, ids=range(len(HOSTILE)))
def test_pagerduty_summary_and_details_are_plain(text: str) -> None:
    body = event_body(notification(text), "R" * 32, "phasewatch")
    payload = body["payload"]
    assert len(payload["summary"]) <= MAX_SUMMARY
    assert not CONTROL.search(json.dumps(payload, ensure_ascii=False))


@pytest.mark.parametrize("text", HOSTILE, ids=range(len(HOSTILE)))
def test_alertmanager_annotations_are_inert(text: str) -> None:
    body = alert_body(notification(text), 3600)
    for name, value in body["annotations"].items():
        assert not CONTROL.search(value), name
        assert "<" not in value and ">" not in value, name  # Alertmanager's receivers render raw


def test_the_real_webhook_gets_escaped_text(
    tmp_path: Any, clock: FakeClock, peers: Any
) -> None:
    hook, pd_peer, bot_peer, _, bot = peers
    db = SQLiteStore(tmp_path / "pw.db")
    engine = build(db, clock, hook, pd_peer, bot_peer)
    alert = make_alert("processor_failed", clock.now(), "critical",
                       summary="p2 failed: <!channel> <https://evil.example/x|click> @here",
                       pipeline="nba")
    engine.router.fire(alert)
    drive(engine, clock, 10)
    engine.close()
    db.close()
    [slack] = hook.accepted("/hook")
    assert raw_markup(slack["text"]) == [] and "@here" in slack["text"]
    assert "link_names" not in slack and "parse" not in slack  # plain @here stays plain
    [message] = bot.messages.values()
    assert raw_markup(message["text"]) == []
