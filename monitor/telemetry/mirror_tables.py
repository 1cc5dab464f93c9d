"""The mirror's tables: their columns, their DDL, and how a record becomes a row.

One definition serves the three users: ``phasewatch bigquery ddl`` prints it, the mirror's
encoders write rows that fit it, and the SQL SLIs (``slo.sql``) read its column names.
Timestamps are written as RFC 3339 UTC text with microseconds, dates as ``YYYY-MM-DD``,
maps (attributes, labels) as JSON text (``JSON_VALUE(attributes, '$.k')`` reads one).

Every table has an id column (the row's insert id, BigQuery's best-effort de-duplication
key). The mirror never updates a row: a table may hold a row twice (a retry after the
de-duplication window, a backfill over live rows), and readers de-duplicate by the id, as
the SQL SLIs do.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import dataclass
from datetime import date, datetime
from typing import TYPE_CHECKING, Any, Protocol

from monitor.events import Event
from monitor.store.base import utc_text

if TYPE_CHECKING:
    from alerts.outbox import OutboxRow
    from slo.evaluator import DayCount, SLOStatus

Row = tuple[str, dict[str, Any]]


@dataclass(frozen=True)
class Column:
    name: str
    type: str  # a BigQuery type
    required: bool
    description: str


@dataclass(frozen=True)
class Table:
    name: str
    description: str
    id_column: str
    columns: tuple[Column, ...]
    partition: str  # the PARTITION BY expression
    cluster: tuple[str, ...]
    date_column: str  # what a backfill bounds its look-up of existing ids by

    def ddl(self, table_id: str) -> str:
        """``CREATE TABLE IF NOT EXISTS`` of this table as ``table_id`` (GoogleSQL)."""
        width = max(len(c.name) for c in self.columns) + 2
        cols = ",\n".join(
            f"  {('`' + c.name + '`').ljust(width)} {c.type}{' NOT NULL' if c.required else ''}"
            f" OPTIONS (description = {_quote(c.description)})"
            for c in self.columns
        )
        return (
            f"CREATE TABLE IF NOT EXISTS `{table_id}` (\n{cols}\n)\n"
            f"PARTITION BY {self.partition}\n"
            f"CLUSTER BY {', '.join(self.cluster)}\n"
            f"OPTIONS (description = {_quote(self.description)});\n"
        )


def _quote(text: str) -> str:
    return json.dumps(text)  # a GoogleSQL double-quoted literal: the same escapes


def _c(name: str, type_: str, description: str, required: bool = False) -> Column:
    return Column(name, type_, required, description)


EVENTS = Table(
    "events", "Pipeline events as phasewatch stored them (phasewatch mirror)", "event_id", (
        _c("event_id", "STRING", "the event's id: unique; the de-duplication key", True),
        _c("pipeline", "STRING", "configured pipeline", True),
        _c("run_date", "DATE", "the date the run works on", True),
        _c("mode", "STRING", "overnight, same_day, tomorrow or backfill (resolved)", True),
        _c("phase", "STRING", "configured phase", True),
        _c("processor", "STRING", "configured processor (its canonical name); NULL: a phase-level event"),
        _c("status", "STRING", "started, progress, succeeded, failed or skipped", True),
        _c("timestamp", "TIMESTAMP", "when it happened (the producer's clock)", True),
        _c("received_at", "TIMESTAMP", "when this phasewatch instance stored it; strictly increasing "
           "per instance, it orders events as phasewatch folded them into run state", True),
        _c("duration_s", "FLOAT64", "reported duration"),
        _c("records", "INT64", "rows or entities produced"),
        _c("expected_records", "INT64", "what a complete run would produce"),
        _c("data_as_of", "TIMESTAMP", "freshness watermark of the data it produced"),
        _c("batch_id", "STRING", "batch (stall detection)"),
        _c("done", "INT64", "batch items done"),
        _c("total", "INT64", "batch items in all"),
        _c("error", "STRING", "error text of a failure"),
        _c("attributes", "STRING", "attributes as a JSON object"),
        _c("traceparent", "STRING", "W3C trace context"),
    ),
    partition="run_date", cluster=("pipeline", "phase", "processor"), date_column="run_date",
)

CHECKS = Table(
    "checks", "Data-check results (phasewatch mirror)", "id", (
        _c("id", "STRING", "name@measured_at: the de-duplication key", True),
        _c("name", "STRING", "the check's name", True),
        _c("value", "FLOAT64", "the measured value", True),
        _c("measured_at", "TIMESTAMP", "when it was measured", True),
        _c("run_date", "DATE", "the run date it is about, when the result names one"),
        _c("pipeline", "STRING", "the pipeline it is about, when the result names one"),
        _c("entities", "STRING", "the missing entities it found, as a JSON array"),
        _c("source", "STRING", "runner, api, cli or replay", True),
        _c("received_at", "TIMESTAMP", "when this instance recorded it; strictly increasing per "
           "instance, it orders results as phasewatch handled them", True),
    ),
    partition="DATE(measured_at)", cluster=("pipeline", "name"), date_column="DATE(measured_at)",
)

PROBES = Table(
    "probes", "Health probes of the configured services (phasewatch mirror)", "id", (
        _c("id", "STRING", "service@checked_at: the de-duplication key", True),
        _c("service", "STRING", "configured service", True),
        _c("status", "STRING", "pass, warn or fail", True),
        _c("checked_at", "TIMESTAMP", "when it was probed", True),
        _c("received_at", "TIMESTAMP", "when this instance recorded it; orders repeated probes", True),
        _c("http_status", "INT64", "the HTTP status answered"),
        _c("detail", "STRING", "why, in words"),
    ),
    partition="DATE(checked_at)", cluster=("service",), date_column="DATE(checked_at)",
)

ALERTS = Table(
    "alerts", "Alert notifications and reports, once delivered or given up (phasewatch mirror)", "id", (
        _c("id", "STRING", "the outbox row's id in its store: the de-duplication key", True),
        _c("created_at", "TIMESTAMP", "when the notification was queued", True),
        _c("done_at", "TIMESTAMP", "when it was delivered or given up", True),
        _c("status", "STRING", "delivered or dead", True),
        _c("channel", "STRING", "configured channel", True),
        _c("kind", "STRING", "notification or report", True),
        _c("action", "STRING", "trigger, resolve or report", True),
        _c("severity", "STRING", "critical, warning or info", True),
        _c("key", "STRING", "the alert's key", True),
        _c("summary", "STRING", "the alert's summary (a report's title)"),
        _c("pipeline", "STRING", "the pipeline label"),
        _c("phase", "STRING", "the phase label"),
        _c("processor", "STRING", "the processor label"),
        _c("labels", "STRING", "all labels as a JSON object"),
        _c("attempts", "INT64", "delivery attempts", True),
        _c("last_error", "STRING", "the last delivery error"),
    ),
    partition="DATE(created_at)", cluster=("pipeline", "phase", "processor"),
    date_column="DATE(created_at)",
)

SLO_DAYS = Table(
    "slo_days", "Daily SLO results: each day's units, and the window as of the evaluation "
    "(phasewatch mirror)", "id", (
        _c("id", "STRING", "slo/day: the de-duplication key (the latest evaluated_at wins)", True),
        _c("slo", "STRING", "the SLO's name", True),
        _c("pipeline", "STRING", "its pipeline", True),
        _c("kind", "STRING", "its SLI kind", True),
        _c("unit", "STRING", "what it counts: runs, events or probes", True),
        _c("day", "DATE", "the day, in the pipeline's timezone", True),
        _c("good", "INT64", "good units of that day", True),
        _c("total", "INT64", "units of that day", True),
        _c("objective", "FLOAT64", "the objective", True),
        _c("slo_window", "STRING", "the SLO's window (28d, week, month)", True),
        _c("window_good", "INT64", "good units of the window at evaluated_at", True),
        _c("window_total", "INT64", "units of the window at evaluated_at", True),
        _c("budget_remaining", "FLOAT64", "share of the error budget left at evaluated_at", True),
        _c("status", "STRING", "ok, warning or breach at evaluated_at", True),
        _c("evaluated_at", "TIMESTAMP", "when it was evaluated", True),
    ),
    partition="day", cluster=("pipeline", "slo"), date_column="day",
)

TABLES: dict[str, Table] = {t.name: t for t in (EVENTS, CHECKS, PROBES, ALERTS, SLO_DAYS)}


def ddl(table_ids: dict[str, str]) -> str:
    """Every table's ``CREATE TABLE IF NOT EXISTS``, named by ``table_ids`` (table -> full id)."""
    return "\n".join(TABLES[name].ddl(table_id) for name, table_id in table_ids.items())


