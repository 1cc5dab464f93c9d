"""Exact run semantics (issue 13, point 4): what phase-level finishes, skips, repeated
failures, invocation ids and mismatched run dates mean for run state, triggers and alerts.

Each test reproduces a measured defect; they were committed failing, before the fix.
"""

from __future__ import annotations

import json
import threading
from datetime import date, datetime, timedelta
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from phasewatch_client.event import validate_event

from monitor.app.http.server import create_app
from monitor.app.sim.replay import HealthLine
from monitor.errors import EventError
from monitor.tracker import RunTracker
from tests.actuator_support import PHASE3_OVERNIGHT, edit_config, nba_config, rig
from tests.factories import event_dict, make_event
from tests.test_service import Http, push_envelope, rejected

PRECOMPUTE = "nba-phase4-precompute-processors"
CTX = {"records": 470, "expected_records": 481}


def complete_phase3(r: Any, status: str = "succeeded") -> None:
    """Every overnight Phase 3 processor finishes (the player context with its coverage)."""
    for name in PHASE3_OVERNIGHT:
        r.clock.advance(60)
        extra = CTX if name == "upcoming_player_game_context" and status == "succeeded" else {}
        r.ingest("phase3", status, name, **extra)


def health(r: Any, status: str) -> None:
    r.world.apply(HealthLine(type="health", service=PRECOMPUTE, status=status,
                             timestamp=r.clock.now()))


# --- phase-level failed never drops a held trigger --------------------------------------

@pytest.mark.parametrize("phase_level_failure", [False, True])
def test_a_phase_level_failure_never_drops_a_trigger_held_behind_a_health_gate(
    phase_level_failure: bool,
) -> None:
    with rig() as r:
        health(r, "fail")
        complete_phase3(r)
        r.tick_for(10 * 60)
        assert r.sent("phase4") == []  # held: the precompute service is unhealthy
        if phase_level_failure:
            # The orchestrator reports the phase failed (the push reached a crashing service).
            r.ingest("phase4", "failed", error="503 from nba-phase4-precompute-processors")
        r.tick_for(10 * 60)
        health(r, "pass")
        r.tick_for(10 * 60)
        sent = r.sent("phase4")
        assert len(sent) == 1, "the held trigger goes out once the service recovers"
        assert sent[0].request.idempotency_key == "nba:2026-01-17:overnight:phase4"
        (row,) = [t for t in r.pw.actuator.store.triggers() if t.phase == "phase4"]  # type: ignore[union-attr]
        assert row.state == "succeeded"


# --- phase-level skipped / failed close the phase ----------------------------------------

def test_a_phase_level_skip_closes_the_phase_like_a_processor_level_skip() -> None:
    with rig() as r:
        r.ingest("phase1", "started")
        r.clock.advance(60)
        r.ingest("phase1", "skipped", attributes={"reason": "no games scheduled"})
        r.tick_for(3 * 3600)
        run = r.pw.tracker.get(("nba", "2026-01-17", "overnight"))
        assert run is not None
        assert run.phases["phase1"].status == "complete"
        # no "phase overdue: phase1 ... missing ['(phase-level)']"
        assert [a for a in r.raised("phase_overdue") if a.labels["phase"] == "phase1"] == []


def test_a_phase_level_skip_of_a_phase_with_processors_completes_it() -> None:
    tracker = RunTracker(nba_config())
    at = "2026-01-18T06:00:00+00:00"
    tracker.apply(make_event("phase3", "started", at, None))
    update = tracker.apply(make_event("phase3", "skipped", "2026-01-18T06:01:00+00:00", None))
    assert update.phase_completed and update.phase.status == "complete"


# --- skipped is not coverage; the coverage gate fails closed -----------------------------

