"""Verifies the OIDC token Google Pub/Sub push sends (google-auth's jwt and crypt, httpx for the certs).

A push subscription with ``--push-auth-service-account`` sends ``Authorization: Bearer <JWT>``,
signed RS256 by Google. ``PushVerifier.verify`` checks, in order: the header is there, the
token is a JWT, its signature matches one of Google's published certificates, its
``iat``/``exp`` window and ``aud`` hold (google-auth's ``jwt.decode``, against the system
clock: the token's times are Google's wall clock, whatever clock phasewatch runs on), then
``iss``, ``email_verified`` and ``email``. Each failure is an EventError whose bounded reason
(``REASONS``) names the check: 401, or 403 for a valid token of an account not listed.

Certificates are fetched with httpx and cached for their ``Cache-Control`` max-age (less
``Age``); a token signed by a key the cache lacks refetches at most once a minute (Google
publishes keys before signing with them). A fetch blocks: the service calls ``verify`` from
a worker thread when ``would_fetch`` says so. A failed fetch raises CertsUnavailable: fail
closed, the service answers 503 and Pub/Sub redelivers. The failure is remembered for
``CERTS_RETRY_AFTER_S``: a burst of pushes must not queue one blocking fetch each on the lock.
"""

from __future__ import annotations

import base64
import re
import threading
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import httpx
from google.auth import crypt, jwt
from google.auth.exceptions import GoogleAuthError  # google-auth leaves its functions untyped

from monitor.clock import Clock
from monitor.config import PubSubPushConfig
from monitor.errors import CertsUnavailable, EventError, Problem
from monitor.validation import render_value

GOOGLE_ISSUERS = ("accounts.google.com", "https://accounts.google.com")
ALGORITHM = "RS256"  # what Google signs ID tokens with; anything else is refused, never tried
CLOCK_SKEW_S = 30
DEFAULT_MAX_AGE_S = 300.0  # when the certificate response says nothing about caching
MAX_MAX_AGE_S = 86_400.0
UNKNOWN_KID_REFETCH_S = 60.0
CERTS_RETRY_AFTER_S = 10.0  # after a failed fetch, pushes are refused from memory this long
REASONS = (
    "push_token_missing", "push_token_malformed", "push_token_signature", "push_token_expired",
    "push_token_audience", "push_token_issuer", "push_token_email", "push_token_account",
)
_MAX_AGE = re.compile(r"(?:^|,)\s*max-age\s*=\s*\"?(\d+)", re.IGNORECASE)
_NO_CACHE = re.compile(r"(?:^|,)\s*(?:no-cache|no-store)\b", re.IGNORECASE)


@dataclass(frozen=True)
class _Certs:
    pems: Mapping[str, str]  # key id -> PEM certificate
    fetched_at: float  # Clock.monotonic()
    expires_at: float


@dataclass(frozen=True)
class _Token:
    raw: str
    kid: str
    unverified: Mapping[str, Any]  # claims read before any check: only to explain a failure


