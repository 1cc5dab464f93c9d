"""Every alert resolves: the catalogue's generic resolve conditions, checked on every tick.

Most emitters resolve their own alerts when their condition clears. Some alerts are about
a problem that can end by a path the emitter does not watch: a backstop trigger or a failed
recovery is over when the phase of that run completed, however it got there; a count per
day is over a day after it last fired. ``Lifecycle.tick`` resolves the firing alerts whose
catalogue entry says so (``alerts.catalogue.Lifecycle``): ``phase_done`` when the run's
phase is complete in the tracker (or the run is no longer tracked: past the tracker's
horizon nothing about it can be done automatically), ``expires_h`` after the alert last
fired.
"""

from __future__ import annotations

import logging
from datetime import date, datetime, timedelta
from typing import TYPE_CHECKING

from alerts.catalogue import Lifecycle as Rule
from alerts.catalogue import lifecycle_rules

if TYPE_CHECKING:
    from alerts.model import Alert
    from alerts.router import Router
    from monitor.tracker import RunTracker

log = logging.getLogger(__name__)


class Lifecycle:
    """Resolves firing alerts whose problem is gone by a path their emitter does not watch."""

    def __init__(self, router: Router, tracker: RunTracker,
                 rules: dict[str, Rule] | None = None) -> None:
        self.router = router
        self.tracker = tracker
        self.rules = lifecycle_rules() if rules is None else rules

    def tick(self, now: datetime) -> list[str]:
        """Resolve what is over at ``now``; returns the keys resolved."""
        done = []
        for alert in self.router.active():
            rule = self.rules.get(alert.name)
            if rule is not None and self._over(alert, rule, now):
                self.router.resolve(alert.key, now)
                done.append(alert.key)
                log.info("event=alert.lifecycle_resolved key=%s", alert.key)
        return done

    def _over(self, alert: Alert, rule: Rule, now: datetime) -> bool:
        if rule.expires_h is not None and now - alert.at >= timedelta(hours=rule.expires_h):
            return True
        if not rule.phase_done:
            return False
        labels = alert.labels
        try:
            run_date = date.fromisoformat(labels.get("run_date", ""))
        except ValueError:
            return False
        pipeline, mode, phase = labels.get("pipeline"), labels.get("mode"), labels.get("phase")
        if not pipeline or not mode or not phase:
            return False
        run = self.tracker.get((pipeline, run_date.isoformat(), mode))
        if run is None:
            return True  # no longer tracked: past the horizon anything acts on
        phase_run = run.phases.get(phase)
        return phase_run is not None and phase_run.is_complete()
