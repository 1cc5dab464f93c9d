"""The store protocols: where accepted events, dead letters and components' tables live.

Two implementations: ``SQLiteStore`` (one file, one process) and ``PostgresStore`` (one
database that several phasewatch processes share). Components write SQL in one dialect
for both: SQLite's, with ``?`` parameters, ``ON CONFLICT`` upserts and ``RETURNING``.
"""

from __future__ import annotations

import os
import secrets
import socket
from collections.abc import Collection, Iterable, Iterator, Mapping, Sequence
from contextlib import AbstractContextManager
from dataclasses import dataclass
from datetime import UTC, date, datetime
from typing import Any, Literal, Protocol, overload, runtime_checkable

from monitor.events import Event, date_text

Migration = str | Mapping[str, str]
"""One schema step: SQL both stores run (SQLite's DDL, which PostgreSQL's store translates
for its types: see ``monitor.store.migrations``), or the SQL per dialect
(``{"sqlite": ..., "postgresql": ...}``) where a statement is not portable. No ``;``
inside a statement: a step is split on it."""


ProgressRead = Literal["all", "first"]
"""Which ``progress`` events a read returns: ``all``, or ``first``: not those that repeat the
one stored just before them (``EventStore.events``), which change no SLO unit."""


@dataclass(frozen=True)
class AppendResult:
    """What an append did: ``inserted[i]`` is False where event i was a duplicate;
    ``position``: the store's position once the batch was in (None from a store shared with
    other processes, whose positions interleave); ``first`` and ``last``: the positions of
    the batch's first and last new event (from a shared store; None when all were
    duplicates)."""

    inserted: tuple[bool, ...]
    position: int | None = None
    first: int | None = None
    last: int | None = None

    @property
    def accepted(self) -> int:
        return sum(self.inserted)

    @property
    def duplicates(self) -> int:
        return len(self.inserted) - self.accepted


@dataclass(frozen=True)
class Tailed:
    """An event another process stored (or, ``own``, this one), and whether it was stored
    as a backfill."""

    event: Event
    backfill: bool = False
    own: bool = False


@dataclass(frozen=True)
class Stored:
    """A stored event, its position and when it was stored (its arrival)."""

    position: int
    event: Event
    received_at: datetime


RunKey = tuple[str, str, str]  # (pipeline, run date ISO, mode)


