"""The unit ledger of one SLO: each unit's latest verdict, and per-minute good/total counts.

A *unit* is what an SLO counts: a run, a run date, an attempt or a probe. Its key is
stable (a run date, a run and processor, an event id), so a later event replaces the
verdict instead of adding one. Counts live in per-minute buckets grouped by UTC day, with
a running total per day: any window of up to a few months is answered from at most two
partial days and a sum of day totals, whatever the length of the history. A partial day is
summed from its hours' totals and at most 59 minutes at each end (``DayCounts``).
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass

from slo.windows import MINUTES_PER_DAY

MINUTES_PER_HOUR = 60
HOURS_PER_DAY = MINUTES_PER_DAY // MINUTES_PER_HOUR


class DayCounts:
    """One UTC day's good and total units: per minute, per hour and the whole day.

    Only the minutes that hold a unit have an entry (a dict, not an array of the day's
    1,440 minutes): a day is made for each new UTC day of each SLO, and most SLOs count a
    few units a day (two arrays of 11.5 KB a day cost more to make and drop than the
    units' counting). One object for both counts: a unit is counted with one lookup."""

    __slots__ = ("good", "good_hours", "good_minutes", "hours", "minutes", "total")

    def __init__(self) -> None:
        self.good = self.total = 0
        self.good_minutes: dict[int, int] = {}
        self.minutes: dict[int, int] = {}
        self.good_hours = [0] * HOURS_PER_DAY
        self.hours = [0] * HOURS_PER_DAY

    def add(self, minute: int, good: bool, count: int) -> None:
        """Add ``count`` units (good or not) at ``minute`` of the day."""
        minutes, hour = self.minutes, minute // MINUTES_PER_HOUR
        minutes[minute] = minutes.get(minute, 0) + count
        self.hours[hour] += count
        self.total += count
        if good:
            minutes = self.good_minutes
            minutes[minute] = minutes.get(minute, 0) + count
            self.good_hours[hour] += count
            self.good += count

    def sums(self, lo: int, hi: int) -> tuple[int, int]:
        """(good, total) of the minutes in ``[lo, hi)``."""
        return (_sum(self.good_minutes, self.good_hours, lo, hi),
                _sum(self.minutes, self.hours, lo, hi))


def _sum(minutes: dict[int, int], hours: list[int], lo: int, hi: int) -> int:
    """The counts of the minutes in ``[lo, hi)``: the whole hours inside from their sums."""
    first, last = -(-lo // MINUTES_PER_HOUR), hi // MINUTES_PER_HOUR
    if first >= last:
        return _minutes(minutes, lo, hi)
    return (_minutes(minutes, lo, first * MINUTES_PER_HOUR) + sum(hours[first:last])
            + _minutes(minutes, last * MINUTES_PER_HOUR, hi))


def _minutes(minutes: dict[int, int], lo: int, hi: int) -> int:
    """The counts of the minutes in ``[lo, hi)`` (less than two hours' worth), from whichever
    is shorter: the range or the day's entries."""
    if len(minutes) < hi - lo:
        return sum(count for minute, count in minutes.items() if lo <= minute < hi)
    return sum(minutes.get(minute, 0) for minute in range(lo, hi))


@dataclass(slots=True)
class Verdict:
    """A unit's time (epoch seconds) and whether it was good.

    Read-only by convention, not ``frozen``: a frozen dataclass sets each field through
    ``object.__setattr__``, and one is made per verdict recorded (0.44 -> 0.11 µs)."""

    ts: int
    good: bool


class UnitLedger:
    """Verdicts by unit key, and exact good/total counts for any range of minutes."""

    def __init__(self, retention_minutes: int | None = None) -> None:
        self._retention = retention_minutes
        self._newest_day: int | None = None
        self._units: dict[str, Verdict] = {}
        self._keys_by_day: dict[int, set[str]] = {}  # UTC day of each unit's time: prune by day
        self._bad: dict[str, int] = {}
        # Bad units recorded while ``quiet`` (imported history): they count, but open no alert.
        self.quiet = False
        self._quiet: set[str] = set()
        self._days: dict[int, DayCounts] = {}
        self._floor = -(2**62)  # minutes before this were pruned
        # No day of a unit or a count is before this one: a prune up to it has nothing to drop.
        self._oldest_day = 2**62

    def __len__(self) -> int:
        return len(self._units)

    def get(self, key: str) -> Verdict | None:
        return self._units.get(key)

    def set(self, key: str, ts: int, good: bool, *, latest: bool = False) -> None:
        """Record (or replace) the verdict of ``key``; ``latest``: unless it has one from a
        later time."""
        units = self._units
        old = units.get(key)
        minute = ts // 60
        day = minute // MINUTES_PER_DAY
        if old is not None:
            if (old.ts == ts and old.good == good) or (latest and ts < old.ts):
                return
            old_minute = old.ts // 60
            self._count(old_minute, old.good, -1)
            old_day = old_minute // MINUTES_PER_DAY
            if old_day != day or minute < self._floor:
                self._keys_by_day[old_day].discard(key)
        if minute < self._floor:
            if old is not None:
                del units[key]
                self._bad.pop(key, None)
            return
        units[key] = Verdict(ts, good)
        keys = self._keys_by_day.get(day)
        if keys is None:
            keys = self._keys_by_day[day] = set()
            if day < self._oldest_day:
                self._oldest_day = day
        keys.add(key)
        if good:
            self._bad.pop(key, None)
            self._quiet.discard(key)
        else:
            self._bad[key] = ts
            if self.quiet:
                self._quiet.add(key)
            else:
                self._quiet.discard(key)
        self._count(minute, good, 1)

    def remove(self, key: str) -> None:
        """Forget ``key`` (it is no longer counted)."""
        old = self._units.pop(key, None)
        if old is not None:
            self._keys_by_day[old.ts // 60 // MINUTES_PER_DAY].discard(key)
            self._bad.pop(key, None)
            self._quiet.discard(key)
            self._count(old.ts // 60, old.good, -1)

    def _count(self, minute: int, good: bool, sign: int) -> None:
        """Add ``sign`` units (good or not) at ``minute`` to the counts."""
        if minute < self._floor:
            return
        day, slot = divmod(minute, MINUTES_PER_DAY)
        counts = self._days.get(day)
        if counts is None:
            self._on_new_day(day)
            counts = self._days[day] = DayCounts()
        counts.add(slot, good, sign)

    def _on_new_day(self, day: int) -> None:
        """Bound memory on ingest alone: drop days older than the retention behind the newest.

        Evaluation prunes against ``now``; this keeps a day of margin on top so that a
        unit still inside a window at ``now`` is never dropped by an early timestamp.
        """
        if self._newest_day is not None and day <= self._newest_day:
            return
        self._newest_day = day
        if self._retention is not None:
            self.prune((day - 1) * MINUTES_PER_DAY - self._retention)

    def counts(self, start: int, end: int) -> tuple[int, int]:
        """(good, total) of the units whose minute is in ``[start, end)``."""
        if end <= start:
            return 0, 0
        d0, r0 = divmod(start, MINUTES_PER_DAY)
        d1, r1 = divmod(end, MINUTES_PER_DAY)
        if d0 == d1:
            return self._partial(d0, r0, r1)
        good, total = self._partial(d0, r0, MINUTES_PER_DAY)
        days = self._days
        for day in range(d0 + 1, d1):
            counts = days.get(day)
            if counts is not None:
                total += counts.total
                good += counts.good
        g, t = self._partial(d1, 0, r1)
        return good + g, total + t

    def _partial(self, day: int, lo: int, hi: int) -> tuple[int, int]:
        counts = self._days.get(day)
        if counts is None or hi <= lo:
            return 0, 0
        if lo == 0 and hi == MINUTES_PER_DAY:
            return counts.good, counts.total
        return counts.sums(lo, hi)

    def is_quiet(self, key: str) -> bool:
        """Whether bad unit ``key`` came from imported history (``quiet``)."""
        return key in self._quiet

    def live_bad_since(self, ts: int) -> bool:
        """Whether a bad unit at or after epoch second ``ts`` was recorded live (not quiet)."""
        quiet = self._quiet
        return any(t >= ts and k not in quiet for k, t in self._bad.items())

    def bad_units(self, start: int, end: int) -> list[tuple[str, int]]:
        """Bad units (key, ts) whose minute is in ``[start, end)``, oldest first."""
        found = [(k, ts) for k, ts in self._bad.items() if start <= ts // 60 < end]
        return sorted(found, key=lambda item: (item[1], item[0]))

    def units(self, start: int, end: int) -> list[tuple[str, int, bool]]:
        """Every unit (key, ts, good) whose minute is in ``[start, end)``, oldest first."""
        found = [(k, v.ts, v.good) for k, v in self._units.items() if start <= v.ts // 60 < end]
        return sorted(found, key=lambda item: (item[1], item[0]))

    def streak(self, start: int, end: int) -> list[tuple[str, int]]:
        """The trailing run of bad units in ``[start, end)``: the latest units while they are
        bad, newest first (empty when the latest unit is good)."""
        inside = sorted(((v.ts, k, v.good) for k, v in self._units.items()
                         if start <= v.ts // 60 < end), reverse=True)
        out: list[tuple[str, int]] = []
        for ts, key, good in inside:
            if good:
                break
            out.append((key, ts))
        return out

    def prune(self, before: int) -> None:
        """Drop units and buckets of the UTC days before the one containing minute ``before``."""
        first_day = before // MINUTES_PER_DAY
        if first_day * MINUTES_PER_DAY <= self._floor:
            return
        self._floor = first_day * MINUTES_PER_DAY
        oldest = self._oldest_day
        if first_day <= oldest:
            return
        self._oldest_day = first_day
        # The days to drop: counted up from the oldest when that is shorter than a scan of the
        # days held (a prune on each new day drops one day).
        held = len(self._keys_by_day) + len(self._days)
        if first_day - oldest <= held:
            old: Iterable[int] = range(oldest, first_day)
        else:
            old = {d for d in self._days if d < first_day}
            old.update(d for d in self._keys_by_day if d < first_day)
        for day in old:
            self._days.pop(day, None)
            for key in self._keys_by_day.pop(day, ()):
                del self._units[key]
                self._bad.pop(key, None)
                self._quiet.discard(key)
