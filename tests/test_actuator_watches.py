"""Data watches and cascade re-runs (incident 13's ideal responses as general capabilities)."""

from __future__ import annotations

from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

from monitor.actuator.api import manual_action
from monitor.actuator.cascade import CascadeRow, CascadeStore
from monitor.actuator.entities import failure_categories
from monitor.actuator.errors import ActionError
from monitor.app.sim.replay import CheckLine, HealthLine
from monitor.config import Config
from tests.actuator_support import (
    PHASE3_OVERNIGHT,
    PHASE4,
    Rig,
    edit_config,
    nba_config,
    phase_of,
    rig,
)

PHASE2 = ["p2_odds_game_lines", "p2_nbacom_gamebook_pdf", "p2_nbacom_boxscores",
          "p2_bigdataball_pbp", "p2_odds_player_props"]


def _aware(text: str) -> datetime:
    return datetime.fromisoformat(text)


def test_failure_categories_read_counts_and_names_largest_first() -> None:
    attrs = {"failures.dependency_missing": "281", "failures.timeout": "x",
             "failures.lockout": "474", "failure_categories": "timeout, quota", "lockouts": "3"}
    assert failure_categories(attrs) == {"lockout": 474, "dependency_missing": 281,
                                         "quota": None, "timeout": None}
    assert failure_categories({}) == {}


def _six_expected(data: dict[str, Any]) -> None:
    phase2 = phase_of(data, "phase2")
    phase2["processors"].append({"name": "p2_br_season_roster", "priority": "optional"})
    phase2["modes"]["overnight"] = {"expected": [*PHASE2, "p2_br_season_roster"],
                                    "critical": PHASE2[:3]}


def test_expected_list_drift_fires_after_a_whole_window_and_resolves_when_it_reports() -> None:
    config = edit_config(_six_expected)
    with rig(config, start=_aware("2026-02-01T06:00:00+00:00")) as r:
        def day(n: int) -> None:
            r.clock.set(_aware("2026-02-01T06:00:00+00:00") + timedelta(days=n))
            rd = (datetime(2026, 1, 31) + timedelta(days=n)).date().isoformat()
            r.complete("phase2", PHASE2, run_date=rd, mode="overnight")
            r.pw.run_job("actuator-drift")

        for n in range(7):  # less than 7 days watched: not judged yet
            day(n)
            assert not r.raised("expected_list_drift"), n
        day(7)
        (drift,) = r.raised("expected_list_drift")
        assert drift.severity == "info"
        assert drift.summary.startswith("expected-list drift: p2_br_season_roster expected in "
                                        "overnight but never reported in 7 days")
        assert drift.labels == {"pipeline": "nba", "phase": "phase2", "mode": "overnight",
                                "processor": "p2_br_season_roster"}
        day(8)  # still drifting: one alert, not one per scan
        assert len(r.raised("expected_list_drift")) == 1
        r.ingest("phase2", "succeeded", "p2_br_season_roster", run_date="2026-02-08",
                 mode="overnight")
        r.pw.run_job("actuator-watch")  # a tick, not the hourly scan, resolves it
        assert r.pw.actuator is not None
        resolved = [x for x in r.pw.actuator.ctx.notifier.raised
                    if x.kind == "expected_list_drift" and x.action == "resolve"]
        assert len(resolved) == 1


def test_expected_list_drift_ignores_the_correct_list() -> None:
    with rig(start=_aware("2026-02-01T06:00:00+00:00")) as r:
        for n in range(9):
            r.clock.set(_aware("2026-02-01T06:00:00+00:00") + timedelta(days=n))
            rd = (datetime(2026, 1, 31) + timedelta(days=n)).date().isoformat()
            r.complete("phase2", PHASE2, run_date=rd, mode="overnight")
            r.pw.run_job("actuator-drift")
        assert not r.raised("expected_list_drift")


def _lockouts_from_check(data: dict[str, Any]) -> None:
    for proc in phase_of(data, "phase3")["processors"]:
        if proc["name"] == "upcoming_player_game_context":
            proc["coverage"] = {"min_ratio": 0.9, "lockouts_over": 50,
                                "lockouts_check": "ctx_lockouts"}


