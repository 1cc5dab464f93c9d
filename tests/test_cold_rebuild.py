"""``phasewatch health-check`` and ``report --weekly`` build the service from the window
without reading the progress events that repeat the event stored just before them (issue 18):
only their run is seen then (``Repeat``). The state those commands read comes out the same as
from the whole window: the tracker's runs (all but a run's latest event time, a processor's
last heartbeat and a batch's progress), when each run was last seen (what the tracker drops
runs by), the SLOs, the anomaly series, the failures; and the commands' output byte for byte.
Service start-up (``serve``) still reads the whole window."""

from __future__ import annotations

import itertools
import json
import tempfile
from datetime import UTC, date, datetime, timedelta
from datetime import time as TimeOfDay
from pathlib import Path
from typing import Any
from unittest import mock

import pytest
from click.testing import CliRunner
from hypothesis import HealthCheck, event, given, settings
from hypothesis import strategies as st

import monitor.store.schema as schema
from monitor.app.cli.alerts import WEEK_DAYS
from monitor.app.cli.main import main
from monitor.app.phasewatch import Phasewatch, cold_window_days
from monitor.clock import FakeClock
from monitor.config import HISTORY_DAYS, Config
from monitor.events import Event
from monitor.store.base import EventStore, Repeat, Stored, utc_text
from monitor.store.registry import open_store
from monitor.store.sqlite import SQLiteStore
from monitor.tracker import RunTracker
from tests.test_progress_read import (
    EXAMPLE,
    Store,
    _busy_store,
    _fill,
    _state,
    fresh_pg_store,
    stores,
)

_ids = itertools.count()
# What a repeated heartbeat changes, and neither command reads.
# What those commands read no more of than the SLOs (``seen_at`` stays: the runs held).
UNREAD = frozenset({"last_event_at", "last_heartbeat", "batches", "judged"})


def _with_runs(config: Config, **runs: Any) -> Config:
    return config.model_copy(update={"runs": config.runs.model_copy(update=runs)})


def _built(config: Config, db: Path, now: datetime, progress: Any) -> dict[str, Any]:
    """What the cold commands read of a service built from the store at ``now``."""
    pw = Phasewatch.build(config, db_path=db, clock=FakeClock(now), dry_run_alerts=True,
                          history_days=cold_window_days(config, WEEK_DAYS), progress=progress)
    try:
        return {
            "runs": _state(pw.tracker._runs, UNREAD),
            "summary": pw.alerting.daily_summary(now).as_dict(),
            "weekly": pw.alerting.weekly(now).as_dict(),
            "slos": pw.slo_report(),
            "durations": pw.anomalies._durations,
            "series": sorted(map(str, pw.anomalies.series())),
            "failures": repr(sorted(pw.correlator._groups.items(), key=str)),
        }
    finally:
        pw.close()


# Few runs held, and a short tracking window: the tracker drops runs while it replays (by the
# cap, below the config's floor of 10 on these small stores, and by age).
SMALL_CAP = _with_runs(EXAMPLE, max_tracked=3, track_days=1)


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(history=stores(SMALL_CAP))
def test_the_service_the_cold_commands_build_is_the_same_without_repeated_progress(
    history: Store,
) -> None:
    now = history.at or history.now
    with tempfile.TemporaryDirectory() as tmp:
        db = Path(tmp) / "pw.db"
        store = SQLiteStore(db)
        try:
            _fill(store, history)
            repeats = sum(r.count for r in store.history(
                since_run_date=date.min, until=store.position(), progress="first")
                if isinstance(r, Repeat))
        finally:
            store.close()
        full = _built(SMALL_CAP, db, now, "all")
        thin = _built(SMALL_CAP, db, now, "first")
    event(f"repeats: {'some' if repeats else 'none'}")
    assert thin == full


def _e(run_date: date, phase: str, processor: str | None, status: str, at: datetime,
       **fields: Any) -> Event:
    return Event(event_id=f"c{next(_ids)}", pipeline="nba", run_date=run_date, mode="overnight",
                 phase=phase, processor=processor, status=status, timestamp=at, **fields)


