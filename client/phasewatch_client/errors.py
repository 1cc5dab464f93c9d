"""Errors raised by phasewatch's client (the server raises the same classes).

Hierarchy::

    PhasewatchError
    ├── EventError     an event that cannot be accepted; ``problems`` name the fields
    └── DeliveryError  events were not delivered; ``retryable`` says whether trying again may help

The server's own errors (``monitor.errors``) derive from the same ``PhasewatchError``, so one
``except PhasewatchError`` catches both.
"""

from __future__ import annotations

from dataclasses import dataclass, field


@dataclass(frozen=True)
class Problem:
    """One thing wrong with the input: where, what was given, and what is allowed."""

    field: str
    message: str
    value: str | None = None

    def render(self) -> str:
        given = f" (got {self.value})" if self.value is not None else ""
        return f"{self.field}: {self.message}{given}"

    def as_dict(self) -> dict[str, str]:
        out = {"field": self.field, "message": self.message}
        if self.value is not None:
            out["value"] = self.value
        return out


class PhasewatchError(Exception):
    """Base class of every error phasewatch raises on purpose."""


@dataclass
class EventError(PhasewatchError):
    """Events were rejected; ``reason`` is the bounded label used in metrics."""

    reason: str
    problems: list[Problem] = field(default_factory=list)
    status_code: int = 422

    def __str__(self) -> str:
        return "; ".join(p.render() for p in self.problems) or self.reason


@dataclass
class DeliveryError(PhasewatchError):
    """Events were not delivered; ``retryable`` says whether trying again may succeed."""

    message: str
    status_code: int | None = None
    retryable: bool = True
    retry_after_s: float | None = None
    attempts: int = 1

    def __str__(self) -> str:
        return self.message