def test_coverage_drop_then_mass_lockout_from_a_check_and_both_resolve() -> None:
    with rig(edit_config(_lockouts_from_check)) as r:
        ctx = "upcoming_player_game_context"
        r.ingest("phase3", "succeeded", ctx, records=95, expected_records=100)
        r.pw.run_job("actuator-watch")
        assert not r.raised("entity_coverage_drop")  # 95% is above 90%
        r.clock.advance(60)
        r.ingest("phase3", "succeeded", ctx, records=85, expected_records=100,
                 attributes={"failures.dependency_missing": "15"})
        r.pw.run_job("actuator-watch")
        (drop,) = r.raised("entity_coverage_drop")
        assert "85/100 (85%), below 90%" in drop.summary
        assert "dependency_missing=15" in drop.summary
        assert not r.raised("mass_lockout")  # no lockout count yet
        r.world.apply(CheckLine(type="check", name="ctx_lockouts", value=40,
                                timestamp=r.clock.now()))
        r.pw.run_job("actuator-watch")
        assert not r.raised("mass_lockout")  # 40 is not over 50
        r.world.apply(CheckLine(type="check", name="ctx_lockouts", value=60,
                                timestamp=r.clock.now()))
        r.pw.run_job("actuator-watch")
        r.pw.run_job("actuator-watch")
        (lockout,) = r.raised("mass_lockout")
        assert "60 entities locked out (over 50)" in lockout.summary
        r.clock.advance(600)
        r.ingest("phase3", "succeeded", ctx, records=99, expected_records=100)
        r.pw.run_job("actuator-watch")
        assert r.pw.actuator is not None
        resolved = {x.kind for x in r.pw.actuator.ctx.notifier.raised if x.action == "resolve"}
        assert {"entity_coverage_drop", "mass_lockout"} <= resolved


def _same_day_phase2(r: Rig, run_date: str) -> None:
    r.complete("phase2", PHASE2, run_date=run_date, mode="same_day")


def test_subscriber_invoked_in_time_raises_nothing() -> None:
    with rig(start=_aware("2026-02-10T14:00:00+00:00")) as r:
        _same_day_phase2(r, "2026-02-10")
        r.clock.advance(600)
        r.ingest("phase3", "started", "upcoming_player_game_context", run_date="2026-02-10",
                 mode="same_day")
        r.tick_for(3600)
        assert not r.raised("subscriber_not_invoked")


def test_subscriber_not_invoked_is_not_blamed_while_the_service_is_down() -> None:
    with rig(start=_aware("2026-02-10T14:00:00+00:00")) as r:
        r.world.apply(HealthLine(type="health", service="nba-phase3-analytics-processors",
                                 status="fail", timestamp=r.clock.now()))
        _same_day_phase2(r, "2026-02-10")
        r.tick_for(3600)
        assert not r.raised("subscriber_not_invoked")
    with rig(start=_aware("2026-02-10T14:00:00+00:00")) as r:  # the same, healthy: raised
        _same_day_phase2(r, "2026-02-10")
        r.tick_for(3600)
        (alert,) = r.raised("subscriber_not_invoked")
        assert "has no start 30 min after nba-phase2-raw-complete" in alert.summary


def _rerun(r: Rig, **extra: Any) -> dict[str, Any]:
    assert r.pw.actuator is not None
    return manual_action(r.pw.actuator, {"action": "rerun", "pipeline": "nba",
                                         "run_date": "2026-01-17", "phase": "phase3", **extra})


def test_rerun_validates_and_refuses_a_second_cascade_of_the_same_run() -> None:
    with rig() as r:
        with pytest.raises(ActionError) as bad:
            _rerun(r, processor="player_game_summary")
        assert bad.value.problems[0].field == "processor"
        single = _rerun(r)
        assert single["cascade"]["phases"] == ["phase3"]
        with pytest.raises(ActionError) as busy:
            _rerun(r, cascade=True)
        assert busy.value.status_code == 409
        assert r.pw.metrics.manual_interventions.labels("nba", "rerun")._value.get() == 1


