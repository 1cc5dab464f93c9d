"""Durable alert state in the phasewatch database (component ``alerts``).

Tables: ``alert_episodes`` (each firing of a key, opened → resolved: the source of MTTR),
``alert_notify_log`` (what each channel was last told about each alert, so a restart never
repeats or forgets a notification), ``alert_outbox`` (notifications waiting for or done
with delivery), ``alert_refs`` (what a channel created for an alert, e.g. a Slack message),
``alert_silences`` and ``alert_reports`` (which daily summaries went out).
"""

from __future__ import annotations

import json
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, replace
from datetime import datetime
from typing import Any

from alerts.model import Alert
from alerts.notification import Notification
from monitor.store.base import ComponentStore, Connection, Migration, parse_time, utc_text
from monitor.store.retention import Rule

COMPONENT = "alerts"

# Append-only: each entry moves the component from version i to i + 1. No ";" inside a
# statement (migrate_component splits on it).
MIGRATIONS: tuple[Migration, ...] = (
    """
    CREATE TABLE alert_episodes (
        id          INTEGER PRIMARY KEY,
        key         TEXT    NOT NULL,
        severity    TEXT    NOT NULL,
        alert       TEXT    NOT NULL,
        count       INTEGER NOT NULL,
        opened_at   TEXT    NOT NULL,
        resolved_at TEXT,
        notified    INTEGER NOT NULL DEFAULT 0
    );
    CREATE UNIQUE INDEX alert_episodes_one_open ON alert_episodes (key) WHERE resolved_at IS NULL;
    CREATE INDEX alert_episodes_by_open ON alert_episodes (opened_at);
    CREATE TABLE alert_notify_log (
        channel  TEXT    NOT NULL,
        key      TEXT    NOT NULL,
        episode  INTEGER NOT NULL,
        action   TEXT    NOT NULL,
        severity TEXT    NOT NULL,
        sent_at  TEXT    NOT NULL,
        PRIMARY KEY (channel, key)
    );
    CREATE TABLE alert_outbox (
        id               INTEGER PRIMARY KEY,
        created_at       TEXT    NOT NULL,
        channel          TEXT    NOT NULL,
        kind             TEXT    NOT NULL,
        key              TEXT    NOT NULL,
        episode          INTEGER,
        action           TEXT    NOT NULL,
        severity         TEXT    NOT NULL,
        payload          TEXT    NOT NULL,
        status           TEXT    NOT NULL,
        attempts         INTEGER NOT NULL DEFAULT 0,
        first_attempt_at TEXT,
        next_attempt_at  TEXT    NOT NULL,
        last_error       TEXT,
        done_at          TEXT
    );
    CREATE INDEX alert_outbox_by_status ON alert_outbox (status, id);
    CREATE TABLE alert_refs (
        channel TEXT    NOT NULL,
        key     TEXT    NOT NULL,
        episode INTEGER NOT NULL,
        ref     TEXT    NOT NULL,
        PRIMARY KEY (channel, key, episode)
    );
    CREATE TABLE alert_silences (
        id         TEXT PRIMARY KEY,
        matchers   TEXT NOT NULL,
        author     TEXT NOT NULL,
        comment    TEXT NOT NULL,
        created_at TEXT NOT NULL,
        starts_at  TEXT NOT NULL,
        ends_at    TEXT NOT NULL,
        updated_at TEXT NOT NULL
    );
    CREATE TABLE alert_reports (
        kind    TEXT NOT NULL,
        period  TEXT NOT NULL,
        sent_at TEXT NOT NULL,
        status  TEXT NOT NULL,
        PRIMARY KEY (kind, period)
    );
    """,
    # An episode a person acknowledged (in PagerDuty): no reminders while it lasts.
    """
    ALTER TABLE alert_episodes ADD COLUMN acked_at TEXT;
    ALTER TABLE alert_episodes ADD COLUMN acked_by TEXT;
    """,
)


# Past retention (monitor.store.retention), in this order: delivered notifications; episodes
# resolved long ago that no channel still has to be told of (none open, none whose resolve
# waits in the outbox); what channels were last told, but of a firing alert; the refs of
# deleted episodes; expired silences; sent reports.
RETENTION: tuple[Rule, ...] = (
    Rule("alert_outbox", "alerts", "status IN ('delivered', 'dead', 'superseded') AND done_at < ?"),
    Rule("alert_episodes", "alerts",
         "opened_at < ? AND resolved_at IS NOT NULL AND resolved_at < ?"
         " AND id NOT IN (SELECT episode FROM alert_notify_log WHERE action = 'trigger')"
         " AND NOT EXISTS (SELECT 1 FROM alert_outbox AS o WHERE o.episode = alert_episodes.id"
         " AND o.status = 'pending')", ("before", "before")),
    Rule("alert_notify_log", "alerts", "sent_at < ? AND action != 'trigger'",
         key=("channel", "key"), serial=False),
    Rule("alert_refs", "alerts",
         "NOT EXISTS (SELECT 1 FROM alert_episodes AS e WHERE e.id = alert_refs.episode)", (),
         key=("channel", "key", "episode"), serial=False),
    Rule("alert_silences", "alerts", "ends_at < ?", serial=False),
    Rule("alert_reports", "alerts", "sent_at < ?", key=("kind", "period"), serial=False),
)


