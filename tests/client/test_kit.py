"""phasewatch_client.kit: retry policies, pooled HTTP client, cached BigQuery clients, health endpoints, bench."""

from __future__ import annotations

import asyncio
import random
import subprocess
import sys
import threading
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
import tenacity
from google.api_core import exceptions as gexc
from google.auth.credentials import AnonymousCredentials
from phasewatch_client.kit import (
    GENERIC_RETRY,
    HEALTH_JSON,
    QUOTA_RETRY,
    SERIALIZATION_RETRY,
    BigQueryClients,
    Dependency,
    HealthKit,
    HttpClients,
    HttpSettings,
    Identity,
    Observation,
    RetryPolicy,
    Status,
    build_client,
    is_quota_error,
    is_serialization_conflict,
    is_transient,
    starlette_routes,
    stop_before_deadline,
    wait_decorrelated_jitter,
    wsgi_middleware,
)
from phasewatch_client.kit.testing import (
    BigQueryStub,
    LocalServer,
    StubReply,
    StubRequest,
    quota_exceeded,
    serialization_conflict,
)
from prometheus_client import CollectorRegistry

ROOT = Path(__file__).resolve().parents[2]
CONFLICT = "Could not serialize access to table p.d.t due to concurrent update"


# --- fixtures ----------------------------------------------------------------------------------

@pytest.fixture
def registry() -> CollectorRegistry:
    return CollectorRegistry()


@pytest.fixture
def serve() -> Iterator[Callable[..., LocalServer]]:
    servers: list[LocalServer] = []

    def start(handler: Callable[[StubRequest], StubReply]) -> LocalServer:
        servers.append(LocalServer(handler))
        return servers[-1]

    yield start
    for server in servers:
        server.close()


@pytest.fixture
def bq_stub(serve: Callable[..., LocalServer]) -> tuple[BigQueryStub, LocalServer]:
    stub = BigQueryStub(schema=(("player", "STRING"), ("points", "INTEGER")),
                        rows=(("a", 31), ("b", 12)))
    return stub, serve(stub)


@pytest.fixture
def bq_clients(bq_stub: tuple[BigQueryStub, LocalServer]) -> Iterator[BigQueryClients]:
    clients = BigQueryClients(credentials=AnonymousCredentials(),
                              client_options={"api_endpoint": bq_stub[1].url})
    yield clients
    clients.close()


def attempts(registry: CollectorRegistry, policy: str, outcome: str) -> float:
    value = registry.get_sample_value("phasewatch_kit_retry_attempts_total",
                                      {"policy": policy, "outcome": outcome})
    return value or 0.0


def failing(errors: list[BaseException], result: str = "ok") -> Callable[[], str]:
    """A callable raising ``errors`` in turn, then returning ``result``."""
    pending = list(errors)

    def call() -> str:
        if pending:
            raise pending.pop(0)
        return result

    return call


# --- retry: predicates on real google.api_core exceptions ---------------------------------------

@pytest.mark.parametrize(("exc", "expected"), [
    (gexc.BadRequest(CONFLICT), True),
    (gexc.Conflict("Transaction is aborted due to concurrent update against table p.d.t"), True),
    (gexc.from_http_status(400, "Query error", errors=[{"reason": "invalidQuery", "message": CONFLICT}]), True),
    (gexc.BadRequest("Syntax error: Unexpected keyword FROM at [1:8]"), False),
    (gexc.Conflict("Already Exists: Job p:US.job_1"), False),
    (gexc.Forbidden(CONFLICT), False),  # right words, wrong status
    (ValueError(CONFLICT), False),
])
def test_serialization_predicate(exc: BaseException, expected: bool) -> None:
    assert is_serialization_conflict(exc) is expected


@pytest.mark.parametrize(("exc", "expected"), [
    (gexc.Forbidden("Quota exceeded", errors=[{"reason": "quotaExceeded", "message": "Quota exceeded"}]), True),
    (gexc.from_http_status(403, "Exceeded rate limits", errors=[{"reason": "rateLimitExceeded"}]), True),
    (gexc.TooManyRequests("Too many requests"), True),
    (gexc.ResourceExhausted("quota"), True),  # the gRPC name, a TooManyRequests subclass
    (gexc.Forbidden("Access Denied: Table p:d.t", errors=[{"reason": "accessDenied"}]), False),
    (gexc.BadRequest("Quota exceeded", errors=[{"reason": "invalid"}]), False),
    (gexc.ServiceUnavailable("backend"), False),
])
def test_quota_predicate(exc: BaseException, expected: bool) -> None:
    assert is_quota_error(exc) is expected


