"""The actuator's durable state, in the event store's SQLite file (component ``actuator``).

- ``actuator_triggers``: one row per (pipeline, run_date, mode, phase) — the UNIQUE key is
  what makes "exactly one trigger" hold under races and redeliveries. The row is written
  *pending* in the transaction that decides it and becomes *succeeded* only after a sink
  accepted it; every state change is a conditional update on the delivery's claim token.
- ``actuator_recoveries``: recovery plans (ordered steps) for stalled batches / processors.
- ``actuator_audit``: every action, and every decision considered but not taken.
- ``actuator_guards``, ``actuator_health``: guards tripped, the latest probe of each service.
  (``actuator_checks`` is unused: check results live in the checks component's tables.)

A claim token names the process that took it (``<instance>/<random>``): processes sharing
a store take over only the claims of instances that are no longer alive
(``monitor.store.cluster``), never a delivery another live process is sending.
"""

from __future__ import annotations

import json
import uuid
from _json import make_encoder
from collections.abc import Callable, Collection, Mapping, Sequence
from dataclasses import dataclass, field, fields
from datetime import datetime
from functools import lru_cache
from itertools import chain
from json.encoder import encode_basestring_ascii
from typing import Any

from monitor.store.base import ComponentStore, Connection, Migration, parse_time, utc_text
from monitor.store.retention import Rule

MIGRATIONS: tuple[Migration, ...] = (
    """
    CREATE TABLE actuator_triggers (
        id              INTEGER PRIMARY KEY,
        pipeline        TEXT    NOT NULL,
        run_date        TEXT    NOT NULL,
        mode            TEXT    NOT NULL,
        phase           TEXT    NOT NULL,
        state           TEXT    NOT NULL,
        reason          TEXT    NOT NULL,
        rule            TEXT,
        idem_key        TEXT    NOT NULL,
        decided_at      TEXT    NOT NULL,
        next_attempt_at TEXT    NOT NULL,
        attempts        INTEGER NOT NULL DEFAULT 0,
        deferrals       INTEGER NOT NULL DEFAULT 0,
        generation      INTEGER NOT NULL DEFAULT 0,
        delivered       TEXT    NOT NULL DEFAULT '[]',
        claim           TEXT,
        claimed_at      TEXT,
        last_error      TEXT,
        blocked_by      TEXT,
        deferred_since  TEXT,
        send_reason     TEXT,
        succeeded_at    TEXT,
        outcome         TEXT,
        verified_at     TEXT,
        escalated       INTEGER NOT NULL DEFAULT 0,
        manual          INTEGER NOT NULL DEFAULT 0,
        force           INTEGER NOT NULL DEFAULT 0,
        processors      TEXT    NOT NULL DEFAULT '[]',
        detail          TEXT    NOT NULL DEFAULT '{}',
        UNIQUE (pipeline, run_date, mode, phase)
    );
    CREATE INDEX actuator_triggers_due ON actuator_triggers (state, next_attempt_at);
    CREATE TABLE actuator_recoveries (
        id              INTEGER PRIMARY KEY,
        pipeline        TEXT    NOT NULL,
        run_date        TEXT    NOT NULL,
        mode            TEXT    NOT NULL,
        phase           TEXT    NOT NULL,
        subject         TEXT    NOT NULL,
        rule            TEXT    NOT NULL,
        batch_id        TEXT,
        processor       TEXT,
        steps           TEXT    NOT NULL,
        step            INTEGER NOT NULL DEFAULT 0,
        state           TEXT    NOT NULL,
        created_at      TEXT    NOT NULL,
        next_attempt_at TEXT    NOT NULL,
        attempts        INTEGER NOT NULL DEFAULT 0,
        deferrals       INTEGER NOT NULL DEFAULT 0,
        claim           TEXT,
        claimed_at      TEXT,
        last_error      TEXT,
        blocked_by      TEXT,
        finished_at     TEXT,
        manual          INTEGER NOT NULL DEFAULT 0,
        UNIQUE (pipeline, run_date, mode, phase, subject, rule)
    );
    CREATE INDEX actuator_recoveries_due ON actuator_recoveries (state, next_attempt_at);
    CREATE TABLE actuator_audit (
        id          INTEGER PRIMARY KEY,
        at          TEXT    NOT NULL,
        kind        TEXT    NOT NULL,
        action      TEXT    NOT NULL,
        outcome     TEXT    NOT NULL,
        pipeline    TEXT,
        run_date    TEXT,
        mode        TEXT,
        phase       TEXT,
        processor   TEXT,
        batch_id    TEXT,
        service     TEXT,
        reason      TEXT,
        attempt     INTEGER,
        manual      INTEGER NOT NULL DEFAULT 0,
        actor       TEXT,
        detail      TEXT    NOT NULL DEFAULT '{}'
    );
    CREATE INDEX actuator_audit_by_kind ON actuator_audit (kind, id);
    CREATE INDEX actuator_audit_by_run ON actuator_audit (pipeline, run_date);
    CREATE TABLE actuator_guards (
        key         TEXT PRIMARY KEY,
        kind        TEXT NOT NULL,
        pipeline    TEXT NOT NULL,
        phase       TEXT NOT NULL,
        processor   TEXT,
        run_date    TEXT,
        mode        TEXT,
        tripped_at  TEXT NOT NULL,
        cleared_at  TEXT,
        detail      TEXT NOT NULL
    );
    CREATE TABLE actuator_health (
        service     TEXT PRIMARY KEY,
        status      TEXT    NOT NULL,
        detail      TEXT    NOT NULL,
        checked_at  TEXT    NOT NULL,
        http_status INTEGER,
        failures    INTEGER NOT NULL
    );
    CREATE TABLE actuator_checks (
        name        TEXT PRIMARY KEY,
        value       REAL NOT NULL,
        measured_at TEXT NOT NULL
    )
    """,
    # Succeeded triggers not verified yet are read on every tick: an index that finds just
    # those (the state index walked every succeeded trigger ever written, so the tick's work
    # grew with the history kept).
    """
    CREATE INDEX actuator_triggers_unverified ON actuator_triggers (state, verified_at)
    """,
    # Retention deletes audit lines by time.
    """
    CREATE INDEX actuator_audit_by_time ON actuator_audit (at)
    """,
)