def test_a_phase_whose_processors_all_skipped_has_coverage_zero() -> None:
    tracker = RunTracker(nba_config())
    at = datetime.fromisoformat("2026-01-18T06:00:00+00:00")
    for i, name in enumerate(PHASE3_OVERNIGHT):
        update = tracker.apply(make_event("phase3", "skipped", (at + timedelta(minutes=i)).isoformat(),
                                          name))
    phase = update.phase
    assert phase.status == "complete"  # closed: nothing more will come
    assert phase.coverage == 0.0  # but it produced nothing
    assert phase.as_dict()["coverage"] == 0.0


def test_coverage_counts_records_of_successes_only() -> None:
    tracker = RunTracker(nba_config())
    at = datetime.fromisoformat("2026-01-18T06:00:00+00:00")
    for i, name in enumerate(PHASE3_OVERNIGHT):
        fields: dict[str, Any] = {}
        status = "succeeded"
        if name == "upcoming_player_game_context":
            fields = {"records": 240, "expected_records": 480}
        elif name == "upcoming_team_game_context":
            status = "skipped"
        update = tracker.apply(make_event("phase3", status, (at + timedelta(minutes=i)).isoformat(),
                                          name, **fields))
    # 3 processors done without figures (1 each), one at half, one skipped (0): 3.5 / 5
    assert update.phase.coverage == pytest.approx(0.7)


def test_no_downstream_trigger_when_every_upstream_processor_skipped() -> None:
    with rig() as r:
        complete_phase3(r, status="skipped")
        r.tick_for(20 * 60)
        assert r.sent("phase4") == []
        held = [d for d in r.pw.report_sections()["deferrals"] if d["phase"] == "phase4"]
        assert held and all(d["reason"] == "coverage" for d in held)
        assert "skipped" in held[0]["detail"]


def test_a_coverage_gate_without_records_fails_closed() -> None:
    with rig() as r:
        for name in PHASE3_OVERNIGHT:  # all succeed, none reports records
            r.clock.advance(60)
            r.ingest("phase3", "succeeded", name)
        r.tick_for(20 * 60)
        assert r.sent("phase4") == []
        held = [d for d in r.pw.report_sections()["deferrals"] if d["phase"] == "phase4"]
        assert held and "no records" in held[0]["detail"]


# --- consecutive failures are counted per run, across run dates --------------------------

def test_consecutive_failures_are_counted_per_run_across_run_dates() -> None:
    with rig(start=datetime.fromisoformat("2026-01-18T06:00:00+00:00")) as r:
        # Night 1 (the run of Jan 17): the processor fails twice.
        for _ in range(2):
            r.ingest("phase3", "started", "team_defense_game_summary")
            r.clock.advance(300)
            r.ingest("phase3", "failed", "team_defense_game_summary", error="boom")
            r.clock.advance(600)
        assert r.raised("failed_runs") == []
        r.clock.set(datetime.fromisoformat("2026-01-19T06:00:00+00:00"))
        # Night 2 (the run of Jan 18): its first failure is the third in a row.
        r.ingest("phase3", "started", "team_defense_game_summary", run_date="2026-01-18")
        r.clock.advance(300)
        r.ingest("phase3", "failed", "team_defense_game_summary", run_date="2026-01-18",
                 error="boom")
        (alert,) = r.raised("failed_runs")
        assert "3 consecutive runs" in alert.summary
        assert alert.at == r.clock.now()


def test_failure_streaks_survive_a_restart(db: str) -> None:
    """The streaks (guard_failures) are kept in the store, SQLite or PostgreSQL alike; a
    redelivered failure of the invocation counted last counts once, after a restart too."""
    start = datetime.fromisoformat("2026-01-18T06:00:00+00:00")
    with rig(db=db, start=start) as r:
        for inv in ("i1", "i2"):
            r.ingest("phase3", "started", "team_defense_game_summary", invocation_id=inv)
            r.clock.advance(300)
            r.ingest("phase3", "failed", "team_defense_game_summary", error="boom",
                     invocation_id=inv)
        now = r.clock.now()
    with rig(db=db, start=now) as r2:
        r2.clock.advance(60)
        r2.ingest("phase3", "failed", "team_defense_game_summary", error="boom",
                  invocation_id="i2", event_id="i2-redelivered")
        assert r2.raised("failed_runs") == []  # i2 again: still two
        r2.ingest("phase3", "failed", "team_defense_game_summary", error="boom",
                  invocation_id="i3")
        (alert,) = r2.raised("failed_runs")
        assert "3 consecutive runs" in alert.summary


