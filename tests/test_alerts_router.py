"""The router: grouping and timing, dedup and flood control, routes, silences, inhibition,
durability across restarts. Fake clock, in-memory channels, a real SQLite file."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import replace
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest
from prometheus_client import CollectorRegistry, Counter

from alerts.channels.memory import MemoryChannel
from alerts.engine import AlertEngine
from alerts.errors import InvalidSilence
from alerts.flood import error_signature, failure_alert, normalise_error
from alerts.notification import Notification
from alerts.simple import SimpleRouter
from monitor.clock import FakeClock
from monitor.config import Config
from monitor.store.sqlite import SQLiteStore
from monitor.tracker import RunTracker
from tests.factories import make_event
from tests.test_alerts_support import make_alert, make_engine

RUN = {"pipeline": "nba", "run_date": "2026-01-17", "mode": "overnight"}


@pytest.fixture
def db(tmp_path: Path) -> Iterator[SQLiteStore]:
    store = SQLiteStore(tmp_path / "pw.db")
    yield store
    store.close()


def memory_config(**extra: Any) -> dict[str, Any]:
    return {"channels": [{"kind": "memory", "name": "pager"}, {"kind": "memory", "name": "chat"}],
            **extra}


def sent(engine: AlertEngine, name: str) -> list[Notification]:
    channel = engine.channels[name]
    assert isinstance(channel, MemoryChannel)
    return channel.sent


def run(engine: AlertEngine, clock: FakeClock, seconds: float, step: float = 10.0) -> None:
    """Tick every ``step`` seconds for ``seconds`` of fake time (what serve's scheduler does)."""
    end = clock.now() + timedelta(seconds=seconds)
    while clock.now() < end:
        clock.advance(step)
        engine.tick(clock.now())


def test_group_wait_then_one_notification_per_alert(db: SQLiteStore, clock: FakeClock) -> None:
    chat = MemoryChannel("chat")
    engine = make_engine(db, clock, [chat])
    engine.router.fire(make_alert("deadline", clock.now(), phase="phase4", **RUN))
    engine.tick(clock.now())
    run(engine, clock, 20)
    assert chat.sent == []  # still inside group_wait (30 s)
    engine.router.fire(make_alert("deadline", clock.now(), phase="phase5", **RUN))
    run(engine, clock, 20)
    assert [n.alert.labels["phase"] for n in chat.sent] == ["phase4", "phase5"]  # one flush
    assert {n.group for n in chat.sent} == {"route-1{pipeline=nba,run_date=2026-01-17}"}
    assert [d.as_dict()["action"] for d in engine.router.history] == ["trigger", "trigger"]


def test_later_alert_waits_for_group_interval(db: SQLiteStore, clock: FakeClock) -> None:
    chat = MemoryChannel("chat")
    engine = make_engine(db, clock, [chat])
    engine.router.fire(make_alert("deadline", clock.now(), phase="phase4", **RUN))
    run(engine, clock, 40)
    first_flush = chat.sent[0].at
    engine.router.fire(make_alert("freshness", clock.now(), phase="phase4", **RUN))
    run(engine, clock, 240)
    assert len(chat.sent) == 1
    run(engine, clock, 80)
    assert len(chat.sent) == 2
    assert chat.sent[1].at - first_flush == timedelta(minutes=5)


def test_flood_of_identical_failures_is_one_notification_with_count(
    db: SQLiteStore, clock: FakeClock
) -> None:
    chat = MemoryChannel("chat")
    engine = make_engine(db, clock, [chat])
    for i in range(500):
        error = f"ImportError: cannot import name 'firestore' (worker {i}, request id {1000 + i})"
        engine.router.fire(failure_alert("worker_crash", {"pipeline": "nba", "phase": "phase5"},
                                         error, clock.now()))
        if i % 50 == 0:
            engine.tick(clock.now())  # ticks during the flood change nothing
        clock.advance(0.01)
    run(engine, clock, 40)
    assert len(chat.sent) == 1
    alert = chat.sent[0].alert
    assert alert.count == 500
    assert alert.labels["signature"] == error_signature(
        "ImportError: cannot import name 'firestore' (worker 7, request id 77)")
    assert engine.router.history[0].as_dict()["count"] == 500
    assert len(engine.router.active()) == 1


def test_error_signature_ignores_particulars_but_not_the_error() -> None:
    a = "BigQuery error: column vegas_line_source not found in table t_123 at 2026-02-08T03:36:00Z"
    b = "BigQuery error: column vegas_line_source not found in table t_987 at 2026-02-08T04:01:12Z"
    assert error_signature(a) == error_signature(b)
    assert error_signature(a) != error_signature("ImportError: No module named google.cloud")
    assert normalise_error("Traceback...\n  File x\nValueError: 17 players") == "ValueError: <n> players"


def test_repeat_interval_and_resolve(db: SQLiteStore, clock: FakeClock) -> None:
    chat = MemoryChannel("chat")
    engine = make_engine(db, clock, [chat])
    alert = make_alert("service_unhealthy", clock.now(), "critical", service="prediction-worker")
    engine.router.fire(alert)
    run(engine, clock, 60)
    assert [(n.action, n.repeat) for n in chat.sent] == [("trigger", False)]
    run(engine, clock, 4 * 3600 - 120, step=30)
    assert len(chat.sent) == 1  # not before 4 h
    run(engine, clock, 400, step=30)
    assert [(n.action, n.repeat) for n in chat.sent] == [("trigger", False), ("trigger", True)]
    engine.router.resolve(alert.key, clock.now())
    run(engine, clock, 300, step=30)
    assert [(n.action, n.repeat) for n in chat.sent][-1] == ("resolve", False)
    assert chat.sent[-1].alert.state == "resolved"
    assert engine.router.active() == []
    run(engine, clock, 5 * 3600, step=60)
    assert len(chat.sent) == 3  # nothing after the resolve


def test_flapping_inside_group_wait_sends_nothing_or_one_trigger(
    db: SQLiteStore, clock: FakeClock
) -> None:
    chat = MemoryChannel("chat")
    engine = make_engine(db, clock, [chat])
    a = make_alert("deadline", clock.now(), phase="phase3", **RUN)
    engine.router.fire(a)
    clock.advance(5)
    engine.router.resolve(a.key, clock.now())
    run(engine, clock, 60)
    assert chat.sent == []  # fired and cleared before anyone needed to know
    engine.router.fire(make_alert("deadline", clock.now(), phase="phase3", **RUN))
    clock.advance(5)
    engine.router.resolve(a.key, clock.now())
    engine.router.fire(make_alert("deadline", clock.now(), phase="phase3", **RUN))
    run(engine, clock, 60)
    assert [n.action for n in chat.sent] == ["trigger"]
    assert chat.sent[0].alert.count == 2


def test_escalation_notifies_again(db: SQLiteStore, clock: FakeClock) -> None:
    chat = MemoryChannel("chat")
    engine = make_engine(db, clock, [chat])
    engine.router.fire(make_alert("phase_overdue", clock.now(), "warning", slo="phase4-deadline"))
    run(engine, clock, 40)
    engine.router.fire(make_alert("phase_overdue", clock.now(), "critical", slo="phase4-deadline"))
    run(engine, clock, 400)
    assert [n.alert.severity for n in chat.sent] == ["warning", "critical"]
    assert not chat.sent[1].repeat


def test_routes_by_severity_and_labels(db: SQLiteStore, clock: FakeClock) -> None:
    engine = make_engine(db, clock, alerting=memory_config(
        routes=[
            {"severities": ["critical"], "channels": ["pager"], "continue": True,
             "group_wait_s": 0},
            {"match": ["pipeline=~nba|mlb", "alertname!=anomaly"], "channels": ["chat"]},
        ],
        default_channels=["chat"],
    ))
    now = clock.now()
    engine.router.fire(make_alert("service_unhealthy", now, "critical", pipeline="nba", service="w"))
    engine.router.fire(make_alert("deadline", now, "warning", phase="phase4", **RUN))
    engine.router.fire(make_alert("anomaly", now, "warning", pipeline="nba", phase="phase3"))
    engine.tick(now)
    assert [n.alert.name for n in sent(engine, "pager")] == ["service_unhealthy"]  # group_wait 0
    assert sent(engine, "chat") == []
    run(engine, clock, 40)
    assert sorted(n.alert.name for n in sent(engine, "chat")) == [
        "anomaly", "deadline", "service_unhealthy"]  # continue; default route for the anomaly
    assert [n.alert.name for n in sent(engine, "pager")] == ["service_unhealthy"]


def test_silence_holds_back_matching_alerts_until_it_expires(
    db: SQLiteStore, clock: FakeClock
) -> None:
    chat = MemoryChannel("chat")
    engine = make_engine(db, clock, [chat])
    silence = engine.silences.create(
        {"matchers": ["alertname=deadline", 'phase=~"phase[45]"'], "author": "oncall",
         "comment": "phase 3 fix deploying", "duration": "1h"}, clock.now())
    for phase in ("phase3", "phase4", "phase5"):
        engine.router.fire(make_alert("deadline", clock.now(), phase=phase, **RUN))
    run(engine, clock, 60)
    assert [n.alert.labels["phase"] for n in chat.sent] == ["phase3"]
    statuses = {s.alert.labels["phase"]: s for s in engine.router.statuses(clock.now())}
    assert statuses["phase4"].silenced_by == (silence.id,) and statuses["phase4"].state == "suppressed"
    run(engine, clock, 3600, step=60)
    assert sorted(n.alert.labels["phase"] for n in chat.sent) == ["phase3", "phase4", "phase5"]


def test_expired_silence_and_restart_keep_the_silence_state(
    db: SQLiteStore, clock: FakeClock
) -> None:
    engine = make_engine(db, clock, [MemoryChannel("chat")])
    s = engine.silences.create({"matchers": ["service=prediction-worker"], "author": "a",
                                "comment": "deploy", "duration": "2h"}, clock.now())
    again = make_engine(db, clock, [MemoryChannel("chat")])
    assert [x.id for x in again.silences.silences(clock.now())] == [s.id]
    again.silences.expire(s.id, clock.now())
    third = make_engine(db, clock, [MemoryChannel("chat")])
    assert third.silences.silences(clock.now()) == []
    assert third.silences.silences(clock.now(), include_expired=True)[0].state(clock.now()) == "expired"


@pytest.mark.parametrize(("body", "field"), [
    ({"matchers": [], "author": "a", "comment": "c", "duration": "1h"}, "matchers"),
    ({"matchers": ["alertname=~.*"], "author": "a", "comment": "c", "duration": "1h"}, "matchers"),
    ({"matchers": ["phase~x"], "author": "a", "comment": "c", "duration": "1h"}, "matchers[0]"),
    ({"matchers": ["phase=~(x"], "author": "a", "comment": "c", "duration": "1h"}, "matchers[0]"),
    ({"matchers": ["phase=x"], "author": "", "comment": "c", "duration": "1h"}, "author"),
    ({"matchers": ["phase=x"], "author": "a", "comment": "c"}, "ends_at"),
    ({"matchers": ["phase=x"], "author": "a", "comment": "c", "duration": "soon"}, "duration"),
    ({"matchers": ["phase=x"], "author": "a", "comment": "c", "duration": "90d"}, "ends_at"),
    ({"matchers": ["phase=x"], "author": "a", "comment": "c",
      "ends_at": "2026-01-18T11:00:00+00:00"}, "ends_at"),
    ({"matchers": ["phase=x"], "author": "a", "comment": "c", "duration": "1h", "who": 1}, "who"),
])
def test_silence_validation_names_the_field(
    db: SQLiteStore, clock: FakeClock, body: dict[str, Any], field: str
) -> None:
    engine = make_engine(db, clock, [MemoryChannel("chat")])
    with pytest.raises(InvalidSilence) as info:
        engine.silences.create(body, clock.now())
    assert field in [p.field for p in info.value.problems]
    assert info.value.status_code == 422 and info.value.reason == "invalid_silence"


def test_graph_inhibition_of_downstream_deadline_overdue_and_no_effect(
    db: SQLiteStore, clock: FakeClock, nba_config: Config
) -> None:
    """The default graph inhibition with the names phasewatch emits (issue 12)."""
    chat = MemoryChannel("chat")
    engine = make_engine(db, clock, [chat], nba_config.alerting, config=nba_config)
    now = clock.now()
    # The consequences arrive first; their cause within group_wait: no race.
    engine.router.fire(make_alert("slo_bad_run", now, "info", phase="phase4", slo="s4", **RUN))
    engine.router.fire(make_alert("phase_overdue", now, phase="phase5", **RUN))
    engine.router.fire(make_alert("trigger_no_effect", now, "critical", phase="phase3", **RUN))
    engine.router.fire(make_alert("slo_bad_run", now, "info", phase="phase2", slo="s2", **RUN))  # upstream
    engine.router.fire(make_alert("slo_bad_run", now, "info", phase="phase4", slo="s4",
                                  **{**RUN, "run_date": "2026-01-16"}))  # another run
    engine.router.fire(make_alert("entity_coverage_drop", now, phase="phase4", **RUN))  # not a target
    clock.advance(10)
    stuck = make_alert("phase_stuck", clock.now(), "warning", phase="phase3", **RUN)
    engine.router.fire(stuck)
    run(engine, clock, 60)
    told = sorted((n.alert.name, n.alert.labels["phase"], n.alert.labels["run_date"]) for n in chat.sent)
    assert told == [
        ("entity_coverage_drop", "phase4", "2026-01-17"), ("phase_stuck", "phase3", "2026-01-17"),
        ("slo_bad_run", "phase2", "2026-01-17"), ("slo_bad_run", "phase4", "2026-01-16"),
    ]
    status = {(s.alert.name, s.alert.labels["phase"]): s for s in engine.router.statuses(clock.now())
              if s.alert.labels["run_date"] == "2026-01-17"}
    assert status[("slo_bad_run", "phase4")].inhibited_by == (stuck.key,)
    # The cause clears while its consequences still fire: they stay its consequences (a
    # burn that lingers after an outage is not news), and none is reminded or resolved.
    engine.router.resolve(stuck.key, clock.now())
    run(engine, clock, 400)
    assert [(n.action, n.alert.name) for n in chat.sent[4:]] == [("resolve", "phase_stuck")]
    # A new alert downstream after the cause cleared is news.
    engine.router.fire(make_alert("phase_overdue", clock.now(), phase="phase4", **RUN))
    run(engine, clock, 400)
    assert [(n.action, n.alert.name) for n in chat.sent[5:]] == [("trigger", "phase_overdue")]


def test_a_failing_processor_or_service_inhibits_every_run_downstream(
    db: SQLiteStore, clock: FakeClock, nba_config: Config
) -> None:
    """Sources without a run (failing now) cover every run; a service covers its phases."""
    chat = MemoryChannel("chat")
    engine = make_engine(db, clock, [chat], nba_config.alerting, config=nba_config)
    now = clock.now()
    engine.router.fire(make_alert("deterministic_failure", now, "critical", pipeline="nba",
                                  phase="phase4", processor="ml_feature_store"))
    engine.router.fire(make_alert("service_unhealthy", now, "critical",
                                  service="nba-phase3-analytics-processors"))
    engine.router.fire(make_alert("slo_bad_runs_in_a_row", now, "critical", phase="phase5",
                                  slo="p", **RUN))
    engine.router.fire(make_alert("phase_overdue", now, phase="phase3", **{**RUN, "run_date": "2026-01-18"}))
    engine.router.fire(make_alert("phase_overdue", now, phase="phase2", **RUN))  # upstream of both
    run(engine, clock, 60)
    assert sorted((n.alert.name, n.alert.labels.get("phase")) for n in chat.sent) == [
        ("deterministic_failure", "phase4"), ("phase_overdue", "phase2"), ("service_unhealthy", None)]


def test_a_failure_now_holds_no_downstream_phase_that_already_began_in_its_run(
    db: SQLiteStore, clock: FakeClock, nba_config: Config
) -> None:
    """Tonight's Phase 2 failing (no run: failing now) while the tomorrow run of another date
    is in Phase 5: that phase began with its inputs, so its overdue is its own (told); the
    same run's Phase 6, not begun, and a run the tracker has not seen stay consequences."""
    tracker = RunTracker(nba_config, clock=clock)
    began = {"pipeline": "nba", "run_date": "2026-01-19", "mode": "tomorrow"}
    tracker.apply(make_event("phase5", "started", clock.now().isoformat(), "prediction-coordinator",
                             run_date="2026-01-19", mode="tomorrow"))
    chat = MemoryChannel("chat")
    engine = make_engine(db, clock, [chat], nba_config.alerting, config=nba_config, tracker=tracker)
    now = clock.now()
    engine.router.fire(make_alert("deterministic_failure", now, "critical", pipeline="nba",
                                  phase="phase2", processor="p2_nbacom_gamebook_pdf"))
    engine.router.fire(make_alert("phase_overdue", now, phase="phase5", **began))
    engine.router.fire(make_alert("phase_overdue", now, phase="phase6", **began))
    engine.router.fire(make_alert("phase_overdue", now, phase="phase5", **RUN))
    run(engine, clock, 60)
    assert sorted((n.alert.name, n.alert.labels.get("phase"), n.alert.labels.get("run_date", ""))
                  for n in chat.sent) == [
        ("deterministic_failure", "phase2", ""), ("phase_overdue", "phase5", "2026-01-19")]


def test_a_scheduler_job_failing_on_an_unhealthy_service_of_its_phase_is_its_consequence(
    db: SQLiteStore, clock: FakeClock, nba_config: Config
) -> None:
    """The 11:30 predictions job gets 503 from the coordinator already paged unhealthy: a
    consequence, never told (not even once the outage resolves); the same failure of a job
    whose phase runs on a healthy service is news."""
    chat = MemoryChannel("chat")
    engine = make_engine(db, clock, [chat], nba_config.alerting, config=nba_config)
    outage = make_alert("service_unhealthy", clock.now(), "critical", service="prediction-coordinator")
    engine.router.fire(outage)
    run(engine, clock, 60)
    for job, phase in (("same-day-predictions", "phase5"), ("overnight-phase4", "phase4")):
        engine.router.fire(make_alert("scheduler_attempt_failed", clock.now(), "critical",
                                      pipeline="nba", job=job, phase=phase, status="HTTP 503"))
    run(engine, clock, 60)
    engine.router.resolve(outage.key, clock.now())
    run(engine, clock, 5 * 3600, step=60)
    assert sorted((n.action, n.alert.name, n.alert.labels.get("job", "")) for n in chat.sent
                  if not n.repeat) == [
        ("resolve", "service_unhealthy", ""), ("trigger", "scheduler_attempt_failed", "overnight-phase4"),
        ("trigger", "service_unhealthy", "")]


def test_a_deterministic_failure_is_the_one_notification_of_its_processor(
    db: SQLiteStore, clock: FakeClock, nba_config: Config
) -> None:
    """ml_feature_store crash-loops: its failed runs, its retry storm and Phase 4 stuck with
    only it missing say the same thing; another processor's failed runs and a phase stuck
    on more than the failing processor are news."""
    chat = MemoryChannel("chat")
    engine = make_engine(db, clock, [chat], nba_config.alerting, config=nba_config)
    now = clock.now()
    proc = {"pipeline": "nba", "phase": "phase4"}
    engine.router.fire(make_alert("deterministic_failure", now, "critical", **proc,
                                  processor="ml_feature_store"))
    run(engine, clock, 60)
    engine.router.fire(make_alert("failed_runs", clock.now(), **proc, processor="ml_feature_store"))
    engine.router.fire(make_alert("retry_storm", clock.now(), **RUN, phase="phase4",
                                  processor="ml_feature_store"))
    engine.router.fire(make_alert("failed_runs", clock.now(), **proc, processor="player_daily_cache"))
    engine.router.fire(make_alert("phase_stuck", clock.now(), **RUN, phase="phase4", target="phase5",
                                  missing="ml_feature_store"))
    engine.router.fire(make_alert("phase_stuck", clock.now(), **{**RUN, "run_date": "2026-01-18"},
                                  phase="phase4", target="phase5",
                                  missing="ml_feature_store,player_daily_cache"))
    run(engine, clock, 3600)
    assert sorted((n.alert.name, n.alert.labels.get("processor") or n.alert.labels["missing"])
                  for n in chat.sent) == [
        ("deterministic_failure", "ml_feature_store"), ("failed_runs", "player_daily_cache"),
        ("phase_stuck", "ml_feature_store,player_daily_cache")]


def test_configured_inhibit_rule_with_equal_labels(db: SQLiteStore, clock: FakeClock) -> None:
    engine = make_engine(db, clock, alerting=memory_config(inhibit_rules=[{
        "source": ["alertname=service_unhealthy"], "target": ["severity=warning"],
        "equal": ["service"],
    }]))
    now = clock.now()
    engine.router.fire(make_alert("service_unhealthy", now, "critical", service="worker"))
    engine.router.fire(make_alert("slow_probe", now, "warning", service="worker"))
    engine.router.fire(make_alert("slow_probe", now, "warning", service="coordinator"))
    run(engine, clock, 40)
    names = sorted((n.alert.name, n.alert.labels["service"]) for n in sent(engine, "chat"))
    assert names == [("service_unhealthy", "worker"), ("slow_probe", "coordinator")]


def test_restart_neither_repeats_nor_forgets(tmp_path: Path, clock: FakeClock) -> None:
    path = tmp_path / "pw.db"
    store = SQLiteStore(path)
    chat = MemoryChannel("chat")
    engine = make_engine(store, clock, [chat])
    a = make_alert("deadline", clock.now(), phase="phase4", **RUN)
    engine.router.fire(a)
    for _ in range(4):
        engine.router.fire(a)
    run(engine, clock, 40)
    assert len(chat.sent) == 1
    engine.close()
    store.close()

    store = SQLiteStore(path)
    chat2 = MemoryChannel("chat")
    engine = make_engine(store, clock, [chat2])
    assert [x.count for x in engine.router.active()] == [5]
    engine.router.fire(a)  # the evaluator re-raises what it still sees
    run(engine, clock, 600)
    assert chat2.sent == []  # already told before the restart
    engine.router.resolve(a.key, clock.now())
    run(engine, clock, 400)
    assert [(n.action, n.alert.count) for n in chat2.sent] == [("resolve", 6)]
    store.close()


def test_a_restored_group_is_due_from_its_oldest_alert_not_from_the_restart(
        tmp_path: Path, clock: FakeClock) -> None:
    """bench/crash.py found it: an alert fired just before a kill -9 (its group not flushed
    yet) waited a whole group_wait again from the restart, and the first event after the
    restart cleared it before it was ever told, on any channel."""
    path = tmp_path / "pw.db"
    store = SQLiteStore(path)
    engine = make_engine(store, clock, [MemoryChannel("chat")])  # group_wait 30 s
    a = make_alert("deterministic_failure", clock.now(), phase="phase2", **RUN)
    engine.router.fire(a)  # killed before its group was due
    store.close()

    clock.advance(60)  # the restart
    store = SQLiteStore(path)
    chat = MemoryChannel("chat")
    engine = make_engine(store, clock, [chat])
    engine.tick(clock.now())  # serve's flush before its first request (the lifespan)
    engine.router.resolve(a.key, clock.now())  # the first event after the restart clears it
    run(engine, clock, 400)  # the resolve goes out with the group's next flush (group_interval)
    assert [n.action for n in chat.sent] == ["trigger", "resolve"]
    store.close()


def test_metrics_count_delivered_and_suppressed(db: SQLiteStore, clock: FakeClock) -> None:
    registry = CollectorRegistry()
    counter = Counter("phasewatch_alerts", "x", ["channel", "severity", "outcome"], registry=registry)
    engine = make_engine(db, clock, [MemoryChannel("chat")], counter=counter)
    engine.silences.create({"matchers": ["phase=phase9"], "author": "a", "comment": "c",
                            "duration": "1h"}, clock.now())
    engine.router.fire(make_alert("deadline", clock.now(), "critical", phase="phase4", **RUN))
    engine.router.fire(make_alert("deadline", clock.now(), "warning", phase="phase9", **RUN))
    run(engine, clock, 120)

    def value(outcome: str, severity: str) -> float | None:
        return registry.get_sample_value("phasewatch_alerts_total", {
            "channel": "chat", "severity": severity, "outcome": outcome})

    assert value("delivered", "critical") == 1
    assert value("silenced", "warning") == 1  # once, however many flushes


def test_notice_raised_and_cleared_at_once_is_told_once(db: SQLiteStore, clock: FakeClock) -> None:
    chat = MemoryChannel("chat")
    engine = make_engine(db, clock, [chat])
    notice = make_alert("batch_recovered", clock.now(), "info", phase="phase5", **RUN,
                        summary="stalled batch auto-recovered")
    engine.router.fire(notice)
    engine.router.resolve(notice.key, clock.now())
    run(engine, clock, 600)
    assert [(n.action, n.notice) for n in chat.sent] == [("trigger", True)]
    assert engine.router.active() == [] and engine.router.groups() == {}
    assert engine.weekly(clock.now()).incidents == 0


@pytest.mark.parametrize("first", ["phase_overdue", "processor_stalled"])
def test_two_alerts_that_would_hide_each_other_tell_the_earlier(
    db: SQLiteStore, clock: FakeClock, nba_config: Config, first: str
) -> None:
    """A phase overdue and the processor stalled in it explain each other: whichever opened
    first is the cause, the other its consequence (one notification for the problem)."""
    chat = MemoryChannel("chat")
    engine = make_engine(db, clock, [chat], nba_config.alerting, config=nba_config)
    second = "processor_stalled" if first == "phase_overdue" else "phase_overdue"
    engine.router.fire(make_alert(first, clock.now(), phase="phase3",
                                  processor="player_game_summary", **RUN))
    run(engine, clock, 600)
    engine.router.fire(make_alert(second, clock.now(), phase="phase3",
                                  processor="player_game_summary", **RUN))
    run(engine, clock, 600)
    assert [n.alert.name for n in chat.sent] == [first]
    # Within one group_wait neither hides both: the earlier (then the smaller key) is told.
    clock.advance(10)
    engine.router.fire(make_alert("phase_overdue", clock.now(), phase="phase3", **{**RUN, "run_date": "2026-01-16"}))
    engine.router.fire(make_alert("processor_stalled", clock.now(), phase="phase3",
                                  processor="player_game_summary", **{**RUN, "run_date": "2026-01-16"}))
    run(engine, clock, 600)
    assert [n.alert.name for n in chat.sent[1:]] == ["phase_overdue"]


def test_a_consequence_nobody_was_told_about_hides_nothing(
    db: SQLiteStore, clock: FakeClock, nba_config: Config
) -> None:
    """The worker's outage (told) hides its phase's overdue run (a consequence); once the
    outage is over, that untold overdue alert does not hide the SLO page that follows."""
    chat = MemoryChannel("chat")
    engine = make_engine(db, clock, [chat], nba_config.alerting, config=nba_config)
    outage = make_alert("service_unhealthy", clock.now(), "critical", service="prediction-worker")
    engine.router.fire(outage)
    engine.router.fire(make_alert("phase_overdue", clock.now(), phase="phase5", **RUN))
    run(engine, clock, 60)
    engine.router.resolve(outage.key, clock.now())
    run(engine, clock, 60)
    engine.router.fire(make_alert("slo_bad_runs_in_a_row", clock.now(), "critical", phase="phase5",
                                  slo="nba-predictions-by-10am", pipeline="nba", run_date="2026-01-17"))
    run(engine, clock, 600)
    assert sorted((n.action, n.alert.name) for n in chat.sent) == [
        ("resolve", "service_unhealthy"), ("trigger", "service_unhealthy"),
        ("trigger", "slo_bad_runs_in_a_row")]  # the overdue run, a consequence, never told


def test_news_of_a_firing_alert_is_told_again_by_either_router(tmp_path: Path,
                                                                clock: FakeClock) -> None:
    """``fire(news=True)``: a repeat that says more than was told (a correlated incident
    that spread) is told at once as a reminder, even when acknowledged; a plain repeat is
    absorbed."""
    simple_channel = MemoryChannel("simple")
    simple = SimpleRouter([simple_channel])
    first = make_alert("correlated_failure", clock.now(), "critical", summary="2 in phase4",
                       pipeline="nba", signature="s")
    simple.fire(first)
    simple.fire(first)
    simple.fire(replace(first, summary="3 in phase4, phase5"), news=True)
    assert [(n.repeat, n.alert.summary) for n in simple_channel.sent] == [
        (False, "2 in phase4"), (True, "3 in phase4, phase5")]
    store = SQLiteStore(tmp_path / "pw.db")
    pager = MemoryChannel("pager")
    engine = make_engine(store, clock, [pager], {"channels": [{"kind": "memory", "name": "pager"}]})
    try:
        engine.router.fire(first)
        run(engine, clock, 60)
        assert engine.router.acknowledge(first.key, clock.now(), "Dana Reyes")
        engine.router.fire(first)
        run(engine, clock, 600, step=60)
        engine.router.fire(replace(first, summary="3 in phase4, phase5"), news=True)
        run(engine, clock, 600, step=60)
    finally:
        engine.close()
        store.close()
    assert [(n.repeat, n.alert.summary) for n in pager.sent] == [
        (False, "2 in phase4"), (True, "3 in phase4, phase5")]
