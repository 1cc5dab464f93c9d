"""``phasewatch slo sql``: each SLO's SLI as GoogleSQL over the mirror, checked for meaning.

The statements are transpiled by sqlglot to DuckDB and run over DuckDB tables made from the
mirror's own DDL, holding the rows the mirror's encoders write for the same random histories
the in-process engine is fed (the ``slo report`` path: a run tracker, then ``SLOEngine``).
Good and total must agree for the window and for every day of it, for every SLI kind.
"""

from __future__ import annotations

import functools
import random
from collections.abc import Sequence
from datetime import UTC, date, datetime, timedelta
from datetime import time as TimeOfDay
from typing import Any

import duckdb
import pytest
from click.testing import CliRunner
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from monitor.app.cli.main import main
from monitor.checks.result import CheckResult
from monitor.config import Config, load_config
from monitor.events import Event
from monitor.telemetry.mirror_tables import ProbeRecord, check_row, event_row, probe_row
from monitor.tracker import RunTracker
from slo.evaluator import SLOEngine, SLOStatus
from slo.sli.base import CheckReading, HealthProbe
from slo.spec import WEEKDAYS, CalendarWindow, CheckSLI, DeadlineSLI, RollingWindow, SLOSpec
from slo.sql import Tables, run_state_sql, slo_sql
from slo.windows import at_minute, window_bounds
from tests.bigquery_support import duckdb_tables, run_query
from tests.test_slo_properties import MODES, PHASES, TZ, base_config, histories, slo_specs

T_RECEIVED = datetime(2030, 1, 1, tzinfo=UTC)  # arrival stamps: only their order matters


def engine_status(config: Config, events: list[Event], probes: list[HealthProbe],
                  now: datetime, checks: Sequence[CheckResult] = ()) -> SLOStatus:
    """What ``slo report`` computes (a tracker that keeps every run: no eviction)."""
    engine = SLOEngine(config)
    tracker = RunTracker(config, retention_days=400)
    engine.rebuild((tracker.apply(e) for e in events), probes)
    for c in checks:  # as Phasewatch.observe_check, in the order they were recorded
        engine.observe_check(CheckReading(c.name, c.value, c.at, c.run_date, c.pipeline))
    [status] = engine.evaluate(now, daily=True)
    return status


def sql_counts(config: Config, spec: SLOSpec, events: list[Event], probes: list[HealthProbe],
               now: datetime, copies: list[int],
               checks: Sequence[CheckResult] = ()) -> dict[str, tuple[int, int]]:
    """Per day (ISO) the SQL's good and total, over the rows the mirror would hold."""
    con, ids = _mirror_db()
    for table in ("events", "probes", "checks"):
        con.execute(f'DELETE FROM "test-project"."d"."{table}"')
    rows = [event_row((e, T_RECEIVED + timedelta(microseconds=i))) for i, e in enumerate(events)]
    # Copies a retry after BigQuery's de-duplication window would leave, stored later.
    rows += [event_row((events[i], T_RECEIVED + timedelta(seconds=1, microseconds=n)))
             for n, i in enumerate(copies) if i < len(events)]
    _insert(con, ids["events"], [r for _, r in rows])
    probe_rows = [probe_row(ProbeRecord(p.service, p.status, p.time, T_RECEIVED + timedelta(microseconds=i)))
                  for i, p in enumerate(probes)]
    _insert(con, ids["probes"], [r for _, r in probe_rows])
    check_rows = [check_row((c, T_RECEIVED + timedelta(microseconds=i))) for i, c in enumerate(checks)]
    _insert(con, ids["checks"], [r for _, r in check_rows])
    statement = slo_sql(config, spec, Tables(ids["events"], ids["probes"], ids["checks"]))
    assert "not expressible" not in statement
    bounds = window_bounds(now, spec.window, TZ)
    params = {"start": at_minute(bounds.start), "end": at_minute(bounds.end)}
    result = run_query(con, statement, params).fetchall()
    return {day.isoformat(): (int(good), int(total)) for _, day, good, total in result}


