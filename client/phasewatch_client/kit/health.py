"""Health endpoints for the pipeline's services: ``/health`` and ``/ready`` in application/health+json.

The core is framework-neutral: ``HealthKit.health()`` / ``ready()`` return ``(status_code,
body)``. ``/health`` is liveness (the process answers; only checks marked ``liveness`` run);
``/ready`` runs every dependency check. Bodies follow the health+json draft
(draft-inadarei-api-health-check): ``status`` pass / warn / fail, ``checks`` keyed
``component:measurement`` with ``componentType``, ``observedValue``, ``observedUnit``,
``status``, ``time`` and ``output``; plus the identity phasewatch's health gate compares:
``service`` (and ``serviceId``, ``version``, ``releaseId``) — a service answering 200 while
running another service's code is caught by its name.

Checks run concurrently, each in a daemon thread with its own timeout: a check that does not
answer in time fails, and is not started again while it still hangs (no thread pile-up, and
a hung check never blocks interpreter exit). A failing ``required`` check fails the service
(HTTP 503); any other failure or warning makes it ``warn`` (HTTP 200).

Adapters: ``wsgi_middleware`` (Flask: ``app.wsgi_app = wsgi_middleware(kit, app.wsgi_app)``)
and ``starlette_routes`` (Starlette imported only there).
"""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from enum import StrEnum
from http import HTTPStatus
from typing import TYPE_CHECKING, Any

from phasewatch_client.clock import Clock, SystemClock

if TYPE_CHECKING:
    from wsgiref.types import StartResponse, WSGIApplication, WSGIEnvironment

    from starlette.routing import Route

HEALTH_JSON = "application/health+json"
HEALTH_PATHS = ("/health",)
READY_PATHS = ("/ready", "/health/ready")
OUTPUT_LIMIT = 300


class Status(StrEnum):
    PASS = "pass"
    WARN = "warn"
    FAIL = "fail"


@dataclass(frozen=True)
class Observation:
    """What a check saw; a probe may also return True / None (pass) or False (fail)."""

    status: Status = Status.PASS
    observed_value: Any = None
    observed_unit: str | None = None
    output: str | None = None


Probe = Callable[[], "Observation | bool | None"]


@dataclass(frozen=True)
class Dependency:
    """A check: ``name`` is the ``component:measurement`` key, e.g. ``bigquery:query``."""

    name: str
    probe: Probe
    component_type: str = "component"  # the draft's values: component, datastore, system
    timeout_s: float = 2.0
    required: bool = True
    liveness: bool = False

    def __post_init__(self) -> None:
        if self.timeout_s <= 0:
            raise ValueError(f"timeout_s: must be > 0 (got {self.timeout_s}) for check {self.name!r}")


@dataclass(frozen=True)
class Identity:
    """Who answers: ``service`` is the name the health gate expects; version / release say which code."""

    service: str
    version: str | None = None
    release_id: str | None = None
    description: str | None = None

    def fields(self) -> dict[str, str]:
        out = {"service": self.service, "serviceId": self.service}
        for key, value in (("version", self.version), ("releaseId", self.release_id),
                           ("description", self.description)):
            if value is not None:
                out[key] = value
        return out


@dataclass
class _Run:
    """One execution of a check in its own daemon thread."""

    dependency: Dependency
    started: float = field(default_factory=time.monotonic)
    done: threading.Event = field(default_factory=threading.Event)
    observation: Observation | None = None
    elapsed_ms: float = 0.0

    def __call__(self) -> None:
        t0 = time.perf_counter()
        try:
            self.observation = _normalise(self.dependency.probe())
        except Exception as exc:  # a check's failure is its result, never the endpoint's
            self.observation = Observation(Status.FAIL, output=_short(f"{type(exc).__name__}: {exc}"))
        finally:
            self.elapsed_ms = (time.perf_counter() - t0) * 1000
            self.done.set()


def _normalise(result: Observation | bool | None) -> Observation:
    if isinstance(result, Observation):
        return result
    return Observation(Status.FAIL if result is False else Status.PASS)


def _short(text: str) -> str:
    return text if len(text) <= OUTPUT_LIMIT else text[: OUTPUT_LIMIT - 1] + "…"


