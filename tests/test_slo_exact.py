"""The SLO figures issue 12 found wrong, each against a hand-computed case.

1. coverage compares exact fractions (0.55 x 100 is 55, not 55.000…01);
2. availability SLIs are rebuilt from stored probes on start and in ``slo report``;
3. a phase completes at the latest needed event's own timestamp, not at whichever arrived last;
4. the live engine and ``slo report`` start counting deadlines at the same moment (``due.start``,
   else the pipeline's first event);
5. rolling windows are N local days in the pipeline's timezone, not N x 24 h.
"""

from __future__ import annotations

import json
from datetime import UTC, date, datetime, timedelta
from pathlib import Path

from click.testing import CliRunner

from monitor.actuator.simulated import simulated
from monitor.app.cli.main import main
from monitor.app.phasewatch import Phasewatch
from monitor.app.sim.replay import HealthLine, SimulatedWorld
from monitor.clock import FakeClock
from monitor.config import load_config
from monitor.tracker import RunTracker
from slo import SLOEngine
from tests.test_slo_engine import config, daily_publishes, event, feed, local

# --------------------------------------------------------------------------- 1. coverage


COVERAGE_SLO = """
slos:
  - name: cov
    pipeline: p
    sli: {kind: coverage, phase: load, processors: [x], min_ratio: 0.55}
    objective: 0.9
"""


def test_coverage_of_exactly_the_minimum_ratio_is_good() -> None:
    cfg = config(COVERAGE_SLO)
    engine = SLOEngine(cfg)
    day = date(2026, 1, 5)
    events = [event("load", "succeeded", local("2026-01-05T06:00"), "x", run_date=day,
                    records=55, expected_records=100),
              event("load", "succeeded", local("2026-01-06T06:00"), "x",
                    run_date=day + timedelta(days=1), records=54, expected_records=100)]
    feed(cfg, engine, events)
    now = local("2026-01-07T00:00")
    (status,) = engine.evaluate(now)
    assert (status.good, status.total) == (1, 2)  # 55/100 meets 0.55; 54/100 does not


# --------------------------------------------------------------------------- 2. availability


AVAILABILITY = "nba-prediction-worker-availability"


def _probe_for_an_hour(db: Path, start: datetime) -> dict[str, object]:
    """A worker failing its probes for 30 minutes then passing; the SLO as the live engine saw it."""
    clock = FakeClock(start)
    world = SimulatedWorld()
    probe, sinks, checks = simulated(world)
    pw = Phasewatch.build(load_config(), db_path=db, clock=clock, probe=probe, sinks=sinks,
                          checks=checks, dry_run_alerts=True)
    try:
        world.apply(HealthLine(type="health", service="prediction-worker", status="fail",
                               timestamp=start))
        for minute in range(60):
            if minute == 30:
                world.apply(HealthLine(type="health", service="prediction-worker", status="pass",
                                       timestamp=clock.now()))
            pw.actuator.health_job(clock.now())  # type: ignore[union-attr]
            clock.advance(60)
        return next(s for s in pw.slo_report() if s["name"] == AVAILABILITY)
    finally:
        pw.close()


def test_availability_is_rebuilt_from_stored_probes_on_start_and_in_the_report(tmp_path: Path) -> None:
    db = tmp_path / "pw.db"
    start = datetime(2026, 1, 20, 12, 0, tzinfo=UTC)
    live = _probe_for_an_hour(db, start)
    assert (live["good"], live["total"]) == (30, 60)
    # A restart: the new instance counts the same probes.
    clock = FakeClock(start + timedelta(hours=1))
    pw = Phasewatch.build(load_config(), db_path=db, clock=clock, dry_run_alerts=True)
    try:
        restarted = next(s for s in pw.slo_report() if s["name"] == AVAILABILITY)
    finally:
        pw.close()
    assert (restarted["good"], restarted["total"]) == (30, 60)
    # And `slo report` reading the same store.
    result = CliRunner().invoke(main, ["slo", "report", "--json", "--db", str(db),
                                       "--at", (start + timedelta(hours=1)).isoformat()])
    reported = next(s for s in json.loads(result.output)["slos"] if s["name"] == AVAILABILITY)
    assert (reported["good"], reported["total"]) == (30, 60)


def test_stored_probes_are_kept_only_as_long_as_an_availability_window_needs(db: str) -> None:
    from monitor.store.probes import ProbeLog
    from monitor.store.registry import open_store

    store = open_store(db)  # SQLite and PostgreSQL
    try:
        log = ProbeLog(store)  # type: ignore[arg-type]
        log.record("svc", datetime(2026, 1, 1, tzinfo=UTC), "fail")
        log.record("svc", datetime(2026, 1, 1, tzinfo=UTC), "pass")  # the same probe again
        at = datetime(2026, 1, 1, tzinfo=UTC)
        for day in range(10):
            log.record("svc", at + timedelta(days=day), "pass")
        assert [p.status for p in log.probes(since=at, until=at)] == ["pass"]
        log.prune(at + timedelta(days=7))
        assert [p.at for p in log.probes(since=at)] == [at + timedelta(days=d) for d in (7, 8, 9)]
        assert [p.at for p in log.probes(since=at, until=at + timedelta(days=8))] == [
            at + timedelta(days=7), at + timedelta(days=8)]
    finally:
        store.close()


# --------------------------------------------------------------------------- 3. completion time


