"""What every playbook shares: the ``Playbook`` protocol, its durable actions, and the
checks every action passes before it touches the pipeline.

A playbook acts through the trigger protocol: its action is a new *generation* of the
phase's trigger row (``monitor.actuator.generations``) with its own idempotency key
(``pipeline:run_date:mode:phase:playbook-<name>-<action id>``), delivered, health-gated
and verified like any trigger. Before it writes one, an action must pass, in order: the
playbook's own switch (``enabled``), the actuator's kill switch, the actionable horizon,
and the actuator's budget (``budget.per_run`` / ``per_day``, shared with the recoveries).
``dry_run`` (the playbook's or the actuator's) audits what it would send and sends
nothing. Each action is a row in the store (component ``playbooks``), unique per
playbook, run, phase and subject, so a redelivered event or a restart never repeats it;
every decision is in the audit log (kind ``playbook``).
"""

from __future__ import annotations

import json
import logging
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import TYPE_CHECKING, Any, ClassVar, Protocol

from monitor.actuator.alert_context import describe
from monitor.actuator.config import PlaybookConfig
from monitor.actuator.context import Context
from monitor.actuator.generations import rerun_generation
from monitor.actuator.notify import run_labels
from monitor.actuator.store import AuditEntry, insert_audit
from monitor.horizon import outside_run_dates
from monitor.interest import EventKey
from monitor.store.base import ComponentStore, parse_time, utc_text
from monitor.store.retention import Rule
from monitor.tracker import Update

if TYPE_CHECKING:
    from monitor.actuator.engine import Actuator

log = logging.getLogger(__name__)

MIGRATIONS: tuple[str, ...] = (
    """
    CREATE TABLE playbook_actions (
        id          INTEGER PRIMARY KEY,
        playbook    TEXT    NOT NULL,
        kind        TEXT    NOT NULL,
        pipeline    TEXT    NOT NULL,
        run_date    TEXT    NOT NULL,
        mode        TEXT    NOT NULL,
        phase       TEXT    NOT NULL,
        processor   TEXT,
        subject     TEXT    NOT NULL,
        state       TEXT    NOT NULL,
        created_at  TEXT    NOT NULL,
        due_at      TEXT,
        trigger_id  INTEGER,
        idem_key    TEXT,
        detail      TEXT    NOT NULL DEFAULT '{}',
        finished_at TEXT,
        UNIQUE (playbook, pipeline, run_date, mode, phase, subject)
    );
    CREATE INDEX playbook_actions_open ON playbook_actions (playbook, state)
    """,
)
OPEN = ("held", "releasing")  # a hold in place; a release under way
# Past retention (monitor.store.retention): settled actions of run dates no longer accepted
# (while a run date is accepted its rows keep each action once per run); holds in place
# and re-runs still due are kept.
RETENTION: tuple[Rule, ...] = (
    Rule("playbook_actions", "audit",
         "run_date < ? AND state NOT IN ('held', 'releasing', 'due')", ("accepted_date",)),
)
_COLUMNS = ("id", "playbook", "kind", "pipeline", "run_date", "mode", "phase", "processor",
            "subject", "state", "created_at", "due_at", "trigger_id", "idem_key", "detail",
            "finished_at")
_SELECT = f"SELECT {', '.join(_COLUMNS)} FROM playbook_actions"


@dataclass(frozen=True)
class ActionRow:
    """One action of a playbook on one run: a re-run sent, a hold placed or released."""

    id: int
    playbook: str
    kind: str
    pipeline: str
    run_date: str
    mode: str
    phase: str
    processor: str | None
    subject: str
    state: str  # held | releasing | sent | dry_run | not_taken | cleared | abandoned
    created_at: datetime
    due_at: datetime | None
    trigger_id: int | None
    idem_key: str | None
    detail: dict[str, Any] = field(default_factory=dict)
    finished_at: datetime | None = None

    @property
    def run(self) -> tuple[str, str, str]:
        return (self.pipeline, self.run_date, self.mode)


def _row(values: Sequence[Any]) -> ActionRow:
    raw = dict(zip(_COLUMNS, values, strict=True))
    return ActionRow(
        raw["id"], raw["playbook"], raw["kind"], raw["pipeline"], raw["run_date"], raw["mode"],
        raw["phase"], raw["processor"], raw["subject"], raw["state"],
        datetime.fromisoformat(raw["created_at"]), parse_time(raw["due_at"]), raw["trigger_id"],
        raw["idem_key"], json.loads(raw["detail"]), parse_time(raw["finished_at"]),
    )


