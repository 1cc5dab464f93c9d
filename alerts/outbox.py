"""The durable outbox: every notification is a row before any channel sees it.

The router writes rows in the same transaction as its notify log, so a notification is
either decided and queued or neither. ``deliver(now)`` sends due rows channel by channel,
in order per (channel, alert), and records the outcome: delivered, or the next attempt's
time from the retry policy (Retry-After also pauses the whole channel), or dead after a
non-retryable answer or the deadline. A trigger (or reminder) that the channel failed to
take (an attempt failed, or the channel is paused or down) when its alert's resolve is
queued behind it is *superseded*: never sent, so a channel that was down while a problem
came and went is not paged for it as if it were live; the resolve alone tells it, once
("RESOLVED after 15 min: ..."). One not tried yet (phasewatch was down, not the channel)
is sent, then its resolve. A crash between a provider's acceptance and the
commit sends that row again after restart: at least once, and the providers' dedup keys
(PagerDuty ``dedup_key``, Alertmanager's label set, the Slack message being updated by
``ts``) make the repeat harmless.

Processes that share a store deliver one at a time: a pass holds the ``alerts-outbox``
lease (``monitor.store.cluster``), so each row is sent by one of them, once.
"""

from __future__ import annotations

import json
import logging
import threading
from collections.abc import Callable, Mapping
from contextlib import AbstractContextManager
from dataclasses import dataclass, field, replace
from datetime import datetime, timedelta
from typing import Any

from prometheus_client import Counter, Gauge

from alerts.channels.base import Channel, ReportChannel
from alerts.errors import DeliveryError
from alerts.notification import Notification, Report
from alerts.ratelimit import TokenBucket
from alerts.retry import RetryPolicy
from monitor.store.base import ComponentStore, Connection, parse_time, utc_text
from monitor.store.cluster import Hold, SoleInstance

log = logging.getLogger(__name__)

PENDING, DELIVERED, DEAD, SUPERSEDED = "pending", "delivered", "dead", "superseded"
LEASE = "alerts-outbox"
NOT_CONFIGURED = "channel is no longer configured"
Exclusive = Callable[[str], AbstractContextManager[Hold | None]]
"""``Coordinator.exclusive``: a lease held for a ``with`` block, None when another process has it."""
_COLUMNS = (
    "id, created_at, channel, kind, key, episode, action, severity, payload, status, attempts,"
    " first_attempt_at, next_attempt_at, last_error, done_at"
)


@dataclass(frozen=True)
class OutboxRow:
    """One notification (or report) for one channel."""

    id: int
    created_at: datetime
    channel: str
    kind: str  # notification | report
    key: str
    episode: int | None
    action: str
    severity: str
    payload: str
    status: str
    attempts: int
    first_attempt_at: datetime | None
    next_attempt_at: datetime
    last_error: str | None
    done_at: datetime | None

    @classmethod
    def from_row(cls, r: tuple[Any, ...]) -> OutboxRow:
        return cls(
            int(r[0]), datetime.fromisoformat(r[1]), r[2], r[3], r[4],
            None if r[5] is None else int(r[5]), r[6], r[7], r[8], r[9], int(r[10]),
            parse_time(r[11]), datetime.fromisoformat(r[12]), r[13], parse_time(r[14]),
        )

    def as_dict(self) -> dict[str, Any]:
        return {
            "id": self.id, "created_at": self.created_at.isoformat(), "channel": self.channel,
            "kind": self.kind, "key": self.key, "action": self.action,
            "severity": self.severity, "status": self.status, "attempts": self.attempts,
            "next_attempt_at": self.next_attempt_at.isoformat(), "last_error": self.last_error,
            "done_at": self.done_at.isoformat() if self.done_at else None,
        }


@dataclass
class DeliveryPass:
    """What one ``deliver`` call did."""

    delivered: int = 0
    retried: int = 0
    failed: int = 0
    waiting: int = 0
    superseded: int = 0
    errors: list[str] = field(default_factory=list)


@dataclass(frozen=True)
class Waiting:
    """A channel's rows still pending after failed attempts: how long, how many, why."""

    since: datetime  # the oldest such row's first attempt
    rows: int
    error: str  # the latest row's last error


@dataclass(frozen=True)
class OutboxStats:
    pending: int
    oldest_pending_at: datetime | None
    dead_since: int  # dead rows in the window asked for