@dataclass(frozen=True)
class Episode:
    """One firing of an alert key, from opened to resolved (None while it fires)."""

    id: int
    alert: Alert
    opened_at: datetime
    resolved_at: datetime | None
    notified: bool
    acked_at: datetime | None = None  # a person acknowledged it (PagerDuty): no reminders
    acked_by: str | None = None

    @property
    def duration_s(self) -> float | None:
        if self.resolved_at is None:
            return None
        return max((self.resolved_at - self.opened_at).total_seconds(), 0.0)


@dataclass(frozen=True)
class SentRecord:
    """What one channel was last told about one alert."""

    channel: str
    key: str
    episode: int
    action: str
    severity: str
    sent_at: datetime


_EPISODE_COLUMNS = "id, alert, count, opened_at, resolved_at, notified, acked_at, acked_by"
NO_CHANNEL = ""  # the notify log's channel of a notice no channel was told yet


def _episode(row: tuple[Any, ...]) -> Episode:
    alert = Alert.from_dict(json.loads(row[1]))
    if alert.count != row[2]:
        alert = replace(alert, count=int(row[2]))
    return Episode(int(row[0]), alert, datetime.fromisoformat(row[3]), parse_time(row[4]),
                   bool(row[5]), parse_time(row[6]), row[7])


