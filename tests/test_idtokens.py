"""Google ID tokens on outbound calls, with real google-auth against a local metadata server.

The stub answers what google-auth asks on Cloud Run: the ping (``GCE_METADATA_IP``), the
service account's info and ``.../identity?audience=...&format=full``, which returns a JWT
signed with a test RSA key whose ``iat``/``exp`` follow the test's fake clock. Targets
imitate Cloud Run's IAM: a request without a token the metadata server issued gets 401.
"""

from __future__ import annotations

import asyncio
import json
import socket
import subprocess
import sys
import threading
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from datetime import UTC, datetime
from functools import cache
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs

import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa
from google.auth import crypt, jwt
from google.auth.compute_engine import _metadata
from phasewatch_client.kit.testing import LocalServer, StubReply, StubRequest

from monitor.actuator.config import HttpTrigger, RecoveryActionConfig, ServiceConfig
from monitor.actuator.gates.health import HttpHealthProbe
from monitor.actuator.simulated import simulated
from monitor.actuator.sinks import HttpSink, MemorySink, SinkResult, TriggerRequest
from monitor.app.phasewatch import Phasewatch
from monitor.app.sim.replay import SimulatedWorld
from monitor.clock import FakeClock
from monitor.errors import ConfigError
from monitor.idtokens import REFRESH_BEFORE_S, RETRY_AFTER_S, IdTokens
from tests.actuator_support import Answer, Peer, Received, Rig, edit_config, http_peer, json_answer, phase_of

ROOT = Path(__file__).resolve().parent.parent
SERVICE_ACCOUNT = "phasewatch@my-project.iam.gserviceaccount.com"
IDENTITY = "/computeMetadata/v1/instance/service-accounts/default/identity"
ACCOUNT_INFO = "/computeMetadata/v1/instance/service-accounts/default/"
FLAVOR = ("Metadata-Flavor", "Google")
LIFETIME_S = 3600  # what Google issues
REQUEST = TriggerRequest("nba", "2026-01-17", "overnight", "phase4", "all_complete", 1,
                         "nba:2026-01-17:overnight:phase4", rule="all_complete")
NOW = datetime(2026, 1, 18, 12, 0, tzinfo=UTC)


@cache
def signer() -> crypt.RSASigner:
    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    pem = key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                            serialization.NoEncryption())
    return crypt.RSASigner.from_string(pem, "test-key-1")


@dataclass
class Metadata:
    """The GCE / Cloud Run metadata server, as far as ID tokens go; records what it issued."""

    clock: FakeClock
    url: str = ""
    audiences: list[str] = field(default_factory=list)
    issued: list[str] = field(default_factory=list)
    refuse: bool = False  # the identity endpoint answers 404 (an instance without an account)
    hold: threading.Event | None = None  # identity requests wait for it (at most 2 s)
    held: threading.Event = field(default_factory=threading.Event)  # one is waiting
    crowded: threading.Event = field(default_factory=threading.Event)  # two wait at once
    waiting: int = 0
    lock: threading.Lock = field(default_factory=threading.Lock)

    def __call__(self, request: StubRequest) -> StubReply:
        if request.headers.get("metadata-flavor") != "Google":
            return StubReply(403, b"Missing Metadata-Flavor:Google header.", (FLAVOR,))
        if request.path == "/":
            return StubReply(200, b"computeMetadata/\n", (FLAVOR, ("Content-Type", "application/text")))
        if request.path == ACCOUNT_INFO:
            info = {"aliases": ["default"], "email": SERVICE_ACCOUNT, "scopes": []}
            return StubReply(200, json.dumps(info).encode(), (FLAVOR, ("Content-Type", "application/json")))
        if request.path == IDENTITY:
            return self._identity(parse_qs(request.query))
        return StubReply(404, b"Not Found", (FLAVOR,))

    def _identity(self, query: dict[str, list[str]]) -> StubReply:
        (audience,) = query["audience"]
        assert query["format"] == ["full"]
        if self.refuse:
            return StubReply(404, b"no service account is attached to this instance", (FLAVOR,))
        if self.hold is not None:
            with self.lock:
                self.waiting += 1
                (self.crowded if self.waiting > 1 else self.held).set()
            released = self.hold.wait(timeout=2)
            with self.lock:
                self.waiting -= 1
            if not released:
                return StubReply(404, b"the test never let this request through", (FLAVOR,))
        now = int(self.clock.now().timestamp())
        with self.lock:
            claims = {"iss": "https://accounts.google.com", "aud": audience, "azp": "1234",
                      "sub": "1234", "email": SERVICE_ACCOUNT, "email_verified": True,
                      "iat": now, "exp": now + LIFETIME_S, "jti": str(len(self.issued))}
            token = jwt.encode(signer(), claims).decode()
            self.audiences.append(audience)
            self.issued.append(token)
        return StubReply(200, token.encode(), (FLAVOR, ("Content-Type", "application/text")))

    def count(self) -> int:
        with self.lock:
            return len(self.issued)


