"""An alert channel that stops taking notifications is itself an alert, told elsewhere.

A Slack webhook deleted (404), a PagerDuty routing key rotated (400), a provider down for an
hour: the outbox buries or keeps retrying the rows, and before this only a counter said so.
Each test runs a whole phasewatch on a fake clock whose alerts go to a PagerDuty and a Slack
webhook served locally, and counts what each of them accepted.
"""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path

import pytest

from alerts.channels.memory import MemoryChannel
from alerts.config import AlertingConfig
from alerts.engine import AlertEngine
from alerts.errors import DeliveryError
from alerts.model import Alert, alert_key
from alerts.routing import RouteTable
from monitor.clock import FakeClock
from monitor.store.sqlite import SQLiteStore
from tests.test_alerts_channels import PagerDutyFake
from tests.test_alerts_support import Peer, ok
from tests.test_infra_sweep import Night, at, peers, posts

__all__ = ["peers"]  # the fixture

FAILING = "alert_channel_failing"


def pd_events(pd_peer: Peer, name: str) -> list[tuple[str, str]]:
    """(event_action, severity) of every event about alert ``name`` PagerDuty accepted."""
    return [(e["event_action"], e.get("payload", {}).get("severity", ""))
            for e in pd_peer.accepted() if e["dedup_key"].split(":")[0] == name]


def night(tmp_path: Path, peers: tuple[Peer, Peer, PagerDutyFake],
          monkeypatch: pytest.MonkeyPatch) -> Night:
    hook, pd_peer, _ = peers
    return Night(tmp_path / "pw.db", f"{pd_peer.url}/v2/enqueue", f"{hook.url}/hook", monkeypatch)


def test_a_deleted_slack_webhook_is_told_to_pagerduty_once_as_a_warning_and_resolved(
    tmp_path: Path, peers: tuple[Peer, Peer, PagerDutyFake], monkeypatch: pytest.MonkeyPatch,
) -> None:
    """The webhook answers 404 no_service (deleted) from the start; the coordinator is down
    07:05-07:40. PagerDuty pages for the outage as always. Slack is the only other channel, so
    PagerDuty is also told, once and at warning (a Slack webhook never wakes anybody), that
    Slack takes nothing. The webhook is fixed at 07:30: the outage's resolve reaches Slack at
    07:40 and the channel alert resolves.
    Measured before the fix: PagerDuty got only the outage; nobody heard of the dead webhook."""
    hook, pd_peer, _ = peers
    hook.default = ok(404, "no_service")
    n = night(tmp_path, peers, monkeypatch)
    try:
        n.until(at(5))
        n.health("prediction-coordinator", "fail")
        n.until(at(30))
        assert hook.accepted() == [] and 404 in hook.statuses
        told = pd_events(pd_peer, FAILING)
        assert told == [("trigger", "warning")]
        first = next(e for e in pd_peer.accepted() if e["dedup_key"].startswith(FAILING))
        summary = first["payload"]["summary"]
        assert "slack" in summary and "404" in summary and "no_service" in summary
        hook.default = ok(200, "ok")
        n.health("prediction-coordinator", "pass")
        n.until(at(70))
    finally:
        n.close()
    assert [a for a, _ in pd_events(pd_peer, FAILING)] == ["trigger", "resolve"]
    assert [a for a, _ in pd_events(pd_peer, "service_unhealthy")] == ["trigger", "resolve"]
    texts = posts(hook)
    assert not any("alert_channel_failing" in t or "refuses" in t for t in texts)
    assert len([t for t in texts if "prediction-coordinator" in t]) == 1  # its resolve


def test_a_rotated_pagerduty_key_is_critical_in_slack_once_and_reminded(
    tmp_path: Path, peers: tuple[Peer, Peer, PagerDutyFake], monkeypatch: pytest.MonkeyPatch,
) -> None:
    """PagerDuty answers 400 (the routing key was rotated) while the coordinator is down for
    5 hours: pages reach nobody. Slack is told once, CRITICAL, naming PagerDuty and its
    answer, reminded every 4 h like any critical alert, not once per lost page."""
    hook, pd_peer, _ = peers
    pd_peer.default = ok(400, {"status": "invalid event", "message": "Invalid routing key"})
    n = night(tmp_path, peers, monkeypatch)
    try:
        n.until(at(5))
        n.health("prediction-coordinator", "fail")
        n.until(at(5 * 60), step_s=60)
    finally:
        n.close()
    assert pd_peer.accepted() == []
    about = [t for t in posts(hook) if "pagerduty" in t.lower() and "400" in t]
    assert len(about) == 2, about  # the trigger and one reminder after 4 h
    assert about[0].startswith("CRITICAL") and "Invalid routing key" in about[0]


