"""Run dates inside a window of the clock; run state bounded by the clock, never by the data.

The measured defect (issue 16): one accepted event dated 2999-12-31 evicted every tracked
run, so a run 4/5 done got its last completion and no trigger was sent, and it survived a
restart because the rebuild replays events in arrival order.
"""

from __future__ import annotations

import json
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner

from monitor.actuator.sinks import MemorySink
from monitor.app.cli.main import main
from monitor.app.http.server import create_app, serving
from monitor.app.phasewatch import Phasewatch
from monitor.app.sim.replay import read_lines, run_replay
from monitor.clock import FakeClock
from monitor.config import Config, RunsConfig
from monitor.errors import EventError
from monitor.tracker import RunTracker
from tests.actuator_support import PHASE3_OVERNIGHT, rig
from tests.factories import event_dict, make_event
from tests.test_service import Http, push_envelope

RUN = ("nba", "2026-01-17", "overnight")
TODAY = date(2026, 1, 18)  # the rig's clock: 2026-01-18T06:00Z, 01:00 in New York


def fields_of(exc: EventError) -> list[str]:
    return [p.field for p in exc.problems]


# --- the measured defect ---------------------------------------------------------------------

def test_a_stray_run_date_is_refused_and_the_run_it_would_have_wiped_still_triggers() -> None:
    with rig() as r:
        r.complete("phase3", PHASE3_OVERNIGHT[:-1])
        with pytest.raises(EventError) as caught:
            r.ingest("phase1", "started", run_date="2999-12-31", mode="same_day")
        assert fields_of(caught.value) == ["run_date"]
        assert r.pw.tracker.get(RUN) is not None
        assert r.sent("grading") == []  # grading waits for all five (phase4 went at 4/5)
        r.complete("phase3", PHASE3_OVERNIGHT[-1:])
        assert len(r.sent("grading")) == 1


def test_a_stray_run_date_already_stored_does_not_wipe_the_runs_rebuilt_after_it(
    tmp_path: Path,
) -> None:
    db = tmp_path / "pw.db"
    with rig(db=db) as r:
        r.complete("phase3", PHASE3_OVERNIGHT[:-1])
        # As a store written before the window existed holds it: after the four completions.
        stray = make_event("phase1", "started", r.clock.now().isoformat(),
                           run_date="2999-12-31", mode="same_day")
        r.pw.store.append([stray], r.clock.now())
    with rig(db=db) as r:  # a restart: the rebuild replays the store in arrival order
        run = r.pw.tracker.get(RUN)
        assert run is not None and len(run.phases["phase3"].done) == 4
        assert r.pw.tracker.get(("nba", "2999-12-31", "same_day")) is None
        r.complete("phase3", PHASE3_OVERNIGHT[-1:])
        assert len(r.sent("grading")) == 1


def test_eviction_follows_the_clock_not_the_newest_run_date(nba_config: Config) -> None:
    clock = FakeClock(datetime(2026, 2, 10, 12, tzinfo=UTC))
    tracker = RunTracker(nba_config, retention_days=3, clock=clock)
    tracker.apply(make_event("phase1", "started", "2026-02-10T12:00:00Z", run_date="2026-02-08",
                             mode="overnight"))
    # A run date a week ahead (inside the window) is not a reason to forget the present.
    clock.advance(7200)
    tracker.apply(make_event("phase1", "started", "2026-02-10T14:00:00Z", run_date="2026-02-17",
                             mode="tomorrow"))
    assert {r.run_date.day for r in tracker.runs()} == {8, 17}


# --- the window, on every way in --------------------------------------------------------------

@pytest.fixture
def http(app: Phasewatch) -> Any:
    client = Http(create_app(app, None))
    yield client
    client.close()


def ev(run_date: date, **fields: Any) -> dict[str, Any]:
    return event_dict("phase2", "succeeded", "2026-01-18T12:00:00Z", "p2_odds_game_lines",
                      run_date=run_date.isoformat(), mode="backfill", **fields)


@pytest.mark.parametrize("days", [-401, 8, 1000 * 365])
def test_run_dates_outside_the_window_are_422_naming_field_and_window(
    http: Http, app: Phasewatch, days: int
) -> None:
    # The app fixture's clock: 2026-01-18T12:00Z, 07:00 in New York.
    run_date = TODAY + timedelta(days=days) if days < 365 * 900 else date(2999, 12, 31)
    response = http.post("/v1/events", json=ev(run_date))
    assert response.status_code == 422, response.text
    (detail,) = response.json()["details"]
    assert detail["field"] == "run_date"
    assert "2024-12-14" in detail["message"] and "2026-01-25" in detail["message"]
    assert "runs.accept_past_days" in detail["message"]
    assert app.store.count() == 0


