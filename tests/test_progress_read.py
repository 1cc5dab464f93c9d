"""``progress="first"``: the window read ``phasewatch slo report`` uses, without the progress
events that repeat the one stored just before them (issue 18). Every SLO comes out the same
as from the whole window: every SLI kind, on random stores of heartbeats arriving out of
order, redelivered, in batches, at processor and phase level, for several modes and run
dates, with and without ``--at``; on SQLite and PostgreSQL; and the command's output byte
for byte."""

from __future__ import annotations

import itertools
import json
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from datetime import time as TimeOfDay
from typing import Any

import pytest
from click.testing import CliRunner
from hypothesis import HealthCheck, event, given, settings
from hypothesis import strategies as st

import monitor.app.cli.slo as slo_cli
from monitor.app.cli.main import main
from monitor.config import Config, load_config
from monitor.events import Event
from monitor.store.base import EventStore
from monitor.store.registry import open_store
from monitor.store.sqlite import SQLiteStore
from monitor.store.window import window_events, window_start
from monitor.tracker import RunTracker
from slo.evaluator import SLOEngine
from slo.spec import SLOSpec
from tests.test_slo_properties import TZ, base_config, slo_specs

MODES = ("overnight", "same_day", "tomorrow")
FINISHES = ("succeeded", "failed", "skipped")
_ids = itertools.count()


@dataclass
class Store:
    """Append batches in arrival order (a redelivery repeats an event id), and the time the
    report is made at: ``at`` (``--at``), else ``now``."""

    batches: list[list[Event]]
    now: datetime
    at: datetime | None


def _work(draw: st.DrawFn, config: Config, today: date) -> list[Event]:
    """One processor's (or a phase's own) events in one run, in the order they happened:
    mostly heartbeats, a start and a finish (or a few, a retry) among them, times that
    step back now and then, batches' done / total."""
    pipeline = config.pipelines[0]
    phase = draw(st.sampled_from(pipeline.phases))
    names = [p.name for p in phase.processors]
    processor = draw(st.sampled_from([None, *names])) if names else None
    # Few run dates: pieces of work share runs, phases and processors, interleaved.
    run_date = today - timedelta(days=draw(st.sampled_from((-1, 0, 0, 1, 2, 7, 15))))
    mode = draw(st.sampled_from(MODES))
    batch = draw(st.sampled_from((None, None, "b1", "b2")))
    at = datetime.combine(run_date, TimeOfDay(0), tzinfo=TZ) + timedelta(
        minutes=draw(st.integers(-12 * 60, 36 * 60)))
    statuses = draw(st.lists(
        st.sampled_from(("progress",) * 6 + ("started",) + FINISHES), min_size=1, max_size=30))
    events = []
    for status in statuses:
        at += timedelta(seconds=draw(st.one_of(st.integers(-600, 1800),
                                               st.integers(-8 * 3600, 3600))))
        fields: dict[str, Any] = {}
        if batch is not None:
            fields["batch_id"] = batch
            if status == "progress" and draw(st.booleans()):
                total = draw(st.integers(1, 50))
                fields |= {"total": total, "done": draw(st.integers(0, total))}
        if status in FINISHES:
            if draw(st.booleans()):
                fields["duration_s"] = float(draw(st.integers(0, 7200)))
            if draw(st.booleans()):
                fields |= {"records": draw(st.integers(0, 100)),
                           "expected_records": draw(st.integers(0, 100))}
            if draw(st.booleans()):
                fields["data_as_of"] = (at - timedelta(hours=draw(st.integers(0, 12)))).astimezone(UTC)
        events.append(Event(
            event_id=f"e{next(_ids)}", pipeline=pipeline.id, run_date=run_date, mode=mode,
            phase=phase.id, processor=processor, status=status, timestamp=at.astimezone(UTC),
            **fields,
        ))
    return events


