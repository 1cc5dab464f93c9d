"""Local peers for tests and benchmarks of code built on the kit (nothing here runs in production).

``LocalServer``  an HTTP (or HTTPS) server on 127.0.0.1 and a free port, in daemon threads,
                 with HTTP/1.1 keep-alive; it counts accepted connections, so a test can see
                 whether a client pooled them.
``BigQueryStub`` a handler speaking enough of the BigQuery REST API for ``client.query(sql)
                 .result()`` (jobs.insert, jobs.get, jobs.getQueryResults), with job errors
                 that can be queued to exercise the retry policies. Point the real client at it:
                 ``bigquery.Client(project="p", credentials=AnonymousCredentials(),
                 client_options={"api_endpoint": server.url})``.
"""

from __future__ import annotations

import json
import socket
import ssl
import threading
import uuid
from collections import deque
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from types import TracebackType
from typing import Any
from urllib.parse import urlsplit


@dataclass(frozen=True)
class StubRequest:
    method: str
    path: str  # without the query string
    query: str
    headers: dict[str, str]
    body: bytes

    def json(self) -> Any:
        return json.loads(self.body) if self.body else None


@dataclass(frozen=True)
class StubReply:
    status: int = 200
    body: bytes = b""
    headers: tuple[tuple[str, str], ...] = ()

    @classmethod
    def of_json(cls, value: Any, status: int = 200, content_type: str = "application/json") -> StubReply:
        return cls(status, json.dumps(value).encode(), (("Content-Type", content_type),))


Handler = Callable[[StubRequest], StubReply]


class _Server(ThreadingHTTPServer):
    daemon_threads = True
    block_on_close = False

    def __init__(self, handler: Handler, tls: ssl.SSLContext | None) -> None:
        self.handler, self.tls = handler, tls
        self.connections = 0
        self.requests: list[StubRequest] = []
        self.lock = threading.Lock()
        super().__init__(("127.0.0.1", 0), _RequestHandler)

    def get_request(self) -> tuple[socket.socket, Any]:
        sock, address = super().get_request()
        with self.lock:
            self.connections += 1
        if self.tls is not None:  # the handshake runs in the connection's thread, not here
            sock = self.tls.wrap_socket(sock, server_side=True, do_handshake_on_connect=False)
        return sock, address

    def finish_request(self, request: Any, client_address: Any) -> None:
        if isinstance(request, ssl.SSLSocket):
            try:
                request.do_handshake()
            except (OSError, ssl.SSLError):
                return
        super().finish_request(request, client_address)

    def handle_error(self, request: Any, client_address: Any) -> None:
        pass  # a client that hangs up mid-request is not the test's business


class _RequestHandler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    disable_nagle_algorithm = True  # headers and body go out in two writes: no 40 ms delayed-ACK stall
    server: _Server

    def log_message(self, format: str, *args: Any) -> None:
        pass

    def _handle(self) -> None:
        length = int(self.headers.get("Content-Length") or 0)
        parts = urlsplit(self.path)
        request = StubRequest(self.command, parts.path, parts.query,
                              {k.lower(): v for k, v in self.headers.items()}, self.rfile.read(length))
        with self.server.lock:
            self.server.requests.append(request)
        try:
            reply = self.server.handler(request)
        except Exception as exc:  # a broken stub answers 500 rather than hanging the client
            reply = StubReply(500, f"{type(exc).__name__}: {exc}".encode())
        # 1xx, 204 and 304 carry no content (RFC 9110 §6.4.1): a stub's body is dropped
        # there, as a real server would, or a strict client reads it as the next response.
        body = b"" if reply.status < 200 or reply.status in (204, 304) else reply.body
        self.send_response(reply.status)
        for name, value in reply.headers:
            self.send_header(name, value)
        if body or reply.status not in (204, 304):
            self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        if self.command != "HEAD":
            self.wfile.write(body)

    do_GET = do_POST = do_PUT = do_DELETE = do_PATCH = do_HEAD = _handle


