"""The channel protocol: somewhere notifications (and optionally reports) are delivered.

A channel sends one notification per call and raises ``DeliveryError`` on failure, saying
whether a retry can help (429, 5xx, network) or not (any other 4xx). It never sleeps and
never retries by itself: the outbox decides when to try again, on the injected clock.
"""

from __future__ import annotations

from typing import Protocol, runtime_checkable

from alerts.errors import DeliveryError
from alerts.notification import Notification, Report


@runtime_checkable
class Channel(Protocol):
    """Delivers notifications; ``send`` returns a reference to what it created (or None)."""

    name: str

    def send(self, notification: Notification) -> str | None:
        """Deliver one notification; raise DeliveryError (or anything: retried) on failure."""
        ...


@runtime_checkable
class ReportChannel(Protocol):
    """A channel that can also carry reports such as the daily health summary."""

    name: str

    def send_report(self, report: Report) -> None:
        """Deliver one report; raise DeliveryError on failure."""
        ...


def parse_retry_after(value: str | None, cap_s: float = 3600.0) -> float | None:
    """Seconds from a ``Retry-After`` header (delta-seconds form), capped; None when absent."""
    if value is None:
        return None
    try:
        seconds = float(value.strip())
    except ValueError:
        return None  # an HTTP-date: rare from these providers; the backoff applies instead
    if seconds != seconds or seconds < 0:  # NaN or negative
        return None
    return min(seconds, cap_s)


class UnavailableChannel:
    """Stands in for a channel whose secret is not set: every send fails and is retried,
    so the alerts wait in the outbox until the channel is configured and phasewatch restarts."""

    def __init__(self, name: str, reason: str) -> None:
        self.name = name
        self.reason = reason

    def send(self, notification: Notification) -> str | None:
        raise DeliveryError(self.name, self.reason, retryable=True)

    def send_report(self, report: Report) -> None:
        raise DeliveryError(self.name, self.reason, retryable=True)
