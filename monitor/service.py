"""The HTTP service (DESIGN §4): the only module that imports Starlette and uvicorn.

Every response to bad input is a 4xx JSON error counted in
``phasewatch_events_rejected_total{reason}``; store failures answer 503 so that senders
(Pub/Sub above all) retry. Ingest runs on the event loop thread: it is short and CPU-bound,
and a thread hop costs more than it saves (see ``bench/ingest.py``); it also keeps every
write to run state on one thread, so reads of that state need no lock.
"""

from __future__ import annotations

import asyncio
import functools
import gc
import hmac
import json
import logging
import os
import re
import socket
import threading
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator, Sequence
from contextlib import asynccontextmanager, contextmanager, suppress
from dataclasses import dataclass
from datetime import date
from importlib import metadata
from pathlib import Path
from typing import Any, TypeVar

import click
import uvicorn
from starlette.applications import Starlette
from starlette.concurrency import run_in_threadpool
from starlette.exceptions import HTTPException
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route
from starlette.types import ASGIApp, Receive, Scope, Send

from alerts.api import create_silence, expire_silence, list_active_alerts
from alerts.errors import UnknownSilence
from monitor.actuator import Actuator
from monitor.actuator.api import list_actions, manual_action
from monitor.actuator.deploys import list_deploys, post_deploy
from monitor.app import JobRun, Phasewatch
from monitor.clock import SystemClock
from monitor.config import Config, apply_environment, load_config, resolve_secret
from monitor.errors import (
    CertsUnavailable,
    ConfigError,
    EventError,
    PayloadTooLarge,
    Problem,
    StoreError,
)
from monitor.events import Event, PushEnvelope
from monitor.pubsub_auth import PushVerifier
from monitor.store.base import DeadLetter
from monitor.validation import render_value

log = logging.getLogger(__name__)

HEALTH_JSON = "application/health+json"
SAFE_METHODS = frozenset({"GET", "HEAD", "OPTIONS"})
DATE_PATTERN = re.compile(r"\d{4}-\d{2}-\d{2}")
Handler = Callable[[Request], Awaitable[Response]]
E = TypeVar("E", bound=EventError)


def error_body(
    error: str, problems: Sequence[Problem] = (), reason: str | None = None
) -> dict[str, Any]:
    """The JSON body of every error answer: ``{"error", "reason", "details"}``."""
    body: dict[str, Any] = {"error": error, "details": [p.as_dict() for p in problems]}
    if reason is not None:
        body["reason"] = reason
    return body


def event_error_response(exc: EventError) -> JSONResponse:
    """An EventError as its 4xx JSON answer (the problems name the fields)."""
    headers = {"WWW-Authenticate": 'Bearer realm="phasewatch"'} if exc.status_code == 401 else None
    return JSONResponse(error_body(str(exc), exc.problems, exc.reason), exc.status_code, headers)


class BearerAuth:
    """ASGI middleware: every request but GET/HEAD/OPTIONS needs ``Authorization: Bearer``.

    ``exempt``: (method, path) pairs whose handler authenticates them another way (the
    Pub/Sub push path when its OIDC token is verified: Pub/Sub cannot send our token).
    """

    def __init__(self, app: ASGIApp, token: str, on_reject: Callable[[EventError], None],
                 exempt: frozenset[tuple[str, str]] = frozenset()) -> None:
        self.app = app
        self._token = token.encode()
        self._on_reject = on_reject
        self._exempt = exempt

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        # Fail closed: only the lifespan, safe methods and exact exempt routes pass without it.
        safe = scope["type"] == "lifespan" or scope.get("method") in SAFE_METHODS
        safe = safe or (scope.get("method"), scope.get("path")) in self._exempt
        if safe or self._allowed(scope):
            await self.app(scope, receive, send)
            return
        exc = EventError("unauthorized", [Problem(
            "Authorization", "missing or wrong bearer token; expected: Bearer <token>"
        )], status_code=401)
        self._on_reject(exc)
        await event_error_response(exc)(scope, receive, send)

    def _allowed(self, scope: Scope) -> bool:
        for name, value in scope["headers"]:
            if name == b"authorization":
                scheme, _, given = value.partition(b" ")
                given = given.strip()
                return scheme.lower() == b"bearer" and hmac.compare_digest(given, self._token)
        return False