@functools.cache
def _mirror_db() -> tuple[duckdb.DuckDBPyConnection, dict[str, str]]:
    """One DuckDB with the mirror's tables for the module (made once: the DDL's transpile is slow)."""
    con = duckdb.connect()
    return con, duckdb_tables(con)


def _insert(con: duckdb.DuckDBPyConnection, table_id: str, rows: list[dict[str, Any]]) -> None:
    from tests.bigquery_support import insert_rows

    insert_rows(con, table_id, rows)


@st.composite
def mirrored_histories(draw: st.DrawFn) -> tuple[list[Event], list[HealthProbe], datetime, list[int]]:
    """A history with sub-second times on some events (ties within a second), an early event
    (the deadline count starts at the first event in both), and copies of some rows."""
    base, events, probes, now = draw(histories())
    events = [
        e.model_copy(update={"timestamp": e.timestamp + timedelta(microseconds=draw(
            st.sampled_from((0, 0, 1, 499_999, 999_999))))})
        for e in events
    ]
    first = Event(event_id="first", pipeline="p", run_date=base, mode="overnight", phase="c",
                  status="progress", timestamp=datetime.combine(base, datetime.min.time(), TZ))
    copies = draw(st.lists(st.integers(0, 200), max_size=8))
    return [first, *events], probes, now, copies


@st.composite
def dense_histories(draw: st.DrawFn) -> tuple[list[Event], list[HealthProbe], datetime, list[int]]:
    """Few runs and few instants, drawn from a seeded generator (uniform, not shrunk towards
    the simplest): events of one processor at the same time (ties broken by arrival),
    progress after a finish, late arrivals, probes repeated within a second."""
    rng = random.Random(draw(st.integers(0, 2**32 - 1)))
    today = date(2026, 3, 1) + timedelta(days=rng.randrange(265))
    now = datetime.combine(today, TimeOfDay(23, 0), TZ).astimezone(UTC) + timedelta(days=1)
    instants = [datetime.combine(today - timedelta(days=d), TimeOfDay(h), TZ)
                for d in (0, 1) for h in (6, 9)]
    events = [Event(event_id="first", pipeline="p", run_date=today - timedelta(days=9), mode="overnight",
                    phase="c", status="progress", timestamp=instants[-1] - timedelta(days=7))]
    for i in range(rng.randrange(20, 120)):
        phase = rng.choice(sorted(PHASES))
        at = rng.choice(instants) + timedelta(seconds=rng.choice((0, 0, 30)),
                                              microseconds=rng.choice((0, 0, 500_000)))
        fields: dict[str, Any] = {}
        if rng.random() < 0.5:
            fields["duration_s"] = float(rng.choice((0, 60, 3600)))
        if rng.random() < 0.5:
            fields["data_as_of"] = at - timedelta(hours=rng.choice((0, 1, 6)))
        if rng.random() < 0.5:
            fields["records"], fields["expected_records"] = rng.choice(((4, 5), (1, 2), (0, 0)))
        events.append(Event(
            event_id=f"d{i}", pipeline="p", run_date=today - timedelta(days=rng.randrange(2)),
            mode=rng.choice(MODES[:2]), phase=phase, processor=rng.choice((None, *PHASES[phase])),
            status=rng.choice(("started", "progress", "succeeded", "succeeded", "failed", "skipped")),
            timestamp=at.astimezone(UTC), **fields,
        ))
    probes = [HealthProbe("svc", rng.choice(instants) + timedelta(seconds=rng.choice((0, 0.5))),
                          rng.choice(("pass", "warn", "fail")))
              for _ in range(rng.randrange(10))]
    copies = [rng.randrange(len(events)) for _ in range(rng.randrange(5))]
    return events, probes, now, copies


