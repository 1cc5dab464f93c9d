"""Anomalies through the whole stack: finished runs → detectors → report, metric, one alert."""

from __future__ import annotations

from datetime import date, datetime, timedelta
from pathlib import Path

from monitor.app.phasewatch import Phasewatch
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
    keys = [d.notification.alert.key for d in app.router.history]
    assert sum("kind=duration" in k for k in keys) == 1
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


def test_adaptive_timeout_needs_history(app: Phasewatch) -> None:
    static = app.anomalies.timeout("nba", "phase3", PROC, "overnight", static_s=3600)
    assert (static.seconds, static.source) == (3600, "static")
    _history(app, 20)
    learned = app.anomalies.timeout("nba", "phase3", PROC, "overnight", static_s=3600)
    assert learned.source == "adaptive"
    assert 60 <= learned.seconds < 3600
