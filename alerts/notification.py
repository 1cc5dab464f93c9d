"""What the router hands to channels: notifications about alerts, and reports."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, Literal, cast

from alerts.model import Alert

Action = Literal["trigger", "resolve"]


@dataclass(frozen=True)
class Notification:
    """One message to a channel: an alert firing (trigger) or clearing (resolve).

    ``repeat`` marks a reminder for an alert already notified; a trigger of an alert that is
    already resolved is a notice (see ``notice``); ``started_at`` is when the
    alert began firing; ``ref`` is what the channel returned when it delivered the trigger
    of this alert (a Slack message's ``channel:ts``), so a resolve can update that message.
    """

    action: Action
    alert: Alert
    at: datetime
    repeat: bool = False
    started_at: datetime | None = None
    group: str = ""
    ref: str | None = None

    @property
    def notice(self) -> bool:
        """A one-off event (raised and cleared at once): told once, never resolved."""
        return self.action == "trigger" and self.alert.state == "resolved"

    @property
    def opened_at(self) -> datetime:
        return self.started_at or self.alert.at

    def as_dict(self) -> dict[str, Any]:
        return {
            "action": self.action, "alert": self.alert.as_dict(), "at": self.at.isoformat(),
            "repeat": self.repeat, "group": self.group,
            "started_at": self.started_at.isoformat() if self.started_at else None,
        }

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> Notification:
        started = data.get("started_at")
        return cls(
            action=cast(Action, data["action"]), alert=Alert.from_dict(data["alert"]),
            at=datetime.fromisoformat(data["at"]), repeat=bool(data.get("repeat", False)),
            started_at=datetime.fromisoformat(started) if started else None,
            group=str(data.get("group", "")),
        )


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
            "count": alert.count,
            "repeat": self.notification.repeat,
        }


ReportStatus = Literal["healthy", "degraded", "critical"]


@dataclass(frozen=True)
class Report:
    """A message that is not an alert: the daily health summary (plain text and Block Kit)."""

    kind: str
    title: str
    text: str
    at: datetime
    status: ReportStatus = "healthy"
    blocks: Sequence[Mapping[str, Any]] = field(default_factory=tuple)

    def as_dict(self) -> dict[str, Any]:
        return {
            "kind": self.kind, "title": self.title, "text": self.text, "status": self.status,
            "at": self.at.isoformat(), "blocks": [dict(b) for b in self.blocks],
        }

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> Report:
        return cls(
            kind=str(data["kind"]), title=str(data["title"]), text=str(data["text"]),
            at=datetime.fromisoformat(data["at"]), status=cast(ReportStatus, data["status"]),
            blocks=tuple(data.get("blocks", ())),
        )