def test_a_success_ends_the_failure_streak() -> None:
    with rig() as r:
        for status in ("failed", "failed", "succeeded", "failed", "failed"):
            r.ingest("phase3", "started", "team_defense_game_summary")
            r.clock.advance(300)
            r.ingest("phase3", status, "team_defense_game_summary", error="boom")
        assert r.raised("failed_runs") == []


# --- invocation ids pair starts with finishes --------------------------------------------

def test_invocation_id_is_part_of_the_event_contract() -> None:
    body = event_dict("phase4", "started", "2026-01-18T06:00:00Z", "player_daily_cache",
                      invocation_id="nba-phase4-precompute-processors-x7k2p")
    assert validate_event(body).invocation_id == "nba-phase4-precompute-processors-x7k2p"
    assert make_event("phase4", "started", "2026-01-18T06:00:00Z", "player_daily_cache",
                      invocation_id="abc").invocation_id == "abc"
    with pytest.raises(Exception, match="invocation_id"):
        make_event("phase4", "started", "2026-01-18T06:00:00Z", "player_daily_cache",
                   invocation_id="x" * 129)


def test_a_start_without_its_finish_past_the_timeout_is_counted_and_alerted_as_hung() -> None:
    with rig() as r:
        assert r.pw.actuator is not None
        r.pw.actuator.ctx.timeouts = lambda p, ph, proc, m: 600.0 if proc == "player_daily_cache" else None
        for inv in ("a", "b", "c"):
            r.ingest("phase4", "started", "player_daily_cache", invocation_id=inv)
            r.clock.advance(10)
        r.clock.advance(240)
        r.ingest("phase4", "succeeded", "player_daily_cache", invocation_id="a")
        run = r.pw.tracker.get(("nba", "2026-01-17", "overnight"))
        assert run is not None
        proc = run.phases["phase4"].processors["player_daily_cache"]
        assert proc.duration_s == 270.0  # from a's own start, not the latest one
        r.tick_for(5 * 60)
        assert r.raised("invocations_hung") == []
        r.tick_for(2 * 60)
        (alert,) = r.raised("invocations_hung")  # one alert for the group
        assert alert.labels["processor"] == "player_daily_cache"
        assert "2 invocations" in alert.summary and "b" in alert.summary and "c" in alert.summary
        assert proc.as_dict()["open_invocations"] == 2
        r.ingest("phase4", "succeeded", "player_daily_cache", invocation_id="b")
        r.tick_for(60)
        resolved = [x for x in r.pw.actuator.ctx.notifier.raised
                    if x.kind == "invocations_hung" and x.action == "resolve"]
        assert resolved == []  # c still hangs
        r.ingest("phase4", "failed", "player_daily_cache", invocation_id="c", error="killed")
        r.tick_for(60)
        resolved = [x for x in r.pw.actuator.ctx.notifier.raised
                    if x.kind == "invocations_hung" and x.action == "resolve"]
        assert len(resolved) == 1
        assert len(r.raised("invocations_hung")) == 1


# --- a run date outside its mode's window ------------------------------------------------

SAME_DAY_FOR_YESTERDAY = {  # 10:30 ET on Jan 18: a "today" job that resolved Jan 17
    "phase": "phase3", "status": "started", "processor": "upcoming_player_game_context",
    "run_date": "2026-01-17", "mode": "same_day",
}


def mismatch_config(on_mismatch: str) -> Any:
    def edit(data: dict[str, Any]) -> None:
        data["pipelines"][0]["mode_window"] = {"on_mismatch": on_mismatch}
    return edit_config(edit)


