"""``defer``: hold a phase until a quota resets, then run it once.

Some failures have a known end: a BigQuery or API quota that resets at midnight Pacific.
Retrying before then burns attempts and pages people for nothing. When a processor of the
phase (or the phase itself) fails with an error of one of ``categories`` (the guards'
signature categories; default ``quota``), the playbook places a *deferred* hold on the
run's phase until the next reset time (``until``: a time of day or a cron expression, in
a timezone) and says so once (info). At the reset time it clears the hold and triggers the
phase once for the processors that hit the quota (the whole phase for a phase-level
failure), as a new generation of the phase's trigger. A later failure of the same kind
before then joins the same deferral. If those processors all succeed meanwhile, the
deferral is cancelled without a trigger; if the run has left the actionable horizon by
the reset time, it is not run (audited, info).
"""

from __future__ import annotations

from datetime import datetime
from typing import ClassVar

from monitor import horizon
from monitor.actuator.config import DeferPlaybook
from monitor.actuator.guards import Guard
from monitor.actuator.playbooks.base import ActionRow, Kit
from monitor.actuator.signatures import classify
from monitor.interest import EventKey
from monitor.tracker import Update


class Defer:
    """The ``defer`` playbook."""

    statuses: ClassVar[frozenset[str]] = frozenset({"failed"})

    def __init__(self, config: DeferPlaybook, kit: Kit) -> None:
        self.config = config
        self.kit = kit

    def hold_key(self, run: tuple[str, str, str]) -> str:
        return f"deferred:{self.config.name}:{':'.join(run)}:{self.config.phase}"

    def wants(self, key: EventKey) -> bool:
        pipeline, phase, _, status = key
        return status == "failed" and (pipeline, phase) == (self.config.pipeline, self.config.phase)

    def observe(self, update: Update) -> None:
        cfg, kit = self.config, self.kit
        event = update.event
        if (event.status != "failed" or not event.error or event.phase != cfg.phase
                or event.pipeline != cfg.pipeline or not cfg.applies(update.run.mode)
                or not cfg.enabled):
            return
        category = classify(event.error or "", kit.ctx.acfg.guards.categories)
        if category is None or category.name not in cfg.categories:
            return
        pipeline = kit.ctx.pipeline(event.pipeline)
        now = kit.ctx.clock.now()
        if pipeline is None or horizon.outside(pipeline, event, update.run.mode, now) is not None:
            return
        run = update.run.key
        due = cfg.until.next_after(event.timestamp)
        who = event.processor or f"{event.phase} (phase-level)"
        open_rows = [a for a in kit.store.open(cfg.name) if a.run == run]
        if open_rows:  # joins the deferral in place
            held = open_rows[0]
            names = list(held.detail.get("processors", []))
            if event.processor is not None and event.processor not in names:
                joined = {**held.detail, "processors": [*names, event.processor]}
                kit.store.update(held.id, {"detail": joined}, state=held.state)
            return
        dry = kit.dry(cfg)
        detail = {"category": category.name, "error": (event.error or "")[:300],
                  "processors": [event.processor] if event.processor else [],
                  "until": due.isoformat()}
        at = f"{due:%Y-%m-%d %H:%M} {cfg.until.timezone}"
        if not dry:
            # The hold before its row, as the quarantine does: a stop between the two leaves
            # the phase held and no row, which the failure judged again after the restart
            # makes; the other way round, the row would end untaken, its hold never placed.
            kit.ctx.guards.hold(Guard(
                self.hold_key(run), "deferred", cfg.pipeline, cfg.phase, None, run[1], run[2],
                f"deferred by playbook {cfg.name} until {at} ({category.headline})"), now)
        row = kit.store.create(cfg, run, subject=f"until:{due.isoformat()}",
                               state="dry_run" if dry else "held", now=now, due_at=due,
                               detail=detail)
        if row is None:
            return
        where = f"{cfg.phase} of {run[0]} {run[1]} ({run[2]})"
        if dry:
            kit.audit(row, now, "defer", "dry_run", reason=category.name,
                      detail={**detail, "would": f"defer {where} until {at}"})
            return
        kit.audit(row, now, "defer", "held", reason=category.name, detail=detail)
        kit.notice(row, now, f"playbook {cfg.name}: deferred {where} until {at}: {who} failed "
                             f"with {category.headline}; it runs once then")

    def tick(self, now: datetime) -> None:
        for row in self.kit.store.open(self.config.name):
            self._check(row, now)

    def _check(self, row: ActionRow, now: datetime) -> None:
        cfg, kit = self.config, self.kit
        guards = kit.ctx.guards
        if row.state == "held" and guards.get(self.hold_key(row.run)) is None:
            if kit.store.update(row.id, {"state": "cleared", "finished_at": now}, state="held"):
                kit.audit(row, now, "run", "cleared", reason="hold_cleared",
                          detail={"why": "a person retried the phase"})
            return
        names = list(row.detail.get("processors", []))
        run = kit.ctx.run(row.run)
        if names and run is not None and all(
            (p := run.phases[row.phase].processors.get(n)) is not None and p.status == "succeeded"
            and p.finished_at is not None and p.finished_at > row.created_at for n in names
        ):
            self._end(row, now, "cleared", f"{', '.join(names)} succeeded before the reset time")
            return
        assert row.due_at is not None
        if now < row.due_at:
            return
        blocked = kit.blocked(cfg, row.run, now)
        if blocked is not None:
            if blocked.reason in ("outside_horizon", "disabled"):
                self._end(row, now, "abandoned", blocked.why)
            else:
                kit.waiting(row, now, blocked)
            return
        guards.clear(self.hold_key(row.run), now, f"reset time of playbook {cfg.name}")
        where = f"{row.phase} of {row.pipeline} {row.run_date} ({row.mode})"
        scope = ", ".join(names) if names else "the whole phase"
        kit.send(cfg, row, now, processors=tuple(names), action="run",
                 summary=f"playbook {cfg.name}: ran {where} after the reset time "
                         f"({scope})")

    def _end(self, row: ActionRow, now: datetime, state: str, why: str) -> None:
        kit = self.kit
        if not kit.store.update(row.id, {"state": state, "finished_at": now}, state=row.state):
            return
        kit.ctx.guards.clear(self.hold_key(row.run), now, why)
        kit.audit(row, now, "run", state, reason=state, detail={"why": why})
        kit.notice(row, now, f"playbook {self.config.name}: deferred {row.phase} of "
                             f"{row.pipeline} {row.run_date} ({row.mode}) not run: {why}")
