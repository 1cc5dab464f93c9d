"""Run tracking: expected per mode, statuses, derived durations, batches, rebuild."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from monitor.app.phasewatch import Phasewatch
from monitor.clock import FakeClock
from monitor.config import Config
from monitor.events import Event
from monitor.tracker import RunTracker, Update
from tests.factories import body, event_dict, make_event
from tests.test_slo_properties import base_config, histories

P3_OVERNIGHT = ["player_game_summary", "team_offense_game_summary", "team_defense_game_summary",
                "upcoming_player_game_context", "upcoming_team_game_context"]


def test_mode_derived_and_expected_processors_per_mode(app: Phasewatch) -> None:
    # 2026-01-18T06:00Z is 01:00 ET on Jan 18: the Jan 17 run is overnight
    app.collector.ingest_body(body(
        event_dict("phase3", "started", "2026-01-18T06:00:00Z", "player_game_summary"),
        event_dict("phase3", "started", "2026-01-18T16:00:00Z", "upcoming_player_game_context",
                   run_date="2026-01-18"),
    ))
    overnight = app.tracker.get(("nba", "2026-01-17", "overnight"))
    same_day = app.tracker.get(("nba", "2026-01-18", "same_day"))
    assert overnight is not None and same_day is not None
    assert list(overnight.phases["phase3"].expectation.expected) == P3_OVERNIGHT
    assert overnight.phases["phase3"].missing == P3_OVERNIGHT
    assert same_day.phases["phase3"].expectation.critical == ("upcoming_player_game_context",)


def test_duration_derived_from_started_and_phase_completion(app: Phasewatch) -> None:
    events = [event_dict("phase4", "started", "2026-01-18T11:00:00Z", name) for name in
              ("team_defense_zone_analysis", "player_shot_zone_analysis", "player_composite_factors",
               "player_daily_cache", "ml_feature_store")]
    app.collector.ingest_body(body(*events))
    run = app.tracker.get(("nba", "2026-01-17", "overnight"))
    assert run is not None
    phase = run.phases["phase4"]
    assert phase.status == "running"
    finish = [
        event_dict("phase4", "succeeded", "2026-01-18T11:10:00Z", "team_defense_zone_analysis"),
        event_dict("phase4", "succeeded", "2026-01-18T11:20:00Z", "player_daily_cache",
                   duration_s=1000.5),
        event_dict("phase4", "failed", "2026-01-18T11:30:00Z", "ml_feature_store", error="boom"),
    ]
    app.collector.ingest_body(body(*finish))
    assert phase.processors["team_defense_zone_analysis"].duration_s == 600.0
    assert phase.processors["player_daily_cache"].duration_s == 1000.5  # explicit wins
    assert phase.status == "failed"  # a critical processor failed
    assert phase.processors["ml_feature_store"].error == "boom"
    retry = [
        event_dict("phase4", "started", "2026-01-18T11:35:00Z", "ml_feature_store"),
        event_dict("phase4", "succeeded", "2026-01-18T11:50:00Z", "ml_feature_store"),
        event_dict("phase4", "succeeded", "2026-01-18T11:40:00Z", "player_shot_zone_analysis"),
    ]
    app.collector.ingest_body(body(*retry))
    mlfs = phase.processors["ml_feature_store"]
    assert (mlfs.status, mlfs.starts, mlfs.failures, mlfs.duration_s) == ("succeeded", 2, 1, 900.0)
    assert phase.status == "running"  # player_composite_factors still missing
    app.collector.ingest_body(body(
        event_dict("phase4", "succeeded", "2026-01-18T12:00:00Z", "player_composite_factors")))
    assert phase.status == "complete"
    assert phase.completed_at is not None and phase.completed_at.hour == 12
    assert phase.first_completion is not None and phase.first_completion.minute == 10
    text = app.metrics.exposition()[0].decode()
    assert 'phasewatch_phase_duration_seconds_count{mode="overnight",phase="phase4",pipeline="nba"} 1.0' in text
    assert 'phasewatch_phase_transitions_total{outcome="completed",phase="phase4",pipeline="nba"} 1.0' in text


def test_same_day_phase3_complete_with_required_count(app: Phasewatch) -> None:
    app.collector.ingest_body(body(
        event_dict("phase3", "succeeded", "2026-01-18T16:00:00Z", "UpcomingPlayerGameContextProcessor",
                   run_date="2026-01-18"),
    ))
    run = app.tracker.get(("nba", "2026-01-18", "same_day"))
    assert run is not None
    phase = run.phases["phase3"]
    assert phase.status == "complete"  # 1 of 2 expected with the critical one
    assert "upcoming_player_game_context" in phase.processors  # alias canonicalised


def test_degraded_when_only_optional_work_failed(app: Phasewatch) -> None:
    names = ["p2_odds_game_lines", "p2_nbacom_gamebook_pdf", "p2_nbacom_boxscores",
             "p2_odds_player_props"]
    events = [event_dict("phase2", "succeeded", "2026-01-18T06:00:00Z", n) for n in names]
    events.append(event_dict("phase2", "failed", "2026-01-18T06:05:00Z", "p2_bigdataball_pbp"))
    app.collector.ingest_body(body(*events))
    run = app.tracker.get(("nba", "2026-01-17", "overnight"))
    assert run is not None and run.phases["phase2"].status == "degraded"


def test_out_of_order_events_do_not_regress_status(app: Phasewatch) -> None:
    app.collector.ingest_body(body(
        event_dict("phase2", "succeeded", "2026-01-18T06:10:00Z", "p2_odds_game_lines"),
        event_dict("phase2", "started", "2026-01-18T06:00:00Z", "p2_odds_game_lines"),
    ))
    run = app.tracker.get(("nba", "2026-01-17", "overnight"))
    assert run is not None
    assert run.phases["phase2"].processors["p2_odds_game_lines"].status == "succeeded"


def test_batch_progress_tracked(app: Phasewatch) -> None:
    app.collector.ingest_body(body(
        event_dict("phase5", "started", "2026-01-18T13:00:00Z", "prediction-worker",
                   batch_id="b1", done=0, total=400),
        event_dict("phase5", "progress", "2026-01-18T13:05:00Z", "prediction-worker",
                   batch_id="b1", done=380, total=400),
        event_dict("phase5", "progress", "2026-01-18T13:20:00Z", "prediction-worker",
                   batch_id="b1", done=380, total=400),
    ))
    run = app.tracker.get(("nba", "2026-01-17", "overnight"))
    assert run is not None
    batch = run.phases["phase5"].batches["b1"]
    assert batch.fraction == 0.95
    assert batch.last_progress_at.minute == 5  # no progress since 13:05
    assert batch.updated_at.minute == 20
    assert not batch.finished


def test_rebuild_from_store_equals_live_state(app: Phasewatch, nba_config: Config) -> None:
    app.collector.ingest_body(body(
        event_dict("phase3", "started", "2026-01-18T06:00:00Z", "team_offense_game_summary"),
        event_dict("phase3", "succeeded", "2026-01-18T06:07:00Z", "team_offense_game_summary"),
        event_dict("phase3", "failed", "2026-01-18T06:09:00Z", "player_game_summary", error="x"),
    ))
    fresh = RunTracker(nba_config)
    fresh.rebuild(app.store.events())
    assert [r.as_dict() for r in fresh.runs()] == [r.as_dict() for r in app.tracker.runs()]


def test_retention_bounds_memory(nba_config: Config) -> None:
    clock = FakeClock(datetime(2026, 2, 1, 12, tzinfo=UTC))
    tracker = RunTracker(nba_config, retention_days=3, clock=clock)
    for day in range(1, 20):
        clock.set(datetime(2026, 2, day, 12, tzinfo=UTC))
        tracker.apply(make_event("phase1", "started", f"2026-02-{day:02d}T12:00:00Z",
                                 run_date=f"2026-02-{day:02d}", mode="same_day"))
    assert len(tracker) == 4
    assert min(r.run_date.day for r in tracker.runs()) == 16


@settings(max_examples=50, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(history=histories())
def test_a_phase_is_judged_again_only_when_a_status_changes_standing(history: Any) -> None:
    """``apply`` judges a phase again only when the event moved a status between done,
    failed and neither: after every event its judgement and the update's flags are those of
    judging the phase from scratch, before and after the event."""
    _, events, _, _ = history
    tracker = RunTracker(base_config(), retention_days=400)
    for event in events:
        run = tracker.get(event.run_key())
        before = run.phases[event.phase] if run is not None else None
        was = (before.is_complete(), before.is_failed()) if before is not None else (False, False)
        update = tracker.apply(event)
        phase = update.phase
        now = (phase.is_complete(), phase.is_failed())
        assert phase.judged == now
        assert update.phase_completed == (not was[0] and now[0])
        assert update.phase_failed == (not was[1] and now[1])


class _LooksUpEveryRun(RunTracker):
    """The plain form: every event's run looked up by its key."""

    def apply(self, event: Event, now: datetime | None = None) -> Update:
        self._last = None
        return super().apply(event, now)


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(history=histories(), cap=st.none() | st.integers(1, 5), retention=st.integers(0, 4),
       restored=st.integers(0, 200), grouped=st.booleans())
