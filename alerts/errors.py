"""Errors raised by the alerts package.

Hierarchy::

    PhasewatchError (monitor.errors)
    └── AlertsError
        ├── DeliveryError        a channel could not deliver a message (retryable or not)
        ├── InvalidMatcher       a matcher string that does not parse (also a ValueError,
        │                        so config validation reports it on the field)
        ├── InvalidSilence       a silence request that fails validation; also an
        │                        EventError(reason="invalid_silence", 422), so the HTTP
        │                        service renders it like any other bad request
        └── UnknownSilence       no silence with that id
"""

from __future__ import annotations

from dataclasses import dataclass

from monitor.errors import EventError, PhasewatchError


class AlertsError(PhasewatchError):
    """Base class of the errors the alerts package raises on purpose."""


class DeliveryError(AlertsError):
    """A channel failed to deliver; ``retryable`` and ``retry_after_s`` drive the outbox."""

    def __init__(
        self, channel: str, message: str, *, retryable: bool,
        status: int | None = None, retry_after_s: float | None = None,
    ) -> None:
        super().__init__(f"{channel}: {message}")
        self.channel = channel
        self.message = message
        self.retryable = retryable
        self.status = status
        self.retry_after_s = retry_after_s

    @classmethod
    def from_status(
        cls, channel: str, status: int, detail: str = "", retry_after_s: float | None = None,
    ) -> DeliveryError:
        """429 and 5xx are worth retrying; any other 4xx never is (the request is wrong)."""
        retryable = status == 429 or status >= 500
        text = f"HTTP {status}" + (f": {detail[:200]}" if detail else "")
        return cls(channel, text, retryable=retryable, status=status, retry_after_s=retry_after_s)


class InvalidMatcher(AlertsError, ValueError):
    """A label matcher that does not parse or whose regex does not compile."""


@dataclass
class InvalidSilence(AlertsError, EventError):
    """A silence request that does not validate; ``problems`` name each bad field."""

    reason: str = "invalid_silence"
    status_code: int = 422


class UnknownSilence(AlertsError, KeyError):
    """No silence has that id."""

    def __init__(self, silence_id: str) -> None:
        super().__init__(silence_id)
        self.silence_id = silence_id

    def __str__(self) -> str:
        return f"no silence with id {self.silence_id!r}"

