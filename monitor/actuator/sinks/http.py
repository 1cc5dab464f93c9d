"""The HTTP sink: a JSON POST with an ``Idempotency-Key`` header; 2xx is success."""

from __future__ import annotations

import json
import logging

import httpx

from monitor.actuator.sinks.base import SinkResult, Target, TriggerRequest
from monitor.config import HttpTrigger, resolve_secret

log = logging.getLogger(__name__)

RETRYABLE_STATUS = frozenset({408, 425, 429})
_DETAIL_CHARS = 300


class HttpSink:
    """Sends to ``http`` targets through one pooled client; answers never raise."""

    def __init__(self, client: httpx.Client | None = None) -> None:
        self._client = client or httpx.Client(
            limits=httpx.Limits(max_connections=32, max_keepalive_connections=16),
        )
        self._owned = client is None

    def send(self, target: Target, request: TriggerRequest) -> SinkResult:
        if not isinstance(target, HttpTrigger):
            return SinkResult("failed", f"the http sink cannot send to a {target.kind} target", False)
        headers = {"Idempotency-Key": request.idempotency_key, "Content-Type": "application/json"}
        token = resolve_secret(target.token_env)
        if token:
            headers["Authorization"] = f"Bearer {token}"
        try:
            response = self._client.request(
                target.method, str(target.url), content=json.dumps(request.body()).encode(),
                headers=headers, timeout=target.timeout_s,
            )
        except httpx.TimeoutException:
            return SinkResult("failed", f"timeout after {target.timeout_s:g} s")
        except httpx.HTTPError as exc:
            return SinkResult("failed", f"{type(exc).__name__}: {exc}"[:_DETAIL_CHARS])
        return classify(response.status_code, response.text, target.already_running_status)

    def close(self) -> None:
        if self._owned:
            self._client.close()


def classify(status: int, text: str, already_running: tuple[int, ...]) -> SinkResult:
    """An HTTP answer as a sink result: 2xx accepted; configured statuses already running;
    408/425/429/5xx retryable; any other 4xx a permanent refusal (retrying cannot help)."""
    detail = f"HTTP {status}"
    snippet = " ".join(text.split())[:_DETAIL_CHARS]
    if snippet:
        detail += f": {snippet}"
    if 200 <= status < 300:
        return SinkResult("accepted", detail, status_code=status)
    if status in already_running:
        return SinkResult("already_running", detail, status_code=status)
    retryable = status >= 500 or status in RETRYABLE_STATUS
    return SinkResult("failed", detail, retryable, status)
