"""The HTTP service, over real HTTP: httpx through ASGI, and a real uvicorn server on loopback."""

from __future__ import annotations

import asyncio
import base64
import functools
import json
import os
import socket
import subprocess
import sys
import threading
from collections.abc import Iterator
from datetime import datetime
from pathlib import Path
from typing import Any

import httpx
import pytest
from click.testing import CliRunner
from hypothesis import given, settings
from hypothesis import strategies as st
from prometheus_client.parser import text_string_to_metric_families

from monitor.app.cli import serve as serve_cmd
from monitor.app.http import server as service
from monitor.app.http.server import bind_socket, create_app, run_scheduler, serving
from monitor.app.phasewatch import Phasewatch
from monitor.clock import FakeClock
from monitor.config import PhaseConfig, load_config
from monitor.events import Event, assign_fields, event_to_json, replace_fields
from monitor.tracker import PhaseRun, ProcessorRun

TOKEN = "s3cret-token"
RUN_DATE = "2026-01-17"
ROOT = Path(__file__).resolve().parent.parent


class Http:
    """A synchronous face on httpx.AsyncClient + ASGITransport (one event loop per client)."""

    def __init__(self, app: Any, headers: dict[str, str] | None = None) -> None:
        self._runner = asyncio.Runner()
        self._client = httpx.AsyncClient(
            transport=httpx.ASGITransport(app=app), base_url="http://phasewatch.test", headers=headers
        )

    def request(self, method: str, url: str, **kwargs: Any) -> httpx.Response:
        return self._runner.run(self._client.request(method, url, **kwargs))

    def get(self, url: str, **kwargs: Any) -> httpx.Response:
        return self.request("GET", url, **kwargs)

    def post(self, url: str, **kwargs: Any) -> httpx.Response:
        return self.request("POST", url, **kwargs)

    def close(self) -> None:
        self._runner.run(self._client.aclose())
        self._runner.close()


@pytest.fixture
def http(app: Phasewatch) -> Iterator[Http]:
    client = Http(create_app(app, None))
    yield client
    client.close()


@pytest.fixture
def authed(app: Phasewatch) -> Iterator[Http]:
    client = Http(create_app(app, TOKEN))
    yield client
    client.close()


_counter = iter(range(1_000_000))


def ev(**fields: Any) -> dict[str, Any]:
    """A valid NBA event (a fresh event_id unless given)."""
    body: dict[str, Any] = {
        "event_id": f"e-{next(_counter)}", "pipeline": "nba", "run_date": RUN_DATE,
        "phase": "phase2", "processor": "p2_odds_game_lines", "status": "succeeded",
        "timestamp": "2026-01-18T06:00:00Z",
    }
    body.update(fields)
    return body


def dumps(data: Any) -> bytes:
    return json.dumps(data).encode()


def push_envelope(data: bytes, message_id: str = "m-1") -> dict[str, Any]:
    return {"message": {"data": base64.b64encode(data).decode(), "messageId": message_id,
                        "attributes": {}, "publishTime": "2026-01-18T06:00:00Z"},
            "subscription": "projects/p/subscriptions/phasewatch"}


def rejected(pw: Phasewatch, reason: str | None = None) -> float:
    """phasewatch_events_rejected_total, for one reason or summed."""
    return sum(
        s.value for family in pw.metrics.registry.collect()
        if family.name == "phasewatch_events_rejected"
        for s in family.samples
        if s.name.endswith("_total") and (reason is None or s.labels["reason"] == reason)
    )


def sample(text: str, name: str, **labels: str) -> float:
    """Sum of the samples called ``name`` whose labels include ``labels`` in an exposition."""
    return sum(
        s.value for family in text_string_to_metric_families(text) for s in family.samples
        if s.name == name and all(s.labels.get(k) == v for k, v in labels.items())
    )


# --- bad input: 4xx naming the field, nothing stored, rejection counted -----------------------

