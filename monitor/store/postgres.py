"""PostgreSQL event store: one database that several phasewatch processes share.

psycopg 3 with a ``psycopg_pool`` connection pool. The tables, steps and queries are the
SQLite store's (``monitor.store.migrations`` translates the DDL's types); statements keep
SQLite's ``?`` parameters, which ``PgConnection`` turns into psycopg's ``%s``.

What makes several processes safe on one database:
- appends hold a transaction-level advisory lock from their insert to their commit, so
  event positions (``seq``) become visible in order and ``tail`` misses none;
- every append sends ``NOTIFY phasewatch_events``: followers wake at once (``listener``);
- migrations run under another advisory lock: processes starting together migrate once;
- the rest is the components' own SQL: unique keys with ``ON CONFLICT`` and conditional
  updates (one trigger per key, one claim per delivery), and ``monitor.store.leases``.
"""

from __future__ import annotations

import functools
import logging
from collections.abc import Iterable, Iterator, Sequence
from contextlib import contextmanager
from datetime import datetime
from typing import Any

import psycopg
from psycopg.conninfo import conninfo_to_dict
from psycopg_pool import ConnectionPool, PoolTimeout

from monitor.errors import StoreError
from monitor.events import Event
from monitor.store.base import AppendResult, Cursor, Migration, new_instance_id, utc_text
from monitor.store.migrations import apply_component, statements
from monitor.store.schema import EVENT_COLUMNS, MIGRATIONS, SQLEventQueries, event_row

log = logging.getLogger(__name__)

SCHEMES = ("postgresql", "postgres")
CHANNEL = "phasewatch_events"
# Advisory lock keys (any two constants that no other application on the database uses).
_APPEND_LOCK = 0x7068_0001
_MIGRATE_LOCK = 0x7068_0002
_TYPES = ("text",) * 10 + ("float8", "int8", "int8", "float8", "text", "int8")
_APPEND = (
    f"INSERT INTO events ({', '.join(EVENT_COLUMNS)}) SELECT * FROM unnest("
    + ", ".join(f"%s::{t}[]" for t in _TYPES)
    + ") ON CONFLICT (event_id) DO NOTHING RETURNING event_id, seq"
)


@functools.lru_cache(maxsize=1024)
def pyformat(sql: str) -> str:
    """SQL with ``?`` parameters as psycopg's ``%s`` (and a literal ``%`` as ``%%``).

    ``?`` inside a quoted string or identifier is left alone.
    """
    out: list[str] = []
    quote: str | None = None
    for ch in sql:
        if ch == "%":
            out.append("%%")
            continue
        if quote is not None:
            if ch == quote:
                quote = None
        elif ch in ("'", '"'):
            quote = ch
        elif ch == "?":
            out.append("%s")
            continue
        out.append(ch)
    return "".join(out)


class PgConnection:
    """A psycopg connection inside one transaction, with the ``Connection`` protocol."""

    def __init__(self, conn: psycopg.Connection[Any]) -> None:
        self.conn = conn

    def execute(self, sql: str, parameters: Sequence[Any] = (), /) -> Cursor:
        return self.conn.execute(pyformat(sql), tuple(parameters))

    def executemany(self, sql: str, seq_of_parameters: Iterable[Sequence[Any]], /) -> Cursor:
        cur = self.conn.cursor()
        rows = [tuple(p) for p in seq_of_parameters]
        if rows:
            cur.executemany(pyformat(sql), rows)
        return cur


def describe(url: str) -> str:
    """``url`` without its password, for logs and messages."""
    try:
        info = conninfo_to_dict(url)
    except psycopg.Error:
        return "postgresql://(unparsable URL)"
    user = f"{info['user']}@" if info.get("user") else ""
    host = str(info.get("host") or "")
    port = f":{info['port']}" if info.get("port") else ""
    if host.startswith("/"):  # a Unix socket (Cloud SQL's /cloudsql/PROJECT:REGION:INSTANCE)
        return f"postgresql://{user}/{info.get('dbname', '')}?host={host}"
    return f"postgresql://{user}{host}{port}/{info.get('dbname', '')}"


def _reason(exc: BaseException) -> str:
    """The first line of a driver error (psycopg's messages carry no password)."""
    text = str(exc).strip().splitlines()
    return text[0] if text else type(exc).__name__


