"""Acknowledgements from PagerDuty (``POST /v1/pagerduty/webhook``): a page a person took on
is reminded no more, on any channel, until it resolves, gets worse or the acknowledgement
lapses. Driven live on a fake clock with the real PagerDuty and Slack clients against local
servers, the webhook deliveries signed as PagerDuty signs them, counting what each channel
was told."""

from __future__ import annotations

import hashlib
import hmac
import json
from collections.abc import Iterator
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from starlette.testclient import TestClient

from alerts.acks import verify
from alerts.channels.memory import MemoryChannel
from alerts.router import AlertStatus
from monitor.app.http.server import create_app
from monitor.clock import FakeClock
from monitor.store.sqlite import SQLiteStore
from tests.test_alerts_router import run
from tests.test_alerts_support import make_alert, make_engine
from tests.test_incident_sweep3 import channels
from tests.test_incident_sweep4 import Peers, check, headline, night, own, utc
from tests.test_infra_sweep import Night, pages, posts

__all__ = ["channels"]  # the third sweep's local Slack and PagerDuty (a fixture)

SECRET = "whsec-phasewatch-test"
TOKEN = "api-token"
KEY = "check:check=game_completeness,pipeline=nba"
PAGED = utc("2026-02-20T11:00:00Z")  # 06:00 ET: game completeness 0.4 for last night, critical


def signed(body: bytes, secret: str = SECRET) -> dict[str, str]:
    digest = hmac.new(secret.encode(), body, hashlib.sha256).hexdigest()
    return {"X-PagerDuty-Signature": f"v1={digest}", "Content-Type": "application/json"}


def delivery(event_type: str, at: datetime, key: str | None = KEY,
             agent: str | None = "Dana Reyes") -> bytes:
    """A V3 webhook delivery as PagerDuty sends it (the fields phasewatch reads, and more)."""
    data: dict[str, Any] = {"id": "Q2O3NPUQYMKP8A", "type": "incident", "number": 1042,
                            "status": event_type.rpartition(".")[2], "title": "Game completeness",
                            "html_url": "https://example.pagerduty.com/incidents/Q2O3NPUQYMKP8A"}
    if key is not None:
        data["incident_key"] = key
    event: dict[str, Any] = {"id": "01DEN9Q8X5Z7", "event_type": event_type,
                             "resource_type": "incident", "occurred_at": at.isoformat(),
                             "client": None, "data": data}
    if agent is not None:
        event["agent"] = {"id": "PLH1HKV", "type": "user_reference", "summary": agent}
    return json.dumps({"event": event}).encode()


def with_webhook(data: dict[str, Any]) -> None:
    data["alerting"]["channels"][0]["webhook_secret_env"] = "PD_WEBHOOK_SECRET"


@pytest.fixture
def paged(tmp_path: Path, channels: Peers, monkeypatch: pytest.MonkeyPatch,
          ) -> Iterator[tuple[Night, TestClient]]:
    """06:00 ET: last night's game completeness is 0.4 (critical): paged, and told in Slack."""
    monkeypatch.setenv("PD_WEBHOOK_SECRET", SECRET)
    n = night(tmp_path, channels, monkeypatch, PAGED - timedelta(minutes=5), edit=with_webhook)
    try:
        n.until(PAGED)
        check(n, "game_completeness", 0.4, "2026-02-19")
        n.until(PAGED + timedelta(minutes=10))
        yield n, TestClient(create_app(n.pw, TOKEN))
    finally:
        n.close()


def status_of(n: Night) -> AlertStatus:
    (status,) = [s for s in n.pw.alerting.router.statuses(n.clock.now()) if s.alert.key == KEY]
    return status


def post(client: TestClient, body: bytes, headers: dict[str, str] | None = None) -> Any:
    return client.post("/v1/pagerduty/webhook", content=body,
                       headers=signed(body) if headers is None else headers)


