"""Connection bounds of the real server (uvicorn h11 on loopback): slow clients are cut off.

Measured (issue 16): a body trickled at 1 byte/s stayed open past 40 s, headers trickled
past 20 s, and 1,000 stalled uploads stayed open, bounded only by the descriptor limit.
These tests wait on sockets with short deadlines (a second or less); the figures for the
defaults and for 1,000 stalled connections come from ``bench/connections.py``.
"""

from __future__ import annotations

import asyncio
import select
import socket
import threading
import time
from collections.abc import Iterator
from contextlib import ExitStack, contextmanager
from typing import Any
from urllib.parse import urlsplit

import httpx
import pytest

from monitor.app.http.connections import ConnectionLimits
from monitor.app.http.server import connection_limits, create_app, serving
from monitor.app.phasewatch import Phasewatch
from monitor.config import Config, ServerConfig

FAST = dict(header_timeout_s=0.5, body_timeout_s=0.8, idle_timeout_s=1)


@contextmanager
def server(app: Phasewatch, **limits: Any) -> Iterator[tuple[str, tuple[str, int]]]:
    config = app.config.model_copy(update={"server": ServerConfig(**{**FAST, **limits})})
    with serving(create_app(app, None), limits=connection_limits(config, app)) as url:
        parts = urlsplit(url)
        assert parts.hostname is not None and parts.port is not None
        yield url, (parts.hostname, parts.port)


def trickle_until_closed(sock: socket.socket, data: bytes, every_s: float = 0.05,
                         limit_s: float = 10.0) -> tuple[float, bytes]:
    """Send ``data`` a byte every ``every_s`` (then spaces) until the server closes or answers;
    returns (seconds taken, what it said)."""
    start = time.monotonic()
    answer = b""
    while time.monotonic() - start < limit_s:
        readable, _, _ = select.select([sock], [], [], every_s)
        if readable:
            chunk = sock.recv(65536)
            answer += chunk
            if not chunk or answer.startswith(b"HTTP/"):
                break
        byte, data = (data[:1] or b" "), data[1:]
        try:
            sock.send(byte)
        except OSError:  # reset by the server after it closed
            break
    return time.monotonic() - start, answer + _drain(sock)


def _drain(sock: socket.socket) -> bytes:
    out = b""
    sock.settimeout(2)
    try:
        while chunk := sock.recv(65536):
            out += chunk
    except OSError:
        pass
    return out


def connect(address: tuple[str, int]) -> socket.socket:
    return socket.create_connection(address, timeout=5)


def closed_by(app: Phasewatch, reason: str) -> float:
    return sum(s.value for f in app.metrics.registry.collect()
               if f.name == "phasewatch_connections_closed" for s in f.samples
               if s.name.endswith("_total") and s.labels["reason"] == reason)


def test_a_body_trickled_at_a_byte_a_tick_is_cut_after_the_body_timeout(app: Phasewatch) -> None:
    with server(app) as (_, address), connect(address) as sock:
        sock.sendall(b"POST /v1/events HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
                     b"Content-Length: 100000\r\n\r\n")
        took, answer = trickle_until_closed(sock, b"{" + b" " * 99_999)
    assert 0.8 <= took < 5, took
    assert answer.startswith(b"HTTP/1.1 408 ") and b"request body not received within 0.8 s" in answer
    assert closed_by(app, "body_timeout") == 1
    assert app.store.count() == 0


def test_headers_trickled_are_cut_after_the_header_timeout(app: Phasewatch) -> None:
    with server(app) as (_, address), connect(address) as sock:
        took, answer = trickle_until_closed(sock, b"GET /health HTTP/1.1\r\n" + b"X-Slow: y\r\n" * 500)
    assert 0.5 <= took < 5, took
    assert answer.startswith(b"HTTP/1.1 408 ")
    assert closed_by(app, "header_timeout") == 1


