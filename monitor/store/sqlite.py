"""SQLite event store: WAL, versioned migrations, idempotent on event_id."""

from __future__ import annotations

import logging
import sqlite3
import threading
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from datetime import UTC, date, datetime
from pathlib import Path
from typing import Any

from monitor.errors import StoreError
from monitor.events import Event, event_from_json, event_to_json
from monitor.store.base import AppendResult, DeadLetter

log = logging.getLogger(__name__)

# Each entry moves the schema from version i to i + 1. Never edit a released entry:
# append a new one (PRAGMA user_version records how far a database has come).
MIGRATIONS: tuple[str, ...] = (
    """
    CREATE TABLE events (
        seq         INTEGER PRIMARY KEY,
        event_id    TEXT    NOT NULL UNIQUE,
        pipeline    TEXT    NOT NULL,
        run_date    TEXT    NOT NULL,
        mode        TEXT    NOT NULL,
        phase       TEXT    NOT NULL,
        processor   TEXT,
        status      TEXT    NOT NULL,
        ts          TEXT    NOT NULL,
        received_at TEXT    NOT NULL,
        body        TEXT    NOT NULL
    );
    CREATE INDEX events_by_run ON events (pipeline, run_date, mode);
    CREATE TABLE dead_letters (
        id          INTEGER PRIMARY KEY,
        received_at TEXT NOT NULL,
        source      TEXT NOT NULL,
        message_id  TEXT,
        reason      TEXT NOT NULL,
        detail      TEXT NOT NULL,
        payload     TEXT NOT NULL
    );
    CREATE UNIQUE INDEX dead_letters_by_message ON dead_letters (source, message_id);
    """,
    """
    CREATE TABLE component_versions (
        component TEXT PRIMARY KEY,
        version   INTEGER NOT NULL
    );
    """,
    # The numeric fields SLIs read, as columns: a full recompute scans them without
    # parsing every body's JSON.
    """
    ALTER TABLE events ADD COLUMN duration_s REAL;
    ALTER TABLE events ADD COLUMN records INTEGER;
    ALTER TABLE events ADD COLUMN expected_records INTEGER;
    ALTER TABLE events ADD COLUMN data_as_of REAL;
    UPDATE events SET
        duration_s = json_extract(body, '$.duration_s'),
        records = json_extract(body, '$.records'),
        expected_records = json_extract(body, '$.expected_records'),
        data_as_of = (julianday(json_extract(body, '$.data_as_of')) - 2440587.5) * 86400.0;
    """,
    # Reads bounded by a window of run dates (``events(since_run_date=...)``, the latest run
    # dates) find their first row by this index instead of scanning all of history.
    """
    CREATE INDEX events_by_run_date ON events (run_date);
    """,
)

INSERT_EVENT = (
    "INSERT INTO events (event_id, pipeline, run_date, mode, phase, processor, status, ts,"
    " received_at, body, duration_s, records, expected_records, data_as_of)"
    " VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)"
)
_INSERT_NEW_EVENT = INSERT_EVENT + " ON CONFLICT (event_id) DO NOTHING"
_LOOKUP_CHUNK = 500
_PAGE = 5000


def utc_text(when: datetime) -> str:
    """A timestamp as fixed-width UTC text that sorts in time order."""
    if when.utcoffset():
        when = when.astimezone(UTC)
    # isoformat, not strftime: a third cheaper, and ingest runs this on every event.
    return f"{when.isoformat(timespec='microseconds')[:26]}Z"


def event_row(event: Event, received: str) -> tuple[object, ...]:
    """The events-table row of an event (the column order of INSERT_EVENT)."""
    return (
        event.event_id, event.pipeline, event.run_date.isoformat(), event.mode or "",
        event.phase, event.processor, event.status, utc_text(event.timestamp), received,
        event_to_json(event), event.duration_s, event.records, event.expected_records,
        event.data_as_of.timestamp() if event.data_as_of else None,
    )