@dataclass(frozen=True)
class Endpoint:
    """One route and its OpenAPI description (the route table and the document share it)."""

    method: str
    path: str
    handler: Handler
    summary: str
    responses: dict[str, str]
    parameters: tuple[dict[str, Any], ...] = ()
    body: dict[str, Any] | None = None


class Api:
    """The endpoints of one phasewatch instance."""

    def __init__(self, pw: Phasewatch, *, offload_ingest: bool = False) -> None:
        self.pw = pw
        self.max_body = pw.config.server.max_body_bytes
        self.offload_ingest = offload_ingest
        self.jobs_lock = threading.Lock()  # a job never runs twice at once (tick vs POST)
        self.version = _version()
        push_auth = pw.config.server.pubsub_push
        self.push_verifier = None if push_auth is None else PushVerifier(push_auth, pw.clock)

    def reject(self, exc: E) -> E:
        """Count a rejection the service itself decided, and hand it back for raising."""
        self.pw.collector.reject(exc)
        return exc

    async def read_body(self, request: Request) -> bytes:
        """The request body, refused with 413 as soon as it passes the limit."""
        declared = request.headers.get("content-length", "")
        if declared.isdigit() and int(declared) > self.max_body:
            raise self._too_large()
        body = bytearray()
        async for chunk in request.stream():
            body += chunk
            if len(body) > self.max_body:
                raise self._too_large()
        return bytes(body)

    def _too_large(self) -> PayloadTooLarge:
        problem = Problem("body", f"larger than the limit of {self.max_body} bytes")
        return self.reject(PayloadTooLarge("too_large", [problem], status_code=413))

    async def _call(self, fn: Callable[..., Any], *args: Any) -> Any:
        if self.offload_ingest:
            return await run_in_threadpool(self._locked, fn, *args)
        return self._locked(fn, *args)

    def _locked(self, fn: Callable[..., Any], *args: Any) -> Any:
        """Run ``fn`` holding the state lock: ingest, jobs and reads never interleave."""
        with self.jobs_lock:
            return fn(*args)

    async def _read(self, fn: Callable[..., Any], *args: Any) -> Any:
        """A state read from a worker thread, under the state lock."""
        return await run_in_threadpool(self._locked, fn, *args)

    async def slos(self, request: Request) -> Response:
        statuses = await self._read(self.pw.slo_report)
        return JSONResponse({"slos": statuses})

    async def anomalies(self, request: Request) -> Response:
        items = await self._read(self.pw.anomalies.as_report)
        return JSONResponse({"anomalies": list(reversed(items))})

    async def alerts(self, request: Request) -> Response:
        body = await self._read(list_active_alerts, self.pw.alerting, self.pw.clock.now())
        return JSONResponse(body)

    async def post_silence(self, request: Request) -> Response:
        body = self._json_object(await self.read_body(request))
        silence = await self._read(create_silence, self.pw.alerting, body, self.pw.clock.now())
        return JSONResponse(silence, 201)

    def _json_object(self, raw: bytes) -> dict[str, Any]:
        try:
            body = json.loads(raw)
        except (json.JSONDecodeError, UnicodeDecodeError) as exc:
            problem = Problem("body", f"not valid JSON: {exc}")
            raise self.reject(EventError("invalid_json", [problem], status_code=400)) from None
        if not isinstance(body, dict):
            problem = Problem("body", "must be a JSON object")
            raise self.reject(EventError("schema", [problem], status_code=400))
        return body

    async def delete_silence(self, request: Request) -> Response:
        ident = request.path_params["silence_id"]
        try:
            result = await self._read(expire_silence, self.pw.alerting, ident, self.pw.clock.now())
        except UnknownSilence:
            problem = Problem("silence_id", "no silence has this id", render_value(ident))
            raise self.reject(EventError("unknown_silence", [problem], status_code=404)) from None
        return JSONResponse(result)

    async def actions(self, request: Request) -> Response:
        actuator = self._actuator()
        body = await self._read(list_actions, actuator, dict(request.query_params))
        return JSONResponse(body)

    async def post_action(self, request: Request) -> Response:
        actuator = self._actuator()
        body = await self.read_body(request)
        actor = request.headers.get("x-phasewatch-actor") or "api"
        result = await self._read(functools.partial(manual_action, actor=actor), actuator, body)
        return JSONResponse(result, 200)

    async def deploys(self, request: Request) -> Response:
        deploys = self._actuator().ctx.health.deploys
        return JSONResponse(await self._read(list_deploys, deploys, dict(request.query_params)))

    async def post_deploy(self, request: Request) -> Response:
        deploys = self._actuator().ctx.health.deploys
        body = await self.read_body(request)
        try:
            result = await self._read(post_deploy, deploys, body, self.pw.clock.now())
        except EventError as exc:
            raise self.reject(exc) from None
        return JSONResponse(result, 201)

    def _actuator(self) -> Actuator:
        if self.pw.actuator is None:
            problem = Problem("actuator", "not running in this instance")
            raise self.reject(EventError("unavailable", [problem], status_code=503))
        return self.pw.actuator

    def _unavailable(self, what: str) -> JSONResponse:
        log.exception("event=%s.failed", what)
        self.pw.collector.reject(EventError("unavailable"))
        body = error_body("storage unavailable; nothing was stored, retry", reason="unavailable")
        return JSONResponse(body, 503, {"Retry-After": "1"})

    async def post_events(self, request: Request) -> Response:
        body = await self.read_body(request)
        try:
            result = await self._call(
                self.pw.collector.ingest_body, body, request.headers.get("content-type")
            )
        except EventError:
            raise  # counted by the collector
        except Exception:
            return self._unavailable("ingest")
        return JSONResponse(result.as_dict(), 202)

    async def post_push(self, request: Request) -> Response:
        if self.push_verifier is not None:  # before the body is read, like BearerAuth
            denied = await self._authenticate_push(request, self.push_verifier)
            if denied is not None:
                return denied
        body = await self.read_body(request)
        try:
            result = await self._call(self.pw.collector.ingest_push, body)
        except EventError:
            raise  # a malformed envelope (400), counted by the collector
        except Exception:
            return self._unavailable("pubsub_push")  # not acked: Pub/Sub redelivers
        return JSONResponse({"outcome": result.outcome, "reason": result.reason}, 200)

    async def _authenticate_push(self, request: Request, verifier: PushVerifier) -> Response | None:
        """None when the push carries a valid Google OIDC token; raises EventError (401/403)."""
        header = request.headers.get("authorization")
        try:
            if verifier.would_fetch(header):  # a certificate fetch blocks: off the event loop
                await run_in_threadpool(verifier.verify, header)
            else:
                verifier.verify(header)
        except EventError as exc:
            log.info("event=pubsub_push.denied reason=%s detail=%r", exc.reason, str(exc)[:300])
            raise self.reject(exc) from None
        except CertsUnavailable as exc:  # fail closed; Pub/Sub redelivers on 503
            log.warning("event=pubsub_push.certs_unavailable url=%s detail=%r", exc.url, exc.detail)
            self.pw.collector.reject(EventError("push_certs_unavailable"))
            body = error_body("cannot verify the push token now; nothing was stored, retry",
                              [Problem("Authorization", str(exc))], "push_certs_unavailable")
            return JSONResponse(body, 503, {"Retry-After": "10"})
        return None

    async def metrics(self, request: Request) -> Response:
        text, content_type = self.pw.metrics.exposition(request.headers.get("accept"))
        return Response(text, headers={"Content-Type": content_type})

    async def health(self, request: Request) -> Response:
        body = {"status": "pass", "version": self.version, "description": "phasewatch liveness"}
        return JSONResponse(body, media_type=HEALTH_JSON)

    async def ready(self, request: Request) -> Response:
        checks = await run_in_threadpool(readiness_checks, self.pw)
        status = overall_status(checks)
        body = {"status": status, "version": self.version, "checks": checks}
        return JSONResponse(body, 503 if status == "fail" else 200, media_type=HEALTH_JSON)

    async def runs(self, request: Request) -> Response:
        pipeline, run_date = self._run_filters(request)
        runs = self.pw.tracker.runs(pipeline=pipeline, run_date=run_date)
        return JSONResponse({"runs": [r.as_dict() for r in runs]})

    def _run_filters(self, request: Request) -> tuple[str | None, date | None]:
        query = request.query_params
        pipeline, raw_date = query.get("pipeline") or None, query.get("run_date") or None
        problems: list[Problem] = []
        known = self.pw.config.pipeline_map
        if pipeline is not None and pipeline not in known:
            allowed = ", ".join(sorted(known))
            problems.append(Problem("pipeline", f"unknown pipeline; allowed: {allowed}",
                                    render_value(pipeline)))
        run_date = _parse_date(raw_date, problems)
        if problems:
            raise self.reject(EventError("bad_query", problems, status_code=400))
        return pipeline, run_date

    async def dead_letters(self, request: Request) -> Response:
        raw = request.query_params.get("limit", "100")
        if not raw.isdigit() or not 1 <= int(raw) <= 1000:
            problem = Problem("limit", "must be an integer from 1 to 1000", render_value(raw))
            raise self.reject(EventError("bad_query", [problem], status_code=400))
        letters = await run_in_threadpool(self.pw.store.dead_letters, int(raw))
        return JSONResponse({"dead_letters": [dead_letter_dict(d) for d in letters]})

    async def run_job(self, request: Request) -> Response:
        name = request.path_params["name"]
        if name not in self.pw.jobs:
            allowed = ", ".join(sorted(self.pw.jobs)) or "none registered"
            problem = Problem("name", f"unknown job; allowed: {allowed}", render_value(name))
            raise self.reject(EventError("unknown_job", [problem], status_code=404))
        record = await run_in_threadpool(self.run_job_now, name)
        body = job_dict(record)
        return JSONResponse(body, 500 if record.last_error else 200)

    def run_job_now(self, name: str) -> JobRun:
        """Run one job under the jobs lock (blocking: call from a worker thread)."""
        with self.jobs_lock:
            return self.pw.run_job(name)

    def tick(self) -> None:
        """Run every job once under the jobs lock (blocking: call from a worker thread)."""
        with self.jobs_lock:
            self.pw.tick()

    async def openapi(self, request: Request) -> Response:
        return JSONResponse(openapi_document(self.endpoints(), self.version))

    def endpoints(self) -> list[Endpoint]:
        """The route table; see ``_ENDPOINT_DOCS`` for what each one documents."""
        return [Endpoint(method, path, getattr(self, attr), **doc)
                for method, path, attr, doc in _ENDPOINT_DOCS]