@pytest.mark.parametrize("acknowledged", [False, True])
def test_an_acknowledged_page_is_reminded_no_more_and_still_resolved(
    paged: tuple[Night, TestClient], channels: Peers, acknowledged: bool,
) -> None:
    """Dana acknowledges the page at 06:10 ET and works on it until 14:30 ET, when last
    night's box scores are re-run (0.98). Without the acknowledgement phasewatch reminds
    PagerDuty and Slack every 4 h (10:00, 14:00 ET): two more pages and two more Slack
    messages for a problem someone is already on (what it did before it heard acks).
    With it: the trigger, then the resolve, on each channel."""
    n, client = paged
    hook, pd_peer, pd = channels
    if acknowledged:
        answer = post(client, delivery("incident.acknowledged", n.clock.now()))
        assert answer.status_code == 200
        assert answer.json() == {"outcome": "acknowledged", "key": KEY, "reason": None}
        auth = {"Authorization": f"Bearer {TOKEN}"}
        shown = client.get("/v1/alerts", headers=auth).json()
        (alert,) = [a for a in shown["alerts"] if a["key"] == KEY]
        assert alert["acknowledged"] == {"at": (PAGED + timedelta(minutes=10)).isoformat(),
                                         "by": "Dana Reyes"}
        assert "acknowledged by Dana Reyes" in client.get("/", headers=auth).text
    n.until(PAGED + timedelta(hours=8, minutes=30), step_s=300)
    (summary,) = [json.dumps(b) for b in hook.accepted("/hook")
                  if b["text"].startswith("phasewatch daily health")]  # 08:00 ET, still firing
    assert ("acknowledged by Dana Reyes" in summary) == acknowledged
    check(n, "game_completeness", 0.98, "2026-02-19")
    n.until(PAGED + timedelta(hours=8, minutes=40))
    reminders = 0 if acknowledged else 2
    assert pages(pd_peer) == [("trigger", "check")] * (1 + reminders) + [("resolve", "check")]
    assert pd.open == {}
    assert [headline(x) for x in own(posts(hook))] == (
        ["CRITICAL"] + ["Still firing"] * reminders + ["RESOLVED after 8 h 30 min"])


def test_a_lapsed_acknowledgement_resumes_the_reminders(
    paged: tuple[Night, TestClient], channels: Peers,
) -> None:
    """Acknowledged at 06:10 ET, unacknowledged at 12:00 ET (PagerDuty's acknowledgement
    timeout): the reminder the acknowledgement held back is due, and goes out at once;
    the next one 4 h later."""
    n, client = paged
    hook, pd_peer, _ = channels
    assert post(client, delivery("incident.acknowledged", n.clock.now())).status_code == 200
    n.until(PAGED + timedelta(hours=6), step_s=300)
    assert pages(pd_peer) == [("trigger", "check")]
    answer = post(client, delivery("incident.unacknowledged", n.clock.now(), agent=None))
    assert answer.json()["outcome"] == "unacknowledged"
    n.until(PAGED + timedelta(hours=6, minutes=5), step_s=60)
    assert pages(pd_peer) == [("trigger", "check")] * 2
    n.until(PAGED + timedelta(hours=10, minutes=10), step_s=300)
    assert pages(pd_peer) == [("trigger", "check")] * 3
    assert [headline(x) for x in own(posts(hook))] == ["CRITICAL", "Still firing", "Still firing"]


def test_resolved_in_pagerduty_while_still_failing_is_taken_as_acknowledged(
    paged: tuple[Night, TestClient], channels: Peers,
) -> None:
    """Dana resolves the incident in PagerDuty at 06:10 ET though the data is still bad: a
    reminder would open a new incident and page again for the page she closed. It is
    taken as acknowledged; phasewatch's own resolve still goes out when the data is fixed
    (PagerDuty's answer to it, incident.resolved again, is ignored)."""
    n, client = paged
    hook, pd_peer, _ = channels
    answer = post(client, delivery("incident.resolved", n.clock.now()))
    assert answer.json()["outcome"] == "acknowledged"
    assert status_of(n).acked_by == "Dana Reyes (resolved in PagerDuty)"
    n.until(PAGED + timedelta(hours=9), step_s=300)
    check(n, "game_completeness", 0.98, "2026-02-19")
    n.until(PAGED + timedelta(hours=9, minutes=10))
    assert pages(pd_peer) == [("trigger", "check"), ("resolve", "check")]
    again = post(client, delivery("incident.resolved", n.clock.now(), agent="phasewatch"))
    assert again.json() == {"outcome": "ignored", "key": KEY,
                            "reason": "no firing alert has this key"}
    assert len(own(posts(hook))) == 2


