"""The trigger protocol in process: pending -> succeeded, exactly once, retries, resume, audit."""

from __future__ import annotations

from typing import Any

import pytest

from monitor.actuator.api import list_actions, manual_action
from monitor.actuator.errors import ActionError
from monitor.actuator.sinks import SinkResult
from monitor.actuator.store import ActuatorStore
from monitor.app.sim.replay import HealthLine
from tests.actuator_support import PHASE3_OVERNIGHT, nba_config, race, rig
from tests.factories import make_event

RUN = ("nba", "2026-01-17", "overnight")


def store_of(r: Any) -> ActuatorStore:
    assert r.pw.actuator is not None
    return r.pw.actuator.store


def test_racing_completions_and_redeliveries_trigger_once(db: str) -> None:
    with rig(db=db) as r:
        r.complete("phase3", PHASE3_OVERNIGHT[:-1])
        r.clock.advance(60)
        at = r.clock.now().isoformat()
        # 30 copies of the final completion (distinct ids: producers retried) plus redeliveries.
        finals = [make_event("phase3", "succeeded", at, "upcoming_team_game_context",
                             run_date="2026-01-17", event_id=f"final-{i}") for i in range(30)]

        def post(i: int) -> None:
            r.pw.collector.ingest([finals[i]])
            r.pw.collector.ingest([finals[i]])  # redelivered

        assert race(30, post, timeout_s=30) == []
        r.tick_for(120)
        assert len(r.sent("phase4")) == 1
        rows = store_of(r).triggers()
        assert [(row.phase, row.state, row.attempts) for row in rows
                if row.phase == "phase4"] == [("phase4", "succeeded", 1)]


def test_sink_failing_then_recovering_delivers_once_with_retries_spread_out() -> None:
    with rig() as r:
        failures = iter(range(3))

        def busy(target: Any, request: Any) -> SinkResult | None:
            if request.phase == "phase4" and next(failures, None) is not None:
                return SinkResult("failed", "HTTP 503: busy")
            return None

        r.sink.responder = busy
        r.complete("phase3", PHASE3_OVERNIGHT)
        assert len(r.sent("phase4")) == 1  # the first attempt, inline
        r.tick_for(600)
        attempts = r.sent("phase4")
        assert [a.result.outcome for a in attempts] == ["failed"] * 3 + ["accepted"]
        assert [a.request.attempt for a in attempts] == [1, 2, 3, 4]
        assert {a.request.idempotency_key for a in attempts} == {"nba:2026-01-17:overnight:phase4"}
        assert [a.request.reason for a in attempts] == ["critical_plus_fraction", "retry", "retry", "retry"]
        (row,) = [t for t in store_of(r).triggers() if t.phase == "phase4"]
        assert (row.state, row.attempts, row.escalated) == ("succeeded", 4, False)
        report = r.pw.report_sections()["triggers"]
        assert [i["outcome"] for i in report if i["phase"] == "phase4"] == ["failed"] * 3 + ["succeeded"]
        text = r.pw.metrics.exposition()[0].decode()
        assert 'phasewatch_phase_transitions_total{outcome="triggered",phase="phase4",pipeline="nba"} 1.0' in text
        assert 'outcome="trigger_failed",phase="phase4"' in text


def test_a_refusal_escalates_at_once_and_a_manual_retry_sends_it() -> None:
    with rig() as r:
        refused = iter([SinkResult("failed", "HTTP 403: Forbidden", retryable=False)])
        r.sink.responder = lambda target, request: next(refused, None) if request.phase == "phase4" else None
        r.complete("phase3", PHASE3_OVERNIGHT)
        (row,) = [t for t in store_of(r).triggers() if t.phase == "phase4"]
        assert row.state == "failed"
        (alert,) = r.raised("trigger_undelivered")
        assert alert.severity == "critical" and "403" in alert.summary
        r.tick_for(600)
        assert len(r.sent("phase4")) == 1  # no automated retry of a refusal
        result = manual_action(r.pw.actuator, {  # type: ignore[arg-type]
            "action": "retry", "pipeline": "nba", "run_date": "2026-01-17", "phase": "phase4",
            "mode": "overnight"}, actor="oncall@example.com")
        assert result["outcome"] == "retry_queued"
        assert [s.result.outcome for s in r.sent("phase4")] == ["failed", "accepted"]
        manual = list_actions(r.pw.actuator, {"kind": "manual"})  # type: ignore[arg-type]
        assert manual["actions"][0]["actor"] == "oncall@example.com"