class PlaybookStore:
    """The ``playbook_actions`` table."""

    def __init__(self, store: ComponentStore) -> None:
        self._store = store
        store.migrate_component("playbooks", MIGRATIONS)

    def create(self, playbook: PlaybookConfig, run: tuple[str, str, str], *, subject: str,
               state: str, now: datetime, processor: str | None = None,
               due_at: datetime | None = None, detail: Mapping[str, Any] | None = None,
               audit: Sequence[AuditEntry] = ()) -> ActionRow | None:
        """A new action with its audit lines, or None when this subject has one already."""
        with self._store.transaction() as db:
            cur = db.execute(
                "INSERT INTO playbook_actions (playbook, kind, pipeline, run_date, mode, phase,"
                " processor, subject, state, created_at, due_at, detail) VALUES"
                " (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?) ON CONFLICT DO NOTHING"
                f" RETURNING {', '.join(_COLUMNS)}",
                (playbook.name, playbook.kind, *run, playbook.phase, processor, subject, state,
                 utc_text(now), utc_text(due_at) if due_at else None,
                 json.dumps(dict(detail or {}), default=str)),
            )
            values = cur.fetchone()
            if values is None:
                return None
            if audit:
                insert_audit(db, audit)
        return _row(values)

    def get(self, action_id: int) -> ActionRow | None:
        rows = self._store.read(f"{_SELECT} WHERE id = ?", (action_id,))
        return _row(rows[0]) if rows else None

    def open(self, playbook: str) -> list[ActionRow]:
        """The playbook's holds in place (and releases under way), oldest first."""
        rows = self._store.read(
            f"{_SELECT} WHERE playbook = ? AND state IN ('held', 'releasing') ORDER BY id",
            (playbook,))
        return [_row(r) for r in rows]

    def handled(self, playbook: str, subject: str) -> bool:
        """Whether the playbook has an action for ``subject`` on any run."""
        rows = self._store.read(
            "SELECT 1 FROM playbook_actions WHERE playbook = ? AND subject = ? LIMIT 1",
            (playbook, subject))
        return bool(rows)

    def of_run(self, playbook: str, run: tuple[str, str, str]) -> list[ActionRow]:
        rows = self._store.read(
            f"{_SELECT} WHERE playbook = ? AND pipeline = ? AND run_date = ? AND mode = ?"
            " ORDER BY id", (playbook, *run))
        return [_row(r) for r in rows]

    def all(self) -> list[ActionRow]:
        return [_row(r) for r in self._store.read(f"{_SELECT} ORDER BY id")]

    def update(self, action_id: int, changes: Mapping[str, Any], *, state: str) -> bool:
        """Apply ``changes`` if the action is still in ``state`` (one writer wins)."""
        sets = ", ".join(f"{c} = ?" for c in changes)
        values = [utc_text(v) if isinstance(v, datetime) else
                  json.dumps(v, default=str) if isinstance(v, dict) else v
                  for v in changes.values()]
        with self._store.transaction() as db:
            cur = db.execute(f"UPDATE playbook_actions SET {sets} WHERE id = ? AND state = ?",
                             (*values, action_id, state))
            return cur.rowcount == 1


@dataclass(frozen=True)
class Blocked:
    """Why an action may not go now: ``reason`` (disabled, kill_switch, outside_horizon,
    budget) and the words for the audit log."""

    reason: str
    why: str


class Playbook(Protocol):
    """One configured playbook: it watches events and the tick, and acts through ``Kit``."""

    @property
    def config(self) -> PlaybookConfig:
        """Its configuration (one of ``actuator.playbooks``)."""
        ...

    #: The statuses of the events ``wants`` may want (it wants no event of another): the
    #: listener passes over every other event in C, without asking the index.
    statuses: ClassVar[frozenset[str]]

    def wants(self, key: EventKey) -> bool:
        """Whether ``observe`` can use events of ``key`` (pipeline, phase, processor or
        None, status): only those reach it (``monitor.interest``)."""
        ...

    def observe(self, update: Update) -> None:
        """A newly stored event (fresh, not history) of a key it wants."""
        ...

    def tick(self, now: datetime) -> None:
        """The ``playbooks`` job."""
        ...