@st.composite
def stores(draw: st.DrawFn, config: Config) -> Store:
    base = draw(st.dates(date(2026, 2, 20), date(2026, 10, 25)))
    now = datetime.combine(base, TimeOfDay(0), tzinfo=UTC) + timedelta(
        minutes=draw(st.integers(20 * 1440, 40 * 1440)), seconds=draw(st.integers(0, 59)))
    today = now.astimezone(TZ).date()
    pieces = [_work(draw, config, today) for _ in range(draw(st.integers(0, 10)))]
    # Arrival: each piece in order, the pieces interleaved (several processors report at once);
    # now and then an event a little late, or redelivered later.
    arrival: list[Event] = []
    queues = [list(p) for p in pieces]
    while any(queues):
        queue = draw(st.sampled_from([q for q in queues if q]))
        taken = queue.pop(0)
        if queue and draw(st.integers(0, 9)) == 0:  # the next one overtakes it
            taken, queue[0] = queue[0], taken
        arrival.append(taken)
        if draw(st.integers(0, 14)) == 0:
            queue.insert(draw(st.integers(0, len(queue))), taken)  # a redelivery
    batches, rest = [], arrival
    while rest:
        size = draw(st.integers(1, 40))
        batches.append(rest[:size])
        rest = rest[size:]
    times = sorted(e.timestamp for e in arrival)
    at = draw(st.one_of(st.none(), st.sampled_from(times))) if times else None
    if at is not None and draw(st.booleans()):
        at += timedelta(microseconds=draw(st.sampled_from((-1, 1))))
    return Store(batches, now, at)


def _fill(store: EventStore, history: Store) -> None:
    for batch in history.batches:
        store.append(batch, max(e.timestamp for e in batch))


# What a repeated heartbeat changes, and no SLI reads.
UNREAD = {"last_event_at", "seen_at", "last_heartbeat", "batches", "judged"}


def _state(obj: Any, unread: frozenset[str] | set[str] = UNREAD) -> Any:
    """The tracker's runs as plain data, without the fields in ``unread`` (by default what
    no SLI reads)."""
    if isinstance(obj, dict):
        return {k: _state(v, unread) for k, v in obj.items()}
    if hasattr(obj, "__dataclass_fields__"):
        return {k: _state(getattr(obj, k), unread) for k in obj.__dataclass_fields__
                if k not in unread}
    return obj


def _slos(config: Config, events: Iterator[Event], now: datetime,
          specs: list[SLOSpec] | None = None) -> tuple[list[Any], list[Any], Any]:
    """What ``slo report`` computes from these events: the statuses, every ledger's units
    and SLI's state (a deadline's first event, run dates seen, completions); and the
    tracker's state, but for what no SLI reads."""
    engine = SLOEngine(config, specs)
    tracker = RunTracker(config, retention_days=engine.history_days)
    for e in events:
        engine.on_update(tracker.apply(e))
    statuses = [s.as_dict() for s in engine.evaluate(now)]
    units = [(t.ledger.units(-(2**40), 2**40), vars(t.sli)) for t in engine._slos]
    return statuses, units, _state(tracker._runs)


def _compare(store: EventStore, history: Store, config: Config,
             specs: list[SLOSpec] | None = None) -> int:
    """Asserts the SLOs from the read without repeats are those from the whole window;
    returns how many progress events the read left out."""
    now = history.at or history.now
    since = window_start(now.date(), SLOEngine(config, specs).history_days)
    # The whole window as ``slo report`` read it before (its ``--at`` filter in Python).
    full = [e for e in store.events(since_run_date=since)
            if history.at is None or e.timestamp <= history.at]
    thin = list(window_events(store, since, until=history.at, progress="first"))
    ids = iter(e.event_id for e in full)
    assert all(e.event_id in ids for e in thin)  # in arrival order, a part of the window
    kept = {e.event_id for e in thin}
    assert all(e.event_id in kept for e in full if e.status != "progress")
    expected = _slos(config, iter(full), now, specs)
    got = _slos(config, iter(thin), now, specs)
    assert got[:2] == expected[:2]
    assert got[2] == expected[2]  # the very state the SLIs read
    return len(full) - len(thin)


EXAMPLE = load_config(None)


