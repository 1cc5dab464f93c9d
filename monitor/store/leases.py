"""Leases: named, expiring claims that processes sharing a store hold one at a time.

A holder takes a lease that is free, expired or already its own, and keeps it by taking it
again before it expires; a process that dies stops renewing, and another takes over once
the lease runs out. One upsert does it, the same SQL in SQLite and PostgreSQL: concurrent
takers of one name are serialised on its row, and only one of them sees its name come back.
"""

from __future__ import annotations

from datetime import datetime, timedelta

from monitor.store.base import ComponentStore, Migration, utc_text

MIGRATIONS: tuple[Migration, ...] = (
    """
    CREATE TABLE leases (
        name       TEXT PRIMARY KEY,
        holder     TEXT NOT NULL,
        expires_at TEXT NOT NULL
    )
    """,
)


class Leases:
    """Take, keep and give back leases for one holder."""

    def __init__(self, store: ComponentStore, holder: str) -> None:
        self._store = store
        self.holder = holder
        store.migrate_component("leases", MIGRATIONS)

    def acquire(self, name: str, now: datetime, ttl: timedelta) -> bool:
        """Take or renew ``name`` until ``now + ttl``; False while another holder's lease runs."""
        with self._store.transaction() as db:
            row = db.execute(
                "INSERT INTO leases (name, holder, expires_at) VALUES (?, ?, ?)"
                " ON CONFLICT (name) DO UPDATE SET holder = excluded.holder,"
                " expires_at = excluded.expires_at"
                " WHERE leases.holder = excluded.holder OR leases.expires_at < ?"
                " RETURNING holder",
                (name, self.holder, utc_text(now + ttl), utc_text(now)),
            ).fetchone()
        return row is not None

    def release(self, name: str) -> None:
        """Give ``name`` back, if this holder has it."""
        with self._store.transaction() as db:
            db.execute("DELETE FROM leases WHERE name = ? AND holder = ?", (name, self.holder))

    def holders(self, prefix: str, now: datetime) -> dict[str, str]:
        """Running leases whose name starts with ``prefix``: name → holder."""
        rows = self._store.read(
            "SELECT name, holder FROM leases WHERE name LIKE ? AND expires_at >= ?",
            (prefix.replace("%", "") + "%", utc_text(now)),
        )
        return {str(r[0]): str(r[1]) for r in rows}