def test_a_same_day_event_for_yesterday_is_alerted_as_a_date_mismatch() -> None:
    with rig(start=datetime.fromisoformat("2026-01-18T15:30:00+00:00")) as r:
        fields = dict(SAME_DAY_FOR_YESTERDAY)
        r.ingest(fields.pop("phase"), fields.pop("status"), fields.pop("processor"), **fields)
        r.tick_for(60)
        (alert,) = r.raised("run_date_mismatch")
        assert alert.severity == "warning"
        assert alert.labels["mode"] == "same_day" and alert.labels["run_date"] == "2026-01-17"
        assert "2026-01-18" in alert.summary  # the day the mode expects
        assert r.pw.store.count() == 1  # accepted and kept


def test_a_batch_judges_each_event_by_its_own_runs_window() -> None:
    """The run-date watch looks a run's window up once for its events that come together in
    a batch: events of two runs interleaved in one body are each judged by their own."""
    with rig(start=datetime.fromisoformat("2026-01-18T15:30:00+00:00")) as r:
        now = r.clock.now().isoformat()
        events = [make_event("phase3", status, now, name, run_date=run_date, mode="same_day")
                  for status in ("started", "succeeded")
                  for run_date in ("2026-01-18", "2026-01-17", "2026-01-18")
                  for name in ("upcoming_player_game_context", "upcoming_team_game_context")]
        assert r.pw.collector.ingest(events).accepted == len(events)
        r.tick_for(60)
        (alert,) = r.raised("run_date_mismatch")
        assert alert.labels["run_date"] == "2026-01-17"


def test_a_date_mismatch_can_be_rejected() -> None:
    with rig(mismatch_config("reject"), start=datetime.fromisoformat("2026-01-18T15:30:00+00:00")) as r:
        fields = dict(SAME_DAY_FOR_YESTERDAY)
        with pytest.raises(EventError) as caught:
            r.ingest(fields.pop("phase"), fields.pop("status"), fields.pop("processor"), **fields)
        assert caught.value.reason == "date_mismatch"
        assert caught.value.problems[0].field == "run_date"
        assert "same_day" in caught.value.problems[0].message
        assert r.pw.store.count() == 0
        assert rejected(r.pw, "date_mismatch") == 1


def test_a_body_is_judged_against_each_mode_window_as_each_event_alone() -> None:
    # Resolving a body works each run date's mode window out once: the events it rejects,
    # and the words, are those of the pipeline's own check of each event.
    now = datetime.fromisoformat("2026-01-18T15:30:00+00:00")
    with rig(mismatch_config("reject"), start=now) as r:
        pipeline = r.pw.config.pipeline_map["nba"]

        @settings(max_examples=150, deadline=None)
        @given(st.lists(st.tuples(st.integers(-2, 2), st.integers(-40 * 60, 40 * 60),
                                  st.sampled_from(["overnight", "same_day", "tomorrow", "backfill"])),
                        min_size=2, max_size=12))
        def check(drawn: list[tuple[int, int, str]]) -> None:
            events = [make_event("phase1", "started", (now + timedelta(minutes=m)).isoformat(),
                                 run_date=(now.date() + timedelta(days=d)).isoformat(), mode=mode)
                      for d, m, mode in drawn]
            expected = [(f"events[{i}].run_date", why) for i, e in enumerate(events)
                        if (why := pipeline.mode_mismatch(e.run_date, str(e.mode), e.timestamp))
                        is not None]
            try:
                r.pw.collector.resolve(events, now=now)
                found = []
            except EventError as exc:
                assert exc.reason == "date_mismatch"
                found = [(p.field, p.message) for p in exc.problems]
            assert found == [(field, f"outside its mode's window: {why}; allowed: a run date "
                              "that fits the mode (or another mode)") for field, why in expected]

        check()


