"""The HTTP server: the Starlette app, uvicorn, the scheduler loop and ``phasewatch serve``.

The only package that imports Starlette and uvicorn is ``monitor.app.http``.
"""

from __future__ import annotations

import asyncio
import gc
import logging
import resource
import socket
import threading
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from contextlib import asynccontextmanager, contextmanager, suppress

# The actuator's HTTP sink sends first attempts with aiohttp, which it imports when it first
# sends (monitor.lazy: the CLI's reading commands never load it); the service imports it at
# start, so that the first trigger does not wait for it and tune_gc freezes it.
import aiohttp  # noqa: F401
import uvicorn
from opentelemetry.instrumentation.asgi import OpenTelemetryMiddleware
from starlette.applications import Starlette
from starlette.concurrency import run_in_threadpool
from starlette.exceptions import HTTPException
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route
from starlette.types import ASGIApp

from monitor.app.follower import Follower
from monitor.app.http.api import Api
from monitor.app.http.auth import BearerAuth
from monitor.app.http.connections import ConnectionLimits, Cut, bounded_protocol
from monitor.app.http.responses import error_body, event_error_response
from monitor.app.phasewatch import Phasewatch
from monitor.clock import SystemClock
from monitor.config import Config, resolve_secret
from monitor.errors import (
    EventError,
    Problem,
)
from monitor.store.postgres import PostgresStore
from monitor.store.registry import redacted
from monitor.validation import render_value

log = logging.getLogger(__name__)
UNTRACED_PATHS = "/health,/ready,/metrics"  # probes and scrapes: a span each is noise



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
    """The Starlette app for ``pw``; requests need ``token`` when it is set, reads too unless
    ``server.read_auth`` is ``public`` (``server.public_paths`` are always open).

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
        # Before the first request: queue what the alerts restored from the store are due to
        # tell, or an alert fired just before a crash and cleared by the first event after
        # the restart is never told (bench/crash.py).
        await run_in_threadpool(pw.alerting.router.tick, pw.clock.now())
        task = None
        if tick_interval_s is not None:
            task = asyncio.create_task(run_scheduler(api.tick, tick_interval_s))
        follower = following(pw, api)
        if follower is not None:
            follower.start()
        try:
            yield
        finally:
            if follower is not None:
                await run_in_threadpool(follower.stop)
            if task is not None:
                task.cancel()
                with suppress(asyncio.CancelledError):
                    await task
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
        # A PagerDuty webhook is authenticated by its signature (the handler fails closed).
        exempt = frozenset(
            ({("POST", "/v1/pubsub/push")} if api.push_verifier is not None else set())
            | ({("POST", "/v1/pagerduty/webhook")} if api.pd_webhook else set()))
        app.add_middleware(BearerAuth, token=token.strip(), on_reject=pw.collector.reject,
                           exempt=exempt, public_reads=api.public_reads)
    if pw.tracer.provider is not None:  # outermost: a span per request, logs inside it correlate
        app.add_middleware(OpenTelemetryMiddleware, tracer_provider=pw.tracer.provider,
                           excluded_urls=UNTRACED_PATHS, exclude_spans=["receive", "send"])
    app.state.api = api
    return app


def following(pw: Phasewatch, api: Api) -> Follower | None:
    """The thread that keeps ``pw`` up with the processes sharing its store (None: it has none)."""
    if not pw.store.shared:
        return None
    options = pw.config.store
    if isinstance(pw.store, PostgresStore):
        listener = pw.store.listener()
        return Follower(api.follow, pw.cluster.heartbeat, listener.wait,
                        interval_s=options.follow_interval_s, heartbeat_s=options.lease_s / 3,
                        close=listener.close)
    stop = threading.Event()
    return Follower(api.follow, pw.cluster.heartbeat, stop.wait,
                    interval_s=options.follow_interval_s, heartbeat_s=options.lease_s / 3)


def make_server(app: ASGIApp, host: str = "127.0.0.1", port: int = 0,
                limits: ConnectionLimits | None = None) -> uvicorn.Server:
    """The uvicorn server ``serve`` runs (tests and benchmarks run the same one): h11 with
    the read deadlines and connection cap of ``limits`` (monitor.app.http.connections)."""
    limits = limits or ConnectionLimits()
    config = uvicorn.Config(
        app, host=host, port=port, lifespan="on", ws="none", access_log=False,
        log_config=None, server_header=False, timeout_graceful_shutdown=10,
        http=bounded_protocol(limits), timeout_keep_alive=limits.idle_timeout_s,
    )
    return uvicorn.Server(config)


def connection_limits(config: Config, pw: Phasewatch | None = None) -> ConnectionLimits:
    """The ``server`` section's connection bounds, counting cuts in ``pw``'s metrics."""
    server = config.server
    on_cut = None
    if pw is not None:
        counter = pw.metrics.connections_closed

        def on_cut(reason: Cut) -> None:
            counter.labels(reason).inc()

    return ConnectionLimits(
        header_timeout_s=server.header_timeout_s, body_timeout_s=server.body_timeout_s,
        idle_timeout_s=server.idle_timeout_s, max_connections=server.max_connections,
        on_cut=on_cut,
    )


def raise_file_limit(connections: int) -> None:
    """Let the process hold ``connections`` sockets (and its own files) if the hard limit allows."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    wanted = connections + 256
    if soft != resource.RLIM_INFINITY and soft < wanted:
        target = wanted if hard == resource.RLIM_INFINITY else min(wanted, hard)
        with suppress(ValueError, OSError):
            resource.setrlimit(resource.RLIMIT_NOFILE, (target, hard))
        if target < wanted:
            log.warning("event=serve.file_limit soft=%d wanted=%d: lower server.max_connections "
                        "or raise the limit (ulimit -n)", target, wanted)


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
def serving(app: ASGIApp, host: str = "127.0.0.1",
            limits: ConnectionLimits | None = None) -> Iterator[str]:
    """Run ``app`` on a free port in a background thread for a ``with`` block; yields its URL.

    For tests and benchmarks: the same server ``serve`` runs, stopped on exit.
    """
    sock = bind_socket(host, 0)
    server = make_server(app, host, limits=limits)
    thread = threading.Thread(target=server.run, kwargs={"sockets": [sock]}, daemon=True,
                              name="phasewatch-serving")
    thread.start()
    try:
        yield f"http://{host}:{sock.getsockname()[1]}"
    finally:
        server.should_exit = True
        thread.join(30)
        sock.close()