def test_transient_predicate() -> None:
    request = httpx.Request("GET", "http://127.0.0.1/x")
    assert is_transient(httpx.ConnectError("refused", request=request))
    assert is_transient(gexc.ServiceUnavailable("try later"))
    assert is_transient(httpx.HTTPStatusError("503", request=request,
                                              response=httpx.Response(503, request=request)))
    assert not is_transient(httpx.HTTPStatusError("404", request=request,
                                                  response=httpx.Response(404, request=request)))
    assert not is_transient(gexc.BadRequest("no"))
    assert not is_transient(KeyError("x"))


# --- retry: waits, deadlines, attempts ----------------------------------------------------------

@pytest.mark.parametrize(("policy", "error", "initial", "cap", "deadline"), [
    (SERIALIZATION_RETRY, gexc.BadRequest(CONFLICT), 1.0, 32.0, 120.0),
    (QUOTA_RETRY, gexc.TooManyRequests("slow down"), 2.0, 120.0, 600.0),
])
def test_full_jitter_waits_stay_in_their_windows_and_the_deadline_holds(
    policy: RetryPolicy, error: Exception, initial: float, cap: float, deadline: float,
    registry: CollectorRegistry,
) -> None:
    for _ in range(50):  # the bounds hold for every draw
        sleeps: list[float] = []

        def always_fails() -> None:
            raise error

        with pytest.raises(type(error)):  # the original error, not tenacity's RetryError
            policy.retrying(sleep=sleeps.append, registry=registry)(always_fails)
        for n, wait in enumerate(sleeps):
            assert 0 <= wait <= min(cap, initial * 2 ** n)
        assert sum(sleeps) < deadline
        assert len(sleeps) >= 6  # the deadline stopped it, not an attempt limit
    runs = 50
    assert attempts(registry, policy.name, "gave_up") == runs
    assert attempts(registry, policy.name, "retried") >= 6 * runs


def test_deadline_counts_injected_sleeps_and_stops_before_crossing() -> None:
    sleeps: list[float] = []
    retrying = tenacity.Retrying(stop=stop_before_deadline(10), wait=tenacity.wait_fixed(3),
                                 sleep=sleeps.append, reraise=True)
    with pytest.raises(RuntimeError):
        retrying(failing([RuntimeError("x")] * 10))
    assert sleeps == [3, 3, 3]  # a fourth wait would end at 12 s > 10 s


def test_decorrelated_jitter_bounds_and_attempt_limit(registry: CollectorRegistry) -> None:
    rng = random.Random(7)
    for _ in range(50):
        sleeps: list[float] = []
        retrying = GENERIC_RETRY.retrying(sleep=sleeps.append, registry=registry, rng=rng)
        with pytest.raises(ConnectionError):
            retrying(failing([ConnectionError("reset")] * 10))
        assert len(sleeps) == 4  # 5 attempts
        previous = 1.0
        for wait in sleeps:
            assert 1.0 <= wait <= min(60.0, 3 * previous)
            previous = wait
    with pytest.raises(ValueError, match="min_s"):
        wait_decorrelated_jitter(min_s=5, max_s=1)


def test_attempts_are_counted_once_each(registry: CollectorRegistry) -> None:
    sleeps: list[float] = []
    quota = gexc.Forbidden("Quota exceeded", errors=[{"reason": "quotaExceeded"}])
    call = failing([quota, gexc.TooManyRequests("slow")])
    assert QUOTA_RETRY.retrying(sleep=sleeps.append, registry=registry)(call) == "ok"
    assert len(sleeps) == 2
    assert attempts(registry, "bigquery_quota", "retried") == 2
    assert attempts(registry, "bigquery_quota", "success") == 1
    with pytest.raises(gexc.BadRequest):  # not a quota error: one attempt, no wait
        QUOTA_RETRY.retrying(sleep=sleeps.append, registry=registry)(failing([gexc.BadRequest("bad")]))
    assert attempts(registry, "bigquery_quota", "not_retryable") == 1
    assert len(sleeps) == 2
    # zeros are exported for the other policies' outcomes once they are built
    SERIALIZATION_RETRY.retrying(registry=registry)
    assert registry.get_sample_value("phasewatch_kit_retry_attempts_total",
                                     {"policy": "bigquery_serialization", "outcome": "gave_up"}) == 0


