"""Event stores: the protocols, SQLite (one process) and PostgreSQL (several processes)."""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

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


def __getattr__(name: str) -> Any:
    """Import a re-exported name on first use: importing a module of this package does not
    import the whole package (the CLI's cold paths load only what they use)."""
    module = _LAZY.get(name)
    if module is None:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    value = getattr(importlib.import_module(module), name)
    globals()[name] = value
    return value
