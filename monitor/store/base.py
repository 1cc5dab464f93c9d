"""The store protocol: where accepted events and dead letters live."""

from __future__ import annotations

import sqlite3
from collections.abc import Iterator, Sequence
from contextlib import AbstractContextManager
from dataclasses import dataclass
from datetime import date, datetime
from typing import Any, Protocol

from monitor.events import Event


@dataclass(frozen=True)
class AppendResult:
    """What an append did: ``inserted[i]`` is False where event i was a duplicate."""

    inserted: tuple[bool, ...]

    @property
    def accepted(self) -> int:
        return sum(self.inserted)

    @property
    def duplicates(self) -> int:
        return len(self.inserted) - self.accepted


@dataclass(frozen=True)
class DeadLetter:
    """A message that can never become a valid event, kept for inspection."""

    id: int
    received_at: datetime
    source: str
    message_id: str | None
    reason: str
    detail: str
    payload: str


class EventStore(Protocol):
    """Durable, idempotent event storage. Events must carry a resolved ``mode``."""

    def append(self, events: Sequence[Event], received_at: datetime) -> AppendResult:
        """Store a batch all or nothing; events whose event_id is known are skipped."""
        ...

    def events(
        self, *, pipeline: str | None = None, since_run_date: date | None = None
    ) -> Iterator[Event]:
        """Stored events in arrival order, optionally filtered."""
        ...

    def count(self) -> int:
        """How many events are stored."""
        ...

    def add_dead_letter(
        self, *, received_at: datetime, source: str, message_id: str | None,
        reason: str, detail: str, payload: str,
    ) -> bool:
        """Keep a poison message; False when this message id was already dead-lettered."""
        ...

    def dead_letters(self, limit: int = 100) -> list[DeadLetter]:
        """The most recent dead letters, newest first."""
        ...

    def close(self) -> None:
        """Release the store's resources."""
        ...


class ComponentStore(Protocol):
    """What a component with tables of its own (actuator, alert outbox) needs of the store."""

    def migrate_component(self, component: str, migrations: Sequence[str]) -> None: ...

    def transaction(self) -> AbstractContextManager[sqlite3.Connection]: ...

    def read(self, query: str, params: Sequence[object] = ()) -> list[tuple[Any, ...]]: ...


def parse_time(text: str | None) -> datetime | None:
    """A stored timestamp (ISO text) back as a datetime; None stays None."""
    return datetime.fromisoformat(text) if text else None
