"""Incidents of the things around the pipeline, as the person on call meets them at 3 a.m.

The first sweep (tests/test_incident_sweep.py) covered the pipeline's own failures; these
cover its surroundings: the alert channels themselves down or rate limiting, a trigger
target refusing phasewatch's identity, a target that says 200 and starts nothing, the event
store unavailable, forged Pub/Sub pushes, and phasewatch killed in the middle of an open
incident. Each drives the whole stack on a fake clock and counts what each channel was told
(the real channel clients against local servers that speak Slack's and PagerDuty's wire
protocols).
"""

from __future__ import annotations

import base64
import json
import sqlite3
from collections import Counter
from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager
from datetime import UTC, datetime, timedelta
from itertools import pairwise
from pathlib import Path
from typing import Any

import httpx
import pytest
import yaml
from phasewatch_client import PhasewatchClient
from phasewatch_client.kit.testing import LocalServer

from monitor.actuator.gates.health import HttpHealthProbe
from monitor.actuator.simulated import simulated
from monitor.actuator.sinks.base import TriggerSink
from monitor.actuator.sinks.http import HttpSink
from monitor.app.http.server import create_app
from monitor.app.phasewatch import Phasewatch
from monitor.app.sim.replay import HealthLine, SimulatedWorld
from monitor.app.slo_history import stored_probes
from monitor.clock import FakeClock, SystemClock
from monitor.config import Config, default_config_text
from monitor.idtokens import IdTokens
from monitor.scheduler.attempt import Attempt
from tests.actuator_support import PHASE4
from tests.factories import make_event
from tests.test_alerts_channels import SECRETS, PagerDutyFake
from tests.test_alerts_support import Peer, ok, serve
from tests.test_pubsub_auth import AUDIENCE, PUSHER, Google, Key, config_with
from tests.test_service import Http, dumps, ev, push_envelope, rejected

START = datetime(2026, 1, 18, 7, 0, tzinfo=UTC)  # 02:00 ET: nothing of the run is due


def at(minutes: float) -> datetime:
    return START + timedelta(minutes=minutes)


class Night:
    """A whole phasewatch on a fake clock with a simulated world, alerting a PagerDuty and a
    Slack webhook served locally."""

    def __init__(self, db: Path | str, pd_url: str, hook_url: str, monkeypatch: pytest.MonkeyPatch,
                 start: datetime = START, world: SimulatedWorld | None = None,
                 clock: FakeClock | None = None, edit: Callable[[dict[str, Any]], None] | None = None,
                 sinks: Mapping[str, TriggerSink] | None = None, store_checks: bool = False) -> None:
        """``store_checks``: the actuator reads the check store (as ``serve`` does), not the
        world's check answers."""
        monkeypatch.setenv("PD_ROUTING_KEY", SECRETS["PD_ROUTING_KEY"])
        monkeypatch.setenv("SLACK_WEBHOOK_URL", hook_url)
        data = yaml.safe_load(default_config_text())
        data["alerting"] = {**data.get("alerting", {}), "channels": [
            {"kind": "pagerduty", "name": "pagerduty", "routing_key_env": "PD_ROUTING_KEY",
             "url": pd_url},
            {"kind": "slack", "name": "slack", "webhook_url_env": "SLACK_WEBHOOK_URL"}]}
        if edit is not None:
            edit(data)
        self.config = Config.model_validate(data)
        self.clock = clock or FakeClock(start)
        self.world = world or SimulatedWorld()
        probe, simulated_sinks, checks = simulated(self.world)
        self.pw = Phasewatch.build(self.config, db_path=db, clock=self.clock, probe=probe,
                                   sinks={**simulated_sinks, **(sinks or {})},
                                   checks=None if store_checks else checks)

    def health(self, service: str, status: str) -> None:
        self.world.apply(HealthLine.model_validate(
            {"type": "health", "service": service, "status": status,
             "timestamp": self.clock.now().isoformat()}, strict=False))

    def until(self, when: datetime, step_s: float = 30.0) -> None:
        while self.clock.now() + timedelta(seconds=step_s) <= when:
            self.clock.advance(step_s)
            self.pw.tick(self.clock.now())
        self.clock.set(when)

    def close(self) -> None:
        self.pw.close()


@pytest.fixture
def peers() -> Iterator[tuple[Peer, Peer, PagerDutyFake]]:
    pd = PagerDutyFake()
    with serve(ok(200, "ok")) as hook, serve(pd) as pd_peer:
        yield hook, pd_peer, pd


