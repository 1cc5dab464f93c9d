"""Health probe results over time (component ``probes``): what availability SLOs count.

The actuator keeps only each service's latest result; availability SLIs need every probe in
their window, on start (a restart must not reset them) and in ``phasewatch slo report``.
Rows are pruned past the longest availability window, so the table stays small: a probe a
minute for ten services over 30 days is about 430,000 rows.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from datetime import datetime

from monitor.store.base import ComponentStore, Migration, utc_text

COMPONENT = "probes"
# Append-only (migrate_component splits on ";"); portable (monitor/store/migrations.py).
MIGRATIONS: tuple[Migration, ...] = (
    """
    CREATE TABLE health_probes (
        service    TEXT NOT NULL,
        checked_at TEXT NOT NULL,
        status     TEXT NOT NULL,
        PRIMARY KEY (service, checked_at)
    );
    CREATE INDEX health_probes_by_time ON health_probes (checked_at);
    """,
)
_PAGE = 5000


@dataclass(frozen=True)
class StoredProbe:
    """One probe of a service: when, and its status (pass / warn / fail)."""

    service: str
    at: datetime
    status: str


class ProbeLog:
    """Every probe result kept for the availability windows (one row per service and time)."""

    def __init__(self, store: ComponentStore) -> None:
        self._store = store
        store.migrate_component(COMPONENT, MIGRATIONS)

    def record(self, service: str, at: datetime, status: str) -> None:
        """Keep one result; a repeated (service, time) replaces the earlier one."""
        with self._store.transaction() as db:
            db.execute(
                "INSERT INTO health_probes (service, checked_at, status) VALUES (?, ?, ?)"
                " ON CONFLICT (service, checked_at) DO UPDATE SET status = excluded.status",
                (service, utc_text(at), status),
            )

    def probes(self, *, since: datetime, until: datetime | None = None) -> Iterator[StoredProbe]:
        """Results from ``since`` (to ``until``, inclusive), in time order, read in pages."""
        last = (utc_text(since), "")
        end = utc_text(until) if until is not None else None
        while True:
            query = ("SELECT service, checked_at, status FROM health_probes"
                     " WHERE (checked_at, service) > (?, ?)")
            params: list[object] = [last[0], last[1]]
            if end is not None:
                query += " AND checked_at <= ?"
                params.append(end)
            rows = self._store.read(query + f" ORDER BY checked_at, service LIMIT {_PAGE}", params)
            for service, at, status in rows:
                yield StoredProbe(service, datetime.fromisoformat(at), status)
            if len(rows) < _PAGE:
                return
            last = (rows[-1][1], rows[-1][0])

    def prune(self, before: datetime) -> int:
        """Forget results older than ``before``; returns how many."""
        with self._store.transaction() as db:
            return db.execute("DELETE FROM health_probes WHERE checked_at < ?",
                              (utc_text(before),)).rowcount