class HealthKit:
    """Answers ``/health`` and ``/ready`` for one service."""

    def __init__(self, identity: Identity, dependencies: Sequence[Dependency] = (),
                 *, clock: Clock | None = None) -> None:
        names = [d.name for d in dependencies]
        if len(set(names)) != len(names):
            raise ValueError(f"dependencies: check names must be unique, got {names}")
        self.identity = identity
        self.dependencies = tuple(dependencies)
        self.clock = clock or SystemClock()
        self._lock = threading.Lock()
        self._in_flight: dict[str, _Run] = {}

    def health(self) -> tuple[int, dict[str, Any]]:
        """Liveness: identity, and the checks marked ``liveness``."""
        return self._answer([d for d in self.dependencies if d.liveness])

    def ready(self) -> tuple[int, dict[str, Any]]:
        """Readiness: identity and every check."""
        return self._answer(self.dependencies)

    def respond(self, path: str, health_paths: Iterable[str] = HEALTH_PATHS,
                ready_paths: Iterable[str] = READY_PATHS) -> tuple[int, dict[str, Any]] | None:
        """The answer for ``path``, or None when it is not a health path."""
        if path in ready_paths:
            return self.ready()
        if path in health_paths:
            return self.health()
        return None

    def _answer(self, dependencies: Sequence[Dependency]) -> tuple[int, dict[str, Any]]:
        runs = [self._start(d) for d in dependencies]  # all start now and run concurrently
        results = []
        for run in runs:
            remaining = run.started + run.dependency.timeout_s - time.monotonic()
            results.append((run.dependency, self._check_item(run, run.done.wait(max(0.0, remaining)))))
        status = aggregate((Status(item["status"]), d.required) for d, item in results)
        body: dict[str, Any] = {"status": status.value, **self.identity.fields()}
        if status is not Status.PASS:
            body["output"] = "not passing: " + ", ".join(
                d.name for d, item in results if item["status"] != Status.PASS
            )
        if results:
            body["checks"] = {d.name: [item] for d, item in results}
        return (503 if status is Status.FAIL else 200), body

    def _start(self, dependency: Dependency) -> _Run:
        with self._lock:
            previous = self._in_flight.get(dependency.name)
            if previous is not None and not previous.done.is_set():
                return previous  # still hanging: report it, do not start another thread
            run = _Run(dependency)
            self._in_flight[dependency.name] = run
        threading.Thread(target=run, name=f"health-{dependency.name}", daemon=True).start()
        return run

    def _check_item(self, run: _Run, finished: bool) -> dict[str, Any]:
        d = run.dependency
        if finished and run.observation is not None:
            obs = run.observation
            if obs.observed_value is None:  # nothing observed: report the response time
                obs = Observation(obs.status, round(run.elapsed_ms, 3), "ms", obs.output)
        else:
            waited = time.monotonic() - run.started
            obs = Observation(Status.FAIL, round(waited * 1000, 3), "ms",
                              f"timed out after {d.timeout_s:g} s")
        item: dict[str, Any] = {
            "componentType": d.component_type,
            "status": obs.status.value,
            "observedValue": obs.observed_value,
            "observedUnit": obs.observed_unit,
            "required": d.required,
            "time": self.clock.now().isoformat(),
        }
        if obs.output:
            item["output"] = obs.output
        return {k: v for k, v in item.items() if v is not None}


def aggregate(results: Iterable[tuple[Status, bool]]) -> Status:
    """fail if a required check fails; warn if any check is not pass; else pass."""
    overall = Status.PASS
    for status, required in results:
        if status is Status.FAIL and required:
            return Status.FAIL
        if status is not Status.PASS:
            overall = Status.WARN
    return overall


def encode(body: dict[str, Any]) -> bytes:
    """The body as JSON bytes (observed values that JSON cannot hold become strings)."""
    return json.dumps(body, default=str, separators=(",", ":")).encode()


# --- adapters --------------------------------------------------------------------------------

def wsgi_middleware(kit: HealthKit, app: WSGIApplication | None = None, *,
                    health_paths: Iterable[str] = HEALTH_PATHS,
                    ready_paths: Iterable[str] = READY_PATHS) -> WSGIApplication:
    """Serve the health paths in front of ``app`` (404 for other paths when ``app`` is None)."""
    health_paths, ready_paths = tuple(health_paths), tuple(ready_paths)

    def middleware(environ: WSGIEnvironment, start_response: StartResponse) -> Iterable[bytes]:
        path = environ.get("PATH_INFO", "") or "/"
        if path not in health_paths and path not in ready_paths:
            if app is not None:
                return app(environ, start_response)
            start_response("404 Not Found", [("Content-Type", "text/plain"), ("Content-Length", "9")])
            return [b"not found"]
        method = environ.get("REQUEST_METHOD", "GET")
        if method not in ("GET", "HEAD"):
            start_response("405 Method Not Allowed", [("Allow", "GET, HEAD"), ("Content-Length", "0")])
            return [b""]
        answer = kit.respond(path, health_paths, ready_paths)
        assert answer is not None  # the path was checked above
        code, body = answer
        payload = encode(body)
        start_response(f"{code} {HTTPStatus(code).phrase}", [
            ("Content-Type", HEALTH_JSON), ("Cache-Control", "no-store"),
            ("Content-Length", str(len(payload))),
        ])
        return [b"" if method == "HEAD" else payload]

    return middleware


def starlette_routes(kit: HealthKit, *, health_paths: Iterable[str] = HEALTH_PATHS,
                     ready_paths: Iterable[str] = READY_PATHS) -> list[Route]:
    """Starlette routes for the health paths (checks run in the threadpool, not on the loop)."""
    from starlette.concurrency import run_in_threadpool
    from starlette.requests import Request
    from starlette.responses import Response
    from starlette.routing import Route

    def endpoint(answer: Callable[[], tuple[int, dict[str, Any]]]) -> Callable[[Request], Any]:
        async def handle(request: Request) -> Response:
            code, body = await run_in_threadpool(answer)
            return Response(encode(body), code, media_type=HEALTH_JSON,
                            headers={"Cache-Control": "no-store"})
        return handle

    routes = [Route(p, endpoint(kit.health), methods=["GET", "HEAD"]) for p in health_paths]
    routes += [Route(p, endpoint(kit.ready), methods=["GET", "HEAD"]) for p in ready_paths]
    return routes
