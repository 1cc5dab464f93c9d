"""Check results and check state, in the event store's database (component ``checks``).

- ``check_results``: every result, once per (name, at): a repeat of the same check and
  time is acknowledged and ignored (the first value stands), as a repeated ``event_id`` is.
  Rows get increasing ids; ``after(id)`` is how results written by anyone (this process,
  ``phasewatch check record --db``, another instance) reach the threshold alerts and SLIs.
- ``check_state``: per configured check, its alert level and run error, the last cron time
  it ran for, when its alert last resolved and whether it is flapping, and (under the name
  ``""``) the id of the last result handled.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import date, datetime
from typing import Any

from monitor.checks.result import CheckResult
from monitor.store.base import ComponentStore, parse_time, utc_text
from monitor.store.retention import Rule

MIGRATIONS: tuple[str, ...] = (
    """
    CREATE TABLE check_results (
        id          INTEGER PRIMARY KEY,
        name        TEXT NOT NULL,
        at          TEXT NOT NULL,
        value       REAL NOT NULL,
        entities    TEXT,
        run_date    TEXT,
        pipeline    TEXT,
        source      TEXT NOT NULL,
        recorded_at TEXT NOT NULL,
        UNIQUE (name, at)
    );
    CREATE INDEX check_results_latest ON check_results (name, at);
    CREATE TABLE check_state (
        name           TEXT PRIMARY KEY,
        level          TEXT,
        judged_at      TEXT,
        error          TEXT,
        last_scheduled TEXT,
        cursor         INTEGER
    )
    """,
    # A check that flaps (breached again soon after its alert resolved) keeps one alert open.
    """
    ALTER TABLE check_state ADD COLUMN resolved_at TEXT;
    ALTER TABLE check_state ADD COLUMN flapping INTEGER NOT NULL DEFAULT 0;
    ALTER TABLE check_state ADD COLUMN passed_at TEXT
    """,
    # A result about an older run date than one already in does not stand (``latest``).
    "CREATE INDEX check_results_run_date ON check_results (name, run_date, at)",
)

# Past retention (monitor.store.retention): results by time, but each check's latest.
RETENTION: tuple[Rule, ...] = (
    Rule("check_results", "signals",
         "at < ? AND at < (SELECT MAX(c.at) FROM check_results AS c WHERE c.name ="
         " check_results.name)", partition="name"),
)

_COLUMNS = "id, name, at, value, entities, run_date, pipeline, source"
CURSOR = ""  # the check_state row that holds the id of the last result handled


@dataclass(frozen=True)
class CheckState:
    """What phasewatch remembers of a configured check between ticks and restarts."""

    name: str
    level: str | None = None  # ok | warning | critical (None: never judged)
    judged_at: datetime | None = None
    error: str | None = None
    last_scheduled: datetime | None = None
    resolved_at: datetime | None = None  # when its threshold alert last resolved
    flapping: bool = False  # its open alert was breached again soon after a resolve
    passed_at: datetime | None = None  # a flapping alert's check passing since (resolve waits)


class CheckStore:
    """Typed access to the check tables; every write is one transaction."""

    def __init__(self, store: ComponentStore) -> None:
        for name in ("migrate_component", "transaction", "read"):
            if not callable(getattr(store, name, None)):
                raise TypeError(
                    f"checks need a store with {name}() (SQLiteStore); got {type(store).__name__}"
                )
        self._store = store
        store.migrate_component("checks", MIGRATIONS)

    def record(self, results: Sequence[CheckResult], now: datetime) -> tuple[int, int]:
        """Keep ``results`` in one transaction; returns (accepted, duplicates)."""
        accepted = 0
        with self._store.transaction() as db:
            for r in results:
                cur = db.execute(
                    "INSERT INTO check_results (name, at, value, entities, run_date, pipeline,"
                    " source, recorded_at) VALUES (?, ?, ?, ?, ?, ?, ?, ?)"
                    " ON CONFLICT (name, at) DO NOTHING",
                    (r.name, utc_text(r.at), r.value,
                     None if r.entities is None else json.dumps(list(r.entities)),
                     None if r.run_date is None else r.run_date.isoformat(), r.pipeline,
                     r.source, utc_text(now)),
                )
                accepted += cur.rowcount
        return accepted, len(results) - accepted

    def latest(self, name: str, run_date: date | None = None) -> CheckResult | None:
        """The result of ``name`` that stands now, or None when it never reported: the
        newest by its time, unless that one is about a run date older than another result's
        (a date already graded, re-measured later: a re-validation, a late retry of
        yesterday's query), in which case the newest about the latest run date stands.
        With ``run_date``: the newest about that run date or about none (a reader judging
        one day: tomorrow's counts are not today's)."""
        if run_date is not None:
            about = self._store.read(
                f"SELECT {_COLUMNS} FROM check_results WHERE name = ? AND (run_date = ?"
                " OR run_date IS NULL) ORDER BY at DESC, id DESC LIMIT 1",
                (name, run_date.isoformat()),
            )
            return _result(about[0]) if about else None
        rows = self._store.read(
            f"SELECT {_COLUMNS} FROM check_results WHERE name = ? ORDER BY at DESC, id DESC"
            " LIMIT 1", (name,),
        )
        if not rows:
            return None
        newest = _result(rows[0])
        if newest.run_date is None:
            return newest
        later = self._store.read(
            f"SELECT {_COLUMNS} FROM check_results WHERE name = ? AND run_date > ?"
            " ORDER BY run_date DESC, at DESC, id DESC LIMIT 1",
            (name, newest.run_date.isoformat()),
        )
        return _result(later[0]) if later else newest

    def latest_all(self) -> list[CheckResult]:
        """The result that stands (``latest``) of every check that ever reported, by name."""
        names = self._store.read("SELECT DISTINCT name FROM check_results ORDER BY name")
        return [r for (name,) in names if (r := self.latest(str(name))) is not None]

    def after(self, last_id: int, limit: int = 1000) -> list[tuple[int, CheckResult]]:
        """Results recorded after row ``last_id``, in the order they were recorded."""
        rows = self._store.read(
            f"SELECT {_COLUMNS} FROM check_results WHERE id > ? ORDER BY id LIMIT ?",
            (last_id, limit),
        )
        return [(int(r[0]), _result(r)) for r in rows]

    def since(self, when: datetime) -> list[CheckResult]:
        """Every result measured at or after ``when``, oldest first (SLIs relearn from them)."""
        rows = self._store.read(
            f"SELECT {_COLUMNS} FROM check_results WHERE at >= ? ORDER BY at, id",
            (utc_text(when),),
        )
        return [_result(r) for r in rows]

    def last_id(self) -> int:
        rows = self._store.read("SELECT COALESCE(MAX(id), 0) FROM check_results")
        return int(rows[0][0])

    def prune(self, before: datetime) -> int:
        """Forget results measured before ``before`` (but each check's latest)."""
        with self._store.transaction() as db:
            cur = db.execute(
                "DELETE FROM check_results WHERE at < ? AND id NOT IN (SELECT MAX(id) FROM"
                " check_results GROUP BY name)", (utc_text(before),),
            )
            return int(cur.rowcount)

    # --- state ---------------------------------------------------------------------

    def cursor(self) -> int | None:
        rows = self._store.read("SELECT cursor FROM check_state WHERE name = ?", (CURSOR,))
        return int(rows[0][0]) if rows and rows[0][0] is not None else None

    def set_cursor(self, last_id: int) -> None:
        with self._store.transaction() as db:
            db.execute(
                "INSERT INTO check_state (name, cursor) VALUES (?, ?) ON CONFLICT (name)"
                " DO UPDATE SET cursor = excluded.cursor", (CURSOR, last_id),
            )

    def states(self) -> dict[str, CheckState]:
        rows = self._store.read(
            "SELECT name, level, judged_at, error, last_scheduled, resolved_at, flapping, passed_at"
            " FROM check_state WHERE name != ?", (CURSOR,),
        )
        return {r[0]: CheckState(r[0], r[1], parse_time(r[2]), r[3], parse_time(r[4]),
                                 parse_time(r[5]), bool(r[6]), parse_time(r[7])) for r in rows}

    def save_state(self, state: CheckState) -> None:
        with self._store.transaction() as db:
            db.execute(
                "INSERT INTO check_state (name, level, judged_at, error, last_scheduled,"
                " resolved_at, flapping, passed_at) VALUES (?, ?, ?, ?, ?, ?, ?, ?)"
                " ON CONFLICT (name) DO UPDATE SET level = excluded.level,"
                " judged_at = excluded.judged_at, error = excluded.error,"
                " last_scheduled = excluded.last_scheduled, resolved_at = excluded.resolved_at,"
                " flapping = excluded.flapping, passed_at = excluded.passed_at",
                (state.name, state.level, _text(state.judged_at), state.error,
                 _text(state.last_scheduled), _text(state.resolved_at), int(state.flapping),
                 _text(state.passed_at)),
            )


def _text(when: datetime | None) -> str | None:
    return None if when is None else utc_text(when)


def _result(row: Sequence[Any]) -> CheckResult:
    _id, name, at, value, entities, run_date, pipeline, source = row
    return CheckResult(
        name, float(value), datetime.fromisoformat(at),
        None if entities is None else tuple(json.loads(entities)),
        None if run_date is None else date.fromisoformat(run_date), pipeline, source,
    )


def results_json(results: Iterable[CheckResult]) -> list[dict[str, Any]]:
    return [r.as_dict() for r in results]
