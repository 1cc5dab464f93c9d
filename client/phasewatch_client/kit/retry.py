"""Retry policies for the pipeline's own calls, on tenacity, with attempts counted.

``SERIALIZATION_RETRY``  BigQuery serialization conflicts: full jitter, window 1 s → 32 s (x2),
                         no attempt starts after 120 s.
``QUOTA_RETRY``          BigQuery quota / rate-limit errors: full jitter, 2 s → 120 s (x2), 600 s.
``GENERIC_RETRY``        transient errors: decorrelated jitter 1-60 s, 5 attempts.

Full jitter ("1 s → 32 s") means each wait is uniform in [0, min(cap, initial x 2^(n-1))]: the
numbers are the window's ceiling, not a floor, so a conflict storm spreads out instead of
retrying in lockstep. Every attempt is counted once in
``phasewatch_kit_retry_attempts_total{policy, outcome}`` with outcome ``success``,
``not_retryable``, ``retried`` or ``gave_up``. Policies re-raise the last error by default (not
tenacity's ``RetryError``), so callers' existing ``except BadRequest`` handlers keep working.

google-api-core is imported on the first predicate call, and only if installed: without it no
exception can be a Google one, and the predicates answer False. prometheus-client (the
``metrics`` extra) is imported when a policy first builds its ``Retrying``; without it the
attempts are not counted. The waits and stops are ``phasewatch_client.retry``'s.
"""

from __future__ import annotations

import functools
import logging
import random
import re
import threading
import time
import weakref
from collections.abc import Callable, Iterable
from dataclasses import dataclass, replace
from types import ModuleType
from typing import TYPE_CHECKING, Any, Literal, ParamSpec, TypeVar

import httpx
import tenacity
from tenacity.retry import retry_base, retry_if_exception
from tenacity.stop import stop_after_attempt, stop_base
from tenacity.wait import wait_base, wait_random_exponential

from phasewatch_client.retry import Sleep, stop_before_deadline, wait_decorrelated_jitter

if TYPE_CHECKING:
    from prometheus_client import CollectorRegistry, Counter

log = logging.getLogger(__name__)

P = ParamSpec("P")
R = TypeVar("R")
Predicate = Callable[[BaseException], bool]

OUTCOMES = ("success", "not_retryable", "retried", "gave_up")
SERIALIZATION_MESSAGE = re.compile(
    r"could not serialize access|concurrent update|aborted due to concurrent", re.IGNORECASE
)
QUOTA_REASONS = frozenset({"quotaExceeded", "rateLimitExceeded"})
HTTP_RETRY_STATUSES = frozenset({429, 500, 502, 503, 504})


# --- predicates ------------------------------------------------------------------------------

@functools.cache
def _google_exceptions() -> ModuleType | None:
    try:
        from google.api_core import exceptions
    except ImportError:  # the gcp extra is not installed: nothing can be a Google error
        return None
    return exceptions


def _details(exc: BaseException) -> tuple[set[str], list[str]]:
    """The reasons and messages a GoogleAPICallError carries (top level and ``errors`` items)."""
    reasons: set[str] = set()
    messages = [str(getattr(exc, "message", "") or exc)]
    top_reason = getattr(exc, "reason", None)
    if isinstance(top_reason, str):
        reasons.add(top_reason)
    items: Iterable[Any] = getattr(exc, "errors", None) or ()
    for item in items:
        if isinstance(item, dict):
            if isinstance(item.get("reason"), str):
                reasons.add(item["reason"])
            if isinstance(item.get("message"), str):
                messages.append(item["message"])
    return reasons, messages


def is_serialization_conflict(exc: BaseException) -> bool:
    """A BigQuery 400/409 saying a concurrent update stopped the statement ("Could not serialize access")."""
    g = _google_exceptions()
    if g is None or not isinstance(exc, g.BadRequest | g.Conflict):
        return False
    _, messages = _details(exc)
    return any(SERIALIZATION_MESSAGE.search(m) for m in messages)


def is_quota_error(exc: BaseException) -> bool:
    """A BigQuery 429, or a 403 whose reason is ``quotaExceeded`` / ``rateLimitExceeded``."""
    g = _google_exceptions()
    if g is None:
        return False
    if isinstance(exc, g.TooManyRequests):  # ResourceExhausted (gRPC) is a subclass
        return True
    if isinstance(exc, g.Forbidden):
        reasons, _ = _details(exc)
        return bool(reasons & QUOTA_REASONS)
    return False


def is_transient(exc: BaseException) -> bool:
    """Network errors, timeouts, HTTP 429/5xx (httpx) and Google 429/500/502/503/504."""
    if isinstance(exc, ConnectionError | TimeoutError):
        return True
    if isinstance(exc, httpx.TransportError):
        return True
    if isinstance(exc, httpx.HTTPStatusError):
        return exc.response.status_code in HTTP_RETRY_STATUSES
    g = _google_exceptions()
    return g is not None and isinstance(exc, g.GoogleAPICallError) and exc.code in HTTP_RETRY_STATUSES


# --- metrics ---------------------------------------------------------------------------------

_counters: weakref.WeakKeyDictionary[CollectorRegistry, Counter] = weakref.WeakKeyDictionary()
_counters_lock = threading.Lock()


@functools.cache
def _prometheus_installed() -> bool:
    try:
        import prometheus_client  # noqa: F401
    except ImportError:  # the metrics extra is not installed: attempts go uncounted
        return False
    return True