def test_a_phase_completes_at_its_latest_needed_events_own_timestamp() -> None:
    cfg = config("""
slos:
  - name: load-by-0105
    pipeline: p
    sli: {kind: deadline, phase: load, by: {time: "01:05"}}
    objective: 0.9
""")
    day = date(2026, 1, 5)
    # y (needed: the phase expects both) finished at 01:10 and was sent first; x finished at
    # 01:00 and was sent second. The phase completed at 01:10: after its 01:05 deadline.
    events = [event("load", "succeeded", local("2026-01-05T01:10"), "y", run_date=day),
              event("load", "succeeded", local("2026-01-05T01:00"), "x", run_date=day)]
    tracker = RunTracker(cfg)
    updates = [tracker.apply(e) for e in events]
    assert updates[-1].phase_completed
    assert updates[-1].phase.completed_at == local("2026-01-05T01:10")
    engine = SLOEngine(cfg)
    for u in updates:
        engine.on_update(u)
    now = local("2026-01-05T12:00")
    (status,) = engine.evaluate(now)
    assert (status.good, status.total) == (0, 1)


def test_with_a_required_count_the_phase_completes_when_enough_were_done() -> None:
    cfg = config("")
    text = """
version: 1
pipelines:
  - id: p
    timezone: America/New_York
    phases:
      - id: load
        processors: [{name: a}, {name: b, priority: optional}, {name: c, priority: optional}]
        modes:
          same_day: {expected: [a, b, c], required_count: 2}
"""
    from monitor.config import parse_config

    cfg = parse_config(text, "<test>")
    day = date(2026, 1, 5)
    tracker = RunTracker(cfg)
    # c at 03:00 arrives first, then a (critical) at 01:00: a and c make two; complete at 03:00.
    tracker.apply(event("load", "succeeded", local("2026-01-05T03:00"), "c", run_date=day))
    update = tracker.apply(event("load", "succeeded", local("2026-01-05T01:00"), "a", run_date=day))
    assert update.phase_completed and update.phase.completed_at == local("2026-01-05T03:00")


# --------------------------------------------------------------------------- 4. when counting starts


DEADLINE_AT_8 = """
slos:
  - name: publish-by-8
    pipeline: p
    sli:
      kind: deadline
      phase: publish
      by: {time: "08:00"}
    objective: 0.9
    window: {kind: rolling, days: 28}
"""


def _live_and_rebuilt(slos: str, first_event_day: date) -> tuple[tuple[int, int], tuple[int, int]]:
    """The live engine (evaluating every hour from 2026-01-01, before the pipeline reports) and
    a rebuild from the same events (what `slo report` does), both at 2026-01-20 12:00."""
    cfg = config(slos)
    events = daily_publishes(first_event_day, (date(2026, 1, 20) - first_event_day).days + 1)
    live = SLOEngine(cfg)
    tracker = RunTracker(cfg, retention_days=100)
    pending = sorted(events, key=lambda e: e.timestamp)
    now, end = local("2026-01-01T00:00"), local("2026-01-20T12:00")
    while now <= end:
        while pending and pending[0].timestamp <= now:
            live.on_update(tracker.apply(pending.pop(0)))
        live.evaluate(now)
        now += timedelta(hours=1)
    (a,) = live.evaluate(end)
    rebuilt = SLOEngine(cfg)
    feed(cfg, rebuilt, events)
    (b,) = rebuilt.evaluate(end)
    return (a.good, a.total), (b.good, b.total)


def test_live_engine_and_report_start_counting_at_the_pipelines_first_event() -> None:
    live, report = _live_and_rebuilt(DEADLINE_AT_8, date(2026, 1, 11))
    assert live == report == (10, 10)  # Jan 11..20: nothing blamed before the first event


def test_due_start_counts_every_due_run_date_from_it_in_both() -> None:
    slos = DEADLINE_AT_8.replace('by: {time: "08:00"}', 'by: {time: "08:00"}\n      due: {start: 2026-01-06}')
    live, report = _live_and_rebuilt(slos, date(2026, 1, 11))
    assert live == report == (10, 15)  # Jan 6..10 were due and never ran: bad


# --------------------------------------------------------------------------- 5. local days


NIGHTLY = """
slos:
  - name: publish-by-0030
    pipeline: p
    sli:
      kind: deadline
      phase: publish
      by: {day_offset: 1, time: "00:30"}
    objective: 0.9
    window: {kind: rolling, days: 28}
"""


def test_a_rolling_window_holds_28_daily_runs_right_after_the_march_change() -> None:
    cfg = config(NIGHTLY)
    engine = SLOEngine(cfg)
    feed(cfg, engine, daily_publishes(date(2026, 1, 20), 60))
    # 00:45 EDT on March 9: 28 x 24 h back is 23:45 EST on February 8, which would take in
    # the run whose deadline was 00:30 on February 9 as a 29th.
    (status,) = engine.evaluate(local("2026-03-09T00:45"))
    assert status.total == 28
    assert status.window_start == local("2026-02-09T00:46").astimezone(UTC)


def test_a_rolling_window_holds_28_daily_runs_right_after_the_november_change() -> None:
    cfg = config(NIGHTLY.replace('"00:30"', '"01:00"'))
    engine = SLOEngine(cfg)
    feed(cfg, engine, daily_publishes(date(2026, 9, 20), 50))
    # 00:45 EST on November 2: 28 x 24 h back is 01:45 EDT on October 5, which would leave
    # out the run whose deadline was 01:00 that night: 27 runs.
    (status,) = engine.evaluate(local("2026-11-02T00:45"))
    assert status.total == 28
