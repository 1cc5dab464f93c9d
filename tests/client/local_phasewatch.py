"""A stand-in for phasewatch's ``POST /v1/events`` on 127.0.0.1, for the client's tests."""

from __future__ import annotations

import json
import threading
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any


@dataclass
class Received:
    """One request as the server saw it."""

    headers: dict[str, str]
    events: list[dict[str, Any]]


@dataclass
class Behaviour:
    """What the server answers; tests change it between calls."""

    fail_next: int = 0  # answer fail_status this many times, then recover
    fail_status: int = 503
    retry_after: str | None = None
    reject_status: int | None = None  # answer this to every batch (or to batches holding reject_phase)
    reject_phase: str | None = None
    requests: list[Received] = field(default_factory=list)
    events: list[dict[str, Any]] = field(default_factory=list)
    lock: threading.Lock = field(default_factory=threading.Lock)

    def answer(self, headers: dict[str, str], body: bytes) -> tuple[int, dict[str, Any], dict[str, str]]:
        events: list[dict[str, Any]] = json.loads(body)
        with self.lock:
            self.requests.append(Received(headers, events))
            if self.fail_next:
                self.fail_next -= 1
                extra = {"Retry-After": self.retry_after} if self.retry_after else {}
                return self.fail_status, {"error": "unavailable"}, extra
            if self.reject_status and (
                self.reject_phase is None or any(e["phase"] == self.reject_phase for e in events)
            ):
                detail = {"field": "phase", "message": "unknown phase; allowed: phase2"}
                error = f"{detail['field']}: {detail['message']}"  # as phasewatch answers
                return self.reject_status, {"error": error, "details": [detail]}, {}
            seen = {e["event_id"] for e in self.events}
            new = [e for e in events if e["event_id"] not in seen]
            self.events.extend(new)
            return 202, {"accepted": len(new), "duplicates": len(events) - len(new)}, {}


class _Server(ThreadingHTTPServer):
    daemon_threads = True
    behaviour: Behaviour


class _Handler(BaseHTTPRequestHandler):
    server: _Server

    def do_POST(self) -> None:
        body = self.rfile.read(int(self.headers.get("Content-Length") or 0))
        status, reply, extra = self.server.behaviour.answer(dict(self.headers), body)
        data = json.dumps(reply).encode()
        self.send_response(status)
        for name, value in {"Content-Type": "application/json", **extra}.items():
            self.send_header(name, value)
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def log_message(self, format: str, *args: Any) -> None:
        """Quiet."""


class LocalPhasewatch:
    """A stand-in for ``POST /v1/events`` on 127.0.0.1; ``stop`` closes the port, ``start`` reopens it."""

    def __init__(self) -> None:
        self.behaviour = Behaviour()
        self.port = 0  # first start picks a free port; later starts reuse it
        self._server: _Server | None = None
        self._thread: threading.Thread | None = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    @property
    def events(self) -> list[dict[str, Any]]:
        return self.behaviour.events

    @property
    def requests(self) -> list[Received]:
        return self.behaviour.requests

    def start(self) -> None:
        server = _Server(("127.0.0.1", self.port), _Handler)
        server.behaviour = self.behaviour
        self.port = server.server_address[1]
        self._server = server
        self._thread = threading.Thread(target=server.serve_forever, args=(0.01,), daemon=True)
        self._thread.start()

    def stop(self) -> None:
        if self._server is None or self._thread is None:
            return
        self._server.shutdown()
        self._server.server_close()
        self._thread.join()
        self._server = self._thread = None