@pytest.fixture(scope="module")
def signers() -> tuple[Key, Key]:
    """Google's signing key, and one Google does not publish."""
    return Key.generate("kid-1"), Key.generate("kid-2")


@pytest.fixture
def verified(signers: tuple[Key, Key], clock: FakeClock, tmp_path: Path) -> Iterator[Phasewatch]:
    """A phasewatch verifying push tokens against Google's certificates (served locally), in
    a simulated world where every service is healthy."""
    probe, sinks, checks = simulated(SimulatedWorld())
    with LocalServer(Google([signers[0]])) as certs:
        pw = Phasewatch.build(config_with({"audience": AUDIENCE, "service_accounts": [PUSHER],
                                           "certs_url": f"{certs.url}/oauth2/v1/certs"}),
                              db_path=tmp_path / "pw.db", clock=clock, probe=probe, sinks=sinks,
                              checks=checks)
        yield pw
        pw.close()


@pytest.fixture
def http_push(verified: Phasewatch) -> Iterator[Http]:
    client = Http(create_app(verified, None))
    yield client
    client.close()


def pages(pd_peer: Peer) -> list[tuple[str, str]]:
    """(event_action, alert name) of every event PagerDuty accepted."""
    return [(e["event_action"], e["dedup_key"].split(":")[0]) for e in pd_peer.accepted()]


def paged_once(pd_peer: Peer, pd: PagerDutyFake, key: str) -> None:
    """One PagerDuty incident in all, for ``key``: a trigger and a resolve accepted, the
    incident opened once and closed."""
    assert [(e["event_action"], e["dedup_key"]) for e in pd_peer.accepted()] == [
        ("trigger", key), ("resolve", key)]
    assert dict(pd.opened) == {key: 1} and pd.open == {}


def posts(hook: Peer) -> list[str]:
    """The text of every Slack message accepted."""
    return [b["text"] for b in hook.accepted("/hook")]


# --------------------------------------------------------------------------- channels down


def test_channels_down_for_thirty_minutes_tell_each_problem_once_and_nothing_stale(
    tmp_path: Path, peers: tuple[Peer, Peer, PagerDutyFake], monkeypatch: pytest.MonkeyPatch,
) -> None:
    """PagerDuty answers 503 and Slack 429 (Retry-After 60) from 07:00 to 07:35 UTC. The
    coordinator is down 07:05-07:20 (over while nobody could be told); the worker goes down
    at 07:25 and stays down until 08:00 (still down when the channels come back).
    Ideal: the worker is paged once after the channels recover and resolved once at 08:00,
    in that order; the coordinator's outage, over before anybody could be told, does not
    page as if it were live: Slack gets it once, as resolved, and PagerDuty opens no
    incident for it (its resolve of a dedup key never triggered is a no-op there).
    Measured before the fix: at 07:35 both channels got the coordinator's CRITICAL trigger
    (PagerDuty opened an incident for an outage over 15 min earlier), then its resolve."""
    hook, pd_peer, pd = peers
    pd_peer.default = lambda request: (503, {}, "unavailable")
    hook.default = lambda request: (429, {"Retry-After": "60"}, "rate_limited")
    night = Night(tmp_path / "pw.db", f"{pd_peer.url}/v2/enqueue", f"{hook.url}/hook", monkeypatch)
    try:
        night.until(at(5))
        night.health("prediction-coordinator", "fail")
        night.until(at(20))
        night.health("prediction-coordinator", "pass")
        night.until(at(25))
        night.health("prediction-worker", "fail")
        night.until(at(35))
        assert pd_peer.accepted() == [] and hook.accepted() == []
        assert 503 in pd_peer.statuses and 429 in hook.statuses
        pd_peer.default, hook.default = pd, ok(200, "ok")
        night.until(at(60))
        night.health("prediction-worker", "pass")
        night.until(at(90))
    finally:
        night.close()
    worker_key = "service_unhealthy:service=prediction-worker"
    assert [e["event_action"] for e in pd_peer.accepted() if e["dedup_key"] == worker_key] == [
        "trigger", "resolve"]
    assert [e["event_action"] for e in pd_peer.accepted() if e["dedup_key"] != worker_key] == [
        "resolve"]
    assert dict(pd.opened) == {worker_key: 1} and dict(pd.closed) == {worker_key: 1}
    assert pd.open == {}
    texts = posts(hook)
    coordinator = [x for x in texts if "prediction-coordinator" in x]
    worker = [x for x in texts if "prediction-worker" in x]
    assert len(coordinator) == 1 and coordinator[0].startswith("RESOLVED")
    assert len(worker) == 2 and worker[0].startswith("CRITICAL") and worker[1].startswith("RESOLVED")