def test_pagerduty_down_for_two_hours_is_told_after_an_hour_and_resolved_when_it_takes_pages(
    tmp_path: Path, peers: tuple[Peer, Peer, PagerDutyFake], monkeypatch: pytest.MonkeyPatch,
) -> None:
    """PagerDuty answers 503 from 07:00 to 09:00 while the coordinator is down from 07:05:
    its page waits in the outbox. A short outage of a provider is retried quietly (the
    thirty-minute case is pinned by tests/test_infra_sweep.py); once the page has waited
    `delivery.failing_after_s` (an hour) Slack is told, CRITICAL, once; when PagerDuty
    takes the page the alert resolves, once."""
    hook, pd_peer, pd = peers
    pd_peer.default = ok(503, "unavailable")
    n = night(tmp_path, peers, monkeypatch)
    try:
        n.until(at(5))
        n.health("prediction-coordinator", "fail")
        n.until(at(50), step_s=60)
        assert not [t for t in posts(hook) if "pagerduty" in t.lower()]
        n.until(at(80), step_s=60)
        about = [t for t in posts(hook) if "pagerduty" in t.lower()]
        assert len(about) == 1 and about[0].startswith("CRITICAL") and "503" in about[0]
        pd_peer.default = pd
        n.until(at(150), step_s=60)
    finally:
        n.close()
    about = [t for t in posts(hook) if "pagerduty" in t.lower()]
    assert len(about) == 2 and about[1].startswith("RESOLVED")
    assert dict(pd.opened) == {"service_unhealthy:service=prediction-coordinator": 1}


def test_a_failing_channel_is_never_told_about_itself_and_prefers_channels_that_do_not_page() -> None:
    """The channel alert's route: never the failing channel. A paging channel's failure goes
    to every other channel; another's to those that do not page, or when none is left to
    those that page, which then get the warning too."""
    cfg = AlertingConfig.model_validate({"channels": [
        {"kind": "memory", "name": "pd", "paging": True},
        {"kind": "memory", "name": "slack"},
        {"kind": "memory", "name": "email"},
    ]})
    table = RouteTable(cfg)

    def told(channel: str, severity: str) -> tuple[str, ...]:
        labels = {"alertname": FAILING, "channel": channel, "severity": severity}
        return tuple(c for plan in table.plans_for(labels) for c in plan.channels_for(severity))

    assert told("slack", "warning") == ("email",)
    assert told("pd", "critical") == ("slack", "email")
    assert told("email", "warning") == ("slack",)
    two = RouteTable(AlertingConfig.model_validate({"channels": [
        {"kind": "memory", "name": "pd", "paging": True}, {"kind": "memory", "name": "slack"}]}))
    labels = {"alertname": FAILING, "channel": "slack", "severity": "warning"}
    assert tuple(c for p in two.plans_for(labels) for c in p.channels_for("warning")) == ("pd",)


def test_one_refused_message_on_a_working_channel_is_told_once_with_nothing_to_resolve(
    tmp_path: Path,
) -> None:
    """A channel refuses one message (a payload error, not an outage) and takes the next: that
    one notification reached nobody there, which the other channel hears once, as a notice;
    the channel works, so no alert stays open."""
    clock = FakeClock(datetime(2026, 1, 18, 7, 0, tzinfo=UTC))
    picky, other = MemoryChannel("picky"), MemoryChannel("other")
    picky.failures.append(DeliveryError("picky", "HTTP 400: invalid_blocks", status=400,
                                        retryable=False))
    engine = AlertEngine.build(AlertingConfig.model_validate({"group_wait_s": 0}),
                               db=SQLiteStore(tmp_path / "pw.db"), clock=clock,
                               secret=lambda name: None, channels=[picky, other])
    for kind in ("first", "second"):
        engine.router.fire(Alert(alert_key(kind, {}), "warning", kind, clock.now(),
                                 labels={"alertname": kind}))
    for _ in range(5):
        engine.tick(clock.now())
        clock.advance(60)
    engine.close()
    assert [n.alert.name for n in picky.sent] == ["second"]
    told = [(n.action, n.alert.name) for n in other.sent if n.alert.name == FAILING]
    assert told == [("trigger", FAILING)]
    assert "invalid_blocks" in next(n.alert.summary for n in other.sent if n.alert.name == FAILING)
    assert not [a for a in engine.router.active() if a.name == FAILING]
