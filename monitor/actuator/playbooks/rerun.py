"""``rerun_missing``: re-run a phase for the entities a check found missing.

A coverage check (a check runner's SQL, or a replay's ``check`` line) returns the ids of
the entities it found missing — the games or players a processor did not cover — in its
result's ``entities``. When a reading lists some, the playbook re-triggers the phase of the
run it measured with those ids in the payload (``payload_field``, default ``entities``), so
the pipeline re-runs only them. The run measured is the newest run inside the horizon
whose phase finished before the reading, of the result's ``run_date`` (and ``pipeline``)
when it names one. One action per reading (whatever run it picks later); at most
``max_reruns`` per run; a new reading counts only once the phase has finished again after
the last re-run.
"""

from __future__ import annotations

from datetime import datetime
from typing import ClassVar

from monitor.actuator.config import RerunMissingPlaybook
from monitor.actuator.gates.base import CheckValue
from monitor.actuator.playbooks.base import Kit
from monitor.actuator.policy import phase_finished
from monitor.interest import EventKey
from monitor.tracker import RunState, Update


class RerunMissing:
    """The ``rerun_missing`` playbook."""

    statuses: ClassVar[frozenset[str]] = frozenset()  # acts on the tick only

    def __init__(self, config: RerunMissingPlaybook, kit: Kit) -> None:
        self.config = config
        self.kit = kit

    def wants(self, key: EventKey) -> bool:
        return False  # acts on the tick only

    def observe(self, update: Update) -> None:
        return None

    def tick(self, now: datetime) -> None:
        cfg = self.config
        value = self.kit.ctx.checks.latest(cfg.check)
        if value is None or not value.entities:
            return
        kit = self.kit
        subject = f"reading:{value.at.isoformat()}"
        if kit.store.handled(cfg.name, subject):
            return  # this reading was acted on (or judged) already
        run = self._measured_run(value, now)
        if run is None:
            return
        done = kit.store.of_run(cfg.name, run.key)
        last = max((a.created_at for a in done if a.state in ("sent", "dry_run")), default=None)
        finished = run.phases[cfg.phase].last_completion
        if last is not None and (finished is None or finished <= last):
            return  # the last re-run has not finished yet: a reading now says nothing new
        entities = list(value.entities[: cfg.max_entities])
        detail = {"check": cfg.check, "value": value.value, "measured_at": value.at.isoformat(),
                  "entities": len(value.entities), "sent": len(entities)}
        taken = sum(1 for a in done if a.state in ("sent", "dry_run"))
        state = "due" if taken < cfg.max_reruns else "not_taken"
        row = kit.store.create(cfg, run.key, subject=subject, state=state, now=now, detail=detail)
        if row is None:
            return
        if state == "not_taken":
            kit.audit(row, now, "rerun_missing", "not_taken", reason="max_reruns",
                      detail={**detail, "why": f"{taken} re-runs for this run already "
                              f"(max_reruns {cfg.max_reruns})"})
            return
        blocked = kit.blocked(cfg, run.key, now)
        if blocked is not None:
            kit.store.update(row.id, {"state": "not_taken", "finished_at": now}, state="due")
            kit.waiting(row, now, blocked)
            return
        where = f"{cfg.phase} of {run.pipeline} {run.run_date} ({run.mode})"
        shown = ", ".join(entities[:5]) + (" ..." if len(entities) > 5 else "")
        kit.send(cfg, row, now, processors=cfg.processors, payload={cfg.payload_field: entities},
                 action="rerun_missing", audit_detail=detail,
                 summary=f"playbook {cfg.name}: re-ran {where} for {len(entities)} missing "
                         f"entities from check {cfg.check} ({shown})")

    def _measured_run(self, value: CheckValue, now: datetime) -> RunState | None:
        """The run the reading measured: the newest recent run (in the playbook's modes)
        whose phase finished at or before the reading, of the result's ``run_date`` (and
        ``pipeline``) when it names them."""
        cfg = self.config
        if value.pipeline is not None and value.pipeline != cfg.pipeline:
            return None  # a reading about another pipeline's run
        candidates = []
        for run in self.kit.ctx.recent_runs(now):
            if run.pipeline != cfg.pipeline or not cfg.applies(run.mode):
                continue
            if value.run_date is not None and run.run_date != value.run_date:
                continue
            phase_run = run.phases.get(cfg.phase)
            if phase_run is None or not phase_finished(phase_run):
                continue
            finished = phase_run.last_completion
            if finished is not None and finished <= value.at:
                candidates.append((finished, run.run_date, run))
        if not candidates:
            return None
        return max(candidates, key=lambda c: (c[0], c[1]))[2]