def test_a_decision_interrupted_before_the_call_is_sent_after_restart(db: str) -> None:
    with rig(db=db) as r:
        assert r.pw.actuator is not None
        r.pw.actuator._dispatch = lambda work: None  # type: ignore[method-assign]  # dies here
        r.complete("phase3", PHASE3_OVERNIGHT)
        assert r.sent() == []
        (row,) = [t for t in store_of(r).triggers() if t.phase == "phase4"]
        assert row.state == "sending"  # decided, claimed by the deciding call, never sent
        now = r.clock.now()
    with rig(db=db, start=now) as r2:
        r2.tick_for(30)
        assert len(r2.sent("phase4")) == 1
        r2.tick_for(300)
        assert len(r2.sent("phase4")) == 1
        (row,) = [t for t in store_of(r2).triggers() if t.phase == "phase4"]
        assert (row.state, row.attempts) == ("succeeded", 1)


def test_a_retry_interrupted_mid_flight_is_resumed_once(db: str) -> None:
    with rig(db=db) as r:
        first = iter([SinkResult("failed", "HTTP 503")])
        r.sink.responder = lambda target, request: next(first, None) if request.phase == "phase4" else None
        r.complete("phase3", PHASE3_OVERNIGHT)
        (row,) = [t for t in store_of(r).triggers() if t.phase == "phase4"]
        assert (row.state, row.attempts) == ("pending", 1)
        r.clock.advance(600)
        assert store_of(r).claim_trigger(row.id, "dead-process", r.clock.now()) is not None
        now = r.clock.now()
    with rig(db=db, start=now) as r2:
        r2.tick_for(60)
        assert [(s.request.attempt, s.request.reason) for s in r2.sent("phase4")] == [(2, "retry")]


def test_dry_run_decides_and_audits_but_calls_nothing() -> None:
    with rig(nba_config(dry_run=True)) as r:
        r.complete("phase3", PHASE3_OVERNIGHT)
        r.tick_for(1800)
        assert r.sent() == []
        items = r.pw.report_sections()["triggers"]
        assert [(i["phase"], i["outcome"]) for i in items] == [("phase4", "dry_run"), ("grading", "dry_run")]
        assert not r.raised("trigger_no_effect")


def test_kill_switch_stops_automation_but_not_people() -> None:
    with rig(nba_config(enabled=False)) as r:
        r.complete("phase3", PHASE3_OVERNIGHT)
        r.tick_for(600)
        assert r.sent() == [] and store_of(r).triggers() == []
        skipped = list_actions(r.pw.actuator, {"kind": "decision", "outcome": "not_taken"})  # type: ignore[arg-type]
        assert {a["reason"] for a in skipped["actions"]} >= {"kill_switch"}
        manual_action(r.pw.actuator, {"action": "trigger", "pipeline": "nba",  # type: ignore[arg-type]
                                      "run_date": "2026-01-17", "phase": "phase4"})
        (sent,) = r.sent("phase4")
        assert sent.request.reason == "manual"


