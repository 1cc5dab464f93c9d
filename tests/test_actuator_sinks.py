"""Trigger sinks against real peers: a local HTTP server and a local Pub/Sub gRPC Publisher."""

from __future__ import annotations

import asyncio
import json
import threading
from collections.abc import Iterator
from concurrent import futures
from dataclasses import dataclass, field
from typing import Any

import grpc
import pytest
from google.pubsub_v1.types import PublishRequest, PublishResponse

from monitor.actuator.config import HttpTrigger, LogTrigger, PubSubTrigger
from monitor.actuator.sinks import HttpSink, LogSink, PubSubSink, SinkResult, TriggerRequest
from tests.actuator_support import http_peer, json_answer, silent_port

REQUEST = TriggerRequest("nba", "2026-01-17", "overnight", "phase4", "all_complete", 1,
                         "nba:2026-01-17:overnight:phase4", rule="all_complete")


def http_target(url: str, **kw: Any) -> HttpTrigger:
    return HttpTrigger(kind="http", url=f"{url}/start", **kw)  # type: ignore[arg-type]


WAYS = ("sync", "async")  # HttpSink.send (dispatch workers), HttpSink.send_async (the loop)


def send(way: str, sink: HttpSink, target: HttpTrigger, request: TriggerRequest = REQUEST) -> SinkResult:
    if way == "sync":
        return sink.send(target, request)

    async def on_a_loop() -> SinkResult:
        try:
            return await sink.send_async(target, request)
        finally:
            await sink.aclose()
    return asyncio.run(on_a_loop())