# --------------------------------------------------------------------------- restarted mid-incident


def test_phasewatch_killed_during_an_open_outage_neither_repeats_nor_loses_it(
    tmp_path: Path, peers: tuple[Peer, Peer, PagerDutyFake], monkeypatch: pytest.MonkeyPatch,
) -> None:
    """The coordinator goes down at 07:05 while the overnight run's Phase 4 finishes
    (07:10): the page goes out, the Phase 5 trigger is held. At 07:30 phasewatch is killed
    (no close: kill -9) and a new one starts on the same store. Ideal: the open page is not
    sent again as new, the held trigger is not lost nor doubled: when the coordinator
    recovers at 08:00, Phase 5 is triggered once and the page resolved once."""
    hook, pd_peer, pd = peers
    db = tmp_path / "pw.db"
    first = Night(db, f"{pd_peer.url}/v2/enqueue", f"{hook.url}/hook", monkeypatch)
    first.until(at(5))
    first.health("prediction-coordinator", "fail")
    first.until(at(10))
    first.pw.ingest([make_event("phase4", "succeeded", at(10).isoformat(), p, run_date="2026-01-17",
                                mode="overnight") for p in PHASE4])
    first.until(at(30))
    key = "service_unhealthy:service=prediction-coordinator"
    assert [e["event_action"] for e in pd_peer.accepted() if e["dedup_key"] == key] == ["trigger"]
    held = first.pw.actuator.store.audit_rows(kinds=("deferral",))  # type: ignore[union-attr]
    assert {(d["phase"], d["service"]) for d in held} == {("phase5", "prediction-coordinator")}
    # kill -9: nothing closed, nothing flushed; a new process on the same file and world.
    second = Night(db, f"{pd_peer.url}/v2/enqueue", f"{hook.url}/hook", monkeypatch,
                   world=first.world, clock=first.clock)
    try:
        second.until(at(60))
        second.health("prediction-coordinator", "pass")
        second.until(at(63))
        second.pw.ingest([make_event("phase5", "started", at(63).isoformat(), "prediction-coordinator",
                                     run_date="2026-01-17", mode="overnight")])
        second.until(at(120))
        audit = second.pw.actuator.store.audit_rows(kinds=("trigger",))  # type: ignore[union-attr]
    finally:
        second.close()
        first.close()
    assert [e["event_action"] for e in pd_peer.accepted() if e["dedup_key"] == key] == [
        "trigger", "resolve"]
    assert dict(pd.opened) == {key: 1} and pd.open == {}
    slack = [x for x in posts(hook) if "prediction-coordinator" in x]
    assert [x.split(":")[0] for x in slack if "service unhealthy" in x] == ["CRITICAL", "RESOLVED after 55 min"]
    sent = [a for a in audit if a["phase"] == "phase5" and a["outcome"] == "succeeded"]
    assert len(sent) == 1 and at(60) <= datetime.fromisoformat(sent[0]["time"]) <= at(62)


# --------------------------------------------------------------------------- a target refusing phasewatch


IDENTITY = "phasewatch@nba-props.iam.gserviceaccount.com"


def id_token(audience: str) -> str:
    """A Google-shaped ID token of phasewatch's service account (unsigned: the peer is local)."""
    def part(data: dict[str, Any]) -> str:
        return base64.urlsafe_b64encode(json.dumps(data).encode()).decode().rstrip("=")
    claims = {"iss": "https://accounts.google.com", "aud": audience, "email": IDENTITY,
              "email_verified": True, "exp": 4_000_000_000, "iat": 1_700_000_000}
    return f"{part({'alg': 'RS256', 'kid': 'k1'})}.{part(claims)}.c2ln"


def start_by_http(url: str) -> Callable[[dict[str, Any]], None]:
    """Phase 5 started by one HTTP target behind IAM (auth: google) at ``url``."""
    def edit(data: dict[str, Any]) -> None:
        (phase5,) = [p for p in data["pipelines"][0]["phases"] if p["id"] == "phase5"]
        phase5["triggers"] = [{"kind": "http", "url": url, "auth": "google"}]
    return edit


