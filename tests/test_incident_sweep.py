"""Incidents of the same classes as ../shared/incidents.md, but stories phasewatch never saw.

Each scenario (tests/scenarios/sweep_*.jsonl, written by make_scenarios.py) is replayed
through the whole stack with the simulated world and a Slack and a PagerDuty channel, and
each test counts what each channel was told: the on-call person's night, not the alerts
raised inside.
"""

from __future__ import annotations

from collections.abc import Iterator
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
import yaml

from monitor.actuator.simulated import simulated
from monitor.app.phasewatch import Phasewatch
from monitor.app.sim.replay import (
    HealthLine,
    Replayer,
    SimulatedWorld,
    _peek_start,
    _timestamp,
    read_lines,
    replay,
)
from monitor.clock import FakeClock
from monitor.config import default_config_text, parse_config
from slo.evaluator import SLOStatus
from tests.actuator_support import COVERAGE, PHASE3_OVERNIGHT, PHASE4, SCENARIOS
from tests.factories import make_event
from tests.test_alert_noise import Live, nba

PAGER, CHAT = "pagerduty", "slack"


def at(text: str) -> datetime:
    return datetime.fromisoformat(text.replace("Z", "+00:00"))


def t(item: dict[str, Any]) -> datetime:
    return datetime.fromisoformat(item["time"])


def sweep_instance(path: Path, tick_s: float | None = None
                   ) -> tuple[Phasewatch, FakeClock, SimulatedWorld]:
    """The bundled NBA config with a PagerDuty and a Slack channel (default routes: critical
    pages and posts, warning and info only post), on a clock at ``path``'s first line;
    optionally ticking every ``tick_s`` (a replay of days)."""
    data = yaml.safe_load(default_config_text())
    data["alerting"] = {**data.get("alerting", {}), "channels": [
        {"kind": "pagerduty", "name": PAGER, "routing_key_env": "PD_ROUTING_KEY"},
        {"kind": "slack", "name": CHAT, "webhook_url_env": "SLACK_WEBHOOK_URL"}]}
    if tick_s is not None:
        data["server"] = {**data.get("server", {}), "tick_interval_s": tick_s}
    config = parse_config(yaml.safe_dump(data), "<sweep>")
    clock = FakeClock(_peek_start(path))
    world = SimulatedWorld()
    probe, sinks, _ = simulated(world)
    pw = Phasewatch.build(config, db_path=":memory:", clock=clock, probe=probe, sinks=sinks,
                          dry_run_alerts=True)
    return pw, clock, world


@pytest.fixture
def scenario(request: pytest.FixtureRequest) -> Iterator[tuple[dict[str, Any], Phasewatch]]:
    """``sweep_instance`` replaying tests/scenarios/<param>."""
    path = SCENARIOS / request.param
    pw, clock, world = sweep_instance(path)
    try:
        yield replay(read_lines(path, pw), pw, clock, world), pw
    finally:
        pw.close()


def told(report: dict[str, Any], channel: str, name: str | None = None) -> list[tuple[str, str, str]]:
    """(action, severity, alertname) of every notification ``channel`` got, reminders included."""
    return [(a["action"] + (" (reminder)" if a["repeat"] else ""), a["severity"], a["key"].split(":")[0])
            for a in report["alerts"] if channel in a["channels"]
            and (name is None or a["key"].startswith(name + ":"))]


def notes(report: dict[str, Any], name: str) -> list[dict[str, Any]]:
    return [a for a in report["alerts"] if a["key"].startswith(name + ":")]


def triggers(report: dict[str, Any], phase: str, run_date: str | None = None) -> list[dict[str, Any]]:
    return [i for i in report["triggers"] if i["phase"] == phase
            and (run_date is None or i["run_date"] == run_date)]


def world_health(name: str, service: str, when: datetime) -> str:
    """What the scenario's health lines say ``service`` answered at ``when``."""
    status = "pass"
    for raw in (SCENARIOS / name).read_text().splitlines():
        line = yaml.safe_load(raw)
        if line.get("type") == "health" and line["service"] == service and at(line["timestamp"]) <= when:
            status = HealthLine.model_validate(line, strict=False).status
    return status


