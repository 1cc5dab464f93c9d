"""Errors raised by phasewatch's monitor package.

Hierarchy::

    PhasewatchError          (phasewatch_client.errors: the client raises the same classes)
    ├── ConfigError          a config file is unreadable or invalid (CLI exit 2)
    ├── EventError           events that cannot be accepted (HTTP 4xx, nothing stored)
    │   └── PayloadTooLarge  a request body over the configured limit (HTTP 413)
    ├── CertsUnavailable     Google's token-signing certificates cannot be fetched (HTTP 503)
    ├── IdTokenError         no Google ID token could be minted for a target (a failed send)
    └── StoreError           the store cannot be opened or migrated
"""

from __future__ import annotations

from dataclasses import dataclass, field

from phasewatch_client.errors import EventError, PhasewatchError, Problem

__all__ = [
    "CertsUnavailable",
    "ConfigError",
    "EventError",
    "IdTokenError",
    "PayloadTooLarge",
    "PhasewatchError",
    "Problem",
    "StoreError",
]


@dataclass
class ConfigError(PhasewatchError):
    """A config file could not be read or did not validate."""

    source: str
    problems: list[Problem] = field(default_factory=list)

    def __str__(self) -> str:
        lines = [f"{self.source}: {p.render()}" for p in self.problems]
        return "\n".join(lines) if lines else f"{self.source}: invalid config"


class PayloadTooLarge(EventError):
    """A request body was larger than the configured limit."""


@dataclass
class CertsUnavailable(PhasewatchError):
    """The certificates that verify Pub/Sub push tokens could not be fetched (fail closed)."""

    url: str
    detail: str

    def __str__(self) -> str:
        return f"cannot fetch token-signing certificates from {self.url}: {self.detail}"


@dataclass
class IdTokenError(PhasewatchError):
    """A Google ID token for calling ``audience`` could not be minted (retryable)."""

    audience: str
    reason: str

    def __str__(self) -> str:
        return f"cannot mint an ID token for {self.audience}: {self.reason}"


class StoreError(PhasewatchError):
    """The store could not be opened, migrated or written."""
