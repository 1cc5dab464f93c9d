"""Snapshots of derived state (component ``snapshots``), kept beside the events they summarise.

A snapshot is opaque bytes with a header (``monitor.app.snapshot`` says what is in them),
the position of the last event it summarises, and when it was taken. One row per name;
a snapshot replaces the stored one only if it summarises at least as many events, so that
an instance stopping late cannot put back an older state over a newer one (several
processes may share a PostgreSQL store).

What validates a snapshot against the events is here too: ``summary`` sums up the events
of a window up to a position, an index read that a restore compares with the summary taken
with the snapshot.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from datetime import date, datetime
from typing import Any

from monitor.store.base import ComponentStore, Migration, utc_text

COMPONENT = "snapshots"
MIGRATIONS: tuple[Migration, ...] = (
    {
        "sqlite": """
        CREATE TABLE snapshots (
            name     TEXT PRIMARY KEY,
            position INTEGER NOT NULL,
            taken_at TEXT NOT NULL,
            header   TEXT NOT NULL,
            body     BLOB NOT NULL
        )
        """,
        "postgresql": """
        CREATE TABLE snapshots (
            name     TEXT COLLATE "C" PRIMARY KEY,
            position BIGINT NOT NULL,
            taken_at TEXT COLLATE "C" NOT NULL,
            header   TEXT NOT NULL,
            body     BYTEA NOT NULL
        )
        """,
    },
)


@dataclass(frozen=True)
class EventsSummary:
    """The events of run dates from ``since`` up to a position: how many, the sum of their
    positions, and the id of the event at the position (a different store, a restored
    backup or a deleted event changes at least one of them)."""

    count: int
    seq_sum: int
    last_event_id: str | None

    def as_dict(self) -> dict[str, Any]:
        return {"count": self.count, "seq_sum": self.seq_sum, "last_event_id": self.last_event_id}


@dataclass(frozen=True)
class Snapshot:
    """One stored snapshot."""

    name: str
    position: int
    taken_at: datetime
    header: dict[str, Any]
    body: bytes


class SnapshotStore:
    """The snapshots table of a store (and the reads of its events that validate them)."""

    def __init__(self, store: ComponentStore) -> None:
        self._store = store
        store.migrate_component(COMPONENT, MIGRATIONS)

    def save(self, snapshot: Snapshot) -> bool:
        """Keep ``snapshot`` unless the stored one of its name summarises more events."""
        with self._store.transaction() as db:
            cur = db.execute(
                "INSERT INTO snapshots (name, position, taken_at, header, body)"
                " VALUES (?, ?, ?, ?, ?) ON CONFLICT (name) DO UPDATE SET"
                " position = excluded.position, taken_at = excluded.taken_at,"
                " header = excluded.header, body = excluded.body"
                " WHERE snapshots.position <= excluded.position",
                (snapshot.name, snapshot.position, utc_text(snapshot.taken_at),
                 json.dumps(snapshot.header, sort_keys=True), snapshot.body),
            )
            return cur.rowcount == 1

    def load(self, name: str) -> Snapshot | None:
        """The stored snapshot of ``name``, or None. ValueError when its header is not JSON."""
        rows = self._store.read(
            "SELECT position, taken_at, header, body FROM snapshots WHERE name = ?", (name,))
        if not rows:
            return None
        position, taken_at, header, body = rows[0]
        return Snapshot(name, int(position), datetime.fromisoformat(taken_at), json.loads(header),
                        bytes(body))

    def delete(self, name: str) -> None:
        with self._store.transaction() as db:
            db.execute("DELETE FROM snapshots WHERE name = ?", (name,))

    def summary(self, since: date, position: int) -> EventsSummary:
        """The events of run dates from ``since`` with positions up to ``position``."""
        count, total = self._store.read(
            "SELECT COUNT(*), COALESCE(SUM(seq), 0) FROM events WHERE run_date >= ? AND seq <= ?",
            (since.isoformat(), position),
        )[0]
        last = self._store.read("SELECT event_id FROM events WHERE seq = ?", (position,))
        return EventsSummary(int(count), int(total), last[0][0] if last else None)

    def applied_position(self, after: int, instance: str) -> int | None:
        """The position a process's state stands for, if it has applied every event up to
        ``after`` and every later one it stored itself (``origin``) and no other: the newest,
        or the one before the first that another process stored. None when it stored some
        after that one: no position then has every event before it applied and none after
        (an SQLite store that ``phasewatch import`` wrote to while the process ran)."""
        foreign = self._store.read(
            "SELECT MIN(seq) FROM events WHERE seq > ? AND (origin IS NULL OR origin <> ?)",
            (after, instance),
        )[0][0]
        if foreign is None:
            return int(self._store.read("SELECT COALESCE(MAX(seq), 0) FROM events")[0][0])
        own_later = self._store.read(
            "SELECT seq FROM events WHERE seq > ? AND origin = ? LIMIT 1", (foreign, instance))
        return None if own_later else int(foreign) - 1