# --------------------------------------------------------------------------- the sweep


@pytest.mark.parametrize("scenario", ["sweep_empty_success.jsonl"], indirect=True)
def test_a_success_with_zero_rows_holds_the_next_phase_and_is_told_once(
    scenario: tuple[dict[str, Any], Phasewatch],
) -> None:
    """The player context says `succeeded` with 0 of 478 rows on a game day (T0 14:42): the
    drop is told at once, Phase 4 is not triggered on nothing, and when the 10:30 ET job
    re-runs the context the held trigger goes out once and everything resolves."""
    report, _ = scenario
    t0 = at("2026-03-03T14:42:00Z")
    (drop,) = [a for a in notes(report, "entity_coverage_drop") if a["action"] == "trigger"]
    assert t(drop) - t0 <= timedelta(minutes=1) and "0/478" in drop["summary"]
    # No Phase 4 trigger until the context covers the players again (15:50).
    (phase4,) = triggers(report, "phase4")
    assert phase4["outcome"] == "succeeded" and t(phase4) >= at("2026-03-03T15:50:00Z")
    assert phase4["note"] == "retry after coverage recovers"
    assert [i["outcome"] for i in triggers(report, "phase5")] == ["succeeded"]
    # The night, counted: one page (the held trigger, naming the cause) and its resolve;
    # Slack has the drop and the page, each resolved.
    assert told(report, PAGER) == [("trigger", "critical", "trigger_deferred"),
                                   ("resolve", "critical", "trigger_deferred")]
    assert "0/478" in notes(report, "trigger_deferred")[0]["summary"]
    assert sorted(told(report, CHAT)) == sorted([
        ("trigger", "warning", "entity_coverage_drop"), ("resolve", "warning", "entity_coverage_drop"),
        ("trigger", "critical", "trigger_deferred"), ("resolve", "critical", "trigger_deferred")])


@pytest.mark.parametrize("scenario", ["sweep_silent_scheduler.jsonl"], indirect=True)
def test_a_game_day_with_no_run_pages_once_and_a_day_without_games_is_silent(
    scenario: tuple[dict[str, Any], Phasewatch],
) -> None:
    """Two scheduler jobs were paused: on a 9-game day nothing of the same-day run happens.
    The prediction gap pages at 08:30 ET, the missed jobs are named in Slack; the All-Star
    break day after (0 games, jobs firing, nothing to do) tells nobody anything."""
    report, _ = scenario
    gap = [a for a in notes(report, "expectation") if a["action"] == "trigger" and not a["repeat"]]
    deadline = at("2026-02-12T13:30:00Z")  # 08:30 ET
    assert len(gap) == 1 and deadline <= t(gap[0]) <= deadline + timedelta(minutes=1)  # + group wait
    assert told(report, PAGER, "expectation") == [
        ("trigger", "critical", "expectation"), ("trigger (reminder)", "critical", "expectation"),
        ("resolve", "critical", "expectation")]  # the reminder: 4 h later, still no predictions
    (resolved,) = [a for a in notes(report, "expectation") if a["action"] == "resolve"]
    assert t(resolved) - at("2026-02-12T18:00:00Z") <= timedelta(minutes=2)
    missed = told(report, CHAT, "scheduler_job_missed")
    assert missed.count(("trigger", "warning", "scheduler_job_missed")) == 2
    assert {a["labels"]["job"] for a in notes(report, "scheduler_job_missed")} == {
        "same-day-phase3", "same-day-predictions"}
    # Nothing else paged on the game day; nothing at all on the day without games.
    assert [n for n in told(report, PAGER) if n[2] != "expectation"] == []
    break_day = [a for a in report["alerts"] if t(a) >= at("2026-02-13T05:00:00Z")
                 and a["action"] == "trigger"]
    assert break_day == []


