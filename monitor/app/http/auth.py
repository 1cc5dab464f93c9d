"""Bearer-token authentication of every request but the public reads (fail closed)."""

from __future__ import annotations

import hmac
from collections.abc import Callable

from starlette.types import ASGIApp, Receive, Scope, Send

from monitor.app.http.openapi import SAFE_METHODS
from monitor.app.http.responses import event_error_response
from monitor.errors import EventError, Problem


class BearerAuth:
    """ASGI middleware: every request needs ``Authorization: Bearer`` but those let through.

    ``public_reads``: paths whose GET/HEAD/OPTIONS pass without it, or None for every read
    (``server.read_auth: public``). ``exempt``: (method, path) pairs whose handler
    authenticates them another way (the Pub/Sub push path when its OIDC token is verified:
    Pub/Sub cannot send our token).
    """

    def __init__(self, app: ASGIApp, token: str, on_reject: Callable[[EventError], None],
                 exempt: frozenset[tuple[str, str]] = frozenset(),
                 public_reads: frozenset[str] | None = None) -> None:
        self.app = app
        self._token = token.encode()
        self._on_reject = on_reject
        self._exempt = exempt
        self._public_reads = public_reads

    def _open(self, scope: Scope) -> bool:
        """Whether the request passes without the token (fail closed: only what is listed)."""
        if scope["type"] == "lifespan":
            return True
        method, path = scope.get("method"), scope.get("path")
        if (method, path) in self._exempt:
            return True
        if method not in SAFE_METHODS:
            return False
        return self._public_reads is None or path in self._public_reads

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if self._open(scope) or self._allowed(scope):
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