def test_policy_forms_decorator_loop_and_own_predicate(registry: CollectorRegistry) -> None:
    @GENERIC_RETRY
    def fine(x: int) -> int:
        """Doc."""
        return x + 1

    assert fine(1) == 2 and fine.__name__ == "fine" and fine.__doc__ == "Doc."
    sleeps: list[float] = []
    flaky = failing([KeyError("k")])
    mine = GENERIC_RETRY.with_retry_on(lambda e: isinstance(e, KeyError), name="mine")
    for attempt in mine.retrying(sleep=sleeps.append, registry=registry):
        with attempt:
            result = flaky()
    assert result == "ok" and len(sleeps) == 1
    assert attempts(registry, "mine", "retried") == 1
    with pytest.raises(ValueError, match="deadline_s or max_attempts"):
        RetryPolicy("bad", is_transient, initial_s=1, max_wait_s=2)


# --- pooled HTTP client -------------------------------------------------------------------------

def ok(_request: StubRequest) -> StubReply:
    return StubReply.of_json({"status": "pass"})


def test_pooled_client_reuses_one_connection(serve: Callable[..., LocalServer]) -> None:
    server = serve(ok)
    clients = HttpClients()
    try:
        client = clients.get(HttpSettings(base_url=server.url))
        threads = [threading.Thread(target=lambda: [client.get("/health") for _ in range(5)])
                   for _ in range(4)]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        for _ in range(20):
            assert client.get("/health").json() == {"status": "pass"}
        assert len(server.requests) == 40
        assert server.connections <= 4  # at most one per concurrent thread, then reused
    finally:
        clients.close()
    fresh_server = serve(ok)
    with build_client(HttpSettings(base_url=fresh_server.url, max_keepalive_connections=0)) as fresh:
        for _ in range(5):
            fresh.get("/health")
    assert fresh_server.connections == 5  # the contrast: no keep-alive, a connection per call


