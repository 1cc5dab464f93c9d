"""The actionable horizon and backfills: history is learned from, never acted or alerted on."""

from __future__ import annotations

import json
from collections.abc import Iterator
from datetime import date, datetime, timedelta, timezone
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner
from hypothesis import given, settings
from hypothesis import strategies as st

from monitor.app.cli.main import main
from monitor.app.http.server import create_app, serving
from monitor.app.phasewatch import Phasewatch
from monitor.errors import EventError
from monitor.horizon import Horizon, outside, outside_run_dates
from monitor.tracker import DONE
from tests.actuator_support import PHASE3_OVERNIGHT, PHASE4, Rig, edit_config, nba_config, rig
from tests.factories import event_dict, make_event
from tests.test_service import Http

NOW = datetime.fromisoformat("2026-12-06T14:00:00+00:00")  # 09:00 in New York
YESTERDAY = "2026-12-05"


def overnight_run(run_date: str, finish: datetime) -> list[dict[str, Any]]:
    """A complete overnight run's phase 3 and phase 4 events, ending at ``finish``."""
    names = [("phase3", n) for n in PHASE3_OVERNIGHT] + [("phase4", n) for n in PHASE4]
    out = []
    for i, (phase, name) in enumerate(names):
        at = (finish - timedelta(minutes=2 * (len(names) - i))).isoformat()
        out.append(event_dict(phase, "started", at, name, run_date=run_date, mode="overnight",
                              event_id=f"{run_date}-{name}-s"))
        out.append(event_dict(phase, "succeeded", at, name, run_date=run_date, mode="overnight",
                              event_id=f"{run_date}-{name}-ok", records=100, expected_records=100))
    return out


def decisions(pw: Phasewatch) -> list[dict[str, Any]]:
    assert pw.actuator is not None
    pw.actuator.flush_notes()
    return pw.actuator.store.audit_rows(kinds=("decision",))


@pytest.fixture
def dry(tmp_path: Path) -> Iterator[Rig]:
    with rig(nba_config(dry_run=True), db=tmp_path / "pw.db", start=NOW) as r:
        yield r


def test_posting_an_old_runs_history_decides_no_trigger(dry: Rig) -> None:
    # The measured case: the full history of the 2025-03-10 overnight run, 21 months old,
    # is now older than the accepted run dates (runs.accept_past_days, 400): refused whole.
    client = Http(create_app(dry.pw, None))
    refused = client.post("/v1/events", json=overnight_run(
        "2025-03-10", datetime.fromisoformat("2025-03-11T09:00:00+00:00")))
    assert refused.status_code == 422 and refused.json()["reason"] == "run_date_window"
    # The same history nine months old is kept, tracked and learned from, and acts on nothing.
    answer = client.post("/v1/events", json=overnight_run(
        "2026-03-10", datetime.fromisoformat("2026-03-11T09:00:00+00:00")))
    assert answer.status_code == 202, answer.text
    dry.tick_for(120)
    actions = client.get("/v1/actions").json()["actions"]
    client.close()
    rows = decisions(dry.pw)
    assert [r for r in rows if r["outcome"] == "taken"] == []
    assert dry.pw.actuator is not None and dry.pw.actuator.store.triggers() == []
    assert dry.sent() == []
    outside = [r for r in rows if r["reason"] == "outside_horizon"]
    assert {r["phase"] for r in outside} >= {"phase4", "phase5"}
    assert all(r["outcome"] == "not_taken" and r["run_date"] == "2026-03-10" for r in outside)
    assert "outside the overnight horizon (2026-12-05..2026-12-06)" in outside[0]["why"]
    assert any(a.get("reason") == "outside_horizon" for a in actions)


def test_the_same_run_yesterday_is_triggered(dry: Rig) -> None:
    dry.pw.collector.ingest_body(json.dumps(
        overnight_run(YESTERDAY, NOW - timedelta(minutes=5))[:10]).encode())  # phase 3 done
    dry.tick_for(60)
    taken = [r for r in decisions(dry.pw) if r["outcome"] == "taken"]
    assert (YESTERDAY, "phase4") in [(r["run_date"], r["phase"]) for r in taken]


def test_years_of_history_decide_nothing(dry: Rig) -> None:
    days = [date(2007, 11, 1) + timedelta(days=140 * i) for i in range(50)]  # 2007 .. 2026-10
    refused = 0
    for day in days:
        finish = datetime.combine(day + timedelta(days=1), datetime.min.time()).replace(
            tzinfo=NOW.tzinfo) + timedelta(hours=9)
        try:
            dry.pw.collector.ingest_body(json.dumps(overnight_run(day.isoformat(), finish)).encode())
        except EventError as exc:  # older than runs.accept_past_days: not kept at all
            assert exc.reason == "run_date_window"
            refused += 1
    dry.tick_for(120)
    assert refused == 47  # the three of the last 400 days are stored, tracked and learned from
    assert [r for r in decisions(dry.pw) if r["outcome"] == "taken"] == []
    assert len(dry.pw.tracker) == 3