def test_worse_than_what_was_acknowledged_is_told_and_reminded_again(
    tmp_path: Path, clock: FakeClock,
) -> None:
    """A warning paged (a route that pages warnings) and acknowledged; an hour later the
    same alert is critical: that is told, and its reminders run again (the acknowledgement
    was of less). A repeat at the same severity while acknowledged is not told."""
    store = SQLiteStore(tmp_path / "pw.db")
    pager = MemoryChannel("pager")
    engine = make_engine(store, clock, [pager], {"channels": [{"kind": "memory", "name": "pager"}]})
    try:
        engine.router.fire(make_alert("check", clock.now(), "warning", check="c", pipeline="nba"))
        run(engine, clock, 60)
        key = pager.sent[0].alert.key
        assert engine.router.acknowledge(key, clock.now(), "Dana Reyes")
        engine.router.fire(make_alert("check", clock.now(), "warning", check="c", pipeline="nba"))
        run(engine, clock, 3600, step=60)
        assert [(n.action, n.alert.severity, n.repeat) for n in pager.sent] == [
            ("trigger", "warning", False)]
        engine.router.fire(make_alert("check", clock.now(), "critical", check="c", pipeline="nba"))
        run(engine, clock, 4 * 3600 + 60, step=60)
    finally:
        engine.close()
        store.close()
    assert [(n.action, n.alert.severity, n.repeat) for n in pager.sent] == [
        ("trigger", "warning", False), ("trigger", "critical", False), ("trigger", "critical", True)]


def test_a_restart_keeps_the_acknowledgement(
    tmp_path: Path, channels: Peers, monkeypatch: pytest.MonkeyPatch,
) -> None:
    """Acknowledged at 06:10 ET, the service restarts at 07:00 ET: no reminder at 10:00."""
    monkeypatch.setenv("PD_WEBHOOK_SECRET", SECRET)
    _, pd_peer, _ = channels
    n = night(tmp_path, channels, monkeypatch, PAGED - timedelta(minutes=5), edit=with_webhook)
    try:
        n.until(PAGED)
        check(n, "game_completeness", 0.4, "2026-02-19")
        n.until(PAGED + timedelta(minutes=10))
        client = TestClient(create_app(n.pw, TOKEN))
        assert post(client, delivery("incident.acknowledged", n.clock.now())).status_code == 200
        n.until(PAGED + timedelta(hours=1))
    finally:
        n.close()
    n = night(tmp_path, channels, monkeypatch, PAGED + timedelta(hours=1), edit=with_webhook)
    try:
        n.until(PAGED + timedelta(hours=4, minutes=10), step_s=300)
        status = status_of(n)
    finally:
        n.close()
    assert status.acked_by == "Dana Reyes"
    assert pages(pd_peer) == [("trigger", "check")]


# --------------------------------------------------------------------------- refused


def test_deliveries_not_signed_by_the_secret_are_refused_and_change_nothing(
    paged: tuple[Night, TestClient], channels: Peers,
) -> None:
    n, client = paged
    body = delivery("incident.acknowledged", n.clock.now())
    tampered = body.replace(b"Dana Reyes", b"Dana Reyez")  # signed, then changed on the way
    for text, headers in ((body, {"Content-Type": "application/json"}),
                          (body, signed(body, "another-secret")),
                          (tampered, signed(body)),
                          (body, {**signed(body), "Authorization": f"Bearer {TOKEN}",
                                  "X-PagerDuty-Signature": "v1=00"})):
        answer = post(client, text, headers)
        assert answer.status_code == 401
        assert answer.json()["details"][0]["field"] == "X-PagerDuty-Signature"
    assert status_of(n).acked_at is None
    n.until(PAGED + timedelta(hours=4, minutes=10), step_s=300)
    assert pages(channels[1]) == [("trigger", "check")] * 2  # reminded: not acknowledged


