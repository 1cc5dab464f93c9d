"""Stalled work, budgets, cooldowns and guards."""

from __future__ import annotations

from datetime import datetime
from typing import Any

import pytest

from monitor.actuator.guards import error_signature
from monitor.actuator.sinks import SinkResult
from tests.actuator_support import edit_config, nba_config, phase_of, rig

WORKER = "prediction-worker"


def test_error_signature_masks_ids_and_numbers_and_keeps_the_cause() -> None:
    a = error_signature("400 Provided Schema does not match Table x. Cannot add fields player 1630166")
    b = error_signature("400 Provided Schema does not match Table x. Cannot add fields player 1629029")
    assert a == b and "Provided Schema does not match" in a
    trace = "Traceback (most recent call last):\n  File 'w.py', line 3\nImportError: cannot import name 'firestore'"
    assert error_signature(trace) == "ImportError: cannot import name 'firestore'"
    assert error_signature("job 3f2c1a9e-1b2c-4d5e-8f90-123456789abc failed at 0x7f3a") == "job <id> failed at <hex>"
    assert error_signature("  ") == ""


def _batch(r: Any, batch: str, done: int, total: int, status: str = "progress",
           run_date: str = "2026-01-17") -> None:
    r.ingest("phase5", status, WORKER, run_date=run_date, batch_id=batch, done=done, total=total)


def test_batch_near_complete_and_idle_is_checked_once() -> None:
    with rig() as r:
        _batch(r, "b1", 0, 100, "started")
        for done in (40, 80, 96):
            r.clock.advance(120)
            _batch(r, "b1", done, 100)
        r.tick_for(9 * 60)
        assert r.pw.report_sections()["recoveries"] == []
        r.tick_for(90)
        steps = r.pw.report_sections()["recoveries"]
        assert [(s["action"], s["outcome"], s["batch_id"], s["rule"]) for s in steps] == [
            ("check_stalled", "accepted", "b1", "near_complete")]
        (request,) = [s.request for s in r.sent() if s.request.action == "check_stalled"]
        assert request.batch_id == "b1" and request.reason == "recovery"
        assert r.raised("batch_stalled") and r.raised("stalled_recovered")
        r.tick_for(3600)  # silent since: the recovery is not repeated
        assert len(r.pw.report_sections()["recoveries"]) == 1
        skipped = [a for a in r.pw.actuator.store.audit_rows(kinds=("decision",))  # type: ignore[union-attr]
                   if a["reason"] == "no_activity_since_recovery"]
        assert [a["rule"] for a in skipped] == ["near_complete"]


def test_budget_per_run_blocks_further_actions_with_an_alert() -> None:
    with rig(nba_config(budget={"per_run": 2, "cooldown_min": 0})) as r:
        for batch in ("b1", "b2"):
            _batch(r, batch, 0, 100, "started")
        r.tick_for(20 * 60)
        steps = r.pw.report_sections()["recoveries"]
        assert len([s for s in steps if s["outcome"] == "accepted"]) == 2
        (alert,) = r.raised("action_budget_exhausted")
        assert "budget 2" in alert.summary
        blocked = [a for a in r.pw.actuator.store.audit_rows(kinds=("decision",))  # type: ignore[union-attr]
                   if a["reason"] == "budget"]
        assert blocked


def test_run_scoped_actions_are_not_repeated_within_the_cooldown() -> None:
    with rig() as r:
        for batch in ("b1", "b2"):
            _batch(r, batch, 0, 100, "started")
        r.tick_for(16 * 60)
        steps = [(s["batch_id"], s["action"], s["outcome"]) for s in r.pw.report_sections()["recoveries"]]
        assert steps == [
            ("b1", "force_complete", "accepted"), ("b1", "reset", "accepted"), ("b1", "start", "accepted"),
            ("b2", "force_complete", "accepted"), ("b2", "reset", "skipped"), ("b2", "start", "skipped"),
        ]


def test_retry_storm_alerts_once_and_holds_automated_restarts() -> None:
    with rig() as r:
        for _ in range(12):
            r.clock.advance(20)
            r.ingest("phase5", "started", WORKER, run_date="2026-01-17")
        (storm,) = r.raised("retry_storm")
        assert "started 11 times" in storm.summary and storm.labels["processor"] == WORKER
        assert r.pw.actuator.ctx.guards.blocking("nba", "phase5", ("nba", "2026-01-17", "overnight"))  # type: ignore[union-attr]
        assert r.pw.actuator.ctx.guards.blocking("nba", "phase5", ("nba", "2026-01-16", "overnight")) is None  # type: ignore[union-attr]
        r.ingest("phase5", "succeeded", WORKER, run_date="2026-01-17")
        assert r.pw.actuator.ctx.guards.active() == []  # type: ignore[union-attr]