# Past retention (monitor.store.retention): audit lines by time; finished triggers and
# recovery plans of old run dates, kept while their run date is accepted (they keep an
# action exactly once per run); guards cleared long ago.
RETENTION: tuple[Rule, ...] = (
    Rule("actuator_audit", "audit", "at < ?"),
    Rule("actuator_triggers", "audit", "run_date < ? AND state NOT IN ('pending', 'sending')",
         ("accepted_date",), partition="pipeline"),
    Rule("actuator_recoveries", "audit", "run_date < ? AND state NOT IN ('pending', 'sending')",
         ("accepted_date",), partition="pipeline"),
    Rule("actuator_guards", "audit", "cleared_at IS NOT NULL AND cleared_at < ?", key=("key",),
         serial=False),
)


def detail_json(value: Any) -> str:
    """``json.dumps(value, default=str)``, the same text: the audit writes one per line (a
    decision writes its buffered notes with it). ``JSONEncoder.encode`` spends most of a
    small dict's time in Python before it reaches its C encoder; this builds that encoder
    directly, with fresh circular-reference marks as ``encode`` does (a note's detail:
    3.2 -> 2.0 µs)."""
    return "".join(make_encoder(
        {}, str, encode_basestring_ascii, None, ": ", ", ", False, False, True)(value, 0))


# The lines written together mostly share their time (a decision's buffered notes: the
# batch's clock time): its text is remembered.
_at_text = lru_cache(maxsize=64)(utc_text)


@dataclass(slots=True)
class AuditEntry:
    """One line of the audit log: an action taken, or a decision considered and not taken.

    Read-only by convention, not ``frozen``: a frozen dataclass sets each of its 16 fields
    through ``object.__setattr__``, and the ingest path makes one per decision noted
    (3.7 -> 0.9 µs)."""

    at: datetime
    kind: str  # decision | trigger | deferral | verification | recovery | guard | manual
    action: str
    outcome: str
    pipeline: str | None = None
    run_date: str | None = None
    mode: str | None = None
    phase: str | None = None
    processor: str | None = None
    batch_id: str | None = None
    service: str | None = None
    reason: str | None = None
    attempt: int | None = None
    manual: bool = False
    actor: str | None = None
    detail: Mapping[str, Any] = field(default_factory=dict)

    def row(self) -> tuple[object, ...]:
        return (
            _at_text(self.at), self.kind, self.action, self.outcome, self.pipeline, self.run_date,
            self.mode, self.phase, self.processor, self.batch_id, self.service, self.reason,
            self.attempt, int(self.manual), self.actor,
            detail_json(detail if type(detail := self.detail) is dict else dict(detail)),
        )