def test_shared_clients_are_one_per_settings_and_replaced_when_closed() -> None:
    clients = HttpClients(transport=httpx.MockTransport(lambda r: httpx.Response(200)))
    a = HttpSettings(base_url="http://127.0.0.1:1")
    first = clients.get(a)
    same: list[httpx.Client | None] = [None] * 20

    def grab(i: int) -> None:
        same[i] = clients.get(HttpSettings(base_url="http://127.0.0.1:1"))  # an equal, new settings object

    threads = [threading.Thread(target=grab, args=(i,)) for i in range(20)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert all(c is first for c in same)
    assert clients.get(HttpSettings(base_url="http://127.0.0.1:2")) is not first
    first.close()  # someone closed the shared client
    assert clients.get(a) is not first and not clients.get(a).is_closed
    clients.close()


def test_retries_503_then_succeeds(serve: Callable[..., LocalServer]) -> None:
    answers = iter([503, 503, 200])
    server = serve(lambda r: StubReply(next(answers), b"x"))
    sleeps: list[float] = []
    clients = HttpClients(sleep=sleeps.append)
    try:
        response = clients.get(HttpSettings(base_url=server.url)).get("/health")
    finally:
        clients.close()
    assert response.status_code == 200
    assert sleeps == [0.5, 1.0]
    assert len(server.requests) == 3 and server.connections == 1  # the 503s went back to the pool


def test_retry_limits_methods_and_retry_after(serve: Callable[..., LocalServer]) -> None:
    def handler(request: StubRequest) -> StubReply:
        if request.path == "/later":
            return StubReply(429, b"", (("Retry-After", "3600"),))
        if request.path == "/soon":
            return StubReply(429, b"", (("Retry-After", "3"),))
        return StubReply(503)

    server = serve(handler)
    sleeps: list[float] = []
    with build_client(HttpSettings(base_url=server.url), sleep=sleeps.append) as client:
        assert client.get("/down").status_code == 503  # gave up: the last answer, not an exception
        assert sleeps == [0.5, 1.0, 2.0]
        sleeps.clear()
        assert client.post("/start", json={}).status_code == 503  # POST is not repeated
        assert sleeps == []
        client.post("/start", json={}, headers={"Idempotency-Key": "k1"})
        assert sleeps == [0.5, 1.0, 2.0]  # unless it says it can be
        sleeps.clear()
        assert client.get("/later").status_code == 429 and sleeps == []  # too long to hold a thread
        client.get("/soon")
        assert sleeps == [3.0, 3.0, 3.0]
    assert [r.path for r in server.requests].count("/down") == 4


def test_connection_errors_are_retried() -> None:
    calls = {"n": 0}

    def flaky(request: httpx.Request) -> httpx.Response:
        calls["n"] += 1
        if calls["n"] == 1:
            raise httpx.ConnectError("refused", request=request)
        return httpx.Response(200, json={"ok": True})

    sleeps: list[float] = []
    with build_client(sleep=sleeps.append, transport=httpx.MockTransport(flaky)) as client:
        assert client.post("http://127.0.0.1:9/start").json() == {"ok": True}  # nothing was sent
    assert sleeps == [0.5]


# --- cached BigQuery clients --------------------------------------------------------------------

def test_bigquery_client_is_one_instance_across_20_threads(bq_clients: BigQueryClients) -> None:
    barrier = threading.Barrier(20)
    got: list[Any] = [None] * 20

    def grab(i: int) -> None:
        barrier.wait()
        got[i] = bq_clients.get("p")

    threads = [threading.Thread(target=grab, args=(i,)) for i in range(20)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert all(c is got[0] for c in got) and bq_clients.created == 1
    assert got[0].project == "p"


def test_bigquery_client_per_project(bq_clients: BigQueryClients) -> None:
    a, b = bq_clients.get("proj-a"), bq_clients.get("proj-b")
    assert a is not b and (a.project, b.project) == ("proj-a", "proj-b")
    assert bq_clients.get("proj-a") is a and bq_clients.created == 2
    with pytest.raises(ValueError, match="project"):
        bq_clients.get("")


def test_bigquery_query_round_trip(bq_stub: tuple[BigQueryStub, LocalServer],
                                   bq_clients: BigQueryClients) -> None:
    stub, _server = bq_stub
    rows = [tuple(r) for r in bq_clients.get("p").query("SELECT player, points FROM t").result()]
    assert rows == [("a", 31), ("b", 12)]
    assert stub.queries == ["SELECT player, points FROM t"]


def test_retry_policies_around_real_client_errors(bq_stub: tuple[BigQueryStub, LocalServer],
                                                  bq_clients: BigQueryClients,
                                                  registry: CollectorRegistry) -> None:
    stub, _server = bq_stub
    client = bq_clients.get("p")

    def run() -> list[tuple[Any, ...]]:
        return [tuple(r) for r in client.query("UPDATE t SET points = 1 WHERE true").result()]

    stub.job_errors.extend([serialization_conflict(), serialization_conflict()])
    sleeps: list[float] = []
    assert SERIALIZATION_RETRY.retrying(sleep=sleeps.append, registry=registry)(run) == [("a", 31), ("b", 12)]
    assert len(sleeps) == 2 and len(stub.queries) == 3
    stub.job_errors.append(quota_exceeded())
    with pytest.raises(gexc.Forbidden) as caught:
        run()
    assert is_quota_error(caught.value) and not is_serialization_conflict(caught.value)
    stub.job_errors.append(quota_exceeded())
    assert QUOTA_RETRY.retrying(sleep=sleeps.append, registry=registry)(run) == [("a", 31), ("b", 12)]


# --- health kit ---------------------------------------------------------------------------------

IDENTITY = Identity("prediction-worker", version="1.4.2", release_id="abc123")


@pytest.fixture
def release() -> Iterator[threading.Event]:
    gate = threading.Event()
    yield gate
    gate.set()  # let a hung check's thread finish


def test_health_pass_with_identity_and_checks_shape() -> None:
    kit = HealthKit(IDENTITY, [
        Dependency("bigquery:query", lambda: True, component_type="datastore"),
        Dependency("queue:depth", lambda: Observation(Status.PASS, 3, "messages")),
    ])
    code, body = kit.ready()
    assert code == 200 and body["status"] == "pass"
    assert body["service"] == body["serviceId"] == "prediction-worker"
    assert (body["version"], body["releaseId"]) == ("1.4.2", "abc123")
    bq = body["checks"]["bigquery:query"][0]
    assert bq["componentType"] == "datastore" and bq["status"] == "pass"
    assert bq["observedUnit"] == "ms" and bq["observedValue"] >= 0 and "T" in bq["time"]
    assert body["checks"]["queue:depth"][0]["observedValue"] == 3
    assert "output" not in body


def test_health_warn_and_fail() -> None:
    def boom() -> bool:
        raise RuntimeError("connection refused")

    optional = Dependency("cache:ping", lambda: False, required=False)
    kit = HealthKit(IDENTITY, [Dependency("bigquery:query", lambda: True), optional])
    code, body = kit.ready()
    assert (code, body["status"]) == (200, "warn") and body["output"] == "not passing: cache:ping"
    assert body["checks"]["cache:ping"][0]["status"] == "fail"

    kit = HealthKit(IDENTITY, [Dependency("bigquery:query", boom), optional])
    code, body = kit.ready()
    assert (code, body["status"]) == (503, "fail")
    assert body["checks"]["bigquery:query"][0]["output"] == "RuntimeError: connection refused"
    assert body["service"] == "prediction-worker"
    code, body = kit.health()  # liveness does not run readiness checks
    assert (code, body["status"]) == (200, "pass") and "checks" not in body


def test_timed_out_dependency_fails_and_is_not_restarted(release: threading.Event) -> None:
    calls = []

    def hangs() -> bool:
        calls.append(1)
        release.wait()
        return True

    kit = HealthKit(IDENTITY, [Dependency("firestore:read", hangs, timeout_s=0.05)])
    for _ in range(3):
        code, body = kit.ready()
        check = body["checks"]["firestore:read"][0]
        assert code == 503 and check["status"] == "fail" and check["output"] == "timed out after 0.05 s"
    assert len(calls) == 1  # still hanging: reported, not started again
    with pytest.raises(ValueError, match="unique"):
        HealthKit(IDENTITY, [Dependency("a", lambda: True), Dependency("a", lambda: True)])


def test_wsgi_adapter() -> None:
    def app(environ: Any, start_response: Any) -> list[bytes]:
        start_response("200 OK", [("Content-Type", "text/plain")])
        return [b"the app"]

    kit = HealthKit(IDENTITY, [Dependency("bigquery:query", lambda: False)])
    with httpx.Client(transport=httpx.WSGITransport(app=wsgi_middleware(kit, app)),
                      base_url="http://svc") as client:
        health = client.get("/health")
        assert health.status_code == 200 and health.headers["content-type"] == HEALTH_JSON
        assert health.json()["service"] == "prediction-worker"
        ready = client.get("/health/ready")
        assert ready.status_code == 503 and ready.json()["status"] == "fail"
        assert client.get("/ready").status_code == 503
        assert client.get("/predict").text == "the app"
        assert client.post("/health").status_code == 405
    with httpx.Client(transport=httpx.WSGITransport(app=wsgi_middleware(kit)), base_url="http://svc") as bare:
        assert bare.get("/other").status_code == 404


def test_starlette_adapter() -> None:
    from starlette.applications import Starlette

    kit = HealthKit(IDENTITY, [Dependency("bigquery:query", lambda: True)])
    app = Starlette(routes=starlette_routes(kit))

    async def get(*paths: str) -> list[httpx.Response]:
        async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://svc") as client:
            return [await client.get(p) for p in paths]

    ready, health, alias = asyncio.run(get("/ready", "/health", "/health/ready"))
    assert ready.status_code == 200 and ready.headers["content-type"] == HEALTH_JSON
    assert ready.json()["checks"]["bigquery:query"][0]["status"] == "pass"
    assert health.json()["serviceId"] == "prediction-worker" and "checks" not in health.json()
    assert alias.json()["status"] == "pass"


# --- bench ----------------------------------------------------------------------------------------

def test_pooling_bench_quick_run() -> None:
    out = subprocess.run([sys.executable, str(ROOT / "bench" / "pooling.py"), "--quick"],
                         capture_output=True, text=True, timeout=120, cwd=ROOT)
    assert out.returncode == 0, out.stderr
    # The ratios a caller feels (bench/pooling.py since issue 18): a new TLS connection and a
    # query through a new client, each against the pooled / cached one.
    assert "of pooled client" in out.stdout and "of cached client" in out.stdout
    assert "pooled client: 0 TLS connection(s) opened" in out.stdout
