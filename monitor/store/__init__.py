"""Event stores: the protocols, SQLite (one process) and PostgreSQL (several processes)."""

from __future__ import annotations

from typing import TYPE_CHECKING

from monitor.lazy import lazy_exports

if TYPE_CHECKING:
    from monitor.store.base import AppendResult, ComponentStore, DeadLetter, EventStore
    from monitor.store.cluster import Coordinator, LeasedCluster, SoleInstance
    from monitor.store.postgres import PostgresStore
    from monitor.store.registry import DB_ENV, Store, coordinator, open_store
    from monitor.store.sqlite import SQLiteStore

_LAZY = {
    **dict.fromkeys(("AppendResult", "ComponentStore", "DeadLetter", "EventStore"),
                    "monitor.store.base"),
    **dict.fromkeys(("Coordinator", "LeasedCluster", "SoleInstance"), "monitor.store.cluster"),
    **dict.fromkeys(("PostgresStore",), "monitor.store.postgres"),
    **dict.fromkeys(("DB_ENV", "Store", "coordinator", "open_store"), "monitor.store.registry"),
    **dict.fromkeys(("SQLiteStore",), "monitor.store.sqlite"),
}

__all__ = [
    "DB_ENV",
    "AppendResult",
    "ComponentStore",
    "Coordinator",
    "DeadLetter",
    "EventStore",
    "LeasedCluster",
    "PostgresStore",
    "SQLiteStore",
    "SoleInstance",
    "Store",
    "coordinator",
    "open_store",
]


__getattr__ = lazy_exports(__name__, _LAZY)