def test_cascade_resumes_after_a_restart_and_keeps_one_key_per_generation(tmp_path: Path) -> None:
    db = tmp_path / "pw.db"
    with rig(db=db) as r:
        out = _rerun(r, cascade=True, actor="ana")
        assert out["cascade"]["phases"] == ["phase3", "phase4", "phase5", "grading", "phase6"]
        (sent,) = r.sent("phase3")
        assert sent.request.idempotency_key == "nba:2026-01-17:overnight:phase3:rerun-1"
        assert sent.request.reason == "manual"
        stopped_at = r.clock.now()
    with rig(db=db, start=stopped_at + timedelta(minutes=5)) as r:  # a new process
        assert not r.sent()
        ctx = "upcoming_player_game_context"
        r.complete("phase3", [p for p in PHASE3_OVERNIGHT if p != ctx], run_date="2026-01-17")
        r.pw.run_job("actuator-watch")
        assert not r.sent("phase4")  # a critical processor still to finish again
        # Its completion makes Phase 3 complete: the cascade, not the transition rule,
        # triggers Phase 4, once.
        r.complete("phase3", [ctx], run_date="2026-01-17")
        r.pw.run_job("actuator-watch")
        r.pw.run_job("actuator")
        (phase4,) = r.sent("phase4")
        assert phase4.request.idempotency_key == "nba:2026-01-17:overnight:phase4:rerun-1"
        r.complete("phase4", PHASE4, run_date="2026-01-17")
        r.pw.run_job("actuator-watch")
        assert [s.request.phase for s in r.sent()] == ["phase4", "phase5", "phase5"]


# --- automatic cascade start (actuator.cascades) --------------------------------------------

UPSTREAM_CHECK = "upstream_fixed"
COVERED = "upcoming_player_game_context"  # coverage: {min_ratio: 0.8} in the bundled config
RUN = ("nba", "2026-01-17", "overnight")
ALL_STEPS = ["phase3", "phase4", "phase5", "grading", "phase6"]


def _auto_config(**entry: Any) -> Config:
    return nba_config(cascades=[{"pipeline": "nba", "phase": "phase3", "check": UPSTREAM_CHECK,
                                 "min": 1, **entry}])


def _check(r: Rig, value: float) -> None:
    r.clock.advance(60)
    r.world.apply(CheckLine(type="check", name=UPSTREAM_CHECK, value=value,
                            timestamp=r.clock.now()))


def _coverage(r: Rig, records: int, *, run_date: str = "2026-01-17") -> None:
    r.clock.advance(60)
    r.ingest("phase3", "succeeded", COVERED, run_date=run_date, records=records,
             expected_records=100, attributes={"failures.dependency_missing": str(100 - records)})


def _watch(r: Rig, times: int = 1) -> None:
    for _ in range(times):
        r.pw.run_job("actuator-watch")


def _cascades(r: Rig) -> list[CascadeRow]:
    return CascadeStore(r.pw.store).all()  # type: ignore[arg-type]


def _cascade_audit(r: Rig, action: str) -> list[dict[str, Any]]:
    assert r.pw.actuator is not None
    return [a for a in r.pw.actuator.store.audit_rows(kinds=["cascade"]) if a["action"] == action]


def _manual_reruns(r: Rig) -> float:
    value: float = r.pw.metrics.manual_interventions.labels("nba", "rerun")._value.get()
    return value


def test_auto_cascade_starts_once_when_the_check_newly_passes_during_a_coverage_drop() -> None:
    with rig(_auto_config()) as r:
        _check(r, 0)  # the upstream is still broken
        _coverage(r, 55)
        _coverage(r, 95, run_date="2026-01-16")  # another recent run, covered: not re-run
        _watch(r)
        assert len(r.raised("entity_coverage_drop")) == 1
        assert not _cascades(r) and not r.sent()
        _check(r, 1)  # the fix is confirmed
        _watch(r)
        (row,) = _cascades(r)
        assert row.run == RUN
        assert list(row.phases) == ALL_STEPS
        assert (row.state, row.step, row.reason, row.manual, row.force) == (
            "running", 0, "recovery", False, False)
        assert row.actor == f"check:{UPSTREAM_CHECK}"
        (sent,) = r.sent()
        assert sent.request.phase == "phase3"
        assert (sent.request.run_date, sent.request.mode) == ("2026-01-17", "overnight")
        assert sent.request.idempotency_key == f"nba:2026-01-17:overnight:phase3:rerun-{row.id}"
        assert sent.request.reason == "recovery"
        (start,) = _cascade_audit(r, "start")
        assert (start["outcome"], start["reason"], start["phase"], start["run_date"]) == (
            "accepted", "recovery", "phase3", "2026-01-17")
        assert not start["manual"]
        assert start["actor"] == f"check:{UPSTREAM_CHECK}"
        # An automatic start is not an operator's intervention (README: only POST
        # /v1/actions counts).
        assert _manual_reruns(r) == 0
        _watch(r, 3)  # the same reading on later ticks starts nothing more
        assert len(_cascades(r)) == 1
        assert len(r.sent("phase3")) == 1


