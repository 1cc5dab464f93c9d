"""``quarantine``: hold a storming processor until a precondition holds, then re-trigger
it exactly once.

A retry storm (the guard: more than ``retry_storm_starts`` starts in the window) often has
a cause outside the processor: the box scores are not final yet, an upstream table is
still loading. Re-triggering it before that changes only feeds the storm. When the storm
guard trips for one of ``processors`` (default: any of the phase) in a run, the playbook
places a *quarantine* hold on the run's phase (automated re-triggers and recoveries wait,
as behind a guard) and says so once (info). When the ``release`` check passes with a
reading taken after the quarantine began, it clears the hold and the storm guard and
re-triggers the processor once, as a new generation of the phase's trigger (its own
idempotency key, health-gated, budgeted, verified). If the processor succeeds meanwhile,
or a person retries, the quarantine ends without a trigger; after ``max_hold_h`` it is
abandoned (info), leaving the storm guard to its own rules.
"""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import ClassVar

from monitor.actuator.config import QuarantinePlaybook
from monitor.actuator.guards import Guard
from monitor.actuator.playbooks.base import ActionRow, Kit
from monitor.interest import EventKey
from monitor.tracker import Update


class Quarantine:
    """The ``quarantine`` playbook."""

    statuses: ClassVar[frozenset[str]] = frozenset()  # acts on the tick only

    def __init__(self, config: QuarantinePlaybook, kit: Kit) -> None:
        self.config = config
        self.kit = kit

    def wants(self, key: EventKey) -> bool:
        return False  # acts on the tick only

    def observe(self, update: Update) -> None:
        return None

    def tick(self, now: datetime) -> None:
        self._quarantine(now)
        for row in self.kit.store.open(self.config.name):
            self._maybe_release(row, now)

    def hold_key(self, run: tuple[str, str, str], processor: str) -> str:
        return f"quarantine:{self.config.name}:{':'.join(run)}:{self.config.phase}:{processor}"

    # --- placing the hold ------------------------------------------------------------

    def _quarantine(self, now: datetime) -> None:
        cfg, kit = self.config, self.kit
        for guard in kit.ctx.guards.active():
            if (guard.kind != "retry_storm" or (guard.pipeline, guard.phase) != (cfg.pipeline, cfg.phase)
                    or guard.processor is None or guard.run_date is None or guard.mode is None):
                continue
            if cfg.processors and guard.processor not in cfg.processors:
                continue
            if not cfg.applies(guard.mode):
                continue
            run = (guard.pipeline, guard.run_date, guard.mode)
            tripped = kit.ctx.store.guard_tripped_at(guard.key)
            episode = tripped.isoformat() if tripped else guard.detail
            earlier = [a for a in kit.store.of_run(cfg.name, run) if a.processor == guard.processor]
            if any(a.detail.get("storm_episode") == episode for a in earlier):
                continue  # this storm was handled (held, released, abandoned or not taken)
            blocked = kit.blocked(cfg, run, now)
            if blocked is not None and blocked.reason != "budget":  # holding costs no budget
                # A hold placed before a stop that cut its row off is not kept then.
                kit.ctx.guards.clear(self.hold_key(run, guard.processor), now, "not taken")
                row = kit.store.create(cfg, run, subject=f"{guard.processor}#{len(earlier) + 1}",
                                       state="not_taken", now=now, processor=guard.processor,
                                       detail={"storm": guard.detail, "storm_episode": episode})
                if row is not None:
                    kit.waiting(row, now, blocked)
                continue
            self._hold(run, guard, episode, len(earlier) + 1, now)

    def _hold(self, run: tuple[str, str, str], storm: Guard, episode: str, n: int,
              now: datetime) -> None:
        cfg, kit = self.config, self.kit
        assert storm.processor is not None
        detail = {"storm": storm.detail, "storm_key": storm.key, "storm_episode": episode,
                  "release": cfg.release.model_dump(exclude_none=True)}
        dry = kit.dry(cfg)
        bounds = _bounds(cfg)
        if not dry:
            # The hold before its row: a stop between the two leaves the phase held and no
            # row for this storm, so the next tick makes the row (the hold stays as it is).
            # The other way round, the row's release would find no hold and end it untaken.
            kit.ctx.guards.hold(Guard(
                self.hold_key(run, storm.processor), "quarantine", cfg.pipeline, cfg.phase,
                storm.processor, run[1], run[2],
                f"quarantined by playbook {cfg.name} after a retry storm ({storm.detail}); "
                f"released when {bounds}"), now)
        row = kit.store.create(cfg, run, subject=f"{storm.processor}#{n}",
                               state="dry_run" if dry else "held", now=now,
                               processor=storm.processor, detail=detail)
        if row is None:
            return
        where = f"{storm.processor} in {cfg.phase} of {run[0]} {run[1]} ({run[2]})"
        if dry:
            kit.audit(row, now, "quarantine", "dry_run", reason="retry_storm",
                      detail={**detail, "would": f"quarantine {where} until {bounds}"})
            return
        kit.audit(row, now, "quarantine", "held", reason="retry_storm", detail=detail)
        kit.notice(row, now, f"playbook {cfg.name}: quarantined {where} after a retry storm "
                             f"({storm.detail}); one re-trigger when {bounds}",
                   checks=[cfg.release.check])

    # --- releasing it ----------------------------------------------------------------

    def _maybe_release(self, row: ActionRow, now: datetime) -> None:
        cfg, kit = self.config, self.kit
        assert row.processor is not None
        key = self.hold_key(row.run, row.processor)
        if row.state == "releasing":  # a release cut off (restart): finish it
            self._release(row, now)
            return
        if kit.ctx.guards.get(key) is None:
            why = "the processor succeeded or a person retried it"
            if kit.store.update(row.id, {"state": "cleared", "finished_at": now}, state="held"):
                kit.audit(row, now, "release", "cleared", reason="hold_cleared",
                          detail={"why": why})
            return
        if now - row.created_at >= timedelta(hours=cfg.max_hold_h):
            self._end(row, now, "abandoned", f"{cfg.release.check} did not pass within "
                      f"{cfg.max_hold_h:g} h; the retry-storm guard stays")
            return
        value = kit.ctx.checks.latest(cfg.release.check)
        if value is None or value.at < row.created_at or not cfg.release.passes(value.value):
            return
        blocked = kit.blocked(cfg, row.run, now)
        if blocked is not None:
            if blocked.reason == "outside_horizon":
                self._end(row, now, "abandoned", blocked.why)
            else:
                kit.waiting(row, now, blocked)  # kill switch or budget: held until it clears
            return
        detail = {**row.detail, "released_by": {"check": value.name, "value": value.value,
                                                "measured_at": value.at.isoformat()}}
        if kit.store.update(row.id, {"state": "releasing", "detail": detail}, state="held"):
            fresh = kit.store.get(row.id)
            if fresh is not None:
                self._release(fresh, now)

    def _release(self, row: ActionRow, now: datetime) -> None:
        """Clear the hold and the storm guard, then the one re-trigger (idempotent: a restart
        between the two finds the row releasing and the trigger keyed by the action)."""
        cfg, kit = self.config, self.kit
        assert row.processor is not None
        guards = kit.ctx.guards
        check = row.detail.get("released_by", {})
        why = f"released by playbook {cfg.name}: {check.get('check')} = {check.get('value')}"
        guards.clear(self.hold_key(row.run, row.processor), now, why)
        storm = row.detail.get("storm_key")
        if isinstance(storm, str):
            guards.clear(storm, now, why)
        where = f"{row.processor} in {row.phase} of {row.pipeline} {row.run_date} ({row.mode})"
        kit.send(cfg, row, now, processors=(row.processor,), action="release", state="released",
                 summary=f"playbook {cfg.name}: released {where} with one re-trigger "
                         f"({check.get('check')} = {check.get('value')})")

    def _end(self, row: ActionRow, now: datetime, state: str, why: str) -> None:
        kit = self.kit
        assert row.processor is not None
        if not kit.store.update(row.id, {"state": state, "finished_at": now}, state=row.state):
            return
        kit.ctx.guards.clear(self.hold_key(row.run, row.processor), now, why)
        kit.audit(row, now, "release", state, reason=state, detail={"why": why})
        kit.notice(row, now, f"playbook {self.config.name}: quarantine of {row.processor} in "
                             f"{row.phase} of {row.pipeline} {row.run_date} ({row.mode}) "
                             f"{state}: {why}", checks=[self.config.release.check])


def _bounds(cfg: QuarantinePlaybook) -> str:
    release = cfg.release
    parts = [f">= {release.min:g}" if release.min is not None else "",
             f"<= {release.max:g}" if release.max is not None else ""]
    return f"check {release.check} {' and '.join(p for p in parts if p)}"
