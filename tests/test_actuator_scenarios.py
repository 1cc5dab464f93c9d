"""The incidents of the reference pipeline (../shared/incidents.md 5, 6, 11, 12, 13), replayed.

Each scenario in tests/scenarios/ holds events, health, target and check lines; the report
lists (triggers, deferrals, recoveries) and the alerts must show the ideal response within
the incident's time bounds.
"""

from __future__ import annotations

from collections.abc import Iterator
from datetime import datetime, timedelta
from typing import Any

import pytest

from monitor.app.phasewatch import Phasewatch
from tests.actuator_support import run_scenario


def at(text: str) -> datetime:
    return datetime.fromisoformat(text.replace("Z", "+00:00"))


def t(item: dict[str, Any]) -> datetime:
    return datetime.fromisoformat(item["time"])


@pytest.fixture
def scenario(request: pytest.FixtureRequest) -> Iterator[tuple[dict[str, Any], Phasewatch]]:
    report, pw = run_scenario(request.param)
    try:
        yield report, pw
    finally:
        pw.close()


def fired(pw: Phasewatch, kind: str, **labels: str) -> list[Any]:
    assert pw.actuator is not None
    return [r for r in pw.actuator.ctx.notifier.raised
            if r.action == "fire" and r.kind == kind
            and all(r.labels.get(k) == v for k, v in labels.items())]


def delivered(report: dict[str, Any], kind: str) -> list[dict[str, Any]]:
    """Notifications of this alert kind the router delivered (the report's alerts list)."""
    return [a for a in report["alerts"] if a["key"].startswith(kind + ":")]


def triggers(report: dict[str, Any], phase: str, outcome: str | None = None) -> list[dict[str, Any]]:
    return [i for i in report["triggers"] if i["phase"] == phase
            and (outcome is None or i["outcome"] == outcome)]


@pytest.mark.parametrize("scenario", ["incident05_phase3_blocked.jsonl"], indirect=True)
def test_incident05_two_of_five_is_stuck_not_triggered_and_the_worker_crash_is_caught(
    scenario: tuple[dict[str, Any], Phasewatch],
) -> None:
    report, pw = scenario
    t0 = at("2026-01-18T07:01:00Z")  # the first Phase 3 completion
    # Mode-aware rule, 2/5 done with 1 critical: no trigger until the 07:00 ET backstop.
    phase4 = triggers(report, "phase4")
    assert phase4 and all(t(i) >= at("2026-01-18T12:00:00Z") for i in phase4)
    first = phase4[0]
    assert (first["reason"], first["outcome"], first["attempt"]) == ("backstop", "succeeded", 1)
    assert fired(pw, "backstop_trigger", phase="phase4")
    # P1 "phase 3->4 stuck: missing [...]" at T0 + 60 min.
    stuck = fired(pw, "phase_stuck", phase="phase3", target="phase4")
    assert stuck and stuck[0].at - t0 <= timedelta(minutes=61)
    assert stuck[0].at - t0 >= timedelta(minutes=60)
    assert "player_game_summary" in stuck[0].summary
    assert delivered(report, "phase_stuck")
    # P0 crash signature within 5 min of 10 identical failures; retries of it stop.
    crash = fired(pw, "deterministic_failure", processor="prediction-worker")
    assert len(crash) == 1 and crash[0].severity == "critical"
    assert crash[0].summary.startswith("service crash signature (ImportError):")
    assert crash[0].labels["category"] == "service_crash"
    assert crash[0].at <= at("2026-01-18T07:04:38Z") + timedelta(minutes=5)
    assert fired(pw, "retry_storm", processor="prediction-worker")
    unhealthy = fired(pw, "service_unhealthy", service="prediction-worker")
    assert unhealthy and unhealthy[0].at <= at("2026-01-18T07:04:00Z") + timedelta(minutes=5)
    assert delivered(report, "deterministic_failure")
    assert not triggers(report, "phase5", "succeeded") or all(
        i["run_date"] != "2026-01-18" for i in triggers(report, "phase5"))


