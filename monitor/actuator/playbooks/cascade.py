"""``cascade``: the automatic cascade re-run (``actuator.cascades``) as a playbook.

When ``check`` newly passes (a reading within the bounds after one outside them; the first
reading only sets the baseline), each recent run inside the horizon whose ``phase`` still
has an entity coverage drop firing gets a cascade re-run: ``phase``, then every downstream
phase once the one before finished anew (``monitor.actuator.cascade``). As a playbook it
has a kill switch, a dry run, the budget (one action per cascade started) and the audit
log (kind ``playbook``) besides the cascade's own.
"""

from __future__ import annotations

from datetime import datetime
from typing import ClassVar

from monitor.actuator.cascade import cascade_phases
from monitor.actuator.config import CascadePlaybook
from monitor.actuator.playbooks.base import Kit
from monitor.actuator.watches import Watches
from monitor.interest import EventKey
from monitor.tracker import Update


class Cascade:
    """The ``cascade`` playbook."""

    statuses: ClassVar[frozenset[str]] = frozenset()  # acts on the tick only

    def __init__(self, config: CascadePlaybook, kit: Kit, watches: Watches) -> None:
        self.config = config
        self.kit = kit
        self.watches = watches

    def wants(self, key: EventKey) -> bool:
        return False  # acts on the tick only

    def observe(self, update: Update) -> None:
        return None

    def tick(self, now: datetime) -> None:
        self.watches.on_check(self.config, f"playbook:{self.config.name}", now,
                              lambda: self._start(now))

    def _start(self, now: datetime) -> None:
        cfg, kit = self.config, self.kit
        pipeline = kit.ctx.pipeline(cfg.pipeline)
        if pipeline is None:
            return
        value = kit.ctx.checks.latest(cfg.check)
        reading = value.at.isoformat() if value is not None else "?"
        for run in self.watches.runs_to_rerun(cfg, now):
            if not cfg.applies(run.mode):
                continue
            phases = cascade_phases(pipeline, cfg.phase, run.mode, cascade=True)
            state = "dry_run" if kit.dry(cfg) else "sent"
            blocked = kit.blocked(cfg, run.key, now)
            row = kit.store.create(cfg, run.key, subject=f"reading:{reading}",
                                   state="not_taken" if blocked else state, now=now,
                                   detail={"check": cfg.check, "phases": phases,
                                           "value": value.value if value else None})
            if row is None:
                continue
            if blocked is not None:
                kit.waiting(row, now, blocked)
                continue
            if state == "dry_run":
                kit.audit(row, now, "cascade", "dry_run", reason="check_passed",
                          detail={"would": f"cascade re-run {' → '.join(phases)}"})
                continue
            started = self.watches.cascades.start(
                run.key, phases, reason="recovery", manual=False, force=False,
                actor=f"playbook:{cfg.name}", now=now)
            if started is None:
                kit.store.update(row.id, {"state": "not_taken", "finished_at": now}, state="sent")
                kit.audit(row, now, "cascade", "not_taken", reason="cascade_running",
                          detail={"why": "the run has a cascade running already"})
                continue
            kit.audit(row, now, "cascade", "taken", reason="check_passed",
                      detail={"cascade": started.id, "phases": phases})
            kit.notice(row, now, f"playbook {cfg.name}: {cfg.check} passes; cascade re-run "
                                 f"{started.id} of {run.pipeline} {run.run_date} ({run.mode}): "
                                 f"{' → '.join(phases)}", checks=[cfg.check])