def test_auto_cascade_needs_a_newly_passing_check_and_a_firing_coverage_drop() -> None:
    with rig(_auto_config()) as r:  # already passing before the drop: not newly passing
        _check(r, 1)
        _watch(r)
        _coverage(r, 55)
        _watch(r)
        assert len(r.raised("entity_coverage_drop")) == 1
        _check(r, 3)  # a new reading, still passing
        _watch(r, 2)
        assert not _cascades(r) and not r.sent()
    with rig(_auto_config()) as r:  # newly passing, but coverage is fine
        _check(r, 0)
        _coverage(r, 95)
        _watch(r)
        _check(r, 1)
        _watch(r, 2)
        assert not r.raised("entity_coverage_drop")
        assert not _cascades(r) and not r.sent()
    with rig(_auto_config()) as r:  # newly passing after the drop resolved
        _check(r, 0)
        _coverage(r, 55)
        _watch(r)
        _coverage(r, 90)
        _watch(r)
        _check(r, 1)
        _watch(r, 2)
        assert not _cascades(r) and not r.sent()
    with rig(_auto_config()) as r:  # newly failing (below min) during the drop
        _check(r, 2)
        _coverage(r, 55)
        _watch(r)
        _check(r, 0)
        _watch(r, 2)
        assert not _cascades(r) and not r.sent()
    with rig(_auto_config()) as r:  # the first reading ever seen only sets the baseline
        _coverage(r, 55)
        _watch(r)
        _check(r, 1)
        _watch(r, 2)
        assert len(r.raised("entity_coverage_drop")) == 1
        assert not _cascades(r) and not r.sent()
    with rig(_auto_config(within_h=1)) as r:  # the dropped run is older than within_h
        _check(r, 0)
        _coverage(r, 55)
        _watch(r)
        r.clock.advance(2 * 3600)
        _check(r, 1)
        _watch(r, 2)
        assert len(r.raised("entity_coverage_drop")) == 1
        assert not _cascades(r) and not r.sent()


def test_auto_cascade_flapping_check_starts_no_second_cascade_while_one_runs() -> None:
    with rig(_auto_config()) as r:
        _check(r, 0)
        _coverage(r, 55)
        _watch(r)
        for value in (1, 0, 1, 0, 1):
            _check(r, value)
            _watch(r)
        (row,) = _cascades(r)
        assert row.state == "running" and row.step == 0
        assert len(_cascade_audit(r, "start")) == 1
        assert [s.request.phase for s in r.sent()] == ["phase3"]


def _fail_the_rerun(r: Rig) -> None:
    """A critical Phase 3 processor fails again after the re-run trigger: the cascade stops
    (while the coverage drop, from the last finish of the covered processor, still fires)."""
    r.clock.advance(60)
    r.ingest("phase3", "failed", "player_game_summary")
    _watch(r)
    (row,) = _cascades(r)
    assert row.state == "failed", row


