"""A file channel: one JSON object per line for each notification or report."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from alerts.errors import DeliveryError
from alerts.notification import Notification, Report


class FileChannel:
    """Appends JSON lines to ``path`` (created with its directory when missing)."""

    def __init__(self, name: str, path: str | Path) -> None:
        self.name = name
        self.path = Path(path)

    def _append(self, record: dict[str, Any]) -> None:
        try:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            with self.path.open("a", encoding="utf-8") as out:
                out.write(json.dumps(record, sort_keys=True) + "\n")
        except OSError as exc:
            raise DeliveryError(self.name, f"cannot write {self.path}: {exc.strerror}",
                                retryable=True) from exc

    def send(self, notification: Notification) -> str | None:
        self._append({"type": "notification", **notification.as_dict()})
        return None

    def send_report(self, report: Report) -> None:
        record = report.as_dict()
        record.pop("blocks")
        self._append({"type": "report", **record})