def point_google_auth_at(monkeypatch: pytest.MonkeyPatch, url: str) -> None:
    """Send google-auth's metadata requests to ``url`` (as on Cloud Run, with no key file)."""
    host = url.removeprefix("http://")
    monkeypatch.delenv("GOOGLE_APPLICATION_CREDENTIALS", raising=False)
    monkeypatch.setenv("GCE_METADATA_IP", host)  # the ping; read on every call
    monkeypatch.setenv("GCE_METADATA_HOST", host)
    # google-auth reads GCE_METADATA_HOST once, when _metadata is imported (earlier, in this
    # process); test_the_environment_alone_steers_google_auth shows the variable works alone.
    monkeypatch.setattr(_metadata, "_GCE_METADATA_HOST", host)


@pytest.fixture
def metadata(monkeypatch: pytest.MonkeyPatch, clock: FakeClock) -> Iterator[Metadata]:
    stub = Metadata(clock)
    with LocalServer(stub) as server:
        stub.url = server.url
        point_google_auth_at(monkeypatch, server.url)
        yield stub


def claims(token: str) -> dict[str, Any]:
    return dict(jwt.decode(token, verify=False))


ACCEPTED = json_answer(202, {"ok": True})


def cloud_run(metadata: Metadata, answer: Answer = ACCEPTED) -> Any:
    """A target behind IAM: 401 unless the bearer token is one the metadata server issued."""
    def handle(request: Received) -> Answer:
        bearer = request.headers.get("authorization", "").removeprefix("Bearer ")
        if bearer not in metadata.issued:
            return 401, {}, b"Your client does not have permission to the requested URL."
        return answer
    return handle


def google_target(url: str, **kw: Any) -> HttpTrigger:
    return HttpTrigger(kind="http", url=f"{url}/start", auth="google", **kw)  # type: ignore[arg-type]


def send(way: str, sink: HttpSink, target: HttpTrigger, times: int = 1) -> list[SinkResult]:
    """``times`` sends on a dispatch worker's path (sync) or on an event loop (async)."""
    if way == "sync":
        return [sink.send(target, REQUEST) for _ in range(times)]

    async def on_a_loop() -> list[SinkResult]:
        try:
            return [await sink.send_async(target, REQUEST) for _ in range(times)]
        finally:
            await sink.aclose()
    return asyncio.run(on_a_loop())


def bearers(peer: Peer) -> list[str]:
    return [r.headers.get("authorization", "") for r in peer.requests]


# --- triggers --------------------------------------------------------------------------------

@pytest.mark.parametrize("audience", [None, "https://coordinator-abc123-uc.a.run.app"])
@pytest.mark.parametrize("way", ["sync", "async"])
def test_a_trigger_carries_an_id_token_for_its_audience(
    way: str, audience: str | None, metadata: Metadata, clock: FakeClock,
) -> None:
    with http_peer(cloud_run(metadata)) as peer:
        sink = HttpSink(id_tokens=IdTokens(clock))
        try:
            (result,) = send(way, sink, google_target(peer.url, audience=audience))
        finally:
            sink.close()
    assert (result.outcome, result.status_code) == ("accepted", 202), result.detail
    expected = audience or peer.url  # default: the URL's scheme://host[:port], no path
    assert metadata.audiences == [expected]
    (token,) = metadata.issued
    assert claims(token)["aud"] == expected and claims(token)["email"] == SERVICE_ACCOUNT
    assert bearers(peer) == [f"Bearer {token}"]


