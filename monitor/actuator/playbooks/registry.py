"""The playbook registry (config ``kind`` → implementation) and their installation."""

from __future__ import annotations

import logging
from collections.abc import Callable, Sequence
from datetime import datetime
from itertools import compress
from operator import attrgetter, itemgetter
from typing import TYPE_CHECKING, Any

from monitor.actuator.config import (
    CascadePlaybook,
    DeferPlaybook,
    PlaybookConfig,
    QuarantinePlaybook,
    RerunMissingPlaybook,
)
from monitor.actuator.playbooks.base import Kit, Playbook, PlaybookStore
from monitor.actuator.playbooks.cascade import Cascade
from monitor.actuator.playbooks.defer import Defer
from monitor.actuator.playbooks.quarantine import Quarantine
from monitor.actuator.playbooks.rerun import RerunMissing
from monitor.actuator.watches import Watches
from monitor.interest import Interest
from monitor.tracker import Update

if TYPE_CHECKING:
    from monitor.actuator.engine import Actuator
    from monitor.host import Host

log = logging.getLogger(__name__)

Builder = Callable[[PlaybookConfig, Kit, Watches], Playbook]
_KEY = attrgetter("key")
_STATUS = itemgetter(3)  # of a key


def _rerun(cfg: PlaybookConfig, kit: Kit, watches: Watches) -> Playbook:
    assert isinstance(cfg, RerunMissingPlaybook)
    return RerunMissing(cfg, kit)


def _quarantine(cfg: PlaybookConfig, kit: Kit, watches: Watches) -> Playbook:
    assert isinstance(cfg, QuarantinePlaybook)
    return Quarantine(cfg, kit)


def _defer(cfg: PlaybookConfig, kit: Kit, watches: Watches) -> Playbook:
    assert isinstance(cfg, DeferPlaybook)
    return Defer(cfg, kit)


def _cascade(cfg: PlaybookConfig, kit: Kit, watches: Watches) -> Playbook:
    assert isinstance(cfg, CascadePlaybook)
    return Cascade(cfg, kit, watches)


PLAYBOOKS: dict[str, Builder] = {
    "rerun_missing": _rerun, "quarantine": _quarantine, "defer": _defer, "cascade": _cascade,
}


class Playbooks:
    """Every configured playbook: a collector listener and the ``playbooks`` job."""

    def __init__(self, actuator: Actuator, watches: Watches) -> None:
        self.store = PlaybookStore(actuator.store.component)
        self.kit = Kit(actuator, self.store)
        self.playbooks = [PLAYBOOKS[cfg.kind](cfg, self.kit, watches)
                          for cfg in actuator.config.actuator.playbooks]
        self._interest = Interest(self.playbooks, lambda playbook, key: playbook.wants(key))
        self.statuses = frozenset[str]().union(*(p.statuses for p in self.playbooks))

    def on_updates(self, updates: Sequence[Update]) -> None:
        """A collector listener: each newly stored event (not history), oldest first, to
        the playbooks that want events of its key.

        Playbooks want few events (a failure of one phase): the events of another status
        are passed over in C (``compress``), and only the others are looked up by key."""
        interest = self._interest
        for update in compress(updates, map(self.statuses.__contains__, map(_STATUS, map(_KEY, updates)))):
            if update.backfill:
                continue
            for playbook in interest[update.key]:
                try:
                    playbook.observe(update)
                except Exception:
                    log.exception("event=playbook.failed playbook=%s", playbook.config.name)

    def tick(self, now: datetime) -> None:
        # Each on its own: one that fails must not stop the others.
        for playbook in self.playbooks:
            try:
                playbook.tick(now)
            except Exception:
                log.exception("event=playbook.failed playbook=%s", playbook.config.name)

    def report(self) -> list[dict[str, Any]]:
        """The replay report's ``playbooks``: every playbook decision, oldest first."""
        keep = ("time", "pipeline", "run_date", "mode", "phase", "processor", "action",
                "outcome", "reason", "playbook", "trigger_id", "idempotency_key", "payload",
                "why", "would", "entities", "sent", "check", "value")
        return [{k: item.get(k) for k in keep if k in item}
                for item in self.kit.ctx.store.audit_rows(kinds=("playbook",))]


def install_playbooks(host: Host, actuator: Actuator, watches: Watches) -> Playbooks:
    """Build the configured playbooks and register them on ``host`` (listener, job, report)."""
    playbooks = Playbooks(actuator, watches)
    if playbooks.statuses:  # some playbook observes events (the others act on the tick)
        host.add_listener(playbooks.on_updates)
    host.add_job("playbooks", playbooks.tick)
    host.add_report_section("playbooks", playbooks.report)
    return playbooks