def test_auto_cascade_restart_before_the_start_neither_loses_nor_doubles_it(
        tmp_path: Path) -> None:
    db = tmp_path / "pw.db"
    with rig(_auto_config(), db=db) as r:
        _check(r, 0)
        _coverage(r, 55)
        _watch(r)
        _check(r, 1)  # the fix is confirmed; the process stops before its next tick
        passed = r.world.checks[UPSTREAM_CHECK]
        stopped_at = r.clock.now()
    with rig(_auto_config(), db=db, start=stopped_at + timedelta(minutes=2)) as r:
        r.world.apply(passed)  # the same (stored) reading
        _watch(r)
        (row,) = _cascades(r)  # not lost
        assert row.run == RUN and row.reason == "recovery"
        assert [s.request.phase for s in r.sent()] == ["phase3"]
        _watch(r, 2)
        assert len(_cascades(r)) == 1
        _fail_the_rerun(r)
        stopped_at = r.clock.now()
    # Another restart, the coverage drop still firing and the check unchanged: the reading
    # that started the first cascade does not start a second one.
    with rig(_auto_config(), db=db, start=stopped_at + timedelta(minutes=2)) as r:
        r.world.apply(passed)
        _watch(r, 2)
        assert len(r.raised("entity_coverage_drop")) == 1
        assert len(_cascades(r)) == 1 and not r.sent()
        _check(r, 0)  # it breaks and is fixed again: newly passing, a new cascade
        _watch(r)
        _check(r, 1)
        _watch(r)
        assert [c.state for c in _cascades(r)] == ["failed", "running"]
        assert len(r.sent("phase3")) == 1


def test_auto_cascade_restart_after_the_start_does_not_double_it(tmp_path: Path) -> None:
    db = tmp_path / "pw.db"
    with rig(_auto_config(), db=db) as r:
        _check(r, 0)
        _coverage(r, 55)
        _watch(r)
        _check(r, 1)
        _watch(r)
        passed = r.world.checks[UPSTREAM_CHECK]
        _fail_the_rerun(r)
        stopped_at = r.clock.now()
    with rig(_auto_config(), db=db, start=stopped_at + timedelta(minutes=2)) as r:
        r.world.apply(passed)
        _watch(r, 2)
        assert len(_cascades(r)) == 1 and not r.sent()


# --- review fixes ---------------------------------------------------------------------------


def _resolved(r: Rig, kind: str) -> list[Any]:
    assert r.pw.actuator is not None
    return [x for x in r.pw.actuator.ctx.notifier.raised if x.kind == kind and x.action == "resolve"]


def _router_active(r: Rig, kind: str) -> list[Any]:
    return [a for a in r.pw.router.active() if a.labels.get("alertname") == kind]


def test_cascade_stalled_resolves_when_the_late_step_finishes_and_the_cascade_moves_on() -> None:
    with rig() as r:
        _rerun(r, cascade=True)
        r.clock.advance(3 * 3600)  # Phase 3 is late: past start_within + finish_within
        _watch(r)
        (stalled,) = r.raised("cascade_stalled")
        assert stalled.labels["phase"] == "phase3"
        r.complete("phase3", PHASE3_OVERNIGHT)
        _watch(r)
        (row,) = _cascades(r)
        assert (row.state, row.phases[row.step]) == ("running", "phase4")
        assert len(_resolved(r, "cascade_stalled")) == 1  # Phase 3 is no longer late
        assert not _router_active(r, "cascade_stalled")


def test_coverage_drop_fired_before_a_restart_resolves_after_it(tmp_path: Path) -> None:
    db = tmp_path / "pw.db"
    with rig(_auto_config(), db=db) as r:
        _coverage(r, 55)
        _watch(r)
        assert len(_router_active(r, "entity_coverage_drop")) == 1  # durable: outlives us
        stopped_at = r.clock.now()
    with rig(_auto_config(), db=db, start=stopped_at + timedelta(minutes=5)) as r:
        assert len(_router_active(r, "entity_coverage_drop")) == 1
        _coverage(r, 95)  # the re-run covers enough
        _watch(r)
        assert not _router_active(r, "entity_coverage_drop")


def test_coverage_drop_still_firing_after_a_restart_keeps_one_alert(tmp_path: Path) -> None:
    db = tmp_path / "pw.db"
    with rig(_auto_config(), db=db) as r:
        _coverage(r, 55)
        _watch(r)
        stopped_at = r.clock.now()
    with rig(_auto_config(), db=db, start=stopped_at + timedelta(minutes=5)) as r:
        _watch(r, 2)
        assert len(_router_active(r, "entity_coverage_drop")) == 1
        _coverage(r, 95)
        _watch(r)
        assert not _router_active(r, "entity_coverage_drop")


