"""A shared, pooled HTTP client for the pipeline's services: keep-alive, limits, bounded retries.

One ``httpx.Client`` per ``HttpSettings``, created on first use and shared by every thread
(httpx clients are thread-safe), so health probes and service calls reuse TLS connections
instead of paying a handshake each time. ``RetryTransport`` retries like urllib3's
``Retry(total=3, backoff_factor=0.5, status_forcelist=[429, 500, 502, 503, 504])``: waits of
0.5, 1, 2 s, a ``Retry-After`` header honoured (or the response returned at once when it asks
for longer than ``backoff_max_s``), and the last response returned when retries run out (call
``raise_for_status()`` as usual). Only requests that are safe to repeat are retried: idempotent
methods, or any method carrying an ``Idempotency-Key`` header; connection failures, where
nothing was sent, are retried for every method. The loop is a tenacity ``Retrying`` with the
injected ``sleep``, its strategies ``phasewatch_client.retry``'s.
"""

from __future__ import annotations

import logging
import ssl
import time
from dataclasses import dataclass, field

import httpx
from tenacity import RetryCallState, Retrying, retry_if_exception, retry_if_result, stop_after_attempt
from tenacity.wait import wait_exponential

from phasewatch_client.kit.cache import SharedCache
from phasewatch_client.kit.retry import HTTP_RETRY_STATUSES
from phasewatch_client.retry import Sleep, parse_retry_after, stop_if_retry_after_over, wait_retry_after

log = logging.getLogger(__name__)

IDEMPOTENT_METHODS = frozenset({"GET", "HEAD", "OPTIONS", "PUT", "DELETE", "TRACE"})


@dataclass(frozen=True)
class HttpSettings:
    """What makes two shared clients different; equal settings share one client."""

    base_url: str = ""
    timeout_s: float = 5.0
    connect_timeout_s: float = 2.0
    max_connections: int = 100
    max_keepalive_connections: int = 20
    keepalive_expiry_s: float = 30.0
    retries: int = 3
    backoff_factor: float = 0.5
    backoff_max_s: float = 30.0
    retry_statuses: frozenset[int] = HTTP_RETRY_STATUSES
    verify: bool | ssl.SSLContext = True
    proxy: str | None = None  # with our own transport httpx ignores HTTPS_PROXY: set it here
    headers: tuple[tuple[str, str], ...] = field(default=())


class RetryTransport(httpx.BaseTransport):
    """Wraps a transport; retries retryable statuses and connection errors with backoff."""

    def __init__(
        self,
        inner: httpx.BaseTransport,
        *,
        retries: int = 3,
        backoff_factor: float = 0.5,
        backoff_max_s: float = 30.0,
        statuses: frozenset[int] = HTTP_RETRY_STATUSES,
        sleep: Sleep = time.sleep,
    ) -> None:
        self.inner = inner
        self.retries, self.backoff_factor, self.backoff_max_s = retries, backoff_factor, backoff_max_s
        self.statuses = statuses
        self.sleep = sleep
        # Retry-After lengthens a wait; asking for more than backoff_max_s ends the retries.
        self._wait = wait_retry_after(wait_exponential(multiplier=backoff_factor, max=backoff_max_s),
                                      backoff_max_s, at_least_fallback=True, hint=_response_retry_after)
        self._stop = stop_after_attempt(retries + 1) | stop_if_retry_after_over(
            backoff_max_s, hint=_response_retry_after)

    def handle_request(self, request: httpx.Request) -> httpx.Response:
        repeatable = isinstance(request.stream, httpx.ByteStream) and (
            request.method in IDEMPOTENT_METHODS or "idempotency-key" in request.headers
        )

        def safe_to_repeat(exc: BaseException) -> bool:
            nothing_sent = isinstance(exc, httpx.ConnectError | httpx.ConnectTimeout)
            return isinstance(exc, httpx.TransportError) and (repeatable or nothing_sent)

        retrying = Retrying(
            retry=retry_if_exception(safe_to_repeat) | retry_if_result(
                lambda response: repeatable and response.status_code in self.statuses),
            wait=self._wait,
            stop=self._stop,
            sleep=self.sleep,
            before_sleep=lambda state: _before_retry(request, state),
            retry_error_callback=_last_outcome,  # the last response, or the last error raised
        )
        response: httpx.Response = retrying(self.inner.handle_request, request)
        return response

    def close(self) -> None:
        self.inner.close()


