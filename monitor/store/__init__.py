"""Event stores: the protocols, SQLite (one process) and PostgreSQL (several processes)."""

from monitor.store.base import AppendResult, ComponentStore, DeadLetter, EventStore
from monitor.store.cluster import Coordinator, LeasedCluster, SoleInstance
from monitor.store.postgres import PostgresStore
from monitor.store.registry import DB_ENV, Store, coordinator, open_store
from monitor.store.sqlite import SQLiteStore

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
