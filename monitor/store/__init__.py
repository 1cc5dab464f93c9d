"""Event stores: the protocol and the SQLite implementation."""

from monitor.store.base import AppendResult, DeadLetter, EventStore
from monitor.store.sqlite import SQLiteStore

__all__ = ["AppendResult", "DeadLetter", "EventStore", "SQLiteStore"]