def test_the_run_of_the_event_before_is_the_run_its_key_holds(
    history: Any, cap: int | None, retention: int, restored: int, grouped: bool,
) -> None:
    """``apply`` takes the run of the event before when the event is of the same run
    (``RunTracker._last``): each update's run is the one held under its event's key, and
    the updates and the runs are those of a tracker that looks every run up by its key, with
    runs dropped by age and by the cap in between, and a snapshot's runs put in place."""
    _, events, _, _ = history
    # Runs' events together, as batches bring them, and shuffled, as a backlog does.
    if grouped:
        events = sorted(events, key=lambda e: (e.run_key(), e.timestamp))
    clocks = [FakeClock(min((e.timestamp for e in events), default=datetime(2026, 3, 1, tzinfo=UTC)))
              for _ in range(2)]
    fast, plain = (cls(base_config(), retention, clock=clock, max_runs=cap)
                   for cls, clock in zip((RunTracker, _LooksUpEveryRun), clocks, strict=True))
    for i, event in enumerate(events):
        if i == restored:  # a snapshot restored: other runs in place, equal to those held
            fast._runs, plain._runs = (_rebuilt(events[:i]) for _ in range(2))
        for clock in clocks:
            clock.set(max(clock.now(), event.timestamp))
        got, want = fast.apply(event), plain.apply(event)
        assert got.run is fast.get(event.run_key())
        assert (got.run.key, got.phase.phase, got.duration_s, got.started_at, got.phase_completed,
                got.phase_failed) == (want.run.key, want.phase.phase, want.duration_s,
                                      want.started_at, want.phase_completed, want.phase_failed)
    assert [r.as_dict() for r in fast.runs()] == [r.as_dict() for r in plain.runs()]


