"""The HTTP sink: a JSON POST with an ``Idempotency-Key`` header; 2xx is success.

A target with ``auth: google`` carries a Google ID token (monitor.idtokens); a token that
cannot be minted is a retryable failed send, like an unreachable target.

httpx and aiohttp are imported when the sink first sends (``monitor.lazy``): the service
builds its sinks at start, and the CLI commands that read its state send nothing.
"""

from __future__ import annotations

import asyncio
import base64
import json
import logging
from typing import TYPE_CHECKING

from phasewatch_client.retry import parse_retry_after

from monitor.actuator.config import HttpTrigger
from monitor.actuator.sinks.base import SinkResult, Target, TriggerRequest
from monitor.config import resolve_secret
from monitor.errors import IdTokenError
from monitor.idtokens import IdTokens
from monitor.lazy import Lazy

if TYPE_CHECKING:
    import aiohttp
    import httpx

log = logging.getLogger(__name__)

RETRYABLE_STATUS = frozenset({408, 425, 429})
_DETAIL_CHARS = 300
_MAX_CONNECTIONS = 32


def _pooled_client() -> httpx.Client:
    import httpx

    return httpx.Client(limits=httpx.Limits(max_connections=_MAX_CONNECTIONS,
                                            max_keepalive_connections=16))


class HttpSink:
    """Sends to ``http`` targets through one pooled client (built on the first send); answers
    never raise."""

    def __init__(self, client: httpx.Client | None = None, id_tokens: IdTokens | None = None) -> None:
        self._client = Lazy(_pooled_client) if client is None else Lazy.given(client)
        self._owned = client is None
        self._id_tokens = id_tokens or IdTokens()
        self._async: tuple[asyncio.AbstractEventLoop, aiohttp.ClientSession] | None = None

    def send(self, target: Target, request: TriggerRequest) -> SinkResult:
        if not isinstance(target, HttpTrigger):
            return _wrong_kind(target)
        import httpx

        audience = target.audience_for(target.url)
        try:
            id_token = self._id_tokens.get(audience) if audience else None
        except IdTokenError as exc:
            return _no_id_token(exc)
        try:
            response = self._client.get().request(
                target.method, str(target.url), content=_body(request),
                headers=_headers(target, request, id_token), timeout=target.timeout_s,
            )
        except httpx.HTTPError as exc:
            return _transport_failure(target, exc)
        return classify(response.status_code, response.text, target.already_running_status,
                        caller(target, id_token), response.headers.get("Retry-After"))

    async def send_async(self, target: Target, request: TriggerRequest) -> SinkResult:
        """``send`` on the running event loop (first attempts go there: the actuator's
        sender thread, monitor.actuator.sender).

        aiohttp, not httpx: under load, httpx's async client costs about five times as much
        per request (bench/actuator.py), and this path is the decision latency.
        An ID token not cached yet is fetched in a thread: the fetch blocks, the loop must not.
        """
        if not isinstance(target, HttpTrigger):
            return _wrong_kind(target)
        import aiohttp

        audience = target.audience_for(target.url)
        id_token = self._id_tokens.cached(audience) if audience else None
        if audience and id_token is None:
            try:
                id_token = await asyncio.to_thread(self._id_tokens.get, audience)
            except IdTokenError as exc:
                return _no_id_token(exc)
        try:
            async with self._session().request(
                target.method, str(target.url), data=_body(request),
                headers=_headers(target, request, id_token),
                timeout=aiohttp.ClientTimeout(total=target.timeout_s),
                allow_redirects=False,  # as httpx: a 3xx (a login page) is no accepted trigger
            ) as response:
                text = await response.text(errors="replace")
                retry_after = response.headers.get("Retry-After")
        except TimeoutError:
            return SinkResult("failed", f"timeout after {target.timeout_s:g} s")
        except aiohttp.ClientError as exc:
            return SinkResult("failed", f"{type(exc).__name__}: {exc}"[:_DETAIL_CHARS])
        return classify(response.status, text, target.already_running_status,
                        caller(target, id_token), retry_after)

    def _session(self) -> aiohttp.ClientSession:
        """The pooled session of the running loop (a session is bound to one loop)."""
        import aiohttp

        loop = asyncio.get_running_loop()
        if self._async is None or self._async[0] is not loop:
            connector = aiohttp.TCPConnector(limit=_MAX_CONNECTIONS)
            self._async = (loop, aiohttp.ClientSession(connector=connector))
        return self._async[1]

    async def aclose(self) -> None:
        """Close the async session; call on the loop it was used on."""
        if self._async is not None:
            _, session = self._async
            self._async = None
            await session.close()

    def close(self) -> None:
        client = self._client.built
        if self._owned and client is not None:
            client.close()