@contextmanager
def phase4_done(tmp_path: Path, peers: tuple[Peer, Peer, PagerDutyFake],
                monkeypatch: pytest.MonkeyPatch, answer: Any) -> Iterator[tuple[Night, Any]]:
    """A night whose Phase 5 trigger goes to a target answering by ``answer`` (with an ID
    token), the overnight run's Phase 4 complete at 07:10; yields it and the target."""
    hook, pd_peer, _ = peers
    with serve(answer) as target:
        clock = FakeClock(START)
        sink = HttpSink(id_tokens=IdTokens(clock, mint=id_token))
        night = Night(tmp_path / "pw.db", f"{pd_peer.url}/v2/enqueue", f"{hook.url}/hook", monkeypatch,
                      clock=clock, edit=start_by_http(f"{target.url}/start"), sinks={"http": sink})
        try:
            night.until(at(10))
            night.pw.ingest([make_event("phase4", "succeeded", at(10).isoformat(), p,
                                        run_date="2026-01-17", mode="overnight") for p in PHASE4])
            yield night, target
        finally:
            night.close()
            sink.close()


@pytest.mark.parametrize("status", [403, 401])
def test_a_target_refusing_phasewatchs_identity_is_escalated_once_and_not_retried(
    tmp_path: Path, peers: tuple[Peer, Peer, PagerDutyFake], monkeypatch: pytest.MonkeyPatch,
    status: int,
) -> None:
    """A redeploy stripped roles/run.invoker from phasewatch's service account (incident 13's
    class): the coordinator's /start answers 403 (or 401) to every call. Phase 4 finishes at
    07:10. Ideal: one call (retrying cannot grant a role), one page naming the target and
    the identity it refused, the decision audited as a permanent failure, and nothing
    more sent or told in the two hours after. Measured before the fix: all of it, but the
    page said only "HTTP 403: Forbidden: ...": which account lost its role was left for
    the person paged to find out."""
    hook, pd_peer, _ = peers
    text = {403: "Forbidden: Your client does not have permission to get URL /start from this server.",
            401: "Unauthorized: Your client does not have permission to the requested URL /start."}
    with phase4_done(tmp_path, peers, monkeypatch, lambda request: (status, {}, text[status])) as (
            night, target):
        night.until(at(130))
        audit = night.pw.actuator.store.audit_rows(kinds=("trigger",))  # type: ignore[union-attr]
    assert len(target.requests) == 1
    assert target.requests[0].headers["Authorization"] == f"Bearer {id_token(target.url)}"
    (failed,) = [a for a in audit if a["phase"] == "phase5"]
    assert failed["outcome"] == "failed" and failed["permanent"] is True
    pd = [(e["event_action"], e["dedup_key"].split(":")[0], e.get("payload", {}).get("summary", ""))
          for e in pd_peer.accepted()]
    assert [(a, n) for a, n, _ in pd] == [("trigger", "trigger_undelivered")]
    summary = pd[0][2]
    assert f"HTTP {status}" in summary and f"{target.url}/start" in summary and IDENTITY in summary
    slack = posts(hook)
    assert len(slack) == 1 and IDENTITY in slack[0]


# --------------------------------------------------------------------------- 200 and nothing ran


def test_a_target_that_says_200_and_starts_nothing_is_retriggered_within_bounds_then_paged_once(
    tmp_path: Path, peers: tuple[Peer, Peer, PagerDutyFake], monkeypatch: pytest.MonkeyPatch,
) -> None:
    """The coordinator's /start answers 200 {"status": "started"} but starts nothing (its
    Firestore write failed after the reply): no Phase 5 `started` ever arrives. Ideal:
    re-triggered after each verification window (15 min), at most max_retriggers (2)
    times, each with its own idempotency key; then one page, no more calls, resolved
    once Phase 5 finally starts (a person ran it at 09:00). Measured before the fix: the
    two re-triggers carried the first call's Idempotency-Key, so a target that honours the
    key (answers a repeat from its first reply) would run nothing on them either."""
    hook, pd_peer, _ = peers
    with phase4_done(tmp_path, peers, monkeypatch, ok(200, {"status": "started"})) as (night, target):
        night.until(at(120))
        calls = len(target.requests)
        night.pw.ingest([make_event("phase5", "started", at(120).isoformat(), "prediction-coordinator",
                                    run_date="2026-01-17", mode="overnight")])
        night.until(at(180))
        audit = night.pw.actuator.store.audit_rows(kinds=("trigger", "verification"))  # type: ignore[union-attr]
    assert calls == 3 == len(target.requests)  # the first and max_retriggers = 2
    keys = [r.headers["Idempotency-Key"] for r in target.requests]
    assert len(set(keys)) == 3
    sent = [datetime.fromisoformat(a["time"]) for a in audit if a["kind"] == "trigger"
            and a["outcome"] == "succeeded"]
    assert len(sent) == 3 and all(b - a >= timedelta(minutes=15) for a, b in pairwise(sent))
    assert sent[-1] - sent[0] <= timedelta(minutes=2 * 15 + 5)
    pd = [(e["event_action"], e["dedup_key"].split(":")[0]) for e in pd_peer.accepted()]
    assert pd == [("trigger", "trigger_no_effect"), ("resolve", "trigger_no_effect")]
    # Slack: the first re-trigger as a warning, the escalation (the same alert, now
    # critical), and its resolve when Phase 5 started at 09:00 (1 h 35 min after the warning).
    assert [x.split(":")[0] for x in posts(hook)] == ["WARNING", "CRITICAL", "RESOLVED after 1 h 35 min"]