def _parse_date(raw: str | None, problems: list[Problem]) -> date | None:
    if raw is None:
        return None
    if DATE_PATTERN.fullmatch(raw):
        with suppress(ValueError):
            return date.fromisoformat(raw)
    problems.append(Problem("run_date", "not a date; expected YYYY-MM-DD", render_value(raw)))
    return None


def _version() -> str:
    try:
        return metadata.version("phasewatch")
    except metadata.PackageNotFoundError:
        return "unknown"


def dead_letter_dict(d: DeadLetter) -> dict[str, Any]:
    """A dead letter as JSON."""
    return {"id": d.id, "received_at": d.received_at.isoformat(), "source": d.source,
            "message_id": d.message_id, "reason": d.reason, "detail": d.detail,
            "payload": d.payload}


def job_dict(record: JobRun) -> dict[str, Any]:
    """A job's last run as JSON."""
    return {"job": record.name, "status": "failed" if record.last_error else "succeeded",
            "runs": record.runs, "last_error": record.last_error,
            "last_run": record.last_run.isoformat() if record.last_run else None}


# --- readiness ---------------------------------------------------------------------------

def _check(status: str, output: str | None = None, **extra: Any) -> list[dict[str, Any]]:
    item: dict[str, Any] = {"status": status, **extra}
    if output:
        item["output"] = output
    return [item]


