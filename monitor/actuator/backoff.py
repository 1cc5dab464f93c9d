"""Retry timing as tenacity wait strategies, evaluated against the clock (never slept on).

The actuator does not sleep: a failed or deferred delivery gets a ``next_attempt_at`` and
a later tick picks it up. The waits compose like tenacity's own (``a + b``) and draw their
jitter from an injected ``random.Random`` so that a replay is reproducible.
"""

from __future__ import annotations

import random
from datetime import timedelta
from typing import Any, cast

from tenacity import RetryCallState
from tenacity.wait import wait_base, wait_exponential, wait_fixed


class wait_full_jitter(wait_base):
    """Capped full jitter: uniform(0, min(maximum, initial x 2^(attempt - 1)))."""

    def __init__(self, initial: float, maximum: float, rng: random.Random) -> None:
        self.cap = wait_exponential(multiplier=initial, max=maximum)
        self.rng = rng

    def __call__(self, retry_state: RetryCallState) -> float:
        return self.rng.uniform(0.0, self.cap(retry_state))


class wait_uniform(wait_base):
    """Uniform in [low, high] from the injected generator (tenacity's wait_random uses the global one)."""

    def __init__(self, low: float, high: float, rng: random.Random) -> None:
        self.low, self.high, self.rng = low, high, rng

    def __call__(self, retry_state: RetryCallState) -> float:
        return self.rng.uniform(self.low, self.high)


def jittered(base_s: float, ratio: float, rng: random.Random) -> wait_base:
    """``base_s`` plus or minus ``ratio`` of it: fixed + uniform, tenacity style."""
    return wait_fixed(base_s * (1 - ratio)) + wait_uniform(0.0, 2 * base_s * ratio, rng)


def delay(wait: wait_base, attempt: int) -> timedelta:
    """How long ``wait`` says to wait before attempt ``attempt + 1``."""
    state = RetryCallState(cast(Any, None), None, (), {})
    state.attempt_number = max(attempt, 1)
    return timedelta(seconds=max(float(wait(state)), 0.0))
