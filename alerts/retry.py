"""When to try a failed delivery again: tenacity strategies evaluated against the clock.

The outbox never sleeps. After a failed attempt it asks the policy for the delay before the
next one and stores the due time; the next ``deliver(now)`` past that time tries again. The
policy is built from tenacity's own strategies (full jitter, capped, composed with the
server's ``Retry-After``; stop after a deadline or a number of attempts; retry only what
can succeed later), fed a ``RetryCallState`` whose times come from the injected clock.
"""

from __future__ import annotations

from tenacity import (
    RetryCallState,
    Retrying,
    retry_if_exception,
    stop_after_attempt,
    stop_after_delay,
    wait_random_exponential,
)
from tenacity.stop import stop_base
from tenacity.wait import wait_base

from alerts.config import DeliveryConfig
from alerts.errors import DeliveryError


class wait_retry_after(wait_base):  # named like tenacity's own strategies
    """The server's ``Retry-After`` when the failure carried one (capped), else ``fallback``."""

    def __init__(self, fallback: wait_base, cap_s: float = 3600.0) -> None:
        self.fallback = fallback
        self.cap_s = cap_s

    def __call__(self, retry_state: RetryCallState) -> float:
        outcome = retry_state.outcome
        error = outcome.exception() if outcome is not None and outcome.failed else None
        asked = getattr(error, "retry_after_s", None)
        if isinstance(asked, int | float):
            return float(min(max(asked, 0.0), self.cap_s))
        return self.fallback(retry_state)


def is_retryable(error: BaseException) -> bool:
    """429, 5xx and network failures are; other 4xx never are; unknown errors are (a bug in
    a channel must not lose an alert: it waits in the outbox, logged, until the deadline)."""
    if isinstance(error, DeliveryError):
        return error.retryable
    return isinstance(error, Exception)


def _no_sleep(seconds: float) -> None:  # the policy only computes delays
    raise AssertionError("the delivery retry policy never sleeps")


class RetryPolicy:
    """Capped full-jitter backoff, Retry-After honoured, give up after a deadline."""

    def __init__(self, cfg: DeliveryConfig) -> None:
        stop: stop_base = stop_after_delay(cfg.give_up_after_s)
        if cfg.max_attempts is not None:
            stop = stop | stop_after_attempt(cfg.max_attempts)
        self.retrying = Retrying(
            wait=wait_retry_after(
                wait_random_exponential(multiplier=cfg.initial_backoff_s, max=cfg.max_backoff_s),
                cfg.retry_after_cap_s,
            ),
            stop=stop,
            retry=retry_if_exception(is_retryable),
            sleep=_no_sleep,
        )

    def next_delay(self, error: BaseException, attempt: int, elapsed_s: float) -> float | None:
        """Seconds to wait before attempt ``attempt + 1``; None to give up.

        ``attempt`` is the number of the attempt that just failed (1 for the first) and
        ``elapsed_s`` the clock time since the first attempt.
        """
        state = RetryCallState(self.retrying, None, (), {})
        state.attempt_number = attempt
        state.set_exception((type(error), error, error.__traceback__))
        state.start_time, state.outcome_timestamp = 0.0, max(elapsed_s, 0.0)
        if not self.retrying.retry(state) or self.retrying.stop(state):
            return None
        return float(self.retrying.wait(state))