# --- rows ----------------------------------------------------------------------------------------


def utc(when: datetime) -> str:
    """RFC 3339 UTC text with microseconds (what BigQuery's TIMESTAMP takes in JSON)."""
    return utc_text(when)  # isoformat, not strftime: several a row, on the mirror's thread


def event_row(item: tuple[Event, datetime]) -> Row:
    """An event and when this instance stored it."""
    event, received_at = item
    return event.event_id, {
        "event_id": event.event_id, "pipeline": event.pipeline,
        "run_date": event.run_date.isoformat(), "mode": event.mode, "phase": event.phase,
        "processor": event.processor, "status": event.status, "timestamp": utc(event.timestamp),
        "received_at": utc(received_at), "duration_s": event.duration_s, "records": event.records,
        "expected_records": event.expected_records,
        "data_as_of": utc(event.data_as_of) if event.data_as_of else None,
        "batch_id": event.batch_id, "done": event.done, "total": event.total, "error": event.error,
        "attributes": json.dumps(event.attributes, sort_keys=True) if event.attributes else None,
        "traceparent": event.traceparent,
    }


class CheckResult(Protocol):
    """What the mirror reads of a data check's result (``monitor.checks.result.CheckResult``)."""

    @property
    def name(self) -> str: ...
    @property
    def value(self) -> float: ...
    @property
    def at(self) -> datetime: ...
    @property
    def entities(self) -> tuple[str, ...] | None: ...
    @property
    def run_date(self) -> date | None: ...
    @property
    def pipeline(self) -> str | None: ...
    @property
    def source(self) -> str: ...


