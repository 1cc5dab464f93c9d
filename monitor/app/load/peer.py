"""The pipeline's side of a load test: a local HTTP server that takes phasewatch's triggers.

It answers every ``/health/...`` probe ``pass``, accepts every trigger (``/trigger/...``,
202) and recovery call (``/recovery/...``, 202), and records when each trigger arrived, so
the load test can tell the decision lag (an event sent -> its trigger here).
"""

from __future__ import annotations

import json
import threading
import time
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from types import TracebackType
from typing import Any

from monitor.app.load.config import HEALTH_PATH, TRIGGER_PATH


@dataclass(frozen=True)
class Arrival:
    """One trigger as the target received it (``at``: wall time, seconds)."""

    at: float
    pipeline: str
    run_date: str
    mode: str
    phase: str
    reason: str
    attempt: int
    key: str


class _Server(ThreadingHTTPServer):
    daemon_threads = True
    block_on_close = False
    allow_reuse_address = True

    def __init__(self, address: tuple[str, int]) -> None:
        self.lock = threading.Lock()
        self.triggers: list[Arrival] = []
        self.probes = 0
        self.recoveries = 0
        super().__init__(address, _Handler)

    def handle_error(self, request: Any, client_address: Any) -> None:
        pass  # a caller that hangs up is not the load test's business


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    disable_nagle_algorithm = True
    server: _Server

    def log_message(self, format: str, *args: Any) -> None:
        pass

    def _answer(self, status: int, body: dict[str, Any]) -> None:
        data = json.dumps(body).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def do_GET(self) -> None:
        if self.path.startswith(HEALTH_PATH):
            with self.server.lock:
                self.server.probes += 1
            self._answer(200, {"status": "pass"})
        else:
            self._answer(404, {"error": "not found"})

    def do_POST(self) -> None:
        arrived = time.time()
        length = int(self.headers.get("Content-Length") or 0)
        raw = self.rfile.read(length)
        if self.path.startswith(TRIGGER_PATH):
            try:
                body = json.loads(raw)
                arrival = Arrival(arrived, str(body["pipeline"]), str(body["run_date"]),
                                  str(body["mode"]), str(body["phase"]), str(body.get("reason", "")),
                                  int(body.get("attempt", 1)), self.headers.get("Idempotency-Key", ""))
            except (ValueError, KeyError, TypeError):
                self._answer(400, {"error": "not a phasewatch trigger"})
                return
            with self.server.lock:
                self.server.triggers.append(arrival)
            self._answer(202, {"accepted": True})
        elif self.path.startswith("/recovery"):
            with self.server.lock:
                self.server.recoveries += 1
            self._answer(202, {"accepted": True})
        else:
            self._answer(404, {"error": "not found"})


class TargetPeer:
    """Serves on ``host:port`` (0: a free port) in a daemon thread until closed."""

    def __init__(self, port: int = 0, host: str = "127.0.0.1") -> None:
        self._server = _Server((host, port))
        self._thread = threading.Thread(target=self._server.serve_forever, kwargs={"poll_interval": 0.05},
                                        name="loadtest-peer", daemon=True)
        self._thread.start()

    @property
    def url(self) -> str:
        host, port = self._server.server_address[:2]
        return f"http://{host!s}:{port}"

    def triggers(self) -> list[Arrival]:
        with self._server.lock:
            return list(self._server.triggers)

    @property
    def probes(self) -> int:
        return self._server.probes

    def close(self) -> None:
        self._server.shutdown()
        self._server.server_close()

    def __enter__(self) -> TargetPeer:
        return self

    def __exit__(self, kind: type[BaseException] | None, exc: BaseException | None,
                 tb: TracebackType | None) -> None:
        self.close()