def test_without_auth_no_token_is_minted_and_iam_refuses(metadata: Metadata, clock: FakeClock) -> None:
    with http_peer(cloud_run(metadata)) as peer:
        sink = HttpSink(id_tokens=IdTokens(clock))
        try:
            (result,) = send("sync", sink, HttpTrigger(kind="http", url=f"{peer.url}/start"))  # type: ignore[arg-type]
        finally:
            sink.close()
    assert (result.outcome, result.status_code, result.retryable) == ("failed", 401, False)
    assert metadata.issued == [] and bearers(peer) == [""]


def test_the_token_is_cached_then_refreshed_once_near_expiry(metadata: Metadata, clock: FakeClock) -> None:
    with http_peer(cloud_run(metadata)) as peer:
        sink = HttpSink(id_tokens=IdTokens(clock))
        target = google_target(peer.url)
        try:
            results = send("sync", sink, target, 5) + send("async", sink, target, 5)
            assert metadata.count() == 1
            clock.advance(LIFETIME_S - REFRESH_BEFORE_S - 1)  # one second before the refresh
            results += send("sync", sink, target)
            assert metadata.count() == 1
            clock.advance(2)  # now within five minutes of exp: the loop fetches (in a thread)
            results += send("async", sink, target, 3) + send("sync", sink, target, 3)
        finally:
            sink.close()
    assert [r.outcome for r in results] == ["accepted"] * 17
    first, second = metadata.issued
    assert claims(second)["exp"] - claims(first)["exp"] == LIFETIME_S - REFRESH_BEFORE_S + 1
    assert bearers(peer) == [f"Bearer {first}"] * 11 + [f"Bearer {second}"] * 6


def test_concurrent_sends_wait_for_one_fetch(metadata: Metadata, clock: FakeClock) -> None:
    threads = 8
    hold = metadata.hold = threading.Event()
    with http_peer(cloud_run(metadata)) as peer:
        sink = HttpSink(id_tokens=IdTokens(clock))
        target = google_target(peer.url)
        start = threading.Barrier(threads)

        def one(_: int) -> SinkResult:
            start.wait()
            return sink.send(target, REQUEST)

        try:
            with ThreadPoolExecutor(threads) as pool:
                sending = pool.map(one, range(threads))
                assert metadata.held.wait(timeout=5)  # the first fetch is at the metadata server
                crowded = metadata.crowded.wait(timeout=0.5)  # a second one would arrive meanwhile
                hold.set()
                results = list(sending)
        finally:
            sink.close()
    assert not crowded, "two fetches of one audience ran at once"
    assert [r.outcome for r in results] == ["accepted"] * threads
    (token,) = metadata.issued  # seven senders waited for the first one's token
    assert bearers(peer) == [f"Bearer {token}"] * threads


def test_the_loop_keeps_running_while_a_token_is_fetched(metadata: Metadata, clock: FakeClock) -> None:
    metadata.hold = threading.Event()

    async def scenario(sink: HttpSink, target: HttpTrigger) -> SinkResult:
        sending = asyncio.create_task(sink.send_async(target, REQUEST))
        while not metadata.held.is_set():  # the fetch has reached the metadata server
            await asyncio.sleep(0.01)
        metadata.hold.set()  # type: ignore[union-attr]  # runs only if the fetch left the loop free
        try:
            return await sending
        finally:
            await sink.aclose()

    with http_peer(cloud_run(metadata)) as peer:
        sink = HttpSink(id_tokens=IdTokens(clock))
        try:
            result = asyncio.run(scenario(sink, google_target(peer.url)))
        finally:
            sink.close()
    assert result.outcome == "accepted", result.detail
    assert bearers(peer) == [f"Bearer {metadata.issued[0]}"]


# --- health probes and recovery actions ------------------------------------------------------

def test_a_health_probe_carries_the_id_token(metadata: Metadata, clock: FakeClock) -> None:
    with http_peer(cloud_run(metadata, json_answer(200, {"status": "pass"}))) as peer:
        probe = HttpHealthProbe(id_tokens=IdTokens(clock))
        cfg = ServiceConfig(health_url=f"{peer.url}/health", ready_url=f"{peer.url}/health/ready",  # type: ignore[arg-type]
                            auth="google")
        try:
            results = [probe.probe("worker", cfg, ("health", "ready"), NOW) for _ in range(3)]
        finally:
            probe.close()
    assert [r.status for r in results] == ["pass"] * 3, results[0].detail
    (token,) = metadata.issued  # one audience (the service's origin) for both endpoints
    assert claims(token)["aud"] == peer.url
    assert [r.path for r in peer.requests] == ["/health", "/health/ready"] * 3
    assert bearers(peer) == [f"Bearer {token}"] * 6