def test_health_gate_defers_then_sends_when_the_service_recovers() -> None:
    with rig() as r:
        r.world.apply(HealthLine(type="health", service="nba-phase4-precompute-processors",
                                 status="fail", timestamp=r.clock.now()))
        r.complete("phase3", PHASE3_OVERNIGHT)
        assert r.sent("phase4") == []
        r.tick_for(20 * 60)
        deferrals = r.pw.report_sections()["deferrals"]
        assert len(deferrals) >= 3
        assert {d["service"] for d in deferrals} == {"nba-phase4-precompute-processors"}
        (alert,) = r.raised("trigger_deferred")
        assert alert.labels["service"] == "nba-phase4-precompute-processors"
        r.world.apply(HealthLine(type="health", service="nba-phase4-precompute-processors",
                                 status="pass", timestamp=r.clock.now()))
        r.tick_for(90)
        (sent,) = r.sent("phase4")
        assert sent.request.reason == "retry"
        assert r.pw.report_sections()["triggers"][-1]["note"] == "retry after health recovers"
        text = r.pw.metrics.exposition()[0].decode()
        assert 'phasewatch_service_health{service="nba-phase4-precompute-processors"} 1.0' in text


def test_no_start_after_the_trigger_retriggers_a_bounded_number_of_times() -> None:
    with rig() as r:
        r.complete("phase3", PHASE3_OVERNIGHT)
        r.ingest("grading", "started")
        r.tick_for(3 * 3600)
        generations = [s.request for s in r.sent("phase4")]
        assert [g.reason for g in generations] == ["critical_plus_fraction", "retry", "retry"]
        kinds = [(a.severity, a.summary.split(":")[0]) for a in r.raised("trigger_no_effect")]
        assert kinds == [("warning", "trigger had no effect"), ("critical", "trigger had no effect")]
        (row,) = [t for t in store_of(r).triggers() if t.phase == "phase4"]
        assert (row.state, row.generation) == ("failed", 2)


def test_already_running_with_no_progress_runs_reset_then_start() -> None:
    with rig() as r:
        r.complete("phase4", ["team_defense_zone_analysis", "player_shot_zone_analysis",
                              "player_composite_factors", "player_daily_cache", "ml_feature_store"])
        sent = r.sent("phase5")
        assert len(sent) == 2  # pubsub and /start
        # Redo it with /start answering 409 already_running.
    with rig() as r:
        r.sink.answer_next(SinkResult("accepted"), SinkResult("already_running", "HTTP 409: already_running"))
        r.complete("phase4", ["team_defense_zone_analysis", "player_shot_zone_analysis",
                              "player_composite_factors", "player_daily_cache", "ml_feature_store"])
        r.tick_for(6 * 60)
        steps = [(i["action"], i["outcome"]) for i in r.pw.report_sections()["recoveries"]]
        assert steps == [("reset", "accepted"), ("start", "accepted")]
        triggers = r.pw.report_sections()["triggers"]
        assert triggers[0]["outcome"] == "already_running"


