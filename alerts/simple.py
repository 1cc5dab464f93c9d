"""The minimal router: dedup by key, resolve on clear, fan out at once, nothing durable.

Kept for users' own tests and tools that want no database; phasewatch itself runs the
``AlertRouter`` (grouping, silences, inhibition, durable delivery).
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from dataclasses import replace
from datetime import datetime

from alerts.channels.base import Channel
from alerts.model import Alert
from alerts.notification import Delivery, Notification

log = logging.getLogger(__name__)


class SimpleRouter:
    """Dedup by key, resolve on clear, fan out to every channel; keeps a delivery history."""

    def __init__(self, channels: Sequence[Channel], history_limit: int = 10_000) -> None:
        self.channels = list(channels)
        self.history: list[Delivery] = []
        self._active: dict[str, Alert] = {}
        self._limit = history_limit

    def fire(self, alert: Alert, *, news: bool = False) -> None:
        if alert.key in self._active:
            if news:  # it spread: told again, with what it says now
                self._active[alert.key] = alert
                self._send(Notification("trigger", alert, alert.at, repeat=True))
            return
        self._active[alert.key] = alert
        self._send(Notification("trigger", alert, alert.at))

    def resolve(self, key: str, at: datetime, summary: str | None = None) -> None:
        alert = self._active.pop(key, None)
        if alert is None:
            return
        self._send(Notification("resolve", replace(
            alert, state="resolved", at=at, summary=summary or alert.summary), at))

    def active(self) -> list[Alert]:
        return list(self._active.values())

    def tick(self, now: datetime) -> list[Delivery]:
        return []

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