# --------------------------------------------------------------------------- the event store locked


class Bridge(httpx.BaseTransport):
    """The client library's synchronous httpx over the service's ASGI app."""

    def __init__(self, http: Http) -> None:
        self.http = http

    def handle_request(self, request: httpx.Request) -> httpx.Response:
        answer = self.http.request(request.method, request.url.path, content=request.read(),
                                   headers=dict(request.headers))
        return httpx.Response(answer.status_code, headers=answer.headers, content=answer.content)


def test_the_event_store_locked_for_a_while_loses_and_doubles_nothing(tmp_path: Path) -> None:
    """Another process (a backup, a migration) holds the SQLite file's write lock longer
    than phasewatch waits for it. Ideal: each POST /v1/events answers 503 with
    Retry-After and stores nothing; the client library keeps the events and retries,
    honouring it; once the lock is released every event is stored once; the periodic jobs
    that ran meanwhile failed (logged) without taking the service down, and nobody was
    paged for it. Asserted as it behaves: a guard."""
    db = tmp_path / "pw.db"
    clock = FakeClock(START)
    world = SimulatedWorld()
    probe, sinks, checks = simulated(world)
    data = yaml.safe_load(default_config_text())
    data["alerting"] = {**data.get("alerting", {}), "channels": [{"kind": "memory", "name": "pager"}]}
    pw = Phasewatch.build(Config.model_validate(data), db_path=db, clock=clock, probe=probe,
                          sinks=sinks, checks=checks)
    http = Http(create_app(pw, None))
    pw.store._db.execute("PRAGMA busy_timeout=50")  # type: ignore[attr-defined]  # not 30 s
    other = sqlite3.connect(db, isolation_level=None)
    other.execute("BEGIN IMMEDIATE")  # the other process's write lock
    slept: list[float] = []
    answers: list[int] = []

    def sleep(seconds: float) -> None:
        slept.append(seconds)
        if len(slept) == 2:
            pw.tick(clock.now())  # the jobs run while the store is locked
            other.execute("COMMIT")  # the lock is released after the second wait

    def record(response: httpx.Response) -> None:
        answers.append(response.status_code)

    client = PhasewatchClient("http://phasewatch.test", pipeline="nba", transport=Bridge(http),
                              sleep=sleep, max_attempts=5)
    client._http.event_hooks["response"] = [record]
    try:
        for p in PHASE4:
            client.emit("phase4", "succeeded", processor=p, run_date="2026-01-17", mode="overnight",
                        timestamp=clock.now())
        assert client.flush() == 0
        stats = client.stats
        stored = [e for e in pw.store.events() if e.phase == "phase4"]
        clock.advance(600)
        pw.tick(clock.now())
    finally:
        client.close()
        http.close()
        other.close()
        pw.close()
    # The first emit's send, then the flush's two attempts while locked; one batch after.
    assert answers == [503, 503, 503, 202]
    assert len(slept) == 2 and all(s >= 1.0 for s in slept)  # Retry-After: 1 honoured
    assert stats.delivered == len(PHASE4) and stats.pending == 0
    assert sorted(e.processor or "" for e in stored) == sorted(PHASE4)
    assert [d for d in pw.router.history if "pager" in d.channels] == []


# --------------------------------------------------------------------------- forged pushes