_AUDIT_COLUMNS = (
    "at, kind, action, outcome, pipeline, run_date, mode, phase, processor, batch_id, service,"
    " reason, attempt, manual, actor, detail"
)
INSERT_AUDIT = f"INSERT INTO actuator_audit ({_AUDIT_COLUMNS}) VALUES ({', '.join('?' * 16)})"
# A decision writes the notes buffered since the last one (tens of lines): whole groups
# go as one INSERT of many VALUES, one statement step a group instead of one a line (the
# ids are given in the same order). The rest go line by line: one more statement, not
# one per remainder size in the connection's statement cache.
AUDIT_GROUP = 32
_INSERT_AUDIT_GROUP = (f"INSERT INTO actuator_audit ({_AUDIT_COLUMNS}) VALUES "
                       + ", ".join([f"({', '.join('?' * 16)})"] * AUDIT_GROUP))


def insert_audit(db: Connection, entries: Sequence[AuditEntry]) -> None:
    """Insert ``entries`` into the audit log, in order, inside the caller's transaction."""
    rows = [a.row() for a in entries]
    whole = len(rows) - len(rows) % AUDIT_GROUP
    for start in range(0, whole, AUDIT_GROUP):
        db.execute(_INSERT_AUDIT_GROUP, list(chain.from_iterable(rows[start:start + AUDIT_GROUP])))
    if whole < len(rows):
        db.executemany(INSERT_AUDIT, rows[whole:])


@dataclass(frozen=True)
class TriggerRow:
    """A trigger's durable state (one row of ``actuator_triggers``)."""

    id: int
    pipeline: str
    run_date: str
    mode: str
    phase: str
    state: str  # pending | sending | succeeded | failed | dry_run | superseded
    reason: str
    rule: str | None
    idem_key: str
    decided_at: datetime
    next_attempt_at: datetime
    attempts: int
    deferrals: int
    generation: int
    delivered: frozenset[int]
    claim: str | None
    claimed_at: datetime | None
    last_error: str | None
    blocked_by: str | None
    deferred_since: datetime | None
    send_reason: str | None
    succeeded_at: datetime | None
    outcome: str | None
    verified_at: datetime | None
    escalated: bool
    manual: bool
    force: bool
    processors: tuple[str, ...]
    detail: dict[str, Any]

    @property
    def run(self) -> tuple[str, str, str]:
        return (self.pipeline, self.run_date, self.mode)


@dataclass(frozen=True)
class TriggerUpdate:
    """A conditional change of one trigger row, with its audit lines (``update_triggers``)."""

    trigger_id: int
    changes: Mapping[str, Any]
    audit: Sequence[AuditEntry] = ()
    claim: str | None = None  # applies only while the row holds this claim
    state: str | None = None  # ... or is in this state


@dataclass(frozen=True)
class PlanRow:
    """A recovery plan's durable state (one row of ``actuator_recoveries``)."""

    id: int
    pipeline: str
    run_date: str
    mode: str
    phase: str
    subject: str
    rule: str
    batch_id: str | None
    processor: str | None
    steps: tuple[str, ...]
    step: int
    state: str  # pending | sending | done | failed | blocked
    created_at: datetime
    next_attempt_at: datetime
    attempts: int
    deferrals: int
    claim: str | None
    claimed_at: datetime | None
    last_error: str | None
    blocked_by: str | None
    finished_at: datetime | None
    manual: bool

    @property
    def run(self) -> tuple[str, str, str]:
        return (self.pipeline, self.run_date, self.mode)


_TIME_FIELDS = frozenset({
    "decided_at", "next_attempt_at", "claimed_at", "deferred_since", "succeeded_at",
    "verified_at", "created_at", "finished_at",
})
_BOOL_FIELDS = frozenset({"escalated", "manual", "force"})
TRIGGER_COLUMNS = tuple(f.name for f in fields(TriggerRow))
PLAN_COLUMNS = tuple(f.name for f in fields(PlanRow))


def _convert(name: str, value: Any) -> Any:
    if name in _TIME_FIELDS:
        return parse_time(value)
    if name in _BOOL_FIELDS:
        return bool(value)
    if name == "delivered":
        return frozenset(json.loads(value))
    if name in ("processors", "steps"):
        return tuple(json.loads(value))
    if name == "detail":
        return json.loads(value)
    return value