def serve(config: Config, db_path: str, host: str, port: int) -> None:
    """Run the service with the real clock until interrupted, ticking the periodic jobs."""
    sock = bind_socket(host, port)  # first: a port in use fails before the store is opened
    try:
        pw = Phasewatch.build(config, db_path=db_path, clock=SystemClock(),
                              snapshots=config.server.snapshot)
    except BaseException:  # a store that cannot be opened: the socket is not leaked
        sock.close()
        raise
    try:
        pw.start_export()  # export.cloud_monitoring, when configured
        pw.start_mirror()  # mirror.bigquery, when configured
    except BaseException:
        pw.close()
        sock.close()
        raise
    tune_gc()
    close = once(pw.close)
    token = resolve_secret(config.server.token_env)
    if token is None:
        log.warning("event=serve.auth_disabled token_env=%s", config.server.token_env)
    try:
        app = create_app(pw, token, tick_interval_s=config.server.tick_interval_s,
                         on_shutdown=close)
        log.info("event=serve.started host=%s port=%d db=%s instance=%s auth=%s read_auth=%s"
                 " push_auth=%s jobs=%d", host, sock.getsockname()[1], redacted(db_path),
                 pw.cluster.instance, "on" if token else "off",
                 config.server.read_auth if token else "off",
                 "oidc" if config.server.pubsub_push else "bearer" if token else "off", len(pw.jobs))
        limits = connection_limits(config, pw)
        raise_file_limit(limits.max_connections)
        make_server(app, host, port, limits).run(sockets=[sock])
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