def check_results(seed: int, now: datetime) -> list[CheckResult]:
    """Results of check ``q`` (and another) over the days before ``now``, as a store keeps
    them (one per name and time): some for a run date, some for another pipeline, some in
    one second."""
    rng = random.Random(seed)
    out: dict[tuple[str, datetime], CheckResult] = {}
    for _ in range(rng.randrange(25)):
        at = now - timedelta(days=rng.randrange(12), hours=rng.choice((1, 5)),
                             microseconds=rng.choice((0, 300_000, 700_000)))
        name = rng.choice(("q", "q", "other"))
        out.setdefault((name, at), CheckResult(
            name, rng.choice((0.5, 0.8, 1.0)), at,
            run_date=rng.choice((None, at.astimezone(TZ).date() - timedelta(days=1))),
            pipeline=rng.choice((None, None, "p", "elsewhere")),
        ))
    return list(out.values())


@st.composite
def specs(draw: st.DrawFn) -> SLOSpec:
    """The engine tests' SLOs (and check SLOs), their windows widened at times to cover the
    whole history."""
    spec: SLOSpec = draw(slo_specs())
    if draw(st.integers(0, 6)) == 6:
        spec = spec.model_copy(update={"sli": CheckSLI(
            kind="check", check="q", min=draw(st.sampled_from((0.8, None))),
            max=draw(st.sampled_from((0.9, 1.0))))})
    window = draw(st.sampled_from((RollingWindow(kind="rolling", days=16),
                                   CalendarWindow(kind="calendar", unit="month"), None)))
    return spec if window is None else spec.model_copy(update={"window": window})