def attempts_counter(registry: CollectorRegistry | None = None) -> Counter:
    """``phasewatch_kit_retry_attempts_total{policy, outcome}`` on ``registry`` (one per registry).

    Needs prometheus-client (the ``metrics`` extra).
    """
    from prometheus_client import REGISTRY, Counter

    registry = REGISTRY if registry is None else registry
    with _counters_lock:
        counter = _counters.get(registry)
        if counter is None:
            counter = Counter(
                "phasewatch_kit_retry_attempts",
                "Attempts of calls under a kit retry policy, by policy and outcome.",
                ["policy", "outcome"], registry=registry,
            )
            _counters[registry] = counter
    return counter


class _CountingRetry(retry_base):
    """Counts the attempts that end the call without a retry (success, not retryable)."""

    def __init__(self, inner: retry_base, policy: str, counter: Counter) -> None:
        self.inner, self.policy, self.counter = inner, policy, counter

    def __call__(self, retry_state: tenacity.RetryCallState) -> bool:
        will_retry = self.inner(retry_state)
        if not will_retry:
            failed = retry_state.outcome is not None and retry_state.outcome.failed
            self.counter.labels(self.policy, "not_retryable" if failed else "success").inc()
        return will_retry


class _CountingStop(stop_base):
    """Counts the retryable failures: retried, or the last one when the policy gives up."""

    def __init__(self, inner: stop_base, policy: str, counter: Counter) -> None:
        self.inner, self.policy, self.counter = inner, policy, counter

    def __call__(self, retry_state: tenacity.RetryCallState) -> bool:
        stop = self.inner(retry_state)
        self.counter.labels(self.policy, "gave_up" if stop else "retried").inc()
        return stop


def _log_retry(policy: str) -> Callable[[tenacity.RetryCallState], None]:
    def before_sleep(state: tenacity.RetryCallState) -> None:
        exc = state.outcome.exception() if state.outcome is not None else None
        log.info("event=retry.scheduled policy=%s attempt=%d wait_s=%.2f error=%s",
                 policy, state.attempt_number, state.upcoming_sleep, type(exc).__name__)
    return before_sleep


# --- policies --------------------------------------------------------------------------------

@dataclass(frozen=True)
class RetryPolicy:
    """A named retry policy; ``retrying()`` builds a fresh tenacity ``Retrying`` from it.

    Use as a decorator (``@QUOTA_RETRY``), as ``QUOTA_RETRY.retrying(sleep=...)(fn, *args)``,
    or as ``for attempt in QUOTA_RETRY.retrying(): with attempt: ...``.
    """

    name: str
    retry_on: Predicate
    initial_s: float
    max_wait_s: float
    jitter: Literal["full", "decorrelated"] = "full"
    multiplier: float = 2.0
    deadline_s: float | None = None
    max_attempts: int | None = None

    def __post_init__(self) -> None:
        if self.deadline_s is None and self.max_attempts is None:
            raise ValueError(f"policy {self.name!r} needs deadline_s or max_attempts (or both)")

    def wait_strategy(self, rng: random.Random | None = None) -> wait_base:
        """The wait between attempts (a new object: decorrelated jitter keeps per-call state)."""
        if self.jitter == "decorrelated":
            return wait_decorrelated_jitter(self.initial_s, self.max_wait_s, rng)
        return wait_random_exponential(multiplier=self.initial_s, max=self.max_wait_s,
                                       exp_base=self.multiplier)

    def stop_strategy(self) -> stop_base:
        """Deadline and/or attempt limit, whichever comes first."""
        stops: list[stop_base] = []
        if self.deadline_s is not None:
            stops.append(stop_before_deadline(self.deadline_s))
        if self.max_attempts is not None:
            stops.append(stop_after_attempt(self.max_attempts))
        return functools.reduce(lambda a, b: a | b, stops)

    def retrying(
        self,
        *,
        sleep: Sleep = time.sleep,
        registry: CollectorRegistry | None = None,
        reraise: bool = True,
        rng: random.Random | None = None,
    ) -> tenacity.Retrying:
        """A tenacity ``Retrying`` for this policy; ``sleep`` and ``rng`` are for tests.

        Attempts are counted on ``registry`` (default: prometheus-client's own) when
        prometheus-client is installed.
        """
        retry: retry_base = retry_if_exception(self.retry_on)
        stop = self.stop_strategy()
        if registry is not None or _prometheus_installed():
            counter = attempts_counter(registry)
            for outcome in OUTCOMES:  # export zeros, so rate() works before the first retry
                counter.labels(self.name, outcome)
            retry, stop = _CountingRetry(retry, self.name, counter), _CountingStop(stop, self.name, counter)
        return tenacity.Retrying(
            sleep=sleep,
            retry=retry,
            stop=stop,
            wait=self.wait_strategy(rng),
            before_sleep=_log_retry(self.name),
            reraise=reraise,
            name=self.name,
        )

    def with_retry_on(self, predicate: Predicate, name: str | None = None) -> RetryPolicy:
        """The same timing with another predicate (e.g. the generic policy for your own errors)."""
        return replace(self, retry_on=predicate, name=name or self.name)

    def __call__(self, fn: Callable[P, R]) -> Callable[P, R]:
        """Decorate ``fn``; the ``Retrying`` is built per call (cheap), on the default registry."""

        @functools.wraps(fn)
        def wrapped(*args: P.args, **kwargs: P.kwargs) -> R:
            result: R = self.retrying()(fn, *args, **kwargs)
            return result

        return wrapped


SERIALIZATION_RETRY = RetryPolicy(
    "bigquery_serialization", is_serialization_conflict, initial_s=1.0, max_wait_s=32.0,
    deadline_s=120.0,
)
QUOTA_RETRY = RetryPolicy(
    "bigquery_quota", is_quota_error, initial_s=2.0, max_wait_s=120.0, deadline_s=600.0,
)
GENERIC_RETRY = RetryPolicy(
    "generic", is_transient, initial_s=1.0, max_wait_s=60.0, jitter="decorrelated", max_attempts=5,
)