def _encode(name: str, value: Any) -> Any:
    if isinstance(value, datetime):
        return utc_text(value)
    if isinstance(value, bool):
        return int(value)
    if name == "delivered":
        return json.dumps(sorted(value))
    if name in ("processors", "steps"):
        return json.dumps(list(value))
    if name == "detail":
        return detail_json(value)
    return value


def _trigger(row: Sequence[Any]) -> TriggerRow:
    return TriggerRow(**{n: _convert(n, v) for n, v in zip(TRIGGER_COLUMNS, row, strict=True)})


def _plan(row: Sequence[Any]) -> PlanRow:
    return PlanRow(**{n: _convert(n, v) for n, v in zip(PLAN_COLUMNS, row, strict=True)})


_SELECT_TRIGGER = f"SELECT {', '.join(TRIGGER_COLUMNS)} FROM actuator_triggers"
_SELECT_PLAN = f"SELECT {', '.join(PLAN_COLUMNS)} FROM actuator_recoveries"


class ActuatorStore:
    """Typed access to the actuator's tables; every write is one transaction."""

    def __init__(self, store: ComponentStore,
                 on_audit: Callable[[Sequence[AuditEntry]], None] | None = None,
                 instance: str = "") -> None:
        for name in ("migrate_component", "transaction", "read"):
            if not callable(getattr(store, name, None)):
                raise TypeError(
                    f"the actuator needs a store with {name}() (SQLiteStore, PostgresStore); got "
                    f"{type(store).__name__}"
                )
        self._store = store
        self._on_audit = on_audit  # told of audit lines once committed (the actions metric)
        self.instance = instance

    def new_claim(self) -> str:
        """A fresh claim token of this process."""
        return f"{self.instance}/{uuid.uuid4().hex}"

    def _audited(self, entries: Sequence[AuditEntry]) -> None:
        if entries and self._on_audit is not None:
            self._on_audit(entries)

    def migrate(self) -> None:
        self._store.migrate_component("actuator", MIGRATIONS)

    @property
    def component(self) -> ComponentStore:
        """The underlying store, for parts with tables of their own (deploys, streaks)."""
        return self._store

    # --- triggers --------------------------------------------------------------------

    def decide(
        self, run: tuple[str, str, str], phase: str, *, reason: str, rule: str | None,
        now: datetime, processors: Sequence[str] = (), detail: Mapping[str, Any] | None = None,
        manual: bool = False, force: bool = False, audit: Sequence[AuditEntry] = (),
        claim: str | None = None, idem_key: str | None = None, generation: int = 0,
    ) -> TriggerRow | None:
        """Write a pending trigger with its audit lines, or None when one exists for the key.

        With ``claim`` the row is written already claimed by the deciding delivery (state
        ``sending``): the first attempt needs no second transaction, and a crash before it
        leaves a claim that the next start releases back to pending.
        """
        pipeline, run_date, mode = run
        key = idem_key or f"{pipeline}:{run_date}:{mode}:{phase}"
        with self._store.transaction() as db:
            cur = db.execute(
                "INSERT INTO actuator_triggers (pipeline, run_date, mode, phase, state, reason, rule,"
                " idem_key, decided_at, next_attempt_at, manual, force, processors, detail,"
                " send_reason, claim, claimed_at, generation) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?,"
                " ?, ?, ?, ?, ?, ?, ?, ?) ON CONFLICT (pipeline, run_date, mode, phase) DO NOTHING"
                f" RETURNING {', '.join(TRIGGER_COLUMNS)}",
                (pipeline, run_date, mode, phase, "pending" if claim is None else "sending",
                 reason, rule, key, utc_text(now), utc_text(now), int(manual), int(force),
                 json.dumps(list(processors)), detail_json(dict(detail or {})),
                 "manual" if manual else None, claim, utc_text(now) if claim else None,
                 generation),
            )
            row = cur.fetchone()
            if row is None:  # another event or instance decided this key first
                return None
            insert_audit(db, audit)
        self._audited(audit)
        return _trigger(row)

    def trigger(self, trigger_id: int) -> TriggerRow | None:
        rows = self._store.read(f"{_SELECT_TRIGGER} WHERE id = ?", (trigger_id,))
        return _trigger(rows[0]) if rows else None

    def find_trigger(self, run: tuple[str, str, str], phase: str) -> TriggerRow | None:
        rows = self._store.read(
            f"{_SELECT_TRIGGER} WHERE pipeline = ? AND run_date = ? AND mode = ? AND phase = ?",
            (*run, phase),
        )
        return _trigger(rows[0]) if rows else None

    def previous_trigger(self, row: TriggerRow, since: datetime) -> TriggerRow | None:
        """The trigger decided last before ``row`` (at or after ``since``) for the same
        pipeline, mode and phase, whatever its run date: the run before it in that mode."""
        rows = self._store.read(
            f"{_SELECT_TRIGGER} WHERE pipeline = ? AND mode = ? AND phase = ? AND id < ?"
            " AND decided_at >= ? ORDER BY id DESC LIMIT 1",
            (row.pipeline, row.mode, row.phase, row.id, utc_text(since)),
        )
        return _trigger(rows[0]) if rows else None

    def triggers(self, *, states: Sequence[str] = (), since_run_date: str | None = None) -> list[TriggerRow]:
        query, params = f"{_SELECT_TRIGGER} WHERE 1 = 1", list[object]()
        if states:
            query += f" AND state IN ({', '.join('?' * len(states))})"
            params.extend(states)
        if since_run_date is not None:
            query += " AND run_date >= ?"
            params.append(since_run_date)
        return [_trigger(r) for r in self._store.read(query + " ORDER BY id", params)]

    def unverified(self) -> list[TriggerRow]:
        """Succeeded triggers whose effect was not seen yet."""
        rows = self._store.read(
            f"{_SELECT_TRIGGER} WHERE state = 'succeeded' AND verified_at IS NULL ORDER BY id"
        )
        return [_trigger(r) for r in rows]

    def due_triggers(self, now: datetime) -> list[int]:
        rows = self._store.read(
            "SELECT id FROM actuator_triggers WHERE state = 'pending' AND next_attempt_at <= ?"
            " ORDER BY next_attempt_at, id", (utc_text(now),),
        )
        return [int(r[0]) for r in rows]

    def claim_trigger(self, trigger_id: int, token: str, now: datetime) -> TriggerRow | None:
        """Take a due pending trigger for delivery; None when another delivery has it or it is not due."""
        with self._store.transaction() as db:
            row = db.execute(
                "UPDATE actuator_triggers SET state = 'sending', claim = ?, claimed_at = ?"
                " WHERE id = ? AND state = 'pending' AND next_attempt_at <= ?"
                f" RETURNING {', '.join(TRIGGER_COLUMNS)}",
                (token, utc_text(now), trigger_id, utc_text(now)),
            ).fetchone()
        return _trigger(row) if row is not None else None

    def update_trigger(
        self, trigger_id: int, changes: Mapping[str, Any], audit: Sequence[AuditEntry] = (), *,
        claim: str | None = None, state: str | None = None,
    ) -> bool:
        """Apply ``changes`` if the row still holds ``claim`` (or is in ``state``), with its audit lines."""
        return self.update_triggers([TriggerUpdate(trigger_id, changes, audit, claim, state)])[0]

    def update_triggers(self, updates: Sequence[TriggerUpdate]) -> list[bool]:
        """Several ``update_trigger`` calls in one transaction (one commit for a burst of
        answers); each applies, with its audit lines, only if its row still holds its claim."""
        if not updates:
            return []
        with self._store.transaction() as db:
            applied = [_apply(db, "actuator_triggers", u.trigger_id, u.changes, u.audit, u.claim,
                              u.state) for u in updates]
        self._audited([a for u, ok in zip(updates, applied, strict=True) if ok for a in u.audit])
        return applied

    def release_claims(self, older_than: datetime | None = None) -> int:
        """Put deliveries a crash interrupted back to pending (all, or those claimed before a time)."""
        return self._release("actuator_triggers", older_than) + self._release(
            "actuator_recoveries", older_than
        )

    def _release(self, table: str, older_than: datetime | None) -> int:
        query = f"UPDATE {table} SET state = 'pending', claim = NULL WHERE state = 'sending'"
        params: list[object] = []
        if older_than is not None:
            query += " AND claimed_at < ?"
            params.append(utc_text(older_than))
        with self._store.transaction() as db:
            return int(db.execute(query, params).rowcount)

    def release_orphans(self, alive: Callable[[], Collection[str]]) -> int:
        """Put back to pending the deliveries claimed by instances not in ``alive()`` (which
        is asked after the claims are read: an instance that claimed one was alive then)."""
        claimed = [(table, int(r[0]), str(r[1])) for table in ("actuator_triggers", "actuator_recoveries")
                   for r in self._store.read(f"SELECT id, claim FROM {table} WHERE state = 'sending'")]
        if not claimed:
            return 0
        living = set(alive())
        released = 0
        for table, row_id, claim in claimed:
            if claim.partition("/")[0] in living and "/" in claim:
                continue
            with self._store.transaction() as db:
                released += int(db.execute(
                    f"UPDATE {table} SET state = 'pending', claim = NULL WHERE id = ?"
                    " AND state = 'sending' AND claim = ?", (row_id, claim),
                ).rowcount)
        return released

    def wake(self, blocked_by: str, now: datetime) -> tuple[list[int], list[int]]:
        """Make triggers and plans held by ``blocked_by`` due now; returns their ids."""
        ids: tuple[list[int], list[int]] = ([], [])
        with self._store.transaction() as db:
            for table, out in (("actuator_triggers", ids[0]), ("actuator_recoveries", ids[1])):
                rows = db.execute(
                    f"SELECT id FROM {table} WHERE state = 'pending' AND blocked_by = ?", (blocked_by,)
                ).fetchall()
                out.extend(int(r[0]) for r in rows)
                db.execute(
                    f"UPDATE {table} SET next_attempt_at = ? WHERE state = 'pending' AND blocked_by = ?",
                    (utc_text(now), blocked_by),
                )
        return ids

    # --- recovery plans --------------------------------------------------------------

    def create_plan(
        self, run: tuple[str, str, str], phase: str, *, subject: str, rule: str,
        steps: Sequence[str], now: datetime, batch_id: str | None = None,
        processor: str | None = None, manual: bool = False, audit: Sequence[AuditEntry] = (),
    ) -> PlanRow | None:
        """Write a pending recovery plan, or None when this subject already had one by this rule."""
        with self._store.transaction() as db:
            cur = db.execute(
                "INSERT INTO actuator_recoveries (pipeline, run_date, mode, phase, subject, rule,"
                " batch_id, processor, steps, state, created_at, next_attempt_at, manual)"
                " VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, 'pending', ?, ?, ?)"
                " ON CONFLICT (pipeline, run_date, mode, phase, subject, rule) DO NOTHING"
                f" RETURNING {', '.join(PLAN_COLUMNS)}",
                (*run, phase, subject, rule, batch_id, processor, json.dumps(list(steps)),
                 utc_text(now), utc_text(now), int(manual)),
            )
            row = cur.fetchone()
            if row is None:
                return None
            insert_audit(db, audit)
        self._audited(audit)
        return _plan(row)

    def plan(self, plan_id: int) -> PlanRow | None:
        rows = self._store.read(f"{_SELECT_PLAN} WHERE id = ?", (plan_id,))
        return _plan(rows[0]) if rows else None

    def plans(self, *, pipeline: str | None = None, phase: str | None = None,
              states: Sequence[str] = ()) -> list[PlanRow]:
        query, params = f"{_SELECT_PLAN} WHERE 1 = 1", list[object]()
        for column, value in (("pipeline", pipeline), ("phase", phase)):
            if value is not None:
                query += f" AND {column} = ?"
                params.append(value)
        if states:
            query += f" AND state IN ({', '.join('?' * len(states))})"
            params.extend(states)
        return [_plan(r) for r in self._store.read(query + " ORDER BY id", params)]

    def due_plans(self, now: datetime) -> list[int]:
        rows = self._store.read(
            "SELECT id FROM actuator_recoveries WHERE state = 'pending' AND next_attempt_at <= ?"
            " ORDER BY next_attempt_at, id", (utc_text(now),),
        )
        return [int(r[0]) for r in rows]

    def claim_plan(self, plan_id: int, token: str, now: datetime) -> PlanRow | None:
        with self._store.transaction() as db:
            cur = db.execute(
                "UPDATE actuator_recoveries SET state = 'sending', claim = ?, claimed_at = ?"
                " WHERE id = ? AND state = 'pending' AND next_attempt_at <= ?",
                (token, utc_text(now), plan_id, utc_text(now)),
            )
            if cur.rowcount != 1:
                return None
            row = db.execute(f"{_SELECT_PLAN} WHERE id = ?", (plan_id,)).fetchone()
        return _plan(row)

    def update_plan(
        self, plan_id: int, changes: Mapping[str, Any], audit: Sequence[AuditEntry] = (), *,
        claim: str | None = None, state: str | None = None,
    ) -> bool:
        return self._update("actuator_recoveries", plan_id, changes, audit, claim, state)

    def last_plan_at(self, run: tuple[str, str, str], phase: str, subject: str) -> datetime | None:
        rows = self._store.read(
            "SELECT MAX(created_at) FROM actuator_recoveries WHERE pipeline = ? AND run_date = ?"
            " AND mode = ? AND phase = ? AND subject = ?", (*run, phase, subject),
        )
        return parse_time(rows[0][0]) if rows else None

    def finished_plans_since(self, pipeline: str, phase: str, since: datetime) -> int:
        rows = self._store.read(
            "SELECT COUNT(*) FROM actuator_recoveries WHERE pipeline = ? AND phase = ?"
            " AND state = 'done' AND manual = 0 AND finished_at >= ?",
            (pipeline, phase, utc_text(since)),
        )
        return int(rows[0][0])

    # --- audit -----------------------------------------------------------------------

    def audit(self, entries: Sequence[AuditEntry]) -> None:
        if entries:
            with self._store.transaction() as db:
                insert_audit(db, entries)
            self._audited(entries)

    def executed_actions(self, *, pipeline: str, since: datetime | None = None,
                         run: tuple[str, str, str] | None = None) -> int:
        """Automated actions the budget counts: recovery steps that called the pipeline and
        playbook actions taken."""
        query = ("SELECT COUNT(*) FROM actuator_audit WHERE manual = 0 AND pipeline = ? AND"
                 " ((kind = 'recovery' AND outcome IN ('accepted', 'already_running', 'failed'))"
                 " OR (kind = 'playbook' AND outcome = 'taken'))")
        params: list[object] = [pipeline]
        if since is not None:
            query += " AND at >= ?"
            params.append(utc_text(since))
        if run is not None:
            query += " AND run_date = ? AND mode = ?"
            params.extend(run[1:])
        return int(self._store.read(query, params)[0][0])

    def last_action_at(self, run: tuple[str, str, str], phase: str, action: str,
                       batch_id: str | None) -> datetime | None:
        query = ("SELECT MAX(at) FROM actuator_audit WHERE kind = 'recovery' AND outcome IN"
                 " ('accepted', 'already_running') AND pipeline = ? AND run_date = ? AND mode = ?"
                 " AND phase = ? AND action = ?")
        params: list[object] = [*run, phase, action]
        if batch_id is not None:
            query += " AND batch_id = ?"
            params.append(batch_id)
        rows = self._store.read(query, params)
        return parse_time(rows[0][0]) if rows else None

    def audit_rows(
        self, *, kinds: Sequence[str] = (), filters: Mapping[str, str] | None = None,
        since: datetime | None = None, limit: int | None = None, newest_first: bool = False,
    ) -> list[dict[str, Any]]:
        """Audit lines as dicts (``time`` in RFC 3339), oldest first unless asked otherwise."""
        query, params = f"SELECT id, {_AUDIT_COLUMNS} FROM actuator_audit WHERE 1 = 1", list[object]()
        if kinds:
            query += f" AND kind IN ({', '.join('?' * len(kinds))})"
            params.extend(kinds)
        for column, value in (filters or {}).items():
            if column not in ("pipeline", "run_date", "mode", "phase", "processor", "service",
                              "outcome", "action", "batch_id"):
                raise ValueError(f"cannot filter the audit log on {column!r}")
            query += f" AND {column} = ?"
            params.append(value)
        if since is not None:
            query += " AND at >= ?"
            params.append(utc_text(since))
        query += " ORDER BY id DESC" if newest_first else " ORDER BY id"
        if limit is not None:
            query += " LIMIT ?"
            params.append(limit)
        return [_audit_dict(r) for r in self._store.read(query, params)]

    # --- guards, health ------------------------------------------------------

    def save_guard(self, key: str, kind: str, pipeline: str, phase: str, processor: str | None,
                   run_date: str | None, mode: str | None, at: datetime, detail: str) -> None:
        with self._store.transaction() as db:
            db.execute(
                "INSERT INTO actuator_guards (key, kind, pipeline, phase, processor, run_date, mode,"
                " tripped_at, detail) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?) ON CONFLICT (key) DO UPDATE"
                " SET tripped_at = excluded.tripped_at, cleared_at = NULL, detail = excluded.detail",
                (key, kind, pipeline, phase, processor, run_date, mode, utc_text(at), detail),
            )

    def clear_guard(self, key: str, at: datetime) -> None:
        with self._store.transaction() as db:
            db.execute("UPDATE actuator_guards SET cleared_at = ? WHERE key = ?", (utc_text(at), key))

    def active_guards(self) -> list[tuple[str, str, str, str, str | None, str | None, str | None, str]]:
        rows = self._store.read(
            "SELECT key, kind, pipeline, phase, processor, run_date, mode, detail"
            " FROM actuator_guards WHERE cleared_at IS NULL"
        )
        return [tuple(r) for r in rows]

    def guard_tripped_at(self, key: str) -> datetime | None:
        """When the guard ``key`` last tripped (its episode), None when it never did."""
        rows = self._store.read("SELECT tripped_at FROM actuator_guards WHERE key = ?", (key,))
        return parse_time(rows[0][0]) if rows else None

    def save_health(self, service: str, status: str, detail: str, at: datetime,
                    http_status: int | None, failures: int) -> None:
        with self._store.transaction() as db:
            db.execute(
                "INSERT INTO actuator_health (service, status, detail, checked_at, http_status,"
                " failures) VALUES (?, ?, ?, ?, ?, ?) ON CONFLICT (service) DO UPDATE SET"
                " status = excluded.status, detail = excluded.detail, checked_at ="
                " excluded.checked_at, http_status = excluded.http_status, failures = excluded.failures",
                (service, status, detail, utc_text(at), http_status, failures),
            )

    def health(self) -> list[dict[str, Any]]:
        rows = self._store.read(
            "SELECT service, status, detail, checked_at, http_status, failures FROM actuator_health"
            " ORDER BY service"
        )
        return [{"service": r[0], "status": r[1], "detail": r[2],
                 "checked_at": datetime.fromisoformat(r[3]).isoformat(), "http_status": r[4],
                 "consecutive_failures": r[5]} for r in rows]

    # --- helpers ---------------------------------------------------------------------

    def _update(self, table: str, row_id: int, changes: Mapping[str, Any],
                audit: Sequence[AuditEntry], claim: str | None, state: str | None) -> bool:
        with self._store.transaction() as db:
            applied = _apply(db, table, row_id, changes, audit, claim, state)
        if applied:
            self._audited(audit)
        return applied