def test_an_idle_keep_alive_connection_is_closed(app: Phasewatch) -> None:
    with server(app) as (_, address), connect(address) as sock:
        sock.sendall(b"GET /health HTTP/1.1\r\nHost: x\r\n\r\n")
        start = time.monotonic()
        answer = _drain_until_closed(sock)
    assert b" 200 OK" in answer.split(b"\r\n", 1)[0]
    assert 0.9 <= time.monotonic() - start < 5


def _drain_until_closed(sock: socket.socket) -> bytes:
    sock.settimeout(5)
    out = b""
    while chunk := sock.recv(65536):
        out += chunk
    return out


def test_a_slow_but_steady_request_within_its_deadlines_is_served(app: Phasewatch) -> None:
    with server(app, header_timeout_s=5, body_timeout_s=5) as (_, address), connect(address) as sock:
        body = b'{"not": "an event"}'
        head = (b"POST /v1/events HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
                b"Content-Length: " + str(len(body)).encode() + b"\r\nConnection: close\r\n\r\n")
        _, answer = trickle_until_closed(sock, head + body, every_s=0.002)
    assert answer.startswith(b"HTTP/1.1 422 ")  # answered by the app, not cut


@pytest.mark.parametrize(("stalled", "cap"), [(200, 1000), (200, 100)])
def test_health_answers_under_stalled_connections(app: Phasewatch, stalled: int, cap: int) -> None:
    limits = {"header_timeout_s": 60, "body_timeout_s": 60, "max_connections": cap}
    with server(app, **limits) as (url, address), ExitStack() as stack:
        socks = [stack.enter_context(connect(address)) for _ in range(stalled)]
        for i, sock in enumerate(socks):  # half stalled in their headers, half in their bodies
            sock.sendall(b"POST /v1/events HTTP/1.1\r\nHost: x\r\n" if i % 2 else
                         b"POST /v1/events HTTP/1.1\r\nHost: x\r\nContent-Length: 9999\r\n\r\n{")
        with httpx.Client(base_url=url, timeout=5) as client:
            answers = [client.get("/health").status_code for _ in range(20)]
    assert answers == [200] * 20
    assert closed_by(app, "evicted") == (0 if cap > stalled else stalled - cap + 1)


def test_the_cap_refuses_a_connection_only_when_every_one_is_busy() -> None:
    gate, arrived = threading.Event(), threading.Event()

    async def busy(scope: Any, receive: Any, send: Any) -> None:  # every request waits for the gate
        if scope["type"] == "lifespan":
            while (await receive())["type"] != "lifespan.shutdown":
                await send({"type": "lifespan.startup.complete"})
            await send({"type": "lifespan.shutdown.complete"})
            return
        arrived.set()
        while not gate.is_set():
            await asyncio.sleep(0.01)
        await send({"type": "http.response.start", "status": 200, "headers": []})
        await send({"type": "http.response.body", "body": b"done"})

    with serving(busy, limits=ConnectionLimits(max_connections=1)) as url:
        parts = urlsplit(url)
        address = (parts.hostname or "", parts.port or 0)
        with connect(address) as first:
            first.sendall(b"GET /work HTTP/1.1\r\nHost: x\r\n\r\n")
            assert arrived.wait(5)  # the first connection is busy in the app
            with connect(address) as second:
                refused = _drain_until_closed(second)
            gate.set()
            served = first.recv(65536)
    assert refused.startswith(b"HTTP/1.1 503 ") and b"too many connections" in refused
    assert served.startswith(b"HTTP/1.1 200 ")


def test_the_server_defaults_are_the_config_defaults() -> None:
    config = Config.model_validate({"pipelines": [{"id": "p", "timezone": "UTC", "phases": [{"id": "a"}]}]})
    limits = connection_limits(config)
    defaults = ConnectionLimits()
    assert (limits.header_timeout_s, limits.body_timeout_s, limits.idle_timeout_s,
            limits.max_connections) == (defaults.header_timeout_s, defaults.body_timeout_s,
                                        defaults.idle_timeout_s, defaults.max_connections)