def readiness_checks(pw: Phasewatch) -> dict[str, list[dict[str, Any]]]:
    """Checks in the health+json ``checks`` shape; ``required`` marks those that gate readiness."""
    now = pw.clock.now().isoformat()
    checks: dict[str, list[dict[str, Any]]] = {}
    try:
        # Not count(): it scans the events (10 ms per million) under the store's lock.
        pw.store.dead_letters(limit=1)
        checks["store:readable"] = _check("pass", None, time=now, required=True)
    except Exception as exc:
        checks["store:readable"] = _check("fail", f"{type(exc).__name__}: {exc}", time=now,
                                          required=True)
    writable, why = store_writable(pw.store)
    checks["store:writable"] = _check("pass" if writable else "fail", why, time=now, required=True)
    checks["config:loaded"] = _check(
        "pass", None, observedValue=[p.id for p in pw.config.pipelines], time=now, required=True
    )
    for name, record in pw.job_runs.items():
        checks[f"job:{name}"] = _check(
            "warn" if record.last_error else "pass", record.last_error, required=False,
            time=record.last_run.isoformat() if record.last_run else None, observedValue=record.runs,
        )
    return checks


def store_writable(store: object) -> tuple[bool, str | None]:
    """Can the store's file (and its directory, for the WAL) be written? Unknown stores pass."""
    path = getattr(store, "path", None)
    if not isinstance(path, str) or path == ":memory:":
        return True, None
    db = Path(path)
    targets = [db.parent] + [p for p in (db, Path(f"{path}-wal")) if p.exists()]
    for target in targets:
        if not os.access(target, os.W_OK):
            return False, f"not writable: {target}"
    return True, None