def enqueue_notification(conn: Connection, *, channel: str, notification: Notification,
                         episode: int, now: datetime) -> None:
    """Queue a notification inside the caller's transaction."""
    alert = notification.alert
    conn.execute(
        "INSERT INTO alert_outbox (created_at, channel, kind, key, episode, action, severity,"
        " payload, status, next_attempt_at) VALUES (?, ?, 'notification', ?, ?, ?, ?, ?, ?, ?)",
        (utc_text(now), channel, alert.key, episode, notification.action, alert.severity,
         json.dumps(notification.as_dict()), PENDING, utc_text(now)),
    )


def enqueue_report(conn: Connection, *, channel: str, report: Report, key: str,
                   now: datetime) -> None:
    """Queue a report (the daily summary) inside the caller's transaction."""
    conn.execute(
        "INSERT INTO alert_outbox (created_at, channel, kind, key, episode, action, severity,"
        " payload, status, next_attempt_at) VALUES (?, ?, 'report', ?, NULL, 'report', 'info',"
        " ?, ?, ?)",
        (utc_text(now), channel, key, json.dumps(report.as_dict()), PENDING, utc_text(now)),
    )


class Outbox:
    """Delivers queued rows to their channels with retries, pacing and ordering."""

    def __init__(
        self, db: ComponentStore, channels: Mapping[str, Channel], policy: RetryPolicy, *,
        rates: Mapping[str, TokenBucket] | None = None, counter: Counter | None = None,
        batch_limit: int = 500, backlog: Gauge | None = None,
        exclusive: Exclusive | None = None,
    ) -> None:
        self.db = db
        self.channels = dict(channels)
        self.policy = policy
        self.rates = dict(rates or {})
        self.counter = counter
        self.batch_limit = batch_limit
        self.backlog = backlog  # rows still pending after each pass, by configured channel
        self._paused: dict[str, datetime] = {}
        self._lock = threading.Lock()
        self.exclusive = exclusive or SoleInstance("outbox").exclusive

    def deliver(self, now: datetime) -> DeliveryPass:
        """Send every due row (as pacing allows); never sleeps, never raises for a channel.

        Another process's pass in progress: this one does nothing (it delivers those rows).
        """
        result = DeliveryPass()
        with self._lock, self.exclusive(LEASE) as hold:
            if hold is None:
                return result
            rows = [OutboxRow.from_row(r) for r in self.db.read(
                f"SELECT {_COLUMNS} FROM alert_outbox WHERE status = ? ORDER BY id LIMIT ?",
                (PENDING, self.batch_limit),
            )]
            resolves = {(r.channel, r.key, r.episode): r.id for r in rows
                        if r.kind == "notification" and r.action == "resolve"}
            blocked_keys: set[tuple[str, str]] = set()
            blocked_channels: set[str] = set()
            for row in rows:
                if not hold.renew():  # the lease was lost: another process delivers the rest
                    break
                if (row.kind == "notification" and row.action != "resolve"
                        and resolves.get((row.channel, row.key, row.episode), 0) > row.id
                        and (row.attempts > 0 or row.channel in blocked_channels
                             or self._paused.get(row.channel, now) > now)):
                    # Over before this channel, failing, could take it: its resolve tells it.
                    self._superseded(row, now)
                    result.superseded += 1
                    continue
                ck = (row.channel, row.key)
                if ck in blocked_keys or row.channel in blocked_channels:
                    result.waiting += 1
                    continue
                if row.next_attempt_at > now:
                    blocked_keys.add(ck)  # later rows of this alert wait for it: order holds
                    result.waiting += 1
                    continue
                channel = self.channels.get(row.channel)
                if channel is None:  # a config change, not a failing channel
                    self._dead(row, now, NOT_CONFIGURED)
                    result.failed += 1
                    continue
                if not self._may_send(row.channel, now):
                    blocked_channels.add(row.channel)
                    result.waiting += 1
                    continue
                try:
                    ref = self._send(channel, row)
                except Exception as exc:
                    blocked_keys.add(ck)
                    if is_outage(exc):
                        blocked_channels.add(row.channel)  # the next rows would fail the same way
                    if self._failed(row, exc, now):
                        result.retried += 1
                    else:
                        result.failed += 1
                    result.errors.append(f"{row.channel}: {exc}")
                else:
                    self._delivered(row, ref, now)
                    result.delivered += 1
            self._set_backlog()
        return result

    def _set_backlog(self) -> None:
        if self.backlog is None:
            return
        pending = dict(self.db.read(
            "SELECT channel, COUNT(*) FROM alert_outbox WHERE status = ? GROUP BY channel", (PENDING,)
        ))
        for channel in self.channels:
            self.backlog.labels(channel=channel).set(int(pending.get(channel, 0)))

    def _may_send(self, channel: str, now: datetime) -> bool:
        paused = self._paused.get(channel)
        if paused is not None and paused > now:
            return False
        bucket = self.rates.get(channel)
        return bucket is None or bucket.take(now)

    def _send(self, channel: Channel, row: OutboxRow) -> str | None:
        data = json.loads(row.payload)
        if row.kind == "report":
            if not isinstance(channel, ReportChannel):
                raise DeliveryError(row.channel, "this channel cannot carry reports", retryable=False)
            channel.send_report(Report.from_dict(data))
            return None
        notification = Notification.from_dict(data)
        ref = self.ref(row.channel, row.key, row.episode)
        if ref is not None:
            notification = replace(notification, ref=ref)
        return channel.send(notification)

    def ref(self, channel: str, key: str, episode: int | None) -> str | None:
        """What ``channel`` returned when it delivered this alert episode's first message."""
        if episode is None:
            return None
        rows = self.db.read(
            "SELECT ref FROM alert_refs WHERE channel = ? AND key = ? AND episode = ?",
            (channel, key, episode),
        )
        return str(rows[0][0]) if rows else None

    def _count(self, row: OutboxRow, outcome: str) -> None:
        if self.counter is not None:
            self.counter.labels(channel=row.channel, severity=row.severity, outcome=outcome).inc()

    def _delivered(self, row: OutboxRow, ref: str | None, now: datetime) -> None:
        with self.db.transaction() as conn:
            conn.execute(
                "UPDATE alert_outbox SET status = ?, attempts = attempts + 1, done_at = ?,"
                " first_attempt_at = COALESCE(first_attempt_at, ?), last_error = NULL WHERE id = ?",
                (DELIVERED, utc_text(now), utc_text(now), row.id),
            )
            if ref is not None and row.episode is not None:
                conn.execute(
                    "INSERT INTO alert_refs (channel, key, episode, ref) VALUES (?, ?, ?, ?)"
                    " ON CONFLICT (channel, key, episode) DO UPDATE SET ref = excluded.ref",
                    (row.channel, row.key, row.episode, ref),
                )
        self._count(row, "delivered")
        log.info("event=alert.delivered channel=%s key=%s action=%s attempts=%d",
                 row.channel, row.key, row.action, row.attempts + 1)

    def _failed(self, row: OutboxRow, exc: Exception, now: datetime) -> bool:
        """Schedule the retry (True) or bury the row (False)."""
        attempts = row.attempts + 1
        elapsed = (now - row.created_at).total_seconds()
        delay = self.policy.next_delay(exc, attempts, elapsed)
        retry_after = getattr(exc, "retry_after_s", None)
        if isinstance(retry_after, int | float):
            until = now + timedelta(seconds=float(retry_after))
            self._paused[row.channel] = max(self._paused.get(row.channel, until), until)
        if delay is None:
            self._dead(row, now, str(exc), attempts)
            return False
        with self.db.transaction() as conn:
            conn.execute(
                "UPDATE alert_outbox SET attempts = ?, next_attempt_at = ?, last_error = ?,"
                " first_attempt_at = COALESCE(first_attempt_at, ?) WHERE id = ?",
                (attempts, utc_text(now + timedelta(seconds=delay)), str(exc)[:500],
                 utc_text(now), row.id),
            )
        self._count(row, "retry")
        level = logging.WARNING if attempts == 1 else logging.INFO
        log.log(level, "event=alert.delivery_retry channel=%s key=%s attempt=%d retry_in_s=%.1f"
                " error=%r", row.channel, row.key, attempts, delay, str(exc)[:200])
        return True

    def _superseded(self, row: OutboxRow, now: datetime) -> None:
        with self.db.transaction() as conn:
            conn.execute(
                "UPDATE alert_outbox SET status = ?, done_at = ?, last_error = ? WHERE id = ?",
                (SUPERSEDED, utc_text(now), "resolved before this channel accepted it", row.id),
            )
        self._count(row, "superseded")
        log.info("event=alert.superseded channel=%s key=%s action=%s attempts=%d",
                 row.channel, row.key, row.action, row.attempts)

    def _dead(self, row: OutboxRow, now: datetime, error: str, attempts: int | None = None) -> None:
        with self.db.transaction() as conn:
            conn.execute(
                "UPDATE alert_outbox SET status = ?, attempts = ?, done_at = ?, last_error = ?"
                " WHERE id = ?",
                (DEAD, row.attempts if attempts is None else attempts, utc_text(now),
                 error[:500], row.id),
            )
        self._count(row, "failed")
        log.error("event=alert.delivery_failed channel=%s key=%s action=%s attempts=%d error=%r",
                  row.channel, row.key, row.action, row.attempts if attempts is None else attempts,
                  error[:200])

    def rows(self, status: str | None = None, limit: int = 1000) -> list[OutboxRow]:
        """Rows, oldest first (optionally only those with ``status``)."""
        query = f"SELECT {_COLUMNS} FROM alert_outbox"
        params: list[object] = []
        if status is not None:
            query += " WHERE status = ?"
            params.append(status)
        query += " ORDER BY id LIMIT ?"
        params.append(limit)
        return [OutboxRow.from_row(r) for r in self.db.read(query, params)]

    def finished(self, after: tuple[datetime, int], limit: int = 1000) -> list[OutboxRow]:
        """Rows delivered or given up after ``after`` (see ``finished_rows``)."""
        return finished_rows(self.db, after, limit)

    def waiting(self) -> dict[str, Waiting]:
        """Each channel with pending rows that failed at least once (retried, not buried)."""
        out: dict[str, Waiting] = {}
        for channel, first, error in self.db.read(
            "SELECT channel, first_attempt_at, last_error FROM alert_outbox"
            " WHERE status = ? AND attempts > 0 ORDER BY id", (PENDING,),
        ):
            since = datetime.fromisoformat(first)
            seen = out.get(channel)
            out[channel] = Waiting(min(since, seen.since) if seen else since,
                                   (seen.rows if seen else 0) + 1, str(error or ""))
        return out

    def stats(self, since: datetime) -> OutboxStats:
        pending = self.db.read(
            "SELECT COUNT(*), MIN(created_at) FROM alert_outbox WHERE status = ?", (PENDING,)
        )[0]
        dead = self.db.read(
            "SELECT COUNT(*) FROM alert_outbox WHERE status = ? AND done_at >= ?",
            (DEAD, utc_text(since)),
        )[0]
        return OutboxStats(int(pending[0]), parse_time(pending[1]), int(dead[0]))

    def prune(self, before: datetime) -> int:
        """Forget delivered and dead rows (and their refs) finished before ``before``."""
        with self.db.transaction() as conn:
            cur = conn.execute(
                "DELETE FROM alert_outbox WHERE status != ? AND done_at < ?",
                (PENDING, utc_text(before)),
            )
            conn.execute(
                "DELETE FROM alert_refs WHERE episode IN (SELECT id FROM alert_episodes"
                " WHERE resolved_at IS NOT NULL AND resolved_at < ?)",
                (utc_text(before),),
            )
            return cur.rowcount


def finished_rows(db: ComponentStore, after: tuple[datetime, int], limit: int = 1000) -> list[OutboxRow]:
    """Rows delivered or given up after ``after`` = (done_at, id), in that order: a cursor for
    readers that copy outcomes elsewhere (the BigQuery mirror and its backfill)."""
    done_at, row_id = utc_text(after[0]), after[1]
    return [OutboxRow.from_row(r) for r in db.read(
        f"SELECT {_COLUMNS} FROM alert_outbox WHERE status != ? AND done_at IS NOT NULL"
        " AND (done_at > ? OR (done_at = ? AND id > ?)) ORDER BY done_at, id LIMIT ?",
        (PENDING, done_at, done_at, row_id, limit),
    )]


def is_outage(exc: BaseException) -> bool:
    """A failure that says the channel, not this message, is the problem."""
    if isinstance(exc, DeliveryError):
        return exc.retryable
    return True
