"""The API handlers of one phasewatch instance (DESIGN §4), each with its OpenAPI description.

Every response to bad input is a 4xx JSON error counted in
``phasewatch_events_rejected_total{reason}``; store failures answer 503 so that senders
(Pub/Sub above all) retry. Ingest runs on the event loop thread: it is short and CPU-bound,
and a thread hop costs more than it saves (see ``bench/ingest.py``); it also keeps every
write to run state on one thread, so reads of that state need no lock.
"""

from __future__ import annotations

import functools
import json
import logging
import re
import threading
from collections.abc import Callable
from contextlib import suppress
from datetime import date
from importlib import metadata
from typing import Any, TypeVar

from starlette.concurrency import run_in_threadpool
from starlette.requests import ClientDisconnect, Request
from starlette.responses import HTMLResponse, JSONResponse, Response

from alerts.acks import SIGNATURE_HEADER, apply, parse, verify, webhook_secrets
from alerts.api import create_silence, expire_silence
from alerts.errors import UnknownSilence
from monitor.actuator.api import list_actions, manual_action
from monitor.actuator.deploys import list_deploys, post_deploy
from monitor.actuator.engine import Actuator
from monitor.app.http.openapi import (
    CHECK,
    EVENT,
    HEALTH_JSON,
    OUTCOME,
    Endpoint,
    content,
    openapi_document,
    query,
    route,
)
from monitor.app.http.readiness import overall_status, readiness_checks
from monitor.app.http.responses import error_body
from monitor.app.page import dashboard_data, render_dashboard
from monitor.app.phasewatch import JobRun, Phasewatch
from monitor.app.reads import alerts_body, anomalies_body, runs_body, slos_body
from monitor.app.redrive import MAX_ID, parse_request, replay
from monitor.checks.api import list_checks, post_checks
from monitor.config import resolve_secret
from monitor.errors import (
    CertsUnavailable,
    EventError,
    PayloadTooLarge,
    Problem,
)
from monitor.pubsub_auth import PushVerifier
from monitor.scheduler.attempt import parse_outcomes
from monitor.store.base import DeadLetter
from monitor.validation import query_int, render_value

log = logging.getLogger(__name__)

