"""The SLO ledger's counts without numpy (issue 18: its import alone cost every cold command
that judges SLOs 0.06-0.15 s): a day's minutes summed from their hours' totals and the
minutes at each end, against a plain sum; the ledger's counts over days against its units;
and the counts through a snapshot's pickling."""

from __future__ import annotations

import pickle

from hypothesis import given, settings
from hypothesis import strategies as st

from slo.ledger import MinuteCounts, UnitLedger
from slo.windows import MINUTES_PER_DAY

minutes = st.integers(0, MINUTES_PER_DAY - 1)


@settings(max_examples=200, deadline=None)
@given(adds=st.lists(st.tuples(minutes, st.integers(-3, 5))),
       lo=st.integers(0, MINUTES_PER_DAY), hi=st.integers(0, MINUTES_PER_DAY))
def test_a_range_of_minutes_sums_as_its_minutes_do(adds: list[tuple[int, int]], lo: int,
                                                     hi: int) -> None:
    counts, plain = MinuteCounts(), [0] * MINUTES_PER_DAY
    for minute, count in adds:
        counts.add(minute, count)
        plain[minute] += count
    assert counts.sum(lo, hi) == sum(plain[lo:hi])
    again = pickle.loads(pickle.dumps(counts, protocol=5))
    assert list(again.minutes) == plain and again.sum(lo, hi) == counts.sum(lo, hi)
    assert list(again.hours) == [sum(plain[h * 60:h * 60 + 60]) for h in range(24)]


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
