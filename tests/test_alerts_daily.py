"""The daily health summary (pure judgement, rendering within Slack's limits, the 08:00 job),
weekly KPIs, and the CLI commands: silence, health-check, report --weekly."""

from __future__ import annotations

import json
from collections.abc import Iterator
from datetime import UTC, date, datetime, timedelta
from pathlib import Path

import pytest
from click.testing import CliRunner

from alerts.api import create_silence, daily_health_check, list_active_alerts
from alerts.blockkit import MAX_BLOCKS, MAX_HEADER_TEXT, MAX_SECTION_TEXT
from alerts.channels.memory import MemoryChannel
from alerts.config import CheckThreshold
from alerts.daily import (
    ActionItem,
    AnomalyItem,
    CheckValue,
    HealthSnapshot,
    PhaseSummary,
    RunSummary,
    ServiceHealth,
    SloBudget,
    build_summary,
)
from alerts.daily_render import render_blocks, render_text
from alerts.errors import InvalidSilence
from alerts.kpis import Incident, KpiInputs, RunOutcome, weekly_kpis
from monitor.app.cli.main import main
from monitor.app.phasewatch import Phasewatch
from monitor.clock import FakeClock
from monitor.config import Config
from monitor.store.sqlite import SQLiteStore
from tests.factories import body, event_dict
from tests.test_alerts_support import make_alert, make_engine

AT = datetime(2026, 1, 18, 13, 0, tzinfo=UTC)  # 08:00 in New York
THRESHOLDS = (
    CheckThreshold(name="grading_completeness", title="Grading completeness",
                   ok_at_least=0.8, warning_at_least=0.5),
    CheckThreshold(name="prediction_readiness", ok_at_least=0.7, warning_at_least=0.5),
)


def phases(*statuses: str) -> tuple[PhaseSummary, ...]:
    return tuple(PhaseSummary(f"phase{i + 1}", s, 5 if s == "complete" else 2, 5,
                              () if s == "complete" else ("player_game_summary",))
                 for i, s in enumerate(statuses))


def test_healthy_snapshot() -> None:
    snap = HealthSnapshot(
        at=AT, timezone="America/New_York",
        services=(ServiceHealth("prediction-worker", "pass"),),
        runs=(RunSummary("nba", date(2026, 1, 17), "overnight", phases("complete", "complete")),
              RunSummary("nba", date(2026, 1, 18), "same_day", phases("complete", "pending"))),
        checks=(CheckValue("grading_completeness", 0.93),),
    )
    summary = build_summary(snap, THRESHOLDS)
    assert summary.status == "healthy" and summary.findings == ()


@pytest.mark.parametrize(("change", "status", "area"), [
    ({"services": (ServiceHealth("prediction-worker", "fail", "ImportError"),)}, "critical", "services"),
    ({"services": (ServiceHealth("prediction-worker", "warn"),)}, "degraded", "services"),
    ({"runs": (RunSummary("nba", date(2026, 1, 17), "overnight", phases("complete", "failed")),)},
     "critical", "runs"),
    ({"runs": (RunSummary("nba", date(2026, 1, 17), "overnight", phases("complete", "degraded")),)},
     "degraded", "runs"),
    ({"runs": (RunSummary("nba", date(2026, 1, 17), "overnight", phases("complete", "pending")),)},
     "degraded", "runs"),  # yesterday's phase never ran: missing
    ({"checks": (CheckValue("grading_completeness", 0.62),)}, "degraded", "checks"),
    ({"checks": (CheckValue("grading_completeness", 0.31),)}, "critical", "checks"),
    ({"slos": (SloBudget("phase4-by-0700", 0.95, 0.9, 0.0, "critical"),)}, "critical", "slos"),
])
def test_status_rules(change: dict[str, object], status: str, area: str) -> None:
    snap = HealthSnapshot(at=AT, timezone="America/New_York", **change)  # type: ignore[arg-type]
    summary = build_summary(snap, THRESHOLDS)
    assert summary.status == status
    assert summary.findings[0].area == area


def test_todays_pending_phases_are_not_missing() -> None:
    snap = HealthSnapshot(at=AT, timezone="America/New_York", runs=(
        RunSummary("nba", date(2026, 1, 18), "same_day", phases("pending", "pending")),))
    assert build_summary(snap).status == "healthy"