DATE_PATTERN = re.compile(r"\d{4}-\d{2}-\d{2}")
E = TypeVar("E", bound=EventError)


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
        server = pw.config.server
        # Reads open without the token: these paths, or every read (None) with read_auth: public.
        self.public_reads = None if server.read_auth == "public" else frozenset(server.public_paths)
        # PagerDuty's webhook deliveries are signed with a subscription's secret, not our token.
        self.pd_secrets, unset = webhook_secrets(pw.config.alerting.channels, resolve_secret)
        for name in unset:
            log.error("event=pagerduty_webhook.unavailable reason=%r",
                      f"environment variable {name} is not set: deliveries are refused")
        self.pd_webhook = bool(self.pd_secrets or unset)

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
        try:
            async for chunk in request.stream():
                body += chunk
                if len(body) > self.max_body:
                    raise self._too_large()
        except ClientDisconnect:  # gone, or cut by the body timeout: nothing to answer
            problem = Problem("body", "the client closed the connection before the body ended")
            raise self.reject(EventError("client_disconnected", [problem], status_code=400)) from None
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

    @route("GET", "/v1/slos",
        summary="Every SLO's status: SLI, budget in runs or events, burn rates",
        responses={"200": "SLO statuses", "400": "bad history flag"},
        parameters=(query("history", "true: with each SLO's good and total units per local "
                          "day of its window", enum=["true", "false"]),),
    )
    async def slos(self, request: Request) -> Response:
        raw = request.query_params.get("history", "false")
        if raw not in ("true", "false"):
            problem = Problem("history", "allowed: true, false", render_value(raw))
            raise self.reject(EventError("bad_query", [problem], status_code=400))
        return JSONResponse(await self._read(slos_body, self.pw, raw == "true"))

    @route("GET", "/v1/anomalies",
        summary="Recent duration and lateness outliers, newest first",
        responses={"200": "anomalies with expected range and score"},
    )
    async def anomalies(self, request: Request) -> Response:
        return JSONResponse(await self._read(anomalies_body, self.pw))

    @route("GET", "/v1/alerts",
        summary="Active alerts (firing, silenced or inhibited) and silences",
        responses={"200": "alerts and silences"},
    )
    async def alerts(self, request: Request) -> Response:
        return JSONResponse(await self._read(alerts_body, self.pw))

    @route("POST", "/v1/silences",
        summary="Create a silence: matchers, author, comment, expiry",
        responses={"201": "the silence", "422": "invalid silence"},
        body={"required": True, **content({"type": "object"})},
    )
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
        except RecursionError:
            problem = Problem("body", "nested too deeply; allowed: a JSON object of a silence")
            raise self.reject(EventError("invalid_json", [problem], status_code=400)) from None
        if not isinstance(body, dict):
            problem = Problem("body", "must be a JSON object")
            raise self.reject(EventError("schema", [problem], status_code=400))
        return body

    @route("DELETE", "/v1/silences/{silence_id}",
        summary="Expire a silence now",
        responses={"200": "expired", "404": "unknown silence"},
        parameters=({"name": "silence_id", "in": "path", "required": True,
                     "schema": {"type": "string"}},),
    )
    async def delete_silence(self, request: Request) -> Response:
        ident = request.path_params["silence_id"]
        try:
            result = await self._read(expire_silence, self.pw.alerting, ident, self.pw.clock.now())
        except UnknownSilence:
            problem = Problem("silence_id", "no silence has this id", render_value(ident))
            raise self.reject(EventError("unknown_silence", [problem], status_code=404)) from None
        return JSONResponse(result)

    @route("GET", "/v1/actions",
        summary="Audit log of automated and manual actions and decisions not taken",
        responses={"200": "actions, newest first"},
    )
    async def actions(self, request: Request) -> Response:
        actuator = self._actuator()
        body = await self._read(list_actions, actuator, dict(request.query_params))
        return JSONResponse(body)

    @route("POST", "/v1/actions/trigger",
        summary="Manual trigger, skip or retry (audited, counted as a manual intervention)",
        responses={"200": "what was done", "422": "invalid action"},
        body={"required": True, **content({"type": "object"})},
    )
    async def post_action(self, request: Request) -> Response:
        actuator = self._actuator()
        body = await self.read_body(request)
        actor = request.headers.get("x-phasewatch-actor") or "api"
        result = await self._read(functools.partial(manual_action, actor=actor), actuator, body)
        return JSONResponse(result, 200)

    @route("GET", "/v1/deploys",
        summary="Deploys phasewatch knows of (notified, replayed or seen in health bodies), newest first",
        responses={"200": "deploys", "400": "bad filter"},
        parameters=(query("service", "a configured service"),
                    query("limit", "1 to 1000 (default 100)", pattern="^[0-9]+$")),
    )
    async def deploys(self, request: Request) -> Response:
        deploys = self._actuator().ctx.health.deploys
        return JSONResponse(await self._read(list_deploys, deploys, dict(request.query_params)))

    @route("POST", "/v1/deploys",
        summary="A deploy of a service (it labels a following unhealthy streak a deploy regression)",
        responses={"201": "the deploy as stored", "404": "unknown service",
                   "422": "invalid deploy"},
        body={"required": True, **content({"type": "object", "required": ["service"], "properties": {
            "service": {"type": "string"}, "version": {"type": "string"},
            "timestamp": {"type": "string", "format": "date-time"}}})},
    )
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

    def _backfill(self, request: Request) -> bool:
        """The request's backfill flag (header or query); anything but true/false is a 400."""
        found = [("header X-Phasewatch-Backfill", request.headers.get("x-phasewatch-backfill")),
                 ("query backfill", request.query_params.get("backfill"))]
        flags = set()
        for where, value in found:
            if value is None:
                continue
            if value.strip().lower() not in ("true", "false"):
                raise self.reject(EventError("bad_query", [
                    Problem(where, "allowed: true, false", render_value(value))], status_code=400))
            flags.add(value.strip().lower() == "true")
        if len(flags) > 1:
            raise self.reject(EventError("bad_query", [Problem(
                "backfill", "the header and the query parameter disagree; send one")],
                status_code=400))
        return flags == {True}

    def _unavailable(self, what: str) -> JSONResponse:
        log.exception("event=%s.failed", what)
        self.pw.collector.reject(EventError("unavailable"))
        body = error_body("storage unavailable; nothing was stored, retry", reason="unavailable")
        return JSONResponse(body, 503, {"Retry-After": "1"})

    @route("POST", "/v1/events",
        summary="Ingest one event, a JSON array of events, or NDJSON (all or nothing)",
        responses={"202": "accepted and duplicate counts", "4XX": "rejected, nothing stored",
                   "503": "storage unavailable, retry"},
        body={"required": True, "content": {
            "application/json": {"schema": {"oneOf": [
                EVENT, {"type": "array", "items": EVENT, "minItems": 1}]}},
            "application/x-ndjson": {"schema": {"type": "string"}}}},
        parameters=(
            {"name": "X-Phasewatch-Backfill", "in": "header", "required": False,
             "description": "true: imported history, stored and learned from but never acted "
             "or alerted on", "schema": {"type": "string", "enum": ["true", "false"]}},
            query("backfill", "as the X-Phasewatch-Backfill header", enum=["true", "false"]),
        ),
    )
    async def post_events(self, request: Request) -> Response:
        backfill = self._backfill(request)
        body = await self.read_body(request)
        try:
            ingest = functools.partial(self.pw.collector.ingest_body, backfill=backfill)
            result = await self._call(ingest, body, request.headers.get("content-type"))
        except EventError:
            raise  # counted by the collector
        except Exception:
            return self._unavailable("ingest")
        return JSONResponse(result.as_dict(), 202)

    @route("POST", "/v1/checks",
        summary="Data check results: one, a JSON array, or NDJSON (all or nothing); a repeat of "
                "a check's name and time is ignored",
        responses={"202": "accepted and duplicate counts", "4XX": "rejected, nothing stored",
                   "503": "storage unavailable, retry"},
        body={"required": True, "content": {
            "application/json": {"schema": {"oneOf": [
                CHECK, {"type": "array", "items": CHECK, "minItems": 1}]}},
            "application/x-ndjson": {"schema": {"type": "string"}}}},
    )
    async def post_checks(self, request: Request) -> Response:
        body = await self.read_body(request)
        record = functools.partial(post_checks, self.pw.checks, body,
                                   request.headers.get("content-type"))
        try:
            result = await self._call(lambda: record(self.pw.clock.now()))
        except EventError as exc:
            raise self.reject(exc) from None
        except Exception:
            return self._unavailable("checks")
        return JSONResponse(result, 202)

    @route("GET", "/v1/checks",
        summary="The latest result of every data check (with its missing entities) and each "
                "configured check's alert level",
        responses={"200": "checks"},
    )
    async def checks(self, request: Request) -> Response:
        return JSONResponse(await self._read(list_checks, self.pw.checks))

    @route("POST", "/v1/pubsub/push",
        summary="Pub/Sub push endpoint; poison messages are acked and dead-lettered",
        responses={"200": "acked: stored, duplicate, ignored or dead_lettered",
                   "400": "malformed envelope",
                   "401": "missing or invalid Google OIDC token (server.pubsub_push), or bearer token",
                   "403": "valid OIDC token of a service account not listed",
                   "503": "storage or Google's signing certificates unavailable, redeliver"},
        body={"required": True, **content({"$ref": "#/components/schemas/PushEnvelope"})},
    )
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

    @route("POST", "/v1/scheduler-outcomes",
        summary="Scheduler job attempts (one or a JSON array, all or nothing); Cloud Scheduler's "
        "log entries also arrive through /v1/pubsub/push",
        responses={"202": "accepted and duplicate counts",
                   "4XX": "rejected (unknown job, bad field), nothing stored",
                   "503": "storage unavailable, retry"},
        body={"required": True, "content": {"application/json": {"schema": {"oneOf": [
            OUTCOME, {"type": "array", "items": OUTCOME, "minItems": 1, "maxItems": 1000}]}}}},
    )
    async def post_scheduler_outcomes(self, request: Request) -> Response:
        body = await self.read_body(request)
        watch = self.pw.scheduler
        try:
            attempts = parse_outcomes(body)
            watch.check_known(attempts, "outcomes" if body.lstrip()[:1] == b"[" else "")
        except EventError as exc:
            raise self.reject(exc) from None
        try:
            recorded = await self._call(watch.record, attempts)
        except Exception:
            return self._unavailable("scheduler_outcomes")
        return JSONResponse(recorded.as_dict(), 202)

    @route("GET", "/v1/scheduler-outcomes",
        summary="Each configured scheduler job's state, the latest attempts (newest first), and "
        "jobs heard of but not configured",
        responses={"200": "jobs, attempts and unknown jobs", "400": "bad filter"},
        parameters=(query("job", "only this job's attempts"),
                    query("limit", "1 to 1000 attempts (default 100)", pattern="^[0-9]+$")),
    )
    async def scheduler_outcomes(self, request: Request) -> Response:
        raw = request.query_params.get("limit", "100")
        if not raw.isdigit() or not 1 <= int(raw) <= 1000:
            problem = Problem("limit", "must be an integer from 1 to 1000", render_value(raw))
            raise self.reject(EventError("bad_query", [problem], status_code=400))
        job = request.query_params.get("job") or None
        body = await self._read(self.pw.scheduler.status, int(raw), job)
        return JSONResponse(body)

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

    @route("POST", "/v1/pagerduty/webhook",
        summary="PagerDuty V3 webhook: an incident acknowledged (or resolved there while the alert "
        "still fires) stops the alert's reminders; unacknowledged resumes them",
        responses={"200": "what the delivery did: acknowledged, unacknowledged or ignored",
                   "400": "not JSON", "401": "missing or wrong X-PagerDuty-Signature",
                   "403": "no webhook secret set on a pagerduty channel",
                   "422": "a field of the event wrong", "503": "storage unavailable, redeliver"},
        body={"required": True, **content({"type": "object"})},
    )
    async def post_pagerduty_webhook(self, request: Request) -> Response:
        if not self.pd_secrets:  # fail closed: nothing to verify a delivery with
            problem = Problem("channels[].webhook_secret_env", "no PagerDuty webhook secret is set: "
                              "name the variable holding the subscription's signing secret on a "
                              "pagerduty channel, and set it")
            raise self.reject(EventError("pagerduty_webhook_off", [problem], status_code=403))
        body = await self.read_body(request)
        if not verify(body, request.headers.get(SIGNATURE_HEADER), self.pd_secrets):
            problem = Problem("X-PagerDuty-Signature", "missing, or not this body's signature by a "
                              "configured secret; expected: v1=<hex HMAC-SHA256 of the body>")
            raise self.reject(EventError("unauthorized", [problem], status_code=401))
        try:
            payload = parse(body)
        except EventError as exc:
            raise self.reject(exc) from None
        try:
            applied = await self._call(apply, self.pw.alerting.router, payload)
        except Exception:
            return self._unavailable("pagerduty_webhook")
        log.info("event=pagerduty_webhook.received type=%s outcome=%s key=%s",
                 payload.event.event_type, applied.outcome, applied.key)
        return JSONResponse(applied.as_dict(), 200)

    @route("GET", "/metrics",
        summary="Prometheus metrics (OpenMetrics when the Accept header asks for it)",
        responses={"200": "metrics text"},
    )
    async def metrics(self, request: Request) -> Response:
        text, content_type = self.pw.metrics.exposition(request.headers.get("accept"))
        return Response(text, headers={"Content-Type": content_type})

    @route("GET", "/health",
        summary="Liveness", responses={"200": "alive"},
    )
    async def health(self, request: Request) -> Response:
        body = {"status": "pass", "version": self.version, "description": "phasewatch liveness"}
        return JSONResponse(body, media_type=HEALTH_JSON)

    @route("GET", "/ready",
        summary="Readiness with per-check details",
        responses={"200": "ready (pass or warn)", "503": "a required check fails"},
    )
    async def ready(self, request: Request) -> Response:
        checks = await run_in_threadpool(readiness_checks, self.pw)
        status = overall_status(checks)
        body = {"status": status, "version": self.version, "checks": checks}
        return JSONResponse(body, 503 if status == "fail" else 200, media_type=HEALTH_JSON)

    @route("GET", "/v1/runs",
        summary="Tracked run state, newest run date first",
        responses={"200": "runs", "400": "bad filter"},
        parameters=(query("pipeline", "a configured pipeline id"),
                    query("run_date", "YYYY-MM-DD", format="date")),
    )
    async def runs(self, request: Request) -> Response:
        pipeline, run_date = self._run_filters(request)
        return JSONResponse(runs_body(self.pw, pipeline, run_date))

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

    @route("GET", "/v1/dead-letters",
        summary="Messages that can never be valid events, newest first",
        responses={"200": "dead letters", "400": "bad limit"},
        parameters=(query("limit", "1 to 1000 (default 100)", pattern="^[0-9]+$"),),
    )
    async def dead_letters(self, request: Request) -> Response:
        problems: list[Problem] = []
        limit = query_int(request.query_params, "limit", problems, default=100, low=1, high=1000)
        if problems:
            raise self.reject(EventError("bad_query", problems, status_code=400))
        letters = await run_in_threadpool(self.pw.store.dead_letters, limit)
        return JSONResponse({"dead_letters": [dead_letter_dict(d) for d in letters]})

    @route("POST", "/v1/dead-letters/replay",
        summary="Redrive dead letters through the Pub/Sub push path under the config of now: "
                "a letter stored or a duplicate is deleted, one still invalid is kept and reported",
        responses={"200": "replayed and duplicate counts, the letters still invalid, and how many "
                          "the selection still finds", "400": "not JSON",
                   "422": "a field of the selection wrong", "503": "storage unavailable, retry"},
        body={"required": False, **content({"type": "object", "additionalProperties": False,
            "properties": {
                "ids": {"type": "array", "minItems": 1, "maxItems": 1000, "items": {
                    "type": "integer", "minimum": 1, "maximum": MAX_ID}},
                "reason": {"type": "string", "minLength": 1, "maxLength": 100},
                "limit": {"type": "integer", "minimum": 1, "maximum": 1000},
                "after": {"type": "integer", "minimum": 0, "maximum": MAX_ID}}})},
    )
    async def replay_dead_letters(self, request: Request) -> Response:
        raw = await self.read_body(request)
        try:
            selection = parse_request(raw)
        except EventError as exc:
            raise self.reject(exc) from None
        try:
            body = await self._call(replay, self.pw.collector, self.pw.store, selection)
        except Exception:
            return self._unavailable("dead_letters_replay")
        return JSONResponse(body, 200)

    @route("POST", "/v1/jobs/{name}",
        summary="Run a periodic job now (Cloud Scheduler target)",
        responses={"200": "the job ran (or was skipped: another instance sharing the store "
                          "leads and runs it)", "404": "unknown job", "500": "the job failed"},
        parameters=({"name": "name", "in": "path", "required": True,
                     "schema": {"type": "string"}},),
    )
    async def run_job(self, request: Request) -> Response:
        name = request.path_params["name"]
        if name not in self.pw.jobs:
            allowed = ", ".join(sorted(self.pw.jobs)) or "none registered"
            problem = Problem("name", f"unknown job; allowed: {allowed}", render_value(name))
            raise self.reject(EventError("unknown_job", [problem], status_code=404))
        record = await run_in_threadpool(self.run_job_now, name)
        if record is None:  # another instance leads: the job is its to run
            return JSONResponse({"job": name, "status": "skipped",
                                 "leader": self.pw.cluster.leader})
        body = job_dict(record)
        return JSONResponse(body, 500 if record.last_error else 200)

    def run_job_now(self, name: str) -> JobRun | None:
        """Run one job under the jobs lock (blocking: call from a worker thread); None when
        another instance sharing the store leads and the job is not one each instance runs."""
        self.pw.cluster.heartbeat()  # a leader that stopped renewing is taken over here
        if not self.pw.may_run(name):
            return None
        with self.jobs_lock:
            self.pw.follow()
            return self.pw.run_job(name)

    def tick(self) -> None:
        """Run every job once under the jobs lock (blocking: call from a worker thread)."""
        with self.jobs_lock:
            self.pw.tick()

    def follow(self) -> int:
        """Fold in the events other instances stored (blocking: call from a worker thread)."""
        with self.jobs_lock:
            return self.pw.follow()

    @route("GET", "/dashboard",
        summary="The dashboard page: runs, SLOs, durations, alerts and actions (HTML, no script)",
        responses={"200": "the page, built from the same reads as the JSON endpoints"},
        media="text/html",
    )
    async def dashboard(self, request: Request) -> Response:
        data = await self._read(dashboard_data, self.pw)
        page = await run_in_threadpool(render_dashboard, data, self.pw.config, version=self.version)
        return HTMLResponse(page.html, headers={
            "Content-Security-Policy": page.csp, "X-Content-Type-Options": "nosniff",
            "Referrer-Policy": "no-referrer", "Cache-Control": "no-store"})

    @route("GET", "/",
        summary="The dashboard page (as /dashboard)", responses={"200": "the page"},
        media="text/html",
    )
    async def index(self, request: Request) -> Response:
        return await self.dashboard(request)

    @route("GET", "/openapi.json",
        summary="This document", responses={"200": "OpenAPI 3.1 document"},
    )
    async def openapi(self, request: Request) -> Response:
        return JSONResponse(openapi_document(self.endpoints(), self.version, self.public_reads))

    def endpoints(self) -> list[Endpoint]:
        """The route table: every handler marked with ``@route``, in the order they are defined."""
        return [Endpoint(fn.route, getattr(self, name))
                for name, fn in vars(type(self)).items() if hasattr(fn, "route")]



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