def test_bad_deliveries_get_a_4xx_naming_the_field(paged: tuple[Night, TestClient]) -> None:
    _, client = paged
    for body, status, field in ((b"{not json", 400, "body"),
                                (b'{"event": {"occurred_at": "2026-02-20T11:10:00Z"}}', 422,
                                 "event.event_type"),
                                (b'{"event": {"event_type": "incident.acknowledged",'
                                 b' "occurred_at": "yesterday"}}', 422, "event.occurred_at"),
                                (b'{"event": {"event_type": "incident.acknowledged",'
                                 b' "occurred_at": "2026-02-20T11:10:00Z",'
                                 b' "data": {"incident_key": 7}}}', 422, "event.data.incident_key")):
        answer = post(client, body)
        assert answer.status_code == status, body
        assert answer.json()["details"][0]["field"] == field, answer.json()


def test_what_is_not_about_a_firing_alert_is_ignored(paged: tuple[Night, TestClient]) -> None:
    n, client = paged
    now = n.clock.now()
    for body, reason in (
        (delivery("pagey.ping", now, key=None), "event type pagey.ping"),
        (delivery("incident.annotated", now), "event type incident.annotated"),
        (delivery("incident.acknowledged", now, key=None), "the incident has no incident_key"),
        (delivery("incident.acknowledged", now, key="slo:slo=other"), "no firing alert has this key"),
    ):
        answer = post(client, body)
        assert answer.status_code == 200 and answer.json()["outcome"] == "ignored"
        assert answer.json()["reason"] == reason


def test_without_a_secret_the_webhook_is_closed(
    tmp_path: Path, channels: Peers, monkeypatch: pytest.MonkeyPatch,
) -> None:
    """No ``webhook_secret_env``, or a variable that is not set: every delivery is refused
    (403), bearer token or not; with a token set, the path is not even open without it."""
    monkeypatch.delenv("PD_WEBHOOK_SECRET", raising=False)
    for edit in (None, with_webhook):
        n = night(tmp_path / str(edit is None), channels, monkeypatch, PAGED, edit=edit)
        try:
            client = TestClient(create_app(n.pw, TOKEN))
            body = delivery("incident.acknowledged", n.clock.now())
            answer = post(client, body, {**signed(body), "Authorization": f"Bearer {TOKEN}"})
            assert answer.status_code == 403
            assert answer.json()["details"][0]["field"] == "channels[].webhook_secret_env"
            if edit is None:
                assert post(client, body).status_code == 401  # the bearer token is asked first
        finally:
            n.close()


def test_signatures_as_pagerduty_sends_them_while_a_secret_is_rotated() -> None:
    body = b'{"event": {}}'
    old, new = b"old-secret", b"new-secret"
    sig = {s: hmac.new(s, body, hashlib.sha256).hexdigest() for s in (old, new)}
    assert verify(body, f"v1={sig[old]},v1={sig[new]}", [new])
    assert verify(body, f"v1={sig[old]}", [old, new])
    assert not verify(body, f"v1={sig[old]}", [new])
    assert not verify(body, sig[new], [new])  # no scheme: refused
    assert not verify(body, None, [new]) and not verify(body, f"v1={sig[new]}", [])


def test_an_acknowledgement_heard_by_another_instance_holds_the_reminders(
    tmp_path: Path, clock: FakeClock,
) -> None:
    """Instances sharing a store: the webhook reaches one, another notifies. The one that
    notifies holds its reminder back all the same, and resumes when it is unacknowledged."""
    store = SQLiteStore(tmp_path / "pw.db")
    pager = MemoryChannel("pager")
    cfg = {"channels": [{"kind": "memory", "name": "pager"}]}
    leader = make_engine(store, clock, [pager], cfg)
    other = make_engine(store, clock, [MemoryChannel("pager")], cfg)
    try:
        alert = make_alert("check", clock.now(), "critical", check="c", pipeline="nba")
        leader.router.fire(alert)
        other.router.fire(alert)
        run(leader, clock, 60)
        assert other.router.acknowledge(alert.key, clock.now(), "Dana Reyes")
        run(leader, clock, 5 * 3600, step=60)
        assert [n.repeat for n in pager.sent] == [False]
        assert other.router.unacknowledge(alert.key)
        run(leader, clock, 60)
    finally:
        leader.close()
        other.close()
        store.close()
    assert [n.repeat for n in pager.sent] == [False, True]
