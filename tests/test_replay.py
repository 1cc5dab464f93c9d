"""Replay and demo: the contract report, validation before simulation, the CLI."""

from __future__ import annotations

import json
from datetime import datetime
from pathlib import Path

import pytest
from click.testing import CliRunner

from monitor.app.cli.main import main
from monitor.app.sim.replay import REPORT_LISTS, ReplayError, run_replay
from monitor.config import load_config
from tests.conftest import DemoRun
from tests.factories import event_dict


def _write(path: Path, lines: list[dict[str, object]]) -> Path:
    path.write_text("".join(json.dumps(line) + "\n" for line in lines))
    return path


def test_replay_report_has_every_contract_list(tmp_path: Path) -> None:
    path = _write(tmp_path / "e.jsonl", [
        event_dict("phase2", "started", "2026-01-18T06:00:00Z", "p2_odds_game_lines"),
        {"type": "health", "service": "prediction-worker", "status": "fail",
         "timestamp": "2026-01-18T06:01:00Z", "body": {"status": "unhealthy"}},
        {"type": "target", "phase": "phase4", "status": "fail", "timestamp": "2026-01-18T06:02:00Z"},
        {"type": "check", "name": "games_today", "value": 9, "timestamp": "2026-01-18T06:03:00Z"},
        event_dict("phase2", "succeeded", "2026-01-18T06:04:00Z", "p2_odds_game_lines"),
    ])
    outcome = run_replay(path, load_config())
    report = outcome.report
    for name in REPORT_LISTS:
        assert isinstance(report[name], list)
    assert report["events_stored"] == 2
    assert report["time"] == "2026-01-18T07:04:00+00:00"  # one hour past the last line
    (run,) = report["runs"]
    assert run["mode"] == "overnight"
    assert 'phasewatch_events_total{phase="phase2",pipeline="nba",processor="p2_odds_game_lines",status="succeeded"} 1.0' in outcome.metrics_text


def test_replay_runs_ticks_on_simulated_time(tmp_path: Path) -> None:
    from monitor.app.phasewatch import Phasewatch
    from monitor.app.sim.replay import SimulatedWorld, read_lines, replay
    from monitor.clock import FakeClock

    path = _write(tmp_path / "e.jsonl", [
        event_dict("phase1", "started", "2026-01-18T06:00:00Z"),
        event_dict("phase1", "succeeded", "2026-01-18T06:10:00Z"),
    ])
    clock = FakeClock(datetime.fromisoformat("2026-01-18T06:00:00+00:00"))
    pw = Phasewatch.build(load_config(), db_path=":memory:", clock=clock)
    seen: list[str] = []
    pw.add_job("probe", lambda now: seen.append(now.isoformat()))
    replay(read_lines(path, pw), pw, clock, SimulatedWorld())
    # every 30 s from 06:00 through 07:10 inclusive
    assert seen[0] == "2026-01-18T06:00:00+00:00"
    assert seen[-1] == "2026-01-18T07:10:00+00:00"
    assert len(seen) == 70 * 2 + 1
    pw.close()


@pytest.mark.parametrize(("line", "where"), [
    ("not json", "line"),
    (json.dumps({"type": "weather", "timestamp": "2026-01-18T06:00:00Z"}), "type"),
    (json.dumps({"type": "health", "service": "nope", "status": "pass",
                 "timestamp": "2026-01-18T06:00:00Z"}), "service"),
    (json.dumps({"type": "target", "phase": "phase4", "status": "maybe",
                 "timestamp": "2026-01-18T06:00:00Z"}), "status"),
    (json.dumps(event_dict("phase9", "started", "2026-01-18T06:00:00Z")), "phase"),
    (json.dumps(event_dict("phase2", "started", "2026-01-18T06:00:00")), "timestamp"),
])
def test_bad_line_fails_before_anything_is_written(tmp_path: Path, line: str, where: str) -> None:
    good = json.dumps(event_dict("phase1", "started", "2026-01-18T05:00:00Z"))
    path = tmp_path / "e.jsonl"
    path.write_text(good + "\n" + line + "\n")
    with pytest.raises(ReplayError) as info:
        run_replay(path, load_config())
    assert info.value.line == 2
    assert info.value.problems[0].field == where
    result = CliRunner().invoke(main, ["replay", str(path), "--report", str(tmp_path / "r.json")])
    assert result.exit_code == 2
    assert f"{path}:2: {where}" in result.output
    assert not (tmp_path / "r.json").exists()


