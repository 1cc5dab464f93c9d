"""Anomalies through the whole stack: finished runs → detectors → report, metric, one alert."""

from __future__ import annotations

import math
from datetime import UTC, date, datetime, timedelta
from pathlib import Path

import pytest

from monitor.app.phasewatch import Phasewatch
from monitor.app.snapshot import dump_state, load_state
from monitor.clock import FakeClock
from monitor.config import Config
from tests.factories import body, event_dict

PROC = "team_defense_game_summary"


def _day(day: int, minutes: float) -> bytes:
    run_date = date(2026, 1, 1) + timedelta(days=day)
    start = f"{run_date + timedelta(days=1)}T06:15:00+00:00"
    return body(
        event_dict("phase3", "started", start, PROC, run_date=str(run_date)),
        event_dict("phase3", "succeeded", start, PROC, run_date=str(run_date),
                   duration_s=minutes * 60),
    )


def _live(pw: Phasewatch, day: int, minutes: float) -> None:
    """Day ``day``'s run, ingested when it happens (the clock at its finish)."""
    clock = pw.clock
    assert isinstance(clock, FakeClock)
    finish = datetime.fromisoformat(f"{date(2026, 1, 2) + timedelta(days=day)}T06:15:00+00:00")
    clock.set(max(clock.now(), finish + timedelta(seconds=minutes * 60)))
    pw.collector.ingest_body(_day(day, minutes))


def _history(pw: Phasewatch, days: int) -> None:
    for day in range(days):
        _live(pw, day, 6.0 + (day % 3) * 0.2)


def test_slow_run_flagged_once_with_expected_range(app: Phasewatch) -> None:
    _history(app, 20)
    assert app.anomalies.recent == type(app.anomalies.recent)()
    _live(app, 20, 45.0)
    flagged = [a for a in app.anomalies.recent if a.kind == "duration"]
    assert len(flagged) == 1
    anomaly = flagged[0]
    assert (anomaly.processor, anomaly.mode, anomaly.value) == (PROC, "overnight", 2700.0)
    assert anomaly.expected is not None and 340 < anomaly.expected < 400
    assert anomaly.upper is not None and anomaly.upper < 2700
    app.run_job("deliver-alerts", app.clock.now() + timedelta(seconds=30))  # after group_wait
    told = [d.notification.alert for d in app.router.history if d.notification.alert.name == "anomaly"]
    assert len(told) == 1  # one info notice for the run, whatever else it flagged
    assert told[0].severity == "info" and told[0].labels["run_date"] == "2026-01-21"
    text = app.metrics.exposition()[0].decode()
    assert 'phasewatch_anomalies_total{kind="duration",phase="phase3",pipeline="nba"} 1.0' in text
    report = app.report_sections()["anomalies"]
    assert report[0]["kind"] in ("duration", "late") and report[0]["time"].startswith("2026-01-22")


def test_restart_rebuilds_detectors_silently(nba_config: Config, clock: FakeClock, tmp_path: Path) -> None:
    db = tmp_path / "pw.db"
    first = Phasewatch.build(nba_config, db_path=db, clock=clock)
    _history(first, 20)
    first.close()
    again = Phasewatch.build(nba_config, db_path=db, clock=clock)
    assert not again.router.history  # rebuilding raises nothing
    _live(again, 20, 45.0)
    assert any(a.kind == "duration" for a in again.anomalies.recent)
    again.close()


def test_a_restored_snapshot_replaces_the_series_found_before(nba_config: Config,
                                                              tmp_path: Path) -> None:
    """The monitor remembers each series' detectors and durations once found: a snapshot
    loaded into one that had learnt other runs puts its points on the restored ones."""
    start = datetime(2026, 1, 18, 12, 0, tzinfo=UTC)
    learnt = Phasewatch.build(nba_config, db_path=tmp_path / "a.db", clock=FakeClock(start))
    other = Phasewatch.build(nba_config, db_path=tmp_path / "b.db", clock=FakeClock(start))
    try:
        _history(learnt, 20)
        for day in range(3):
            _live(other, day, 30.0)  # its own series found, with other values
        load_state(dump_state({"anomalies": learnt.anomalies}, nba_config),
                   {"anomalies": other.anomalies}, nba_config)
        _live(learnt, 20, 45.0)
        _live(other, 20, 45.0)
        assert other.anomalies.detectors.export_state() == learnt.anomalies.detectors.export_state()
        assert other.anomalies._durations == learnt.anomalies._durations
        assert [a.as_dict() for a in other.anomalies.recent] == [a.as_dict() for a in learnt.anomalies.recent]
    finally:
        learnt.close()
        other.close()