NDJSON = "application/x-ndjson"
BAD_INPUTS: list[tuple[str, bytes, str | None, int, str]] = [
    ("malformed json", b'{"event_id": "x", ', None, 422, "body"),
    ("not json at all", b"hello", None, 422, "body"),
    ("wrong type", dumps(ev(records="many")), None, 422, "records"),
    ("float for int", dumps(ev(records=1.5)), None, 422, "records"),
    ("naive timestamp", dumps(ev(timestamp="2026-01-18T06:00:00")), None, 422, "timestamp"),
    ("timestamp a number", dumps(ev(timestamp=1768716000)), None, 422, "timestamp"),
    ("unknown pipeline", dumps(ev(pipeline="nfl")), None, 422, "pipeline"),
    ("unknown phase", dumps(ev(phase="phase9")), None, 422, "phase"),
    ("unknown processor", dumps(ev(processor="NoSuchProcessor")), None, 422, "processor"),
    ("oversize body", b" " * 5_000_001, None, 413, "body"),
    ("33 attributes", dumps(ev(attributes={f"k{i}": "v" for i in range(33)})), None, 422,
     "attributes"),
    ("attribute not a string", dumps(ev(attributes={"k": 1})), None, 422, "attributes"),
    ("negative duration", dumps(ev(duration_s=-1)), None, 422, "duration_s"),
    ("bad date", dumps(ev(run_date="2026-02-30")), None, 422, "run_date"),
    ("batch with one bad event", dumps([ev(), ev(status="done"), ev()]), None, 422,
     "events[1].status"),
    ("unknown field", dumps(ev(colour="red")), None, 422, "colour"),
    ("missing field", dumps({k: v for k, v in ev().items() if k != "status"}), None, 422,
     "status"),
    ("empty body", b"", None, 422, "body"),
    ("whitespace body", b"  \n ", None, 422, "body"),
    ("empty array", b"[]", None, 422, "body"),
    ("array of numbers", b"[1, 2]", None, 422, "events[0]"),
    ("done over total", dumps(ev(batch_id="b1", done=3, total=2)), None, 422, "done"),
    ("error over 2000 chars", dumps(ev(status="failed", error="x" * 2001)), None, 422, "error"),
    ("bad traceparent", dumps(ev(traceparent="00-abc-def-01")), None, 422, "traceparent"),
    ("bad mode", dumps(ev(mode="weekly")), None, 422, "mode"),
    ("bad status", dumps(ev(status="finished")), None, 422, "status"),
    ("event_id too long", dumps(ev(event_id="x" * 129)), None, 422, "event_id"),
    ("event_id empty", dumps(ev(event_id="")), None, 422, "event_id"),
    ("ndjson with one bad line",
     b"\n".join([dumps(ev()), dumps(ev(status="nope")), dumps(ev())]), NDJSON, 422,
     "line 2: status"),
    ("ndjson with a broken line", dumps(ev()) + b"\n{broken\n", NDJSON, 422, "line 2"),
    ("unknown name in a batch", dumps([ev(), ev(phase="phase0")]), None, 422,
     "events[1].phase"),
]


@pytest.mark.parametrize(("body", "content_type", "status", "field"),
                         [case[1:] for case in BAD_INPUTS], ids=[c[0] for c in BAD_INPUTS])
def test_bad_input_is_refused_with_the_field_named_and_nothing_stored(
    http: Http, app: Phasewatch, body: bytes, content_type: str | None, status: int, field: str
) -> None:
    stored, refused = app.store.count(), rejected(app)
    headers = {"Content-Type": content_type or "application/json"}
    response = http.post("/v1/events", content=body, headers=headers)
    assert response.status_code == status
    payload = response.json()
    assert payload["error"] and payload["reason"]
    named = " ".join(f"{d['field']} {d['message']}" for d in payload["details"])
    assert field in named, payload
    assert app.store.count() == stored
    assert rejected(app) == refused + 1


@pytest.mark.parametrize("fields", [
    {"timestamp": "0001-01-01T00:00:00+01:00"}, {"timestamp": "9999-12-31T23:59:59-01:00"},
    {"run_date": "0001-01-01"}, {"duration_s": 1e308},
], ids=["timestamp before year 1 in UTC", "timestamp after 9999 in UTC", "run_date year 1",
        "duration 1e308"])