def test_runs_outside_the_horizon_in_one_batch_are_noted_as_each_event_would(dry: Rig) -> None:
    """A batch of two old runs' events, interleaved: one note per run and phase to trigger,
    naming the first completion upstream of it, in the order the plain rule (every event
    of an old run looked at) gives; the batch's other events add nothing."""
    old = overnight_run("2026-11-20", datetime.fromisoformat("2026-11-21T09:00:00+00:00"))
    older = overnight_run("2026-11-19", datetime.fromisoformat("2026-11-20T09:00:00+00:00"))
    batch = old[:7] + older[:11] + old[7:] + older[11:] + old[:3]  # the last three: repeats
    dry.pw.collector.ingest_body(json.dumps(batch).encode())
    pipeline = NBA.pipeline_map["nba"]
    expected: dict[tuple[str, str], str] = {}
    seen: set[str] = set()
    for event in batch:
        if event["event_id"] in seen or event["status"] not in DONE:
            continue
        seen.add(event["event_id"])
        for phase in pipeline.phases:
            if phase.triggers and event["phase"] in pipeline.upstream_of(phase.id):
                expected.setdefault((event["run_date"], phase.id), event["event_id"])
    notes = [r for r in decisions(dry.pw) if r["reason"] == "outside_horizon"]
    assert [((r["run_date"], r["phase"]), r["event_id"]) for r in notes] == list(expected.items())
    assert {run_date for run_date, _ in expected} == {"2026-11-19", "2026-11-20"}


def test_a_late_event_acts_not_by_itself_but_is_audited(dry: Rig) -> None:
    # Yesterday's run, inside the horizon, but its events are 8 h old (after an outage).
    late = overnight_run(YESTERDAY, NOW - timedelta(hours=8))[:10]
    dry.pw.collector.ingest_body(json.dumps(late).encode())
    rows = decisions(dry.pw)
    assert [r for r in rows if r["outcome"] == "taken"] == []
    notes = {r["phase"]: r for r in rows if r["reason"] == "outside_horizon"}
    assert "h old (max_event_age_h 6)" in notes["phase4"]["why"]


def test_a_backfill_stores_and_learns_but_never_acts_or_alerts(dry: Rig) -> None:
    events = overnight_run(YESTERDAY, NOW - timedelta(minutes=5))
    events[1]["status"] = "failed"  # one failure: would open alerts if it were live
    client = Http(create_app(dry.pw, None))
    bad = client.post("/v1/events", json=events, headers={"X-Phasewatch-Backfill": "yes"})
    assert bad.status_code == 400
    assert bad.json()["details"][0]["field"] == "header X-Phasewatch-Backfill"
    both = client.post("/v1/events?backfill=false", json=events,
                       headers={"X-Phasewatch-Backfill": "true"})
    assert both.status_code == 400 and both.json()["details"][0]["field"] == "backfill"
    assert dry.pw.store.count() == 0  # nothing stored by a refused request
    ok = client.post("/v1/events", json=events, headers={"X-Phasewatch-Backfill": "true"})
    assert ok.status_code == 202 and ok.json()["accepted"] == len(events)
    client.close()
    dry.pw.run_job("slo", NOW)
    dry.pw.run_job("deliver-alerts", NOW + timedelta(minutes=1))
    assert decisions(dry.pw) == [] and dry.sent() == []
    assert dry.pw.router.history == []
    assert dry.pw.tracker.get(("nba", YESTERDAY, "overnight")) is not None
    phase3 = next(s for s in dry.pw.slo_report() if s["name"] == "nba-phase3-success")
    assert phase3["total"] > 0  # the SLO budget reflects the backfill


def test_history_outside_the_horizon_opens_no_alert_but_counts_in_the_budget(dry: Rig) -> None:
    ten_days_ago = NOW - timedelta(days=10)
    failed = [event_dict("phase3", "failed", ten_days_ago.isoformat(), name,
                         run_date=(ten_days_ago - timedelta(days=1)).date().isoformat(),
                         mode="overnight", error="boom") for name in PHASE3_OVERNIGHT]
    dry.pw.collector.ingest_body(json.dumps(failed).encode())
    dry.pw.run_job("slo", NOW)
    dry.pw.run_job("deliver-alerts", NOW + timedelta(minutes=1))
    assert [d.notification.alert.key for d in dry.pw.router.history] == []
    assert not dry.raised("failed_runs") and not dry.raised("deterministic_failure")
    phase3 = next(s for s in dry.pw.slo_report() if s["name"] == "nba-phase3-success")
    assert phase3["budget_consumed"] > 0


def test_anomalies_of_old_runs_are_learned_silently(dry: Rig) -> None:
    from tests.test_anomaly_monitor import _day

    for day in range(21):  # 2026-01: far outside the horizon; day 20 is a 45-minute outlier
        dry.pw.collector.ingest_body(_day(day, 45.0 if day == 20 else 6.0))
    assert list(dry.pw.anomalies.recent) == []
    assert dry.pw.anomalies.detectors  # learned


