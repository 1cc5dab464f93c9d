"""Connection bounds for uvicorn's h11 server: read timeouts, and a cap that keeps /health up.

uvicorn closes a keep-alive connection idle for ``timeout_keep_alive`` but never one that
sends its request slowly: headers trickled byte by byte, or a body at 1 byte/s, held a
connection (and a file descriptor) for as long as the client liked, and 1,000 of them
were bounded only by the descriptor limit. ``bounded_protocol(limits)`` is uvicorn's
``H11Protocol`` with, per connection, one deadline for the phase it is in:

- ``header``: from the connection's first byte (or the previous response) to a complete
  request head: ``header_timeout_s``, then a 408 and the connection closed;
- ``body``: from the head to the end of the body: ``body_timeout_s`` in all (a trickle does
  not extend it), then a 408 and closed;
- ``idle``: between requests, uvicorn's own keep-alive timeout (``idle_timeout_s``);
- while the app handles a request there is no deadline.

And a cap: when a new connection makes more than ``max_connections``, the connection that
has waited longest for a request to arrive in full (or sat idle longest) is closed to make
room, so stalled clients cannot keep a health probe out; if every connection has a request
being handled, the new one is refused with a 503.
"""

from __future__ import annotations

import asyncio
import json
import logging
from collections.abc import Callable
from dataclasses import dataclass
from typing import ClassVar, Literal

import h11
from uvicorn.protocols.http.h11_impl import H11Protocol

log = logging.getLogger(__name__)

Phase = Literal["header", "body", "idle", "app"]
Cut = Literal["header_timeout", "body_timeout", "evicted", "refused"]
WAITING: frozenset[Phase] = frozenset({"header", "body", "idle"})


@dataclass(frozen=True)
class ConnectionLimits:
    """Per-connection read deadlines and the cap on open connections (``server`` config)."""

    header_timeout_s: float = 10.0
    body_timeout_s: float = 60.0
    idle_timeout_s: int = 5
    max_connections: int = 1000
    on_cut: Callable[[Cut], None] | None = None  # counts each connection closed by a bound


def bounded_protocol(limits: ConnectionLimits) -> type[BoundedH11Protocol]:
    """uvicorn's ``http=`` protocol class holding ``limits``."""
    return type("BoundedH11Protocol", (BoundedH11Protocol,), {"limits": limits})


def _answer(status: int, phrase: str, message: str) -> bytes:
    body = json.dumps({"error": message, "reason": "timeout" if status == 408 else "overloaded",
                       "details": []}).encode()
    head = (f"HTTP/1.1 {status} {phrase}\r\ncontent-type: application/json\r\n"
            f"content-length: {len(body)}\r\nconnection: close\r\n\r\n")
    return head.encode() + body


class BoundedH11Protocol(H11Protocol):
    """``H11Protocol`` with read deadlines per phase and the connection cap (see the module)."""

    limits: ClassVar[ConnectionLimits]

    def connection_made(self, transport: asyncio.Transport) -> None:  # type: ignore[override]
        self._phase: Phase = "header"
        self._since = self.loop.time()
        self._deadline: asyncio.TimerHandle | None = None
        super().connection_made(transport)
        self._arm("header")
        if len(self.connections) > self.limits.max_connections:
            self._make_room()

    def data_received(self, data: bytes) -> None:
        super().data_received(data)
        self._follow()

    def on_response_complete(self) -> None:
        super().on_response_complete()
        self._follow(after_response=True)

    def connection_lost(self, exc: Exception | None) -> None:
        self._disarm()
        super().connection_lost(exc)

    def _follow(self, after_response: bool = False) -> None:
        """Move to the phase the client is in now (h11 knows how far its request got)."""
        if self.transport.is_closing():
            return
        state = self.conn.their_state
        if state is h11.IDLE:
            # After a response: idle until bytes come (uvicorn's keep-alive timer runs);
            # bytes without a complete head: reading headers.
            if after_response:
                self._enter("idle")
            elif self._phase != "header":
                self._enter("header")
                self._arm("header")
        elif state is h11.SEND_BODY:
            if self._phase != "body":
                self._enter("body")
                self._arm("body")
        else:
            self._enter("app")

    def _enter(self, phase: Phase) -> None:
        if phase != self._phase:
            self._phase, self._since = phase, self.loop.time()
        if phase in ("idle", "app"):
            self._disarm()

    def _arm(self, phase: Literal["header", "body"]) -> None:
        self._disarm()
        timeout = self.limits.header_timeout_s if phase == "header" else self.limits.body_timeout_s
        self._deadline = self.loop.call_later(timeout, self._expired, phase)

    def _disarm(self) -> None:
        if self._deadline is not None:
            self._deadline.cancel()
            self._deadline = None

    def _expired(self, phase: Literal["header", "body"]) -> None:
        self._deadline = None
        if phase == "header":
            message = f"request headers not received within {self.limits.header_timeout_s:g} s"
            self._cut("header_timeout", _answer(408, "Request Timeout", message))
        else:
            message = f"request body not received within {self.limits.body_timeout_s:g} s"
            self._cut("body_timeout", _answer(408, "Request Timeout", message))

    def _cut(self, reason: Cut, answer: bytes | None = None) -> None:
        """Close this connection for ``reason``, answering first when nothing was answered."""
        if self.transport.is_closing():
            return
        responded = self.cycle is not None and self.cycle.response_started
        if answer is not None and not responded:
            self.transport.write(answer)
        self.transport.close()
        log.info("event=connection.closed reason=%s client=%s", reason, self.client)
        if self.limits.on_cut is not None:
            self.limits.on_cut(reason)

    def _make_room(self) -> None:
        waiting = [c for c in self.connections
                   if isinstance(c, BoundedH11Protocol) and c is not self and c._phase in WAITING
                   and not c.transport.is_closing()]
        if waiting:
            min(waiting, key=lambda c: c._since)._cut("evicted")
        else:
            self._cut("refused", _answer(503, "Service Unavailable",
                                         "too many connections with requests in progress; retry"))
