"""Fuzz every endpoint: hostile requests from hypothesis, and schemathesis from /openapi.json.

What must hold for every answer: no 5xx, no stack trace, and a refused request (4xx) wrote
nothing (no table of the store and no tracked run changed). Measured before (issue 16):
47 of 10,000 generated requests answered 5xx, the same 47 every run.

Profiles: the short one runs in the test command (about 1,500 requests, ~20 s); set
``PHASEWATCH_FUZZ=long`` for the long one (or run ``python bench/fuzz.py``, which prints
the figures). ``PHASEWATCH_FUZZ_REPORT=FILE`` appends each test's figures to FILE as JSON.
"""

from __future__ import annotations

import base64
import json
import os
import re
import string
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any
from urllib.parse import quote

import httpx
import pytest
import schemathesis
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from hypothesis.errors import Unsatisfiable
from schemathesis.generation.modes import GenerationMode

from monitor.actuator.sinks import MemorySink
from monitor.app.http.server import create_app
from monitor.app.phasewatch import Phasewatch
from monitor.clock import FakeClock
from monitor.config import Config
from monitor.store.sqlite import SQLiteStore
from tests.test_service import Http, ev, push_envelope

LONG = os.environ.get("PHASEWATCH_FUZZ") == "long"
EXAMPLES = 1000 if LONG else 60  # per hand-written strategy below (12 of them)
SCHEMA_EXAMPLES = 150 if LONG else 12  # per operation and generation mode (18 x 2)
TRACE = re.compile(r"Traceback \(most recent call last\)|File \"[^\"]+\.py\", line \d+")
FUZZ_SETTINGS = settings(max_examples=EXAMPLES, deadline=None, database=None,
                         suppress_health_check=list(HealthCheck))


@dataclass
class Tally:
    """What the fuzzing did and found, per test."""

    requests: int = 0
    by_status: dict[int, int] = field(default_factory=dict)
    failures: list[str] = field(default_factory=list)

    @property
    def server_errors(self) -> int:
        return sum(n for status, n in self.by_status.items() if status >= 500)


class Fuzzed:
    """A phasewatch on a fake clock behind its ASGI app, and the checks every answer must pass."""

    def __init__(self, pw: Phasewatch) -> None:
        self.pw = pw
        assert isinstance(pw.store, SQLiteStore)
        self.store: SQLiteStore = pw.store
        self.app = create_app(pw, None)
        self.http = Http(self.app)
        # A real server answers 500 for an exception; let the client see that answer too.
        self.http._client = httpx.AsyncClient(
            transport=httpx.ASGITransport(app=self.app, raise_app_exceptions=False),
            base_url="http://phasewatch.test")
        self.tally = Tally()
        self.tables = [r[0] for r in self.store.read(
            "SELECT name FROM sqlite_master WHERE type = 'table' ORDER BY name")]

    def state(self) -> tuple[int, ...]:
        counts = [int(self.store.read(f'SELECT COUNT(*) FROM "{t}"')[0][0]) for t in self.tables]
        return (*counts, len(self.pw.tracker))

    def send(self, method: str, url: str, **kwargs: Any) -> httpx.Response:
        before = self.state()
        response = self.http.request(method, url, **kwargs)
        self.check(f"{method} {url[:120]}", response.status_code, response.text, before)
        return response

    def check(self, what: str, status: int, text: str, before: tuple[int, ...]) -> None:
        tally = self.tally
        tally.requests += 1
        tally.by_status[status] = tally.by_status.get(status, 0) + 1
        if status >= 500:
            tally.failures.append(f"{status} for {what}: {text[:300]}")
        if TRACE.search(text):
            tally.failures.append(f"stack trace in the answer to {what}")
        if 400 <= status < 500 and self.state() != before:
            tally.failures.append(f"{status} for {what} but something was written")

    def close(self) -> None:
        self.http.close()


@pytest.fixture
def fuzzed(nba_config: Config, tmp_path: Path, request: pytest.FixtureRequest) -> Iterator[Fuzzed]:
    sink = MemorySink()
    pw = Phasewatch.build(nba_config, db_path=tmp_path / "pw.db",
                          clock=FakeClock(datetime(2026, 1, 18, 12, tzinfo=UTC)),
                          sinks={"http": sink, "pubsub": sink, "log": sink})
    target = Fuzzed(pw)
    yield target
    target.close()
    pw.close()
    report(request.node.name, target.tally)
    assert target.tally.failures == [], "\n".join(target.tally.failures[:20])


