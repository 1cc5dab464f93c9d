"""``phasewatch report --weekly`` from real sources (issue 12): reliability from the SLOs,
manual interventions (manual actions, silences), automated recoveries, MTTR from the alert
episodes, and the deployment failure rate from deploys followed by a deploy regression.

Measured before: "manual interventions n/a (no source)", "automated recoveries n/a (no
source)", and "reliability 100.0% (20/20 runs met their SLOs)" while `slo report` showed a
deadline SLO in breach; no deployment failure rate at all.
"""

from __future__ import annotations

import json
from datetime import UTC, date, datetime, timedelta
from pathlib import Path

import yaml
from click.testing import CliRunner

from monitor.actuator.manual import manual_action
from monitor.actuator.store import AuditEntry
from monitor.app.cli.main import main
from monitor.app.sim.replay import HealthLine
from monitor.config import Config, default_config_text
from monitor.events import Event
from tests.factories import make_event
from tests.test_alert_noise import CHANNELS, Live

WORKER = "prediction-worker"


def config(path: Path) -> Config:
    """The example with its 10:00 predictions SLO only (judged from three runs on)."""
    data = yaml.safe_load(default_config_text())
    (slo,) = [s for s in data["slos"] if s["name"] == "nba-predictions-by-10am"]
    data["slos"] = [{**slo, "alerting": {"min_units": 3}}]
    data["alerting"] = {"channels": CHANNELS}
    path.write_text(yaml.safe_dump(data), "utf-8")
    return Config.model_validate(data)


def game_day(day: date, predicted: bool) -> list[Event]:
    """Phase 3 for the game day the evening before; predictions by 09:00 ET, or never."""
    out = [make_event("phase3", "succeeded", f"{day - timedelta(days=1)}T17:30:00-05:00",
                      "upcoming_player_game_context", run_date=day.isoformat(), mode="tomorrow")]
    if predicted:
        out.append(make_event("phase5", "succeeded", f"{day}T09:00:00-05:00",
                              run_date=day.isoformat(), mode="same_day"))
    return out


def test_weekly_kpis_come_from_the_slos_the_audit_log_silences_and_deploys(tmp_path: Path) -> None:
    cfg_path = tmp_path / "pw.yaml"
    cfg = config(cfg_path)
    db = tmp_path / "pw.db"
    now = datetime(2026, 1, 17, 13, 0, tzinfo=UTC)
    live = Live(cfg, db, now)
    try:
        for i in range(8):  # January 10..17; the 14th got no predictions: a missed deadline
            day = date(2026, 1, 10) + timedelta(days=i)
            live.ingest(*game_day(day, predicted=day != date(2026, 1, 14)))
        actuator = live.pw.actuator
        assert actuator is not None
        # A person: one manual trigger and one silence.
        manual_action(actuator, {"action": "trigger", "pipeline": "nba", "run_date": "2026-01-16",
                                 "mode": "same_day", "phase": "phase6"}, actor="ana")
        live.pw.alerting.silences.create({"matchers": ["alertname=anomaly"], "author": "ana",
                                          "comment": "noisy", "duration": "1h"}, now)
        # phasewatch by itself: one recovery that ran.
        actuator.store.audit([AuditEntry(now, "recovery", "check_stalled", "accepted", "nba",
                                         "2026-01-16", "same_day", "phase5", batch_id="b1")])
        # Two deploys of the worker: v2 on January 12 went well; v3 (seen by the probe) fails.
        actuator.ctx.health.deploys.record(WORKER, "v2", datetime(2026, 1, 12, tzinfo=UTC), "replay")
        live.world.apply(HealthLine(type="health", service=WORKER, status="pass",
                                    timestamp=now, body={"status": "pass", "version": "v2"}))
        live.run(2)
        live.world.apply(HealthLine(type="health", service=WORKER, status="fail",
                                    timestamp=live.clock.now(), body={"status": "fail", "version": "v3"}))
        live.run(4)
        live.world.apply(HealthLine(type="health", service=WORKER, status="pass",
                                    timestamp=live.clock.now(), body={"status": "pass", "version": "v3"}))
        live.run(4)
        end = live.clock.now()
    finally:
        live.close()
    result = CliRunner().invoke(main, ["report", "--weekly", "--json", "--config", str(cfg_path),
                                       "--db", str(db), "--at", end.isoformat()])
    assert result.exit_code == 0, result.output
    kpis = json.loads(result.output)
    assert (kpis["runs_met"], kpis["runs"]) == (6, 7)  # January 10..16 judged; the 14th missed
    assert kpis["manual_interventions_per_week"] == 2.0
    assert kpis["automated_recoveries"] == 1
    assert (kpis["deploys"], kpis["failed_deploys"]) == (2, 1)
    assert kpis["deployment_failure_rate"] == 0.5
    assert kpis["incidents"] >= 1 and kpis["mttr_s"] is not None  # the outage, told and resolved
    text = CliRunner().invoke(main, ["report", "--weekly", "--config", str(cfg_path), "--db", str(db),
                                     "--at", end.isoformat()], env={"COLUMNS": "120"}).output
    assert "85.7% (6/7 runs met their SLOs)" in text
    assert "manual interventions   2.00 / week" in text and "n/a (no source)" not in text
    assert "deploy failure rate    50.0% (1/2 deploys followed by a deploy regression)" in text


def test_a_failing_source_is_na_not_a_failed_summary(tmp_path: Path) -> None:
    live = Live(config(tmp_path / "pw.yaml"), tmp_path / "pw.db", datetime(2026, 1, 17, 13, 0, tzinfo=UTC))
    try:
        def broken(*_: object) -> object:
            raise ValueError("a source's bug")

        live.pw.alerting.run_outcomes = broken  # type: ignore[assignment]
        live.pw.alerting.deploy_counts = broken  # type: ignore[assignment]
        kpis = live.pw.alerting.weekly(live.clock.now())
        assert kpis.runs == 0 and kpis.deploys is None  # n/a, and the rest still measured
        assert kpis.manual_interventions_per_week == 0.0
    finally:
        live.close()