@pytest.mark.parametrize("scenario", ["incident05_degraded_trigger.jsonl"], indirect=True)
def test_incident05_critical_done_and_three_of_five_triggers_degraded(
    scenario: tuple[dict[str, Any], Phasewatch],
) -> None:
    report, pw = scenario
    (trigger,) = triggers(report, "phase4")
    assert trigger["reason"] == "critical_plus_fraction"
    assert trigger["rule"] == "critical_plus_majority_60pct"
    assert (trigger["outcome"], trigger["attempt"]) == ("succeeded", 1)
    assert t(trigger) == at("2026-01-18T07:20:00Z")  # the third completion, at once
    assert fired(pw, "degraded_trigger", phase="phase4")
    assert not fired(pw, "trigger_no_effect")
    verified = [a for a in pw.actuator.store.audit_rows(kinds=("verification",))]  # type: ignore[union-attr]
    assert [v["outcome"] for v in verified] == ["effect_seen"]


@pytest.mark.parametrize("scenario", ["incident06_crashloop.jsonl"], indirect=True)
def test_incident06_triggers_wait_for_health_then_go_once(
    scenario: tuple[dict[str, Any], Phasewatch],
) -> None:
    report, pw = scenario
    t0 = at("2026-01-21T06:00:00Z")
    recovered = at("2026-01-21T16:19:00Z")
    for service in ("nba-phase3-analytics-processors", "nba-phase4-precompute-processors"):
        alert = fired(pw, "service_unhealthy", service=service)
        assert alert and alert[0].severity == "critical"
        assert alert[0].at - t0 <= timedelta(minutes=5)
        # Unhealthy within 60 min of a deploy (notified at 05:40 for analytics, seen as a
        # new health-body version at 06:00 for precompute): a deploy regression.
        assert alert[0].labels["cause"] == "deploy_regression"
        assert alert[0].labels["deploy_version"] == "2026.01.20-week1"
    (analytics,) = fired(pw, "service_unhealthy", service="nba-phase3-analytics-processors")
    assert "deploy regression (deployed 2026.01.20-week1 at 2026-01-21 00:40 EST)" in analytics.summary
    assert delivered(report, "service_unhealthy")
    assert all(a["labels"]["cause"] == "deploy_regression"
               for a in delivered(report, "service_unhealthy") if a["action"] == "trigger")
    deploys = pw.actuator.ctx.health.deploys.list()  # type: ignore[union-attr]
    assert {(d.service, d.source) for d in deploys} == {
        ("nba-phase3-analytics-processors", "replay"), ("nba-phase4-precompute-processors", "probe")}
    # Phase 2 complete at 08:00 and no Phase 3 start within 15 min: P1, once.
    overdue = fired(pw, "phase_overdue", phase="phase3")
    assert len(overdue) == 1
    assert timedelta(minutes=15) <= overdue[0].at - at("2026-01-21T08:00:00Z") <= timedelta(minutes=16)
    # The re-trigger is held while the analytics service is unhealthy...
    held = [d for d in report["deferrals"] if d["phase"] == "phase3"]
    assert held and all(d["service"] == "nba-phase3-analytics-processors" for d in held)
    assert all(d["reason"] == "health" for d in held)
    for d in held:
        wait = datetime.fromisoformat(d["retry_at"]) - t(d)
        assert timedelta(minutes=4) <= wait <= timedelta(minutes=6)  # 5 min, jittered
    assert any("wrong identity" in d["detail"] for d in held if t(d) >= at("2026-01-21T16:10:00Z"))
    alert = fired(pw, "trigger_deferred", phase="phase3")
    assert alert and alert[0].severity == "critical"
    assert alert[0].labels["service"] == "nba-phase3-analytics-processors"
    # ... and goes out once when health recovers.
    sent = triggers(report, "phase3")
    assert len(sent) == 1
    (one,) = sent
    assert one["outcome"] == "succeeded" and one["note"] == "retry after health recovers"
    assert recovered <= t(one) <= recovered + timedelta(minutes=2)
    # Phase 3 then starts (16:25, within 10 min) and Phase 4 follows its completion.
    (phase4,) = triggers(report, "phase4")
    assert phase4["outcome"] == "succeeded" and t(phase4) <= at("2026-01-21T16:55:00Z")
    assert not fired(pw, "trigger_no_effect")