def overall_status(checks: dict[str, list[dict[str, Any]]]) -> str:
    """fail if a required check fails; warn if any check is not pass; else pass."""
    items = [item for values in checks.values() for item in values]
    if any(i["status"] == "fail" and i.get("required") for i in items):
        return "fail"
    return "warn" if any(i["status"] != "pass" for i in items) else "pass"


# --- OpenAPI -------------------------------------------------------------------------------

_SCHEMA = "#/components/schemas/{model}"
_ERROR = {"$ref": "#/components/schemas/Error"}
_HEALTH = {"$ref": "#/components/schemas/Health"}
_EVENT = {"$ref": "#/components/schemas/Event"}


def _json(schema: dict[str, Any], media: str = "application/json") -> dict[str, Any]:
    return {"content": {media: {"schema": schema}}}


def _query(name: str, description: str, **schema: Any) -> dict[str, Any]:
    return {"name": name, "in": "query", "required": False, "description": description,
            "schema": {"type": "string", **schema}}


_ENDPOINT_DOCS: tuple[tuple[str, str, str, dict[str, Any]], ...] = (
    ("POST", "/v1/events", "post_events", dict(
        summary="Ingest one event, a JSON array of events, or NDJSON (all or nothing)",
        responses={"202": "accepted and duplicate counts", "4XX": "rejected, nothing stored",
                   "503": "storage unavailable, retry"},
        body={"required": True, "content": {
            "application/json": {"schema": {"oneOf": [
                _EVENT, {"type": "array", "items": _EVENT, "minItems": 1}]}},
            "application/x-ndjson": {"schema": {"type": "string"}}}},
    )),
    ("POST", "/v1/pubsub/push", "post_push", dict(
        summary="Pub/Sub push endpoint; poison messages are acked and dead-lettered",
        responses={"200": "acked: stored, duplicate or dead_lettered",
                   "400": "malformed envelope",
                   "401": "missing or invalid Google OIDC token (server.pubsub_push), or bearer token",
                   "403": "valid OIDC token of a service account not listed",
                   "503": "storage or Google's signing certificates unavailable, redeliver"},
        body={"required": True, **_json({"$ref": "#/components/schemas/PushEnvelope"})},
    )),
    ("GET", "/metrics", "metrics", dict(
        summary="Prometheus metrics (OpenMetrics when the Accept header asks for it)",
        responses={"200": "metrics text"},
    )),
    ("GET", "/health", "health", dict(
        summary="Liveness", responses={"200": "alive"},
    )),
    ("GET", "/ready", "ready", dict(
        summary="Readiness with per-check details",
        responses={"200": "ready (pass or warn)", "503": "a required check fails"},
    )),
    ("GET", "/v1/runs", "runs", dict(
        summary="Tracked run state, newest run date first",
        responses={"200": "runs", "400": "bad filter"},
        parameters=(_query("pipeline", "a configured pipeline id"),
                    _query("run_date", "YYYY-MM-DD", format="date")),
    )),
    ("GET", "/v1/dead-letters", "dead_letters", dict(
        summary="Messages that can never be valid events, newest first",
        responses={"200": "dead letters", "400": "bad limit"},
        parameters=(_query("limit", "1 to 1000 (default 100)", pattern="^[0-9]+$"),),
    )),
    ("POST", "/v1/jobs/{name}", "run_job", dict(
        summary="Run a periodic job now (Cloud Scheduler target)",
        responses={"200": "the job ran", "404": "unknown job", "500": "the job failed"},
        parameters=({"name": "name", "in": "path", "required": True,
                     "schema": {"type": "string"}},),
    )),
    ("GET", "/v1/slos", "slos", dict(
        summary="Every SLO's status: SLI, budget in runs or events, burn rates",
        responses={"200": "SLO statuses"},
    )),
    ("GET", "/v1/anomalies", "anomalies", dict(
        summary="Recent duration and lateness outliers, newest first",
        responses={"200": "anomalies with expected range and score"},
    )),
    ("GET", "/v1/alerts", "alerts", dict(
        summary="Active alerts (firing, silenced or inhibited) and silences",
        responses={"200": "alerts and silences"},
    )),
    ("POST", "/v1/silences", "post_silence", dict(
        summary="Create a silence: matchers, author, comment, expiry",
        responses={"201": "the silence", "422": "invalid silence"},
        body={"required": True, **_json({"type": "object"})},
    )),
    ("DELETE", "/v1/silences/{silence_id}", "delete_silence", dict(
        summary="Expire a silence now",
        responses={"200": "expired", "404": "unknown silence"},
        parameters=({"name": "silence_id", "in": "path", "required": True,
                     "schema": {"type": "string"}},),
    )),
    ("GET", "/v1/actions", "actions", dict(
        summary="Audit log of automated and manual actions and decisions not taken",
        responses={"200": "actions, newest first"},
    )),
    ("POST", "/v1/actions/trigger", "post_action", dict(
        summary="Manual trigger, skip or retry (audited, counted as a manual intervention)",
        responses={"200": "what was done", "422": "invalid action"},
        body={"required": True, **_json({"type": "object"})},
    )),
    ("POST", "/v1/deploys", "post_deploy", dict(
        summary="A deploy of a service (it labels a following unhealthy streak a deploy regression)",
        responses={"201": "the deploy as stored", "404": "unknown service",
                   "422": "invalid deploy"},
        body={"required": True, **_json({"type": "object", "required": ["service"], "properties": {
            "service": {"type": "string"}, "version": {"type": "string"},
            "timestamp": {"type": "string", "format": "date-time"}}})},
    )),
    ("GET", "/v1/deploys", "deploys", dict(
        summary="Deploys phasewatch knows of (notified, replayed or seen in health bodies), newest first",
        responses={"200": "deploys", "400": "bad filter"},
        parameters=(_query("service", "a configured service"),
                    _query("limit", "1 to 1000 (default 100)", pattern="^[0-9]+$")),
    )),
    ("GET", "/openapi.json", "openapi", dict(
        summary="This document", responses={"200": "OpenAPI 3.1 document"},
    )),
)