@settings(max_examples=100, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(history=stores(EXAMPLE))
def test_the_example_config_slos_are_the_same_from_the_first_progress_events(history: Store) -> None:
    """The bundled config's SLOs (deadlines with only_seen and seen_phases, success ratios of
    processor runs and attempts, freshness, coverage, availability, check)."""
    store = SQLiteStore(":memory:")
    try:
        _fill(store, history)
        event(f"progress events left out: {'some' if _compare(store, history, EXAMPLE) else 'none'}")
    finally:
        store.close()


SMALL = base_config()


@settings(max_examples=200, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(history=stores(SMALL), spec=slo_specs())
def test_every_sli_kind_is_the_same_from_the_first_progress_events(
    history: Store, spec: SLOSpec,
) -> None:
    """Every kind and level (phase runs, processor runs, attempts; a deadline of one phase or
    the whole run), every window, with phase-level events and processors outside the SLO."""
    store = SQLiteStore(":memory:")
    try:
        _fill(store, history)
        left_out = _compare(store, history, SMALL, [spec])
        event(f"progress events left out: {'some' if left_out else 'none'}")
    finally:
        store.close()


_schemas = itertools.count()


def fresh_pg_store(postgres_server: str, prefix: str) -> EventStore:
    """A store on the PostgreSQL server in a schema of its own (one per example)."""
    import psycopg

    schema = f"{prefix}{next(_schemas)}"
    with psycopg.connect(postgres_server, autocommit=True) as conn:
        conn.execute(f"DROP SCHEMA IF EXISTS {schema} CASCADE")
        conn.execute(f"CREATE SCHEMA {schema}")
    return open_store(f"{postgres_server}?options=-csearch_path%3D{schema}")


@settings(max_examples=25, deadline=None,
          suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture])
@given(history=stores(SMALL), spec=slo_specs())
def test_postgresql_reads_the_same_first_progress_events(
    postgres_server: str, history: Store, spec: SLOSpec,
) -> None:
    """The same SQL on PostgreSQL: a schema of its own per example."""
    store = fresh_pg_store(postgres_server, "progress")
    try:
        _fill(store, history)
        _compare(store, history, SMALL, [spec])
        sqlite = SQLiteStore(":memory:")
        try:  # and it leaves out exactly what SQLite's leaves out
            _fill(sqlite, history)
            now = history.at or history.now
            since = window_start(now.date(), SLOEngine(SMALL, [spec]).history_days)
            assert ([e.event_id for e in window_events(store, since, until=history.at,
                                                       progress="first")]
                    == [e.event_id for e in window_events(sqlite, since, until=history.at,
                                                          progress="first")])
        finally:
            sqlite.close()
    finally:
        store.close()


# --------------------------------------------------------------------------- the conditions

D = date(2026, 3, 10)


def _e(phase: str, status: str, hhmm: str, processor: str | None = None, *,
       run_date: date = D, mode: str = "overnight") -> Event:
    hour, minute = map(int, hhmm.split(":"))
    return Event(event_id=f"e{next(_ids)}", pipeline="p", run_date=run_date, mode=mode,
                 phase=phase, processor=processor, status=status,
                 timestamp=datetime.combine(D, TimeOfDay(hour, minute), tzinfo=TZ).astimezone(UTC))


def _spec(sli: dict[str, Any]) -> SLOSpec:
    return SLOSpec.model_validate({"name": "s", "pipeline": "p", "sli": sli, "objective": 0.9,
                                   "window": {"kind": "rolling", "days": 28}})


PHASE_B_RUNS = _spec({"kind": "success_ratio", "phase": "b"})
DEADLINE = {"kind": "deadline", "by": {"day_offset": 0, "time": "12:00"}}
# (what the read must keep, the SLO, the events in arrival order, the one it must keep): each
# case's heartbeat changes the SLO, and follows an event the read must not take for its repeat.
NEEDED = {
    # z's first event: z is running from 10:05, so its success stamped 10:02 is older news.
    "of another processor": (PHASE_B_RUNS, [
        _e("b", "started", "10:00"), _e("b", "progress", "10:05", "z"),
        _e("b", "succeeded", "10:02", "z")]),
    "of another mode": (PHASE_B_RUNS, [
        _e("b", "progress", "10:04", "z", mode="same_day"), _e("b", "progress", "10:05", "z"),
        _e("b", "succeeded", "10:02", "z")]),
    "of another run date": (PHASE_B_RUNS, [
        _e("b", "progress", "10:04", "z", run_date=D - timedelta(days=1)),
        _e("b", "progress", "10:05", "z"), _e("b", "succeeded", "10:02", "z")]),
    # Phase a's heartbeat is what shows the game day was seen.
    "of another phase": (_spec(DEADLINE | {"phase": "b", "due": {
        "only_seen": True, "seen_phases": ["a"]}}), [
        _e("b", "started", "10:00"), _e("a", "progress", "10:05")]),
    # The heartbeat stamped 11:00 is the pipeline's first event: the 12:00 deadline counts.
    "later in event time": (_spec(DEADLINE | {"phase": "c"}), [
        _e("c", "started", "13:00"), _e("c", "progress", "11:00")]),
}


@pytest.mark.parametrize("case", sorted(NEEDED))
def test_a_heartbeat_that_changes_an_slo_is_read(case: str) -> None:
    """Each condition of a repeat, one by one: the heartbeat that follows an event that is
    not the same run, phase and processor, or that is earlier in event time, is read, and
    the SLO needs it (leaving it out changes the SLO)."""
    spec, events = NEEDED[case]
    needed = events[-2] if events[-1].status != "progress" else events[-1]
    store = SQLiteStore(":memory:")
    try:
        for e in events:
            store.append([e], e.timestamp)
        history = Store([events], datetime(2026, 3, 20, tzinfo=UTC), None)
        _compare(store, history, SMALL, [spec])
        since = window_start(history.now.date(), SLOEngine(SMALL, [spec]).history_days)
        assert needed.event_id in {e.event_id for e in window_events(store, since,
                                                                      progress="first")}
    finally:
        store.close()
    without = [e for e in events if e is not needed]
    assert _slos(SMALL, iter(without), history.now, [spec])[:2] != _slos(
        SMALL, iter(events), history.now, [spec])[:2]


# --------------------------------------------------------------------------- the command


def _busy_store(store: EventStore, today: date) -> None:
    """Three weeks of the example pipeline's runs: every processor starts and finishes, the
    prediction worker reports progress 120 times a run (some late, one stepping back in time),
    Phase 1 reports its own progress; a failure now and then."""
    pipeline = EXAMPLE.pipelines[0]
    for day in range(21, -1, -1):
        run_date = today - timedelta(days=day)
        batch: list[Event] = []
        for m, mode in enumerate(MODES):
            at = datetime.combine(run_date, TimeOfDay(3 + 6 * m), tzinfo=UTC)
            for phase in pipeline.phases:
                for processor in [p.name for p in phase.processors] or [None]:
                    heartbeats = 120 if processor == "prediction-worker" or phase.id == "phase1" else 0
                    steps = ["started", *["progress"] * heartbeats]
                    steps.append("failed" if (day + m + len(phase.id)) % 11 == 0 else "succeeded")
                    for n, status in enumerate(steps):
                        at += timedelta(seconds=-30 if n == 7 else 20)
                        batch.append(Event(
                            event_id=f"{run_date}-{mode}-{phase.id}-{processor}-{n}",
                            pipeline=pipeline.id, run_date=run_date, mode=mode, phase=phase.id,
                            processor=processor, status=status, timestamp=at,
                            records=90 if status == "succeeded" else None,
                            expected_records=100 if status == "succeeded" else None,
                            data_as_of=at - timedelta(hours=2) if status == "succeeded" else None,
                        ))
        batch[5], batch[9] = batch[9], batch[5]  # out of order
        store.append(batch, batch[-1].timestamp)


@pytest.mark.parametrize("with_at", [False, True])
def test_slo_report_json_is_byte_for_byte_the_whole_windows(
    db: str, monkeypatch: pytest.MonkeyPatch, with_at: bool,
) -> None:
    """``phasewatch slo report --json`` on a store of mostly heartbeats prints what the read
    of the whole window prints, reading far fewer events; with ``--at`` (in the middle of
    the prediction worker's heartbeats two days ago) too."""
    today = datetime.now(UTC).date()
    store = open_store(db)
    try:
        _busy_store(store, today)
    finally:
        store.close()
    args = ["slo", "report", "--json", "--db", db]
    if with_at:
        args += ["--at", f"{today - timedelta(days=2)}T03:35:10Z"]
    else:  # the report's own "now", the same for both runs
        frozen = datetime.now(UTC)

        class Frozen(datetime):
            @classmethod
            def now(cls, tz: Any = None) -> Frozen:
                return frozen  # type: ignore[return-value]

        monkeypatch.setattr(slo_cli, "datetime", Frozen)
    reads: list[str] = []
    read = slo_cli.window_events

    def counted(*args: Any, **kwargs: Any) -> Iterator[Event]:
        events = list(read(*args, **kwargs))
        reads.extend((kwargs["progress"], str(len(events))))
        return iter(events)

    monkeypatch.setattr(slo_cli, "window_events", counted)
    thin = CliRunner().invoke(main, args)
    monkeypatch.setattr(slo_cli, "window_events",
                        lambda *a, **k: counted(*a, **(k | {"progress": "all"})))
    full = CliRunner().invoke(main, args)
    assert thin.exit_code == full.exit_code and thin.exit_code in (0, 1), thin.output
    assert thin.stdout_bytes == full.stdout_bytes
    statuses = json.loads(thin.output)["slos"]
    assert {s["kind"] for s in statuses} >= {"deadline", "success_ratio", "freshness", "coverage"}
    assert sum(s["total"] for s in statuses) > 100  # the SLOs counted something
    assert reads[0] == "first" and reads[2] == "all"
    assert int(reads[1]) * 3 < int(reads[3])  # most of the window's events were not read