def big_snapshot() -> HealthSnapshot:
    long = "x" * 5000
    return HealthSnapshot(
        at=AT, timezone="America/New_York",
        services=tuple(ServiceHealth(f"svc-{i}", "fail", long) for i in range(40)),
        runs=tuple(RunSummary(f"p{i}", date(2026, 1, 17), "overnight", phases("failed", "pending"))
                   for i in range(80)),
        checks=(CheckValue("grading_completeness", 0.62), CheckValue("prediction_readiness", None)),
        slos=tuple(SloBudget(f"slo-{i}", 0.95, 0.91, 1.0, "warning") for i in range(60)),
        anomalies=tuple(AnomalyItem(AT, "nba", "phase3", "proc", "duration", 2700, 370, 6.1)
                        for _ in range(50)),
        actions=tuple(ActionItem(AT - timedelta(hours=1), "automated", "trigger", "nba",
                                 "2026-01-17", "phase4", "ok") for _ in range(30)),
    )


def test_block_kit_stays_within_slack_limits() -> None:
    summary = build_summary(big_snapshot(), THRESHOLDS)
    blocks = render_blocks(summary)
    assert len(blocks) <= MAX_BLOCKS
    assert len(blocks[0]["text"]["text"]) <= MAX_HEADER_TEXT
    for block in blocks:
        if block["type"] == "section":
            assert len(block["text"]["text"]) <= MAX_SECTION_TEXT
        if block["type"] == "context":
            assert len(block["elements"]) <= 10
    text = render_text(summary)
    assert text.startswith("phasewatch daily health, Sun 2026-01-18 08:00 EST: CRITICAL")


def test_rendered_text_example() -> None:
    snap = HealthSnapshot(
        at=AT, timezone="America/New_York",
        services=(ServiceHealth("prediction-worker", "pass"),
                  ServiceHealth("nba-phase4-precompute-processors", "warn", "slow /health")),
        runs=(RunSummary("nba", date(2026, 1, 17), "overnight",
                         phases("complete", "complete", "degraded", "complete"), 2, 1),),
        checks=(CheckValue("grading_completeness", 0.62), CheckValue("prediction_readiness", 1.0)),
        actions=(ActionItem(AT - timedelta(hours=2), "automated", "trigger", "nba", "2026-01-17",
                            "phase4", "ok"),),
    )
    text = render_text(build_summary(snap, THRESHOLDS))
    assert "[warning] nba-phase4-precompute-processors is warn: slow /health" in text
    assert "Grading completeness: 62% (warning)" in text
    assert "| triggers 2, deferrals 1" in text
    assert "06:00 automated trigger nba 2026-01-17 phase4 (ok)" in text


def test_kpi_formula() -> None:
    start, end = AT - timedelta(days=7), AT
    runs = [RunOutcome("nba", date(2026, 1, d), "overnight", d != 12) for d in range(11, 18)]
    incidents = [Incident("a", "critical", AT - timedelta(days=2), AT - timedelta(days=2) + timedelta(hours=3)),
                 Incident("b", "warning", AT - timedelta(days=1), None)]
    k = weekly_kpis(KpiInputs(start, end, runs, incidents, manual_interventions=3,
                              automated_recoveries=1))
    assert k.reliability == pytest.approx(6 / 7) and k.mttr_s == 3 * 3600
    assert (k.incidents, k.resolved) == (2, 1)
    assert k.components == {"reliability": 0.0, "mttr": pytest.approx(0.074, abs=1e-3),
                            "manual": 0.25, "self_healing": 0.25}
    assert k.health_score == pytest.approx(10 * (0.25 * 0.0743 + 0.2 * 0.25 + 0.15 * 0.25), abs=0.06)
    good = weekly_kpis(KpiInputs(start, end, [RunOutcome("nba", date(2026, 1, 1), "x", True)] * 7,
                                 [Incident("a", "critical", AT, AT + timedelta(minutes=3))], 0, 4))
    assert good.health_score == 10.0
    assert weekly_kpis(KpiInputs(start, end)).health_score is None


