"""phasewatch's one retry mechanism: tenacity strategies, slept on or scheduled.

Everything that retries composes tenacity's own strategy objects (``wait_random_exponential``,
``wait_exponential``, ``stop_after_attempt`` ...) and the few below, and uses them one of two
ways:

- **in-process** loops run ``tenacity.Retrying(..., sleep=clock.sleep)``: the client's
  ``flush`` / ``send``, the kit's policies and its ``RetryTransport``;
- **durable** retries never sleep (actuator triggers, alert deliveries, the client's hold-off
  during an outage): ``RetrySchedule.next_delay`` (or ``delay``) evaluates the same
  strategies on a ``RetryCallState`` whose times come from the injected clock, and the
  caller stores the due time.

Jitter that must be reproducible (a replay) draws from an injected ``random.Random``.
"""

from __future__ import annotations

import random
import threading
import weakref
from collections.abc import Callable
from datetime import timedelta
from typing import Any, cast

from tenacity import RetryCallState
from tenacity.retry import retry_base, retry_if_exception_type
from tenacity.stop import stop_base, stop_never
from tenacity.wait import wait_base, wait_exponential, wait_fixed

Sleep = Callable[[float], None]
Monotonic = Callable[[], float]
Hint = Callable[[RetryCallState], "float | None"]


# --- waits -------------------------------------------------------------------------------------

class wait_full_jitter(wait_exponential):  # tenacity naming, for composition
    """Capped full jitter from an injected generator: uniform(0, min(maximum, initial x base^(n-1))).

    tenacity's ``wait_random_exponential`` with the generator passed in (it draws from the
    global one), so that a replay with a seeded generator is reproducible.
    """

    def __init__(self, initial: float, maximum: float, rng: random.Random | None = None,
                 exp_base: float = 2) -> None:
        super().__init__(multiplier=initial, max=maximum, exp_base=exp_base)
        self.rng = rng or random.Random()

    def __call__(self, retry_state: RetryCallState) -> float:
        return self.rng.uniform(0.0, super().__call__(retry_state))


class wait_uniform(wait_base):
    """Uniform in [low, high] from an injected generator (tenacity's wait_random uses the global one)."""

    def __init__(self, low: float, high: float, rng: random.Random) -> None:
        self.low, self.high, self.rng = low, high, rng

    def __call__(self, retry_state: RetryCallState) -> float:
        return self.rng.uniform(self.low, self.high)


def jittered(base_s: float, ratio: float, rng: random.Random) -> wait_base:
    """``base_s`` plus or minus ``ratio`` of it: fixed + uniform, tenacity style."""
    return wait_fixed(base_s * (1 - ratio)) + wait_uniform(0.0, 2 * base_s * ratio, rng)


class wait_decorrelated_jitter(wait_base):
    """AWS "decorrelated jitter": each wait is uniform in [min, 3 x previous wait], capped at max."""

    def __init__(self, min_s: float = 1.0, max_s: float = 60.0, rng: random.Random | None = None) -> None:
        if not 0 < min_s <= max_s:
            raise ValueError(f"need 0 < min_s <= max_s, got min_s={min_s} max_s={max_s}")
        self.min_s, self.max_s = min_s, max_s
        self._rng = rng or random.Random()
        self._lock = threading.Lock()
        # The previous wait of each call in flight; entries go with their call's state.
        self._previous: weakref.WeakKeyDictionary[RetryCallState, float] = weakref.WeakKeyDictionary()

    def __call__(self, retry_state: RetryCallState) -> float:
        with self._lock:
            previous = self._previous.get(retry_state, self.min_s)
            wait = min(self.max_s, self._rng.uniform(self.min_s, previous * 3))
            self._previous[retry_state] = wait
        return wait


class wait_retry_after(wait_base):
    """The server's ``Retry-After`` (capped at ``cap_s``) when the outcome carried one, else ``fallback``.

    With ``at_least_fallback`` the server's hint is a floor under ``fallback`` rather than a
    replacement: the wait is the longer of the two. ``hint`` reads it from the outcome
    (default: a failure's ``retry_after_s``).
    """

    def __init__(self, fallback: wait_base, cap_s: float = 3600.0, *, at_least_fallback: bool = False,
                 hint: Hint | None = None) -> None:
        self.fallback, self.cap_s, self.at_least_fallback = fallback, cap_s, at_least_fallback
        self.hint = hint or retry_after_hint

    def __call__(self, retry_state: RetryCallState) -> float:
        asked = self.hint(retry_state)
        if asked is None:
            return float(self.fallback(retry_state))
        hinted = min(max(asked, 0.0), self.cap_s)
        return max(float(self.fallback(retry_state)), hinted) if self.at_least_fallback else hinted