def test_out_of_range_values_are_refused_not_503(
    http: Http, app: Phasewatch, fields: dict[str, Any]
) -> None:
    response = http.post("/v1/events", json=ev(**fields))
    assert response.status_code == 422
    assert next(iter(fields)) in response.json()["details"][0]["field"]
    assert app.store.count() == 0


def test_the_bad_input_table_is_large_enough() -> None:
    assert len(BAD_INPUTS) >= 20


def test_oversize_stream_without_content_length_is_refused(http: Http, app: Phasewatch) -> None:
    async def chunks() -> Any:
        for _ in range(100):
            yield b" " * 100_000  # 10 MB in all, never declared up front

    response = http.post("/v1/events", content=chunks())
    assert response.status_code == 413
    assert response.json()["details"][0]["field"] == "body"
    assert rejected(app, "too_large") == 1
    assert app.store.count() == 0


# --- acceptance, duplicates, formats --------------------------------------------------------

def test_one_event_is_accepted(http: Http, app: Phasewatch) -> None:
    response = http.post("/v1/events", json=ev())
    assert response.status_code == 202
    assert response.json() == {"accepted": 1, "duplicates": 0}
    assert app.store.count() == 1


def test_array_and_ndjson_are_accepted(http: Http, app: Phasewatch) -> None:
    assert http.post("/v1/events", json=[ev(), ev()]).json() == {"accepted": 2, "duplicates": 0}
    lines = b"\n".join(dumps(ev()) for _ in range(3)) + b"\n"
    response = http.post("/v1/events", content=lines, headers={"Content-Type": NDJSON})
    assert response.json() == {"accepted": 3, "duplicates": 0}
    assert app.store.count() == 5


def test_redelivery_is_stored_once_and_reported_as_duplicate(http: Http, app: Phasewatch) -> None:
    first, second = ev(event_id="same"), ev(event_id="other")
    assert http.post("/v1/events", json=first).json() == {"accepted": 1, "duplicates": 0}
    assert http.post("/v1/events", json=first).json() == {"accepted": 0, "duplicates": 1}
    batch = [first, second, second]
    assert http.post("/v1/events", json=batch).json() == {"accepted": 1, "duplicates": 2}
    assert app.store.count() == 2
    text = http.get("/metrics").text
    assert sample(text, "phasewatch_events_duplicate_total") == 3
    assert sample(text, "phasewatch_events_total") == 2


def test_ingest_in_a_threadpool_behaves_the_same(app: Phasewatch) -> None:
    client = Http(create_app(app, None, offload_ingest=True))
    try:
        assert client.post("/v1/events", json=[ev(), ev()]).status_code == 202
        assert client.post("/v1/events", json=ev(phase="nope")).status_code == 422
    finally:
        client.close()
    assert app.store.count() == 2


def test_store_failure_is_503_not_4xx(http: Http, app: Phasewatch) -> None:
    app.store.close()
    response = http.post("/v1/events", json=ev())
    assert response.status_code == 503
    assert response.headers["retry-after"] == "1"
    assert response.json()["reason"] == "unavailable"


# --- Pub/Sub push ---------------------------------------------------------------------------

def test_push_stores_a_valid_message_and_acks_its_redelivery(http: Http, app: Phasewatch) -> None:
    envelope = push_envelope(dumps(ev(event_id="p-1")), "m-ok")
    response = http.post("/v1/pubsub/push", json=envelope)
    assert response.status_code == 200
    assert response.json()["outcome"] == "stored"
    again = http.post("/v1/pubsub/push", json=envelope)
    assert again.status_code == 200
    assert again.json()["outcome"] == "duplicate"
    assert app.store.count() == 1


