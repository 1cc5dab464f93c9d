"""Cascade re-runs: re-run a phase for a run date, then each downstream phase in order.

After an upstream fix, the reference pipeline's operators re-ran Phase 3 for the date, then
Phase 4 once Phase 3 had finished again, then regenerated the predictions (incident 13). A
cascade does that: it triggers phase P, waits until P has *finished anew* (its expected
processors done again after the re-run trigger), then triggers the next downstream phase,
and so on, in the pipeline's dependency order. Each step is a new *generation* of the
phase's trigger row with a fresh idempotency key (``…:rerun-<cascade id>``), so the
trigger protocol (pending → succeeded → verified, exactly one success per generation)
holds for re-runs too; a phase's ``rerun.payload`` (``{mode: REGENERATE}``) is added to
the request. Cascades are rows in the store (component ``cascade``): a restart resumes them.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import TYPE_CHECKING, Any

from monitor.actuator.notify import run_labels
from monitor.actuator.store import AuditEntry, TriggerRow
from monitor.config import PipelineConfig
from monitor.store.base import ComponentStore, Migration, parse_time, utc_text
from monitor.tracker import DONE, PhaseRun

if TYPE_CHECKING:
    from monitor.actuator.engine import Actuator

log = logging.getLogger(__name__)

MIGRATIONS: tuple[Migration, ...] = (
    """
    CREATE TABLE actuator_cascades (
        id          INTEGER PRIMARY KEY,
        pipeline    TEXT    NOT NULL,
        run_date    TEXT    NOT NULL,
        mode        TEXT    NOT NULL,
        phases      TEXT    NOT NULL,
        step        INTEGER NOT NULL DEFAULT 0,
        step_at     TEXT,
        trigger_id  INTEGER,
        state       TEXT    NOT NULL,
        reason      TEXT    NOT NULL,
        manual      INTEGER NOT NULL DEFAULT 0,
        force       INTEGER NOT NULL DEFAULT 0,
        actor       TEXT,
        created_at  TEXT    NOT NULL,
        finished_at TEXT,
        late        INTEGER NOT NULL DEFAULT 0,
        last_error  TEXT
    );
    CREATE UNIQUE INDEX actuator_cascades_running ON actuator_cascades (pipeline, run_date, mode)
        WHERE state = 'running'
    """,
    # Automatic starts (``actuator.cascades``): the latest reading of each configured check
    # that the watch has handled, so "newly passes" survives a restart (watches.py).
    """
    CREATE TABLE actuator_cascade_checks (
        name        TEXT    PRIMARY KEY,
        measured_at TEXT    NOT NULL,
        passed      INTEGER NOT NULL
    )
    """,
)
GIVE_UP = timedelta(hours=24)
_COLUMNS = ("id", "pipeline", "run_date", "mode", "phases", "step", "step_at", "trigger_id",
            "state", "reason", "manual", "force", "actor", "created_at", "finished_at", "late",
            "last_error")
_SELECT = f"SELECT {', '.join(_COLUMNS)} FROM actuator_cascades"


@dataclass(frozen=True)
class CascadeRow:
    """A cascade's durable state: the phases in order, the current step and its trigger."""

    id: int
    pipeline: str
    run_date: str
    mode: str
    phases: tuple[str, ...]
    step: int
    step_at: datetime | None  # when the current step's re-run trigger was written
    trigger_id: int | None
    state: str  # running | done | failed
    reason: str  # manual | recovery
    manual: bool
    force: bool
    actor: str | None
    created_at: datetime
    finished_at: datetime | None
    late: bool
    last_error: str | None

    @property
    def run(self) -> tuple[str, str, str]:
        return (self.pipeline, self.run_date, self.mode)

    def as_dict(self) -> dict[str, Any]:
        return {"id": self.id, "phases": list(self.phases), "step": self.step,
                "phase": self.phases[min(self.step, len(self.phases) - 1)], "state": self.state,
                "reason": self.reason, "trigger_id": self.trigger_id}


def _row(values: Sequence[Any]) -> CascadeRow:
    raw = dict(zip(_COLUMNS, values, strict=True))
    return CascadeRow(
        raw["id"], raw["pipeline"], raw["run_date"], raw["mode"], tuple(json.loads(raw["phases"])),
        raw["step"], parse_time(raw["step_at"]), raw["trigger_id"], raw["state"], raw["reason"],
        bool(raw["manual"]), bool(raw["force"]), raw["actor"], datetime.fromisoformat(raw["created_at"]),
        parse_time(raw["finished_at"]), bool(raw["late"]), raw["last_error"],
    )