def check_row(item: tuple[CheckResult, datetime]) -> Row:
    """A data check's result and when this instance handled it."""
    result, received_at = item
    row_id = f"{result.name}@{utc(result.at)}"
    return row_id, {
        "id": row_id, "name": result.name, "value": result.value, "measured_at": utc(result.at),
        "run_date": result.run_date.isoformat() if result.run_date else None,
        "pipeline": result.pipeline,
        "entities": None if result.entities is None else json.dumps(list(result.entities)),
        "source": result.source, "received_at": utc(received_at),
    }


@dataclass(frozen=True)
class ProbeRecord:
    """One health probe as the mirror writes it."""

    service: str
    status: str
    checked_at: datetime
    received_at: datetime
    http_status: int | None = None
    detail: str | None = None


def probe_row(probe: ProbeRecord) -> Row:
    row_id = f"{probe.service}@{utc(probe.checked_at)}"
    return row_id, {
        "id": row_id, "service": probe.service, "status": probe.status,
        "checked_at": utc(probe.checked_at), "received_at": utc(probe.received_at),
        "http_status": probe.http_status, "detail": probe.detail,
    }


def alert_row(row: OutboxRow) -> Row:
    """An outbox row that is done (delivered or dead)."""
    try:
        payload = json.loads(row.payload)
    except ValueError:
        payload = {}
    alert = payload.get("alert") if isinstance(payload, dict) else None
    labels = alert.get("labels") if isinstance(alert, dict) else None
    labels = labels if isinstance(labels, dict) else {}
    summary = alert.get("summary") if isinstance(alert, dict) else payload.get("title")
    row_id = str(row.id)
    return row_id, {
        "id": row_id, "created_at": utc(row.created_at),
        "done_at": utc(row.done_at or row.created_at), "status": row.status,
        "channel": row.channel, "kind": row.kind, "action": row.action, "severity": row.severity,
        "key": row.key, "summary": summary if isinstance(summary, str) else None,
        "pipeline": labels.get("pipeline"), "phase": labels.get("phase"),
        "processor": labels.get("processor"),
        "labels": json.dumps(labels, sort_keys=True) if labels else None,
        "attempts": row.attempts, "last_error": row.last_error,
    }


def slo_day_row(item: tuple[SLOStatus, DayCount]) -> Row:
    """One day of an SLO's history, with the window's standing as of the evaluation."""
    status, day = item
    row_id = f"{status.name}/{day.day.isoformat()}"
    return row_id, {
        "id": row_id, "slo": status.name, "pipeline": status.pipeline, "kind": status.kind,
        "unit": status.unit, "day": day.day.isoformat(), "good": day.good, "total": day.total,
        "objective": status.objective, "slo_window": status.window, "window_good": status.good,
        "window_total": status.total, "budget_remaining": status.budget_remaining,
        "status": status.status, "evaluated_at": utc(status.as_of),
    }


ENCODERS: dict[str, Callable[[Any], Row]] = {
    "events": event_row, "checks": check_row, "probes": probe_row, "alerts": alert_row,
    "slo_days": slo_day_row,
}