@pytest.mark.parametrize("days", [-400, 7])
def test_the_window_includes_its_edges(http: Http, app: Phasewatch, days: int) -> None:
    response = http.post("/v1/events", json=ev(TODAY + timedelta(days=days)))
    assert response.status_code == 202, response.text


def test_a_push_outside_the_window_is_dead_lettered_and_acked(http: Http, app: Phasewatch) -> None:
    data = json.dumps(ev(date(2999, 12, 31))).encode()
    response = http.post("/v1/pubsub/push", json=push_envelope(data, "m-2999"))
    assert response.status_code == 200
    assert response.json() == {"outcome": "dead_lettered", "reason": "run_date_window"}
    assert app.store.count() == 0
    (letter,) = app.store.dead_letters()
    assert "run_date" in letter.detail


def test_the_window_is_configurable(nba_config: Config, tmp_path: Path) -> None:
    config = nba_config.model_copy(update={"runs": RunsConfig(accept_past_days=30,
                                                              accept_future_days=0)})
    clock = FakeClock(datetime(2026, 1, 18, 12, tzinfo=UTC))
    pw = Phasewatch.build(config, db_path=tmp_path / "pw.db", clock=clock,
                          sinks={"http": MemorySink(), "pubsub": MemorySink(), "log": MemorySink()})
    try:
        for day, accepted in ((-30, True), (-31, False), (0, True), (1, False)):
            event = make_event("phase2", "succeeded", "2026-01-18T12:00:00Z", "p2_odds_game_lines",
                               run_date=(TODAY + timedelta(days=day)).isoformat(), mode="backfill")
            if accepted:
                pw.collector.ingest([event])
            else:
                with pytest.raises(EventError):
                    pw.collector.ingest([event])
    finally:
        pw.close()


def test_emit_gets_a_clear_error_naming_the_window(app: Phasewatch) -> None:
    with serving(create_app(app, None)) as url:
        result = CliRunner().invoke(main, [
            "emit", "--pipeline", "nba", "--run-date", "2999-12-31", "--phase", "phase2",
            "--status", "started", "--url", url, "--retries", "0"])
    assert result.exit_code == 1
    assert "run_date" in result.stderr and "runs.accept_future_days" in result.stderr
    assert app.store.count() == 0


def test_replay_keeps_its_own_time_and_names_the_line_out_of_window(
    nba_config: Config, tmp_path: Path
) -> None:
    # Years before the wall clock: the window is relative to the replay's clock (event time).
    path = tmp_path / "old.jsonl"
    first = event_dict("phase2", "succeeded", "2019-03-02T06:00:00Z", "p2_odds_game_lines",
                       run_date="2019-03-01")
    path.write_text(json.dumps(first) + "\n")
    assert run_replay(path, nba_config).report["events_stored"] == 1
    # Each line is judged at its own time: a file spanning months is valid whole (checked
    # before anything is simulated, so no months of ticks here).
    later = event_dict("phase2", "succeeded", "2019-06-02T06:00:00Z", "p2_odds_game_lines",
                       run_date="2019-06-08")
    path.write_text(json.dumps(first) + "\n" + json.dumps(later) + "\n")
    pw = Phasewatch.build(nba_config, db_path=":memory:",
                          clock=FakeClock(datetime(2019, 3, 2, 6, tzinfo=UTC)))
    try:
        assert len(read_lines(path, pw)) == 2
    finally:
        pw.close()
    stray = event_dict("phase2", "succeeded", "2019-03-02T07:00:00Z", "p2_odds_game_lines",
                       run_date="2019-03-20")
    path.write_text("\n".join(json.dumps(line) for line in (first, stray, later)) + "\n")
    result = CliRunner().invoke(main, ["replay", str(path)])
    assert result.exit_code == 2
    assert f"{path}:2: run_date" in result.output and "2019-03-09" in result.output


# --- memory: O(runs in the window), a hard cap, counted -----------------------------------------

def test_old_runs_are_evicted_once_the_clock_moves_on(nba_config: Config) -> None:
    clock = FakeClock(datetime(2026, 2, 1, 12, tzinfo=UTC))
    evicted: list[tuple[str, int]] = []
    tracker = RunTracker(nba_config, retention_days=3, clock=clock,
                         on_evict=lambda reason, n: evicted.append((reason, n)))
    for day in range(1, 20):  # one same-day run a day, each received on its day
        clock.set(datetime(2026, 2, day, 12, tzinfo=UTC))
        tracker.apply(make_event("phase1", "started", clock.now().isoformat(),
                                 run_date=f"2026-02-{day:02d}", mode="same_day"))
    assert sorted(r.run_date.day for r in tracker.runs()) == [16, 17, 18, 19]
    assert sum(n for reason, n in evicted if reason == "age") == 15