def test_adaptive_timeout_needs_history(app: Phasewatch) -> None:
    static = app.anomalies.timeout("nba", "phase3", PROC, "overnight", static_s=3600)
    assert (static.seconds, static.source) == (3600, "static")
    _history(app, 20)
    learned = app.anomalies.timeout("nba", "phase3", PROC, "overnight", static_s=3600)
    assert learned.source == "adaptive"
    assert 60 <= learned.seconds < 3600


# ------------------------------------------------------------------------ volume (rows)


def _rows_day(day: int, rows: int, expected: int | None, late_h: float = 0.0) -> bytes:
    run_date = date(2026, 1, 1) + timedelta(days=day)
    start = datetime(2026, 1, 2, 6, 15, tzinfo=UTC) + timedelta(days=day, hours=late_h)
    fields = {"records": rows} if expected is None else {"records": rows, "expected_records": expected}
    return body(
        event_dict("phase3", "started", start.isoformat(), PROC, run_date=str(run_date)),
        event_dict("phase3", "succeeded", start.isoformat(), PROC, run_date=str(run_date),
                   duration_s=360.0 + 7 * (day % 3), **fields),
    )


def _live_rows(pw: Phasewatch, day: int, rows: int, expected: int | None,
               late_h: float = 0.0) -> None:
    """Day ``day``'s run ingested when it happens (inside the actionable horizon)."""
    clock = pw.clock
    assert isinstance(clock, FakeClock)
    finish = datetime(2026, 1, 2, 6, 15, tzinfo=UTC) + timedelta(days=day, hours=late_h, minutes=7)
    clock.set(max(clock.now(), finish))
    pw.collector.ingest_body(_rows_day(day, rows, expected, late_h))


def _games(day: int) -> int:
    """A season's varying slate: 3 to 12 games a day, 25 players each."""
    return 3 + (day * 7) % 10


def _normal_volume(pw: Phasewatch, days: int) -> None:
    for day in range(days):
        expected = 25 * _games(day)
        _live_rows(pw, day, round(expected * (0.96 + 0.01 * (day % 3))), expected)


def _delivered(pw: Phasewatch, kind: str) -> list[str]:
    pw.run_job("deliver-alerts", pw.clock.now() + timedelta(seconds=30))
    return [d.notification.alert.summary for d in pw.router.history  # one notice per run
            if d.notification.alert.name == "anomaly" and d.notification.alert.labels["kind"] == kind]


def test_row_drop_on_a_normal_game_day_is_flagged_once_naming_the_run(app: Phasewatch) -> None:
    _normal_volume(app, 21)
    assert not [a for a in app.anomalies.recent if a.kind == "records"]
    _live_rows(app, 21, 120, 250)  # 10 games, half the rows
    flagged = [a for a in app.anomalies.recent if a.kind == "records"]
    assert len(flagged) == 1
    anomaly = flagged[0]
    assert (anomaly.rows, anomaly.expected_rows, anomaly.value) == (120, 250, 0.48)
    assert anomaly.lower is not None and 0.48 < anomaly.lower < 0.96 < anomaly.upper  # type: ignore[operator]
    assert anomaly.as_dict()["reason"] == "spike"
    summaries = _delivered(app, "records")
    assert len(summaries) == 1
    assert summaries[0].startswith(f"{PROC} wrote fewer rows than usual: 120 of 250 expected (48%)")
    assert ", usually " in summaries[0] and summaries[0].endswith("% (2026-01-22 overnight)")