def test_a_game_day_the_pipeline_never_reported_on_is_a_bad_run_of_the_predictions_slo() -> None:
    """The same story, read by the SLO ``nba-predictions-by-10am``: on 2026-02-12 the
    `games_today` check says 9 games and no Phase 3 event comes before 10:00 ET (the jobs
    are paused), so the day is a bad run at its deadline, not a day nobody counts; the
    All-Star break day after (0 games, no run) is not counted at all."""
    path = SCENARIOS / "sweep_silent_scheduler.jsonl"
    pw, clock, world = sweep_instance(path)
    deadline = at("2026-02-12T15:00:00Z")  # 10:00 ET
    before_rerun = deadline + timedelta(hours=1)  # the jobs are resumed at 17:00Z

    def predictions_slo() -> SLOStatus:
        (status,) = [s for s in pw.slo.evaluate(clock.now()) if s.name == "nba-predictions-by-10am"]
        return status

    try:
        player = Replayer(pw, clock, world)
        lines = read_lines(path, pw)
        for line in lines:
            if _timestamp(line) > before_rerun:
                break
            player.feed(line)
        player.advance_to(before_rerun)
        mid = predictions_slo()
        for line in lines:
            if _timestamp(line) > before_rerun:
                player.feed(line)
        player.advance_to(at("2026-02-13T19:00:00Z"))  # past the break day's 10:00 ET
        end = predictions_slo()
    finally:
        pw.close()
    bad = ("2026-02-12", int(deadline.timestamp()))
    assert (mid.good, mid.total, mid.bad_units) == (0, 1, (bad,)), "a game day without a run is not counted"
    assert (end.good, end.total, end.bad_units) == (0, 1, (bad,))  # the break day: no unit


@pytest.mark.parametrize("scenario", ["sweep_crash_signature_healthy.jsonl"], indirect=True)
def test_a_new_crash_signature_behind_a_healthy_endpoint_pages_once(
    scenario: tuple[dict[str, Any], Phasewatch],
) -> None:
    """ml_feature_store crashes on every Pub/Sub delivery with a KeyError no category names,
    while its service's /health says 200. One page within 5 min of the 10th identical
    failure, no "service unhealthy", no predictions on the missing features, and one
    resolve when the fixed processor succeeds."""
    report, _ = scenario
    tenth = at("2026-03-05T06:45:00Z") + timedelta(seconds=70 * 9 + 25)
    (page,) = [a for a in notes(report, "deterministic_failure") if a["action"] == "trigger"]
    assert page["severity"] == "critical" and page["labels"]["processor"] == "ml_feature_store"
    assert t(page) - tenth <= timedelta(minutes=5)
    assert "KeyError" in page["summary"]
    assert notes(report, "service_unhealthy") == []
    (phase5,) = triggers(report, "phase5")
    assert t(phase5) >= at("2026-03-05T08:58:00Z")  # only after ml_feature_store succeeded
    assert told(report, PAGER) == [("trigger", "critical", "deterministic_failure"),
                                   ("resolve", "critical", "deterministic_failure")]
    # One problem, one Slack thread: the streak's own "failed runs" and the phase it holds
    # up ("phase4→phase5 stuck, missing ml_feature_store") are its consequences.
    assert [n for n in told(report, CHAT) if n[2] not in ("degraded_trigger",)] == [
        ("trigger", "critical", "deterministic_failure"), ("resolve", "critical", "deterministic_failure")]


@pytest.mark.parametrize("scenario", ["sweep_redelivered_failure.jsonl"], indirect=True)
def test_one_failed_invocation_redelivered_thirty_times_pages_nobody(
    scenario: tuple[dict[str, Any], Phasewatch],
) -> None:
    """player_daily_cache failed once (invocation exec-9001); its `failed` message reaches
    phasewatch 31 times (15 Pub/Sub redeliveries of the same event, 15 re-publishes with new
    event ids). It is one failure of one invocation: the retry succeeds 30 min later."""
    report, pw = scenario
    stored = [e for e in pw.store.events() if e.processor == "player_daily_cache" and e.status == "failed"]
    assert len(stored) == 16  # the redeliveries of one event id were acknowledged, not stored
    assert told(report, PAGER) == []
    assert [n for n in told(report, CHAT) if n[2] != "degraded_trigger"] == []
    assert [i["outcome"] for i in triggers(report, "phase5")] == ["succeeded"]