@pytest.mark.parametrize("way", WAYS)
def test_http_sink_posts_json_with_the_idempotency_key_and_token(
    way: str, monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("COORDINATOR_TOKEN", "t0ken")
    with http_peer(lambda r: json_answer(202, {"batch_id": "b1"})) as peer:
        sink = HttpSink()
        try:
            result = send(way, sink, http_target(peer.url, token_env="COORDINATOR_TOKEN"))
        finally:
            sink.close()
    assert (result.outcome, result.status_code) == ("accepted", 202)
    (request,) = peer.requests
    assert (request.method, request.path) == ("POST", "/start")
    assert request.headers["idempotency-key"] == "nba:2026-01-17:overnight:phase4"
    assert request.headers["authorization"] == "Bearer t0ken"
    assert request.headers["content-type"] == "application/json"
    body = request.json()
    assert body["game_date"] == "2026-01-17" and body["phase"] == "phase4"
    assert (body["reason"], body["attempt"], body["triggered_by"]) == ("all_complete", 1, "phasewatch")


@pytest.mark.parametrize(("status", "outcome", "retryable"), [
    (200, "accepted", True), (204, "accepted", True), (409, "already_running", True),
    (429, "failed", True), (500, "failed", True), (503, "failed", True),
    (400, "failed", False), (403, "failed", False), (404, "failed", False),
])
@pytest.mark.parametrize("way", WAYS)
def test_http_sink_classifies_answers(status: int, outcome: str, retryable: bool, way: str) -> None:
    with http_peer(lambda r: json_answer(status, {"status": "already_running"})) as peer:
        sink = HttpSink()
        try:
            result = send(way, sink, http_target(peer.url))
        finally:
            sink.close()
    assert (result.outcome, result.retryable) == (outcome, retryable)
    assert f"HTTP {status}" in result.detail


@pytest.mark.parametrize(("status", "header", "wait_s"), [
    (429, "300", 300.0), (503, "12", 12.0), (429, "Wed, 18 Feb 2026 07:30:00 GMT", None),
    (429, None, None), (400, "300", None), (200, "300", None),
])
@pytest.mark.parametrize("way", WAYS)
def test_http_sink_keeps_the_retry_after_of_a_retryable_refusal(
    status: int, header: str | None, wait_s: float | None, way: str,
) -> None:
    """Seconds only (an HTTP date is left to the backoff); only on a retryable refusal."""
    headers = {"Retry-After": header} if header else {}
    with http_peer(lambda r: (status, headers, b"Quota exceeded")) as peer:
        sink = HttpSink()
        try:
            result = send(way, sink, http_target(peer.url))
        finally:
            sink.close()
    assert result.retry_after_s == wait_s
    assert ("Retry-After" in result.detail) == (wait_s is not None)


@pytest.mark.parametrize("way", WAYS)
def test_http_sink_timeout_and_refusal_are_retryable_failures(way: str) -> None:
    sink = HttpSink()
    try:
        with silent_port() as url:
            slow = send(way, sink, http_target(url, timeout_s=0.3))
        refused = send(way, sink, http_target(url))
    finally:
        sink.close()
    assert (slow.outcome, slow.retryable) == ("failed", True) and "timeout" in slow.detail
    assert (refused.outcome, refused.retryable) == ("failed", True)


def test_log_sink_accepts_and_sinks_refuse_the_wrong_kind() -> None:
    assert LogSink().send(LogTrigger(kind="log"), REQUEST).outcome == "accepted"
    wrong = HttpSink().send(LogTrigger(kind="log"), REQUEST)
    assert (wrong.outcome, wrong.retryable) == ("failed", False)


@dataclass
class Publisher:
    """A local google.pubsub.v1.Publisher that records what it is sent."""

    address: str
    messages: list[tuple[str, bytes, dict[str, str]]] = field(default_factory=list)
    fail_with: grpc.StatusCode | None = None
    lock: threading.Lock = field(default_factory=threading.Lock)


@pytest.fixture
def publisher() -> Iterator[Publisher]:
    state = Publisher("")

    def publish(request: Any, context: grpc.ServicerContext) -> Any:
        if state.fail_with is not None:
            context.abort(state.fail_with, "refused by the test")
        ids = []
        with state.lock:
            for message in request.messages:
                state.messages.append((request.topic, message.data, dict(message.attributes)))
                ids.append(f"m-{len(state.messages)}")
        return PublishResponse.pb()(message_ids=ids)

    handler = grpc.method_handlers_generic_handler("google.pubsub.v1.Publisher", {
        "Publish": grpc.unary_unary_rpc_method_handler(
            publish, request_deserializer=PublishRequest.pb().FromString,
            response_serializer=PublishResponse.pb().SerializeToString),
    })
    server = grpc.server(futures.ThreadPoolExecutor(max_workers=4))
    server.add_generic_rpc_handlers((handler,))
    port = server.add_insecure_port("127.0.0.1:0")
    server.start()
    state.address = f"127.0.0.1:{port}"
    try:
        yield state
    finally:
        server.stop(grace=None)


def test_pubsub_sink_publishes_with_the_idempotency_key_attribute(
    publisher: Publisher, monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("PUBSUB_EMULATOR_HOST", publisher.address)
    monkeypatch.setenv("GOOGLE_CLOUD_PROJECT", "nba-props-platform")
    sink = PubSubSink(timeout_s=10)
    try:
        target = PubSubTrigger(kind="pubsub", topic="nba-phase4-trigger")
        first = sink.send(target, REQUEST)
        again = sink.send(target, REQUEST)
    finally:
        sink.close()
    assert first.outcome == again.outcome == "accepted"
    assert first.detail.startswith("message m-")
    topic, data, attributes = publisher.messages[0]
    assert topic == "projects/nba-props-platform/topics/nba-phase4-trigger"
    assert attributes["idempotency_key"] == "nba:2026-01-17:overnight:phase4"
    assert (attributes["phase"], attributes["run_date"]) == ("phase4", "2026-01-17")
    assert json.loads(data)["game_date"] == "2026-01-17"
    assert [m[2]["idempotency_key"] for m in publisher.messages] == [attributes["idempotency_key"]] * 2


def test_pubsub_sink_failures(publisher: Publisher, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("PUBSUB_EMULATOR_HOST", publisher.address)
    monkeypatch.delenv("GOOGLE_CLOUD_PROJECT", raising=False)
    target = PubSubTrigger(kind="pubsub", topic="nba-phase4-trigger")
    unset = PubSubSink().send(target, REQUEST)
    assert (unset.outcome, unset.retryable) == ("failed", False) and "GOOGLE_CLOUD_PROJECT" in unset.detail
    publisher.fail_with = grpc.StatusCode.NOT_FOUND
    sink = PubSubSink(project="p", timeout_s=10)
    try:
        missing = sink.send(target, REQUEST)
    finally:
        sink.close()
    assert (missing.outcome, missing.retryable) == ("failed", False)


@pytest.mark.parametrize("way", WAYS)
def test_http_sink_does_not_follow_a_redirect(way: str) -> None:
    """A 302 (an IAP or auth login page) is no accepted trigger: the POST never ran."""
    def answer(received: Any) -> Any:
        if received.path == "/start":
            return 302, {"Location": "/login"}, b""
        return json_answer(200, {"page": "sign in"})
    with http_peer(answer) as peer:
        sink = HttpSink()
        try:
            result = send(way, sink, http_target(peer.url))
        finally:
            sink.close()
    assert (result.outcome, result.status_code) == ("failed", 302), result
    assert [r.path for r in peer.requests] == ["/start"]