def test_subscriber_not_invoked_fired_before_a_restart_resolves_on_a_later_good_run(
        tmp_path: Path) -> None:
    db = tmp_path / "pw.db"
    with rig(db=db, start=_aware("2026-02-10T14:00:00+00:00")) as r:
        _same_day_phase2(r, "2026-02-10")
        r.tick_for(3600)
        assert len(_router_active(r, "subscriber_not_invoked")) == 1
    # Two days later (the failed run is out of the actuator's window): the subscription
    # works again, which must resolve the alert the previous process raised.
    with rig(db=db, start=_aware("2026-02-12T14:00:00+00:00")) as r:
        _same_day_phase2(r, "2026-02-12")
        r.clock.advance(600)
        r.ingest("phase3", "started", "upcoming_player_game_context", run_date="2026-02-12",
                 mode="same_day")
        r.tick_for(3600)
        assert not _router_active(r, "subscriber_not_invoked")


def test_expected_list_drift_fired_before_a_restart_resolves_after_it(tmp_path: Path) -> None:
    db = tmp_path / "pw.db"
    config = edit_config(_six_expected)
    start = _aware("2026-02-01T06:00:00+00:00")
    with rig(config, db=db, start=start) as r:
        for n in range(8):
            r.clock.set(start + timedelta(days=n))
            rd = (datetime(2026, 1, 31) + timedelta(days=n)).date().isoformat()
            r.complete("phase2", PHASE2, run_date=rd, mode="overnight")
            r.pw.run_job("actuator-drift")
        assert len(_router_active(r, "expected_list_drift")) == 1
        stopped_at = r.clock.now()
    with rig(config, db=db, start=stopped_at + timedelta(minutes=5)) as r:
        r.ingest("phase2", "succeeded", "p2_br_season_roster", run_date="2026-02-07",
                 mode="overnight")
        r.pw.run_job("actuator-drift")
        assert not _router_active(r, "expected_list_drift")


def test_a_rerun_trigger_gets_the_same_retriggers_as_a_first_trigger() -> None:
    with rig() as r:
        _rerun(r)  # Phase 3 ran before; its re-run trigger goes out and nothing happens
        r.tick_for(3 * 3600)
        retriggers = nba_config().actuator.verification.max_retriggers
        assert len(r.sent("phase3")) == 1 + retriggers
        (gave_up,) = [x for x in r.raised("trigger_no_effect") if x.severity == "critical"]
        assert f"after {retriggers} re-trigger(s)" in gave_up.summary
        (row,) = _cascades(r)
        assert row.state == "failed"
    with rig() as r:  # a second re-run of the same run: a budget of its own again
        _rerun(r)
        r.tick_for(3 * 3600)
        _rerun(r)
        r.tick_for(3 * 3600)
        assert len(r.sent("phase3")) == 2 * (1 + retriggers)


def test_a_manual_trigger_after_a_sent_one_gets_the_same_retriggers_as_a_first_trigger() -> None:
    retriggers = nba_config().actuator.verification.max_retriggers
    with rig() as r:
        assert r.pw.actuator is not None
        for _ in range(2):  # the second manual trigger re-sends a trigger already sent
            manual_action(r.pw.actuator, {"action": "trigger", "pipeline": "nba",
                                          "run_date": "2026-01-17", "phase": "phase3"})
            r.tick_for(3 * 3600)  # nothing starts: re-triggered, then given up
        assert len(r.sent("phase3")) == 2 * (1 + retriggers)
        gave_up = [x for x in r.raised("trigger_no_effect") if x.severity == "critical"]
        assert gave_up and all(f"after {retriggers} re-trigger(s)" in x.summary for x in gave_up)


def test_a_non_finite_lockouts_check_does_not_break_the_watch_job() -> None:
    with rig(edit_config(_lockouts_from_check)) as r:
        r.ingest("phase3", "succeeded", "upcoming_player_game_context", records=50,
                 expected_records=100)
        r.world.apply(CheckLine(type="check", name="ctx_lockouts", value=float("inf"),
                                timestamp=r.clock.now()))
        record = r.pw.run_job("actuator-watch")
        assert record.last_error is None
        assert len(r.raised("entity_coverage_drop")) == 1
        assert not r.raised("mass_lockout")  # not a count: the attributes' (none) apply