class CascadeStore:
    """The ``actuator_cascades`` table."""

    def __init__(self, store: ComponentStore) -> None:
        self._store = store
        store.migrate_component("cascade", MIGRATIONS)

    def create(self, run: tuple[str, str, str], phases: Sequence[str], *, reason: str,
               manual: bool, force: bool, actor: str | None, now: datetime) -> CascadeRow | None:
        """A running cascade, or None when the run already has one running."""
        with self._store.transaction() as db:
            cur = db.execute(
                "INSERT INTO actuator_cascades (pipeline, run_date, mode, phases, state, reason,"
                " manual, force, actor, created_at) VALUES (?, ?, ?, ?, 'running', ?, ?, ?, ?, ?)"
                f" ON CONFLICT DO NOTHING RETURNING {', '.join(_COLUMNS)}",
                (*run, json.dumps(list(phases)), reason, int(manual), int(force), actor,
                 utc_text(now)),
            )
            values = cur.fetchone()
        return None if values is None else _row(values)

    def get(self, cascade_id: int) -> CascadeRow | None:
        rows = self._store.read(f"{_SELECT} WHERE id = ?", (cascade_id,))
        return _row(rows[0]) if rows else None

    def running(self, run: tuple[str, str, str] | None = None) -> list[CascadeRow]:
        query, params = f"{_SELECT} WHERE state = 'running'", list[object]()
        if run is not None:
            query += " AND pipeline = ? AND run_date = ? AND mode = ?"
            params.extend(run)
        return [_row(r) for r in self._store.read(query + " ORDER BY id", params)]

    def all(self) -> list[CascadeRow]:
        return [_row(r) for r in self._store.read(f"{_SELECT} ORDER BY id")]

    def check_seen(self, name: str) -> tuple[datetime, bool] | None:
        """The last handled reading of an automatic start's check: (measured at, passed)."""
        rows = self._store.read(
            "SELECT measured_at, passed FROM actuator_cascade_checks WHERE name = ?", (name,))
        return (datetime.fromisoformat(rows[0][0]), bool(rows[0][1])) if rows else None

    def saw_check(self, name: str, measured_at: datetime, passed: bool) -> None:
        """Record that the reading of ``measured_at`` has been handled."""
        with self._store.transaction() as db:
            db.execute(
                "INSERT INTO actuator_cascade_checks (name, measured_at, passed) VALUES (?, ?, ?)"
                " ON CONFLICT (name) DO UPDATE SET measured_at = excluded.measured_at,"
                " passed = excluded.passed", (name, utc_text(measured_at), int(passed)),
            )

    def update(self, cascade_id: int, changes: dict[str, Any], *, step: int) -> bool:
        """Apply ``changes`` if the cascade is still running at ``step`` (no double advance)."""
        sets = ", ".join(f"{c} = ?" for c in changes)
        values = [utc_text(v) if isinstance(v, datetime) else v for v in changes.values()]
        with self._store.transaction() as db:
            cur = db.execute(
                f"UPDATE actuator_cascades SET {sets} WHERE id = ? AND state = 'running'"
                " AND step = ?", (*values, cascade_id, step),
            )
            return cur.rowcount == 1


def cascade_phases(pipeline: PipelineConfig, root: str, mode: str, *, cascade: bool) -> list[str]:
    """``root`` then (with ``cascade``) every phase downstream of it that phasewatch can
    trigger in ``mode``, in the pipeline's order (each after all of its upstream phases)."""
    if not cascade:
        return [root]
    reached = {root}
    for phase in pipeline.phases:  # config order: upstream phases are listed first
        if any(up in reached for up in pipeline.upstream_of(phase.id)):
            reached.add(phase.id)
    out = []
    for phase in pipeline.phases:
        modes = phase.policy.modes
        if phase.id == root or (phase.id in reached and phase.triggers
                                and (modes is None or mode in modes)):
            out.append(phase.id)
    return out