@pytest.mark.parametrize(("data", "reason"), [
    (b"!!not base64!!", "push_data"),
    (b"{not json", "invalid_json"),
    (dumps(ev(processor="NoSuchProcessor")), "unknown_name"),
], ids=["bad base64", "bad json", "unknown processor"])
def test_poison_message_is_acked_and_dead_lettered_once(
    http: Http, app: Phasewatch, data: bytes, reason: str
) -> None:
    envelope = push_envelope(data, "m-poison")
    if reason == "push_data":
        envelope["message"]["data"] = data.decode()
    for _ in range(2):  # Pub/Sub redelivers: still one dead letter
        response = http.post("/v1/pubsub/push", json=envelope)
        assert response.status_code == 200
        assert response.json() == {"outcome": "dead_lettered", "reason": reason}
    letters = http.get("/v1/dead-letters").json()["dead_letters"]
    assert [(d["message_id"], d["reason"]) for d in letters] == [("m-poison", reason)]
    assert app.store.count() == 0


@pytest.mark.parametrize("body", [b'{"subscription": "s"}', b"not json", b'{"message": {}}'],
                         ids=["no message", "not json", "no messageId"])
def test_malformed_envelope_is_400(http: Http, app: Phasewatch, body: bytes) -> None:
    response = http.post("/v1/pubsub/push", content=body)
    assert response.status_code == 400
    assert response.json()["reason"] == "push_envelope"
    assert app.store.dead_letters() == []
    assert rejected(app, "push_envelope") == 1


def test_push_store_failure_is_503_so_pubsub_redelivers(http: Http, app: Phasewatch) -> None:
    app.store.close()
    response = http.post("/v1/pubsub/push", json=push_envelope(dumps(ev())))
    assert response.status_code == 503


# --- auth and limits ------------------------------------------------------------------------

@pytest.mark.parametrize("header", [None, "Bearer wrong", f"Basic {TOKEN}", "Bearer", TOKEN],
                         ids=["missing", "wrong", "basic scheme", "empty bearer", "no scheme"])
@pytest.mark.parametrize("path", ["/v1/events", "/v1/pubsub/push", "/v1/jobs/anything"])
def test_posts_need_the_token(
    authed: Http, app: Phasewatch, header: str | None, path: str
) -> None:
    headers = {"Authorization": header} if header else {}
    response = authed.post(path, json=ev(), headers=headers)
    assert response.status_code == 401
    assert response.headers["www-authenticate"].startswith("Bearer")
    assert response.json()["details"][0]["field"] == "Authorization"
    assert rejected(app, "unauthorized") == 1
    assert app.store.count() == 0


def test_the_right_token_is_accepted_for_writes_and_reads(authed: Http, app: Phasewatch) -> None:
    ok = authed.post("/v1/events", json=ev(), headers={"Authorization": f"bearer {TOKEN}"})
    assert ok.status_code == 202
    for path in ("/metrics", "/v1/runs", "/v1/dead-letters", "/openapi.json"):
        assert authed.get(path, headers={"Authorization": f"Bearer {TOKEN}"}).status_code == 200, path
    for path in ("/health", "/ready"):  # server.public_paths (tests/test_read_auth.py)
        assert authed.get(path).status_code == 200, path


def test_auth_comes_before_the_body_is_read(authed: Http, app: Phasewatch) -> None:
    response = authed.post("/v1/events", content=b" " * 6_000_000)
    assert response.status_code == 401


def test_an_empty_token_is_refused(app: Phasewatch) -> None:
    with pytest.raises(ValueError, match="token"):
        create_app(app, " ")


# --- health, readiness, metrics, runs, jobs, openapi ----------------------------------------

def test_health_is_health_json(http: Http) -> None:
    response = http.get("/health")
    assert response.status_code == 200
    assert response.headers["content-type"] == "application/health+json"
    assert response.json()["status"] == "pass"


def test_ready_passes_and_lists_its_checks(http: Http) -> None:
    response = http.get("/ready")
    assert response.status_code == 200
    assert response.headers["content-type"] == "application/health+json"
    body = response.json()
    assert body["status"] == "pass"
    assert {"store:readable", "store:writable", "config:loaded"} <= body["checks"].keys()


