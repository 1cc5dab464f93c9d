"""What ``serve`` feeds the BigQuery mirror, and from where (``Phasewatch.start_mirror``).

- events: a collector listener offers each newly stored event, stamped with when this
  instance stored it (strictly increasing, so the SQL SLIs fold events in the same order);
- check results: an observer of the checks component (in the order it handles them);
  health probes: the actuator's health listeners;
- alert notifications, once delivered or given up: the ``mirror-bigquery`` job reads the
  outbox from a cursor (done_at, id) that starts when the process does;
- daily SLO results: the same job, once a day per pipeline timezone, evaluates every SLO as
  of the end of the day that just ended and offers that day's units with the window's
  standing then.

Listeners only offer to the mirror's bounded queue: ingest never waits on BigQuery.

With several instances on one PostgreSQL store, collector listeners run on the leading
instance only, for the events it stores and those it follows from the others: the leader
mirrors every event once, stamped in the order its run state folded them, and runs the job.
"""

from __future__ import annotations

import logging
import threading
from datetime import datetime, timedelta
from typing import TYPE_CHECKING

from monitor.telemetry.mirror import Mirror
from monitor.telemetry.mirror_tables import ProbeRecord
from monitor.tracker import Update
from slo.windows import local_midnight

if TYPE_CHECKING:
    from datetime import date

    from monitor.actuator.gates.base import HealthResult
    from monitor.app.phasewatch import Phasewatch
    from monitor.checks.result import CheckResult

log = logging.getLogger(__name__)

JOB = "mirror-bigquery"
JOB_EVERY_S = 60.0
OUTBOX_PAGE = 1000


class Stamp:
    """Times from a clock made strictly increasing (one microsecond apart at least)."""

    def __init__(self) -> None:
        self._last: datetime | None = None
        self._lock = threading.Lock()

    def __call__(self, now: datetime) -> datetime:
        with self._lock:
            if self._last is not None and now <= self._last:
                now = self._last + timedelta(microseconds=1)
            self._last = now
            return now


class MirrorFeed:
    """Offers what phasewatch records to ``mirror`` (see the module docstring)."""

    def __init__(self, pw: Phasewatch, mirror: Mirror) -> None:
        self.pw, self.mirror = pw, mirror
        self.stamp = Stamp()
        self.cursor: tuple[datetime, int] = (pw.clock.now(), 0)
        self.days_done: dict[str, date] = {}  # per SLO: the last day offered

    def install(self) -> None:
        pw = self.pw
        pw.add_listener(self.on_update)
        pw.checks.observers.append(self.on_check)
        if pw.actuator is not None:
            pw.actuator.ctx.health.listeners.append(self.on_probe)
        pw.add_job(JOB, self.job, every_s=JOB_EVERY_S)

    def on_update(self, update: Update) -> None:
        self.mirror.offer("events", (update.event, self.stamp(self.pw.clock.now())))

    def on_check(self, result: CheckResult) -> None:
        self.mirror.offer("checks", (result, self.stamp(self.pw.clock.now())))

    def on_probe(self, result: HealthResult) -> None:
        self.mirror.offer("probes", ProbeRecord(
            result.service, result.status, result.checked_at, self.stamp(self.pw.clock.now()),
            result.http_status, result.detail[:2000] or None,
        ))

    def job(self, now: datetime) -> None:
        """Offer the alert outcomes since the cursor, and the SLO days that ended."""
        self.offer_alerts()
        self.offer_slo_days(now)

    def offer_alerts(self) -> None:
        while True:
            rows = self.pw.alerting.outbox.finished(self.cursor, OUTBOX_PAGE)
            for row in rows:
                self.mirror.offer("alerts", row)
            if rows:
                last = rows[-1]
                self.cursor = (last.done_at or last.created_at, last.id)
            if len(rows) < OUTBOX_PAGE:
                return

    def offer_slo_days(self, now: datetime) -> None:
        """Each SLO's days that ended since the last offer (at first: yesterday), evaluated as of
        the end of each day, in the SLO's pipeline's timezone."""
        due: dict[datetime, list[str]] = {}  # end of a day -> SLOs to read there
        for spec in self.pw.slo.specs:
            tz = self.pw.config.pipeline_map[spec.pipeline].tz
            yesterday = now.astimezone(tz).date() - timedelta(days=1)
            day = self.days_done.get(spec.name, yesterday - timedelta(days=1)) + timedelta(days=1)
            while day <= yesterday:
                end = local_midnight(day + timedelta(days=1), tz) - timedelta(seconds=1)
                due.setdefault(end, []).append(spec.name)
                day += timedelta(days=1)
        for end in sorted(due):
            names = set(due[end])
            for status in self.pw.slo.evaluate(end, daily=True):
                if status.name not in names:
                    continue
                the_day = end.astimezone(self.pw.config.pipeline_map[status.pipeline].tz).date()
                for count in status.days or ():
                    if count.day == the_day:
                        self.mirror.offer("slo_days", (status, count))
                self.days_done[status.name] = the_day