def test_a_run_dropped_by_the_tick_or_a_rebuild_is_not_the_next_events_run(
    nba_config: Config,
) -> None:
    """The tick's sweep (or a rebuild) drops the run of the last event applied: the run's
    next event makes it anew (``RunTracker._last`` forgotten), not into the dropped one."""
    clock = FakeClock(datetime(2026, 2, 2, 12, tzinfo=UTC))
    tracker = RunTracker(nba_config, retention_days=1, clock=clock)
    first = tracker.apply(make_event("phase1", "started", "2026-02-02T12:00:00Z",
                                     run_date="2026-02-01", mode="same_day"))
    clock.set(datetime(2026, 2, 5, 12, tzinfo=UTC))
    assert tracker.sweep(clock.now(), force=True) == 1
    again = tracker.apply(make_event("phase1", "succeeded", "2026-02-05T12:00:00Z",
                                     run_date="2026-02-01", mode="same_day"))
    assert again.run is not first.run and tracker.get(again.run.key) is again.run
    tracker.rebuild([make_event("phase1", "failed", "2026-02-05T13:00:00Z", run_date="2026-02-01",
                                mode="same_day")])
    rebuilt = tracker.get(again.run.key)
    assert rebuilt is not None and rebuilt is not again.run


def _rebuilt(events: list[Event]) -> dict[Any, Any]:
    tracker = RunTracker(base_config())
    tracker.rebuild(events)
    return tracker._runs