def test_ready_warns_on_a_failing_job_and_fails_on_a_closed_store(
    http: Http, app: Phasewatch
) -> None:
    def broken(now: datetime) -> None:
        raise RuntimeError("probe target down")

    app.add_job("probe", broken)
    http.post("/v1/jobs/probe")
    body = http.get("/ready").json()
    assert body["status"] == "warn"
    assert "probe target down" in body["checks"]["job:probe"][0]["output"]
    app.store.close()
    response = http.get("/ready")
    assert response.status_code == 503
    assert response.json()["status"] == "fail"
    assert response.json()["checks"]["store:readable"][0]["status"] == "fail"


def test_ready_fails_when_the_store_directory_is_read_only(
    http: Http, app: Phasewatch, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(os, "access", lambda path, mode: False)
    response = http.get("/ready")
    assert response.status_code == 503
    assert response.json()["checks"]["store:writable"][0]["status"] == "fail"


def test_metrics_text_and_openmetrics(http: Http) -> None:
    http.post("/v1/events", json=ev())
    text = http.get("/metrics")
    assert text.headers["content-type"].startswith("text/plain")
    assert sample(text.text, "phasewatch_events_total", processor="p2_odds_game_lines") == 1
    om = http.get("/metrics", headers={"Accept": "application/openmetrics-text; version=1.0.0"})
    assert om.headers["content-type"].startswith("application/openmetrics-text")
    assert om.text.endswith("# EOF\n")


def test_runs_returns_tracker_state_filtered(http: Http) -> None:
    http.post("/v1/events", json=[ev(), ev(run_date="2026-01-16")])
    runs = http.get("/v1/runs", params={"pipeline": "nba", "run_date": RUN_DATE}).json()["runs"]
    assert [(r["pipeline"], r["run_date"], r["mode"]) for r in runs] == [
        ("nba", RUN_DATE, "overnight")
    ]
    phase2 = next(p for p in runs[0]["phases"] if p["phase"] == "phase2")
    assert "p2_odds_game_lines" in phase2["done"]
    assert len(http.get("/v1/runs").json()["runs"]) == 2


@pytest.mark.parametrize(("query", "field"), [
    ({"run_date": "2026-1-7"}, "run_date"), ({"run_date": "20260117"}, "run_date"),
    ({"run_date": "2026-13-01"}, "run_date"), ({"pipeline": "nfl"}, "pipeline"),
])
def test_runs_bad_filter_is_400_naming_it(
    http: Http, app: Phasewatch, query: dict[str, str], field: str
) -> None:
    response = http.get("/v1/runs", params=query)
    assert response.status_code == 400
    assert response.json()["details"][0]["field"] == field
    assert rejected(app, "bad_query") == 1


def test_dead_letters_limit_is_checked(http: Http) -> None:
    assert http.get("/v1/dead-letters", params={"limit": "0"}).status_code == 400
    assert http.get("/v1/dead-letters", params={"limit": "x"}).status_code == 400


def test_jobs_endpoint_runs_a_registered_job(http: Http, app: Phasewatch, clock: FakeClock) -> None:
    seen: list[datetime] = []
    app.add_job("sweep", seen.append)
    response = http.post("/v1/jobs/sweep")
    assert response.status_code == 200
    assert response.json()["status"] == "succeeded"
    assert response.json()["runs"] == 1
    assert seen == [clock.now()]


def test_unknown_job_is_404_listing_the_known_ones(http: Http, app: Phasewatch) -> None:
    app.add_job("sweep", lambda now: None)
    app.add_job("probe", lambda now: None)
    response = http.post("/v1/jobs/nope")
    assert response.status_code == 404
    detail = response.json()["details"][0]
    assert detail["field"] == "name"
    assert detail["message"] == f"unknown job; allowed: {', '.join(sorted(app.jobs))}"
    assert {"probe", "sweep"} <= set(app.jobs)


def test_a_failing_job_answers_500_with_its_error(http: Http, app: Phasewatch) -> None:
    def broken(now: datetime) -> None:
        raise RuntimeError("boom")

    app.add_job("broken", broken)
    response = http.post("/v1/jobs/broken")
    assert response.status_code == 500
    assert "boom" in response.json()["last_error"]


def test_unknown_path_and_method_are_json_4xx(http: Http, app: Phasewatch) -> None:
    missing = http.get("/v2/nothing")
    assert missing.status_code == 404
    assert missing.json()["reason"] == "not_found"
    wrong = http.get("/v1/events")
    assert wrong.status_code == 405
    assert "POST" in wrong.headers["allow"]
    assert rejected(app) == 2


def test_openapi_documents_every_route(http: Http, app: Phasewatch) -> None:
    doc = http.get("/openapi.json").json()
    assert doc["openapi"].startswith("3.1")
    routes = create_app(app, None).routes
    served = {(r.path, m.lower()) for r in routes for m in r.methods or () if m != "HEAD"}  # type: ignore[attr-defined]
    documented = {(path, method) for path, ops in doc["paths"].items() for method in ops}
    assert served == documented
    assert "event_id" in doc["components"]["schemas"]["Event"]["properties"]
    assert doc["paths"]["/v1/events"]["post"]["security"] == [{"bearer": []}]
    _assert_refs_resolve(doc, doc)


def test_openapi_document_is_the_contract(http: Http) -> None:
    """/openapi.json is a contract: any change must update the snapshot and CHANGELOG.md."""
    doc = http.get("/openapi.json").json()
    doc["info"]["version"] = "X"
    snapshot = json.loads((Path(__file__).parent / "snapshots" / "openapi.json").read_text())
    assert doc == snapshot


def _assert_refs_resolve(node: Any, doc: dict[str, Any]) -> None:
    if isinstance(node, dict):
        ref = node.get("$ref")
        if isinstance(ref, str):
            target: Any = doc
            for part in ref.removeprefix("#/").split("/"):
                target = target[part]
        for value in node.values():
            _assert_refs_resolve(value, doc)
    elif isinstance(node, list):
        for value in node:
            _assert_refs_resolve(value, doc)


# --- scheduler -------------------------------------------------------------------------------

def test_scheduler_ticks_and_survives_a_failing_tick(caplog: pytest.LogCaptureFixture) -> None:
    ticks: list[int] = []
    sleeps: list[float] = []

    def tick() -> None:
        ticks.append(1)
        if len(ticks) == 2:
            raise RuntimeError("tick blew up")

    async def sleep(seconds: float) -> None:
        sleeps.append(seconds)
        if len(sleeps) > 3:
            raise asyncio.CancelledError

    with pytest.raises(asyncio.CancelledError):
        asyncio.run(run_scheduler(tick, 30.0, sleep))
    assert sleeps == [30.0] * 4
    assert len(ticks) == 3
    assert "event=scheduler.tick_failed" in caplog.text


# --- a real uvicorn server -------------------------------------------------------------------

def test_bind_socket_says_tcp_so_asyncio_turns_nagle_off() -> None:
    # Without proto=IPPROTO_TCP asyncio leaves Nagle on and every response waits 40 ms.
    sock = bind_socket("127.0.0.1", 0)
    try:
        assert sock.proto == socket.IPPROTO_TCP
        assert sock.getsockname()[0] == "127.0.0.1"
    finally:
        sock.close()


def test_lifespan_runs_the_scheduler_on_a_real_server(app: Phasewatch) -> None:
    ticked = threading.Event()
    app.add_job("mark", lambda now: ticked.set())
    with serving(create_app(app, None, tick_interval_s=0.01)):
        assert ticked.wait(10)


def test_twenty_concurrent_writers_lose_nothing_and_double_nothing(app: Phasewatch) -> None:
    writers, batches, size, pool = 20, 10, 5, 150
    processors = ["p2_odds_game_lines", "p2_nbacom_gamebook_pdf", "p2_nbacom_boxscores"]

    def event(n: int) -> dict[str, Any]:
        return ev(event_id=f"c-{n}", processor=processors[n % 3],
                  status=("started", "succeeded")[n % 2], run_date=f"2026-01-{10 + n % 7:02d}")

    plan = [[[event((w * 7 + b * 3 + j) % pool) for j in range(size)]
             for b in range(batches)] for w in range(writers)]
    distinct = {e["event_id"] for writer in plan for batch in writer for e in batch}
    totals: list[tuple[int, int]] = []
    errors: list[BaseException] = []
    barrier = threading.Barrier(writers)

    def write(url: str, batches_of_writer: list[list[dict[str, Any]]]) -> None:
        try:
            with httpx.Client(base_url=url, timeout=30) as client:
                barrier.wait()
                for batch in batches_of_writer:
                    response = client.post("/v1/events", json=batch)
                    response.raise_for_status()
                    body = response.json()
                    totals.append((body["accepted"], body["duplicates"]))
        except BaseException as exc:
            errors.append(exc)

    with serving(create_app(app, None)) as url:
        threads = [threading.Thread(target=write, args=(url, p)) for p in plan]
        for t in threads:
            t.start()
        for t in threads:
            t.join(60)
        metrics = httpx.get(f"{url}/metrics").text
    assert errors == []
    sent = writers * batches * size
    assert sum(a for a, _ in totals) == len(distinct)
    assert sum(d for _, d in totals) == sent - len(distinct)
    assert app.store.count() == len(distinct)
    assert len({e.event_id for e in app.store.events()}) == len(distinct)
    assert sample(metrics, "phasewatch_events_total") == len(distinct)
    assert sample(metrics, "phasewatch_events_duplicate_total") == sent - len(distinct)


# --- the serve command -------------------------------------------------------------------------

def test_serve_command_with_a_bad_config_exits_2(tmp_path: Path) -> None:
    bad = tmp_path / "bad.yaml"
    bad.write_text("pipelines: 3\n")
    result = CliRunner().invoke(serve_cmd.serve_command, ["--config", str(bad)])
    assert result.exit_code == 2
    assert result.stderr.startswith("error: ") and "bad.yaml" in result.stderr


def test_serve_command_on_a_port_in_use_exits_2(tmp_path: Path) -> None:
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = str(taken.getsockname()[1])
        args = ["--port", port, "--db", str(tmp_path / "pw.db")]
        result = CliRunner().invoke(serve_cmd.serve_command, args)
    assert result.exit_code == 2
    assert result.stderr.startswith(f"error: cannot serve on 127.0.0.1:{port}")
    assert not (tmp_path / "pw.db").exists()


@pytest.mark.parametrize(("args", "env", "port"), [
    ([], {}, 8080), ([], {"PORT": "9090"}, 9090), (["--port", "7070"], {"PORT": "9090"}, 7070),
])
def test_serve_command_honours_port_env(
    monkeypatch: pytest.MonkeyPatch, args: list[str], env: dict[str, str], port: int
) -> None:
    calls: list[tuple[Any, ...]] = []
    monkeypatch.setattr(service, "serve", lambda *a: calls.append(a))  # what the command calls
    monkeypatch.delenv("PORT", raising=False)
    result = CliRunner().invoke(serve_cmd.serve_command, args, env=env)
    assert result.exit_code == 0, result.output
    assert [(c[2], c[3]) for c in calls] == [("127.0.0.1", port)]


# --- hot-path optimisations keep behaviour (collector, store, events, tracker) ----------------

def test_replace_fields_is_model_copy() -> None:
    event = Event.model_validate_json(dumps(ev(processor="OddsApiGameLinesBatchProcessor")))
    update = {"mode": "overnight", "processor": "p2_odds_game_lines"}
    fast, slow = replace_fields(event, update), event.model_copy(update=update)
    assert fast == slow
    assert fast.model_fields_set == slow.model_fields_set
    assert event_to_json(fast) == slow.model_dump_json(exclude_none=True)
    assert event.mode is None  # the original is untouched


def test_assign_fields_is_model_copy_in_place() -> None:
    event = Event.model_validate_json(dumps(ev(processor="OddsApiGameLinesBatchProcessor")))
    update = {"mode": "overnight", "processor": "p2_odds_game_lines"}
    slow = event.model_copy(update=update)
    assert assign_fields(event, update) is event
    assert event == slow and event.model_fields_set == slow.model_fields_set
    assert event_to_json(event) == slow.model_dump_json(exclude_none=True)


def test_ingest_completes_a_callers_events_on_copies(app: Phasewatch) -> None:
    event = Event.model_validate_json(dumps(ev(processor="OddsApiGameLinesBatchProcessor")))
    app.collector.ingest([event])
    assert (event.mode, event.processor) == (None, "OddsApiGameLinesBatchProcessor")
    (stored,) = list(app.store.events())
    assert (stored.mode, stored.processor) == ("overnight", "p2_odds_game_lines")


def test_events_total_counts_every_event_of_a_batch(app: Phasewatch) -> None:
    before = _events_total(app, "phase2", "p2_odds_game_lines", "started")
    body = [ev(processor="OddsApiGameLinesBatchProcessor", status="started", event_id=f"n{i}")
            for i in range(7)]
    assert app.collector.ingest_body(dumps(body)).accepted == 7
    assert _events_total(app, "phase2", "p2_odds_game_lines", "started") == before + 7


def _events_total(app: Phasewatch, phase: str, processor: str, status: str) -> float:
    value = app.metrics.registry.get_sample_value(
        "phasewatch_events_total",
        {"pipeline": "nba", "phase": phase, "processor": processor, "status": status})
    return value or 0.0


def test_store_append_reports_duplicates_in_and_across_batches(app: Phasewatch) -> None:
    events = [Event.model_validate_json(dumps(ev(event_id=i, mode="overnight")))
              for i in ("a", "b", "a", "c")]
    now = app.clock.now()
    assert app.store.append(events[:2], now).inserted == (True, True)
    assert app.store.append(events, now).inserted == (False, False, False, True)
    assert [e.event_id for e in app.store.events()] == ["a", "b", "c"]


STATUSES = ("pending", "running", "succeeded", "failed", "skipped")


@functools.cache
def phase3() -> PhaseConfig:
    """The NBA example's phase 3: critical and optional processors, per-mode expectations."""
    return load_config().pipeline_map["nba"].phase_map["phase3"]



@settings(max_examples=300, deadline=None)
@given(phase_status=st.sampled_from([None, "running", "succeeded", "failed", "skipped"]),
       statuses=st.lists(st.sampled_from(STATUSES), min_size=5, max_size=5),
       mode=st.sampled_from(["overnight", "same_day", "tomorrow", "backfill"]))
def test_phase_completeness_matches_its_definition(
    phase_status: str | None, statuses: list[str], mode: str
) -> None:
    phase_config = phase3()
    phase = PhaseRun("phase3", phase_config.expectation(mode), phase_status=phase_status)
    for proc, status in zip(phase_config.processors, statuses, strict=True):
        if status != "pending":
            phase.processors[proc.name] = ProcessorRun(proc.name, status=status)
    expected, critical, required = phase.expectation
    complete = phase_status in ("succeeded", "skipped") or (
        bool(expected) and not phase.critical_missing and len(phase.done) >= required
    )
    failed = not complete and (phase_status == "failed" or any(
        phase.processors.get(n) is not None and phase.processors[n].status == "failed"
        for n in critical
    ))
    assert (phase.is_complete(), phase.is_failed()) == (complete, failed)


# --- the benchmark script runs ---------------------------------------------------------------

def test_bench_ingest_quick_runs() -> None:
    result = subprocess.run(
        [sys.executable, str(ROOT / "bench" / "ingest.py"), "--quick"],
        capture_output=True, text=True, timeout=600, cwd=ROOT,
    )
    assert result.returncode == 0, result.stderr
    for figure in ("(a)", "(b)", "(c)", "(d)"):
        assert figure in result.stdout
    assert "peer:" in result.stdout and "floor:" in result.stdout


@pytest.mark.parametrize("kind", ["not a store", "a directory"])
def test_serve_command_on_a_bad_db_exits_2_with_one_line(tmp_path: Path, kind: str) -> None:
    db = tmp_path / "notadb.db"
    if kind == "a directory":
        db.mkdir()
    else:
        db.write_text("this is not SQLite\n" * 100)
    result = CliRunner().invoke(serve_cmd.serve_command, ["--db", str(db), "--port", "0"])
    assert result.exit_code == 2, result.output
    assert result.stderr.startswith("error: ") and result.stderr.count("\n") == 1
    assert "Traceback" not in result.output