def test_a_flood_of_pushes_with_bad_tokens_is_refused_counted_and_pages_nobody(
    http_push: Http, verified: Phasewatch, signers: tuple[Key, Key], clock: FakeClock,
) -> None:
    """For 30 min something posts to /v1/pubsub/push with tokens that must not pass: expired,
    for another audience, signed by a key Google does not publish (600 pushes). Ideal: each
    is 401 (fail closed), counted by reason, nothing stored or dead-lettered, the periodic
    jobs unaffected, and nobody told anything N times (nothing at all: no real event was
    lost, the pipeline's own pushes still pass). Asserted as it behaves: a guard."""
    key, other_key = signers
    now = int(SystemClock().now().timestamp())
    bad = {"push_token_expired": key.sign(iat=now - 7200, exp=now - 3600),
           "push_token_audience": key.sign(aud="https://elsewhere.example/push"),
           "push_token_signature": other_key.sign()}  # kid-2: not among Google's keys
    answers: Counter[tuple[int, str]] = Counter()
    for i in range(200):
        for reason, token in bad.items():
            response = http_push.post("/v1/pubsub/push", json=push_envelope(
                dumps(ev(event_id=f"forged-{reason}-{i}")), f"m-{reason}-{i}"),
                headers={"Authorization": f"Bearer {token}"})
            answers[(response.status_code, response.json()["reason"])] += 1
        clock.advance(9)
        verified.tick(clock.now())
    real = http_push.post("/v1/pubsub/push", json=push_envelope(dumps(ev(event_id="real-1")), "m-real"),
                          headers={"Authorization": f"Bearer {key.sign()}"})
    assert real.status_code == 200 and verified.store.count() == 1
    assert answers == {(401, reason): 200 for reason in bad}
    assert {reason: rejected(verified, reason) for reason in bad} == dict.fromkeys(bad, 200)
    assert verified.store.dead_letters() == []
    assert list(verified.router.history) == []


# --------------------------------------------------------------------------- two paths, one start


def test_the_scheduler_job_finding_phasewatchs_trigger_already_running_pages_nobody(
    tmp_path: Path, peers: tuple[Peer, Peer, PagerDutyFake], monkeypatch: pytest.MonkeyPatch,
) -> None:
    """The same-day Phase 4 finishes at 11:20 ET: phasewatch triggers Phase 5 at once, and
    the coordinator starts. At 11:30 ET the same-day-predictions scheduler job calls the
    same /start (two paths, one effect): the coordinator answers 409 already running, and
    Cloud Scheduler logs the attempt as failed. Ideal: one start (phasewatch's, audited
    once); the job's 409 on a phase that is running is the idempotency working, not a
    failure: nobody is told anything, and the job's next 200 changes nothing. Measured
    before the fix: "CRITICAL: scheduler job same-day-predictions failed: HTTP 409 from
    .../start" paged PagerDuty and Slack (and stayed open until the job's next 200)."""
    hook, pd_peer, _ = peers
    night = Night(tmp_path / "pw.db", f"{pd_peer.url}/v2/enqueue", f"{hook.url}/hook", monkeypatch,
                  start=datetime(2026, 1, 18, 16, 0, tzinfo=UTC))
    day = datetime(2026, 1, 18, tzinfo=UTC)

    def et(hh: int, mm: int) -> datetime:
        return day + timedelta(hours=hh + 5, minutes=mm)

    def report(phase: str, status: str, when: datetime, *processors: str | None) -> None:
        night.pw.ingest([make_event(phase, status, when.isoformat(), p, run_date="2026-01-18",
                                    mode="same_day") for p in processors])

    try:
        night.until(et(11, 20))
        report("phase4", "succeeded", et(11, 20), *PHASE4)
        night.until(et(11, 22))
        report("phase5", "started", et(11, 22), "prediction-coordinator")
        night.until(et(11, 30))
        job = night.config.scheduler.job_map["same-day-predictions"]
        night.pw.scheduler.record([Attempt("log-1", job.name, et(11, 30), "finished", 409, None,
                                           str(job.url))])
        night.until(et(11, 50))
        report("phase5", "succeeded", et(11, 50), "prediction-coordinator", "prediction-worker")
        night.until(et(11, 52))
        report("phase6", "started", et(11, 52), None)
        night.until(et(11, 55))
        report("phase6", "succeeded", et(11, 55), None)
        night.until(et(12, 0))
        night.pw.scheduler.record([Attempt("log-2", job.name, et(12, 0), "finished", 200, None,
                                           str(job.url))])
        night.until(et(13, 0))
        audit = night.pw.actuator.store.audit_rows(kinds=("trigger",))  # type: ignore[union-attr]
    finally:
        night.close()
    sent = [a for a in audit if a["phase"] == "phase5" and a["outcome"] == "succeeded"]
    assert len(sent) == 1 and sent[0]["mode"] == "same_day"
    assert pages(pd_peer) == []
    assert [x for x in posts(hook) if not x.startswith("phasewatch daily health")] == []


