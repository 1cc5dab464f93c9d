"""The router seam: every alert goes through one Router to its channels.

This is the minimal router the rest of phasewatch raises alerts through: it deduplicates
by key (a firing alert is sent once until it resolves) and sends resolves. Grouping,
silences, inhibition and durable delivery replace it behind the same protocol.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, replace
from datetime import datetime
from typing import Any, Literal, Protocol

from alerts.model import Alert

log = logging.getLogger(__name__)

Action = Literal["trigger", "resolve"]


@dataclass(frozen=True)
class Notification:
    """One message to a channel: an alert firing (trigger) or clearing (resolve)."""

    action: Action
    alert: Alert
    at: datetime


@dataclass(frozen=True)
class Delivery:
    """A notification and the channels it went to (for the replay report and the API)."""

    notification: Notification
    channels: tuple[str, ...]

    def as_dict(self) -> dict[str, Any]:
        alert = self.notification.alert
        return {
            "time": self.notification.at.isoformat(),
            "severity": alert.severity,
            "action": self.notification.action,
            "key": alert.key,
            "summary": alert.summary,
            "labels": dict(alert.labels),
            "channels": list(self.channels),
        }


class Channel(Protocol):
    """Somewhere notifications are delivered."""

    name: str

    def send(self, notification: Notification) -> None:
        """Deliver one notification; raise on failure."""
        ...


class Router(Protocol):
    """Where the evaluators raise and clear alerts."""

    def fire(self, alert: Alert) -> None:
        """Raise ``alert``; repeats of a firing key are absorbed."""
        ...

    def resolve(self, key: str, at: datetime) -> None:
        """Clear the alert with ``key`` if it is firing."""
        ...

    def active(self) -> list[Alert]:
        """Alerts firing now."""
        ...


class LogChannel:
    """Writes each notification as one structured log line."""

    name = "log"

    def __init__(self, logger: logging.Logger | None = None) -> None:
        self._log = logger or log

    def send(self, notification: Notification) -> None:
        alert = notification.alert
        labels = " ".join(f"{k}={v}" for k, v in sorted(alert.labels.items()))
        self._log.warning(
            "event=alert.%s severity=%s key=%s summary=%r %s",
            notification.action, alert.severity, alert.key, alert.summary, labels,
        )


class MemoryChannel:
    """Keeps notifications in a list (for users' own tests)."""

    def __init__(self, name: str = "memory") -> None:
        self.name = name
        self.sent: list[Notification] = []

    def send(self, notification: Notification) -> None:
        self.sent.append(notification)


class SimpleRouter:
    """Dedup by key, resolve on clear, fan out to every channel; keeps a delivery history."""

    def __init__(self, channels: list[Channel], history_limit: int = 10_000) -> None:
        self.channels = channels
        self.history: list[Delivery] = []
        self._active: dict[str, Alert] = {}
        self._limit = history_limit

    def fire(self, alert: Alert) -> None:
        if alert.key in self._active:
            return
        self._active[alert.key] = alert
        self._send(Notification("trigger", alert, alert.at))

    def resolve(self, key: str, at: datetime) -> None:
        alert = self._active.pop(key, None)
        if alert is None:
            return
        self._send(Notification("resolve", replace(alert, state="resolved", at=at), at))

    def active(self) -> list[Alert]:
        return list(self._active.values())

    def _send(self, notification: Notification) -> None:
        delivered: list[str] = []
        for channel in self.channels:
            try:
                channel.send(notification)
                delivered.append(channel.name)
            except Exception:
                log.exception("event=alert.delivery_failed channel=%s key=%s",
                              channel.name, notification.alert.key)
        self.history.append(Delivery(notification, tuple(delivered)))
        if len(self.history) > self._limit:
            del self.history[: len(self.history) - self._limit]