def _apply(db: Connection, table: str, row_id: int, changes: Mapping[str, Any],
           audit: Sequence[AuditEntry], claim: str | None, state: str | None) -> bool:
    """One conditional update with its audit lines, inside the caller's transaction."""
    columns = TRIGGER_COLUMNS if table == "actuator_triggers" else PLAN_COLUMNS
    bad = [c for c in changes if c not in columns or c == "id"]
    if bad:
        raise ValueError(f"unknown columns {bad}")
    sets = ", ".join(f"{c} = ?" for c in changes)
    params: list[object] = [_encode(c, v) for c, v in changes.items()]
    query = f"UPDATE {table} SET {sets} WHERE id = ?"
    params.append(row_id)
    if claim is not None:
        query += " AND claim = ?"
        params.append(claim)
    if state is not None:
        query += " AND state = ?"
        params.append(state)
    if db.execute(query, params).rowcount != 1:
        return False
    if audit:
        insert_audit(db, audit)
    return True


def _audit_dict(row: Sequence[Any]) -> dict[str, Any]:
    (ident, at, kind, action, outcome, pipeline, run_date, mode, phase, processor, batch_id,
     service, reason, attempt, manual, actor, detail) = row
    out: dict[str, Any] = {
        "id": ident, "time": datetime.fromisoformat(at).isoformat(), "kind": kind,
        "action": action, "outcome": outcome, "pipeline": pipeline, "run_date": run_date,
        "mode": mode, "phase": phase, "processor": processor, "batch_id": batch_id,
        "service": service, "reason": reason, "attempt": attempt, "manual": bool(manual),
        "actor": actor,
    }
    out.update({k: v for k, v in json.loads(detail).items() if k not in out})
    return out