def test_daily_job_sends_once_at_eight_new_york(tmp_path: Path) -> None:
    clock = FakeClock(datetime(2026, 1, 18, 12, 0, tzinfo=UTC))
    store = SQLiteStore(tmp_path / "pw.db")
    chat = MemoryChannel("chat")
    engine = make_engine(store, clock, [chat])
    for _ in range(59):
        clock.advance(60)
        engine.daily_job(clock.now())
    assert chat.reports == []  # 07:59 in New York
    clock.advance(60)
    engine.daily_job(clock.now())
    assert [r.kind for r in chat.reports] == ["daily_summary"]
    assert chat.reports[0].title == "phasewatch daily health, Sun 2026-01-18 08:00 EST: HEALTHY"
    for _ in range(120):
        clock.advance(60)
        engine.daily_job(clock.now())
    again = make_engine(store, clock, [chat])  # a restart the same day
    again.daily_job(clock.now())
    assert len(chat.reports) == 1
    clock.set(datetime(2026, 1, 19, 13, 0, tzinfo=UTC))
    again.daily_job(clock.now())
    assert len(chat.reports) == 2
    assert "Weekly KPIs" in chat.reports[1].text  # Monday's summary carries the week
    store.close()


def test_daily_job_follows_daylight_saving(tmp_path: Path) -> None:
    clock = FakeClock(datetime(2026, 7, 6, 11, 59, tzinfo=UTC))
    store = SQLiteStore(tmp_path / "pw.db")
    engine = make_engine(store, clock, [MemoryChannel("chat")])
    assert engine.daily_due(clock.now()) is None
    clock.advance(60)
    assert engine.daily_due(clock.now()) == "2026-07-06"  # 08:00 EDT = 12:00 UTC
    store.close()


@pytest.fixture
def pw(nba_config: Config, tmp_path: Path) -> Iterator[Phasewatch]:
    clock = FakeClock(datetime(2026, 1, 18, 11, 0, tzinfo=UTC))
    app = Phasewatch.build(nba_config, db_path=tmp_path / "pw.db", clock=clock)
    yield app
    app.close()


def failed_phase3_events() -> bytes:
    names = ("player_game_summary", "team_offense_game_summary", "team_defense_game_summary",
             "upcoming_player_game_context", "upcoming_team_game_context")
    lines = [event_dict("phase3", "succeeded", "2026-01-18T06:00:00Z", n) for n in names[1:]]
    lines.append(event_dict("phase3", "failed", "2026-01-18T06:05:00Z", names[0],
                            error="TypeError: HealthChecker.__init__() got an unexpected keyword"))
    return body(*lines)


def test_daily_health_check_api_and_job(pw: Phasewatch) -> None:
    pw.collector.ingest_body(failed_phase3_events(), "application/json")
    clock = pw.clock
    assert isinstance(clock, FakeClock)
    clock.set(AT)
    pw.run_job("daily-health-check")
    [summary] = pw.alerting.summaries
    assert summary.status == "critical"
    assert any("phase3 failed" in f.text for f in summary.findings)
    result = daily_health_check(pw.alerting, clock.now())  # Cloud Scheduler calling again
    assert result["status"] == "critical" and result["healthy"] is False
    assert "nba 2026-01-17 overnight" in result["text"]
    assert len(pw.alerting.summaries) == 1  # sent once per day
    assert pw.report_sections()["daily_summaries"][0]["status"] == "critical"


def test_api_functions(pw: Phasewatch) -> None:
    now = pw.clock.now()
    pw.router.fire(make_alert("deadline", now, phase="phase4", pipeline="nba",
                              run_date="2026-01-17"))
    silence = create_silence(pw.alerting, {"matchers": ["phase=phase4"], "createdBy": "ana",
                                           "comment": "known", "endsAt": (now + timedelta(hours=1)).isoformat()}, now)
    listed = list_active_alerts(pw.alerting, now)
    assert listed["alerts"][0]["status"] == "suppressed"
    assert listed["alerts"][0]["silenced_by"] == [silence["id"]]
    assert [s["id"] for s in listed["silences"]] == [silence["id"]]
    with pytest.raises(InvalidSilence):
        create_silence(pw.alerting, {"matchers": "phase=phase4"}, now)