def _kept_seen_store(store: EventStore, today: date) -> datetime:
    """A run of five days ago whose worker reports progress for three days (the tracker keeps
    runs of the last day, and older ones seen in the last day); then another run starts (the
    tracker sweeps) and the worker succeeds. Returns "now"."""
    old = today - timedelta(days=5)
    at = datetime.combine(old, TimeOfDay(3), tzinfo=UTC)
    worker = ("phase5", "prediction-worker")
    store.append([_e(old, "phase5", "prediction-coordinator", "succeeded", at),
                  _e(old, *worker, "started", at)], at)
    for _ in range(144):
        at += timedelta(minutes=30)
        store.append([_e(old, *worker, "progress", at)], at)
    at += timedelta(minutes=10)
    store.append([_e(today - timedelta(days=2), "phase1", None, "started", at)], at)
    at += timedelta(minutes=10)
    store.append([_e(old, *worker, "succeeded", at)], at)
    return at + timedelta(minutes=5)


def test_a_run_kept_by_its_heartbeats_is_held_as_from_the_whole_window(
    tmp_path: Path, monitored: dict[str, Any], monkeypatch: pytest.MonkeyPatch,
) -> None:
    """The tracker drops an old run not seen for ``runs.track_days``: the run whose worker
    kept reporting is kept, its coordinator's success with it. A read that left the
    repeated heartbeats out without seeing their run (``RunTracker.seen``) would drop it,
    and start it again, the worker's success alone, when that arrives."""
    config = _with_runs(EXAMPLE, track_days=1)
    db = tmp_path / "pw.db"
    store = SQLiteStore(db)
    try:
        now = _kept_seen_store(store, datetime.now(UTC).date())
    finally:
        store.close()
    full = _built(config, db, now, "all")
    assert _built(config, db, now, "first") == full
    assert monitored["repeats"] == 144  # every heartbeat (the first follows the start)
    monkeypatch.setattr(RunTracker, "seen", lambda self, key, now: None)
    assert _built(config, db, now, "first")["runs"] != full["runs"]


@pytest.fixture
def monitored(monkeypatch: pytest.MonkeyPatch) -> dict[str, Any]:
    """Counts the event bodies the store parses and the repeats it marks."""
    counts = {"parsed": 0, "repeats": 0}
    parse, repeat = schema.event_from_json, schema._repeat

    def parsed(text: Any) -> Event:
        counts["parsed"] += 1
        return parse(text)

    def marked(*streak: Any) -> Repeat:
        found = repeat(*streak)
        counts["repeats"] += found.count
        return found

    monkeypatch.setattr(schema, "event_from_json", parsed)
    monkeypatch.setattr(schema, "_repeat", marked)
    return counts


def test_history_marks_what_the_event_read_leaves_out(tmp_path: Path) -> None:
    """``history(progress="first")`` reads the events ``events(progress="first")`` reads, in
    arrival order, and marks the others, each mark after the event it repeats, of its run."""
    store = SQLiteStore(tmp_path / "pw.db")
    try:
        today = datetime.now(UTC).date()
        _busy_store(store, today)
        at = datetime.combine(today, TimeOfDay(20), tzinfo=UTC)
        worker = ("phase5", "prediction-worker")
        store.append([_e(today, *worker, "started", at)], at)
        for n in range(5):  # stored by a process whose clock is behind: arrivals step back
            store.append([_e(today, *worker, "progress", at + timedelta(minutes=n))],
                         at + timedelta(minutes=5 - n))
        since = today - timedelta(days=9)
        until = store.position()
        full = list(store.history(since_run_date=since, until=until))
        thin = list(store.history(since_run_date=since, until=until, progress="first"))
        kept = [e.event_id for e in store.events(since_run_date=since, progress="first")]
        assert [s.event.event_id for s in thin if isinstance(s, Stored)] == kept
        marks = [r for r in thin if isinstance(r, Repeat)]
        assert sum(r.count for r in marks) == len(full) - len(kept) > len(kept)
        by_position = {s.position: s for s in full}
        for mark in marks:
            ends = by_position[mark.position]
            assert ends.event.status == "progress" and ends.event.run_key() == mark.run
            run = [s for s in full if s.position <= mark.position][-mark.count:]
            assert all(s.event.run_key() == mark.run for s in run)
            assert mark.received_at == max(s.received_at for s in run)
        assert [s.position for s in thin] == sorted(s.position for s in thin)
    finally:
        store.close()