_STATUS_SCHEMA = {
    "202": _json({"type": "object", "properties": {
        "accepted": {"type": "integer"}, "duplicates": {"type": "integer"}}}),
}


def _operation(ep: Endpoint) -> dict[str, Any]:
    responses: dict[str, Any] = {}
    for status, description in ep.responses.items():
        schema = _STATUS_SCHEMA.get(status)
        if schema is None and (status.startswith(("4", "5"))):
            schema = _json(_ERROR)
        if schema is None and ep.path in ("/health", "/ready"):
            schema = _json(_HEALTH, HEALTH_JSON)
        responses[status] = {"description": description, **(schema or {})}
    op: dict[str, Any] = {"summary": ep.summary, "operationId": ep.handler.__name__,
                          "responses": responses}
    if ep.parameters:
        op["parameters"] = list(ep.parameters)
    if ep.body is not None:
        op["requestBody"] = ep.body
    if ep.method not in SAFE_METHODS:
        op["security"] = [{"bearer": []}]
        op["responses"].setdefault("401", {"description": "missing or wrong token",
                                           **_json(_ERROR)})
        op["responses"].setdefault("413", {"description": "body too large", **_json(_ERROR)})
    return op


def _components() -> dict[str, Any]:
    schemas: dict[str, Any] = {}
    for model in (Event, PushEnvelope):
        schema = model.model_json_schema(by_alias=True, ref_template=_SCHEMA)
        schemas.update(schema.pop("$defs", {}))
        schemas[model.__name__] = schema
    problem = {"type": "object", "required": ["field", "message"], "properties": {
        "field": {"type": "string"}, "message": {"type": "string"}, "value": {"type": "string"}}}
    schemas["Error"] = {"type": "object", "required": ["error", "details"], "properties": {
        "error": {"type": "string"}, "reason": {"type": "string"},
        "details": {"type": "array", "items": problem}}}
    schemas["Health"] = {"type": "object", "required": ["status"], "properties": {
        "status": {"enum": ["pass", "warn", "fail"]}, "version": {"type": "string"},
        "checks": {"type": "object"}}}
    return {"schemas": schemas,
            "securitySchemes": {"bearer": {"type": "http", "scheme": "bearer"}}}