def test_days_without_games_or_with_few_games_are_not_flagged(app: Phasewatch) -> None:
    _normal_volume(app, 21)
    _live_rows(app, 21, 0, 0)  # no games: nothing expected, nothing judged
    _live_rows(app, 22, 48, 50)  # a two-game night
    _live_rows(app, 23, 290, 300)
    assert not [a for a in app.anomalies.recent if a.kind == "records"]
    assert not _delivered(app, "records")


def test_volume_is_judged_after_two_weeks_of_runs(app: Phasewatch) -> None:
    _normal_volume(app, 10)
    _live_rows(app, 10, 10, 250)  # too early to know what is usual
    assert not [a for a in app.anomalies.recent if a.kind == "records"]


def test_rows_without_expected_records_are_judged_as_counts(app: Phasewatch) -> None:
    for day in range(21):
        _live_rows(app, day, 240 + day % 5, None)
    _live_rows(app, 21, 30, None)
    flagged = [a for a in app.anomalies.recent if a.kind == "records"]
    assert [(a.rows, a.expected_rows) for a in flagged] == [(30, None)]
    assert "than usual: 30 rows, usually 2" in _delivered(app, "records")[0]


def test_late_arrival_alert_names_the_expected_range_and_run(app: Phasewatch) -> None:
    _normal_volume(app, 20)
    _live_rows(app, 20, 73, 75, late_h=6.0)  # 01:15 ET usually
    summaries = _delivered(app, "late")
    assert summaries == [f"{PROC} finished later than usual: +1d 07:15, usually +1d 00:47 to "
                         "+1d 01:42 (2026-01-21 overnight)"]
    assert not _delivered(app, "records")


# ----------------------------------------------------------- phases and nights without games

PHASE3 = ("team_offense_game_summary", "player_game_summary", "team_defense_game_summary",
          "upcoming_player_game_context", "upcoming_team_game_context")


def _phase3_night(pw: Phasewatch, day: int, minutes: dict[str, float], games: int = 8) -> None:
    """Every Phase 3 processor of day ``day``'s overnight run, started at 02:00 ET together and
    ingested as each event happens; the last one to finish completes the phase."""
    run_date = date(2026, 1, 1) + timedelta(days=day)
    start = datetime(2026, 1, 2, 7, 0, tzinfo=UTC) + timedelta(days=day)
    timeline = []
    for name in PHASE3:
        finish = start + timedelta(minutes=minutes.get(name, 10.0 + (day % 3) * 0.2))
        timeline.append((start, event_dict("phase3", "started", start.isoformat(), name,
                                           run_date=str(run_date))))
        timeline.append((finish, event_dict("phase3", "succeeded", finish.isoformat(), name,
                                            run_date=str(run_date), records=25 * games,
                                            expected_records=25 * games)))
    clock = pw.clock
    assert isinstance(clock, FakeClock)
    for at, event in sorted(timeline, key=lambda item: item[0]):
        clock.set(max(clock.now(), at))
        pw.collector.ingest_body(body(event))


def test_a_phase_completed_by_its_processors_is_a_duration_series(app: Phasewatch) -> None:
    for day in range(20):
        _phase3_night(app, day, {})
    assert ("phase3", "") in {(k.phase, k.processor) for k in app.anomalies.series()
                              if k.kind == "duration"}
    _phase3_night(app, 20, {"team_defense_game_summary": 45.0})
    flagged = {(a.processor, a.kind) for a in app.anomalies.recent}
    assert ("", "duration") in flagged  # the phase took 45 min, usually 10
    assert ("team_defense_game_summary", "duration") in flagged
    phase = next(a for a in app.anomalies.recent if (a.processor, a.kind) == ("", "duration"))
    assert phase.value == 45 * 60.0 and phase.expected is not None and phase.expected < 11 * 60


def test_nights_without_games_teach_the_durations_nothing(app: Phasewatch) -> None:
    for day in range(28):
        _phase3_night(app, day, {})
    for day in range(28, 34):  # the All-Star break: runs that do no work
        _phase3_night(app, day, dict.fromkeys(PHASE3, 2.0), games=0)
    for day in range(34, 40):
        _phase3_night(app, day, {})
    assert not [a for a in app.anomalies.recent if a.kind == "duration"]