@pytest.mark.parametrize("scenario", ["incident11_orphaned_trigger.jsonl"], indirect=True)
def test_incident11_trigger_is_pending_until_delivered_and_verified(
    scenario: tuple[dict[str, Any], Phasewatch],
) -> None:
    report, pw = scenario
    decided = at("2026-02-05T07:03:23Z")
    phase4 = triggers(report, "phase4")
    assert phase4[0]["outcome"] == "failed" and t(phase4[0]) == decided
    failures = [i for i in phase4 if i["outcome"] == "failed"]
    assert all(t(i) < at("2026-02-05T07:40:00Z") for i in failures)
    # Retries are spread out (capped full jitter), not a storm.
    assert len(failures) < 25
    undelivered = fired(pw, "trigger_undelivered", phase="phase4")
    assert len(undelivered) == 1 and undelivered[0].at - decided <= timedelta(minutes=15)
    successes = [i for i in phase4 if i["outcome"] == "succeeded"]
    assert [i["generation"] for i in successes] == [0, 1]
    first, retrigger = successes
    assert at("2026-02-05T07:40:00Z") <= t(first) <= at("2026-02-05T07:46:00Z")
    assert first["reason"] == "retry"
    # No Phase 4 start 15 min after the trigger: "trigger had no effect", re-published.
    no_effect = fired(pw, "trigger_no_effect", phase="phase4")
    assert len(no_effect) == 1
    assert no_effect[0].at - t(first) == timedelta(minutes=15)
    assert t(retrigger) == no_effect[0].at and retrigger["reason"] == "retry"
    # Phase 5 once; the stalled batches recovered with the configured actions.
    assert [i["outcome"] for i in triggers(report, "phase5")] == ["succeeded"]
    stuck = [r for r in report["recoveries"] if r["batch_id"] == "batch_2026-02-04_1770281520"]
    assert [r["action"] for r in stuck] == ["force_complete", "reset", "start"]
    assert all(r["outcome"] == "accepted" for r in stuck)
    batch_start = at("2026-02-05T08:52:00Z")
    assert all(t(r) - batch_start >= timedelta(minutes=30) for r in stuck)
    stale = [r for r in report["recoveries"] if r["run_date"] == "2026-02-05"]
    assert {r["batch_id"] for r in stale} == {"batch_2026-02-05_1770267600", "batch_2026-02-05_1770267700"}
    assert [r["outcome"] for r in stale if r["action"] == "reset"] == ["accepted", "skipped"]
    assert len(fired(pw, "stalled_recovered")) == 3
    recurring = fired(pw, "recovery_recurring", phase="phase5")
    assert len(recurring) == 1 and recurring[0].severity == "warning"


@pytest.mark.parametrize("scenario", ["incident12_schema_drift.jsonl"], indirect=True)
def test_incident12_schema_drift_stops_retries_and_restart_waits_for_a_healthy_worker(
    scenario: tuple[dict[str, Any], Phasewatch],
) -> None:
    report, pw = scenario
    healthy = at("2026-02-08T14:00:00Z")
    drift = fired(pw, "deterministic_failure", processor="prediction-worker")
    assert len(drift) == 1 and drift[0].severity == "critical"
    assert drift[0].summary.startswith("schema drift:")
    assert drift[0].labels["category"] == "schema_drift"
    assert "Provided Schema does not match" in drift[0].summary
    assert drift[0].at <= at("2026-02-08T03:41:30Z") + timedelta(minutes=5)
    actions = {r["action"]: r for r in report["recoveries"]}
    assert set(actions) == {"force_complete", "reset", "start"}
    batch_start = at("2026-02-08T03:36:30Z")
    assert t(actions["force_complete"]) - batch_start >= timedelta(minutes=15)
    assert t(actions["force_complete"]) - batch_start <= timedelta(minutes=31)
    # The restart only once the worker is green ("retry after health recovers").
    assert healthy <= t(actions["start"]) <= healthy + timedelta(minutes=2)
    assert [r["action"] for r in report["recoveries"]
            if r["action"] == "start" and t(r) < healthy] == []
    held = [d for d in report["deferrals"] if d["action"] == "start"]
    assert held and all(d["service"] == "prediction-worker" for d in held)
    assert all(t(d) < healthy for d in held)
    assert fired(pw, "recovery_deferred", service="prediction-worker")
    assert fired(pw, "service_unhealthy", service="prediction-worker")


