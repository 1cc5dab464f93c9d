"""The actuator's periodic work reads the store in proportion to the runs it watches, not to
the history kept.

The measured defect (issue 16, the soak): the actuator tick's CPU per simulated week crept
up while the runs it looks at stayed at 58. Its query for succeeded triggers not verified
yet walked every succeeded trigger ever written (the index on state), so each tick read a
little more than the one before. The store's work is counted in SQLite virtual-machine
steps (deterministic, unlike time) with and without a year of finished history.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import date, timedelta

from monitor.actuator.store import ActuatorStore, AuditEntry
from monitor.store.sqlite import SQLiteStore
from tests.actuator_support import PHASE3_OVERNIGHT, Rig, rig

STEP = 100  # VM instructions per count


def store_steps(store: SQLiteStore, work: Callable[[], object]) -> int:
    """SQLite VM steps (in hundreds) that ``work`` costs the store."""
    count = 0

    def counted() -> int:
        nonlocal count
        count += 1
        return 0

    store._db.set_progress_handler(counted, STEP)
    try:
        work()
    finally:
        store._db.set_progress_handler(None, STEP)
    return count


def add_history(actuator: ActuatorStore, days: int, now_at: Rig) -> None:
    """A year of finished work: per day two runs triggered, verified, with their audit lines."""
    now = now_at.clock.now()
    first = date(2025, 1, 1)
    for day in range(days):
        run_date = (first + timedelta(days=day)).isoformat()
        for mode in ("overnight", "same_day"):
            run = ("nba", run_date, mode)
            row = actuator.decide(run, "phase4", reason="all_complete", rule="all", now=now,
                                  audit=[AuditEntry(now, "decision", "trigger", "taken", *run,
                                                    "phase4")])
            assert row is not None
            assert actuator.update_trigger(row.id, {"state": "succeeded", "succeeded_at": now,
                                                    "verified_at": now}, state="pending")


def test_the_tick_reads_no_more_of_the_store_with_a_year_of_finished_history() -> None:
    with rig() as r:
        assert r.pw.actuator is not None and isinstance(r.pw.store, SQLiteStore)
        # Today's work in progress: a run triggered and waiting for its effect.
        r.complete("phase3", PHASE3_OVERNIGHT)
        r.tick_for(120)
        actuator = r.pw.actuator

        def tick() -> None:
            actuator.tick(r.clock.now())

        before = store_steps(r.pw.store, tick)
        add_history(actuator.store, 365, r)
        after = store_steps(r.pw.store, tick)
        # Equal but for noise: a query that walks the history costs thousands more.
        assert after <= before * 1.2 + 10, (before, after)