def _expected_history(store: Any, since: date, runs: list[tuple[str, str, str]],
                      until: int) -> tuple[list[tuple[Any, ...]], list[str]]:
    """``history(since_run_date=since, runs=runs, until=until, progress="first")`` and the
    ids ``events(since_run_date=since, progress="first")`` reads, worked out in Python from
    every row: a progress event repeats the row before it (the row of the largest position
    below its own, whatever positions are missing) when that row is of the same run, phase
    and processor, no later in event time, and read by the same part of the read; the
    repeats that follow one another in a part, of one run, are one mark (their run from
    the rows' own columns)."""
    rows = store.read("SELECT seq, pipeline, run_date, mode, phase, processor, status, ts,"
                      " received_at, event_id FROM events ORDER BY seq")
    before = {row[0]: prev for prev, row in zip([None, *rows], rows, strict=False)}

    def part(keep: Any, after: int) -> list[tuple[Any, ...]]:
        out: list[tuple[Any, ...]] = []
        for row in rows:
            if not (after < row[0] <= until and keep(row)):
                continue
            prev = before[row[0]]
            if (row[6] == "progress" and prev is not None and prev[0] > after
                    and prev[1:6] == row[1:6] and prev[7] <= row[7]):
                if out and out[-1][0] == "mark" and out[-1][2] == row[1:4]:
                    _, _, run, received, count = out[-1]
                    out[-1] = ("mark", row[0], run, max(received, row[8]), count + 1)
                else:
                    out.append(("mark", row[0], row[1:4], row[8], 1))
            else:
                out.append(("event", row[0], row[9], row[8]))
        return out

    day = since.isoformat()
    window = [row[0] for row in rows if row[2] >= day and row[0] <= until]
    parts = [part(lambda row: row[2] >= day, min(window) - 1)] if window else []
    parts += [part(lambda row, run=run: row[1:4] == run, 0) for run in runs]
    merged = sorted((item for items in parts for item in items), key=lambda item: item[1])
    return merged, [item[2] for item in parts[0] if item[0] == "event"] if window else []


def _as_read(item: Stored | Repeat) -> tuple[Any, ...]:
    if isinstance(item, Repeat):
        return ("mark", item.position, item.run, utc_text(item.received_at), item.count)
    return ("event", item.position, item.event.event_id, utc_text(item.received_at))