def test_a_recovery_action_carries_the_id_token(metadata: Metadata, clock: FakeClock) -> None:
    audience = "https://prediction-coordinator-abc123-ue.a.run.app"
    with http_peer(cloud_run(metadata)) as peer:
        def edit(data: dict[str, Any]) -> None:
            actions = phase_of(data, "phase5")["transition"]["recovery"]["actions"]
            actions["check_stalled"] = {"kind": "http", "url": f"{peer.url}/check-stalled",
                                        "auth": "google", "audience": audience}

        world = SimulatedWorld()
        probe, _, checks = simulated(world)
        memory = MemorySink()
        sink = HttpSink(id_tokens=IdTokens(clock))
        pw = Phasewatch.build(edit_config(edit), db_path=":memory:", clock=clock, probe=probe,
                              sinks={"http": sink, "pubsub": memory, "log": memory}, checks=checks)
        try:
            r = Rig(pw, clock, memory, world)
            r.ingest("phase5", "started", "prediction-worker", batch_id="b1", done=0, total=100)
            for done in (40, 80, 96):
                clock.advance(120)
                r.ingest("phase5", "progress", "prediction-worker", batch_id="b1", done=done, total=100)
            r.tick_for(11 * 60)
            steps = pw.report_sections()["recoveries"]
        finally:
            pw.close()
            sink.close()
    assert [(s["action"], s["outcome"]) for s in steps] == [("check_stalled", "accepted")]
    (call,) = [q for q in peer.requests if q.path == "/check-stalled"]
    (token,) = metadata.issued
    assert claims(token)["aud"] == audience
    assert call.headers["authorization"] == f"Bearer {token}" and call.json()["batch_id"] == "b1"


# --- failures --------------------------------------------------------------------------------