def test_a_problem_over_while_the_pager_was_down_and_phasewatch_restarted_is_not_paged_after(
    tmp_path: Path, peers: tuple[Peer, Peer, PagerDutyFake], monkeypatch: pytest.MonkeyPatch,
) -> None:
    """PagerDuty answers 502 from 07:00; the worker fails at 07:05 (its page cannot go out);
    phasewatch is killed at 07:15 and restarted; the worker recovers at 07:20 and PagerDuty
    at 07:40. Ideal: what the outbox holds survives the restart, and the page of an outage
    already over is not sent as live after it: PagerDuty opens no incident, Slack (up all
    along) has the trigger and the resolve, once each."""
    hook, pd_peer, pd = peers
    pd_peer.default = lambda request: (502, {}, "bad gateway")
    db = tmp_path / "pw.db"
    first = Night(db, f"{pd_peer.url}/v2/enqueue", f"{hook.url}/hook", monkeypatch)
    first.until(at(5))
    first.health("prediction-worker", "fail")
    first.until(at(15))
    second = Night(db, f"{pd_peer.url}/v2/enqueue", f"{hook.url}/hook", monkeypatch,
                   world=first.world, clock=first.clock)  # kill -9: the first is never closed
    try:
        second.until(at(20))
        second.health("prediction-worker", "pass")
        second.until(at(40))
        pd_peer.default = pd
        second.until(at(90))
    finally:
        second.close()
        first.close()
    assert 502 in pd_peer.statuses and pd.opened == {} and pd.open == {}
    assert [e["event_action"] for e in pd_peer.accepted()] == ["resolve"]  # opens nothing
    worker = [x.split(":")[0] for x in posts(hook) if "prediction-worker" in x]
    assert worker == ["CRITICAL", "RESOLVED after 15 min"]


# --------------------------------------------------------------------------- phasewatch's own network


def blind_night(tmp_path: Path, peers: tuple[Peer, Peer, PagerDutyFake],
                monkeypatch: pytest.MonkeyPatch, coordinator_down: bool = False,
                after: Callable[[Phasewatch], None] | None = None,
                restart_at: float | None = None) -> None:
    """07:05-07:45: no probe gets an answer (phasewatch's egress is broken); with
    ``coordinator_down`` the coordinator answers 503 from 07:30 to 08:30 (seen at 07:45).
    ``after`` looks at the phasewatch at 09:30, before it closes; with ``restart_at``
    phasewatch restarts (a new process on the same store) at that minute."""
    hook, pd_peer, _ = peers
    network = {"up": True, "coordinator": True}

    def answer(request: httpx.Request) -> httpx.Response:
        if not network["up"]:
            raise httpx.ConnectError("[Errno 101] Network is unreachable", request=request)
        if not network["coordinator"] and request.url.port == 8105:  # its health_url
            return httpx.Response(503, json={"status": "fail"})
        return httpx.Response(200, json={"status": "pass"})

    monkeypatch.setenv("PD_ROUTING_KEY", SECRETS["PD_ROUTING_KEY"])
    monkeypatch.setenv("SLACK_WEBHOOK_URL", f"{hook.url}/hook")
    data = yaml.safe_load(default_config_text())
    data["alerting"] = {**data.get("alerting", {}), "channels": [
        {"kind": "pagerduty", "name": "pagerduty", "routing_key_env": "PD_ROUTING_KEY",
         "url": f"{pd_peer.url}/v2/enqueue"},
        {"kind": "slack", "name": "slack", "webhook_url_env": "SLACK_WEBHOOK_URL"}]}
    clock = FakeClock(START)
    _, sinks, checks = simulated(SimulatedWorld())
    probe = HttpHealthProbe(client=httpx.Client(transport=httpx.MockTransport(answer)))
    config = Config.model_validate(data)

    def build() -> Phasewatch:
        return Phasewatch.build(config, db_path=tmp_path / "pw.db", clock=clock, probe=probe,
                                sinks=sinks, checks=checks)

    pw = build()
    plan = [(5, "up", False), (30, "coordinator", not coordinator_down), (45, "up", True),
            (90, "coordinator", True), (150, "up", True)]
    try:
        for minute, what, value in plan:
            while clock.now() < at(minute):
                clock.advance(30)
                pw.tick(clock.now())
                if restart_at is not None and clock.now() >= at(restart_at):
                    pw.close()
                    pw, restart_at = build(), None
            network[what] = value
        if after is not None:
            after(pw)
    finally:
        pw.close()