def report(name: str, tally: Tally) -> None:
    path = os.environ.get("PHASEWATCH_FUZZ_REPORT")
    if path:
        line = {"test": name, "profile": "long" if LONG else "short", "requests": tally.requests,
                "server_errors": tally.server_errors, "failures": len(tally.failures),
                "by_status": {str(k): v for k, v in sorted(tally.by_status.items())}}
        with open(path, "a", encoding="utf-8") as out:
            out.write(json.dumps(line) + "\n")


# --- hostile values ------------------------------------------------------------------------

EDGE_TEXT = [
    "", " ", "0", "-1", "+5", "1_000", "²", "٣", "\uff11\uff12", "9" * 40, "1e309", "NaN", "Infinity", "null",
    "true", "0x10", "2026-01-17", "2026-02-30", "2999-12-31", "0001-01-01", "9999-12-31",
    "2026-01-18T06:00:00", "2026-01-18T06:00:00Z", "0001-01-01T00:00:00+14:00",
    "9999-12-31T23:59:59-14:00", "99999999999d", "1h30m", "-5m", "\x00", "\ud7ff\ue000",
    "<!channel> <https://evil.example/x|click>", "'; DROP TABLE events; --", "%", "%ZZ",
    "../../etc/passwd", "a" * 5000, "nba", "phase2", "p2_odds_game_lines", "overnight", "slo",
]
text = st.one_of(st.sampled_from(EDGE_TEXT), st.text(max_size=40))
numbers = st.one_of(
    st.integers(min_value=-(2**70), max_value=2**70),
    st.sampled_from([0, -1, 2**31, 2**63 - 1, 2**63, 2**64, -(2**63) - 1, 10**100]),
    st.floats(allow_nan=False, allow_infinity=False), st.sampled_from([1e308, -1e308, 5e-324, 0.5]),
)
scalars = st.one_of(st.none(), st.booleans(), numbers, text)
json_values = st.recursive(scalars, lambda inner: st.one_of(
    st.lists(inner, max_size=4), st.dictionaries(text, inner, max_size=4)), max_leaves=12)


def mutate(base: dict[str, Any], names: list[str]) -> st.SearchStrategy[dict[str, Any]]:
    """``base`` with some fields replaced by hostile values, dropped, or unknown ones added."""
    return st.builds(
        _mutated, st.just(base),
        st.dictionaries(st.sampled_from(names), json_values, max_size=3),
        st.lists(st.sampled_from(names), max_size=2),
        st.dictionaries(text, json_values, max_size=1),
    )


def _mutated(base: dict[str, Any], changed: dict[str, Any], dropped: list[str],
             extra: dict[str, Any]) -> dict[str, Any]:
    out = {k: v for k, v in base.items() if k not in dropped}
    return {**out, **changed, **extra}


EVENT_FIELDS = ["event_id", "pipeline", "run_date", "mode", "phase", "processor", "status",
                "timestamp", "duration_s", "records", "expected_records", "data_as_of",
                "batch_id", "total", "done", "error", "attributes", "traceparent"]
events = st.just(None).flatmap(lambda _: mutate(ev(), EVENT_FIELDS))  # a fresh event_id each
SILENCE = {"matchers": ["alertname=deadline"], "author": "me", "comment": "fuzz", "duration": "1h"}
ACTION = {"action": "skip", "pipeline": "nba", "run_date": "2026-01-17", "phase": "phase2",
          "processor": "p2_odds_game_lines", "note": "fuzz"}
DEPLOY = {"service": "nba-scrapers", "version": "v1", "timestamp": "2026-01-18T06:00:00Z"}
raw_bytes = st.one_of(st.binary(max_size=200), st.sampled_from([
    b"[" * 5000, b"{" * 5000, b'{"a":' * 3000, b"\xff\xfe", b"\x00", b"null", b"[]", b"{}", b"1e999",
    b'"' + b"x" * 10_000 + b'"', b"\n\n\n", b'{"event_id": "x", ',
]))


def json_body(value: Any) -> bytes:
    return json.dumps(value, allow_nan=False).encode()


def bodies(objects: st.SearchStrategy[Any]) -> st.SearchStrategy[bytes]:
    """A JSON object, an array of them, NDJSON of them, any JSON, or raw bytes."""
    return st.one_of(
        objects.map(json_body), st.lists(objects, min_size=1, max_size=3).map(json_body),
        st.lists(objects, min_size=1, max_size=3).map(
            lambda items: b"\n".join(json_body(i) for i in items)),
        json_values.map(json_body), raw_bytes,
    )