@pytest.mark.parametrize("scenario", ["sweep_long_outage.jsonl"], indirect=True)
def test_a_six_hour_outage_across_two_runs_is_one_page_and_one_resolve(
    scenario: tuple[dict[str, Any], Phasewatch],
) -> None:
    """The coordinator is down 11:45-17:50 UTC (Cloud SQL maintenance). Two runs finish
    Phase 4 meanwhile (the overnight at 11:50, the same-day at 15:23), the 11:30 ET
    scheduler job fails on it with a 503. Ideal: one outage page (reminded at the
    documented 4 h), nothing into the down service, each held Phase 5 trigger sent once
    when it recovers, one resolve."""
    report, pw = scenario
    t0, back = at("2026-03-07T11:45:00Z"), at("2026-03-07T17:50:00Z")
    assert told(report, PAGER) == [
        ("trigger", "critical", "service_unhealthy"), ("trigger (reminder)", "critical", "service_unhealthy"),
        ("resolve", "critical", "service_unhealthy")]
    first, reminder, resolve = notes(report, "service_unhealthy")
    assert t(first) - t0 <= timedelta(minutes=5)
    assert t(reminder) - t(first) == timedelta(hours=4)
    assert back <= t(resolve) <= back + timedelta(minutes=5)
    # Slack: the same, plus the info that Phase 4 of the overnight run went degraded.
    assert [n for n in told(report, CHAT) if n[2] != "degraded_trigger"] == told(report, PAGER)
    # Nothing into the down service; each run's Phase 5 once, at the recovery.
    for run_date in ("2026-03-06", "2026-03-07"):
        (sent,) = triggers(report, "phase5", run_date)
        assert sent["outcome"] == "succeeded" and sent["note"] == "retry after health recovers"
        assert back <= t(sent) <= back + timedelta(minutes=2)
    held = [d for d in report["deferrals"] if d["phase"] == "phase5"]
    assert held and {d["service"] for d in held} == {"prediction-coordinator"}
    assert not [a for a in pw.actuator.store.audit_rows(kinds=("trigger",)) if a["phase"] == "phase5"  # type: ignore[union-attr]
                and t0 <= t(a) < back]


@pytest.mark.parametrize("scenario", ["sweep_flapping_probe.jsonl"], indirect=True)
def test_a_flapping_probe_is_one_outage_and_the_trigger_never_goes_into_a_down_service(
    scenario: tuple[dict[str, Any], Phasewatch],
) -> None:
    """The precompute service flaps (down 4 min, up 3 min) 06:20-07:30 while Phase 3
    completes at 06:32-06:36: the Phase 4 trigger is sent once, at a moment the service
    answered. The first recovery (3 passing probes at 06:26-06:28) cannot be told from a
    real one, so its resolve goes out; when it fails again 2 min later it is "flapping":
    one more page, resolved once it has passed for the flap window (30 min). Two pages
    for the hour, not one per cycle (measured before the fix: 9 pages, 9 resolves)."""
    report, _ = scenario
    name, service = "sweep_flapping_probe.jsonl", "nba-phase4-precompute-processors"
    (sent,) = triggers(report, "phase4")
    assert sent["outcome"] == "succeeded"
    assert world_health(name, service, t(sent)) == "pass"
    assert told(report, PAGER) == [("trigger", "critical", "service_unhealthy"),
                                   ("resolve", "critical", "service_unhealthy")] * 2
    first, _, again, resolve = notes(report, "service_unhealthy")
    assert t(first) - at("2026-02-24T06:20:00Z") <= timedelta(minutes=5)
    assert "flapping" not in first["summary"] and "flapping: unhealthy again" in again["summary"]
    steady = at("2026-02-24T07:27:00Z")  # the last up-phase begins, and it stays up
    assert steady + timedelta(minutes=30) <= t(resolve) <= steady + timedelta(minutes=33)
    assert told(report, CHAT, "service_unhealthy") == told(report, PAGER)