def test_a_rejected_mismatch_over_http_is_a_422_naming_run_date() -> None:
    with rig(mismatch_config("reject"), start=datetime.fromisoformat("2026-01-18T15:30:00+00:00")) as r:
        client = Http(create_app(r.pw, None))
        try:
            body = event_dict("phase3", "started", r.clock.now().isoformat(),
                              "upcoming_player_game_context", run_date="2026-01-17",
                              mode="same_day")
            response = client.post("/v1/events", json=body)
            assert response.status_code == 422, response.text
            answer = response.json()
            assert answer["reason"] == "date_mismatch"
            assert [d["field"] for d in answer["details"]] == ["run_date"]
            backfill = client.post("/v1/events?backfill=true", json=body)
            assert backfill.status_code == 202, backfill.text  # history keeps its dates
        finally:
            client.close()


def test_a_batch_rejected_for_both_run_date_rules_carries_the_accepted_window_first() -> None:
    """The accepted window (runs.accept_past_days) and the mode window are two rules with
    two reasons; a batch breaking both gets the first, its details name both events."""
    with rig(mismatch_config("reject"), start=datetime.fromisoformat("2026-01-18T15:30:00+00:00")) as r:
        now = r.clock.now().isoformat()
        mismatched = make_event("phase3", "started", now, "upcoming_player_game_context",
                                run_date="2026-01-17", mode="same_day")
        ancient = make_event("phase3", "started", now, "upcoming_player_game_context",
                             run_date="2020-01-17", mode="backfill")
        with pytest.raises(EventError) as caught:
            r.pw.collector.ingest([mismatched, ancient])
        assert caught.value.reason == "run_date_window"
        assert [p.field for p in caught.value.problems] == ["events[0].run_date",
                                                            "events[1].run_date"]
        assert "mode's window" in caught.value.problems[0].message
        assert "accept_past_days" in caught.value.problems[1].message
        assert r.pw.store.count() == 0


def test_a_mismatch_is_never_rejected_in_a_backfill_nor_alerted() -> None:
    with rig(mismatch_config("reject"), start=datetime.fromisoformat("2026-01-18T15:30:00+00:00")) as r:
        now = r.clock.now().isoformat()
        event = make_event("phase3", "started", now, "upcoming_player_game_context",
                           run_date="2026-01-17", mode="same_day")
        assert r.pw.collector.ingest([event], backfill=True).accepted == 1
    with rig(start=datetime.fromisoformat("2026-01-18T15:30:00+00:00")) as r:
        r.pw.collector.ingest([event], backfill=True)
        r.tick_for(60)
        assert r.raised("run_date_mismatch") == []


def test_a_rejected_mismatch_from_pubsub_is_dead_lettered_under_its_reason() -> None:
    with rig(mismatch_config("reject"), start=datetime.fromisoformat("2026-01-18T15:30:00+00:00")) as r:
        body = event_dict("phase3", "started", r.clock.now().isoformat(),
                          "upcoming_player_game_context", run_date="2026-01-17", mode="same_day")
        envelope = json.dumps(push_envelope(json.dumps(body).encode(), "m-1")).encode()
        result = r.pw.collector.ingest_push(envelope)
        assert (result.outcome, result.reason) == ("dead_lettered", "date_mismatch")
        assert r.pw.store.count() == 0


def test_a_mismatch_outside_the_horizon_is_kept_but_not_alerted() -> None:
    """The horizon bounds what is alerted on: a mismatched event 8 h old (a backlog
    delivered late) is stored and tells no one."""
    with rig(start=datetime.fromisoformat("2026-01-18T23:30:00+00:00")) as r:
        late = make_event("phase3", "started", "2026-01-18T15:30:00+00:00",
                          "upcoming_player_game_context", run_date="2026-01-17", mode="same_day")
        r.pw.collector.ingest([late])
        r.tick_for(60)
        assert r.raised("run_date_mismatch") == []
        assert r.pw.store.count() == 1


def test_accept_turns_the_date_check_off() -> None:
    with rig(mismatch_config("accept"), start=datetime.fromisoformat("2026-01-18T15:30:00+00:00")) as r:
        fields = dict(SAME_DAY_FOR_YESTERDAY)
        r.ingest(fields.pop("phase"), fields.pop("status"), fields.pop("processor"), **fields)
        r.tick_for(60)
        assert r.raised("run_date_mismatch") == []


