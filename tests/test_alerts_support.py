"""Helpers for the alerts tests (no tests here): a scriptable local HTTP peer and builders."""

from __future__ import annotations

import json
import threading
from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import datetime
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

from alerts.config import AlertingConfig
from alerts.engine import AlertEngine
from alerts.model import Alert, Severity, alert_key
from monitor.clock import FakeClock
from monitor.store.sqlite import SQLiteStore


@dataclass
class Request:
    path: str
    headers: dict[str, str]
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
    peer = Peer(default)

    class Handler(BaseHTTPRequestHandler):
        def do_POST(self) -> None:
            length = int(self.headers.get("Content-Length") or 0)
            raw = self.rfile.read(length)
            ctype = self.headers.get("Content-Type", "")
            if "json" in ctype:
                body: Any = json.loads(raw or b"null")
            elif "x-www-form-urlencoded" in ctype:
                from urllib.parse import parse_qs
                body = {k: v[0] for k, v in parse_qs(raw.decode()).items()}
            else:
                body = raw.decode()
            status, headers, reply = peer.handle(Request(self.path, dict(self.headers), body))
            data = json.dumps(reply).encode() if isinstance(reply, dict | list) else str(reply).encode()
            self.send_response(status)
            for k, v in headers.items():
                self.send_header(k, v)
            if isinstance(reply, dict | list):
                self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            self.wfile.write(data)

        def log_message(self, format: str, *args: Any) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    server.daemon_threads = True
    thread = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.05},
                              daemon=True)
    thread.start()
    peer.url = f"http://127.0.0.1:{server.server_address[1]}"
    try:
        yield peer
    finally:
        server.shutdown()
        server.server_close()
        thread.join(5)


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