class PushVerifier:
    """Checks push tokens against ``config``; thread-safe, certificates cached and shared."""

    def __init__(self, config: PubSubPushConfig, clock: Clock) -> None:
        self.audience = config.audience
        self.accounts = frozenset(a.lower() for a in config.service_accounts)
        self.certs_url = str(config.certs_url)
        self.timeout_s = config.timeout_s
        self._clock = clock
        self._certs: _Certs | None = None
        self._lock = threading.Lock()  # one fetch at a time; readers take the snapshot unlocked
        self._failed: tuple[str, float] | None = None  # (why, monotonic retry time) of a failed fetch

    def would_fetch(self, authorization: str | None) -> bool:
        """Whether ``verify`` may fetch certificates (and so block) for this header."""
        try:
            token = parse_bearer(authorization)
        except EventError:
            return False  # refused before any certificate is needed
        return self._stale(self._certs, token.kid) and self._failure() is None

    def verify(self, authorization: str | None) -> str:
        """The service account that sent the push; EventError (401/403) or CertsUnavailable."""
        token = parse_bearer(authorization)
        claims = self._verified_claims(token, self._pems_for(token.kid))
        return self._account(claims)

    def _stale(self, certs: _Certs | None, kid: str) -> bool:
        if certs is None:
            return True
        now = self._clock.monotonic()
        if now >= certs.expires_at:
            return True
        return kid not in certs.pems and now - certs.fetched_at >= UNKNOWN_KID_REFETCH_S

    def _pems_for(self, kid: str) -> Mapping[str, str]:
        certs = self._certs
        if certs is not None and not self._stale(certs, kid):
            return certs.pems
        with self._lock:
            certs = self._certs
            if certs is None or self._stale(certs, kid):  # another thread may have just fetched
                why = self._failure()
                if why is not None:
                    raise CertsUnavailable(self.certs_url, why)
                try:
                    certs = self._certs = self._fetch()
                except CertsUnavailable as exc:
                    self._failed = (exc.detail, self._clock.monotonic() + CERTS_RETRY_AFTER_S)
                    raise
                self._failed = None
            return certs.pems

    def _failure(self) -> str | None:
        """Why the last fetch failed, while it is too recent to try again."""
        failed = self._failed
        return failed[0] if failed is not None and self._clock.monotonic() < failed[1] else None

    def _fetch(self) -> _Certs:
        try:
            response = httpx.get(self.certs_url, timeout=self.timeout_s,
                                 headers={"Accept": "application/json"})
            response.raise_for_status()
            body = response.json()
        except httpx.HTTPStatusError as exc:
            raise CertsUnavailable(self.certs_url, f"HTTP {exc.response.status_code}") from None
        except (httpx.HTTPError, ValueError) as exc:
            raise CertsUnavailable(self.certs_url, f"{type(exc).__name__}: {exc}") from None
        pems = _parse_certs(body)
        if pems is None:
            raise CertsUnavailable(self.certs_url, "not a JSON object of key id to PEM certificate")
        now = self._clock.monotonic()
        return _Certs(pems, now, now + freshness_s(response.headers))

    def _verified_claims(self, token: _Token, pems: Mapping[str, str]) -> Mapping[str, Any]:
        pem = pems.get(token.kid)
        if pem is None:
            raise _denied("push_token_signature", "signed by a key Google does not publish (kid)",
                          render_value(token.kid))
        signed, _, signature = token.raw.rpartition(".")
        valid = crypt.verify_signature(signed.encode(), _b64decode(signature), [pem],  # type: ignore[no-untyped-call]
                                       crypt.RSAVerifier)
        if not valid:
            raise _denied("push_token_signature", "bad signature: not signed by Google")
        try:
            claims: Mapping[str, Any] = jwt.decode(  # type: ignore[no-untyped-call]
                token.raw, certs={token.kid: pem}, audience=self.audience,
                clock_skew_in_seconds=CLOCK_SKEW_S,
            )
        except (GoogleAuthError, ValueError):
            raise self._claims_problem(token.unverified) from None
        return claims

    def _claims_problem(self, claims: Mapping[str, Any]) -> EventError:
        """Why jwt.decode refused a token whose signature is good: its times or its audience."""
        iat, exp = claims.get("iat"), claims.get("exp")
        if not isinstance(iat, int | float) or not isinstance(exp, int | float):
            return _denied("push_token_malformed", "the iat and exp claims must be numbers")
        if claims.get("aud") != self.audience:
            return _denied("push_token_audience", f"wrong audience; expected {self.audience!r} "
                           "(server.pubsub_push.audience)", render_value(claims.get("aud")))
        window = f"iat {_iso(iat)}, exp {_iso(exp)}"
        return _denied("push_token_expired", f"expired or not yet valid ({window}; "
                       f"{CLOCK_SKEW_S} s of clock skew allowed)")

    def _account(self, claims: Mapping[str, Any]) -> str:
        issuer = claims.get("iss")
        if issuer not in GOOGLE_ISSUERS:
            raise _denied("push_token_issuer", f"wrong issuer; allowed: {', '.join(GOOGLE_ISSUERS)}",
                          render_value(issuer))
        email = claims.get("email")
        if not isinstance(email, str) or claims.get("email_verified") is not True:
            raise _denied("push_token_email", "no verified email claim (give the push subscription "
                          "--push-auth-service-account)", render_value(email))
        if email.lower() not in self.accounts:
            raise _denied("push_token_account", "service account not listed in "
                          "server.pubsub_push.service_accounts", render_value(email), status_code=403)
        return email


def parse_bearer(authorization: str | None) -> _Token:
    """The JWT of an ``Authorization: Bearer`` header, read but not verified."""
    scheme, _, raw = (authorization or "").strip().partition(" ")
    raw = raw.strip()
    if scheme.lower() != "bearer" or not raw:
        raise _denied("push_token_missing", "missing; expected: Bearer <Google OIDC token> "
                      "(the push subscription's --push-auth-service-account)")
    try:
        header = jwt.decode_header(raw)  # type: ignore[no-untyped-call]
        unverified = jwt.decode(raw, verify=False)  # type: ignore[no-untyped-call]
    except (GoogleAuthError, ValueError, TypeError):
        raise _denied("push_token_malformed", "not a JWT (three base64url segments, "
                      "JSON header and claims)") from None
    alg, kid = header.get("alg"), header.get("kid")
    if alg != ALGORITHM:
        raise _denied("push_token_malformed", f"unsupported alg; allowed: {ALGORITHM}",
                      render_value(alg))
    if not isinstance(kid, str) or not kid:
        raise _denied("push_token_malformed", "the header has no kid (Google's tokens name their key)")
    return _Token(raw, kid, unverified)


def freshness_s(headers: Mapping[str, str]) -> float:
    """Seconds a certificate response stays fresh: Cache-Control max-age less Age, clamped."""
    control = headers.get("cache-control", "")
    if _NO_CACHE.search(control):
        return 0.0
    match = _MAX_AGE.search(control)
    if match is None:
        return DEFAULT_MAX_AGE_S
    age = headers.get("age", "0").strip()
    fresh = float(match.group(1)) - (float(age) if age.isdigit() else 0.0)
    return min(max(fresh, 0.0), MAX_MAX_AGE_S)


def _parse_certs(body: Any) -> dict[str, str] | None:
    if not isinstance(body, dict) or not body:
        return None
    pems: dict[str, str] = {}
    for kid, pem in body.items():
        if not isinstance(pem, str):
            return None
        try:
            # unusable keys fail here, once, not on every push
            crypt.RSAVerifier.from_string(pem)  # type: ignore[no-untyped-call]
        except (ValueError, TypeError):
            return None
        pems[str(kid)] = pem
    return pems


def _denied(reason: str, message: str, value: str | None = None, status_code: int = 401) -> EventError:
    return EventError(reason, [Problem("Authorization", message, value)], status_code=status_code)


def _b64decode(segment: str) -> bytes:
    return base64.urlsafe_b64decode(segment + "=" * (-len(segment) % 4))


def _iso(seconds: float) -> str:
    try:
        return datetime.fromtimestamp(seconds, UTC).isoformat()
    except (OverflowError, OSError, ValueError):
        return repr(seconds)
