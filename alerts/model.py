"""The alert model: a stable key, a severity, a summary, labels, firing or resolved."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, Literal, cast

Severity = Literal["critical", "warning", "info"]
State = Literal["firing", "resolved"]
SEVERITIES: tuple[Severity, ...] = ("critical", "warning", "info")
SEVERITY_RANK: dict[str, int] = {"info": 0, "warning": 1, "critical": 2}

# Labels every alert can be matched on besides its own: routes, silences and inhibit rules
# see ``alertname`` (the kind before the key's first colon) and ``severity``.
ALERTNAME = "alertname"
SEVERITY = "severity"
# An annotation its emitter sets on an alert that continues a problem already told (a gap
# that recurs run after run): the router holds it back like a silenced one, for its episode.
KNOWN_GAP = "known_gap"


def alert_key(kind: str, labels: Mapping[str, str]) -> str:
    """A stable key: the same condition on the same subject always gets the same key."""
    parts = ",".join(f"{k}={labels[k]}" for k in sorted(labels))
    return f"{kind}:{parts}" if parts else kind


@dataclass(frozen=True)
class Alert:
    """A condition someone should know about, keyed so that repeats deduplicate.

    ``count`` is how many occurrences this alert stands for: the router adds up the counts
    of repeated fires of one key (flood control), so 500 identical failures are one alert
    with ``count=500``.
    """

    key: str
    severity: Severity
    summary: str
    at: datetime
    details: str = ""
    labels: Mapping[str, str] = field(default_factory=dict)
    links: Mapping[str, str] = field(default_factory=dict)
    state: State = "firing"
    count: int = 1

    def __post_init__(self) -> None:
        if self.severity not in SEVERITIES:
            raise ValueError(f"severity {self.severity!r}; allowed: {', '.join(SEVERITIES)}")
        if self.at.tzinfo is None:
            raise ValueError("Alert.at must be timezone-aware")
        if self.count < 1:
            raise ValueError(f"Alert.count must be at least 1 (got {self.count})")

    @property
    def name(self) -> str:
        """The alert's kind: its ``alertname`` label, else the key up to the first colon."""
        return self.labels.get(ALERTNAME) or self.key.split(":", 1)[0]

    def match_labels(self) -> dict[str, str]:
        """The labels routes, silences and inhibit rules match on (with alertname, severity)."""
        out = dict(self.labels)
        out.setdefault(ALERTNAME, self.name)
        out[SEVERITY] = self.severity
        return out

    def as_dict(self) -> dict[str, Any]:
        return {
            "key": self.key, "severity": self.severity, "summary": self.summary,
            "details": self.details, "labels": dict(self.labels), "links": dict(self.links),
            "state": self.state, "time": self.at.isoformat(), "count": self.count,
        }

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> Alert:
        """The inverse of ``as_dict`` (for the outbox and the stored alert state)."""
        return cls(
            key=str(data["key"]), severity=cast(Severity, data["severity"]),
            summary=str(data["summary"]), at=datetime.fromisoformat(data["time"]),
            details=str(data.get("details", "")), labels=dict(data.get("labels", {})),
            links=dict(data.get("links", {})), state=cast(State, data.get("state", "firing")),
            count=int(data.get("count", 1)),
        )
