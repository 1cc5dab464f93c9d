"""A token bucket on the injected clock: how many messages a channel may send now."""

from __future__ import annotations

from datetime import datetime


class TokenBucket:
    """``rate_per_s`` sustained, ``burst`` back to back; refilled from the time passed."""

    def __init__(self, rate_per_s: float, burst: int) -> None:
        if rate_per_s <= 0 or burst < 1:
            raise ValueError("rate_per_s must be > 0 and burst >= 1")
        self.rate = rate_per_s
        self.burst = float(burst)
        self.tokens = float(burst)
        self.updated: datetime | None = None

    def _refill(self, now: datetime) -> None:
        if self.updated is not None:
            elapsed = max((now - self.updated).total_seconds(), 0.0)  # time may not go back
            self.tokens = min(self.burst, self.tokens + elapsed * self.rate)
        if self.updated is None or now > self.updated:
            self.updated = now

    def take(self, now: datetime) -> bool:
        """Spend one token if there is one."""
        self._refill(now)
        if self.tokens >= 1.0:
            self.tokens -= 1.0
            return True
        return False

    def wait_s(self, now: datetime) -> float:
        """Seconds until a token is available."""
        self._refill(now)
        return max(0.0, (1.0 - self.tokens) / self.rate)