def test_a_backfill_being_loaded_is_kept_while_it_receives_events(nba_config: Config) -> None:
    clock = FakeClock(datetime(2026, 2, 1, 12, tzinfo=UTC))
    tracker = RunTracker(nba_config, retention_days=3, clock=clock)
    for _ in range(6):  # a run 300 days old, one event an hour: it stays, whole
        clock.advance(3600)
        tracker.apply(make_event("phase1", "started", clock.now().isoformat(),
                                 run_date="2025-04-07", mode="backfill"))
    run = tracker.get(("nba", "2025-04-07", "backfill"))
    assert run is not None and run.phases["phase1"].phase_started_at is not None
    clock.advance(4 * 86400)
    tracker.apply(make_event("phase1", "started", clock.now().isoformat(),
                             run_date="2026-02-05", mode="same_day"))
    assert tracker.get(("nba", "2025-04-07", "backfill")) is None


def test_the_cap_holds_and_drops_the_runs_seen_longest_ago(nba_config: Config) -> None:
    clock = FakeClock(datetime(2026, 2, 1, 12, tzinfo=UTC))
    evicted: list[tuple[str, int]] = []
    tracker = RunTracker(nba_config, retention_days=400, clock=clock, max_runs=100,
                         on_evict=lambda reason, n: evicted.append((reason, n)))
    start = date(2025, 6, 1)
    for i in range(250):
        clock.advance(1)
        tracker.apply(make_event("phase1", "started", clock.now().isoformat(),
                                 run_date=(start + timedelta(days=i)).isoformat(), mode="backfill"))
        assert len(tracker) <= 100
    assert sum(n for reason, n in evicted if reason == "cap") == 150
    newest = start + timedelta(days=249)
    assert tracker.runs()[0].run_date == newest  # the latest arrivals are the ones kept


def test_evictions_are_counted_in_the_metric(app: Phasewatch, clock: FakeClock) -> None:
    app.collector.ingest([make_event("phase1", "started", clock.now().isoformat(),
                                     run_date="2026-01-18", mode="same_day")])
    clock.advance(20 * 86400)
    app.collector.ingest([make_event("phase1", "started", clock.now().isoformat(),
                                     run_date="2026-02-07", mode="same_day")])
    text = app.metrics.exposition()[0].decode()
    assert 'phasewatch_runs_evicted_total{reason="age"} 1.0' in text
    assert "phasewatch_runs_tracked 1.0" in text


def test_the_tracker_takes_its_bounds_from_config(app: Phasewatch, nba_config: Config) -> None:
    assert app.tracker.retention == timedelta(days=nba_config.runs.track_days)
    assert app.tracker.max_runs == nba_config.runs.max_tracked


# --- the restart keeps every run the tracker holds (the measured defect: runs older than
# the 70 run dates the start-up replays lost their progress across a restart) --------------

@pytest.mark.parametrize("backfill", [False, True], ids=["live", "backfill"])
def test_a_run_older_than_the_replayed_days_keeps_its_state_across_a_restart(
    nba_config: Config, tmp_path: Path, backfill: bool,
) -> None:
    clock = FakeClock(datetime(2026, 1, 18, 12, tzinfo=UTC))
    old = (clock.now().date() - timedelta(days=100)).isoformat()  # accepted (400 days back)
    key = ("nba", old, "backfill")
    sinks = {"http": MemorySink(), "pubsub": MemorySink(), "log": MemorySink()}

    def build() -> Phasewatch:
        return Phasewatch.build(nba_config, db_path=tmp_path / "pw.db", clock=clock, sinks=sinks)

    pw = build()
    # A backfill of that run arrives (its events carry their own, old times, or today's).
    at = datetime.fromisoformat(f"{old}T09:00:00+00:00") if backfill else clock.now()
    done = ["player_game_summary", "team_offense_game_summary"]
    events = [make_event("phase3", "started", (at + timedelta(minutes=i)).isoformat(), name,
                         run_date=old, mode="backfill") for i, name in enumerate(done)]
    events += [make_event("phase3", "succeeded", (at + timedelta(minutes=30 + i)).isoformat(),
                          name, run_date=old, mode="backfill") for i, name in enumerate(done)]
    pw.collector.ingest(events, backfill=backfill)
    clock.advance(3 * 86400)  # days later, still inside runs.track_days of its arrival
    run = pw.tracker.get(key)
    assert run is not None
    before = run.as_dict()
    pw.close()

    pw = build()  # the restart
    try:
        rebuilt = pw.tracker.get(key)
        assert rebuilt is not None, "the run lost its state across the restart"
        assert rebuilt.as_dict() == before
    finally:
        pw.close()