def _response_retry_after(state: RetryCallState) -> float | None:
    outcome = state.outcome
    if outcome is None or outcome.failed:
        return None
    response: httpx.Response = outcome.result()
    return parse_retry_after(response.headers.get("Retry-After"))


def _before_retry(request: httpx.Request, state: RetryCallState) -> None:
    assert state.outcome is not None  # tenacity sleeps only after an attempt
    wait, retry = state.upcoming_sleep, state.attempt_number
    if state.outcome.failed:
        log.info("event=http.retry method=%s host=%s retry=%d wait_s=%.2f error=%s",
                 request.method, request.url.host, retry, wait, type(state.outcome.exception()).__name__)
        return
    response: httpx.Response = state.outcome.result()
    response.read()  # drained, the connection goes back to the pool for the retry
    response.close()
    log.info("event=http.retry method=%s host=%s retry=%d wait_s=%.2f status=%d",
             request.method, request.url.host, retry, wait, response.status_code)


def _last_outcome(state: RetryCallState) -> httpx.Response:
    assert state.outcome is not None
    response: httpx.Response = state.outcome.result()  # raises the last error, if it was one
    return response


def build_client(
    settings: HttpSettings | None = None,
    *,
    sleep: Sleep = time.sleep,
    transport: httpx.BaseTransport | None = None,
) -> httpx.Client:
    """A new pooled client for ``settings`` (``transport`` replaces the network, e.g. MockTransport)."""
    s = settings or HttpSettings()
    limits = httpx.Limits(
        max_connections=s.max_connections,
        max_keepalive_connections=s.max_keepalive_connections,
        keepalive_expiry=s.keepalive_expiry_s,
    )
    inner = transport or httpx.HTTPTransport(verify=s.verify, limits=limits, proxy=s.proxy, retries=0)
    return httpx.Client(
        base_url=s.base_url,
        timeout=httpx.Timeout(s.timeout_s, connect=s.connect_timeout_s),
        headers=dict(s.headers),
        transport=RetryTransport(
            inner, retries=s.retries, backoff_factor=s.backoff_factor,
            backoff_max_s=s.backoff_max_s, statuses=s.retry_statuses, sleep=sleep,
        ),
    )


class HttpClients:
    """One shared client per ``HttpSettings``, created on first use; safe from any thread."""

    def __init__(self, *, sleep: Sleep = time.sleep, transport: httpx.BaseTransport | None = None) -> None:
        """``sleep`` and ``transport`` are for tests (no real waits, no network)."""
        self._cache: SharedCache[HttpSettings, httpx.Client] = SharedCache(
            lambda settings: build_client(settings, sleep=sleep, transport=transport),
            close=httpx.Client.close,
            is_stale=lambda client: client.is_closed,  # someone closed the shared client
        )

    def get(self, settings: HttpSettings | None = None) -> httpx.Client:
        """The shared client for ``settings`` (default settings when None)."""
        return self._cache.get(settings or HttpSettings())

    def close(self) -> None:
        """Close every client; later ``get`` calls create new ones."""
        self._cache.close()


_shared = HttpClients()


def shared_client(settings: HttpSettings | None = None) -> httpx.Client:
    """The process-wide pooled client for ``settings``."""
    return _shared.get(settings)


def close_shared_clients() -> None:
    """Close the process-wide clients (at shutdown)."""
    _shared.close()