content_types = st.sampled_from([
    "application/json", "application/x-ndjson", "text/plain", "application/json; charset=latin-1",
    "multipart/form-data; boundary=x", "", "application/jsonlines",
])


QUERIES = {
    "/v1/actions": ["pipeline", "run_date", "phase", "processor", "service", "outcome", "kind",
                    "manual", "since", "limit"],
    "/v1/deploys": ["service", "limit"],
    "/v1/dead-letters": ["limit"],
    "/v1/runs": ["pipeline", "run_date"],
    "/v1/slos": [], "/v1/anomalies": [], "/v1/alerts": [], "/metrics": [], "/health": [],
    "/ready": [], "/openapi.json": [],
}


# --- every field and query parameter of every endpoint, with every edge value ------------------

EDGE_VALUES: list[Any] = [
    *EDGE_TEXT, 0, -1, 2**31, 2**63 - 1, 2**63, 2**64, -(2**63) - 1, 10**100, 1e308, -1e308, 0.5,
    None, True, False, [], {}, [[["deep"]]], {"a": {"b": {}}}, ["alertname=deadline"] * 40,
]
BODIES: dict[str, tuple[dict[str, Any], list[str]]] = {
    "/v1/events": (ev(), EVENT_FIELDS),
    "/v1/silences": (SILENCE, ["matchers", "author", "comment", "duration", "starts_at",
                               "ends_at", "startsAt", "endsAt", "createdBy"]),
    "/v1/actions/trigger": (ACTION, ["action", "pipeline", "run_date", "mode", "phase",
                                     "processor", "force", "cascade", "note", "actor"]),
    "/v1/deploys": (DEPLOY, ["service", "version", "timestamp"]),
    "/v1/pubsub/push": (ev(), EVENT_FIELDS),  # the event inside the envelope
    "/v1/dead-letters/replay": ({"reason": "unknown_name", "limit": 10},
                                ["ids", "reason", "limit", "after"]),
}


@pytest.mark.parametrize("path", sorted(BODIES))
def test_every_body_field_with_every_edge_value(fuzzed: Fuzzed, path: str) -> None:
    base, names = BODIES[path]
    for name in names:
        for value in EDGE_VALUES:
            body = {**base, name: value}
            if path in ("/v1/events", "/v1/pubsub/push") and name != "event_id":
                body["event_id"] = f"sweep-{fuzzed.tally.requests}"
            if path == "/v1/pubsub/push":
                body = push_envelope(json_body(body), f"m-{fuzzed.tally.requests}")
            fuzzed.send("POST", path, content=json_body(body))


def test_every_query_parameter_with_every_edge_value(fuzzed: Fuzzed) -> None:
    for path, names in sorted(QUERIES.items()):
        for name in [*names, "unknown"]:
            for value in EDGE_VALUES:
                if isinstance(value, str):
                    fuzzed.send("GET", path, params={name: value})
                    fuzzed.send("GET", f"{path}?{name}={quote(value.encode(), safe='')}")


def test_every_path_parameter_with_every_edge_value(fuzzed: Fuzzed) -> None:
    for value in EDGE_VALUES:
        if isinstance(value, str) and value:
            fuzzed.send("DELETE", f"/v1/silences/{quote(value, safe='')}")
            fuzzed.send("POST", f"/v1/jobs/{quote(value, safe='')}")


# --- the hand-written generator, endpoint by endpoint ------------------------------------------

@FUZZ_SETTINGS
@given(st.data())
def test_events_never_5xx(fuzzed: Fuzzed, data: st.DataObject) -> None:
    body = data.draw(bodies(events))
    fuzzed.send("POST", "/v1/events", content=body,
                headers={"Content-Type": data.draw(content_types)})


@FUZZ_SETTINGS
@given(st.data())
def test_pubsub_push_never_5xx_and_never_asks_for_redelivery_of_bad_data(
    fuzzed: Fuzzed, data: st.DataObject
) -> None:
    payload = data.draw(bodies(events))
    envelope = data.draw(st.one_of(
        st.builds(push_envelope, st.just(payload), text.filter(bool)),
        mutate(push_envelope(payload), ["message", "subscription"]),
        st.builds(lambda d, m: {"message": {"data": d, "messageId": m}}, text, json_values),
    ))
    response = fuzzed.send("POST", "/v1/pubsub/push", content=json_body(envelope))
    if isinstance(envelope.get("message"), dict) and envelope["message"].get("data") == (
            base64.b64encode(payload).decode()) and response.status_code != 400:
        assert response.status_code == 200  # stored, duplicate or dead-lettered: acked