def finished_since(phase_run: PhaseRun, since: datetime) -> bool:
    """Has the phase finished anew since ``since``: every critical and the required count of
    its expected processors done again (or a phase-level success) after that time?"""
    if (phase_run.phase_status == "succeeded" and phase_run.phase_finished_at is not None
            and phase_run.phase_finished_at >= since):
        return True
    expected, critical, required = phase_run.expectation
    if not expected:
        return False
    fresh = {n for n, p in phase_run.processors.items()
             if p.status in DONE and p.finished_at is not None and p.finished_at >= since}
    return all(n in fresh for n in critical) and len(fresh & set(expected)) >= max(required, 1)


def failed_since(phase_run: PhaseRun, since: datetime) -> str | None:
    """A critical processor (or the phase) whose latest status since ``since`` is failed."""
    if (phase_run.phase_status == "failed" and phase_run.phase_finished_at is not None
            and phase_run.phase_finished_at >= since):
        return "(phase)"
    for name in phase_run.expectation.critical:
        proc = phase_run.processors.get(name)
        if proc is not None and proc.status == "failed" and proc.status_at and proc.status_at >= since:
            return name
    return None


class Cascades:
    """Starts cascades and moves them along on every tick."""

    def __init__(self, actuator: Actuator, store: CascadeStore) -> None:
        self.actuator = actuator
        self.store = store
        for row in store.running():  # resumed after a restart: the cascade still owns them
            self._own(row)

    def _own(self, row: CascadeRow) -> None:
        """The cascade triggers its phases: the transition rules must not trigger them too."""
        for phase in row.phases:
            self.actuator.mark_decided(row.run, phase)

    def start(self, run: tuple[str, str, str], phases: Sequence[str], *, reason: str,
              manual: bool, force: bool, actor: str | None, now: datetime) -> CascadeRow | None:
        """Start a cascade (its first trigger goes out now); None when one is running already."""
        row = self.store.create(run, phases, reason=reason, manual=manual, force=force,
                                actor=actor, now=now)
        if row is None:
            return None
        self._own(row)
        self._audit(row, now, "start", "accepted", phases[0], detail={"phases": list(phases)})
        log.info("event=cascade.started id=%d pipeline=%s run_date=%s mode=%s phases=%s",
                 row.id, *run, ",".join(phases))
        self._fire(row, now)
        return self.store.get(row.id)

    def tick(self, now: datetime) -> None:
        """Advance every running cascade whose current phase finished anew."""
        for row in self.store.running():
            try:
                self._advance(row, now)
            except Exception:
                log.exception("event=cascade.error id=%d", row.id)

    # --- steps -----------------------------------------------------------------------

    def _advance(self, row: CascadeRow, now: datetime) -> None:
        if row.step_at is None:
            self._fire(row, now)
            return
        ctx = self.actuator.ctx
        phase = row.phases[row.step]
        trigger = ctx.store.trigger(row.trigger_id) if row.trigger_id is not None else None
        if trigger is not None and trigger.state == "failed":
            self._end(row, now, "failed", f"the re-run trigger of {phase} failed: "
                      f"{trigger.last_error or 'gave up'}")
            return
        run = ctx.run(row.run)
        phase_run = run.phases.get(phase) if run is not None else None
        if phase_run is not None:
            failed = failed_since(phase_run, row.step_at)
            if failed is not None:
                self._end(row, now, "failed", f"{phase} failed again ({failed})")
                return
            if finished_since(phase_run, row.step_at):
                self._audit(row, now, "step", "finished", phase)
                if row.step + 1 >= len(row.phases):
                    self._end(row, now, "done", None)
                elif self.store.update(row.id, {"step": row.step + 1, "step_at": None,
                                                "trigger_id": None, "late": 0}, step=row.step):
                    # The late step finished: its alert is keyed by phase, so _end (which
                    # resolves the current step's) would never reach it.
                    ctx.notifier.resolve("cascade_stalled",
                                         run_labels(*row.run, phase, cascade=str(row.id)), now)
                    fresh = self.store.get(row.id)
                    if fresh is not None:
                        self._fire(fresh, now)
                return
        self._late(row, now, phase)

    def _late(self, row: CascadeRow, now: datetime, phase: str) -> None:
        assert row.step_at is not None
        ctx = self.actuator.ctx
        config = ctx.phase(row.pipeline, phase)
        if config is None:
            return
        minutes = (config.policy.start_within_min or ctx.acfg.verification.start_within_min) + (
            config.policy.finish_within_min or ctx.acfg.stalled.phase_timeout_min)
        waited = now - row.step_at
        if waited >= GIVE_UP:
            self._end(row, now, "failed", f"{phase} did not finish again within {GIVE_UP}")
        elif waited >= timedelta(minutes=minutes) and not row.late and self.store.update(
                row.id, {"late": 1}, step=row.step):
            ctx.notifier.fire(
                "cascade_stalled", "warning",
                f"cascade re-run {row.id} of {row.pipeline} {row.run_date} ({row.mode}): {phase} "
                f"has not finished again {waited.total_seconds() / 60:.0f} min after its re-run "
                f"trigger; waiting (steps {' → '.join(row.phases)})",
                now, run_labels(*row.run, phase, cascade=str(row.id)),
            )

    def _fire(self, row: CascadeRow, now: datetime) -> None:
        """Write the current step's re-run trigger (a new generation) and deliver it."""
        ctx = self.actuator.ctx
        phase = row.phases[row.step]
        config = ctx.phase(row.pipeline, phase)
        if config is None or not config.triggers:
            self._end(row, now, "failed", f"{phase} is no longer configured with triggers")
            return
        reason = "manual" if row.manual else "recovery"
        key = f"{row.pipeline}:{row.run_date}:{row.mode}:{phase}:rerun-{row.id}"
        existing = ctx.store.find_trigger(row.run, phase)
        # Effect verification counts a re-run's re-triggers from its own first generation.
        first = 1 if existing is None else existing.generation + 1
        detail = {"cascade": row.id, "step": row.step, "first_generation": first,
                  "payload": dict(config.rerun.payload) if config.rerun else {}}
        trigger: TriggerRow | None
        if existing is None:
            trigger = ctx.store.decide(
                row.run, phase, reason=reason, rule=f"cascade-{row.id}", now=now, detail=detail,
                manual=row.manual, force=row.force, idem_key=key, generation=first,
            )
            self.actuator.mark_decided(row.run, phase)
        elif existing.state == "sending":
            return  # a delivery is in flight: the next tick tries again
        elif ctx.store.update_trigger(existing.id, {
            "state": "pending", "generation": first, "idem_key": key,
            "reason": reason, "send_reason": reason, "rule": f"cascade-{row.id}",
            "manual": row.manual, "force": row.force, "decided_at": now, "next_attempt_at": now,
            "attempts": 0, "delivered": frozenset(), "outcome": None, "succeeded_at": None,
            "verified_at": None, "deferrals": 0, "deferred_since": None, "blocked_by": None,
            "escalated": False, "last_error": None, "processors": (),
            "detail": {**existing.detail, **detail},
        }, state=existing.state):
            trigger = ctx.store.trigger(existing.id)
        else:
            return
        if trigger is None:
            return
        if not self.store.update(row.id, {"step_at": now, "trigger_id": trigger.id}, step=row.step):
            return
        self._audit(row, now, "step", "triggered", phase,
                    detail={"trigger_id": trigger.id, "idempotency_key": key,
                            "payload": detail["payload"]})
        self.actuator.submit("trigger", trigger.id)

    def _end(self, row: CascadeRow, now: datetime, state: str, why: str | None) -> None:
        if not self.store.update(row.id, {"state": state, "finished_at": now, "last_error": why},
                                 step=row.step):
            return
        ctx = self.actuator.ctx
        phase = row.phases[row.step]
        self._audit(row, now, "end", state, phase, detail={"why": why})
        steps = " → ".join(row.phases)
        labels = run_labels(*row.run, cascade=str(row.id))
        ctx.notifier.resolve("cascade_stalled", run_labels(*row.run, phase, cascade=str(row.id)),
                             now)
        if state == "done":
            ctx.notifier.notice("cascade_finished", f"cascade re-run {row.id} of {row.pipeline} "
                                f"{row.run_date} ({row.mode}) finished: {steps}", now, labels)
        else:
            ctx.notifier.fire("cascade_failed", "warning", f"cascade re-run {row.id} of "
                              f"{row.pipeline} {row.run_date} ({row.mode}) stopped at {phase}: "
                              f"{why} (steps {steps})", now, labels)

    def _audit(self, row: CascadeRow, now: datetime, action: str, outcome: str, phase: str,
               detail: dict[str, Any] | None = None) -> None:
        self.actuator.store.audit([AuditEntry(
            now, "cascade", action, outcome, *row.run, phase, manual=row.manual, actor=row.actor,
            reason=row.reason, detail={"cascade": row.id, "step": row.step, **(detail or {})},
        )])
