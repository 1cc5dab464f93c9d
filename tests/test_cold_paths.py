"""Cold CLI paths read only the run dates their window needs, through the one window read path
(``monitor.store.window``) the service's start-up rebuild uses, never all of history."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from typing import Any, Literal

import pytest
from click.testing import CliRunner

from monitor.app.cli.main import main
from monitor.app.phasewatch import cold_window_days
from monitor.config import default_config_text, parse_config
from monitor.events import Event
from monitor.store.base import EventStore, Stored
from monitor.store.registry import open_store
from monitor.store.sqlite import SQLiteStore
from slo.evaluator import SLOEngine

STATUSES: tuple[Literal["started", "succeeded"], ...] = ("started", "succeeded")
DAYS = 120  # run dates of history, all older than any window but the service's


def _events(run_date: date) -> list[Event]:
    at = datetime.combine(run_date, datetime.min.time(), UTC) + timedelta(hours=5)
    return [
        Event(event_id=f"{run_date}-{i}", pipeline="nba", run_date=run_date, mode="overnight",
              phase="phase1", status=status, timestamp=at + timedelta(minutes=i))
        for i, status in enumerate(STATUSES)
    ]


def _fill(store: EventStore) -> None:
    """``DAYS`` run dates up to today, written with the store's own append, and a late event
    of an old run date arriving last."""
    today = datetime.now(UTC).date()
    for d in range(DAYS, -1, -1):
        batch = _events(today - timedelta(days=d))
        store.append(batch, batch[-1].timestamp)
    late = _events(today - timedelta(days=DAYS - 1))[0].model_copy(update={"event_id": "late"})
    store.append([late], datetime.now(UTC))


@pytest.fixture
def history(tmp_path: Path) -> Path:
    """An SQLite store of ``_fill``'s history."""
    db = tmp_path / "pw.db"
    store = SQLiteStore(db)
    _fill(store)
    store.close()
    return db


@pytest.fixture
def reads(monkeypatch: pytest.MonkeyPatch) -> list[date]:
    """The run date of every event the store hands out (a window read, or the rebuild's)."""
    seen: list[date] = []
    events, history = SQLiteStore.events, SQLiteStore.history

    def counting(self: SQLiteStore, **kwargs: object) -> Iterator[Event]:
        for event in events(self, **kwargs):  # type: ignore[arg-type]
            seen.append(event.run_date)
            yield event

    def counting_stored(self: SQLiteStore, **kwargs: object) -> Iterator[Stored]:
        for stored in history(self, **kwargs):  # type: ignore[arg-type]
            seen.append(stored.event.run_date)
            yield stored

    monkeypatch.setattr(SQLiteStore, "events", counting)
    monkeypatch.setattr(SQLiteStore, "history", counting_stored)
    return seen


def _run(*args: str) -> None:
    result = CliRunner().invoke(main, list(args))
    assert result.exit_code in (0, 1), result.output


def test_status_reads_only_the_two_latest_run_dates(history: Path, reads: list[date]) -> None:
    _run("status", "--db", str(history))
    today = datetime.now(UTC).date()
    assert sorted(set(reads)) == [today - timedelta(days=1), today]
    assert len(reads) == 4


def test_status_of_one_run_date_reads_from_that_date(history: Path, reads: list[date]) -> None:
    day = datetime.now(UTC).date() - timedelta(days=3)
    _run("status", "--db", str(history), "--run-date", day.isoformat())
    assert min(reads) == day
    assert len(reads) == 4 * 2


def test_slo_report_reads_only_the_longest_window(history: Path, reads: list[date]) -> None:
    _run("slo", "report", "--db", str(history))
    days = SLOEngine(parse_config(default_config_text(), "<default>")).history_days
    assert days < DAYS
    assert min(reads) == datetime.now(UTC).date() - timedelta(days=days)
    assert len(reads) == 2 * (days + 1)


@pytest.mark.parametrize(("args", "days", "slos"), [(["report", "--weekly"], 7, False),
                                                    (["report", "--weekly", "--days", "28"], 28, False),
                                                    (["health-check"], 7, True)])
def test_reports_read_only_their_window(history: Path, reads: list[date], args: list[str],
                                        days: int, slos: bool) -> None:
    """Their window of run dates, and the older runs the service's tracker holds too (those
    that received an event lately: here the late event's run, its three events)."""
    _run(*args, "--db", str(history))
    window = cold_window_days(parse_config(default_config_text(), "<default>"), days, slos=slos)
    assert window < DAYS
    first = datetime.now(UTC).date() - timedelta(days=window)
    assert min(d for d in reads if d >= first) == first
    assert len([d for d in reads if d >= first]) == 2 * (window + 1)
    late = datetime.now(UTC).date() - timedelta(days=DAYS - 1)
    assert [d for d in reads if d < first] == [late] * 3


def test_a_window_read_keeps_arrival_order_and_leaves_out_older_run_dates(db: str) -> None:
    store = open_store(db)
    _fill(store)
    today = datetime.now(UTC).date()
    try:
        got = list(store.events(since_run_date=today - timedelta(days=2)))
        assert [e.event_id for e in got] == [e.event_id for d in (2, 1, 0)
                                             for e in _events(today - timedelta(days=d))]
        old = list(store.events(since_run_date=today - timedelta(days=DAYS - 1)))
        assert old[-1].event_id == "late"  # a late event of an old run date, in arrival order
        assert store.latest_run_dates(limit=2) == [today, today - timedelta(days=1)]
        assert store.latest_run_dates(pipeline="other") == []
        assert list(store.events(since_run_date=today + timedelta(days=1))) == []
    finally:
        store.close()


@pytest.mark.parametrize("args", [["slo", "report"], ["report", "--weekly"], ["health-check"]],
                         ids=["slo report", "report --weekly", "health-check"])
def test_with_the_service_snapshot_a_report_reads_only_the_events_after_it(
        history: Path, reads: list[date], args: list[str]) -> None:
    from monitor.app.phasewatch import Phasewatch
    from monitor.clock import SystemClock

    config = parse_config(default_config_text(), "<default>")
    Phasewatch.build(config, db_path=history, clock=SystemClock(), dry_run_alerts=True,
                     snapshots=True).close()  # the service stops: its snapshot is saved
    reads.clear()
    _run(*args, "--db", str(history))
    assert reads == []  # nothing stored after the snapshot
    store = SQLiteStore(history)
    later = _events(datetime.now(UTC).date() + timedelta(days=1))
    store.append(later, datetime.now(UTC))
    store.close()
    _run(*args, "--db", str(history))
    assert reads == [e.run_date for e in later]
    reads.clear()
    _run(*args, "--db", str(history), "--at", datetime.now(UTC).isoformat())  # the past: no snapshot
    assert len(reads) > len(later)


def test_a_window_read_finds_its_first_row_by_the_run_date_index(history: Path) -> None:
    """Not by the row ids from the oldest up (SQLite's min/max shortcut on the primary key),
    which reads every older event: O(history) instead of O(window)."""
    store = SQLiteStore(history)
    queries: list[tuple[str, list[object]]] = []
    original = store.read

    def recording(query: str, params: Any = ()) -> list[tuple[Any, ...]]:
        queries.append((query, list(params)))
        return original(query, params)

    store.read = recording  # type: ignore[method-assign]
    try:
        list(store.events(since_run_date=datetime.now(UTC).date()))
        first = next((q, p) for q, p in queries if "MIN(" in q)
        plan = " ".join(row[3] for row in original(f"EXPLAIN QUERY PLAN {first[0]}", first[1]))
        assert "USING COVERING INDEX events_by_run_date" in plan, plan
    finally:
        store.close()