NBA = nba_config()
LIMIT_US = int(NBA.pipeline_map["nba"].horizon.max_event_age_h * 3600e6)
_ages = st.one_of(st.integers(-5, 5).map(lambda d: LIMIT_US + d),  # at the limit, exactly
                  st.integers(-2 * LIMIT_US, 4 * LIMIT_US))


@settings(max_examples=60, deadline=None)
@given(st.lists(st.tuples(_ages, st.sampled_from([0, -300, 330]), st.integers(-3, 3),
                          st.sampled_from(["overnight", "same_day", "tomorrow", "backfill"])),
                min_size=1, max_size=8))
def test_a_batch_horizon_answers_as_outside_for_each_event(
        events: list[tuple[int, int, int, str]]) -> None:
    """Horizon (the run's bounds once, an event's age as one comparison with the oldest
    fresh instant) says what ``outside`` says of each event, to the microsecond."""
    pipeline = NBA.pipeline_map["nba"]
    batch = Horizon(NBA, NOW)
    for age_us, offset_min, day, mode in events:
        at = (NOW - timedelta(microseconds=age_us)).astimezone(timezone(timedelta(minutes=offset_min)))
        event = make_event("phase2", "succeeded", at.isoformat(), "p2_odds_game_lines",
                           run_date=(NOW.date() + timedelta(days=day)).isoformat(), mode=mode)
        assert batch(event, mode) == outside(pipeline, event, mode, NOW)


def test_horizon_is_configurable_per_pipeline_and_mode() -> None:
    def wide(data: dict[str, Any]) -> None:
        data["pipelines"][0]["horizon"] = {"run_dates": {"overnight": [-3, 0]},
                                           "max_event_age_h": 12}

    pipeline = edit_config(wide).pipeline_map["nba"]
    assert outside_run_dates(pipeline, date(2026, 12, 3), "overnight", NOW) is None
    assert outside_run_dates(pipeline, date(2026, 12, 2), "overnight", NOW) is not None
    assert outside_run_dates(pipeline, date(2026, 12, 8), "same_day", NOW) is not None  # default
    assert outside_run_dates(pipeline, date(1999, 1, 1), "backfill", NOW) is None  # any
    assert pipeline.horizon.max_event_age_h == 12

    def backwards(data: dict[str, Any]) -> None:
        data["pipelines"][0]["horizon"] = {"run_dates": {"overnight": [0, -1]}}

    from monitor.errors import ConfigError

    with pytest.raises(ConfigError, match=r"horizon.run_dates.overnight.*earliest <= latest"):
        edit_config(backwards)


def _jsonl(path: Path, events: list[dict[str, Any]], extra: str = "") -> Path:
    path.write_text("".join(json.dumps(e) + "\n" for e in events) + extra)
    return path


def test_import_command_validates_first_then_imports_as_a_backfill(tmp_path: Path) -> None:
    db = tmp_path / "pw.db"
    today_run = overnight_run(date.today().isoformat(), datetime.now().astimezone())
    bad = _jsonl(tmp_path / "bad.jsonl", today_run, '{"event_id": "x", "pipeline": "nope"}\n')
    runner = CliRunner()
    refused = runner.invoke(main, ["import", str(bad), "--db", str(db)])
    assert refused.exit_code == 2
    assert "line 21: " in refused.output and "nothing was imported" in refused.output
    assert not db.exists() or Phasewatch.build(nba_config(), db_path=db).store.count() == 0

    result = runner.invoke(main, ["import", str(bad), "--db", str(db), "--skip-invalid", "--json"])
    assert result.exit_code == 0, result.output
    summary = json.loads(result.output.splitlines()[-1])
    assert summary["imported"] == 20 and summary["invalid"] == 1 and summary["runs"] == 1
    again = runner.invoke(main, ["import", str(bad), "--db", str(db), "--skip-invalid"])
    assert again.exit_code == 0 and "imported 0 events" in again.output
    assert "20 duplicates" in again.output and "nothing was triggered" in again.output


def test_import_into_a_running_instance_never_acts(dry: Rig, tmp_path: Path) -> None:
    good = _jsonl(tmp_path / "good.jsonl", overnight_run(YESTERDAY, NOW - timedelta(minutes=5)))
    with serving(create_app(dry.pw, "s3cret")) as url:
        denied = CliRunner().invoke(main, ["import", str(good), "--url", url, "--token", "wrong"])
        assert denied.exit_code == 2 and "401" in denied.output
        result = CliRunner().invoke(main, ["import", str(good), "--url", url, "--token", "s3cret"])
    assert result.exit_code == 0, result.output
    assert "imported 20 events" in result.output
    assert dry.pw.store.count() == 20
    assert decisions(dry.pw) == [] and dry.sent() == []
