"""Channels with the real client libraries (slack-sdk, httpx) against local HTTP servers that
speak Slack's and PagerDuty's wire protocols: payloads, 429 with Retry-After, an outage that
recovers, resolve closing the incident and updating the Slack message."""

from __future__ import annotations

import itertools
from collections import Counter
from collections.abc import Iterator
from dataclasses import replace
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest

from alerts.blockkit import MAX_BLOCKS, MAX_SECTION_TEXT
from alerts.channels.base import UnavailableChannel
from alerts.config import AlertingConfig
from alerts.engine import AlertEngine
from alerts.flood import failure_alert
from alerts.outbox import DELIVERED, PENDING
from monitor.app.phasewatch import Phasewatch
from monitor.clock import FakeClock
from monitor.config import Config
from monitor.store.sqlite import SQLiteStore
from tests.test_alerts_support import Peer, Request, make_alert, ok, serve

RUN = {"pipeline": "nba", "run_date": "2026-01-17", "mode": "overnight"}
SECRETS = {"SLACK_WEBHOOK_URL": "", "SLACK_BOT_TOKEN": "xoxb-test", "PD_ROUTING_KEY": "R" * 32}


class PagerDutyFake:
    """Events API v2: incidents opened by trigger and closed by resolve, per dedup_key."""

    def __init__(self) -> None:
        self.open: dict[str, dict[str, Any]] = {}
        self.opened: Counter[str] = Counter()
        self.closed: Counter[str] = Counter()

    def __call__(self, request: Request) -> tuple[int, dict[str, str], Any]:
        body = request.body
        if request.path != "/v2/enqueue" or body.get("routing_key") != SECRETS["PD_ROUTING_KEY"]:
            return 400, {}, {"status": "invalid event", "message": "Event object is invalid"}
        key = body["dedup_key"]
        if body["event_action"] == "trigger":
            if key not in self.open:
                self.opened[key] += 1
            self.open[key] = body
        elif body["event_action"] == "resolve" and self.open.pop(key, None) is not None:
            self.closed[key] += 1
        return 202, {}, {"status": "success", "message": "Event processed", "dedup_key": key}


class SlackFake:
    """chat.postMessage / chat.update: one message per ts; updates replace its text."""

    def __init__(self) -> None:
        self.messages: dict[str, dict[str, Any]] = {}
        self.replies: list[dict[str, Any]] = []
        self._ts = itertools.count(1)

    def __call__(self, request: Request) -> tuple[int, dict[str, str], Any]:
        if request.headers.get("Authorization") != f"Bearer {SECRETS['SLACK_BOT_TOKEN']}":
            return 200, {}, {"ok": False, "error": "invalid_auth"}
        body = request.body
        if request.path == "/api/chat.postMessage":
            if body.get("thread_ts"):
                self.replies.append(body)
                return 200, {}, {"ok": True, "channel": "C1", "ts": f"1700000000.{next(self._ts):06d}"}
            ts = f"1700000000.{next(self._ts):06d}"
            self.messages[ts] = body
            return 200, {}, {"ok": True, "channel": "C1", "ts": ts}
        if request.path == "/api/chat.update":
            if body["ts"] not in self.messages:
                return 200, {}, {"ok": False, "error": "message_not_found"}
            self.messages[body["ts"]] = body
            return 200, {}, {"ok": True, "channel": "C1", "ts": body["ts"]}
        return 404, {}, "unknown method"


@pytest.fixture
def peers() -> Iterator[tuple[Peer, Peer, Peer, PagerDutyFake, SlackFake]]:
    pd, bot = PagerDutyFake(), SlackFake()
    with serve(ok(200, "ok")) as hook, serve(pd) as pd_peer, serve(bot) as bot_peer:
        yield hook, pd_peer, bot_peer, pd, bot


def build(db: SQLiteStore, clock: FakeClock, hook: Peer, pd: Peer, bot: Peer,
          **extra: Any) -> AlertEngine:
    cfg = AlertingConfig.model_validate({
        "channels": [
            {"kind": "slack", "name": "slack", "webhook_url_env": "SLACK_WEBHOOK_URL", "burst": 50},
            {"kind": "slack_bot", "name": "slack-bot", "token_env": "SLACK_BOT_TOKEN",
             "channel": "#alerts", "base_url": f"{bot.url}/api/", "burst": 50},
            {"kind": "pagerduty", "name": "pagerduty", "routing_key_env": "PD_ROUTING_KEY",
             "url": f"{pd.url}/v2/enqueue", "burst": 50},
        ],
        "group_wait_s": 0, **extra,
    })
    secrets = {**SECRETS, "SLACK_WEBHOOK_URL": f"{hook.url}/hook"}
    return AlertEngine.build(cfg, db=db, clock=clock, secret=lambda name: secrets.get(name or ""))