@pytest.mark.parametrize(("at", "run_date", "mode"), [
    ("2026-01-19T05:30:00+00:00", "2026-01-18", "same_day"),  # 00:30 ET: crossed midnight
    ("2026-01-18T04:45:00+00:00", "2026-01-17", "overnight"),  # 23:45 ET the game night
    ("2026-01-18T15:30:00+00:00", "2026-01-18", "same_day"),
    ("2026-01-18T22:00:00+00:00", "2026-01-19", "tomorrow"),
    ("2026-01-18T15:30:00+00:00", "2025-12-01", "backfill"),
])
def test_runs_that_cross_midnight_are_not_mismatches(at: str, run_date: str, mode: str) -> None:
    with rig(mismatch_config("reject"), start=datetime.fromisoformat(at)) as r:
        r.ingest("phase3", "started", "upcoming_player_game_context", run_date=run_date, mode=mode)
        assert r.pw.store.count() == 1


# --- work that crosses midnight, from a producer that leaves the mode out ------------------
# 23:50 ET on Jan 17: the mode rules give run date Jan 17 "same_day"; 20 minutes later,
# on Jan 18, they give it "overnight". The finish continues the work under way.
BEFORE_MIDNIGHT = datetime.fromisoformat("2026-01-18T04:50:00+00:00")
PROC = "upcoming_player_game_context"


def modes_of(r: Any) -> dict[str, Any]:
    return {run.mode: run for run in r.pw.tracker.runs(run_date=date(2026, 1, 17))}


@pytest.mark.parametrize("invocation", [{"invocation_id": "x"}, {}])
def test_work_that_crosses_midnight_without_a_mode_stays_in_the_run_it_started_in(
        invocation: dict[str, str]) -> None:
    with rig(start=BEFORE_MIDNIGHT) as r:
        r.ingest("phase3", "started", PROC, **invocation)
        r.clock.advance(10 * 60)
        r.ingest("phase3", "progress", PROC, **invocation)
        r.clock.advance(10 * 60)  # 00:10 ET, Jan 18
        r.ingest("phase3", "succeeded", PROC, **invocation)
        runs = modes_of(r)
        assert set(runs) == {"same_day"}
        proc = runs["same_day"].phases["phase3"].processors[PROC]
        assert (proc.status, proc.starts, len(proc.open_invocations)) == ("succeeded", 1, 0)
        stored = [e.mode for e in r.pw.store.events()]
        assert stored == ["same_day"] * 3  # stored as judged: a replay or a restart agrees
        r.tick_for(5 * 3600, step=300)
        assert r.raised("invocations_hung") == []


def test_a_start_after_midnight_is_new_work_of_the_mode_its_time_gives() -> None:
    with rig(start=BEFORE_MIDNIGHT) as r:
        r.ingest("phase3", "started", PROC, invocation_id="x")
        r.clock.advance(20 * 60)
        r.ingest("phase3", "started", PROC, invocation_id="y")  # a second attempt, after midnight
        r.ingest("phase3", "succeeded", PROC, invocation_id="y")
        runs = modes_of(r)
        assert runs["same_day"].phases["phase3"].processors[PROC].status == "running"
        assert runs["overnight"].phases["phase3"].processors[PROC].status == "succeeded"


def test_a_finish_of_work_under_way_in_two_runs_keeps_the_mode_its_time_gives() -> None:
    """Without an invocation id, a processor running in both runs: nothing says which one
    finished, so the mode rules decide, as before."""
    with rig(start=BEFORE_MIDNIGHT) as r:
        r.ingest("phase3", "started", PROC)
        r.clock.advance(20 * 60)
        r.ingest("phase3", "started", PROC)
        r.clock.advance(60)
        r.ingest("phase3", "succeeded", PROC)
        runs = modes_of(r)
        assert runs["same_day"].phases["phase3"].processors[PROC].status == "running"
        assert runs["overnight"].phases["phase3"].processors[PROC].status == "succeeded"