def test_a_slow_light_night_is_flagged_though_heavy_nights_take_longer(app: Phasewatch) -> None:
    def minutes(day: int, games: int) -> dict[str, float]:  # 4 min fixed, 1 min a game
        return {"player_game_summary": (4.0 + games) * (1 + 0.02 * math.sin(day * 2.39))}

    for day in range(42):
        games = 2 + (day * 5) % 13
        _phase3_night(app, day, minutes(day, games), games=games)
    assert not [a for a in app.anomalies.recent if a.kind == "duration"]
    _phase3_night(app, 42, {"player_game_summary": 14.0}, games=3)  # 7 min on 3-game nights
    flagged = [a for a in app.anomalies.recent
               if (a.kind, a.processor) == ("duration", "player_game_summary")]
    assert [a.value for a in flagged] == [14 * 60.0]
    assert flagged[0].expected == pytest.approx(7 * 60.0, rel=0.05)


# ------------------------------------------------------------------------ batches


def _phase3_season(nights: int, slow: dict[int, dict[str, float]],
                   short: tuple[int, str]) -> list[dict[str, object]]:
    """Every Phase 3 event of ``nights`` overnight runs in arrival order: durations, rows and
    finishing times that vary from night to night; ``slow``: night -> minutes of a processor;
    ``short``: the night and processor that writes a third of its rows."""
    events: list[tuple[datetime, dict[str, object]]] = []
    for day in range(nights):
        run_date = str(date(2026, 1, 1) + timedelta(days=day))
        start = datetime(2026, 1, 2, 7, 0, tzinfo=UTC) + timedelta(days=day, minutes=(day * 7) % 30)
        games = 3 + (day * 5) % 10
        for i, name in enumerate(PHASE3):
            minutes = slow.get(day, {}).get(name, 8.0 + i + (day * (i + 3)) % 5 * 0.3)
            finish = start + timedelta(minutes=minutes)
            rows = 25 * games - (day + i) % 3
            if (day, name) == short:
                rows //= 3
            events.append((start, event_dict("phase3", "started", start.isoformat(), name,
                                             run_date=run_date)))
            events.append((finish, event_dict("phase3", "succeeded", finish.isoformat(), name,
                                              run_date=run_date, duration_s=minutes * 60,
                                              records=rows, expected_records=25 * games)))
    return [event for _, event in sorted(events, key=lambda item: item[0])]


def test_a_batch_judges_and_tells_as_its_events_one_by_one(nba_config: Config,
                                                           tmp_path: Path) -> None:
    """A body of many runs, some outside the horizon (learnt in silence) and one inside, gives
    the outliers, in the same order, the notices and the detectors' state that its events
    sent one at a time give. The last run's slowest processor completes the phase: two
    outliers of one event."""
    slow = {22: {"player_game_summary": 40.0},  # outside the horizon: learnt, not told
            28: {"team_defense_game_summary": 45.0, "upcoming_team_game_context": 50.0,
                 "team_offense_game_summary": 30.0}}
    events = _phase3_season(29, slow, short=(28, "player_game_summary"))
    now = datetime.fromisoformat(str(events[-1]["timestamp"])) + timedelta(minutes=5)
    apps = [Phasewatch.build(nba_config, db_path=tmp_path / f"{name}.db", clock=FakeClock(now))
            for name in ("batch", "single")]
    try:
        apps[0].collector.ingest_body(body(*events))
        for event in events:
            apps[1].collector.ingest_body(body(event))
        batch, single = (app.anomalies for app in apps)
        assert batch.as_report() == single.as_report()
        assert [(a.run_date, a.processor, a.kind) for a in batch.recent] == [
            ("2026-01-29", "player_game_summary", "records"),
            ("2026-01-29", "team_offense_game_summary", "duration"),
            ("2026-01-29", "team_defense_game_summary", "duration"),
            ("2026-01-29", "upcoming_team_game_context", "duration"),
            ("2026-01-29", "", "duration"),  # the phase, completed by the event before it
        ]
        assert batch.detectors.export_state() == single.detectors.export_state()
        told = [[d.notification.alert.summary for d in app.router.history] for app in apps]
        assert told[0] == told[1]
    finally:
        for app in apps:
            app.close()