@pytest.fixture
def db(tmp_path: Path) -> Iterator[SQLiteStore]:
    store = SQLiteStore(tmp_path / "pw.db")
    yield store
    store.close()


def drive(engine: AlertEngine, clock: FakeClock, seconds: float, step: float = 5.0) -> None:
    end = clock.now() + timedelta(seconds=seconds)
    while clock.now() < end:
        engine.tick(clock.now())
        clock.advance(step)
    engine.tick(clock.now())


def test_payloads_of_each_channel(db: SQLiteStore, clock: FakeClock, peers: Any) -> None:
    hook, pd_peer, bot_peer, _, bot = peers
    engine = build(db, clock, hook, pd_peer, bot_peer)
    alert = make_alert("phase_stuck", clock.now(), "critical", phase="phase3",
                       summary="phase 3→4 stuck: missing player_game_summary " + "x" * 2000,
                       **RUN)
    alert = replace(alert, details="d" * 10_000, links={
        "runbook": "https://runbooks.example/phase3", "run": "https://pw/runs/1"})
    engine.router.fire(alert)
    drive(engine, clock, 10)
    engine.close()

    [slack] = hook.accepted("/hook")
    assert slack["text"].startswith("CRITICAL: phase 3→4 stuck")
    assert len(slack["blocks"]) <= MAX_BLOCKS
    texts = [b["text"]["text"] for b in slack["blocks"] if b["type"] == "section"]
    assert texts and all(len(t) <= MAX_SECTION_TEXT for t in texts)
    assert "<https://runbooks.example/phase3|runbook>" in str(slack["blocks"])

    [event] = pd_peer.accepted()
    assert event["event_action"] == "trigger" and event["dedup_key"] == alert.key
    payload = event["payload"]
    assert payload["severity"] == "critical" and len(payload["summary"]) == 1024
    assert payload["source"] == "nba" and payload["component"] == "phase3"
    assert payload["custom_details"]["labels"]["run_date"] == "2026-01-17"
    assert {"href": "https://runbooks.example/phase3", "text": "runbook"} in event["links"]

    [message] = bot.messages.values()
    assert message["channel"] == "#alerts" and len(message["blocks"]) <= MAX_BLOCKS


def test_resolve_closes_the_incident_and_updates_the_slack_message(
    db: SQLiteStore, clock: FakeClock, peers: Any
) -> None:
    hook, pd_peer, bot_peer, pd, bot = peers
    engine = build(db, clock, hook, pd_peer, bot_peer, group_interval_s=60)
    alert = make_alert("service_unhealthy", clock.now(), "critical", service="prediction-worker")
    engine.router.fire(alert)
    drive(engine, clock, 10)
    assert list(pd.open) == [alert.key]
    [ts] = bot.messages
    assert bot.messages[ts]["text"].startswith("CRITICAL")
    engine.router.resolve(alert.key, clock.now())
    drive(engine, clock, 90)
    engine.close()
    assert pd.open == {} and pd.opened[alert.key] == 1 and pd.closed[alert.key] == 1
    assert list(bot.messages) == [ts]  # the same message, now resolved
    assert bot.messages[ts]["text"].startswith("RESOLVED after 1 min")
    assert [b["text"] for b in hook.accepted("/hook")][-1].startswith("RESOLVED")


def test_rate_limit_and_outage_deliver_every_alert_once(
    db: SQLiteStore, clock: FakeClock, peers: Any
) -> None:
    hook, pd_peer, bot_peer, pd, bot = peers
    engine = build(db, clock, hook, pd_peer, bot_peer)
    hook.script = [(429, {"Retry-After": "30"}, "rate_limited"),
                   *[(500, {}, "internal error")] * 4]
    pd_peer.script = [(429, {"Retry-After": "10"}, {"status": "throttled"}),
                      *[(503, {}, "unavailable")] * 6]
    bot_peer.script = [(429, {"Retry-After": "0"}, {"ok": False, "error": "ratelimited"}),
                       *[(500, {}, "oops")] * 3]
    alerts = [make_alert("trigger_undelivered", clock.now(), "critical", phase=f"phase{i}", **RUN) for i in range(2, 7)]
    for a in alerts:
        engine.router.fire(a)
    drive(engine, clock, 25)
    assert hook.statuses == [429]  # Retry-After: 30 holds the whole channel back
    drive(engine, clock, 1800, step=30)
    engine.close()

    keys = sorted(a.key for a in alerts)
    assert sorted(e["dedup_key"] for e in pd_peer.accepted()) == keys
    assert sum(pd.opened.values()) == 5 and all(n == 1 for n in pd.opened.values())
    hook_texts = [b["text"] for b in hook.accepted("/hook")]
    assert len(hook_texts) == 5 and len(set(hook_texts)) == 5
    assert len(bot.messages) == 5  # one message per alert, none doubled
    assert all(r.status == DELIVERED for r in engine.outbox.rows())
    assert 429 in hook.statuses and 500 in hook.statuses and 503 in pd_peer.statuses


