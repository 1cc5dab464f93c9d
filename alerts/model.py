"""The alert model: a stable key, a severity, a summary, labels, firing or resolved."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, Literal

Severity = Literal["critical", "warning", "info"]
State = Literal["firing", "resolved"]
SEVERITIES: tuple[Severity, ...] = ("critical", "warning", "info")


def alert_key(kind: str, labels: Mapping[str, str]) -> str:
    """A stable key: the same condition on the same subject always gets the same key."""
    parts = ",".join(f"{k}={labels[k]}" for k in sorted(labels))
    return f"{kind}:{parts}" if parts else kind


@dataclass(frozen=True)
class Alert:
    """A condition someone should know about, keyed so that repeats deduplicate."""

    key: str
    severity: Severity
    summary: str
    at: datetime
    details: str = ""
    labels: Mapping[str, str] = field(default_factory=dict)
    links: Mapping[str, str] = field(default_factory=dict)
    state: State = "firing"

    def __post_init__(self) -> None:
        if self.severity not in SEVERITIES:
            raise ValueError(f"severity {self.severity!r}; allowed: {', '.join(SEVERITIES)}")
        if self.at.tzinfo is None:
            raise ValueError("Alert.at must be timezone-aware")

    def as_dict(self) -> dict[str, Any]:
        return {
            "key": self.key, "severity": self.severity, "summary": self.summary,
            "details": self.details, "labels": dict(self.labels), "links": dict(self.links),
            "state": self.state, "time": self.at.isoformat(),
        }