def test_manual_actions_are_validated_audited_and_counted() -> None:
    with rig() as r:
        actuator = r.pw.actuator
        assert actuator is not None
        bad: list[tuple[dict[str, Any], str, str]] = [
            ({"action": "reboot", "pipeline": "nba", "run_date": "2026-01-17", "phase": "phase4"},
             "action", "trigger"),
            ({"action": "skip", "pipeline": "nba", "run_date": "2026-01-17", "phase": "phase3"},
             "processor", "required"),
            ({"action": "skip", "pipeline": "nba", "run_date": "2026-01-17", "phase": "phase3",
              "processor": "nope"}, "processor", "player_game_summary"),
            ({"action": "trigger", "pipeline": "nba", "run_date": "2026-01-17", "phase": "phase2"},
             "phase", "phase4"),
            ({"action": "trigger", "pipeline": "mlb", "run_date": "2026-01-17", "phase": "phase4"},
             "pipeline", "nba"),
            ({"action": "trigger", "pipeline": "nba", "run_date": "yesterday", "phase": "phase4"},
             "run_date", "date"),
            ({"action": "trigger", "pipeline": "nba", "run_date": "2026-01-17", "phase": "phase4",
              "extra": 1}, "extra", ""),
            ({"action": "retry", "pipeline": "nba", "run_date": "2026-01-17", "phase": "phase4"},
             "phase", "no failed"),
        ]
        for body, field, word in bad:
            with pytest.raises(ActionError) as info:
                manual_action(actuator, body)
            fields = [p.field for p in info.value.problems]
            assert field in fields, (body, fields)
            assert word.lower() in str(info.value).lower(), str(info.value)
            assert 400 <= info.value.status_code < 500
        # Skip the missing optional processors: the rule completes and the trigger goes out.
        r.complete("phase3", PHASE3_OVERNIGHT[:3])
        r.ingest("phase3", "succeeded", "upcoming_player_game_context")
        assert r.sent("phase4")[0].request.reason == "critical_plus_fraction"
        result = manual_action(actuator, b'{"action": "skip", "pipeline": "nba", "run_date": "2026-01-17",'
                                         b' "phase": "phase3", "processor": "UpcomingTeamGameContextProcessor",'
                                         b' "note": "no team context on weekends"}', actor="ana")
        assert result["outcome"] == "skipped" and result["processor"] == "upcoming_team_game_context"
        (run,) = r.pw.tracker.runs()
        assert run.phases["phase3"].processors["upcoming_team_game_context"].status == "skipped"
        manual_action(actuator, {"action": "trigger", "pipeline": "nba", "run_date": "2026-01-17",
                                 "phase": "phase4", "force": True})
        assert [s.request.reason for s in r.sent("phase4")] == ["critical_plus_fraction", "manual"]
        text = r.pw.metrics.exposition()[0].decode()
        assert 'phasewatch_manual_interventions_total{action="skip",pipeline="nba"} 1.0' in text
        assert 'phasewatch_manual_interventions_total{action="trigger",pipeline="nba"} 1.0' in text
        audit = list_actions(actuator, {"manual": "true", "kind": "manual"})
        assert [a["action"] for a in audit["actions"]] == ["trigger", "skip"]
        assert audit["actions"][1]["actor"] == "ana"
        assert audit["actions"][1]["reason"] == "no team context on weekends"


@pytest.mark.parametrize(("query", "field"), [
    ({"kind": "magic"}, "kind"), ({"limit": "0"}, "limit"), ({"limit": "x"}, "limit"),
    ({"run_date": "17/01"}, "run_date"), ({"since": "yesterday"}, "since"),
    ({"pipeline": "mlb"}, "pipeline"), ({"color": "red"}, "color"), ({"manual": "maybe"}, "manual"),
])
def test_actions_query_is_validated(query: dict[str, str], field: str) -> None:
    with rig() as r, pytest.raises(ActionError) as info:
        list_actions(r.pw.actuator, query)  # type: ignore[arg-type]
    assert info.value.status_code == 400
    assert [p.field for p in info.value.problems] == [field]


def test_actions_list_every_decision_newest_first_and_filters() -> None:
    with rig() as r:
        r.complete("phase3", PHASE3_OVERNIGHT[:2])
        r.complete("phase3", PHASE3_OVERNIGHT[2:])
        everything = list_actions(r.pw.actuator, {})  # type: ignore[arg-type]
        kinds = [(a["kind"], a["outcome"]) for a in everything["actions"]]
        assert ("decision", "not_taken") in kinds  # waiting: considered, not taken
        assert ("decision", "taken") in kinds and ("trigger", "succeeded") in kinds
        times = [a["time"] for a in everything["actions"]]
        assert times == sorted(times, reverse=True)
        only = list_actions(r.pw.actuator, {"phase": "grading", "kind": "trigger", "limit": "5"})  # type: ignore[arg-type]
        assert {a["phase"] for a in only["actions"]} == {"grading"}
        assert only["count"] == 1