def test_retry_after_delays_the_next_request(db: SQLiteStore, clock: FakeClock, peers: Any) -> None:
    hook, pd_peer, bot_peer, _, _ = peers
    engine = build(db, clock, hook, pd_peer, bot_peer)
    pd_peer.script = [(429, {"Retry-After": "45"}, {"status": "throttled"})]
    engine.router.fire(make_alert("trigger_undelivered", clock.now(), "critical", phase="phase4", **RUN))
    engine.tick(clock.now())
    [row] = [r for r in engine.outbox.rows(PENDING) if r.channel == "pagerduty"]
    assert row.next_attempt_at == clock.now() + timedelta(seconds=45)
    clock.advance(44)
    engine.tick(clock.now())
    assert len(pd_peer.requests) == 1
    clock.advance(1)
    engine.tick(clock.now())
    assert len(pd_peer.accepted()) == 1
    engine.close()


def test_pagerduty_400_is_not_retried(db: SQLiteStore, clock: FakeClock, peers: Any) -> None:
    hook, pd_peer, bot_peer, _, _ = peers
    engine = build(db, clock, hook, pd_peer, bot_peer)
    pd_peer.script = [(400, {}, {"status": "invalid event", "errors": ["summary missing"]})]
    engine.router.fire(make_alert("trigger_undelivered", clock.now(), "critical", phase="phase4", **RUN))
    drive(engine, clock, 3600, step=60)
    engine.close()
    assert len(pd_peer.requests) == 1
    [row] = [r for r in engine.outbox.rows() if r.channel == "pagerduty"]
    assert row.status == "dead" and "HTTP 400" in (row.last_error or "")


def test_five_hundred_identical_failures_page_once_with_the_count(
    db: SQLiteStore, clock: FakeClock, peers: Any
) -> None:
    hook, pd_peer, bot_peer, pd, _ = peers
    engine = build(db, clock, hook, pd_peer, bot_peer, group_wait_s=30)
    assert pd.opened == Counter()
    for i in range(500):
        engine.router.fire(failure_alert(
            "schema_drift", {"pipeline": "nba", "phase": "phase5"},
            f"400 Invalid field vegas_line_source for player {i} in batch b-{i % 7}", clock.now()))
        clock.advance(0.05)
    drive(engine, clock, 60)
    engine.close()
    [event] = pd_peer.accepted()
    assert sum(pd.opened.values()) == 1
    assert event["payload"]["summary"].endswith("(500 occurrences)")
    assert event["payload"]["custom_details"]["count"] == 500
    [slack] = hook.accepted("/hook")
    assert "500 occurrences" in slack["text"]


def test_long_keys_fit_pagerduty_dedup_key(db: SQLiteStore, clock: FakeClock, peers: Any) -> None:
    hook, pd_peer, bot_peer, _, _ = peers
    engine = build(db, clock, hook, pd_peer, bot_peer)
    a = make_alert("deterministic_failure", clock.now(), "critical", processor="p" * 400, **RUN)
    b = make_alert("deterministic_failure", clock.now(), "critical", processor="p" * 399 + "q", **RUN)
    engine.router.fire(a)
    engine.router.fire(b)
    drive(engine, clock, 10)
    engine.close()
    keys = [e["dedup_key"] for e in pd_peer.accepted()]
    assert len(keys) == 2 and len(set(keys)) == 2 and all(len(k) <= 255 for k in keys)