@FUZZ_SETTINGS
@given(st.data())
def test_silences_never_5xx(fuzzed: Fuzzed, data: st.DataObject) -> None:
    silence = mutate(SILENCE, ["matchers", "author", "comment", "duration", "starts_at",
                               "ends_at", "startsAt", "endsAt", "createdBy"])
    fuzzed.send("POST", "/v1/silences", content=data.draw(bodies(silence)))
    fuzzed.send("DELETE", f"/v1/silences/{quote(data.draw(text), safe='')}")


@FUZZ_SETTINGS
@given(st.data())
def test_manual_actions_never_5xx(fuzzed: Fuzzed, data: st.DataObject) -> None:
    action = mutate(ACTION, ["action", "pipeline", "run_date", "mode", "phase", "processor",
                             "force", "cascade", "note", "actor"])
    fuzzed.send("POST", "/v1/actions/trigger", content=data.draw(bodies(action)),
                headers={"X-Phasewatch-Actor": data.draw(st.text(string.printable, max_size=30))
                         .strip() or "fuzz"})


@FUZZ_SETTINGS
@given(st.data())
def test_deploys_never_5xx(fuzzed: Fuzzed, data: st.DataObject) -> None:
    deploy = mutate(DEPLOY, ["service", "version", "timestamp"])
    fuzzed.send("POST", "/v1/deploys", content=data.draw(bodies(deploy)))




@FUZZ_SETTINGS
@given(st.data())
def test_every_query_parameter_never_5xx(fuzzed: Fuzzed, data: st.DataObject) -> None:
    path = data.draw(st.sampled_from(sorted(QUERIES)))
    names = st.one_of(st.sampled_from(QUERIES[path] or ["x"]), text)
    params = data.draw(st.lists(st.tuples(names, text), max_size=4))
    fuzzed.send("GET", path, params=params,
                headers={"Accept": data.draw(st.sampled_from(
                    ["*/*", "application/openmetrics-text; version=1.0.0", "text/html", "\x7f"]))})


@FUZZ_SETTINGS
@given(st.data())
def test_raw_query_strings_and_paths_never_5xx(fuzzed: Fuzzed, data: st.DataObject) -> None:
    path = data.draw(st.sampled_from([*sorted(QUERIES), "/v1/jobs/", "/v1/silences/", "/nope"]))
    raw = data.draw(st.text(alphabet="%&=;+?#/aZ09²\x00 ", max_size=30))
    method = data.draw(st.sampled_from(["GET", "POST", "DELETE", "PUT", "PATCH", "HEAD", "OPTIONS"]))
    fuzzed.send(method, f"{path}?{quote(raw, safe='%&=;+?/')}" if raw else path)


@FUZZ_SETTINGS
@given(name=st.one_of(text, st.sampled_from(["slo", "deliver-alerts", "daily-health-check"])))
def test_job_names_never_5xx(fuzzed: Fuzzed, name: str) -> None:
    fuzzed.send("POST", f"/v1/jobs/{quote(name, safe='')}")


# --- schemathesis, from the OpenAPI document ----------------------------------------------------

def test_schemathesis_finds_no_5xx(fuzzed: Fuzzed) -> None:
    schema = schemathesis.openapi.from_asgi("/openapi.json", fuzzed.app)
    operations = [result.ok() for result in schema.get_all_operations()]
    document = fuzzed.http.get("/openapi.json").json()
    paths = {path: methods for path, methods in document["paths"].items() if path != "/openapi.json"}
    assert len(operations) == sum(len(methods) for methods in paths.values())  # all but itself
    for operation in operations:
        for mode in (GenerationMode.POSITIVE, GenerationMode.NEGATIVE):
            _fuzz_operation(fuzzed, operation, mode)
    assert fuzzed.tally.requests >= len(operations) * 2  # every operation was called


def _fuzz_operation(fuzzed: Fuzzed, operation: Any, mode: GenerationMode) -> None:
    strategy = operation.as_strategy(generation_mode=mode)

    @settings(max_examples=SCHEMA_EXAMPLES, deadline=None, database=None,
              suppress_health_check=list(HealthCheck))
    @given(case=strategy)
    def run(case: Any) -> None:
        before = fuzzed.state()
        response = case.call()
        fuzzed.check(f"{operation.label} ({mode})", response.status_code, response.text, before)

    try:
        run()
    except Unsatisfiable:  # an operation with nothing to negate (no parameters, no body)
        assert mode is GenerationMode.NEGATIVE
