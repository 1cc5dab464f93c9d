"""The publisher's durable state (component ``publish``).

- ``publish_completions``: one row per (pipeline, run date, mode, phase, generation), the
  UNIQUE key that makes "exactly one event per completion" hold across restarts and
  processes. State: ``waiting`` (for its checks), ``released`` (its messages are queued),
  ``withheld`` (the checks did not pass in time), ``skipped`` (a backfill or history).
- ``publish_outbox``: one row per released completion and destination, written in the
  transaction that releases it; delivered at least once (claimed by a conditional update,
  retried with jitter, in order per dataset), ``failed`` after the give-up time.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from monitor.publish.cloudevent import Completion
from monitor.store.base import ComponentStore, parse_time, utc_text

COMPONENT = "publish"
MIGRATIONS: tuple[str, ...] = (
    """
    CREATE TABLE publish_completions (
        id           INTEGER PRIMARY KEY,
        dataset      TEXT    NOT NULL,
        pipeline     TEXT    NOT NULL,
        run_date     TEXT    NOT NULL,
        mode         TEXT    NOT NULL,
        phase        TEXT    NOT NULL,
        generation   INTEGER NOT NULL,
        completed_at TEXT    NOT NULL,
        state        TEXT    NOT NULL,
        reason       TEXT,
        created_at   TEXT    NOT NULL,
        decided_at   TEXT,
        UNIQUE (pipeline, run_date, mode, phase, generation)
    );
    CREATE INDEX publish_completions_by_state ON publish_completions (state, id);
    CREATE TABLE publish_outbox (
        id              INTEGER PRIMARY KEY,
        completion      INTEGER NOT NULL,
        sink            TEXT    NOT NULL,
        event_id        TEXT    NOT NULL,
        ordering_key    TEXT    NOT NULL,
        payload         TEXT    NOT NULL,
        state           TEXT    NOT NULL,
        attempts        INTEGER NOT NULL DEFAULT 0,
        next_attempt_at TEXT    NOT NULL,
        claim           TEXT,
        claimed_at      TEXT,
        last_error      TEXT,
        receipt         TEXT,
        created_at      TEXT    NOT NULL,
        done_at         TEXT,
        UNIQUE (completion, sink)
    );
    CREATE INDEX publish_outbox_due ON publish_outbox (state, next_attempt_at)
    """,
)
_COMPLETION = ("id, dataset, pipeline, run_date, mode, phase, generation, completed_at, state,"
               " reason, created_at, decided_at")
_OUTBOX = ("id, completion, sink, event_id, ordering_key, payload, state, attempts, next_attempt_at,"
           " claim, last_error, receipt, created_at, done_at")


@dataclass(frozen=True)
class CompletionRow:
    id: int
    completion: Completion
    state: str
    reason: str | None
    created_at: datetime
    decided_at: datetime | None

    @classmethod
    def from_row(cls, r: Sequence[Any]) -> CompletionRow:
        completion = Completion(r[1], r[2], r[3], r[4], r[5], int(r[6]), datetime.fromisoformat(r[7]))
        return cls(int(r[0]), completion, r[8], r[9], datetime.fromisoformat(r[10]), parse_time(r[11]))


@dataclass(frozen=True)
class OutboxRow:
    id: int
    completion: int
    sink: str
    event_id: str
    ordering_key: str
    payload: dict[str, Any]
    state: str
    attempts: int
    next_attempt_at: datetime
    claim: str | None
    last_error: str | None
    receipt: str | None
    created_at: datetime
    done_at: datetime | None

    @classmethod
    def from_row(cls, r: Sequence[Any]) -> OutboxRow:
        return cls(int(r[0]), int(r[1]), r[2], r[3], r[4], json.loads(r[5]), r[6], int(r[7]),
                   datetime.fromisoformat(r[8]), r[9], r[10], r[11], datetime.fromisoformat(r[12]),
                   parse_time(r[13]))


@dataclass(frozen=True)
class Queued:
    """A message to queue for one destination when a completion is released."""

    sink: str
    event_id: str
    ordering_key: str
    payload: dict[str, Any]


class PublishStore:
    """Completions and the outbox; every write is one transaction."""

    def __init__(self, db: ComponentStore) -> None:
        self.db = db
        db.migrate_component(COMPONENT, MIGRATIONS)

    def record(self, dataset: str, run: tuple[str, str, str], phase: str, completed_at: datetime,
               state: str, reason: str | None, now: datetime) -> CompletionRow | None:
        """A new completion of (run, phase), numbered after the ones before it; None when the
        latest recorded one is this one (the same completion time): nothing new."""
        pipeline, run_date, mode = run
        with self.db.transaction() as db:
            latest = db.execute(
                "SELECT generation, completed_at FROM publish_completions WHERE pipeline = ?"
                " AND run_date = ? AND mode = ? AND phase = ? ORDER BY generation DESC LIMIT 1",
                (pipeline, run_date, mode, phase),
            ).fetchone()
            if latest is not None and datetime.fromisoformat(latest[1]) == completed_at:
                return None
            generation = 0 if latest is None else int(latest[0]) + 1
            row = db.execute(
                "INSERT INTO publish_completions (dataset, pipeline, run_date, mode, phase,"
                " generation, completed_at, state, reason, created_at, decided_at) VALUES"
                " (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?) ON CONFLICT (pipeline, run_date, mode, phase,"
                f" generation) DO NOTHING RETURNING {_COMPLETION}",
                (dataset, pipeline, run_date, mode, phase, generation, utc_text(completed_at),
                 state, reason, utc_text(now), None if state == "waiting" else utc_text(now)),
            ).fetchone()
        return CompletionRow.from_row(row) if row is not None else None

    def waiting(self) -> list[CompletionRow]:
        rows = self.db.read(f"SELECT {_COMPLETION} FROM publish_completions WHERE state = 'waiting'"
                            " ORDER BY id")
        return [CompletionRow.from_row(r) for r in rows]

    def release(self, completion_id: int, queued: Sequence[Queued], now: datetime) -> bool:
        """Mark a waiting completion released and queue its messages, in one transaction."""
        with self.db.transaction() as db:
            cur = db.execute(
                "UPDATE publish_completions SET state = 'released', decided_at = ?"
                " WHERE id = ? AND state = 'waiting'", (utc_text(now), completion_id))
            if cur.rowcount != 1:
                return False
            db.executemany(
                "INSERT INTO publish_outbox (completion, sink, event_id, ordering_key, payload,"
                " state, next_attempt_at, created_at) VALUES (?, ?, ?, ?, ?, 'pending', ?, ?)"
                " ON CONFLICT (completion, sink) DO NOTHING",
                [(completion_id, q.sink, q.event_id, q.ordering_key,
                  json.dumps(q.payload, sort_keys=True), utc_text(now), utc_text(now))
                 for q in queued],
            )
        return True

    def withhold(self, completion_id: int, reason: str, now: datetime) -> bool:
        with self.db.transaction() as db:
            cur = db.execute(
                "UPDATE publish_completions SET state = 'withheld', reason = ?, decided_at = ?"
                " WHERE id = ? AND state = 'waiting'", (reason, utc_text(now), completion_id))
            return cur.rowcount == 1

    def due(self, now: datetime, limit: int = 500) -> list[OutboxRow]:
        """Pending rows, oldest first (the caller keeps the order per ordering key)."""
        rows = self.db.read(
            f"SELECT {_OUTBOX} FROM publish_outbox WHERE state = 'pending' ORDER BY id LIMIT ?",
            (limit,))
        return [OutboxRow.from_row(r) for r in rows]

    def claim(self, row_id: int, token: str, now: datetime) -> bool:
        with self.db.transaction() as db:
            cur = db.execute(
                "UPDATE publish_outbox SET state = 'sending', claim = ?, claimed_at = ?"
                " WHERE id = ? AND state = 'pending' AND next_attempt_at <= ?",
                (token, utc_text(now), row_id, utc_text(now)))
            return cur.rowcount == 1

    def finish(self, row_id: int, token: str, changes: dict[str, Any]) -> bool:
        """Apply the outcome of a claimed send (``state``, ``attempts``...) if still claimed."""
        encoded = {k: utc_text(v) if isinstance(v, datetime) else v for k, v in changes.items()}
        sets = ", ".join(f"{k} = ?" for k in encoded)
        with self.db.transaction() as db:
            cur = db.execute(f"UPDATE publish_outbox SET {sets}, claim = NULL WHERE id = ?"
                             " AND claim = ?", [*encoded.values(), row_id, token])
            return cur.rowcount == 1

    def release_claims(self, older_than: datetime | None = None) -> int:
        """Sends a crash interrupted go back to pending (all, or those claimed before a time)."""
        query = "UPDATE publish_outbox SET state = 'pending', claim = NULL WHERE state = 'sending'"
        params: list[object] = []
        if older_than is not None:
            query += " AND claimed_at < ?"
            params.append(utc_text(older_than))
        with self.db.transaction() as db:
            return int(db.execute(query, params).rowcount)

    def completions(self, limit: int = 1000) -> list[CompletionRow]:
        rows = self.db.read(f"SELECT {_COMPLETION} FROM publish_completions ORDER BY id LIMIT ?",
                            (limit,))
        return [CompletionRow.from_row(r) for r in rows]

    def outbox(self, limit: int = 1000) -> list[OutboxRow]:
        rows = self.db.read(f"SELECT {_OUTBOX} FROM publish_outbox ORDER BY id LIMIT ?", (limit,))
        return [OutboxRow.from_row(r) for r in rows]
