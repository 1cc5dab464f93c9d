"""When to try a failed delivery again: the shared tenacity strategies, evaluated against the clock.

The outbox never sleeps. After a failed attempt it asks the policy for the delay before the
next one and stores the due time; the next ``deliver(now)`` past that time tries again. The
policy is a ``phasewatch_client.retry.RetrySchedule`` of tenacity strategies (full jitter,
capped, replaced by the server's ``Retry-After``; stop after a deadline or a number of
attempts; retry only what can succeed later).
"""

from __future__ import annotations

from phasewatch_client.retry import RetrySchedule, wait_retry_after
from tenacity import retry_if_exception, stop_after_attempt, stop_after_delay, wait_random_exponential
from tenacity.stop import stop_base

from alerts.config import DeliveryConfig
from alerts.errors import DeliveryError


def is_retryable(error: BaseException) -> bool:
    """429, 5xx and network failures are; other 4xx never are; unknown errors are (a bug in
    a channel must not lose an alert: it waits in the outbox, logged, until the deadline)."""
    if isinstance(error, DeliveryError):
        return error.retryable
    return isinstance(error, Exception)


class RetryPolicy(RetrySchedule):
    """Capped full-jitter backoff, Retry-After honoured, give up after a deadline."""

    def __init__(self, cfg: DeliveryConfig) -> None:
        stop: stop_base = stop_after_delay(cfg.give_up_after_s)
        if cfg.max_attempts is not None:
            stop = stop | stop_after_attempt(cfg.max_attempts)
        super().__init__(
            wait=wait_retry_after(
                wait_random_exponential(multiplier=cfg.initial_backoff_s, max=cfg.max_backoff_s),
                cfg.retry_after_cap_s,
            ),
            stop=stop,
            retry=retry_if_exception(is_retryable),
        )
