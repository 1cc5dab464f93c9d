"""An in-memory channel for users' own tests: keeps what it was sent, fails on request."""

from __future__ import annotations

from alerts.errors import DeliveryError
from alerts.notification import Notification, Report


class MemoryChannel:
    """Keeps notifications in ``sent`` and reports in ``reports``.

    Queue errors in ``failures`` to make the next sends fail with them, in order.
    """

    def __init__(self, name: str = "memory") -> None:
        self.name = name
        self.sent: list[Notification] = []
        self.reports: list[Report] = []
        self.failures: list[DeliveryError] = []

    def send(self, notification: Notification) -> str | None:
        if self.failures:
            raise self.failures.pop(0)
        self.sent.append(notification)
        return f"{self.name}:{len(self.sent)}"

    def send_report(self, report: Report) -> None:
        if self.failures:
            raise self.failures.pop(0)
        self.reports.append(report)