def _wrong_kind(target: Target) -> SinkResult:
    return SinkResult("failed", f"the http sink cannot send to a {target.kind} target", False)


def _no_id_token(exc: IdTokenError) -> SinkResult:
    return SinkResult("failed", str(exc)[:_DETAIL_CHARS])


def _headers(target: HttpTrigger, request: TriggerRequest, id_token: str | None) -> dict[str, str]:
    headers = {"Idempotency-Key": request.idempotency_key, "Content-Type": "application/json"}
    token = id_token or resolve_secret(target.token_env)
    if token:
        headers["Authorization"] = f"Bearer {token}"
    return headers


def _body(request: TriggerRequest) -> bytes:
    return json.dumps(request.body()).encode()


def _transport_failure(target: HttpTrigger, exc: httpx.HTTPError) -> SinkResult:
    import httpx

    if isinstance(exc, httpx.TimeoutException):
        return SinkResult("failed", f"timeout after {target.timeout_s:g} s")
    return SinkResult("failed", f"{type(exc).__name__}: {exc}"[:_DETAIL_CHARS])


def classify(status: int, text: str, already_running: tuple[int, ...],
             caller: str | None = None, retry_after: str | None = None) -> SinkResult:
    """An HTTP answer as a sink result: 2xx accepted; configured statuses already running;
    408/425/429/5xx retryable; any other 4xx a permanent refusal (retrying cannot help).
    A 401 or 403 names ``caller``, the identity the target refused (an IAM binding lost in
    a redeploy is fixed by granting that identity, so the person paged needs its name).
    A retryable refusal keeps its ``Retry-After`` (seconds): a target over its quota (429)
    or briefly unavailable (503) says when to come back, and the retry waits that long."""
    detail = f"HTTP {status}"
    if caller and status == 403:
        detail += f" refusing {caller}: it needs the invoker role there (e.g. roles/run.invoker)"
    elif caller and status == 401:
        detail += f" not accepting the credential of {caller} (wrong audience, expired?)"
    snippet = " ".join(text.split())[:_DETAIL_CHARS]
    if snippet:
        detail += f": {snippet}"
    if 200 <= status < 300:
        return SinkResult("accepted", detail, status_code=status)
    if status in already_running:
        return SinkResult("already_running", detail, status_code=status)
    retryable = status >= 500 or status in RETRYABLE_STATUS
    wait_s = parse_retry_after(retry_after) if retryable else None
    if wait_s is not None:
        detail = f"{detail} (Retry-After {wait_s:g} s)"
    return SinkResult("failed", detail, retryable, status, wait_s)


def caller(target: HttpTrigger, id_token: str | None) -> str | None:
    """Who phasewatch called ``target`` as: its ID token's account, or the static token's variable."""
    if id_token is not None:
        email = token_email(id_token)
        who = email or "phasewatch's Google identity"
        return f"{who} (ID token for {target.audience_for(target.url)})"
    if target.token_env is not None and resolve_secret(target.token_env):
        return f"the bearer token in ${target.token_env}"
    return None


def token_email(token: str) -> str | None:
    """The ``email`` claim of a JWT, read without verifying it (it is phasewatch's own token)."""
    try:
        payload = token.split(".")[1]
        claims = json.loads(base64.urlsafe_b64decode(payload + "=" * (-len(payload) % 4)))
    except (IndexError, ValueError):
        return None
    email = claims.get("email") if isinstance(claims, dict) else None
    return email if isinstance(email, str) and email else None