class LocalServer:
    """Serves ``handler`` on 127.0.0.1 (a free port) until closed; use as a context manager."""

    def __init__(self, handler: Handler, *, tls: ssl.SSLContext | None = None) -> None:
        self._server = _Server(handler, tls)
        self._thread = threading.Thread(target=self._server.serve_forever, kwargs={"poll_interval": 0.05},
                                        name="local-server", daemon=True)
        self._thread.start()

    @property
    def port(self) -> int:
        return int(self._server.server_address[1])

    @property
    def url(self) -> str:
        scheme = "https" if self._server.tls is not None else "http"
        return f"{scheme}://127.0.0.1:{self.port}"

    @property
    def connections(self) -> int:
        """Connections accepted so far."""
        return self._server.connections

    @property
    def requests(self) -> list[StubRequest]:
        with self._server.lock:
            return list(self._server.requests)

    def close(self) -> None:
        self._server.shutdown()
        self._server.server_close()
        self._thread.join(timeout=5)

    def __enter__(self) -> LocalServer:
        return self

    def __exit__(self, kind: type[BaseException] | None, value: BaseException | None,
                 tb: TracebackType | None) -> None:
        self.close()


def serialization_conflict(table: str = "p.d.t") -> dict[str, str]:
    """A job ``errorResult`` as BigQuery reports a DML serialization conflict."""
    return {"reason": "invalidQuery",
            "message": f"Could not serialize access to table {table} due to concurrent update"}


def quota_exceeded(message: str = "Quota exceeded: too many table update operations") -> dict[str, str]:
    """A job ``errorResult`` for a quota error (the client raises 403 Forbidden)."""
    return {"reason": "quotaExceeded", "message": message}


@dataclass
class BigQueryStub:
    """Answers queries with ``rows`` (tuples in ``schema`` order); ``job_errors`` fail the next jobs."""

    schema: Sequence[tuple[str, str]] = (("n", "INTEGER"),)
    rows: Sequence[Sequence[Any]] = ((1,),)
    job_errors: deque[dict[str, str]] = field(default_factory=deque)
    queries: list[str] = field(default_factory=list)
    _jobs: dict[str, dict[str, Any]] = field(default_factory=dict)
    _lock: threading.Lock = field(default_factory=threading.Lock)

    def __call__(self, request: StubRequest) -> StubReply:
        parts = request.path.split("/")  # /bigquery/v2/projects/{p}/{kind}[/{id}]
        if len(parts) < 6 or parts[1:4] != ["bigquery", "v2", "projects"]:
            return _not_found(request)
        project, kind = parts[4], parts[5]
        job_id = parts[6] if len(parts) > 6 else None
        if request.method == "POST" and kind == "jobs" and job_id is None:
            return StubReply.of_json(self._insert(project, request.json() or {}))
        with self._lock:
            job = self._jobs.get(job_id or "")
        if job is None:
            return _not_found(request)
        if request.method == "GET" and kind == "jobs":
            return StubReply.of_json(job)
        if request.method == "GET" and kind == "queries":
            return StubReply.of_json(self._results(job))
        return _not_found(request)

    def _insert(self, project: str, body: dict[str, Any]) -> dict[str, Any]:
        reference = {"projectId": project, "location": "US",
                     "jobId": body.get("jobReference", {}).get("jobId") or uuid.uuid4().hex}
        status: dict[str, Any] = {"state": "DONE"}
        with self._lock:
            self.queries.append(body.get("configuration", {}).get("query", {}).get("query", ""))
            if self.job_errors:
                error = self.job_errors.popleft()
                status.update(errorResult=error, errors=[error])
            job = {"jobReference": reference, "status": status,
                   "configuration": body.get("configuration", {})}
            self._jobs[reference["jobId"]] = job
        return job

    def _results(self, job: dict[str, Any]) -> dict[str, Any]:
        return {
            "jobComplete": True, "jobReference": job["jobReference"],
            "schema": {"fields": [{"name": n, "type": t} for n, t in self.schema]},
            "totalRows": str(len(self.rows)),
            "rows": [{"f": [{"v": None if v is None else str(v)} for v in row]} for row in self.rows],
        }


def _not_found(request: StubRequest) -> StubReply:
    error = {"code": 404, "message": f"Not found: {request.method} {request.path}",
             "errors": [{"reason": "notFound", "message": "Not found"}]}
    return StubReply.of_json({"error": error}, 404)