class Kit:
    """The shared means of the playbooks: checks before acting, sending, audit, notices."""

    def __init__(self, actuator: Actuator, store: PlaybookStore) -> None:
        self.actuator = actuator
        self.ctx: Context = actuator.ctx
        self.store = store
        self._said: set[tuple[int, str]] = set()  # (action, reason) audited as waiting

    # --- before acting ---------------------------------------------------------------

    def blocked(self, playbook: PlaybookConfig, run: tuple[str, str, str],
                now: datetime) -> Blocked | None:
        """The first reason an action of ``playbook`` on ``run`` may not go now, or None."""
        ctx = self.ctx
        if not playbook.enabled:
            return Blocked("disabled", f"playbook {playbook.name} is disabled (enabled: false)")
        if not ctx.acfg.enabled:
            return Blocked("kill_switch", "actuator.enabled is false (kill switch)")
        pipeline = ctx.pipeline(run[0])
        if pipeline is None:
            return Blocked("config", f"pipeline {run[0]} is no longer configured")
        outside = outside_run_dates(pipeline, datetime.fromisoformat(run[1]).date(), run[2], now)
        if outside is not None:
            return Blocked("outside_horizon", outside)
        budget = ctx.acfg.budget
        per_run = ctx.store.executed_actions(pipeline=run[0], run=run)
        if per_run >= budget.per_run:
            return Blocked("budget", f"{per_run} actions taken for this run (budget {budget.per_run})")
        per_day = ctx.store.executed_actions(pipeline=run[0], since=now - timedelta(days=1))
        if per_day >= budget.per_day:
            return Blocked("budget", f"{per_day} actions in 24 h (budget {budget.per_day})")
        return None

    def dry(self, playbook: PlaybookConfig) -> bool:
        return playbook.dry_run or self.ctx.acfg.dry_run

    def waiting(self, row: ActionRow, now: datetime, blocked: Blocked) -> None:
        """Audit once that an action waits (or will not go), and why."""
        mark = (row.id, blocked.reason)
        if mark in self._said:
            return
        self._said.add(mark)
        self.audit(row, now, row.kind, "not_taken", reason=blocked.reason,
                   detail={"why": blocked.why})
        if blocked.reason == "budget":
            self.ctx.notifier.fire(
                "action_budget_exhausted", "warning",
                f"automated action of {row.phase} in {row.pipeline} {row.run_date} stopped "
                f"(playbook {row.playbook}): {blocked.why}", now,
                {"pipeline": row.pipeline, "phase": row.phase},
            )

    # --- acting ----------------------------------------------------------------------

    def send(self, playbook: PlaybookConfig, row: ActionRow, now: datetime, *,
             processors: Sequence[str] = (), payload: Mapping[str, Any] | None = None,
             action: str, summary: str, state: str = "sent",
             audit_detail: Mapping[str, Any] | None = None) -> bool:
        """Re-trigger the row's phase (a new generation with the action's own key), or audit
        it as a dry run; the action moves to ``state``. False when a delivery of the phase
        is in flight (the next tick tries again)."""
        key = f"{row.pipeline}:{row.run_date}:{row.mode}:{row.phase}:playbook-{playbook.name}-{row.id}"
        detail = {"playbook": playbook.name, "action": row.id, "payload": dict(payload or {}),
                  "processors": list(processors), **(audit_detail or {})}
        if self.dry(playbook):
            if self.store.update(row.id, {"state": "dry_run", "idem_key": key,
                                          "finished_at": now}, state=row.state):
                self.audit(row, now, action, "dry_run", reason=row.kind,
                           detail={**detail, "idempotency_key": key, "would": summary})
            return True
        trigger = rerun_generation(
            self.ctx, row.run, row.phase, key=key, reason="recovery",
            rule=f"playbook-{playbook.name}", now=now, detail=detail, processors=processors)
        if trigger is None:
            return False
        self.actuator.mark_decided(row.run, row.phase)
        if not self.store.update(row.id, {"state": state, "trigger_id": trigger.id,
                                          "idem_key": key, "finished_at": now}, state=row.state):
            return True
        self.audit(row, now, action, "taken", reason=row.kind,
                   detail={**detail, "trigger_id": trigger.id, "idempotency_key": key,
                           "generation": trigger.generation})
        log.info("event=playbook.acted playbook=%s kind=%s pipeline=%s run_date=%s mode=%s "
                 "phase=%s trigger_id=%d", playbook.name, row.kind, *row.run, row.phase,
                 trigger.id)
        self.notice(row, now, summary)
        self.actuator.submit("trigger", trigger.id)
        return True

    # --- telling ---------------------------------------------------------------------

    def audit(self, row: ActionRow, now: datetime, action: str, outcome: str, *,
              reason: str | None = None, detail: Mapping[str, Any] | None = None) -> None:
        self.ctx.store.audit([self.entry(row.playbook, row.run, row.phase, now, action, outcome,
                                         processor=row.processor, reason=reason,
                                         detail={"action_id": row.id, **(detail or {})})])

    @staticmethod
    def entry(playbook: str, run: tuple[str, str, str], phase: str, now: datetime, action: str,
              outcome: str, *, processor: str | None = None, reason: str | None = None,
              detail: Mapping[str, Any] | None = None) -> AuditEntry:
        return AuditEntry(now, "playbook", action, outcome, *run, phase, processor,
                          reason=reason, actor=f"playbook:{playbook}",
                          detail={"playbook": playbook, **(detail or {})})

    def notice(self, row: ActionRow, now: datetime, summary: str,
               checks: Sequence[str] | None = None) -> None:
        """An info notification of what the playbook did, with the run's context."""
        labels = run_labels(*row.run, row.phase, processor=row.processor, playbook=row.playbook)
        details = describe(self.ctx, row.pipeline, row.run, [row.phase], row.processor, checks)
        self.ctx.notifier.notice("playbook", summary, now, labels, details=details)
