"""The embedded default channel: one structured log line per notification."""

from __future__ import annotations

import logging

from alerts.notification import Notification, Report

log = logging.getLogger("alerts.channels.log")


class LogChannel:
    """Writes each notification as one structured log line (and reports as text)."""

    def __init__(self, logger: logging.Logger | None = None, name: str = "log") -> None:
        self._log = logger or log
        self.name = name

    def send(self, notification: Notification) -> str | None:
        alert = notification.alert
        labels = " ".join(f"{k}={v}" for k, v in sorted(alert.labels.items()))
        action = "repeat" if notification.repeat else notification.action
        self._log.warning(
            "event=alert.%s severity=%s key=%s count=%d summary=%r %s",
            action, alert.severity, alert.key, alert.count, alert.summary, labels,
        )
        return None

    def send_report(self, report: Report) -> None:
        self._log.warning("event=report.%s status=%s title=%r\n%s",
                          report.kind, report.status, report.title, report.text)