class wait_before(wait_base):
    """``inner``, but never past ``deadline`` on the injected ``monotonic`` clock (nor below 0)."""

    def __init__(self, inner: wait_base, deadline: float, monotonic: Monotonic) -> None:
        self.inner, self.deadline, self.monotonic = inner, deadline, monotonic

    def __call__(self, retry_state: RetryCallState) -> float:
        return max(0.0, min(float(self.inner(retry_state)), self.deadline - self.monotonic()))


def retry_after_hint(retry_state: RetryCallState) -> float | None:
    """The ``retry_after_s`` the last failure carried (a DeliveryError's), if any."""
    outcome = retry_state.outcome
    error = outcome.exception() if outcome is not None and outcome.failed else None
    asked = getattr(error, "retry_after_s", None)
    return float(asked) if isinstance(asked, int | float) and not isinstance(asked, bool) else None


# --- stops -------------------------------------------------------------------------------------

class stop_before_deadline(stop_base):  # tenacity naming, for composition
    """Stop when the next wait would end at or after ``deadline_s`` from the first attempt.

    Elapsed time is the larger of the real time since the first attempt and the sum of the
    waits so far, so an injected ``sleep`` that does not really wait still spends the budget.
    """

    def __init__(self, deadline_s: float) -> None:
        self.deadline_s = deadline_s

    def __call__(self, retry_state: RetryCallState) -> bool:
        elapsed = max(retry_state.seconds_since_start or 0.0, retry_state.idle_for)
        return elapsed + retry_state.upcoming_sleep >= self.deadline_s


class stop_if_retry_after_over(stop_base):
    """Stop when the server asks for a longer wait than ``limit_s`` (a thread is not held that long)."""

    def __init__(self, limit_s: float, hint: Hint | None = None) -> None:
        self.limit_s, self.hint = limit_s, hint or retry_after_hint

    def __call__(self, retry_state: RetryCallState) -> bool:
        asked = self.hint(retry_state)
        return asked is not None and asked > self.limit_s


class stop_at(stop_base):
    """Stop once the injected ``monotonic`` clock reaches ``deadline`` (tenacity reads its own)."""

    def __init__(self, deadline: float, monotonic: Monotonic) -> None:
        self.deadline, self.monotonic = deadline, monotonic

    def __call__(self, retry_state: RetryCallState) -> bool:
        return self.monotonic() >= self.deadline


# --- durable retries: evaluate, never sleep ----------------------------------------------------

def call_state(attempt: int, error: BaseException | None = None, elapsed_s: float = 0.0) -> RetryCallState:
    """The state after attempt ``attempt`` failed with ``error``, ``elapsed_s`` after the first."""
    state = RetryCallState(cast(Any, None), None, (), {})
    state.attempt_number = max(attempt, 1)
    if error is not None:
        state.set_exception((type(error), error, error.__traceback__))
    state.start_time, state.outcome_timestamp = 0.0, max(elapsed_s, 0.0)
    return state


def delay(wait: wait_base, attempt: int, error: BaseException | None = None) -> timedelta:
    """How long ``wait`` says to wait before attempt ``attempt + 1``."""
    return timedelta(seconds=max(float(wait(call_state(attempt, error))), 0.0))


class RetrySchedule:
    """When to try again, as tenacity would decide it (retry?, wait, stop?), without sleeping."""

    def __init__(self, wait: wait_base, stop: stop_base = stop_never,
                 retry: retry_base | None = None) -> None:
        """``retry`` defaults to retrying any exception, as tenacity's does."""
        self.wait, self.stop = wait, stop
        self.retry = retry if retry is not None else retry_if_exception_type()

    def next_delay(self, error: BaseException, attempt: int, elapsed_s: float = 0.0) -> float | None:
        """Seconds to wait before attempt ``attempt + 1``; None to give up.

        ``attempt`` is the number of the attempt that just failed (1 for the first) and
        ``elapsed_s`` the clock time since the first attempt.
        """
        state = call_state(attempt, error, elapsed_s)
        if not self.retry(state):
            return None
        state.upcoming_sleep = max(float(self.wait(state)), 0.0)  # tenacity waits, then stops
        return None if self.stop(state) else state.upcoming_sleep


def parse_retry_after(value: str | None) -> float | None:
    """Seconds from a numeric ``Retry-After`` header, at least 0 (HTTP dates are ignored)."""
    try:
        return max(0.0, float(value)) if value else None
    except ValueError:
        return None