def test_a_finish_long_after_its_runs_mode_window_is_not_moved_into_it() -> None:
    """Work under way in a same_day run is continued only within that mode's window
    (mode_window.grace_h, 6 h past midnight): a finish at 07:00 ET is the mode rules'."""
    with rig(start=BEFORE_MIDNIGHT) as r:
        r.ingest("phase3", "started", PROC)
        r.clock.advance(7 * 3600 + 10 * 60)  # 07:00 ET, Jan 18
        r.ingest("phase3", "succeeded", PROC)
        runs = modes_of(r)
        assert runs["same_day"].phases["phase3"].processors[PROC].status == "running"
        assert runs["overnight"].phases["phase3"].processors[PROC].status == "succeeded"


@pytest.mark.parametrize("invocation", [{"invocation_id": "x"}, {}])
def test_a_start_and_its_finish_in_one_body_across_midnight_are_one_run(
        invocation: dict[str, str]) -> None:
    """A client that batches: the start (23:59:58 ET) and the finish (00:00:03) arrive in
    one request body, before the run state knows of either."""
    with rig(start=datetime.fromisoformat("2026-01-18T05:00:30+00:00")) as r:
        start = make_event("phase3", "started", "2026-01-18T04:59:58+00:00", PROC,
                           run_date="2026-01-17", **invocation)
        finish = make_event("phase3", "succeeded", "2026-01-18T05:00:03+00:00", PROC,
                            run_date="2026-01-17", **invocation)
        r.pw.collector.ingest([start, finish])
        runs = modes_of(r)
        assert set(runs) == {"same_day"}
        assert runs["same_day"].phases["phase3"].processors[PROC].status == "succeeded"


def test_a_finish_reported_by_a_processors_alias_after_midnight_stays_in_its_run() -> None:
    """The run state knows processors by their names; a producer may report by an alias
    (here the class name of the box-score processor of Phase 2)."""
    with rig(start=BEFORE_MIDNIGHT) as r:
        r.ingest("phase2", "started", "NbacPlayerBoxscoreProcessor", invocation_id="b")
        r.clock.advance(20 * 60)
        r.ingest("phase2", "succeeded", "NbacPlayerBoxscoreProcessor", invocation_id="b")
        runs = modes_of(r)
        assert set(runs) == {"same_day"}
        (proc,) = runs["same_day"].phases["phase2"].processors.values()
        assert proc.status == "succeeded"


def test_a_finish_in_a_request_racing_the_one_that_stores_its_start_stays_in_its_run() -> None:
    """Two requests at once across midnight: the start (23:59:58 ET) is being stored when the
    finish (00:00:03) arrives. The finish's mode is inferred from the run state as the store
    leaves it, not as it was before the start was stored."""
    with rig(start=datetime.fromisoformat("2026-01-18T05:00:30+00:00")) as r:
        start = make_event("phase3", "started", "2026-01-18T04:59:58+00:00", PROC,
                           run_date="2026-01-17", invocation_id="x")
        finish = make_event("phase3", "succeeded", "2026-01-18T05:00:03+00:00", PROC,
                            run_date="2026-01-17", invocation_id="x")
        collector = r.pw.collector
        append = collector.store.append
        racing: list[threading.Thread] = []

        def storing_the_start(events: Any, *args: Any, **kwargs: Any) -> Any:
            if not racing:  # the finish's request comes in while the start is being stored
                racing.append(threading.Thread(target=collector.ingest, args=([finish],)))
                racing[0].start()
                racing[0].join(timeout=0.5)
            return append(events, *args, **kwargs)

        collector.store.append = storing_the_start  # type: ignore[method-assign]
        collector.ingest([start])
        racing[0].join(timeout=10)
        runs = modes_of(r)
        assert set(runs) == {"same_day"}
        assert runs["same_day"].phases["phase3"].processors[PROC].status == "succeeded"
