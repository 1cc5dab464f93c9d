"""Helpers for the alerts tests (no tests here): a scriptable local HTTP peer and builders."""

from __future__ import annotations

import json
import threading
from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any
from urllib.parse import parse_qs

import httpx
from phasewatch_client.kit.testing import LocalServer, StubReply, StubRequest

from alerts.config import AlertingConfig
from alerts.engine import AlertEngine
from alerts.model import Alert, Severity, alert_key
from monitor.clock import FakeClock
from monitor.store.sqlite import SQLiteStore


@dataclass
class Request:
    path: str
    headers: Mapping[str, str]  # case-insensitive
    body: Any


Reply = tuple[int, dict[str, str], Any]
Responder = Callable[[Request], Reply]


@dataclass
class Peer:
    """A local HTTP server on 127.0.0.1 (port 0) that records requests and answers from a script.

    ``script`` holds replies for the next requests, in order; when it is empty ``default``
    answers. A reply is (status, headers, body); a dict or list body is sent as JSON.
    """

    default: Responder
    requests: list[Request] = field(default_factory=list)
    statuses: list[int] = field(default_factory=list)
    script: list[Reply] = field(default_factory=list)
    url: str = ""
    lock: threading.Lock = field(default_factory=threading.Lock)

    def handle(self, request: Request) -> Reply:
        with self.lock:
            self.requests.append(request)
            reply = self.script.pop(0) if self.script else self.default(request)
            self.statuses.append(reply[0])
            return reply

    def accepted(self, path: str | None = None) -> list[Any]:
        """Bodies of the requests that got a 2xx answer."""
        with self.lock:
            return [r.body for r, s in zip(self.requests, self.statuses, strict=True)
                    if 200 <= s < 300 and (path is None or r.path == path)]

    def bodies(self, path: str | None = None) -> list[Any]:
        with self.lock:
            return [r.body for r in self.requests if path is None or r.path == path]


@contextmanager
def serve(default: Responder) -> Iterator[Peer]:
    """A Peer served by the product's LocalServer; JSON and form bodies are decoded."""
    peer = Peer(default)

    def handle(request: StubRequest) -> StubReply:
        ctype = request.headers.get("content-type", "")
        body: Any
        if "json" in ctype:
            body = json.loads(request.body or b"null")
        elif "x-www-form-urlencoded" in ctype:
            body = {k: v[0] for k, v in parse_qs(request.body.decode()).items()}
        else:
            body = request.body.decode()
        path = request.path + (f"?{request.query}" if request.query else "")
        status, headers, reply = peer.handle(Request(path, httpx.Headers(request.headers), body))
        is_json = isinstance(reply, dict | list)
        data = json.dumps(reply).encode() if is_json else str(reply).encode()
        extra = (("Content-Type", "application/json"),) if is_json else ()
        return StubReply(status, data, (*headers.items(), *extra))

    with LocalServer(handle) as server:
        peer.url = server.url
        yield peer


def ok(status: int = 200, body: Any = "ok") -> Responder:
    return lambda request: (status, {}, body)


def make_alert(kind: str, at: datetime, severity: Severity = "warning", *, count: int = 1,
               summary: str | None = None, **labels: str) -> Alert:
    return Alert(
        key=alert_key(kind, labels), severity=severity, summary=summary or f"{kind} {labels}",
        at=at, labels={"alertname": kind, **labels}, count=count,
    )


def make_engine(db: SQLiteStore, clock: FakeClock, channels: list[Any] | None = None,
                alerting: Mapping[str, Any] | AlertingConfig | None = None,
                **kwargs: Any) -> AlertEngine:
    cfg = alerting if isinstance(alerting, AlertingConfig) else AlertingConfig.model_validate(
        dict(alerting or {}))
    return AlertEngine.build(cfg, db=db, clock=clock, secret=lambda name: None,
                             channels=channels, **kwargs)