@pytest.mark.parametrize("scenario", ["incident13_coverage_gate.jsonl"], indirect=True)
def test_incident13_data_driven_phase3_and_partial_input_held_back(
    scenario: tuple[dict[str, Any], Phasewatch],
) -> None:
    report, pw = scenario
    # Phase 2 -> 3 is data-driven: five processors (reported by class name) complete it,
    # Phase 3 starts on its own, nothing is re-triggered and no disabled source is awaited.
    assert not triggers(report, "phase3")
    assert not fired(pw, "phase_overdue", phase="phase3")
    raised = pw.actuator.ctx.notifier.raised  # type: ignore[union-attr]
    assert not [r for r in raised if "bdl" in r.summary]
    # 200 of 481 players: Phase 4 is held by the coverage gate, with an alert in 30 min.
    held4 = [d for d in report["deferrals"] if d["phase"] == "phase4"]
    assert held4 and all(d["reason"] == "coverage" for d in held4)
    assert "200/481" in held4[0]["detail"]
    phase3_done = at("2026-02-10T15:05:00Z")
    alert = fired(pw, "trigger_deferred", phase="phase4")
    assert alert and alert[0].at - phase3_done <= timedelta(minutes=30)
    # The schedule ran Phase 4 anyway: the held trigger is superseded, never sent.
    assert not triggers(report, "phase4")
    superseded = pw.actuator.store.audit_rows(kinds=("decision",), filters={"phase": "phase4"})  # type: ignore[union-attr]
    assert [d["reason"] for d in superseded if d["outcome"] == "not_taken"][-1] == "target_started"
    # Predictions wait for a clean feature store (check gate), then go once.
    held5 = [d for d in report["deferrals"] if d["phase"] == "phase5"]
    assert held5 and all(d["reason"] == "check" for d in held5)
    (sent,) = triggers(report, "phase5")
    assert sent["outcome"] == "succeeded" and t(sent) >= at("2026-02-10T18:46:00Z")
    assert t(sent) <= at("2026-02-10T18:46:00Z") + timedelta(minutes=7)


@pytest.mark.parametrize("scenario", ["incident12_schema_drift.jsonl"], indirect=True)
def test_incident12_prediction_gap_pages_by_0830_et_and_resolves_when_predictions_land(
    scenario: tuple[dict[str, Any], Phasewatch],
) -> None:
    report, pw = scenario
    first_run = at("2026-02-08T13:00:00Z")  # the FIRST same-day run, 08:00 ET
    (gap,) = fired(pw, "expectation", expectation="prediction_gap")
    assert gap.severity == "critical" and gap.labels["day"] == "2026-02-08"
    assert timedelta(0) < gap.at - first_run <= timedelta(minutes=30)
    assert gap.summary.startswith("prediction gap: nba 2026-02-08")
    assert "games_today = 10" in gap.summary and "predictions_today = 0" in gap.summary
    raised = pw.actuator.ctx.notifier.raised  # type: ignore[union-attr]
    (resolved,) = [r for r in raised if r.kind == "expectation" and r.action == "resolve"]
    assert resolved.at - at("2026-02-08T14:25:00Z") <= timedelta(seconds=30)
    sent = [a for a in delivered(report, "expectation") if a["action"] == "trigger"]
    assert sent and sent[0]["severity"] == "critical"