def test_replay_cli_writes_report(tmp_path: Path) -> None:
    path = _write(tmp_path / "e.jsonl", [event_dict("phase1", "started", "2026-01-18T05:00:00Z")])
    out = tmp_path / "r.json"
    result = CliRunner().invoke(main, ["replay", str(path), "--report", str(out),
                                       "--until", "2026-01-18T09:00:00Z"])
    assert result.exit_code == 0, result.output
    report = json.loads(out.read_text())
    assert report["time"] == "2026-01-18T09:00:00+00:00"
    bad_until = CliRunner().invoke(main, ["replay", str(path), "--until", "tomorrow"])
    assert bad_until.exit_code == 2 and "--until" in bad_until.output


def test_demo_prints_run_table_and_writes_outputs(demo_run: DemoRun) -> None:
    out, text = demo_run.out_dir, demo_run.output
    assert "pipeline nba (times in America/New_York)" in text
    assert "overnight" in text and "same_day" in text and "tomorrow" in text
    assert "failed x1 (recovered)" in text  # the failed-then-retried critical processor
    report = json.loads((out / "report.json").read_text())
    assert all(name in report for name in REPORT_LISTS)
    events = [json.loads(line) for line in (out / "events.jsonl").read_text().splitlines()]
    assert report["events_stored"] == sum("type" not in e for e in events)
    metrics = (out / "metrics.prom").read_text()
    assert "phasewatch_processor_duration_seconds_bucket" in metrics
    late = [p for run in report["runs"] for ph in run["phases"] for p in ph["processors"]
            if p["name"] == "team_defense_game_summary" and (p["duration_s"] or 0) > 2 * 3600]
    assert len(late) == 1  # the late processor of the last overnight run
    # the actuator's part of the story: a health-gated deferral then "retry after health
    # recovers", a degraded trigger, a re-trigger after no effect, a stalled-batch recovery
    assert any(d["reason"] == "health" for d in report["deferrals"])
    assert any(t.get("note") == "retry after health recovers" for t in report["triggers"])
    assert any(t["reason"] == "critical_plus_fraction" for t in report["triggers"])
    assert any(t["reason"] == "retry" and t["phase"] == "phase6" for t in report["triggers"])
    assert [r["action"] for r in report["recoveries"]] == ["check_stalled"]
    assert any("trigger had no effect" in a["summary"] for a in report["alerts"])
    assert report["daily_summaries"] and "latest daily health summary" in text
    assert "SLOs:" in text


def test_status_reads_the_store(tmp_path: Path) -> None:
    db = tmp_path / "pw.db"
    path = _write(tmp_path / "e.jsonl", [
        event_dict("phase3", "started", "2026-01-18T06:00:00Z", "player_game_summary"),
        event_dict("phase3", "failed", "2026-01-18T06:20:00Z", "player_game_summary", error="x"),
    ])
    assert CliRunner().invoke(main, ["replay", str(path), "--db", str(db)]).exit_code == 0
    result = CliRunner(env={"COLUMNS": "160"}).invoke(main, ["status", "--db", str(db)])
    assert result.exit_code == 0, result.output
    assert "2026-01-17  overnight" in result.output and "FAIL 0/5" in result.output
    detail = CliRunner().invoke(main, ["status", "--db", str(db), "--run-date", "2026-01-17"])
    assert "player_game_summary" in detail.output and "failed" in detail.output
    bad = CliRunner().invoke(main, ["status", "--db", str(db), "--pipeline", "nhl"])
    assert bad.exit_code == 2 and "allowed: nba" in bad.output


def test_health_probes_feed_the_availability_slo(tmp_path: Path) -> None:
    path = _write(tmp_path / "e.jsonl", [
        event_dict("phase1", "started", "2026-01-18T06:00:00Z"),
        {"type": "health", "service": "prediction-worker", "status": "fail",
         "timestamp": "2026-01-18T06:30:00Z", "body": {"status": "unhealthy"}},
        {"type": "health", "service": "prediction-worker", "status": "pass",
         "timestamp": "2026-01-18T07:00:00Z"},
    ])
    report = run_replay(path, load_config()).report
    (slo,) = [s for s in report["slos"] if s["name"] == "nba-prediction-worker-availability"]
    assert slo["total"] > 0 and 0 < slo["bad"] < slo["total"]  # the 30 failing minutes count
