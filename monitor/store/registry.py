"""Which store ``--db`` (or ``PHASEWATCH_DB``) names, and the coordinator that goes with it.

A value with a scheme is a URL (``postgresql://user:password@host:5432/db``, or
``postgresql:///db?host=/cloudsql/PROJECT:REGION:INSTANCE`` for Cloud SQL's socket);
anything else is the path of an SQLite file.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from typing import Protocol

from monitor.clock import Clock
from monitor.errors import StoreError
from monitor.store.base import ComponentStore, EventStore
from monitor.store.cluster import Coordinator, LeasedCluster, SoleInstance
from monitor.store.config import StoreConfig
from monitor.store.sqlite import SQLiteStore

DB_ENV = "PHASEWATCH_DB"
_SCHEME = re.compile(r"^([A-Za-z][A-Za-z0-9+.-]*)://")


class Store(EventStore, ComponentStore, Protocol):
    """An event store whose database components keep their tables in too (both stores are)."""

    def describe(self) -> str:
        """Where the store is, without secrets."""
        ...


def _postgres(url: str, options: StoreConfig) -> Store:
    # psycopg is loaded only for a PostgreSQL store: a command on an SQLite file starts faster.
    from monitor.store.postgres import PostgresStore

    return PostgresStore(
        url, pool_min_size=options.pool_min_size, pool_max_size=options.pool_max_size,
        pool_timeout_s=options.pool_timeout_s, connect_timeout_s=options.connect_timeout_s,
    )


URL_STORES: dict[str, Callable[[str, StoreConfig], Store]] = {
    "postgresql": _postgres,
    "postgres": _postgres,
}


def scheme(db: str) -> str | None:
    """The URL scheme of ``db`` (lower case), or None for a file path."""
    match = _SCHEME.match(db.strip())
    return match.group(1).lower() if match else None


def open_store(db: str, options: StoreConfig | None = None) -> Store:
    """The store ``db`` names; StoreError names an unknown scheme and the allowed ones."""
    kind = scheme(db)
    if kind is None:
        return SQLiteStore(db)
    factory = URL_STORES.get(kind)
    if factory is None:
        allowed = ", ".join(f"{s}://..." for s in URL_STORES)
        raise StoreError(f"--db {kind}://...: unknown kind of store; allowed: an SQLite file "
                         f"path, {allowed}")
    return factory(db.strip(), options or StoreConfig())


def redacted(db: str) -> str:
    """``db`` fit for a log line or a message (a URL loses its password)."""
    if scheme(db) not in URL_STORES:
        return db
    from monitor.store.postgres import describe

    return describe(db)


def coordinator(store: EventStore, options: StoreConfig | None = None,
                clock: Clock | None = None) -> Coordinator:
    """Leases in the store (timed by ``clock``) when other processes may share it, else a
    sole instance."""
    if store.shared and isinstance(store, ComponentStore):
        lease_s = (options or StoreConfig()).lease_s
        return LeasedCluster(store, store.instance, lease_s=lease_s, clock=clock)
    return SoleInstance(store.instance)