def openapi_document(endpoints: Sequence[Endpoint], version: str) -> dict[str, Any]:
    """An OpenAPI 3.1 document for ``endpoints``, with the Event model's JSON schema."""
    paths: dict[str, dict[str, Any]] = {}
    for ep in endpoints:
        paths.setdefault(ep.path, {})[ep.method.lower()] = _operation(ep)
    return {
        "openapi": "3.1.0",
        "info": {"title": "phasewatch", "version": version,
                 "description": "Pipeline events in; run state, metrics and health out."},
        "paths": paths,
        "components": _components(),
    }


# --- the application -----------------------------------------------------------------------

async def run_scheduler(
    tick: Callable[[], None], interval_s: float,
    sleep: Callable[[float], Awaitable[None]] = asyncio.sleep,
) -> None:
    """Call ``tick`` in a worker thread every ``interval_s``; failures are logged, never raised."""
    while True:
        await sleep(interval_s)
        try:
            await run_in_threadpool(tick)
        except Exception:
            log.exception("event=scheduler.tick_failed")


def create_app(
    pw: Phasewatch, token: str | None, *,
    tick_interval_s: float | None = None, on_shutdown: Callable[[], None] | None = None,
    offload_ingest: bool = False,
) -> Starlette:
    """The Starlette app for ``pw``; POSTs need ``token`` when it is set.

    ``tick_interval_s``: run ``pw.tick`` that often while the server runs (its lifespan).
    ``on_shutdown``: called when the server stops, before uvicorn re-raises SIGTERM.
    ``offload_ingest``: ingest in a worker thread; measured slower (bench/ingest.py), and
    run state is then written off the event loop thread, where /v1/runs reads it.
    """
    if token is not None and not token.strip():
        raise ValueError("token must not be empty (pass None to disable auth)")
    api = Api(pw, offload_ingest=offload_ingest)

    @asynccontextmanager
    async def lifespan(app: Starlette) -> AsyncIterator[None]:
        task = None
        if tick_interval_s is not None:
            task = asyncio.create_task(run_scheduler(api.tick, tick_interval_s))
        actuator = pw.actuator
        if actuator is not None:
            actuator.attach_loop(asyncio.get_running_loop())
        try:
            yield
        finally:
            if task is not None:
                task.cancel()
                with suppress(asyncio.CancelledError):
                    await task
            if actuator is not None:
                await actuator.detach_loop()
            if on_shutdown is not None:
                await run_in_threadpool(on_shutdown)

    async def on_event_error(request: Request, exc: Exception) -> Response:
        assert isinstance(exc, EventError)
        return event_error_response(exc)

    async def on_http_error(request: Request, exc: Exception) -> Response:
        assert isinstance(exc, HTTPException)
        reason = {404: "not_found", 405: "method_not_allowed"}.get(exc.status_code, "bad_request")
        api.reject(EventError(reason))
        body = error_body(exc.detail, [Problem("path", exc.detail, render_value(request.url.path))],
                          reason)
        return JSONResponse(body, exc.status_code, dict(exc.headers or {}))

    routes = [Route(ep.path, ep.handler, methods=[ep.method]) for ep in api.endpoints()]
    app = Starlette(
        routes=routes, lifespan=lifespan,
        exception_handlers={EventError: on_event_error, HTTPException: on_http_error},
    )
    if token is not None:
        # With pubsub_push set the push path is authenticated by Google's OIDC token instead.
        exempt = frozenset() if api.push_verifier is None else frozenset({("POST", "/v1/pubsub/push")})
        app.add_middleware(BearerAuth, token=token.strip(), on_reject=pw.collector.reject,
                           exempt=exempt)
    app.state.api = api
    return app


def make_server(app: ASGIApp, host: str = "127.0.0.1", port: int = 0) -> uvicorn.Server:
    """The uvicorn server ``serve`` runs (tests and benchmarks run the same one)."""
    config = uvicorn.Config(
        app, host=host, port=port, lifespan="on", ws="none", access_log=False,
        log_config=None, server_header=False, timeout_graceful_shutdown=10,
    )
    return uvicorn.Server(config)