class PostgresStore(SQLEventQueries):
    """An EventStore (and ComponentStore) in a PostgreSQL database."""

    dialect = "postgresql"
    shared = True

    def __init__(
        self, url: str, *, pool_min_size: int = 1, pool_max_size: int = 8,
        pool_timeout_s: float = 30.0, connect_timeout_s: float = 10.0,
        instance: str | None = None,
    ) -> None:
        self.url = url
        self.instance = instance or new_instance_id()
        self.where = describe(url)
        self._connect_kwargs: dict[str, Any] = {
            "autocommit": True, "application_name": "phasewatch",
            "connect_timeout": max(1, round(connect_timeout_s)),
        }
        try:  # one direct connection first: its error says why (refused, auth, no database)
            psycopg.connect(url, **self._connect_kwargs).close()
        except psycopg.Error as exc:
            raise StoreError(f"cannot open store {self.where}: {_reason(exc)}") from None
        self.pool: ConnectionPool[psycopg.Connection[Any]] = ConnectionPool(
            url, min_size=pool_min_size, max_size=pool_max_size, kwargs=self._connect_kwargs,
            timeout=pool_timeout_s, open=False, name="phasewatch",
        )
        try:
            self.pool.open(wait=True, timeout=connect_timeout_s)
            self.migrate()
        except (psycopg.Error, PoolTimeout) as exc:
            self.pool.close()
            raise StoreError(f"cannot open store {self.where}: {_reason(exc)}") from None
        except BaseException:
            self.pool.close()
            raise

    def describe(self) -> str:
        """Where the store is (without the password), for logs and messages."""
        return self.where

    @property
    def schema_version(self) -> int:
        rows = self.read("SELECT version FROM component_versions WHERE component = 'events'")
        return int(rows[0][0]) if rows else 0

    # --- migrations --------------------------------------------------------------------

    def migrate(self, migrations: Sequence[Migration] = MIGRATIONS) -> None:
        """Apply the events' steps this database has not had yet (``component_versions``
        counts them as component ``events``; it is created first, by step 2)."""
        with self.transaction() as db:
            db.execute("SELECT pg_advisory_xact_lock(?)", (_MIGRATE_LOCK,))
            for statement in statements(migrations[1], self.dialect):
                db.execute(statement)
            applied = apply_component(db, "events", migrations, self.dialect, self.where)
        if applied:
            log.info("event=store.migrated store=%s version=%d", self.where, len(migrations))

    def migrate_component(self, component: str, migrations: Sequence[Migration]) -> None:
        """Apply a component's own steps, one process at a time."""
        with self.transaction() as db:
            db.execute("SELECT pg_advisory_xact_lock(?)", (_MIGRATE_LOCK,))
            apply_component(db, component, migrations, self.dialect, self.where)

    # --- the ComponentStore protocol ---------------------------------------------------

    @contextmanager
    def transaction(self) -> Iterator[PgConnection]:
        """One transaction on a pooled connection (READ COMMITTED); rolled back on error."""
        with self.pool.connection() as conn, conn.transaction():
            yield PgConnection(conn)

    def read(self, query: str, params: Sequence[object] = ()) -> list[tuple[Any, ...]]:
        with self.pool.connection() as conn:
            return conn.execute(pyformat(query), tuple(params)).fetchall()

    def table_names(self) -> set[str]:
        """The tables of this store (its schema: the first of the search path)."""
        rows = self.read("SELECT table_name FROM information_schema.tables"
                         " WHERE table_schema = current_schema()")
        return {str(r[0]) for r in rows}

    def reclaim(self) -> int:
        """Nothing to do: autovacuum marks deleted rows' space for reuse by later rows (the
        files do not shrink; ``VACUUM FULL`` would, under an exclusive lock)."""
        return 0

    # --- events ------------------------------------------------------------------------

    def append(self, events: Sequence[Event], received_at: datetime, *,
               backfill: bool = False) -> AppendResult:
        if not events:
            return AppendResult(())
        received = utc_text(received_at)
        rows = [event_row(event, received, self.instance, backfill) for event in events]
        columns = [list(column) for column in zip(*rows, strict=True)]
        with self.pool.connection() as conn, conn.transaction():
            with conn.pipeline():  # one round trip: lock, insert, notify
                conn.execute("SELECT pg_advisory_xact_lock(%s)", (_APPEND_LOCK,))
                cur = conn.execute(_APPEND, columns)
                conn.execute(f"NOTIFY {CHANNEL}")
            returned = cur.fetchall()
        stored = {row[0] for row in returned}
        inserted = []
        for row in rows:
            new = row[0] in stored
            inserted.append(new)
            stored.discard(row[0])  # a repeat later in the batch is a duplicate
        positions = [int(r[1]) for r in returned]
        return AppendResult(tuple(inserted), first=min(positions, default=None),
                            last=max(positions, default=None))

    def listener(self) -> EventListener:
        """A connection that waits for other processes' appends (one thread uses it)."""
        return EventListener(self.url, self._connect_kwargs)

    def close(self) -> None:
        self.pool.close()


class EventListener:
    """``LISTEN phasewatch_events`` on a connection of its own."""

    def __init__(self, url: str, kwargs: dict[str, Any]) -> None:
        self._url = url
        self._kwargs = kwargs
        self._conn: psycopg.Connection[Any] | None = None

    def wait(self, timeout_s: float) -> bool:
        """Block until an append is announced (True) or ``timeout_s`` passes (False).

        A lost connection is reopened on the next call; until then this answers True
        after the timeout, so that the caller polls instead.
        """
        try:
            if self._conn is None or self._conn.closed:
                self._conn = psycopg.connect(self._url, **self._kwargs)
                self._conn.execute(f"LISTEN {CHANNEL}")
                return True  # anything stored while not listening: look now
            woke = any(True for _ in self._conn.notifies(timeout=timeout_s, stop_after=1))
            if woke:  # the appends announced meanwhile are covered by the same look
                for _ in self._conn.notifies(timeout=0.0):
                    pass
            return woke
        except psycopg.Error:
            log.warning("event=store.listen_failed", exc_info=True)
            self.close()
            return True

    def close(self) -> None:
        if self._conn is not None:
            self._conn.close()
            self._conn = None