def test_missing_secret_keeps_alerts_waiting(db: SQLiteStore, clock: FakeClock) -> None:
    cfg = AlertingConfig.model_validate({"group_wait_s": 0, "channels": [
        {"kind": "pagerduty", "name": "pd", "routing_key_env": "NOT_SET_ANYWHERE"}]})
    engine = AlertEngine.build(cfg, db=db, clock=clock, secret=lambda name: None)
    assert isinstance(engine.channels["pd"], UnavailableChannel)
    engine.router.fire(make_alert("trigger_undelivered", clock.now(), "critical", phase="phase4", **RUN))
    drive(engine, clock, 600, step=60)
    [row] = engine.outbox.rows()
    assert row.status == PENDING and "NOT_SET_ANYWHERE is not set" in (row.last_error or "")


def test_configured_channels_through_phasewatch_build(
    nba_config: Config, clock: FakeClock, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    pd = PagerDutyFake()
    with serve(pd) as pd_peer:
        monkeypatch.setenv("PW_TEST_PD_KEY", SECRETS["PD_ROUTING_KEY"])
        alerting = AlertingConfig.model_validate({"channels": [
            {"kind": "log", "name": "log"},
            {"kind": "pagerduty", "name": "pagerduty", "routing_key_env": "PW_TEST_PD_KEY",
             "url": f"{pd_peer.url}/v2/enqueue"},
        ], "routes": [{"severities": ["critical"], "channels": ["pagerduty", "log"]}],
            "default_channels": ["log"]})
        config = nba_config.model_copy(update={"alerting": alerting})
        pw = Phasewatch.build(config, db_path=tmp_path / "pw.db", clock=clock)
        try:
            pw.router.fire(make_alert("service_unhealthy", clock.now(), "critical", service="w"))
            pw.router.fire(make_alert("anomaly", clock.now(), "warning", pipeline="nba"))
            clock.advance(30)
            pw.run_job("deliver-alerts")
            text = pw.metrics.exposition()[0].decode()
        finally:
            pw.close()
    assert list(pd.opened) == ["service_unhealthy:service=w"]
    assert [d.as_dict()["channels"] for d in pw.router.history] in (
        [["pagerduty", "log"], ["log"]], [["log"], ["pagerduty", "log"]])
    assert ('phasewatch_alerts_total{channel="pagerduty",outcome="delivered",severity="critical"} 1.0'
            in text)


def test_restart_with_undelivered_outbox_delivers_once(tmp_path: Path, clock: FakeClock) -> None:
    path = tmp_path / "pw.db"
    pd = PagerDutyFake()
    with serve(pd) as pd_peer:
        store = SQLiteStore(path)
        cfg = {"kind": "pagerduty", "name": "pagerduty", "routing_key_env": "PD_ROUTING_KEY"}
        down = AlertingConfig.model_validate({"group_wait_s": 0, "channels": [
            {**cfg, "url": "http://127.0.0.1:9/v2/enqueue"}]})  # nothing listens on port 9
        engine = AlertEngine.build(down, db=store, clock=clock, secret=SECRETS.get)
        alerts = [make_alert("trigger_undelivered", clock.now(), "critical", phase=f"phase{i}", **RUN) for i in (3, 4)]
        for a in alerts:
            engine.router.fire(a)
        engine.tick(clock.now())
        assert [r.status for r in engine.outbox.rows()] == [PENDING, PENDING]
        engine.close()
        store.close()  # the process stops with both pages undelivered

        store = SQLiteStore(path)
        up = AlertingConfig.model_validate({"group_wait_s": 0, "channels": [
            {**cfg, "url": f"{pd_peer.url}/v2/enqueue"}]})
        engine = AlertEngine.build(up, db=store, clock=clock, secret=SECRETS.get)
        for a in alerts:
            engine.router.fire(a)  # the evaluators re-raise what they still see
        drive(engine, clock, 600, step=30)
        engine.close()
        store.close()
    assert sorted(pd.opened) == sorted(a.key for a in alerts)
    assert len(pd_peer.accepted()) == 2  # delivered after the restart, none doubled


def test_a_notice_is_told_once_and_never_pages(
    db: SQLiteStore, clock: FakeClock, peers: Any
) -> None:
    hook, pd_peer, bot_peer, pd, _ = peers
    engine = build(db, clock, hook, pd_peer, bot_peer)
    notice = make_alert("stalled_recovered", clock.now(), "info", phase="phase5", **RUN)
    engine.router.fire(notice)
    engine.router.resolve(notice.key, clock.now())
    drive(engine, clock, 60)
    engine.close()
    assert pd_peer.accepted() == [] and pd.opened == Counter()  # info never goes to PagerDuty
    [slack] = hook.accepted("/hook")
    assert slack["text"].startswith("NOTICE:")