def _check_read(store: Any, history: Store, data: st.DataObject) -> None:
    _fill(store, history)
    stored = [e for batch in history.batches for e in batch]
    for _ in range(data.draw(st.integers(0, 3)) if stored else 0):  # heartbeats in a row
        last = data.draw(st.sampled_from(stored))
        steps = data.draw(st.lists(st.integers(-60, 600), min_size=1, max_size=8))
        beats = [last.model_copy(update={
            "event_id": f"h{next(_ids)}", "status": "progress",
            "timestamp": last.timestamp + timedelta(seconds=sum(steps[:n + 1]))})
            for n in range(len(steps))]
        store.append(beats, history.now)
    position = store.position()
    gone = data.draw(st.sets(st.integers(1, max(position, 1)), max_size=position // 3 + 1))
    with store.transaction() as db:
        db.executemany("DELETE FROM events WHERE seq = ?", [(seq,) for seq in gone])
    since = history.now.date() - timedelta(days=data.draw(st.sampled_from((0, 3, 10))))
    older = sorted({tuple(row) for row in store.read(
        "SELECT pipeline, run_date, mode FROM events WHERE run_date < ?", (since.isoformat(),))})
    runs = data.draw(st.lists(st.sampled_from(older), unique=True)) if older else []
    until = data.draw(st.one_of(st.just(position), st.integers(0, position)))
    expected, kept = _expected_history(store, since, runs, until)
    event(f"marks: {min(sum(1 for item in expected if item[0] == 'mark'), 3)}")
    read = store.history(since_run_date=since, runs=runs, until=until, progress="first")
    assert [_as_read(item) for item in read] == expected
    if until == position:
        assert [e.event_id for e in store.events(since_run_date=since, progress="first")] == kept


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(history=stores(EXAMPLE), data=st.data())
def test_history_reads_the_repeats_of_interleaved_stores_with_missing_positions(
    history: Store, data: st.DataObject,
) -> None:
    """The read itself, on random stores (processors interleaved, redeliveries, times stepping
    back), with rows deleted (missing positions: the row before an event is then one further
    back) and older runs read by their run: the events and marks are those worked out from
    every row, each mark of the run of its rows' own columns (the read takes it from the
    event read before them)."""
    store = SQLiteStore(":memory:")
    try:
        _check_read(store, history, data)
    finally:
        store.close()


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(history=stores(EXAMPLE), data=st.data())
def test_history_reads_the_same_a_few_rows_and_gaps_at_a_time(
    history: Store, data: st.DataObject,
) -> None:
    """The same with pages of 3 rows and the gaps between events counted 2 by 2: a page
    ending inside a run of repeats, a gap from one page to the next, the repeats after the
    last event read."""
    store = SQLiteStore(":memory:")
    try:
        with mock.patch.object(schema, "_PAGE", 3), mock.patch.object(schema, "_GAPS", 2):
            _check_read(store, history, data)
    finally:
        store.close()


@settings(max_examples=15, deadline=None,
          suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture])
@given(history=stores(EXAMPLE), data=st.data())
def test_postgresql_reads_the_repeats_with_missing_positions(
    postgres_server: str, history: Store, data: st.DataObject,
) -> None:
    """The same on PostgreSQL (whose positions skip the values of rolled-back inserts)."""
    store = fresh_pg_store(postgres_server, "repeats")
    try:
        _check_read(store, history, data)
    finally:
        store.close()


def _in_progress(store: EventStore, today: date) -> None:
    """Today's overnight run under way: its prediction worker's batch stalled (heartbeats
    with the same done count); Phase 4 running, known by its heartbeats alone."""
    at = datetime.combine(today, TimeOfDay(2), tzinfo=UTC)
    batch = []
    for phase, processor in (("phase1", None), ("phase5", "prediction-coordinator"),
                             ("phase5", "prediction-worker")):
        batch.append(_e(today, phase, processor, "started", at))
    batch += [_e(today, "phase4", "ml_feature_store", "progress", at + timedelta(seconds=n))
              for n in range(3)]
    for n in range(200):
        at += timedelta(seconds=15)
        batch.append(_e(today, "phase5", "prediction-worker", "progress", at, batch_id="b1",
                        done=min(n, 40), total=90))
    store.append(batch, at + timedelta(minutes=1))


COMMANDS = (["health-check"], ["health-check", "--json"], ["health-check", "--daily"],
            ["report", "--weekly"], ["report", "--weekly", "--json"])


def test_the_cold_commands_print_byte_for_byte_what_the_whole_window_prints(
    db: str, monitored: dict[str, Any], monkeypatch: pytest.MonkeyPatch,
) -> None:
    """On three weeks of mostly heartbeats and a run still under way, a batch stalled: the
    same output (``--at`` after the stalled heartbeats), text and ``--json``, parsing a few
    of the events."""
    today = datetime.now(UTC).date()
    store = open_store(db)
    try:
        _busy_store(store, today - timedelta(days=1))
        _in_progress(store, today)
    finally:
        store.close()
    rebuild = Phasewatch.rebuild
    for args in COMMANDS:
        argv = [*args, "--db", db, "--at", f"{today}T12:00:00Z"]
        monkeypatch.setattr(Phasewatch, "rebuild", rebuild)
        monitored |= {"parsed": 0, "repeats": 0}
        thin = CliRunner().invoke(main, argv)
        parsed = dict(monitored)
        monkeypatch.setattr(Phasewatch, "rebuild", lambda self, days=HISTORY_DAYS,
                            progress="all", **kw: rebuild(self, days, "all", **kw))
        monitored["parsed"] = 0
        full = CliRunner().invoke(main, argv)
        assert thin.exit_code == full.exit_code and thin.exit_code in (0, 1), (args, thin.output)
        assert thin.stdout_bytes == full.stdout_bytes, args
        assert parsed["repeats"] > 1000
        assert parsed["parsed"] * 4 < monitored["parsed"]  # most of the window was not parsed
        if args == ["health-check", "--json"]:  # today's run is in the summary, under way
            runs = json.loads(thin.output)["runs"]
            phases = {p["phase"]: p["status"] for r in runs if r["run_date"] == f"{today}"
                      and r["mode"] == "overnight" for p in r["phases"]}
            assert phases["phase4"] == phases["phase5"] == "running"


def test_serve_still_reads_every_event(tmp_path: Path, monitored: dict[str, Any]) -> None:
    """The service's own start-up replays the whole window (its actuator reads heartbeats)."""
    db = tmp_path / "pw.db"
    store = SQLiteStore(db)
    try:
        _in_progress(store, datetime.now(UTC).date())
        count = store.count()
    finally:
        store.close()
    Phasewatch.build(EXAMPLE, db_path=db, clock=FakeClock(datetime.now(UTC)),
                     dry_run_alerts=True).close()
    assert monitored["repeats"] == 0 and monitored["parsed"] >= count