def test_start_windows_are_swept_only_when_they_have_doubled(monkeypatch: pytest.MonkeyPatch) -> None:
    import monitor.actuator.guards as guards_module

    monkeypatch.setattr(guards_module, "_WINDOWS_BEFORE_SWEEP", 4)

    def any_run_date(data: dict[str, Any]) -> None:  # many run dates at one time, as in a storm
        data["pipelines"][0]["horizon"] = {"run_dates": {"overnight": "any"}}

    with rig(edit_config(any_run_date)) as r:
        guards = r.pw.actuator.ctx.guards  # type: ignore[union-attr]
        guards._sweep_at = 4
        sweeps: list[int] = []
        real_sweep = guards._sweep
        monkeypatch.setattr(guards, "_sweep", lambda before: (sweeps.append(1), real_sweep(before)))
        days = [f"2026-01-{d:02d}" for d in range(3, 18)]
        for day in days:  # 15 live windows, all inside the storm window
            r.ingest("phase5", "started", WORKER, run_date=day)
        # Sweeps at 4, 8 and 16 windows' worth, not at every start past the fourth.
        assert len(sweeps) == 2 and len(guards._starts) == 15
        r.clock.advance(2 * 3600)  # every window is now stale: the next sweep drops them
        for day in ("2026-01-01", "2026-01-02"):  # the second new window finds 16 kept
            r.ingest("phase5", "started", WORKER, run_date=day)
        assert len(sweeps) == 3 and len(guards._starts) == 2


def test_deterministic_failure_alerts_once_and_clears_on_success() -> None:
    with rig() as r:
        for i in range(14):
            r.clock.advance(5)
            r.ingest("phase5", "failed", WORKER, run_date="2026-01-17",
                     error=f"ImportError: cannot import name 'firestore' (player {i})")
        (alert,) = r.raised("deterministic_failure")
        assert alert.severity == "critical" and "10 times in a row" in alert.summary
        r.ingest("phase5", "failed", WORKER, run_date="2026-01-17", error="ValueError: different")
        r.ingest("phase5", "succeeded", WORKER, run_date="2026-01-17")
        assert r.pw.actuator.ctx.guards.active() == []  # type: ignore[union-attr]
        kinds = [a["outcome"] for a in r.pw.actuator.store.audit_rows(kinds=("guard",))]  # type: ignore[union-attr]
        assert kinds == ["tripped", "cleared"]


def test_consecutive_failed_runs_alert() -> None:
    with rig(start=datetime.fromisoformat("2026-01-15T06:00:00+00:00")) as r:
        for day in ("2026-01-14", "2026-01-15", "2026-01-16"):  # each failing the night after
            r.ingest("phase3", "failed", "team_defense_game_summary", run_date=day, error=f"boom {day}")
            r.clock.advance(24 * 3600)
        (alert,) = r.raised("failed_runs")
        assert "3 consecutive runs" in alert.summary


def test_stalled_processor_by_adaptive_timeout_and_by_heartbeat_with_a_retrigger() -> None:
    def edit(data: dict[str, Any]) -> None:
        phase_of(data, "phase4")["transition"]["recovery"] = {"stalled_processors": ["retrigger"]}

    asked: list[tuple[str, str, str | None, str]] = []

    def timeouts(pipeline: str, phase: str, processor: str | None, mode: str) -> float | None:
        asked.append((pipeline, phase, processor, mode))
        return 600.0 if processor == "player_daily_cache" else None

    with rig(edit_config(edit)) as r:
        assert r.pw.actuator is not None
        r.pw.actuator.ctx.timeouts = timeouts
        r.ingest("phase4", "started", "player_daily_cache")
        r.ingest("phase4", "started", "ml_feature_store")
        r.clock.advance(60)
        r.ingest("phase4", "progress", "ml_feature_store")
        r.tick_for(8 * 60)
        assert r.raised("processor_stalled") == []
        r.tick_for(60)
        (first,) = r.raised("processor_stalled")
        assert first.labels["processor"] == "player_daily_cache" and "timeout of 10 min" in first.summary
        retriggers = [s.request for s in r.sent("phase4") if s.request.action == "retrigger"]
        assert [q.processors for q in retriggers] == [("player_daily_cache",)]
        r.tick_for(6 * 60)
        stalled = {a.labels["processor"] for a in r.raised("processor_stalled")}
        assert stalled == {"player_daily_cache", "ml_feature_store"}  # no heartbeat for 15 min
        assert ("nba", "phase4", "player_daily_cache", "overnight") in asked


def test_recovery_step_failures_retry_then_give_up_with_an_alert() -> None:
    with rig(nba_config(budget={"step_attempts": 2})) as r:
        r.sink.responder = lambda target, request: (
            SinkResult("failed", "HTTP 500") if request.action == "force_complete" else None)
        _batch(r, "b1", 0, 100, "started")
        r.tick_for(30 * 60)
        outcomes = [(s["action"], s["outcome"]) for s in r.pw.report_sections()["recoveries"]]
        assert outcomes == [("force_complete", "failed"), ("force_complete", "failed")]
        (alert,) = r.raised("recovery_failed")
        assert "force_complete" in alert.summary


@pytest.mark.parametrize("enabled", [False])
def test_kill_switch_plans_no_recovery(enabled: bool) -> None:
    with rig(nba_config(enabled=enabled)) as r:
        _batch(r, "b1", 0, 100, "started")
        r.tick_for(20 * 60)
        assert r.pw.report_sections()["recoveries"] == []
        assert r.raised("batch_stalled")  # still told