def test_phasewatch_losing_its_own_network_pages_once_not_once_per_service(
    tmp_path: Path, peers: tuple[Peer, Peer, PagerDutyFake], monkeypatch: pytest.MonkeyPatch,
) -> None:
    """At 07:05 phasewatch's egress breaks (a VPC connector, DNS): every health probe of
    every service gets a connection error, no HTTP answer at all, until 07:45. The services
    are fine. Ideal: one page that says no service answers phasewatch (its own network, DNS
    or credentials) within 5 min, resolved once, instead of one "service unhealthy" page per
    service. Measured before the fix: 10 pages and 10 Slack posts within 3 min, one per
    configured service, each blaming that service."""
    hook, pd_peer, pd = peers
    blind_night(tmp_path, peers, monkeypatch)
    assert pages(pd_peer) == [("trigger", "probes_unreachable"), ("resolve", "probes_unreachable")]
    (page,) = [e for e in pd_peer.accepted() if e["event_action"] == "trigger"]
    assert "no service answers" in page["payload"]["summary"]
    assert "ConnectError" in page["payload"]["summary"]
    texts = posts(hook)
    assert [x.split(":")[0] for x in texts] == ["CRITICAL", "RESOLVED after 38 min"]  # 07:07-07:45
    opened = datetime.fromisoformat(page["payload"]["timestamp"])
    assert opened - at(5) <= timedelta(minutes=5)
    assert dict(pd.opened) == {"probes_unreachable": 1} and pd.open == {}


def test_a_service_still_down_when_phasewatch_sees_again_is_paged_then(
    tmp_path: Path, peers: tuple[Peer, Peer, PagerDutyFake], monkeypatch: pytest.MonkeyPatch,
) -> None:
    """The same blind 40 min, but the coordinator really went down at 07:30 (while nobody
    could see it) and still answers 503 when phasewatch sees again at 07:45. Ideal: the
    blind page and its resolve, then the coordinator's own outage paged within 5 min of
    07:45 (not hidden as a consequence of the blindness it outlived), resolved at 08:30."""
    hook, pd_peer, pd = peers
    blind_night(tmp_path, peers, monkeypatch, coordinator_down=True)
    key = "service_unhealthy:service=prediction-coordinator"
    assert pages(pd_peer) == [("trigger", "probes_unreachable"), ("resolve", "probes_unreachable"),
                              ("trigger", "service_unhealthy"), ("resolve", "service_unhealthy")]
    (page,) = [e for e in pd_peer.accepted() if e["dedup_key"] == key and e["event_action"] == "trigger"]
    assert at(45) <= datetime.fromisoformat(page["payload"]["timestamp"]) <= at(50)
    assert dict(pd.opened) == {"probes_unreachable": 1, key: 1} and pd.open == {}
    assert [x.split(":")[0] for x in posts(hook) if "prediction-coordinator" in x] == [
        "CRITICAL", "RESOLVED after 45 min"]


def test_probes_phasewatch_could_not_make_do_not_spend_the_services_error_budgets(
    tmp_path: Path, peers: tuple[Peer, Peer, PagerDutyFake], monkeypatch: pytest.MonkeyPatch,
) -> None:
    """The blind 40 min again: no service got a probe answered, so nothing is known of them.
    The prediction worker's availability SLO counts no bad probe for those minutes (its
    budget is the worker's, not phasewatch's network's), live and as `slo report` rebuilds
    it from the store. Measured before the fix: 40 bad probes of 150 counted, the budget (0.5%
    of the probes) spent 53 times over by an outage of phasewatch."""
    seen: dict[str, tuple[int, int]] = {}
    stored: list[str] = []

    def availability(pw: Phasewatch) -> None:
        for status in pw.slo.evaluate(pw.clock.now()):
            if status.kind == "availability":
                seen[status.name] = (status.good, status.total)
        # what `slo report` and a start rebuild availability from
        stored.extend(p.status for p in stored_probes(pw.probes, since=START))

    blind_night(tmp_path, peers, monkeypatch, after=availability)
    assert seen and stored
    for name, (good, total) in seen.items():
        assert good == total and total > 0, (name, good, total)
    assert set(stored) == {"pass"}