def bind_socket(host: str, port: int) -> socket.socket:
    """A listening TCP socket (port 0: a free one), so the port is known before serving."""
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    # proto=IPPROTO_TCP matters: asyncio turns Nagle off only on sockets that say TCP,
    # and Nagle with the client's delayed ACK adds 40 ms to every response.
    sock = socket.socket(family, socket.SOCK_STREAM, socket.IPPROTO_TCP)
    try:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.bind((host, port))
        sock.listen(2048)
    except OSError:
        sock.close()
        raise
    return sock


@contextmanager
def serving(app: ASGIApp, host: str = "127.0.0.1") -> Iterator[str]:
    """Run ``app`` on a free port in a background thread for a ``with`` block; yields its URL.

    For tests and benchmarks: the same server ``serve`` runs, stopped on exit.
    """
    sock = bind_socket(host, 0)
    server = make_server(app, host)
    thread = threading.Thread(target=server.run, kwargs={"sockets": [sock]}, daemon=True,
                              name="phasewatch-serving")
    thread.start()
    try:
        yield f"http://{host}:{sock.getsockname()[1]}"
    finally:
        server.should_exit = True
        thread.join(30)
        sock.close()


def serve(config: Config, db_path: str | Path, host: str, port: int) -> None:
    """Run the service with the real clock until interrupted, ticking the periodic jobs."""
    sock = bind_socket(host, port)  # first: a port in use fails before the store is opened
    pw = Phasewatch.build(config, db_path=db_path, clock=SystemClock())
    tune_gc()
    close = once(pw.close)
    token = resolve_secret(config.server.token_env)
    if token is None:
        log.warning("event=serve.auth_disabled token_env=%s", config.server.token_env)
    try:
        app = create_app(pw, token, tick_interval_s=config.server.tick_interval_s,
                         on_shutdown=close)
        log.info("event=serve.started host=%s port=%d db=%s auth=%s push_auth=%s jobs=%d", host,
                 sock.getsockname()[1], db_path, "on" if token else "off",
                 "oidc" if config.server.pubsub_push else "bearer" if token else "off", len(pw.jobs))
        make_server(app, host, port).run(sockets=[sock])
    finally:
        close()  # when the lifespan never ran
        sock.close()


def tune_gc() -> None:
    """Keep the cyclic garbage collector from pausing the event loop.

    What is alive at start (modules, config, the state rebuilt from the store) lives as long
    as the process: frozen, it is left out of every full collection, which otherwise paused
    the loop for up to ~140 ms. A young generation of 20,000 objects instead of 700 makes
    the collections rarer (a young one scans ~20,000 objects, about a millisecond).
    Measured by bench/actuator.py at an even pace: p99 25-49 ms -> 16 ms, max ~140 -> 24 ms.
    """
    gc.freeze()
    gc.set_threshold(20_000, 10, 10)


def once(fn: Callable[[], None]) -> Callable[[], None]:
    """``fn`` that runs at most once, however often (and from whichever thread) it is called."""
    lock = threading.Lock()
    done = False

    def call() -> None:
        nonlocal done
        with lock:
            if not done:
                done = True
                fn()

    return call


@click.command("serve")
@click.option("--config", "config_path", type=click.Path(dir_okay=False),
              help="Pipeline config (default: the bundled example).")
@click.option("--db", "db_path", default="phasewatch.db", show_default=True,
              help="SQLite file of the event store.")
@click.option("--host", default="127.0.0.1", show_default=True, help="Address to bind.")
@click.option("--port", type=click.IntRange(0, 65535), default=8080, show_default=True,
              envvar="PORT", help="Port to bind ($PORT when the option is not given).")
def serve_command(config_path: str | None, db_path: str, host: str, port: int) -> None:
    """Run the HTTP service: ingest events, serve metrics, run the periodic jobs."""
    logging.basicConfig(level=logging.INFO, format="%(asctime)s level=%(levelname)s "
                        "logger=%(name)s %(message)s")
    logging.getLogger("httpx").setLevel(logging.WARNING)  # one line per probe and trigger is noise
    try:
        config = apply_environment(load_config(config_path))
        serve(config, db_path, host, port)
    except KeyboardInterrupt:  # Ctrl-C: uvicorn has shut down cleanly and re-raised it
        log.info("event=serve.stopped signal=SIGINT")
    except (ConfigError, StoreError) as exc:
        click.echo(str(exc), err=True)
        raise SystemExit(2) from None
    except OSError as exc:  # the address: in use, not local, not permitted
        click.echo(f"cannot serve on {host}:{port}: {exc.strerror or exc}", err=True)
        raise SystemExit(2) from None