@dataclass(frozen=True)
class Repeat:
    """Progress events that repeat the event stored just before them (``EventStore.events``),
    stored one after another, as ``history(progress="first")`` returns them: their bodies
    unread; the last one's position, their run, their latest arrival (when their run was
    last seen: what the tracker's eviction reads) and how many they are."""

    position: int
    run: RunKey
    received_at: datetime
    count: int = 1


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
    """Durable, idempotent event storage. Events must carry a resolved ``mode``.

    Every stored event has a position (its arrival sequence number). Positions grow in
    commit order, so a process that has read up to a position has seen every event
    before it: ``tail`` is how a process follows what others store in a shared store.
    """

    @property
    def instance(self) -> str:
        """This process's id: the origin recorded with the events it appends."""
        ...

    @property
    def shared(self) -> bool:
        """Whether other processes may use the same store at the same time."""
        ...

    def append(self, events: Sequence[Event], received_at: datetime, *,
               backfill: bool = False) -> AppendResult:
        """Store a batch all or nothing; events whose event_id is known are skipped.
        ``backfill``: imported history (kept with the events: processes that follow them
        never act on them either)."""
        ...

    def events(
        self, *, pipeline: str | None = None, since_run_date: date | None = None,
        until: int | None = None, after: int = 0, at: datetime | None = None,
        progress: ProgressRead = "all",
    ) -> Iterator[Event]:
        """Stored events in arrival order, optionally filtered (``until``: up to that position,
        ``after``: past that position, ``at``: whose own time is not after it).

        ``progress="first"``: without the progress events that repeat the event stored just
        before them (an event of the same run, phase and processor, no later in event time,
        that this read returns too): the first event of each (pipeline, run date, mode, phase,
        processor) is read, and one at each pipeline's earliest event time. What only the SLO
        ledgers read (``phasewatch slo report``): a repeat changes no SLO unit. Its
        processor (or phase) is already running, so it changes only what no SLI reads (the
        run's latest event time, the processor's last heartbeat, a batch's progress); it
        completes or fails nothing, the phase-run verdict it writes again is the one the event
        before it wrote, its run date and phase were seen, and it is not earlier than the
        event before it (``tests/test_progress_read.py``)."""
        ...

    @overload
    def history(
        self, *, since_run_date: date | None, runs: Collection[RunKey] = (), until: int,
        after: int = 0, progress: Literal["all"] = "all",
    ) -> Iterator[Stored]: ...

    @overload
    def history(
        self, *, since_run_date: date | None, runs: Collection[RunKey] = (), until: int,
        after: int = 0, progress: ProgressRead,
    ) -> Iterator[Stored | Repeat]: ...

    def history(
        self, *, since_run_date: date | None, runs: Collection[RunKey] = (), until: int,
        after: int = 0, progress: ProgressRead = "all",
    ) -> Iterator[Stored] | Iterator[Stored | Repeat]:
        """The events of run dates from ``since_run_date`` on (every run date if None), and
        of ``runs`` whatever their run date, stored after position ``after`` and up to
        ``until``, in arrival order (read by run date). ``progress="first"``: the progress
        events that repeat the event stored just before them (those ``events`` leaves out)
        come as ``Repeat`` marks, one for each that follow one another, their bodies unread
        (a cold command's rebuild, ``Phasewatch.rebuild``)."""
        ...

    def runs_received_since(
        self, when: datetime, *, before_run_date: date, until: int, limit: int,
    ) -> list[RunKey]:
        """Runs with a run date before ``before_run_date`` that received an event at or after
        ``when`` (up to position ``until``): the latest to receive one first, at most
        ``limit``. Reads the events stored since ``when`` only."""
        ...

    def received_since(self, when: datetime, *, until: int) -> list[Tailed]:
        """The events stored at or after ``when`` (up to position ``until``), in arrival
        order, with their backfill flag. Reads the events stored since ``when`` only."""
        ...

    def position(self) -> int:
        """The position of the newest stored event (0 for an empty store)."""
        ...

    def tail(self, after: int, limit: int = 1000, *, own: bool = False,
             until: int | None = None, skip: set[str] | None = None) -> tuple[list[Tailed], int]:
        """Events other processes (with ``own``, any process) stored after position ``after``
        (and up to ``until``; at most ``limit`` rows read), and the position read up to:
        pass it as ``after`` next time. This process's events whose id is in ``skip`` are
        left out, unread, and their ids taken out of it."""
        ...

    def judged(self) -> int | None:
        """The position up to which every stored event was judged (``mark_judged``); None if
        none was ever marked (a store written before marks were kept)."""
        ...

    def mark_judged(self, position: int) -> None:
        """Every event up to ``position`` was judged: folded into run state and told to the
        listeners (a single-process store's writer marks it after each batch, a shared
        store's leader as it judges). A mark never goes back."""
        ...

    def latest_run_dates(self, *, pipeline: str | None = None, limit: int = 2) -> list[date]:
        """The ``limit`` latest run dates stored (of ``pipeline``), newest first."""
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

    def oldest_dead_letters(
        self, *, ids: Collection[int] | None = None, reason: str | None = None,
        after: int = 0, limit: int = 100,
    ) -> list[DeadLetter]:
        """At most ``limit`` dead letters with an id greater than ``after``, of ``ids`` (every
        id if None) and ``reason`` (every reason if None), oldest first (a redrive's batch)."""
        ...

    def count_dead_letters(
        self, *, ids: Collection[int] | None = None, reason: str | None = None, after: int = 0,
    ) -> int:
        """How many dead letters ``oldest_dead_letters`` would select without its limit."""
        ...

    def remove_dead_letters(self, ids: Collection[int]) -> int:
        """Delete the dead letters of ``ids`` in one transaction (a redrive: only after their
        events are stored, so a crash between the two loses nothing: the next redrive finds
        them duplicates); how many there were."""
        ...

    def close(self) -> None:
        """Release the store's resources."""
        ...


class Cursor(Protocol):
    """What a statement returns: its rows and how many rows it changed."""

    @property
    def rowcount(self) -> int: ...

    def fetchone(self) -> Any: ...

    def fetchall(self) -> list[Any]: ...


class Connection(Protocol):
    """The connection of one transaction (``sqlite3.Connection`` is one): ``?`` parameters."""

    def execute(self, sql: str, parameters: Sequence[Any] = (), /) -> Cursor: ...

    def executemany(self, sql: str, seq_of_parameters: Iterable[Sequence[Any]], /) -> Cursor: ...


@runtime_checkable
class ComponentStore(Protocol):
    """What a component with tables of its own (actuator, alert outbox) needs of the store."""

    def migrate_component(self, component: str, migrations: Sequence[Migration]) -> None:
        """Apply the steps of ``component`` this database has not had yet."""
        ...

    def transaction(self) -> AbstractContextManager[Connection]:
        """One write transaction, committed at the end of the block, rolled back on error."""
        ...

    def read(self, query: str, params: Sequence[object] = ()) -> list[tuple[Any, ...]]:
        """The rows of a read-only query."""
        ...


def utc_text(when: datetime) -> str:
    """A timestamp as fixed-width UTC text that sorts in time order."""
    if when.tzinfo is not UTC and when.utcoffset():  # UTC itself needs no question
        when = when.astimezone(UTC)
    # The date's text remembered and the time's without a zone: ingest runs this on every
    # event, and an aware datetime's isoformat(timespec=...) costs twice as much, strftime
    # five times.
    return f"{date_text(when.date())}T{when.time().isoformat('microseconds')}Z"


def parse_time(text: str | None) -> datetime | None:
    """A stored timestamp (ISO text) back as a datetime; None stays None."""
    return datetime.fromisoformat(text) if text else None


def new_instance_id() -> str:
    """An id for this process among those sharing a store (host, pid and a random part)."""
    host = "".join(c if c.isalnum() or c in ".-" else "-" for c in socket.gethostname())[:40]
    return f"{host}-{os.getpid()}-{secrets.token_hex(3)}"