def test_incident13_ideal_response_alerts_then_cascade_rerun() -> None:
    from monitor.actuator.api import manual_action
    from monitor.actuator.simulated import SimulatedSink, simulated
    from monitor.app.sim.replay import Replayer, SimulatedWorld, _peek_start, build_report, read_lines
    from monitor.clock import FakeClock
    from tests.actuator_support import SCENARIOS, nba_config

    path = SCENARIOS / "incident13_ideal_response.jsonl"
    clock = FakeClock(_peek_start(path))
    world = SimulatedWorld()
    probe, sinks, _ = simulated(world)  # check lines are recorded in the check store
    pw = Phasewatch.build(nba_config(), db_path=":memory:", clock=clock, probe=probe,
                          sinks=sinks)
    try:
        player = Replayer(pw, clock, world)
        lines = read_lines(path, pw)
        fix = at("2026-02-10T18:00:00Z")
        rest = [ln for ln in lines if ln.timestamp >= fix]
        for line in lines[: len(lines) - len(rest)]:
            player.feed(line)
        player.advance_to(fix)
        # Before the fix: the subscriber, coverage and lockout alerts, each in its bound.
        t0 = at("2026-02-10T14:10:00Z")  # Phase 2's first completion: the topic had traffic
        sub = fired(pw, "subscriber_not_invoked", phase="phase3")
        assert len(sub) == 1 and sub[0].severity == "warning"
        assert timedelta(minutes=30) <= sub[0].at - t0 <= timedelta(minutes=31)
        assert sub[0].labels["subscription"] == "nba-phase3-analytics-sub"
        assert sub[0].labels["topic"] == "nba-phase2-raw-complete"
        assert "(IAM?)" in sub[0].summary and "2026-02-10" in sub[0].summary
        assert not fired(pw, "phase_overdue", phase="phase3")  # same-day: the rules never say due
        finish = at("2026-02-10T16:00:00Z")
        (drop,) = fired(pw, "entity_coverage_drop", processor="upcoming_player_game_context")
        assert drop.severity == "warning" and drop.at - finish <= timedelta(minutes=30)
        assert "200/481" in drop.summary and "dependency_missing=281" in drop.summary
        assert drop.labels["run_date"] == "2026-02-10"
        (lockout,) = fired(pw, "mass_lockout", processor="upcoming_player_game_context")
        assert lockout.severity == "warning" and lockout.at - finish <= timedelta(minutes=30)
        assert "474" in lockout.summary
        assert not fired(pw, "expected_list_drift")  # the expected lists are the five that report
        # The fix is confirmed: re-run Phase 3 for the date, then 4, 5 (REGENERATE) and 6.
        out = manual_action(pw.actuator, {  # type: ignore[arg-type]
            "action": "rerun", "cascade": True, "pipeline": "nba", "run_date": "2026-02-10",
            "mode": "same_day", "phase": "phase3", "actor": "oncall"})
        assert out["cascade"]["phases"] == ["phase3", "phase4", "phase5", "phase6"]
        for line in rest:
            player.feed(line)
        player.advance_to(at("2026-02-10T20:00:00Z"))
        report = build_report(pw)
        manual = pw.actuator.store.audit_rows(kinds=("manual",))  # type: ignore[union-attr]
    finally:
        pw.close()
    reruns = [i for i in report["triggers"] if t(i) >= fix]
    assert [(i["phase"], i["outcome"], i["reason"]) for i in reruns] == [
        ("phase3", "succeeded", "manual"), ("phase4", "succeeded", "manual"),
        ("phase5", "succeeded", "manual"), ("phase6", "succeeded", "manual")]
    when = {i["phase"]: t(i) for i in reruns}
    assert when["phase3"] == fix
    # Each phase only after its upstream finished anew (18:20, 18:41, 19:00, then done 19:06).
    assert at("2026-02-10T18:20:00Z") <= when["phase4"] <= at("2026-02-10T18:21:00Z")
    assert at("2026-02-10T18:41:00Z") <= when["phase5"] <= at("2026-02-10T18:42:00Z")
    assert at("2026-02-10T19:00:00Z") <= when["phase6"] <= at("2026-02-10T19:01:00Z")
    sink = sinks["pubsub"]
    assert isinstance(sink, SimulatedSink)
    # One send per target and generation, each with the generation's own idempotency key;
    # the predictions are regenerated (phase5's rerun payload), nothing else gets a flag.
    sent = [(target.kind, r.phase, r.idempotency_key, dict(r.extra)) for target, r, _ in sink.sent
            if ":rerun-" in r.idempotency_key]
    key = "nba:2026-02-10:same_day:{}:rerun-1"
    assert sent == [
        ("http", "phase3", key.format("phase3"), {}),
        ("pubsub", "phase4", key.format("phase4"), {}),
        ("pubsub", "phase5", key.format("phase5"), {"prediction_run_mode": "REGENERATE"}),
        ("http", "phase5", key.format("phase5"), {"prediction_run_mode": "REGENERATE"}),
        ("pubsub", "phase6", key.format("phase6"), {}),
    ]
    assert fired(pw, "cascade_finished")
    resolved = [r for r in pw.actuator.ctx.notifier.raised  # type: ignore[union-attr]
                if r.action == "resolve" and r.kind == "entity_coverage_drop"]
    assert resolved and t({"time": resolved[0].at.isoformat()}) <= at("2026-02-10T18:21:00Z")
    assert [(m["action"], m["actor"]) for m in manual] == [("rerun", "oncall")]
