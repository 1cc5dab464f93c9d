"""``phasewatch bigquery backfill``: a store's history copied into the mirror's tables.

Events (in the store's arrival order, stamped with strictly increasing ``received_at`` from
the stored times), the data-check results, and the alert notifications that were delivered
or given up. Idempotent: the ids already in each table (over the dates the
store covers) are read first and skipped, and every row carries its id as insert id.
Health probes and daily SLO results are not in the store: only ``serve`` mirrors them.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import UTC, date, datetime
from typing import Protocol

from alerts import store as alert_tables
from alerts.outbox import OutboxRow, finished_rows
from monitor.app.mirror import Stamp
from monitor.checks.store import CheckStore
from monitor.events import event_from_json
from monitor.store.registry import Store
from monitor.telemetry.mirror import FlushResult, Mirror
from monitor.telemetry.mirror_tables import Row, alert_row, check_row, event_row

PAGE = 5000
EPOCH = datetime(1970, 1, 1, tzinfo=UTC)


class KnownIds(Protocol):
    def existing_ids(self, table: str, lo: date, hi: date) -> set[str]: ...


@dataclass
class BackfillResult:
    """Rows per table: found in the store, already in BigQuery, written, not written."""

    found: dict[str, int] = field(default_factory=dict)
    present: dict[str, int] = field(default_factory=dict)
    written: dict[str, int] = field(default_factory=dict)
    failed: dict[str, int] = field(default_factory=dict)


def backfill(store: Store, mirror: Mirror, known: KnownIds) -> BackfillResult:
    """Copy ``store`` through ``mirror.write`` (its retries), skipping ids ``known`` has."""
    out = BackfillResult()
    for table, rows in (("events", list(_events(store))), ("checks", _checks(store)),
                        ("alerts", _alerts(store))):
        out.found[table] = len(rows)
        if not rows:
            continue
        lo, hi = _dates(table, rows)
        present = known.existing_ids(table, lo, hi)
        new = [row for row in rows if row[0] not in present]
        out.present[table] = len(rows) - len(new)
        result: FlushResult = mirror.write(table, new)
        out.written[table] = result.written.get(table, 0)
        out.failed[table] = result.dropped.get(table, 0)
    return out


def _events(store: Store) -> Iterator[Row]:
    stamp = Stamp()
    last = 0
    while True:
        page = store.read("SELECT seq, received_at, body FROM events WHERE seq > ? ORDER BY seq"
                          " LIMIT ?", (last, PAGE))
        for seq, received, body in page:
            received_at = datetime.fromisoformat(received).astimezone(UTC)
            yield event_row((event_from_json(body), stamp(received_at)))
            last = seq
        if len(page) < PAGE:
            return


def _checks(store: Store) -> list[Row]:
    checks = CheckStore(store)  # creates the tables in a store that never had checks
    stamp, last, out = Stamp(), 0, []
    while page := checks.after(last, PAGE):
        for row_id, result in page:
            out.append(check_row((result, stamp(result.at))))
            last = row_id
    return out


def _alerts(store: Store) -> list[Row]:
    store.migrate_component(alert_tables.COMPONENT, alert_tables.MIGRATIONS)  # as _checks
    out: list[OutboxRow] = []
    cursor = (EPOCH, 0)
    while page := finished_rows(store, cursor, PAGE):
        out.extend(page)
        cursor = (page[-1].done_at or page[-1].created_at, page[-1].id)
    return [alert_row(row) for row in out]


def _dates(table: str, rows: list[Row]) -> tuple[date, date]:
    """The date range the rows fall in, by the column the table is partitioned on."""
    field_name = {"events": "run_date", "checks": "measured_at", "alerts": "created_at"}[table]
    days = [date.fromisoformat(str(row[field_name])[:10]) for _, row in rows]
    return min(days), max(days)