def test_the_morning_summary_lists_what_people_hold_quiet_and_nothing_when_none(
    pw: Phasewatch,
) -> None:
    """A silence someone set for a week (and forgot) is listed every morning while it is
    active, with who set it, why and until when; a pending or expired one is not, and with
    nothing held the section is not there at all (the summary is unchanged)."""
    now = pw.clock.now()
    assert "Held by people" not in daily_health_check(pw.alerting, now)["text"]
    week = create_silence(pw.alerting, {
        "matchers": ["alertname=phase_overdue", "pipeline=nba"], "createdBy": "ana",
        "comment": "phase 3 migration", "endsAt": (now + timedelta(days=7)).isoformat()}, now)
    create_silence(pw.alerting, {"matchers": ["phase=phase5"], "createdBy": "bo", "comment": "later",
                                 "startsAt": (now + timedelta(days=2)).isoformat(),
                                 "endsAt": (now + timedelta(days=3)).isoformat()}, now)
    create_silence(pw.alerting, {"matchers": ["phase=phase4"], "createdBy": "cy", "comment": "short",
                                 "endsAt": (now + timedelta(hours=1)).isoformat()}, now)
    later = now + timedelta(days=1)
    result = daily_health_check(pw.alerting, later)
    held = result["text"].split("Held by people:\n")[1].split("\n\n")[0].splitlines()
    assert held == [
        f"  silence {week['id']} (alertname=phase_overdue, pipeline=nba): by ana since Sun "
        "2026-01-18 06:00 EST (24 h 00 min), until Sun 2026-01-25 06:00 EST (phase 3 migration)"]
    assert result["summary"]["held"] == [{
        "what": f"silence {week['id']} (alertname=phase_overdue, pipeline=nba)", "by": "ana",
        "since": now.isoformat(), "until": (now + timedelta(days=7)).isoformat(),
        "note": "phase 3 migration"}]
    assert result["status"] == daily_health_check(pw.alerting, now)["status"]  # no finding of its own


def test_cli_silence_health_check_and_weekly(pw: Phasewatch, tmp_path: Path) -> None:
    pw.collector.ingest_body(failed_phase3_events(), "application/json")
    db = str(tmp_path / "pw.db")
    runner = CliRunner()
    at = ["--db", db, "--at", AT.isoformat()]

    result = runner.invoke(main, ["health-check", "--daily", *at])
    assert result.exit_code == 1, result.output
    assert "CRITICAL" in result.output and "phase3 failed" in result.output
    result = runner.invoke(main, ["health-check", *at])
    assert result.exit_code == 1 and result.output.count("\n") >= 2

    result = runner.invoke(main, ["silence", "add", "-m", "alertname=deadline", "-m", "pipeline=nba",
                                  "--author", "ana", "--comment", "INC-5", "--duration", "2h",
                                  "--json", *at])
    assert result.exit_code == 0, result.output
    silence_id = json.loads(result.output)["id"]
    listed = runner.invoke(main, ["silence", "list", *at])
    assert silence_id in listed.output and "active" in listed.output
    expired = runner.invoke(main, ["silence", "expire", silence_id, *at])
    assert expired.exit_code == 0 and "expired" in expired.output
    assert "no silences" in runner.invoke(main, ["silence", "list", *at]).output
    bad = runner.invoke(main, ["silence", "add", "-m", "phase=~(", "--author", "a", "--comment",
                               "c", "--duration", "1h", *at])
    assert bad.exit_code == 2 and "matchers[0]" in bad.output
    unknown = runner.invoke(main, ["silence", "expire", "nope", *at])
    assert unknown.exit_code == 2

    weekly = runner.invoke(main, ["report", "--weekly", "--json", *at])
    assert weekly.exit_code == 0, weekly.output
    kpis = json.loads(weekly.output)
    assert kpis["runs"] == 1 and kpis["runs_met"] == 0 and kpis["reliability"] == 0.0
    text = runner.invoke(main, ["report", "--weekly", *at]).output
    assert "health score" in text and "reliability            0.0% (0/1 runs" in text


def test_weekly_mttr_from_alert_history(tmp_path: Path) -> None:
    clock = FakeClock(AT)
    store = SQLiteStore(tmp_path / "pw.db")
    engine = make_engine(store, clock, [MemoryChannel("chat")], {"group_wait_s": 0})
    a = make_alert("service_unhealthy", clock.now(), "critical", service="w")
    engine.router.fire(a)
    engine.tick(clock.now())
    clock.advance(600)
    engine.router.resolve(a.key, clock.now())
    quiet = make_alert("deadline", clock.now(), "warning", phase="phase9")
    engine.silences.create({"matchers": ["phase=phase9"], "author": "a", "comment": "c",
                            "duration": "1h"}, clock.now())
    engine.router.fire(quiet)  # silenced: nobody was told, so it is no incident
    clock.advance(400)
    engine.tick(clock.now())
    engine.router.resolve(quiet.key, clock.now())
    k = engine.weekly(clock.now())
    assert (k.incidents, k.resolved, k.mttr_s) == (1, 1, 600.0)
    store.close()
