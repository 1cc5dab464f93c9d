"""The scheduler outcomes' durable state (component ``scheduler``).

- ``scheduler_attempts``: every attempt received, once (UNIQUE attempt id: a redelivered
  log entry or a repeated POST is a duplicate), known job or not;
- ``scheduler_jobs``: per job, since when it is watched (no "missed" alert for a fire before
  phasewatch watched it), its latest attempt, and the alerts it has firing (failing since,
  missed scheduled time), so that a restart neither repeats nor forgets them.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from monitor.scheduler.attempt import Attempt
from monitor.store.base import ComponentStore, parse_time, utc_text
from monitor.store.retention import Rule

COMPONENT = "scheduler"
MIGRATIONS: tuple[str, ...] = (
    """
    CREATE TABLE scheduler_attempts (
        id           INTEGER PRIMARY KEY,
        attempt_id   TEXT    NOT NULL UNIQUE,
        job          TEXT    NOT NULL,
        known        INTEGER NOT NULL,
        kind         TEXT    NOT NULL,
        ok           INTEGER,
        http_status  INTEGER,
        code         TEXT,
        url          TEXT,
        at           TEXT    NOT NULL,
        scheduled_at TEXT,
        received_at  TEXT    NOT NULL,
        source       TEXT    NOT NULL,
        detail       TEXT
    );
    CREATE INDEX scheduler_attempts_by_job ON scheduler_attempts (job, at);
    CREATE TABLE scheduler_jobs (
        job            TEXT PRIMARY KEY,
        watch_since    TEXT NOT NULL,
        last_at        TEXT,
        last_ok_at     TEXT,
        failing_since  TEXT,
        failing_status TEXT,
        missed_at      TEXT
    )
    """,
    # A person paused a job (Cloud Scheduler's audit log): no fire is missed until resumed.
    """
    ALTER TABLE scheduler_jobs ADD COLUMN paused_since TEXT;
    ALTER TABLE scheduler_jobs ADD COLUMN paused_by TEXT;
    ALTER TABLE scheduler_jobs ADD COLUMN resumed_at TEXT
    """,
    # A person rescheduled or deleted a job (UpdateJob, CreateJob, DeleteJob): its fires are
    # judged by Cloud Scheduler's schedule while it differs from the config.
    """
    ALTER TABLE scheduler_jobs ADD COLUMN cloud_cron TEXT;
    ALTER TABLE scheduler_jobs ADD COLUMN cloud_timezone TEXT;
    ALTER TABLE scheduler_jobs ADD COLUMN deleted_at TEXT;
    ALTER TABLE scheduler_jobs ADD COLUMN changed_at TEXT;
    ALTER TABLE scheduler_jobs ADD COLUMN changed_by TEXT
    """,
)
# Past retention (monitor.store.retention): attempts by time.
RETENTION: tuple[Rule, ...] = (Rule("scheduler_attempts", "signals", "at < ?", partition="job"),)
_ATTEMPT_COLUMNS = ("attempt_id, job, known, kind, ok, http_status, code, url, at, scheduled_at,"
                    " received_at, source, detail")
_JOB_COLUMNS = ("job, watch_since, last_at, last_ok_at, failing_since, failing_status, missed_at,"
                " paused_since, paused_by, resumed_at, cloud_cron, cloud_timezone, deleted_at,"
                " changed_at, changed_by")

_JOB_FIELDS = tuple(c.strip() for c in _JOB_COLUMNS.split(","))
_UPSERT_JOB = (f"INSERT INTO scheduler_jobs ({_JOB_COLUMNS}) VALUES"
               f" ({', '.join('?' * len(_JOB_FIELDS))}) ON CONFLICT (job) DO UPDATE SET "
               + ", ".join(f"{c} = excluded.{c}" for c in _JOB_FIELDS[1:]))


@dataclass(frozen=True)
class JobState:
    """What is known of one configured job (one row of ``scheduler_jobs``)."""

    job: str
    watch_since: datetime
    last_at: datetime | None = None
    last_ok_at: datetime | None = None
    failing_since: datetime | None = None
    failing_status: str | None = None
    missed_at: datetime | None = None
    paused_since: datetime | None = None  # a person paused it: no fire is missed meanwhile
    paused_by: str | None = None
    resumed_at: datetime | None = None  # its latest resume (an older pause delivered late changes nothing)
    # Cloud Scheduler's schedule where it differs from the config's (None: the same)
    cloud_cron: str | None = None
    cloud_timezone: str | None = None
    deleted_at: datetime | None = None  # deleted from Cloud Scheduler (and not created again)
    changed_at: datetime | None = None  # its latest reschedule, creation or deletion
    changed_by: str | None = None

    @classmethod
    def from_row(cls, r: Sequence[Any]) -> JobState:
        return cls(r[0], datetime.fromisoformat(r[1]), parse_time(r[2]), parse_time(r[3]),
                   parse_time(r[4]), r[5], parse_time(r[6]), parse_time(r[7]), r[8],
                   parse_time(r[9]), r[10], r[11], parse_time(r[12]), parse_time(r[13]), r[14])

    def row(self) -> tuple[object, ...]:
        return (self.job, utc_text(self.watch_since), _text(self.last_at), _text(self.last_ok_at),
                _text(self.failing_since), self.failing_status, _text(self.missed_at),
                _text(self.paused_since), self.paused_by, _text(self.resumed_at),
                self.cloud_cron, self.cloud_timezone, _text(self.deleted_at),
                _text(self.changed_at), self.changed_by)

    @property
    def differs(self) -> bool:
        """Whether Cloud Scheduler's job differs from the config's (rescheduled or deleted)."""
        return self.deleted_at is not None or self.cloud_cron is not None or (
            self.cloud_timezone is not None)

    def paused_at(self, when: datetime) -> bool:
        """Whether a person had paused the job at ``when`` (and has not resumed it since)."""
        return self.paused_since is not None and self.paused_since <= when


def _text(when: datetime | None) -> str | None:
    return utc_text(when) if when is not None else None


class SchedulerStore:
    """Attempts and job states; every write is one transaction."""

    def __init__(self, db: ComponentStore) -> None:
        self.db = db
        db.migrate_component(COMPONENT, MIGRATIONS)

    def add(self, attempts: Sequence[Attempt], known: set[str], received_at: datetime,
            fold: Callable[[Sequence[bool], dict[str, JobState]], Sequence[JobState]],
            ) -> tuple[list[bool], list[JobState]]:
        """Store a batch of attempts and the job states ``fold`` makes of the new ones (from
        the states stored now: another process sharing the store may have changed them),
        all or nothing; ``[i]`` is False where attempt i was already stored."""
        inserted: list[bool] = []
        jobs = sorted({a.job for a in attempts if a.job in known})
        with self.db.transaction() as db:
            current: dict[str, JobState] = {}
            if jobs:
                rows = db.execute(f"SELECT {_JOB_COLUMNS} FROM scheduler_jobs WHERE job IN"
                                  f" ({', '.join('?' * len(jobs))})", jobs).fetchall()
                current = {r[0]: JobState.from_row(r) for r in rows}
            for a in attempts:
                cur = db.execute(
                    f"INSERT INTO scheduler_attempts ({_ATTEMPT_COLUMNS}) VALUES"
                    " (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?) ON CONFLICT (attempt_id) DO NOTHING",
                    (a.attempt_id, a.job, int(a.job in known), a.kind,
                     None if a.ok is None else int(a.ok), a.http_status, a.code, a.url,
                     utc_text(a.at), _text(a.scheduled_at), utc_text(received_at), a.source,
                     a.detail),
                )
                inserted.append(cur.rowcount == 1)
            states = list(fold(inserted, current))
            self._save(db, states)
        return inserted, states

    def save(self, states: Sequence[JobState]) -> None:
        if states:
            with self.db.transaction() as db:
                self._save(db, states)

    @staticmethod
    def _save(db: Any, states: Sequence[JobState]) -> None:
        db.executemany(
            _UPSERT_JOB,
            [s.row() for s in states],
        )

    def change(self, known: JobState, change: Callable[[JobState], JobState | None],
               ) -> tuple[JobState, JobState | None]:
        """Save what ``change`` makes of the job's stored state (``known`` if none is stored;
        None: nothing to save), in one transaction with the read (another process sharing
        the store may write too): (the state it was made of, the state saved)."""
        with self.db.transaction() as db:
            rows = db.execute(f"SELECT {_JOB_COLUMNS} FROM scheduler_jobs WHERE job = ?",
                              (known.job,)).fetchall()
            before = JobState.from_row(rows[0]) if rows else known
            after = change(before)
            if after is not None:
                self._save(db, [after])
            return before, after

    def states(self) -> dict[str, JobState]:
        rows = self.db.read(f"SELECT {_JOB_COLUMNS} FROM scheduler_jobs")
        return {r[0]: JobState.from_row(r) for r in rows}

    def recent(self, limit: int = 100, job: str | None = None) -> list[dict[str, Any]]:
        """The latest attempts, newest first, as JSON."""
        query = f"SELECT {_ATTEMPT_COLUMNS} FROM scheduler_attempts"
        params: list[object] = []
        if job is not None:
            query += " WHERE job = ?"
            params.append(job)
        query += " ORDER BY at DESC, id DESC LIMIT ?"
        params.append(limit)
        return [_attempt_dict(r) for r in self.db.read(query, params)]

    def unknown_jobs(self, limit: int = 100) -> list[dict[str, Any]]:
        """Jobs whose attempts arrived without being configured: how many, and the latest."""
        rows = self.db.read(
            "SELECT job, COUNT(*), MAX(at) FROM scheduler_attempts WHERE known = 0"
            " GROUP BY job ORDER BY MAX(at) DESC LIMIT ?", (limit,))
        return [{"job": r[0], "attempts": int(r[1]),
                 "last_at": datetime.fromisoformat(r[2]).isoformat()} for r in rows]


def _attempt_dict(r: Sequence[Any]) -> dict[str, Any]:
    (attempt_id, job, known, kind, ok, http_status, code, url, at, scheduled_at, received_at,
     source, detail) = r
    return {
        "id": attempt_id, "job": job, "known": bool(known), "kind": kind,
        "ok": None if ok is None else bool(ok), "http_status": http_status, "code": code,
        "url": url, "time": datetime.fromisoformat(at).isoformat(),
        "scheduled_time": datetime.fromisoformat(scheduled_at).isoformat() if scheduled_at else None,
        "received_at": datetime.fromisoformat(received_at).isoformat(), "source": source,
        "detail": detail,
    }