class AlertStore:
    """Episodes, the notify log and sent reports; applies the component's migrations."""

    def __init__(self, db: ComponentStore) -> None:
        self.db = db
        db.migrate_component(COMPONENT, MIGRATIONS)

    # --- episodes ---------------------------------------------------------------------

    def open_episode(self, alert: Alert, opened_at: datetime) -> int:
        """A new episode of ``alert.key``, or the open one when one is open already (an
        instance sharing the store opened it)."""
        with self.db.transaction() as conn:
            row = conn.execute(
                "INSERT INTO alert_episodes (key, severity, alert, count, opened_at)"
                " VALUES (?, ?, ?, ?, ?) ON CONFLICT (key) WHERE resolved_at IS NULL DO NOTHING"
                " RETURNING id",
                (alert.key, alert.severity, json.dumps(alert.as_dict()), alert.count,
                 utc_text(opened_at)),
            ).fetchone()
            if row is None:
                row = conn.execute(
                    "SELECT id FROM alert_episodes WHERE key = ? AND resolved_at IS NULL",
                    (alert.key,),
                ).fetchone()
            return int(row[0])

    def save_episodes(self, items: Sequence[tuple[int, Alert]]) -> None:
        """Store the latest content and count of firing episodes."""
        if not items:
            return
        with self.db.transaction() as conn:
            conn.executemany(
                "UPDATE alert_episodes SET alert = ?, severity = ?, count = ? WHERE id = ?",
                [(json.dumps(a.as_dict()), a.severity, a.count, i) for i, a in items],
            )

    def resolve_episode(self, episode: int, alert: Alert, at: datetime, *,
                        notice: bool = False) -> None:
        """``notice``: raised and resolved at once, not told yet: marked in the notify log
        (channel ``""``, ``held``) until it settles, so a restart before the flush tells it."""
        with self.db.transaction() as conn:
            conn.execute(
                "UPDATE alert_episodes SET resolved_at = ?, alert = ?, count = ? WHERE id = ?",
                (utc_text(at), json.dumps(alert.as_dict()), alert.count, episode),
            )
            if notice:
                self.record_sent(conn, SentRecord(NO_CHANNEL, alert.key, episode, "held",
                                                  alert.severity, at))

    def acknowledge_episode(self, episode: int, at: datetime | None, by: str | None) -> None:
        """Mark a firing episode acknowledged by ``by`` at ``at`` (None, None: no longer)."""
        with self.db.transaction() as conn:
            conn.execute(
                "UPDATE alert_episodes SET acked_at = ?, acked_by = ? WHERE id = ?",
                (None if at is None else utc_text(at), by, episode),
            )

    def acknowledgement(self, episode: int) -> tuple[datetime | None, str | None]:
        """When and by whom a firing episode was acknowledged, as the store has it now (an
        instance sharing it may have heard the acknowledgement): (None, None) if not."""
        rows = self.db.read("SELECT acked_at, acked_by FROM alert_episodes WHERE id = ?", (episode,))
        return (parse_time(rows[0][0]), rows[0][1]) if rows else (None, None)

    def reopen_episode(self, episode: int, alert: Alert) -> None:
        with self.db.transaction() as conn:
            conn.execute(
                "UPDATE alert_episodes SET resolved_at = NULL, alert = ?, count = ? WHERE id = ?",
                (json.dumps(alert.as_dict()), alert.count, episode),
            )

    def unsettled_episodes(self) -> list[Episode]:
        """Firing episodes, resolved ones a channel was told fired but not yet resolved, and
        notices waiting for their digest (``held``)."""
        rows = self.db.read(
            f"SELECT {_EPISODE_COLUMNS} FROM alert_episodes WHERE resolved_at IS NULL"
            " OR id IN (SELECT episode FROM alert_notify_log WHERE action IN ('trigger', 'held'))"
            " ORDER BY id"
        )
        return [_episode(r) for r in rows]

    def episodes(self, since: datetime, until: datetime) -> list[Episode]:
        """Episodes opened in [since, until)."""
        rows = self.db.read(
            f"SELECT {_EPISODE_COLUMNS} FROM alert_episodes WHERE opened_at >= ? AND opened_at < ?"
            " ORDER BY opened_at",
            (utc_text(since), utc_text(until)),
        )
        return [_episode(r) for r in rows]

    def notifications_since(self, since: datetime) -> list[tuple[str, Notification]]:
        """The alert notifications queued at or after ``since``, with their channel, oldest
        first (what the outbox still holds: it keeps delivered rows for a while)."""
        rows = self.db.read(
            "SELECT channel, payload FROM alert_outbox WHERE kind = 'notification'"
            " AND created_at >= ? ORDER BY id", (utc_text(since),),
        )
        return [(str(channel), Notification.from_dict(json.loads(payload)))
                for channel, payload in rows]

    def episodes_resolved(self, since: datetime, until: datetime) -> list[Episode]:
        """Episodes resolved in [since, until)."""
        rows = self.db.read(
            f"SELECT {_EPISODE_COLUMNS} FROM alert_episodes"
            " WHERE resolved_at >= ? AND resolved_at < ? ORDER BY resolved_at",
            (utc_text(since), utc_text(until)),
        )
        return [_episode(r) for r in rows]

    # --- notify log ---------------------------------------------------------------------

    def notify_log(self) -> Iterator[SentRecord]:
        rows = self.db.read(
            "SELECT channel, key, episode, action, severity, sent_at FROM alert_notify_log"
        )
        for r in rows:
            yield SentRecord(r[0], r[1], int(r[2]), r[3], r[4], datetime.fromisoformat(r[5]))

    @staticmethod
    def record_sent(conn: Connection, sent: SentRecord) -> None:
        """Inside the flush transaction (with the outbox rows it stands for)."""
        conn.execute(
            "INSERT INTO alert_notify_log (channel, key, episode, action, severity, sent_at)"
            " VALUES (?, ?, ?, ?, ?, ?) ON CONFLICT (channel, key) DO UPDATE SET"
            " episode = excluded.episode, action = excluded.action,"
            " severity = excluded.severity, sent_at = excluded.sent_at",
            (sent.channel, sent.key, sent.episode, sent.action, sent.severity,
             utc_text(sent.sent_at)),
        )
        if sent.action == "trigger":
            conn.execute("UPDATE alert_episodes SET notified = 1 WHERE id = ?", (sent.episode,))

    def forget(self, key: str, episode: int) -> None:
        """Drop the notify log of a settled episode (its resolve is in the outbox)."""
        with self.db.transaction() as conn:
            conn.execute("DELETE FROM alert_notify_log WHERE key = ? AND episode = ?",
                         (key, episode))

    # --- reports --------------------------------------------------------------------------

    def report_sent(self, kind: str, period: str) -> bool:
        rows = self.db.read("SELECT 1 FROM alert_reports WHERE kind = ? AND period = ?",
                            (kind, period))
        return bool(rows)

    @staticmethod
    def record_report(conn: Connection, kind: str, period: str, at: datetime,
                      status: str) -> bool:
        """Mark a report as sent for ``period``; False when it already was (exactly once)."""
        cur = conn.execute(
            "INSERT INTO alert_reports (kind, period, sent_at, status) VALUES (?, ?, ?, ?)"
            " ON CONFLICT DO NOTHING",
            (kind, period, utc_text(at), status),
        )
        return cur.rowcount == 1
