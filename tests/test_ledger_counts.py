"""The SLO ledger's counts without numpy (issue 18: its import alone cost every cold command
that judges SLOs 0.06-0.15 s): a day's minutes (only those that hold a unit) summed from
their hours' totals and the minutes at each end, against a plain sum; the ledger's counts over days against its units;
and the counts through a snapshot's pickling."""

from __future__ import annotations

import pickle
from typing import Any

from hypothesis import given, settings
from hypothesis import strategies as st

from slo.ledger import DayCounts, UnitLedger
from slo.windows import MINUTES_PER_DAY

minutes = st.integers(0, MINUTES_PER_DAY - 1)


@settings(max_examples=200, deadline=None)
@given(adds=st.lists(st.tuples(minutes, st.booleans(), st.integers(-3, 5))),
       lo=st.integers(0, MINUTES_PER_DAY), hi=st.integers(0, MINUTES_PER_DAY))
def test_a_range_of_minutes_sums_as_its_minutes_do(adds: list[tuple[int, bool, int]], lo: int,
                                                     hi: int) -> None:
    counts = DayCounts()
    good, total = [0] * MINUTES_PER_DAY, [0] * MINUTES_PER_DAY
    for minute, is_good, count in adds:
        counts.add(minute, is_good, count)
        total[minute] += count
        good[minute] += count if is_good else 0
    assert counts.sums(lo, hi) == (sum(good[lo:hi]), sum(total[lo:hi]))
    assert (counts.good, counts.total) == (sum(good), sum(total))
    again = pickle.loads(pickle.dumps(counts, protocol=5))
    assert again.sums(lo, hi) == counts.sums(lo, hi)
    assert [again.minutes.get(m, 0) for m in range(MINUTES_PER_DAY)] == total
    assert [again.good_minutes.get(m, 0) for m in range(MINUTES_PER_DAY)] == good
    assert again.hours == [sum(total[h * 60:h * 60 + 60]) for h in range(24)]
    assert again.good_hours == [sum(good[h * 60:h * 60 + 60]) for h in range(24)]
    assert (again.good, again.total) == (counts.good, counts.total)


@settings(max_examples=100, deadline=None)
@given(units=st.dictionaries(st.text("abcdef", min_size=1, max_size=3),
                             st.tuples(st.integers(0, 4 * 86400 - 1), st.booleans())),
       removed=st.sets(st.text("abcdef", min_size=1, max_size=3)),
       start=st.integers(-10, 4 * MINUTES_PER_DAY + 10),
       length=st.integers(0, 4 * MINUTES_PER_DAY))
def test_the_ledger_counts_the_units_of_a_range(units: dict[str, tuple[int, bool]],
                                                 removed: set[str], start: int,
                                                 length: int) -> None:
    ledger = UnitLedger()
    for key, (ts, good) in units.items():
        ledger.set(key, ts, not good)  # replaced below: the first verdict is taken back
        ledger.set(key, ts + 61 if ts % 2 else ts, good)
    for key in removed:
        ledger.remove(key)
    end = start + length
    inside = ledger.units(start, end)
    assert ledger.counts(start, end) == (sum(1 for _, _, good in inside if good), len(inside))


keys = st.text("abcdef", min_size=1, max_size=2)
steps = st.one_of(
    st.tuples(st.just("set"), keys, st.integers(-86400, 8 * 86400), st.booleans()),
    st.tuples(st.just("remove"), keys),
    st.tuples(st.just("prune"), st.integers(-2 * MINUTES_PER_DAY, 9 * MINUTES_PER_DAY)),
)


@settings(max_examples=200, deadline=None)
@given(plan=st.lists(steps, max_size=60),
       retention=st.none() | st.integers(0, 3 * MINUTES_PER_DAY))
def test_a_prune_drops_every_day_before_its_own(plan: list[tuple[Any, ...]],
                                                 retention: int | None) -> None:
    """A prune skips its scan when no day held is older (``UnitLedger._oldest_day``): what
    it keeps, with or without a retention pruning on each new day, is never older than the
    floor, and the counts are still those of the units."""
    ledger = UnitLedger(retention)
    for step in plan:
        if step[0] == "set":
            ledger.set(step[1], step[2], step[3])
        elif step[0] == "remove":
            ledger.remove(step[1])
        else:
            ledger.prune(step[1])
        first_day = ledger._floor // MINUTES_PER_DAY
        held = [*ledger._days, *ledger._keys_by_day]
        assert all(day >= first_day for day in held)
        assert all(v.ts // 60 >= ledger._floor for v in ledger._units.values())
        units = ledger.units(-2 * MINUTES_PER_DAY, 10 * MINUTES_PER_DAY)
        assert len(units) == len(ledger)
        counts = ledger.counts(-2 * MINUTES_PER_DAY, 10 * MINUTES_PER_DAY)
        assert counts == (sum(1 for u in units if u[2]), len(units))