@settings(max_examples=100, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(history=st.one_of(mirrored_histories(), dense_histories()), spec=specs(),
       checks_seed=st.integers(0, 2**32 - 1))
def test_sql_slis_count_what_the_engine_counts(
    history: tuple[list[Event], list[HealthProbe], datetime, list[int]], spec: SLOSpec,
    checks_seed: int,
) -> None:
    status, by_day = engine_and_sql(history, spec, checks_seed)
    assert (sum(g for g, _ in by_day.values()), sum(t for _, t in by_day.values())) == (
        status.good, status.total)


def engine_and_sql(history: tuple[list[Event], list[HealthProbe], datetime, list[int]],
                   spec: SLOSpec, checks_seed: int) -> tuple[SLOStatus, dict[str, tuple[int, int]]]:
    """The engine's status of ``spec`` over ``history`` and the SQL's good and total per day,
    asserted equal day by day."""
    events, probes, now, copies = history
    checks = check_results(checks_seed, now)
    config = base_config().model_copy(update={"slos": (spec,)})
    status = engine_status(config, events, probes, now, checks)
    by_day = sql_counts(config, spec, events, probes, now, copies, checks)
    expected = {d.day.isoformat(): (d.good, d.total) for d in status.days or () if d.total}
    assert by_day == expected
    return status, by_day


@st.composite
def expected_when_specs(draw: st.DrawFn) -> SLOSpec:
    """Deadline SLOs whose due run dates are the seen ones and those the checks ``q`` and
    ``other`` (``check_results``) say had work."""
    modes = draw(st.sampled_from((None, ["overnight", "same_day"], ["tomorrow"])))
    return SLOSpec.model_validate({
        "name": "s", "pipeline": "p", "objective": 0.9,
        "window": draw(st.sampled_from(({"kind": "rolling", "days": 16},
                                        {"kind": "calendar", "unit": "month"}))),
        "sli": {
            "kind": "deadline", "phase": draw(st.sampled_from((None, "a", "c"))), "modes": modes,
            "by": {"day_offset": draw(st.integers(-1, 1)),
                   "time": f"{draw(st.integers(0, 23)):02d}:{draw(st.sampled_from((0, 30))):02d}"},
            "due": {
                "only_seen": True, "seen_phases": draw(st.sampled_from(([], ["a"]))),
                "days": draw(st.sampled_from((list(WEEKDAYS), ["mon", "wed", "sat"]))),
                "expected_when": draw(st.sampled_from((
                    {"q": "> 0.6"}, {"q": "<= 0.5"}, {"q": "== 0.8"},
                    {"q": ">= 0.8", "other": "!= 1"}, {"other": "< 1"}))),
            },
        },
    })


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(history=st.one_of(mirrored_histories(), dense_histories()), spec=expected_when_specs(),
       checks_seed=st.integers(0, 2**32 - 1))
def test_sql_due_expected_when_counts_what_the_engine_counts(
    history: tuple[list[Event], list[HealthProbe], datetime, list[int]], spec: SLOSpec,
    checks_seed: int,
) -> None:
    """The run dates the checks say had work are due in the SQL as in the engine: each check's
    latest result for the run date (by second, then the later recorded), of the pipeline or
    of none, meets its condition."""
    engine_and_sql(history, spec, checks_seed)


def test_a_run_date_only_the_check_expects_is_a_bad_unit_in_sql_as_in_the_engine() -> None:
    """No event of the run date at all; its latest result says work was expected (a result of
    another pipeline and an older one that would say otherwise do not count)."""
    spec = SLOSpec.model_validate({
        "name": "s", "pipeline": "p", "objective": 0.9, "window": {"kind": "rolling", "days": 5},
        "sli": {"kind": "deadline", "phase": "c", "by": {"time": "10:00"},
                "due": {"only_seen": True, "expected_when": {"q": "> 0"}}},
    })
    config = base_config().model_copy(update={"slos": (spec,)})
    first = Event(event_id="first", pipeline="p", run_date=date(2026, 5, 2), mode="overnight",
                  phase="c", status="progress", timestamp=datetime(2026, 5, 3, 12, tzinfo=UTC))
    checks = [CheckResult("q", 0, datetime(2026, 5, 4, 11, tzinfo=UTC)),
              CheckResult("q", 9, datetime(2026, 5, 4, 12, tzinfo=UTC)),
              CheckResult("q", 0, datetime(2026, 5, 4, 13, tzinfo=UTC), pipeline="elsewhere"),
              CheckResult("q", 0, datetime(2026, 5, 5, 12, tzinfo=UTC)),
              CheckResult("q", 3, datetime(2026, 5, 5, 11, tzinfo=UTC))]  # older, recorded later
    now = datetime(2026, 5, 6, 18, tzinfo=UTC)
    status = engine_status(config, [first], [], now, checks)

    days = sql_counts(config, spec, [first], [], now, [], checks)

    assert (status.good, status.total) == (0, 1)
    assert days == {"2026-05-04": (0, 1)}


def test_a_start_delivered_after_its_finish_times_the_next_finish_in_sql_as_in_the_engine() -> None:
    """A backlog out of order: the finish at 04:38, then the run's start (04:01), a finish
    (04:08) and a start (04:37), as they arrived. The tracker holds 04:01 as the start
    (d10753e: a start delivered after its processor's finish still started the run), so the
    04:08 finish took 7 min: a bad unit of a 1 s duration SLO. Found by the property test
    above: the SQL took only accepted starts and counted nothing."""
    spec = SLOSpec.model_validate({
        "name": "s", "pipeline": "p", "objective": 0.5, "window": {"kind": "rolling", "days": 16},
        "sli": {"kind": "duration", "phase": "a", "processors": ["x"], "max_s": 1.0},
    })
    config = base_config().model_copy(update={"slos": (spec,)})
    arrived = [("succeeded", 38), ("started", 1), ("succeeded", 8), ("started", 37)]
    events = [Event(event_id=f"e{i}", pipeline="p", run_date=date(2026, 5, 16), mode="overnight",
                    phase="a", processor="x", status=status,  # type: ignore[arg-type]
                    timestamp=datetime(2026, 5, 16, 4, minute, tzinfo=UTC))
              for i, (status, minute) in enumerate(arrived)]
    now = datetime(2026, 5, 18, 12, tzinfo=UTC)
    status = engine_status(config, events, [], now, [])

    days = sql_counts(config, spec, events, [], now, [], [])

    assert (status.good, status.total) == (0, 1)
    assert days == {"2026-05-16": (0, 1)}


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(history=st.one_of(dense_histories(), mirrored_histories()))
def test_sql_run_state_is_the_trackers_after_every_event(
    history: tuple[list[Event], list[HealthProbe], datetime, list[int]],
) -> None:
    events, _, _, copies = history
    config = base_config()
    tracker = RunTracker(config, retention_days=400)
    expected = {}
    for event in events:
        update = tracker.apply(event)
        proc = update.phase.processors.get(event.processor) if event.processor else None
        expected[event.event_id] = (
            proc.status if proc else None, update.phase.is_complete(), update.phase.is_failed(),
            update.phase.completed_at, update.phase.failed_at,
        )
    con, ids = _mirror_db()
    con.execute('DELETE FROM "test-project"."d"."events"')
    rows = [event_row((e, T_RECEIVED + timedelta(microseconds=i))) for i, e in enumerate(events)]
    rows += [event_row((events[i], T_RECEIVED + timedelta(seconds=1, microseconds=n)))
             for n, i in enumerate(copies) if i < len(events)]
    _insert(con, ids["events"], [r for _, r in rows])

    found = run_query(con, run_state_sql(config, "p", Tables(ids["events"], ids["probes"], ids["checks"]))).fetchall()

    running = {"started": "running", "progress": "running"}
    got = {event_id: (running.get(status, status), complete, failed, completed_at, failed_at)
           for event_id, _, _, _, status, complete, failed, completed_at, failed_at in found}
    assert got == expected


def test_a_phase_level_skip_completes_the_phase_in_sql_as_in_the_tracker() -> None:
    """Issue 13: a phase-level ``skipped`` closes the phase (its processors never report),
    at the skip's own time; the SQL run state says so as the tracker does."""
    config = base_config()
    t0 = datetime(2026, 5, 7, 14, 0, tzinfo=UTC)
    events = [Event(event_id=f"s{i}", pipeline="p", run_date=date(2026, 5, 7), mode="same_day",
                    phase="a", processor=None, status=status, timestamp=t0 + timedelta(minutes=i))
              for i, status in enumerate(("started", "skipped"))]
    tracker = RunTracker(config, retention_days=400)
    for event in events:
        tracker.apply(event)
    phase = tracker.runs()[0].phases["a"]
    assert phase.is_complete() and phase.completed_at == events[1].timestamp
    con, ids = _mirror_db()
    con.execute('DELETE FROM "test-project"."d"."events"')
    _insert(con, ids["events"], [event_row((e, T_RECEIVED + timedelta(microseconds=i)))[1]
                                 for i, e in enumerate(events)])
    found = run_query(con, run_state_sql(config, "p", Tables(ids["events"], ids["probes"],
                                                             ids["checks"]))).fetchall()
    last = {row[0]: row for row in found}["s1"]
    assert (last[5], last[6], last[7]) == (True, False, events[1].timestamp)


def test_the_bundled_slos_agree_on_a_replayed_day() -> None:
    """Every SLO of the bundled example, on events as the example pipeline reports them."""
    config = load_config()
    rng = random.Random(7)
    t0 = datetime(2026, 1, 17, 23, 0, tzinfo=UTC)
    events: list[Event] = []
    n = 0
    for day in range(6):
        run_date = (t0 + timedelta(days=day)).date()
        for pipeline_phase in config.pipeline_map["nba"].phases:
            for proc in pipeline_phase.processors:
                for status in ("started", rng.choice(("succeeded", "succeeded", "failed"))):
                    n += 1
                    at = t0 + timedelta(days=day, minutes=n % 600, seconds=rng.randint(0, 59))
                    extra: dict[str, Any] = {}
                    if status == "succeeded":
                        extra = {"records": rng.randint(100, 480), "expected_records": 480,
                                 "data_as_of": at - timedelta(hours=rng.randint(0, 9))}
                    events.append(Event(
                        event_id=f"n{n}", pipeline="nba", run_date=run_date,
                        mode=rng.choice(("overnight", "same_day", "tomorrow")),
                        phase=pipeline_phase.id, processor=proc.name, status=status,
                        timestamp=at, **extra))
    probes = [HealthProbe("prediction-worker", t0 + timedelta(minutes=17 * i), rng.choice(("pass", "fail")))
              for i in range(300)]
    now = t0 + timedelta(days=7, seconds=30)
    names = {s.sli.check for s in config.slos if isinstance(s.sli, CheckSLI)}
    checks = [CheckResult(name, rng.choice((0.5, 0.85, 0.95)) * 100 ** (name.endswith("_pct")),
                          t0 + timedelta(days=day, hours=10), pipeline=rng.choice((None, "nba")))
              for name in sorted(names) for day in range(6)]
    # The checks that say a run date had work (due.expected_when), also on a day without events.
    expecting = {n for s in config.slos if isinstance(s.sli, DeadlineSLI) for n in s.sli.due.expected_when}
    assert expecting
    checks += [CheckResult(name, 9 if day == 6 else rng.choice((0, 9)),
                           t0 + timedelta(days=day, hours=12))
               for name in sorted(expecting) for day in range(7)]  # day 6: no event at all
    for spec in config.slos:
        single = config.model_copy(update={"slos": (spec,)})
        status = engine_status(single, events, probes, now, checks)
        days = sql_counts(single, spec, events, probes, now, [], checks)
        assert (sum(g for g, _ in days.values()), sum(t for _, t in days.values())) == (
            status.good, status.total), spec.name
        assert status.total > 0, spec.name  # the example exercises every SLO


def test_slo_sql_prints_every_slo_and_takes_one_by_name() -> None:
    result = CliRunner().invoke(main, ["slo", "sql", "--dialect", "bigquery"])
    assert result.exit_code == 0, result.output
    config = load_config()
    assert result.output.count("-- SLO ") == len(config.slos)
    assert "`phasewatch.events`" in result.output and "not expressible" not in result.output

    one = CliRunner().invoke(main, ["slo", "sql", "--dialect", "bigquery", "--slo",
                                    "nba-feature-freshness", "--project", "nba-props-platform"])
    assert one.exit_code == 0, one.output
    assert one.output.count("-- SLO ") == 1 and "`nba-props-platform.phasewatch.events`" in one.output

    unknown = CliRunner().invoke(main, ["slo", "sql", "--dialect", "bigquery", "--slo", "nope"])
    assert unknown.exit_code == 2
    assert unknown.output.startswith("error: --slo 'nope': no such SLO; allowed: nba-predictions-by-10am,")
    dialect = CliRunner().invoke(main, ["slo", "sql", "--dialect", "postgres"])
    assert dialect.exit_code == 2 and "bigquery" in dialect.output


def test_a_kind_without_sql_gets_a_comment_not_a_statement() -> None:
    config = load_config()
    spec = config.slos[0]
    text = slo_sql(config, spec, Tables("p.d.events", "p.d.probes", "p.d.checks"),
                   builders={})
    assert "-- not expressible in SQL over the mirror: the SLI kind 'deadline' has no SQL form" in text
    assert "SELECT" not in text


@pytest.mark.parametrize(("day", "wall", "done_utc", "good"), [
    # 01:30 happens twice on 2026-11-01 in New York: the first (05:30 UTC, EDT) counts.
    (date(2026, 11, 1), "01:30", datetime(2026, 11, 1, 6, 0, tzinfo=UTC), 0),
    (date(2026, 11, 1), "01:30", datetime(2026, 11, 1, 5, 29, tzinfo=UTC), 1),
    # 02:30 never happens on 2026-03-08: read with the offset before the change (07:30 UTC).
    (date(2026, 3, 8), "02:30", datetime(2026, 3, 8, 7, 15, tzinfo=UTC), 1),
    (date(2026, 3, 8), "02:30", datetime(2026, 3, 8, 7, 31, tzinfo=UTC), 0),
])
def test_deadlines_the_clock_skips_or_repeats_are_read_as_the_engine_reads_them(
    day: date, wall: str, done_utc: datetime, good: int,
) -> None:
    spec = SLOSpec.model_validate({
        "name": "s", "pipeline": "p", "objective": 0.9, "window": {"kind": "rolling", "days": 10},
        "sli": {"kind": "deadline", "phase": "b", "by": {"time": wall},
                "due": {"start": day.isoformat(), "end": day.isoformat()}},
    })
    config = base_config().model_copy(update={"slos": (spec,)})
    events = [
        Event(event_id=f"{day}-{status}", pipeline="p", run_date=day, mode="same_day", phase="b",
              processor="z", status=status, timestamp=at)
        for status, at in (("started", done_utc - timedelta(hours=3)), ("succeeded", done_utc))
    ]
    now = done_utc + timedelta(days=2)
    status = engine_status(config, events, [], now)

    days = sql_counts(config, spec, events, [], now, [])

    assert (status.good, status.total) == (good, 1)
    assert days == {day.isoformat(): (good, 1)}


@pytest.mark.parametrize("statuses", [("failed", "succeeded"), ("succeeded", "failed")])
def test_a_run_keeps_the_later_arrival_of_two_verdicts_in_one_second(statuses: tuple[str, str]) -> None:
    spec = SLOSpec.model_validate({
        "name": "s", "pipeline": "p", "objective": 0.9, "window": {"kind": "rolling", "days": 3},
        "sli": {"kind": "success_ratio", "phase": "a", "processors": ["x"]},
    })
    config = base_config().model_copy(update={"slos": (spec,)})
    second = datetime(2026, 5, 4, 10, 0, 0, tzinfo=UTC)
    # The later arrival has the earlier time within the second: the second decides, then arrival.
    events = [
        Event(event_id=f"v{i}", pipeline="p", run_date=date(2026, 5, 4), mode="same_day", phase="a",
              processor="x", status=status, timestamp=second + timedelta(microseconds=700_000 - 500_000 * i))
        for i, status in enumerate(statuses)
    ]
    now = second + timedelta(hours=1)
    status = engine_status(config, events, [], now)

    days = sql_counts(config, spec, events, [], now, [])

    good = int(statuses[1] == "succeeded")
    assert (status.good, status.total) == (good, 1)
    assert days == {"2026-05-04": (good, 1)}


def test_a_check_run_date_keeps_the_later_recorded_of_two_results_in_one_second() -> None:
    spec = SLOSpec.model_validate({
        "name": "s", "pipeline": "p", "objective": 0.9, "window": {"kind": "rolling", "days": 3},
        "sli": {"kind": "check", "check": "q", "min": 0.8},
    })
    config = base_config().model_copy(update={"slos": (spec,)})
    second = datetime(2026, 5, 4, 10, 0, 0, tzinfo=UTC)
    checks = [CheckResult("q", 0.9, second + timedelta(microseconds=700_000)),
              CheckResult("q", 0.5, second + timedelta(microseconds=200_000))]  # recorded later
    now = second + timedelta(hours=1)
    status = engine_status(config, [], [], now, checks)

    days = sql_counts(config, spec, [], [], now, [], checks)

    assert (status.good, status.total) == (0, 1)
    assert days == {"2026-05-04": (0, 1)}


def test_a_backfill_run_counts_for_freshness_in_neither_the_engine_nor_the_sql() -> None:
    """A freshness SLO without ``modes`` counts every mode but backfill (a backfill's data is as
    old as its date on purpose): the SQL leaves it out as the engine does."""
    spec = SLOSpec.model_validate({
        "name": "s", "pipeline": "p", "objective": 0.9, "window": {"kind": "rolling", "days": 5},
        "sli": {"kind": "freshness", "phase": "b", "max_age_h": 6},
    })
    config = base_config().model_copy(update={"slos": (spec,)})
    day, at = date(2026, 5, 4), datetime(2026, 5, 4, 9, tzinfo=UTC)
    events = [
        Event(event_id=f"{mode}", pipeline="p", run_date=day - timedelta(days=offset), mode=mode,
              phase="b", status="succeeded", timestamp=at + timedelta(minutes=offset),
              data_as_of=at - timedelta(days=offset, hours=1))
        for mode, offset in (("same_day", 0), ("backfill", 3))
    ]
    now = at + timedelta(days=1)
    status = engine_status(config, events, [], now)

    days = sql_counts(config, spec, events, [], now, [])

    assert (status.good, status.total) == (1, 1)
    assert days == {day.isoformat(): (1, 1)}