class SQLiteStore:
    """An EventStore in one SQLite file (``":memory:"`` for a throwaway store)."""

    def __init__(self, path: str | Path = "phasewatch.db") -> None:
        self.path = str(path)
        self._lock = threading.Lock()
        try:
            if self.path != ":memory:":
                Path(self.path).parent.mkdir(parents=True, exist_ok=True)
            self._db = sqlite3.connect(
                self.path, timeout=30.0, isolation_level=None, check_same_thread=False
            )
            self._db.execute("PRAGMA journal_mode=WAL")
            self._db.execute("PRAGMA synchronous=NORMAL")
            self._db.execute("PRAGMA busy_timeout=30000")
            self.migrate()
        except sqlite3.Error as exc:
            raise StoreError(f"cannot open store {self.path}: {exc}") from exc

    @property
    def schema_version(self) -> int:
        return int(self._db.execute("PRAGMA user_version").fetchone()[0])

    def migrate(self, migrations: Sequence[str] = MIGRATIONS) -> None:
        """Apply the migrations this database has not had yet, each in its own transaction."""
        with self._lock:
            current = self.schema_version
            if current > len(migrations):
                raise StoreError(
                    f"store {self.path} has schema version {current}, newer than this "
                    f"phasewatch knows ({len(migrations)}): upgrade phasewatch"
                )
            for version in range(current, len(migrations)):
                self._db.execute("BEGIN IMMEDIATE")
                try:
                    for statement in migrations[version].split(";"):
                        if statement.strip():
                            self._db.execute(statement)
                    self._db.execute(f"PRAGMA user_version = {version + 1}")
                    self._db.execute("COMMIT")
                except BaseException:
                    self._db.execute("ROLLBACK")
                    raise
                log.info("event=store.migrated path=%s version=%d", self.path, version + 1)

    def migrate_component(self, component: str, migrations: Sequence[str]) -> None:
        """Apply a component's own migrations (actuator, alert outbox...) to this database.

        Components keep their tables in the same file as the events, so that one volume or
        one backup holds everything, and version them separately in ``component_versions``.
        """
        with self.transaction() as db:
            row = db.execute(
                "SELECT version FROM component_versions WHERE component = ?", (component,)
            ).fetchone()
            current = int(row[0]) if row else 0
            if current > len(migrations):
                raise StoreError(
                    f"store {self.path}: component {component} has schema version {current}, "
                    f"newer than this phasewatch knows ({len(migrations)}): upgrade phasewatch"
                )
            for version in range(current, len(migrations)):
                for statement in migrations[version].split(";"):
                    if statement.strip():
                        db.execute(statement)
            db.execute(
                "INSERT INTO component_versions (component, version) VALUES (?, ?)"
                " ON CONFLICT (component) DO UPDATE SET version = excluded.version",
                (component, len(migrations)),
            )

    @contextmanager
    def transaction(self) -> Iterator[sqlite3.Connection]:
        """One write transaction (BEGIN IMMEDIATE) under the store's lock; rolled back on error."""
        with self._lock:
            self._db.execute("BEGIN IMMEDIATE")
            try:
                yield self._db
                self._db.execute("COMMIT")
            except BaseException:
                self._db.execute("ROLLBACK")
                raise

    def read(self, query: str, params: Sequence[object] = ()) -> list[tuple[Any, ...]]:
        """Rows of a read-only query, under the store's lock."""
        with self._lock:
            return list(self._db.execute(query, params).fetchall())

    def append(self, events: Sequence[Event], received_at: datetime) -> AppendResult:
        if not events:
            return AppendResult(())
        received = utc_text(received_at)
        rows = [event_row(event, received) for event in events]
        with self.transaction() as db:
            # Duplicates are rare: insert everything, skipping known ids, and look the ids
            # up only when a row was skipped (looking them up first cost a third of append).
            db.execute("SAVEPOINT append_new")
            # rowcount sums sqlite3_changes(): rows this statement inserted, no trigger's.
            if db.executemany(_INSERT_NEW_EVENT, rows).rowcount == len(rows):
                db.execute("RELEASE append_new")
                return AppendResult((True,) * len(rows))
            db.execute("ROLLBACK TO append_new")
            db.execute("RELEASE append_new")
            inserted = self._insert_unknown(db, rows)
        return AppendResult(inserted)

    def _insert_unknown(
        self, db: sqlite3.Connection, rows: list[tuple[object, ...]]
    ) -> tuple[bool, ...]:
        """Insert the rows whose event_id is not stored yet (the first of repeats in ``rows``)."""
        known = self._known_ids([str(row[0]) for row in rows])
        inserted: list[bool] = []
        new_rows = []
        for row in rows:
            new = row[0] not in known
            inserted.append(new)
            if new:
                known.add(str(row[0]))
                new_rows.append(row)
        db.executemany(INSERT_EVENT, new_rows)
        return tuple(inserted)

    def _known_ids(self, ids: list[str]) -> set[str]:
        known: set[str] = set()
        for start in range(0, len(ids), _LOOKUP_CHUNK):
            chunk = ids[start : start + _LOOKUP_CHUNK]
            marks = ",".join("?" * len(chunk))
            cur = self._db.execute(f"SELECT event_id FROM events WHERE event_id IN ({marks})", chunk)
            known.update(row[0] for row in cur)
        return known

    def events(
        self, *, pipeline: str | None = None, since_run_date: date | None = None
    ) -> Iterator[Event]:
        query = "SELECT seq, body FROM events WHERE seq > ?"
        params: list[object] = []
        last = 0
        if pipeline is not None:
            query += " AND pipeline = ?"
            params.append(pipeline)
        if since_run_date is not None:
            query += " AND run_date >= ?"
            params.append(since_run_date.isoformat())
            # Start at the window's first row (found by the run-date index): the rows before
            # it are all older run dates, so the read is bounded by the window, not history.
            with self._lock:
                first = self._db.execute(
                    "SELECT MIN(seq) FROM events WHERE run_date >= ?", (since_run_date.isoformat(),)
                ).fetchone()[0]
            if first is None:
                return
            last = int(first) - 1
        query += f" ORDER BY seq LIMIT {_PAGE}"
        while True:  # keyset pages: bounded memory, and the lock is not held between pages
            with self._lock:
                rows = self._db.execute(query, [last, *params]).fetchall()
            for _, body in rows:
                yield event_from_json(body)
            if len(rows) < _PAGE:
                return
            last = rows[-1][0]

    def latest_run_dates(self, *, pipeline: str | None = None, limit: int = 2) -> list[date]:
        """The ``limit`` latest run dates stored (of ``pipeline``), newest first: an index read."""
        query = "SELECT DISTINCT run_date FROM events"
        params: list[object] = []
        if pipeline is not None:
            query += " WHERE pipeline = ?"
            params.append(pipeline)
        query += " ORDER BY run_date DESC LIMIT ?"
        with self._lock:
            rows = self._db.execute(query, [*params, limit]).fetchall()
        return [date.fromisoformat(row[0]) for row in rows]

    def count(self) -> int:
        with self._lock:
            return int(self._db.execute("SELECT COUNT(*) FROM events").fetchone()[0])

    def add_dead_letter(
        self, *, received_at: datetime, source: str, message_id: str | None,
        reason: str, detail: str, payload: str,
    ) -> bool:
        with self._lock:
            cur = self._db.execute(
                "INSERT OR IGNORE INTO dead_letters (received_at, source, message_id, reason,"
                " detail, payload) VALUES (?, ?, ?, ?, ?, ?)",
                (utc_text(received_at), source, message_id, reason, detail, payload),
            )
            return cur.rowcount == 1

    def dead_letters(self, limit: int = 100) -> list[DeadLetter]:
        with self._lock:
            rows = self._db.execute(
                "SELECT id, received_at, source, message_id, reason, detail, payload"
                " FROM dead_letters ORDER BY id DESC LIMIT ?",
                (limit,),
            ).fetchall()
        return [
            DeadLetter(r[0], datetime.fromisoformat(r[1]), r[2], r[3], r[4], r[5], r[6])
            for r in rows
        ]

    def close(self) -> None:
        with self._lock:
            self._db.close()
