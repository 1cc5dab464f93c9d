"""Times and durations as a person reads them on the page."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from zoneinfo import ZoneInfo


@dataclass(frozen=True)
class Clock:
    """Formats RFC 3339 times (as the API gives them) in one timezone."""

    tz: ZoneInfo

    def local(self, text: str) -> datetime:
        return datetime.fromisoformat(text).astimezone(self.tz)

    def short(self, text: str | None) -> str:
        """``01-24 06:12`` (month-day hour:minute), or ``-`` for no time."""
        return self.local(text).strftime("%m-%d %H:%M") if text else "-"

    def full(self, text: str) -> str:
        """``2026-01-24 06:12 EST``."""
        return self.local(text).strftime("%Y-%m-%d %H:%M %Z")

