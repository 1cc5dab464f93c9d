"""deadline: share of due run dates whose phase (or whole run) completed by a deadline.

A unit is a run date. It is counted once its deadline has passed (at the deadline, in
the pipeline's timezone): good when a run of a counted mode completed by its deadline,
bad otherwise, including when no run happened at all. A late-arriving event that shows
an earlier completion turns it good again.

With ``due.only_seen`` a run date is due when the pipeline reported on it, or when every
``due.expected_when`` condition holds on its data check's latest result for that run date
(the result's own ``run_date``, else the day it was measured on in the pipeline's
timezone): a game day on which nothing ran at all is then bad at its deadline, not a day
nobody counts. A result arriving after the deadline recounts that run date.

Counting starts at ``due.start`` when it is set (every due run date from it on counts,
reported or not), else at the pipeline's first event: nothing is blamed for the time
before the pipeline reported. The live engine, a restart and ``slo report`` all see the
same events, so they start counting at the same moment.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import UTC, date, datetime, timedelta
from typing import TYPE_CHECKING

from monitor.fields import OPERATORS, parse_condition
from monitor.interest import EventKey
from slo.ledger import UnitLedger
from slo.sli.base import CheckReading, HealthProbe, epoch
from slo.spec import DeadlineSLI, Mode, SLOSpec
from slo.windows import local_deadline, retention_minutes

if TYPE_CHECKING:
    from monitor.config import PipelineConfig
    from monitor.tracker import RunState, Update

ALL_MODES: tuple[Mode, ...] = ("overnight", "same_day", "tomorrow", "backfill")
_MAX_OFFSET_DAYS = 8  # deadlines lie within ±7 days of the run date
FROM_DUE_START = -(2**62)  # ``since`` when due.start decides (is_due leaves out earlier dates)
_EARLIEST = datetime.min.replace(tzinfo=UTC)  # ``since_at`` of FROM_DUE_START


class Deadline:
    """Run dates due by the calendar (and optionally seen), judged at their deadline."""

    def __init__(self, spec: SLOSpec, pipeline: PipelineConfig) -> None:
        assert isinstance(spec.sli, DeadlineSLI)
        self.spec = spec
        self.sli: DeadlineSLI = spec.sli
        self.tz = pipeline.tz
        self.modes: tuple[Mode, ...] = self.sli.modes or ALL_MODES
        self.only_seen = self.sli.due.only_seen
        self.retention_s = retention_minutes(spec.window) * 60
        self.first_done: dict[tuple[date, str], int] = {}
        self.seen: set[date] = set()
        # due.expected_when: (check, operator, bound) each, and per run date each check's
        # latest result (epoch seconds, value); kept as long as ``seen``.
        self.expect: tuple[tuple[str, str, float], ...] = tuple(
            (name, *parse_condition(text)) for name, text in self.sli.due.expected_when.items()
        )
        self.expected: dict[date, dict[str, tuple[int, float]]] = {}
        # Counting starts here (epoch seconds): due.start makes every due date count.
        self.since: int | None = FROM_DUE_START if self.sli.due.start is not None else None
        # ``since`` as a time: an event at or after it cannot be earlier (its epoch second is
        # at least ``since``), found by comparing times, without the event's epoch.
        self.since_at: datetime | None = _EARLIEST if self.since is not None else None
        self.horizon: int | None = None  # deadlines up to here are counted
        self.next_date: date | None = None
        self._deadline_cache: dict[date, tuple[int, dict[str, int]]] = {}
        self._pruned_day = 0

    # -- deadlines

    def deadlines(self, run_date: date) -> tuple[int, dict[str, int]]:
        """(final deadline, per-mode deadlines) of a run date, in epoch seconds."""
        cached = self._deadline_cache.get(run_date)
        if cached is None:
            per_mode: dict[str, int] = {
                m: epoch(local_deadline(run_date, self.sli.deadline_for(m), self.tz))
                for m in self.modes
            }
            cached = (max(per_mode.values()), per_mode)
            self._deadline_cache[run_date] = cached
        return cached

    def next_deadline(self, after_s: int) -> int:
        """The first final deadline after ``after_s`` (epoch seconds), due or not."""
        day = datetime.fromtimestamp(after_s, self.tz).date() - timedelta(days=_MAX_OFFSET_DAYS)
        while self.deadlines(day)[0] <= after_s:
            day += timedelta(days=1)
        return self.deadlines(day)[0]

    def is_due(self, run_date: date) -> bool:
        return self.sli.due.is_due(run_date) and (
            not self.sli.due.only_seen or run_date in self.seen or self.work_expected(run_date)
        )

    def work_expected(self, run_date: date) -> bool:
        """Every ``due.expected_when`` check's latest result for the run date meets its
        condition (False without any, or when one has no result for it)."""
        if not self.expect:
            return False
        results = self.expected.get(run_date, {})
        return all(
            (result := results.get(name)) is not None and OPERATORS[op](result[1], bound)
            for name, op, bound in self.expect
        )

    # -- verdicts

    def refresh(self, run_date: date, ledger: UnitLedger) -> None:
        """Recount one run date from what is known now."""
        final, per_mode = self.deadlines(run_date)
        if self.horizon is None or final > self.horizon:
            return
        key = run_date.isoformat()
        if not self.is_due(run_date) or self.since is None or final < self.since:
            ledger.remove(key)
            return
        good = any(
            (done := self.first_done.get((run_date, m))) is not None and done <= per_mode[m]
            for m in self.modes
        )
        ledger.set(key, final, good)

    def _refresh_range(self, first: date, last: date, ledger: UnitLedger) -> None:
        day = first
        while day <= last:
            self.refresh(day, ledger)
            day += timedelta(days=1)

    # -- inputs

    def wants(self, key: EventKey) -> bool:
        return key[0] == self.spec.pipeline  # every event: counting starts at the first one

    def on_update(self, update: Update, ledger: UnitLedger) -> None:
        if update.event.pipeline == self.spec.pipeline:  # what the engine sends (``wants``)
            self.on_updates((update,), ledger)

    def on_updates(self, updates: Sequence[Update], ledger: UnitLedger) -> None:
        # Every event of the pipeline comes here (``wants``): what most of them change
        # (nothing) is found in one loop with few lookups, a run's own once for its events
        # that come together in the batch; the rest is in the methods below.
        modes, only_seen = self.modes, self.only_seen
        last: RunState | None = None
        unseen = counted = False
        for update in updates:
            event = update.event
            if self.since_at is None or event.timestamp < self.since_at:
                ts = epoch(event.timestamp)
                if self.since is None or ts < self.since:
                    self._count_since(ts, ledger)
            run = update.run
            if run is not last:
                last, unseen, counted = run, only_seen, run.mode in modes
            if unseen:  # until its run date is seen (by this run's events or another's)
                if run.run_date in self.seen:
                    unseen = False
                else:
                    self._see(run.run_date, event.phase, ledger)
            if update.phase_completed and counted:
                self._completed(update, ledger)

    def _count_since(self, ts: int, ledger: UnitLedger) -> None:
        """The pipeline's earliest event so far is at ``ts``: counting starts there."""
        old = self.since
        self.since = ts
        self.since_at = datetime.fromtimestamp(ts, UTC)
        if old is not None and self.horizon is not None:
            low = datetime.fromtimestamp(ts, self.tz).date()
            high = datetime.fromtimestamp(old, self.tz).date()
            self._refresh_range(
                low - timedelta(days=_MAX_OFFSET_DAYS),
                high + timedelta(days=_MAX_OFFSET_DAYS),
                ledger,
            )

    def _see(self, run_date: date, phase: str, ledger: UnitLedger) -> None:
        """An event of ``phase`` for a run date not seen yet (``due.only_seen``)."""
        seen_phases = self.sli.due.seen_phases
        if not seen_phases or phase in seen_phases:
            self.seen.add(run_date)
            self.refresh(run_date, ledger)

    def _completed(self, update: Update, ledger: UnitLedger) -> None:
        """A phase of a counted mode completed with this event: maybe the run date's first
        completion (of the SLO's phase, or of the whole run)."""
        event = update.event
        if self.sli.phase is not None:
            if event.phase != self.sli.phase:
                return
            done = epoch(update.phase.completed_at or event.timestamp)
        else:
            phases = update.run.phases.values()
            if not all(p.is_complete() for p in phases):
                return
            # The run completed when its last phase did, in event time.
            done = max(epoch(p.completed_at or event.timestamp) for p in phases)
        key = (update.run.run_date, update.run.mode)
        previous = self.first_done.get(key)
        if previous is None or done < previous:
            self.first_done[key] = done
            self.refresh(update.run.run_date, ledger)

    def on_probe(self, probe: HealthProbe, ledger: UnitLedger) -> None:
        return None

    def on_check(self, reading: CheckReading, ledger: UnitLedger) -> None:
        """A result of a ``due.expected_when`` check: the latest per run date (by time, the
        later recorded in a tie) decides whether work was expected; recount that date."""
        if reading.name not in self.sli.due.expected_when:
            return
        if reading.pipeline is not None and reading.pipeline != self.spec.pipeline:
            return
        run_date = reading.run_date or reading.time.astimezone(self.tz).date()
        results = self.expected.setdefault(run_date, {})
        ts = epoch(reading.time)
        current = results.get(reading.name)
        if current is not None and ts < current[0]:
            return
        results[reading.name] = (ts, reading.value)
        self.refresh(run_date, ledger)

    def advance(self, now: datetime, ledger: UnitLedger) -> None:
        now_s = epoch(now)
        if self.horizon is not None and now_s <= self.horizon:
            return
        self.horizon = now_s
        if self.since is None:
            return  # nothing counts before the pipeline's first event
        if self.next_date is None:
            oldest = max(self.since, now_s - self.retention_s)
            self.next_date = datetime.fromtimestamp(oldest, self.tz).date() - timedelta(
                days=_MAX_OFFSET_DAYS
            )
        day = self.next_date
        while self.deadlines(day)[0] <= now_s:
            self.refresh(day, ledger)
            day += timedelta(days=1)
        self.next_date = day
        self._prune(now_s)

    def _prune(self, now_s: int) -> None:
        today = now_s // 86400
        if today == self._pruned_day:
            return
        self._pruned_day = today
        cutoff = datetime.fromtimestamp(now_s - self.retention_s, self.tz).date() - timedelta(
            days=_MAX_OFFSET_DAYS
        )
        self.first_done = {k: v for k, v in self.first_done.items() if k[0] >= cutoff}
        self.seen = {d for d in self.seen if d >= cutoff}
        self.expected = {d: v for d, v in self.expected.items() if d >= cutoff}
        self._deadline_cache = {d: v for d, v in self._deadline_cache.items() if d >= cutoff}

    def expected_units(self, start: int, end: int) -> int | None:
        """Due run dates whose deadline falls in ``[start, end)`` (known only from a calendar)."""
        if self.sli.due.only_seen:
            return None
        since = self.since
        if since is None:
            return 0  # counting has not started
        day = datetime.fromtimestamp(start * 60, self.tz).date() - timedelta(days=_MAX_OFFSET_DAYS)
        last = datetime.fromtimestamp(end * 60, self.tz).date() + timedelta(days=_MAX_OFFSET_DAYS)
        count = 0
        while day <= last:
            final = self.deadlines(day)[0]
            if start * 60 <= final < end * 60 and final >= since and self.sli.due.is_due(day):
                count += 1
            day += timedelta(days=1)
        return count

