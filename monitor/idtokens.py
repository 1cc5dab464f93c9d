"""Google ID tokens for calling services behind IAM (Cloud Run, Cloud Functions), cached per audience.

A target with ``auth: google`` is called with ``Authorization: Bearer <ID token>`` whose ``aud``
is the target's audience. ``IdTokens.get`` mints one with google-auth's ``fetch_id_token``:
from the metadata server on Cloud Run / GCE (``GCE_METADATA_HOST`` moves it, as google-auth
reads it), or from the service-account key named by ``GOOGLE_APPLICATION_CREDENTIALS``. A
token is reused until ``REFRESH_BEFORE_S`` before its ``exp``; one fetch runs at a time per
audience (callers of that audience wait for it, callers of other audiences do not). A failed
fetch raises IdTokenError and is remembered for ``RETRY_AFTER_S``: with the metadata server
down google-auth spends about 3 s pinging it, which every waiting sender would pay again.
google-auth is imported by the first fetch: a process that sends nothing never loads it.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable
from dataclasses import dataclass, field

from monitor.clock import Clock, SystemClock
from monitor.errors import IdTokenError

log = logging.getLogger(__name__)

REFRESH_BEFORE_S = 300.0  # Google's ID tokens live an hour; renew in the last five minutes
RETRY_AFTER_S = 10.0
_REASON_CHARS = 240

Mint = Callable[[str], str]
"""audience → a signed ID token (a JWT); any exception is a failure to mint."""


def fetch_google_id_token(audience: str) -> str:
    """An ID token for ``audience`` from the environment's Google credentials (blocking I/O)."""
    import google.auth.transport.requests
    from google.oauth2 import id_token

    request = google.auth.transport.requests.Request()
    return str(id_token.fetch_id_token(request, audience))  # type: ignore[no-untyped-call]


@dataclass
class _Slot:
    """One audience's token (or last failure); ``lock`` serialises its fetches."""

    lock: threading.Lock = field(default_factory=threading.Lock)
    token: tuple[str, float] | None = None  # (token, refresh at, epoch s): one read sees both
    error: IdTokenError | None = None
    retry_at: float = 0.0


class IdTokens:
    """A thread-safe cache of ID tokens per audience; ``mint`` is google-auth unless given."""

    def __init__(self, clock: Clock | None = None, mint: Mint = fetch_google_id_token) -> None:
        self.clock = clock or SystemClock()
        self._mint = mint
        self._slots: dict[str, _Slot] = {}
        self._lock = threading.Lock()

    def cached(self, audience: str) -> str | None:
        """The token for ``audience`` if one is fresh; never fetches (safe on an event loop)."""
        slot = self._slots.get(audience)
        if slot is None:
            return None
        held = slot.token
        return held[0] if held is not None and self._now() < held[1] else None

    def get(self, audience: str) -> str:
        """A fresh token for ``audience``, fetched when needed (blocks); raises IdTokenError."""
        token = self.cached(audience)
        if token is not None:
            return token
        slot = self._slot(audience)
        with slot.lock:
            now = self._now()
            if slot.token is not None and now < slot.token[1]:
                return slot.token[0]  # another caller fetched it while this one waited
            if slot.error is not None and now < slot.retry_at:
                raise IdTokenError(audience, slot.error.reason)  # a fresh one: callers in parallel
            try:
                token, exp = self._fetch(audience)
            except IdTokenError as exc:
                slot.error, slot.retry_at = exc, self._now() + RETRY_AFTER_S
                log.warning("event=idtoken.failed audience=%s reason=%s", audience, exc.reason)
                raise
            slot.token, slot.error = (token, exp - REFRESH_BEFORE_S), None
            log.info("event=idtoken.minted audience=%s expires_in_s=%d", audience, exp - now)
            return token

    def _fetch(self, audience: str) -> tuple[str, float]:
        try:
            token = self._mint(audience)
        except Exception as exc:  # google-auth raises more than GoogleAuthError (KeyError, ValueError)
            reason = " ".join(f"{type(exc).__name__}: {exc}".split())[:_REASON_CHARS]
            raise IdTokenError(audience, reason) from exc
        from google.auth import jwt  # google-auth leaves its functions untyped

        try:
            exp = jwt.decode(token, verify=False).get("exp")  # type: ignore[no-untyped-call]
        except Exception as exc:  # its message quotes the token: never log or show it
            raise IdTokenError(audience, f"the minted token is not a JWT ({type(exc).__name__})") from None
        if isinstance(exp, bool) or not isinstance(exp, int | float):
            raise IdTokenError(audience, f"the token has no numeric exp (got {exp!r})")
        return token, float(exp)

    def _slot(self, audience: str) -> _Slot:
        with self._lock:
            return self._slots.setdefault(audience, _Slot())

    def _now(self) -> float:
        return self.clock.now().timestamp()


__all__ = ["REFRESH_BEFORE_S", "RETRY_AFTER_S", "IdTokens", "Mint", "fetch_google_id_token"]
