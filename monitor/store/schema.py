"""The events and dead-letter tables, their steps, and the queries both stores share."""

from __future__ import annotations

import heapq
from collections.abc import Collection, Iterator, Sequence
from contextlib import AbstractContextManager
from datetime import date, datetime
from operator import itemgetter
from typing import Any, Literal, overload

from monitor.events import Event, date_text, event_from_json, event_to_json
from monitor.store.base import (
    Connection,
    DeadLetter,
    Migration,
    ProgressRead,
    Repeat,
    RunKey,
    Stored,
    Tailed,
    utc_text,
)
from monitor.store.retention import Rule

# Each entry moves the schema from version i to i + 1. Never edit a released entry:
# append a new one (monitor.store.migrations).
MIGRATIONS: tuple[Migration, ...] = (
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
    # IF NOT EXISTS (added with PostgreSQL, the same table for SQLite): PostgreSQL's store
    # creates this table first, to record the version of these very steps in it.
    """
    CREATE TABLE IF NOT EXISTS component_versions (
        component TEXT PRIMARY KEY,
        version   INTEGER NOT NULL
    );
    """,
    # The numeric fields SLIs read, as columns: a full recompute scans them without
    # parsing every body's JSON.
    {
        "sqlite": """
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
        "postgresql": """
        ALTER TABLE events ADD COLUMN duration_s DOUBLE PRECISION;
        ALTER TABLE events ADD COLUMN records BIGINT;
        ALTER TABLE events ADD COLUMN expected_records BIGINT;
        ALTER TABLE events ADD COLUMN data_as_of DOUBLE PRECISION;
        UPDATE events SET
            duration_s = (body::json ->> 'duration_s')::double precision,
            records = (body::json ->> 'records')::bigint,
            expected_records = (body::json ->> 'expected_records')::bigint,
            data_as_of = extract(epoch FROM (body::json ->> 'data_as_of')::timestamptz);
        """,
    },
    # Which process stored each event, and whether as a backfill (imported history, never
    # acted on): processes sharing a store follow each other's events as they were stored.
    """
    ALTER TABLE events ADD COLUMN origin TEXT;
    ALTER TABLE events ADD COLUMN backfill INTEGER NOT NULL DEFAULT 0;
    """,
    # Retention: dead letters go by arrival; a run whose run date is past retention goes
    # unless it received an event lately, which the run index now answers in one seek.
    """
    CREATE INDEX dead_letters_by_time ON dead_letters (received_at);
    DROP INDEX events_by_run;
    CREATE INDEX events_by_run ON events (pipeline, run_date, mode, received_at);
    """,
    # Reads bounded by a window of run dates (``events(since_run_date=...)``, the latest run
    # dates) find their first row by this index instead of scanning all of history.
    """
    CREATE INDEX events_by_run_date ON events (run_date);
    """,
    # How far the process that stores the events has judged them (``EventStore.judged``): a
    # restart judges the events stored after it (killed between storing a batch and judging
    # it) instead of replaying them in silence.
    """
    CREATE TABLE judged (
        id       INTEGER PRIMARY KEY CHECK (id = 1),
        position INTEGER NOT NULL
    );
    """,
)

# Past retention (monitor.store.retention): a run whose run date is older, whole, unless it
# received an event lately (the tracker still holds it: a backfill being loaded); read per
# pipeline through the run index.
RETENTION: tuple[Rule, ...] = (
    Rule("events", "events",
         "run_date < ? AND NOT EXISTS (SELECT 1 FROM events AS r WHERE r.pipeline ="
         " events.pipeline AND r.run_date = events.run_date AND r.mode = events.mode"
         " AND r.received_at >= ?)",
         ("before_date", "seen_since"), key=("seq",), partition="pipeline"),
    Rule("dead_letters", "dead_letters", "received_at < ?"),
)

EVENT_COLUMNS = (
    "event_id", "pipeline", "run_date", "mode", "phase", "processor", "status", "ts",
    "received_at", "body", "duration_s", "records", "expected_records", "data_as_of", "origin",
    "backfill",
)
INSERT_EVENT = (
    f"INSERT INTO events ({', '.join(EVENT_COLUMNS)})"
    f" VALUES ({', '.join('?' * len(EVENT_COLUMNS))})"
)
# Forward only: a leader that lost its lease and has not heard yet may still write one.
MARK_JUDGED = ("INSERT INTO judged (id, position) VALUES (1, ?) ON CONFLICT (id) DO UPDATE"
               " SET position = excluded.position WHERE judged.position < excluded.position")
POSITION = "SELECT COALESCE(MAX(seq), 0) FROM events"  # the newest stored event's position
_PAGE = 5000
_GAPS = 1000  # gaps counted by one query (two parameters each)
# A progress event stored right after an event of the same run, phase and processor, no
# later in event time, that this read returns too (stored after its start; the other filters
# keep it: it has the same pipeline and run date, an earlier position and time): it changes
# no SLO unit (``EventStore.events``, ``progress="first"``). "Right after": the row before it,
# whatever positions a database skipped, found by one seek back from it (its comparison with
# the row is NULL when there is none, hence ``IS TRUE``).
_REPEATED_PROGRESS = (
    "e.status = 'progress' AND (SELECT p.seq > ?"
    " AND p.pipeline = e.pipeline AND p.run_date = e.run_date AND p.mode = e.mode"
    " AND p.phase = e.phase AND (p.processor = e.processor OR (p.processor IS NULL"
    " AND e.processor IS NULL)) AND p.ts <= e.ts"
    " FROM events AS p WHERE p.seq < e.seq ORDER BY p.seq DESC LIMIT 1) IS TRUE"
)


def _repeat(run: RunKey | None, seq: int, received: str, count: int) -> Repeat:
    if run is None:  # the read's first row is never a repeat (its row before is not read)
        raise AssertionError("a repeat before any event of its read")
    return Repeat(int(seq), run, datetime.fromisoformat(received), count)


# The fields of an event's row, in one call from its ``__dict__``: an ``Event`` is a pydantic
# model, whose ``__getattr__`` hook makes each of twelve attribute reads cost about 40 ns
# against a dict's 16 (as ``monitor.tracker`` reads its fields).
_ROW_FIELDS = itemgetter(
    "event_id", "pipeline", "run_date", "mode", "phase", "processor", "status", "timestamp",
    "duration_s", "records", "expected_records", "data_as_of",
)


def event_row(event: Event, received: str, origin: str | None = None,
              backfill: bool = False) -> tuple[object, ...]:
    """The events-table row of an event (the column order of ``EVENT_COLUMNS``)."""
    (event_id, pipeline, run_date, mode, phase, processor, status, timestamp, duration_s, records,
     expected_records, data_as_of) = _ROW_FIELDS(event.__dict__)
    return (
        event_id, pipeline, date_text(run_date), mode or "", phase, processor, status,
        utc_text(timestamp), received, event_to_json(event), duration_s, records,
        expected_records, data_as_of.timestamp() if data_as_of else None, origin, int(backfill),
    )


class SQLEventQueries:
    """The reads and the dead-letter writes of ``EventStore``, in SQL both stores run.

    A store provides ``read``, ``transaction`` and ``instance``; appends are its own.
    """

    instance: str

    def read(self, query: str, params: Sequence[object] = ()) -> list[tuple[Any, ...]]:
        raise NotImplementedError

    def transaction(self) -> AbstractContextManager[Connection]:
        raise NotImplementedError

    def events(
        self, *, pipeline: str | None = None, since_run_date: date | None = None,
        until: int | None = None, after: int = 0, at: datetime | None = None,
        progress: ProgressRead = "all",
    ) -> Iterator[Event]:
        query = "SELECT seq, body FROM events AS e WHERE seq > ?"
        params: list[object] = []
        if pipeline is not None:
            query += " AND pipeline = ?"
            params.append(pipeline)
        last = after
        if since_run_date is not None:
            query += " AND run_date >= ?"
            params.append(since_run_date.isoformat())
            # Start at the window's first row: the rows before it are all older run dates, so
            # the read is bounded by the window, not history.
            first = self._window_start(since_run_date)
            if first is None:
                return
            last = max(after, first - 1)
        if until is not None:
            query += " AND seq <= ?"
            params.append(until)
        if at is not None:  # fixed-width UTC text: its order is time order
            query += " AND ts <= ?"
            params.append(utc_text(at))
        if progress == "first":  # the row before must be past where the read starts
            query += f" AND NOT ({_REPEATED_PROGRESS})"
            params.append(last)
        query += f" ORDER BY seq LIMIT {_PAGE}"
        while True:  # keyset pages: bounded memory, and nothing is held between pages
            rows = self.read(query, [last, *params])
            for _, body in rows:
                yield event_from_json(body)
            if len(rows) < _PAGE:
                return
            last = rows[-1][0]

    def _window_start(self, since: date) -> int | None:
        """The first position of the run dates from ``since`` on (None: none stored): the
        least of each run date's first, one seek each in SQLite's run-date index (its entries
        of a run date are in position order), the run dates found by a seek each too. Not the
        least position of all the window's entries: that reads every one of them (8 ms for
        the 170k rows of 66 run dates among 1M; the primary key from the oldest row up, 0.44 s,
        if the database walks it instead)."""
        first = self.read(
            "WITH RECURSIVE days(day) AS (SELECT MIN(run_date) FROM events WHERE run_date >= ?"
            " UNION ALL SELECT (SELECT MIN(run_date) FROM events WHERE run_date > day)"
            " FROM days WHERE day IS NOT NULL)"
            " SELECT MIN((SELECT MIN(seq) FROM events WHERE run_date = day)) FROM days"
            " WHERE day IS NOT NULL", (since.isoformat(),),
        )[0][0]
        return None if first is None else int(first)

    def pipelines(self) -> list[str]:
        """The pipelines that have stored events: one index seek each (a loose index scan),
        however many events there are."""
        found: list[str] = []
        while True:
            rows = self.read("SELECT MIN(pipeline) FROM events WHERE pipeline > ?",
                             (found[-1] if found else "",))
            if not rows or rows[0][0] is None:
                return found
            found.append(str(rows[0][0]))

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
        return self._history(since_run_date, runs, until, after, progress)

    def _history(
        self, since_run_date: date | None, runs: Collection[RunKey], until: int,
        after: int, progress: ProgressRead,
    ) -> Iterator[Stored | Repeat]:
        if since_run_date is None:  # every run date: the events after a position
            yield from self._window("1 = 1", [], after, until, progress)
            return
        # Each part is read through the run index and in arrival order; the recent run
        # dates start at their first event, not at the store's first.
        since = since_run_date.isoformat()
        first = self._window_start(since_run_date)
        parts = ([self._window("run_date >= ?", [since], max(first - 1, after), until, progress)]
                 if first is not None else [])
        parts += [self._stored("pipeline = ? AND run_date = ? AND mode = ?", list(run), after,
                               until, progress) for run in runs]
        yield from heapq.merge(*parts, key=lambda stored: stored.position)

    def _stored(self, where: str, params: list[object], after: int,
                until: int, progress: ProgressRead = "all") -> Iterator[Stored | Repeat]:
        body = "body"
        marks: list[object] = []
        if progress == "first":  # a repeat's run is this part's: the row before it is read too
            body = f"CASE WHEN {_REPEATED_PROGRESS} THEN NULL ELSE body END"
            marks = [after]
        query = (f"SELECT seq, {body}, received_at FROM events AS e"
                 f" WHERE seq > ? AND seq <= ? AND {where} ORDER BY seq LIMIT {_PAGE}")
        # The row before a repeat is of its run and in this read, so it is the row read just
        # before it: repeats that follow one another here follow one another in the store and
        # are of the run of the event read last. One mark stands for them, with their latest
        # arrival (fixed-width UTC text: its order is time order). Their run is not read (nor
        # anything but their position and arrival: most of a window's rows are repeats).
        run: RunKey | None = None  # of the event read last
        streak: list[Any] | None = None  # [last seq, latest arrival, count]
        while True:  # keyset pages, as ``events``
            rows = self.read(query, [*marks, after, until, *params])
            for seq, text, received in rows:
                if text is None:
                    if streak is None:
                        streak = [seq, received, 1]
                    else:
                        streak[0] = seq
                        streak[1] = max(streak[1], received)
                        streak[2] += 1
                    continue
                if streak is not None:
                    yield _repeat(run, *streak)
                    streak = None
                event = event_from_json(text)
                run = event.run_key()
                yield Stored(int(seq), event, datetime.fromisoformat(received))
            if len(rows) < _PAGE:
                if streak is not None:
                    yield _repeat(run, *streak)
                return
            after = rows[-1][0]

    def _window(self, where: str, params: list[object], after: int, until: int,
                progress: ProgressRead) -> Iterator[Stored | Repeat]:
        """``_stored`` for a part whose rows lie close together in the store (recent run
        dates, read from their first row; every run date)."""
        if progress == "first":
            return self._stored_dense(where, params, after, until)
        return self._stored(where, params, after, until)

    def _stored_dense(self, where: str, params: list[object], after: int,
                      until: int) -> Iterator[Stored | Repeat]:
        """``_stored(..., progress="first")`` for a part whose rows lie close together in the
        store (a window of recent run dates, read from its first row): its events that are
        not repeats, and between two of them one ``Repeat`` for the repeats stored there,
        counted by the database. Between two events read one after the other, every row
        this read keeps is a repeat (the row before a repeat is of its run and in this read),
        so a page of events is one query, and their gaps one more: the repeats, most of a
        window's rows, never come back to Python one by one."""
        query = (f"SELECT seq, body, received_at FROM events AS e WHERE seq > ? AND seq <= ?"
                 f" AND {where} AND NOT ({_REPEATED_PROGRESS}) ORDER BY seq LIMIT {_PAGE}")
        start = after
        run: RunKey | None = None  # of the event read last
        while True:
            rows = self.read(query, [after, until, *params, start])
            # The gap before each event, and after the last one when the read is over (the
            # gap before the read's first event is empty: the first row kept is no repeat).
            ends = [int(row[0]) for row in rows] + ([until + 1] if len(rows) < _PAGE else [])
            gaps = [(lo, hi) for lo, hi in zip([after, *ends], ends, strict=False) if hi - lo > 1]
            repeats = self._gaps(gaps, where, params)
            for seq, text, received in rows:
                if after in repeats:
                    yield _repeat(run, *repeats[after])
                event = event_from_json(text)
                run = event.run_key()
                yield Stored(int(seq), event, datetime.fromisoformat(received))
                after = int(seq)
            if len(rows) < _PAGE:
                if after in repeats:
                    yield _repeat(run, *repeats[after])
                return

    def _gaps(self, gaps: list[tuple[int, int]], where: str,
              params: list[object]) -> dict[int, tuple[int, str, int]]:
        """For each gap ``(lo, hi)`` between positions that holds rows of ``where``: the last
        of them, their latest arrival and how many they are, keyed by ``lo``."""
        found: dict[int, tuple[int, str, int]] = {}
        for i in range(0, len(gaps), _GAPS):
            some = gaps[i : i + _GAPS]
            values = ", ".join(["(?, ?)"] * len(some))
            rows = self.read(
                f"WITH gaps(lo, hi) AS (VALUES {values}) SELECT gaps.lo, MAX(e.seq),"
                f" MAX(e.received_at), COUNT(*) FROM gaps JOIN events AS e"
                f" ON e.seq > gaps.lo AND e.seq < gaps.hi WHERE {where} GROUP BY gaps.lo",
                [*(bound for gap in some for bound in gap), *params],
            )
            found.update((int(lo), (int(seq), received, int(count)))
                         for lo, seq, received, count in rows)
        return found

    def _stored_since(self, when: datetime, until: int, columns: str, where: str = "1 = 1",
                      params: Sequence[object] = ()) -> Iterator[tuple[Any, ...]]:
        """``seq, <columns>`` of the rows stored at or after ``when`` up to position
        ``until`` that ``where`` keeps, newest first: from the newest back, a page at a time,
        until a page stored wholly before ``when`` (positions follow arrival, give or take
        clocks of processes sharing a store). Reads the rows stored since ``when`` only (and
        one page more); the database pages through the rows ``where`` leaves out."""
        since = utc_text(when)
        last = until + 1
        while True:
            first, recent, count = self.read(
                "SELECT MIN(seq), MAX(received_at) >= ?, COUNT(*) FROM (SELECT seq, received_at"
                f" FROM events WHERE seq < ? ORDER BY seq DESC LIMIT {_PAGE}) AS page",
                (since, last),
            )[0]
            if not count:
                return
            yield from self.read(
                f"SELECT seq, {columns} FROM events WHERE seq >= ? AND seq < ?"
                f" AND received_at >= ? AND {where} ORDER BY seq DESC", (first, last, since, *params),
            )
            if not recent or count < _PAGE:
                return
            last = first

    def runs_received_since(
        self, when: datetime, *, before_run_date: date, until: int, limit: int,
    ) -> list[RunKey]:
        found: dict[RunKey, None] = {}
        for _, pipeline, run_date, mode in self._stored_since(
            when, until, "pipeline, run_date, mode", "run_date < ?", (before_run_date.isoformat(),),
        ):
            if len(found) >= limit:
                break
            found.setdefault((pipeline, run_date, mode))
        return list(found)

    def received_since(self, when: datetime, *, until: int) -> list[Tailed]:
        rows = list(self._stored_since(when, until, "body, backfill"))
        return [Tailed(event_from_json(body), bool(backfill)) for _, body, backfill in reversed(rows)]

    def position(self) -> int:
        return int(self.read(POSITION)[0][0])

    def tail(self, after: int, limit: int = 1000, *, own: bool = False,
             until: int | None = None, skip: set[str] | None = None) -> tuple[list[Tailed], int]:
        # The body only of others' rows (unless ``own``): this process holds its own events.
        query = ("SELECT seq, CASE WHEN origin = ? THEN NULL ELSE body END, backfill, origin,"
                 " event_id FROM events WHERE seq > ?")
        params: list[object] = ["" if own else self.instance, after]
        if until is not None:
            query += " AND seq <= ?"
            params.append(until)
        rows = self.read(query + " ORDER BY seq LIMIT ?", [*params, limit])
        events = []
        for _, body, backfill, origin, event_id in rows:
            mine = origin == self.instance
            if body is None:
                continue
            if mine and skip is not None and event_id in skip:
                skip.discard(event_id)  # passed by once
                continue
            events.append(Tailed(event_from_json(body), bool(backfill), mine))
        return events, (int(rows[-1][0]) if rows else after)

    def judged(self) -> int | None:
        rows = self.read("SELECT position FROM judged")
        return int(rows[0][0]) if rows else None

    def mark_judged(self, position: int) -> None:
        with self.transaction() as db:
            db.execute(MARK_JUDGED, (position,))

    def latest_run_dates(self, *, pipeline: str | None = None, limit: int = 2) -> list[date]:
        """The ``limit`` latest run dates stored (of ``pipeline``), newest first: an index read."""
        query = "SELECT DISTINCT run_date FROM events"
        params: list[object] = []
        if pipeline is not None:
            query += " WHERE pipeline = ?"
            params.append(pipeline)
        query += " ORDER BY run_date DESC LIMIT ?"
        rows = self.read(query, [*params, limit])
        return [date.fromisoformat(row[0]) for row in rows]

    def count(self) -> int:
        return int(self.read("SELECT COUNT(*) FROM events")[0][0])

    def add_dead_letter(
        self, *, received_at: datetime, source: str, message_id: str | None,
        reason: str, detail: str, payload: str,
    ) -> bool:
        with self.transaction() as db:
            cur = db.execute(
                "INSERT INTO dead_letters (received_at, source, message_id, reason, detail,"
                " payload) VALUES (?, ?, ?, ?, ?, ?) ON CONFLICT DO NOTHING",
                (utc_text(received_at), source, message_id, reason, detail, payload),
            )
            return cur.rowcount == 1

    def dead_letters(self, limit: int = 100) -> list[DeadLetter]:
        rows = self.read(f"{_DEAD_LETTER} ORDER BY id DESC LIMIT ?", (limit,))
        return [_dead_letter(r) for r in rows]

    def oldest_dead_letters(
        self, *, ids: Collection[int] | None = None, reason: str | None = None,
        after: int = 0, limit: int = 100,
    ) -> list[DeadLetter]:
        query, params = _dead_letter_filter(ids, reason, after)
        rows = self.read(f"{_DEAD_LETTER}{query} ORDER BY id LIMIT ?", (*params, limit))
        return [_dead_letter(r) for r in rows]

    def count_dead_letters(
        self, *, ids: Collection[int] | None = None, reason: str | None = None, after: int = 0,
    ) -> int:
        query, params = _dead_letter_filter(ids, reason, after)
        return int(self.read(f"SELECT COUNT(*) FROM dead_letters{query}", params)[0][0])

    def remove_dead_letters(self, ids: Collection[int]) -> int:
        if not ids:
            return 0
        with self.transaction() as db:
            cur = db.execute(
                f"DELETE FROM dead_letters WHERE id IN ({', '.join('?' * len(ids))})",
                sorted(ids),
            )
            return cur.rowcount


_DEAD_LETTER = ("SELECT id, received_at, source, message_id, reason, detail, payload"
                " FROM dead_letters")


def _dead_letter(r: Sequence[Any]) -> DeadLetter:
    return DeadLetter(r[0], datetime.fromisoformat(r[1]), r[2], r[3], r[4], r[5], r[6])


def _dead_letter_filter(ids: Collection[int] | None, reason: str | None,
                        after: int) -> tuple[str, list[object]]:
    """The WHERE clause (and its parameters) of a selection of dead letters."""
    clauses: list[str] = ["id > ?"]
    params: list[object] = [after]
    if ids is not None:
        clauses.append(f"id IN ({', '.join('?' * len(ids))})" if ids else "1 = 0")
        params.extend(sorted(ids))
    if reason is not None:
        clauses.append("reason = ?")
        params.append(reason)
    return " WHERE " + " AND ".join(clauses), params