@pytest.mark.parametrize("scenario", ["sweep_late_after_page.jsonl"], indirect=True)
def test_predictions_landing_after_the_gap_page_resolve_it(
    scenario: tuple[dict[str, Any], Phasewatch],
) -> None:
    """No predictions by 08:30 ET on a 7-game day: one page at the deadline; the run
    catches up (Phase 3 from 13:00 UTC) and predictions land at 14:22, counted at 14:25:
    the page resolves then, and nothing else was told."""
    report, _ = scenario
    assert told(report, PAGER) == [("trigger", "critical", "expectation"),
                                   ("resolve", "critical", "expectation")]
    page, resolve = notes(report, "expectation")
    assert at("2026-02-25T13:30:00Z") <= t(page) <= at("2026-02-25T13:31:00Z")
    assert at("2026-02-25T14:25:00Z") <= t(resolve) <= at("2026-02-25T14:27:00Z")
    assert told(report, CHAT) == told(report, PAGER)
    assert [(i["phase"], i["outcome"]) for i in report["triggers"]] == [
        ("phase4", "succeeded"), ("phase5", "succeeded"), ("phase6", "succeeded")]


@pytest.mark.parametrize("scenario", ["sweep_yesterday_rerun.jsonl"], indirect=True)
def test_a_rerun_of_yesterday_today_is_not_todays_failure(
    scenario: tuple[dict[str, Any], Phasewatch],
) -> None:
    """At 14:00 ET an analyst re-runs yesterday's player_game_summary (mode derived:
    overnight); its first attempt fails on a lock, the second works. Today's run is
    complete. Nobody is told, and nothing downstream of yesterday is triggered again."""
    report, _ = scenario
    assert told(report, PAGER) == []
    assert [n for n in told(report, CHAT) if n[2] != "degraded_trigger"] == []
    rerun = [r for r in report["runs"] if r["run_date"] == "2026-02-26"]
    assert {r["mode"] for r in rerun} == {"overnight"}
    for phase in ("phase4", "grading", "phase5", "phase6"):
        assert [i["outcome"] for i in triggers(report, phase, "2026-02-26")] == ["succeeded"]
        assert all(t(i) < at("2026-02-27T19:00:00Z") for i in triggers(report, phase, "2026-02-26"))
    assert len(triggers(report, "phase4", "2026-02-27")) == 1


def test_a_producer_ten_minutes_ahead_changes_nothing(tmp_path: Path) -> None:
    """The analytics service and the prediction workers stamp their events 10 min in the
    future (a drifting clock); precompute and export are on time. Not replayable (a replay
    feeds each line at its own timestamp), so driven live on a fake clock: every phase is
    triggered once, each trigger's effect is seen, nobody is told anything but the
    degraded-trigger info."""
    pw = Live(nba(), tmp_path / "pw.db", at("2026-02-17T05:00:00Z"))
    try:
        skew = timedelta(minutes=10)

        def report(phase: str, processor: str | None, ahead: bool = True, **fields: Any) -> None:
            now = pw.clock.now() + (skew if ahead else timedelta(0))
            pw.ingest(make_event(phase, "started", now.isoformat(), processor, run_date="2026-02-16",
                                 mode="overnight"))
            pw.run(3)
            pw.ingest(make_event(phase, "succeeded", (now + timedelta(minutes=3)).isoformat(), processor,
                                 run_date="2026-02-16", mode="overnight", **fields))

        pw.run(60)
        for p in ("p2_odds_game_lines", "p2_nbacom_gamebook_pdf", "p2_nbacom_boxscores",
                  "p2_bigdataball_pbp", "p2_odds_player_props"):
            report("phase2", p, ahead=False)
        for p in PHASE3_OVERNIGHT:
            report("phase3", p, **COVERAGE.get(p, {}))
        report("grading", None)
        for p in PHASE4:
            report("phase4", p, ahead=False)
        for p in ("prediction-coordinator", "prediction-worker"):
            report("phase5", p)
        report("phase6", None, ahead=False)
        pw.run(240)
        audit = pw.pw.actuator.store.audit_rows(kinds=("trigger", "verification"))  # type: ignore[union-attr]
        sent = sorted(r["phase"] for r in audit if r["kind"] == "trigger")
        assert sent == ["grading", "phase4", "phase5", "phase6"]
        assert {r["outcome"] for r in audit if r["kind"] == "verification"} == {"effect_seen"}
        assert [names for names in (d.notification.alert.name for d in pw.sent())
                if names != "degraded_trigger"] == []
    finally:
        pw.close()