@pytest.fixture
def closed_url() -> str:
    """A local address where nothing listens (connections are refused)."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return f"http://127.0.0.1:{sock.getsockname()[1]}"


def test_metadata_server_down_fails_sends_and_probes_retryably_then_recovers(
    monkeypatch: pytest.MonkeyPatch, clock: FakeClock, closed_url: str,
) -> None:
    point_google_auth_at(monkeypatch, closed_url)
    tokens = IdTokens(clock)  # shared, as the failure is remembered for RETRY_AFTER_S
    stub = Metadata(clock)  # started once the failures are seen
    with http_peer(cloud_run(stub, json_answer(200, {"status": "pass"}))) as peer:
        sink = HttpSink(id_tokens=tokens)
        probe = HttpHealthProbe(id_tokens=tokens)
        target = google_target(peer.url)
        try:
            # google-auth pings three times (about 3 s of its backoff), then gives up
            (sync,) = send("sync", sink, target)
            (on_loop,) = send("async", sink, target)
            health = probe.probe("worker", ServiceConfig(health_url=f"{peer.url}/health",  # type: ignore[arg-type]
                                                         auth="google"), ("health",), NOW)
            assert peer.requests == []  # nothing went out without its token
            with LocalServer(stub) as server:
                point_google_auth_at(monkeypatch, server.url)
                clock.advance(RETRY_AFTER_S - 1)
                (remembered,) = send("sync", sink, target)
                assert stub.issued == []
                clock.advance(1)
                (recovered,) = send("sync", sink, target)
        finally:
            sink.close()
            probe.close()
    for result in (sync, on_loop, remembered):
        assert (result.outcome, result.retryable, result.status_code) == ("failed", True, None)
        assert result.detail.startswith(f"cannot mint an ID token for {peer.url}: ")
        assert "DefaultCredentialsError" in result.detail
    assert health.status == "fail"
    assert health.detail.startswith(f"health: cannot mint an ID token for {peer.url}: ")
    assert recovered.outcome == "accepted", recovered.detail
    assert bearers(peer) == [f"Bearer {stub.issued[0]}"]


@pytest.mark.parametrize("way", ["sync", "async"])
def test_a_refusing_metadata_server_is_a_failed_retryable_send(
    way: str, metadata: Metadata, clock: FakeClock,
) -> None:
    metadata.refuse = True
    with http_peer(cloud_run(metadata)) as peer:
        sink = HttpSink(id_tokens=IdTokens(clock))
        try:
            (result,) = send(way, sink, google_target(peer.url))
        finally:
            sink.close()
    assert (result.outcome, result.retryable) == ("failed", True)
    assert result.detail.startswith(f"cannot mint an ID token for {peer.url}: RefreshError")
    assert "404" in result.detail and peer.requests == []


# --- config ----------------------------------------------------------------------------------

def _with_trigger(trigger: dict[str, Any]) -> Any:
    def edit(data: dict[str, Any]) -> None:
        phase_of(data, "phase4")["triggers"] = [trigger]
    return edit


def _with_service(extra: dict[str, Any]) -> Any:
    def edit(data: dict[str, Any]) -> None:
        data["pipelines"][0]["services"]["prediction-coordinator"].update(extra)
    return edit


def _with_action(action: dict[str, Any]) -> Any:
    def edit(data: dict[str, Any]) -> None:
        phase_of(data, "phase5")["transition"]["recovery"]["actions"]["check_stalled"] = action
    return edit


URL = "https://coordinator-abc123-ue.a.run.app/start"


@pytest.mark.parametrize(("edit", "where", "words"), [
    (_with_trigger({"kind": "http", "url": URL, "auth": "google", "token_env": "T"}),
     "phases[3:phase4].triggers[0].http.auth", "auth: google and token_env are exclusive"),
    (_with_service({"auth": "google", "token_env": "T"}),
     "services.prediction-coordinator.auth", "auth: google and token_env are exclusive"),
    (_with_action({"kind": "http", "url": URL, "auth": "google", "token_env": "T"}),
     "actions.check_stalled.auth", "auth: google and token_env are exclusive"),
    (_with_trigger({"kind": "http", "url": URL, "audience": "https://x"}),
     "phases[3:phase4].triggers[0].http.audience", "needs auth: google"),
    (_with_trigger({"kind": "http", "url": URL, "auth": "aws"}),
     "phases[3:phase4].triggers[0].http.auth", "'google'"),
    (_with_action({"kind": "retrigger", "auth": "google"}),
     "actions.check_stalled", "remove auth"),
])
def test_config_errors_name_the_field(edit: Any, where: str, words: str) -> None:
    with pytest.raises(ConfigError) as info:
        edit_config(edit)
    rendered = str(info.value)
    assert any(where in p.field for p in info.value.problems), rendered
    assert words in rendered


def test_default_audience_is_the_url_origin() -> None:
    trigger = HttpTrigger(kind="http", url="https://svc-abc-ue.a.run.app:443/start?x=1", auth="google")  # type: ignore[arg-type]
    assert trigger.audience_for(trigger.url) == "https://svc-abc-ue.a.run.app"
    local = ServiceConfig(health_url="http://127.0.0.1:8104/health", auth="google")  # type: ignore[arg-type]
    assert local.audience_for(local.health_url) == "http://127.0.0.1:8104"
    explicit = RecoveryActionConfig(kind="http", url=URL, auth="google", audience="custom-aud")  # type: ignore[arg-type]
    assert explicit.audience_for(URL) == "custom-aud"
    assert HttpTrigger(kind="http", url=URL, token_env="T").audience_for(URL) is None  # type: ignore[arg-type]
    function = "https://us-east1-proj.cloudfunctions.net/phase3-to-phase4?x=1"
    gen1 = HttpTrigger(kind="http", url=function, auth="google")  # type: ignore[arg-type]
    assert gen1.audience_for(gen1.url) == "https://us-east1-proj.cloudfunctions.net/phase3-to-phase4"


def test_the_environment_alone_steers_google_auth(metadata: Metadata) -> None:
    """As deployed: GCE_METADATA_HOST / GCE_METADATA_IP set before the process starts."""
    code = "from monitor.idtokens import IdTokens; print(IdTokens().get('https://svc.a.run.app'))"
    out = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True,
                         timeout=60, check=True).stdout.strip()
    assert metadata.issued == [out] and metadata.audiences == ["https://svc.a.run.app"]
