"""What issue 12 measured, as the person paged at 3 a.m. would count it: notifications.

Each test replays a measured case through the real router (grouping, reminders, routes)
and counts what each channel was told: the first failure that paged, the 59 availability
alerts in an hour, the 167 reminders of one late run, the critical that never resolved,
the optional processor that paged, the shared failure nobody named, and the SLO policy for
daily runs (one bad run, two in a row, budget exhausted, cold start).
"""

from __future__ import annotations

import itertools
import math
import re
from collections import Counter
from collections.abc import Iterator
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
import yaml

from alerts.config import AlertingConfig
from alerts.engine import AlertEngine
from alerts.notification import Delivery
from monitor.actuator.simulated import simulated
from monitor.app.phasewatch import Phasewatch
from monitor.app.sim.replay import HealthLine, SimulatedWorld
from monitor.clock import FakeClock
from monitor.config import Config, default_config_text
from monitor.events import Event
from monitor.store.sqlite import SQLiteStore
from monitor.tracker import RunTracker
from slo import SLOEngine, SLOGauges
from tests.factories import make_event
from tests.test_slo_engine import config, daily_publishes, local

CHANNELS = [{"kind": "pagerduty", "name": "pager", "routing_key_env": "PD_KEY"},
            {"kind": "memory", "name": "chat"}]


def nba(alerting: dict[str, Any] | None = None) -> Config:
    """The bundled example with a pager and a chat channel and no routes (the defaults)."""
    data = yaml.safe_load(default_config_text())
    data["alerting"] = {**data.get("alerting", {}), "channels": CHANNELS, **(alerting or {})}
    return Config.model_validate(data)


class Live:
    """A whole phasewatch on a fake clock with a simulated world; alerts kept in memory."""

    def __init__(self, cfg: Config, db: Path, start: datetime) -> None:
        self.clock = FakeClock(start)
        self.world = SimulatedWorld()
        probe, sinks, checks = simulated(self.world)
        self.pw = Phasewatch.build(cfg, db_path=db, clock=self.clock, probe=probe, sinks=sinks,
                                   checks=checks, dry_run_alerts=True)

    def run(self, minutes: float, step_s: float = 30.0) -> None:
        end = self.clock.now() + timedelta(minutes=minutes)
        while self.clock.now() < end:
            self.clock.advance(step_s)
            self.pw.tick(self.clock.now())

    def until(self, when: datetime, step_s: float = 30.0) -> None:
        """Tick up to ``when``, then set the clock to it."""
        while self.clock.now() + timedelta(seconds=step_s) <= when:
            self.clock.advance(step_s)
            self.pw.tick(self.clock.now())
        self.clock.set(when)

    def ingest(self, *events: Event) -> None:
        self.pw.ingest(list(events))

    def sent(self, channel: str | None = None) -> list[Delivery]:
        return [d for d in self.pw.router.history if channel is None or channel in d.channels]

    def close(self) -> None:
        self.pw.close()


@pytest.fixture
def live(tmp_path: Path) -> Iterator[Any]:
    made: list[Live] = []

    def make(cfg: Config | None = None, start: datetime = datetime(2026, 1, 18, 7, 0, tzinfo=UTC)) -> Live:
        made.append(Live(cfg or nba(), tmp_path / f"pw{len(made)}.db", start))
        return made[-1]

    yield make
    for one in made:
        one.close()


def names(deliveries: list[Delivery]) -> list[str]:
    return [d.notification.alert.name for d in deliveries]


# --------------------------------------------------------------------------- severity and routes


def test_the_first_failure_of_a_processor_pages_nobody(live: Any) -> None:
    """Measured: one `failed` event on a fresh store paged PagerDuty with a critical "budget
    exhausted (1 of 0.02 runs)" and an info "used 5000% of the error budget"."""
    pw = live()
    pw.ingest(make_event("phase3", "failed", "2026-01-18T07:00:30+00:00", "player_game_summary",
                         error="RuntimeError: BigQuery job failed", mode="overnight"))
    pw.run(60)
    assert pw.sent("pager") == []
    assert not [n for n in names(pw.sent()) if n.startswith("slo_")]  # 1 run: insufficient data
    (slo,) = [s for s in pw.pw.slo_report() if s["name"] == "nba-phase3-success"]
    assert slo["status"] == "insufficient_data"


def test_info_never_goes_to_a_paging_channel_by_default_routes() -> None:
    from alerts.routing import RouteTable

    cfg = nba().alerting
    assert cfg.channel("pager").paging and not cfg.channel("chat").paging
    table = RouteTable(cfg)
    (plan,) = table.plans_for({"alertname": "slo_bad_run", "severity": "info"})
    assert plan.channels_for("info") == ("chat",)
    assert plan.channels_for("warning") == ("chat",)  # a ticket is not a page
    assert plan.channels_for("critical") == ("pager", "chat")
    # A route that does not name info still never pages with it; one that names it may.
    routed = AlertingConfig.model_validate({"channels": CHANNELS, "routes": [
        {"match": ["alertname=anomaly"], "channels": ["pager"]},
        {"match": ["alertname=expected_list_drift"], "severities": ["info"], "channels": ["pager"]}]})
    (plan,) = RouteTable(routed).plans_for({"alertname": "anomaly", "severity": "info"})
    assert plan.channels_for("info") == () and plan.channels_for("warning") == ("pager",)
    (plan,) = RouteTable(routed).plans_for({"alertname": "expected_list_drift", "severity": "info"})
    assert plan.channels_for("info") == ("pager",)


def test_an_optional_processors_repeated_failure_is_a_warning(live: Any) -> None:
    """Measured: ten identical failures of an optional processor paged critical."""
    pw = live()
    for i in range(10):
        pw.ingest(make_event("phase3", "failed", f"2026-01-18T07:{i + 1:02d}:00+00:00",
                             "team_defense_game_summary", mode="overnight",
                             error="ImportError: No module named 'google.cloud.firestore'"))
    pw.run(10)
    (alert,) = [d.notification.alert for d in pw.sent() if d.notification.alert.name == "deterministic_failure"]
    assert alert.severity == "warning"
    assert pw.sent("pager") == []
    # A critical processor's crash signature still pages (another error: not one incident).
    for i in range(10):
        pw.ingest(make_event("phase3", "failed", f"2026-01-18T07:{i + 20:02d}:00+00:00",
                             "player_game_summary", mode="overnight",
                             error="ModuleNotFoundError: No module named 'pandas'"))
    pw.run(10)
    assert [d.notification.alert.labels["processor"] for d in pw.sent("pager")] == ["player_game_summary"]


# --------------------------------------------------------------------------- one notification per problem


def test_a_failing_probe_stream_is_one_alert_per_outage(live: Any) -> None:
    """Measured: 59 distinct availability alerts in an hour, one per probe (unix time in the key)."""
    pw = live()
    pw.world.apply(HealthLine(type="health", service="prediction-worker", status="fail",
                              timestamp=pw.clock.now()))
    pw.run(60)
    pw.world.apply(HealthLine(type="health", service="prediction-worker", status="pass",
                              timestamp=pw.clock.now()))
    pw.run(10)
    sent = pw.sent()
    keys = {d.notification.alert.key for d in sent}
    assert not [k for k in keys if re.search(r"@\d{9,}|\d{10}", k)], keys
    by_key = Counter((d.notification.alert.key, d.notification.action) for d in sent)
    assert all(n == 1 for n in by_key.values()), by_key  # no reminders within the hour
    outage = [d for d in sent if d.notification.alert.name == "service_unhealthy"]
    assert [(d.notification.action, d.notification.alert.severity) for d in outage] == [
        ("trigger", "critical"), ("resolve", "critical")]
    assert len(keys) <= 2  # the outage, and at most the availability budget's ticket


def test_failures_sharing_one_signature_are_one_correlated_incident(live: Any) -> None:
    """Measured: processors of several phases failing with one error got one warning each,
    the first an hour late, and nothing named the shared cause."""
    pw = live()
    error = ("google.api_core.exceptions.Forbidden: 403 Access Denied: Table "
             "'nba-props:nba_analytics.{}': User does not have permission to query table (job {})")
    failing = [("phase3", "player_game_summary"), ("phase3", "team_offense_game_summary"),
               ("phase4", "player_daily_cache")]
    second_at = datetime(2026, 1, 18, 7, 2, tzinfo=UTC)
    for attempt in range(12):  # each retried until its own deterministic-failure guard trips
        for i, (phase, processor) in enumerate(failing):
            at = datetime(2026, 1, 18, 7, 1 + i, tzinfo=UTC) + timedelta(minutes=3 * attempt)
            pw.until(at)
            pw.ingest(make_event(phase, "failed", at.isoformat(), processor, mode="overnight",
                                 error=error.format(processor, 1000 + attempt * 10 + i)))
    pw.run(30)
    incidents = [d for d in pw.sent() if d.notification.alert.name == "correlated_failure"]
    assert [d.notification.action for d in incidents] == ["trigger"]
    first = incidents[0].notification
    assert first.at - second_at <= timedelta(minutes=10)
    assert first.alert.labels["processors"] == (
        "phase3/player_game_summary,phase3/team_offense_game_summary,phase4/player_daily_cache")
    for processor in ("player_game_summary", "team_offense_game_summary", "player_daily_cache"):
        assert processor in first.alert.summary
    # The per-processor alerts are inhibited under it: nobody is told about them separately.
    assert [n for n in names(pw.sent()) if n in ("deterministic_failure", "failed_runs", "retry_storm")] == []
    # It resolves when every processor it names has succeeded again.
    for phase, processor in failing:
        pw.ingest(make_event(phase, "succeeded", pw.clock.now().isoformat(), processor, mode="overnight"))
    pw.run(10)
    incidents = [d for d in pw.sent() if d.notification.alert.name == "correlated_failure"]
    assert [d.notification.action for d in incidents] == ["trigger", "resolve"]


# --------------------------------------------------------------------------- every alert resolves


def test_an_escalated_no_effect_alert_resolves_when_the_phase_completes_by_another_path(live: Any) -> None:
    """Measured: "trigger had no effect" stayed critical after the phase completed by another
    path, reminded every 4 h for days."""
    pw = live(start=datetime(2026, 1, 18, 5, 0, tzinfo=UTC))
    procs = ["player_game_summary", "team_offense_game_summary", "team_defense_game_summary",
             "upcoming_player_game_context", "upcoming_team_game_context"]
    pw.ingest(*[make_event("phase3", "succeeded", "2026-01-18T05:00:10+00:00", p, mode="overnight")
                for p in procs])
    pw.run(120)  # the Phase 4 trigger goes out, Phase 4 never starts: re-triggered, escalated
    def no_effect() -> list[Any]:
        return [d.notification for d in pw.sent() if d.notification.alert.name == "trigger_no_effect"
                and d.notification.alert.labels["phase"] == "phase4"]

    assert [(n.action, n.alert.severity) for n in no_effect()] == [
        ("trigger", "warning"), ("trigger", "critical")]
    # Phase 4 runs after all (the 07:00 schedule), and completes.
    at = pw.clock.now()
    for p in ("team_defense_zone_analysis", "player_shot_zone_analysis", "player_composite_factors",
              "player_daily_cache", "ml_feature_store"):
        pw.ingest(make_event("phase4", "started", at.isoformat(), p, mode="overnight"),
                  make_event("phase4", "succeeded", (at + timedelta(minutes=5)).isoformat(), p,
                             mode="overnight"))
    pw.run(24 * 60, step_s=120)
    assert [(n.action, n.alert.severity) for n in no_effect()] == [
        ("trigger", "warning"), ("trigger", "critical"), ("resolve", "critical")]
    assert no_effect()[-1].at - at <= timedelta(minutes=2)  # at the phase's first activity
    assert not [a for a in pw.pw.router.active() if a.name == "trigger_no_effect"
                and a.labels["phase"] == "phase4"]


# --------------------------------------------------------------------------- SLO alerting for daily runs


DAILY = """
slos:
  - name: publish-by-8
    pipeline: p
    sli:
      kind: deadline
      phase: publish
      by: {time: "08:00"}
    objective: 0.95
    window: {kind: rolling, days: 28}
"""


def slo_history(slos: str, first: date, days: int, late: set[date], end: datetime,
                tmp_path: Path, missing: set[date] = frozenset()) -> tuple[list[Delivery], SLOEngine]:  # type: ignore[assignment]
    """Daily runs evaluated every 5 min up to ``end`` through the real router; the deliveries."""
    cfg = config(slos)
    events = [e for e in daily_publishes(first, days, {d: "09:30" for d in late})
              if e.run_date not in missing]
    engine = SLOEngine(cfg)
    tracker = RunTracker(cfg, retention_days=100)
    store = SQLiteStore(tmp_path / "alerts.db")
    clock = FakeClock(local(f"{first}T00:00"))
    alerting = AlertEngine.build(AlertingConfig.model_validate({"channels": [{"kind": "memory", "name": "chat"}]}),
                                 db=store, clock=clock, secret=lambda n: None, config=cfg, dry_run=True)
    pending = sorted(events, key=lambda e: e.timestamp)
    now = clock.now()
    try:
        while now <= end:
            clock.set(now)
            while pending and pending[0].timestamp <= now:
                engine.on_update(tracker.apply(pending.pop(0)))
            engine.tick(now, alerting.router)
            alerting.tick(now)
            # serve delivers every tick (30 s): a group waits group_wait_s (30 s), not 5 min
            clock.set(now + timedelta(seconds=30))
            alerting.tick(clock.now())
            now += timedelta(minutes=5)
        return list(alerting.router.history), engine
    finally:
        alerting.close()
        store.close()


def of(deliveries: list[Delivery], name: str) -> list[tuple[str, str, bool]]:
    return [(d.notification.action, d.notification.alert.severity, d.notification.repeat)
            for d in deliveries if d.notification.alert.name == name]


def test_one_late_run_in_28_is_one_info_never_reminded(tmp_path: Path) -> None:
    """Measured: 167 reminders of the per-run info for one late run in 28 days."""
    late = date(2026, 2, 3)
    sent, _ = slo_history(DAILY, date(2026, 1, 1), 70, {late}, local("2026-03-10T12:00"), tmp_path)
    assert {d.notification.alert.severity for d in sent} == {"info"}
    # One notification; its resolve (when the run left the 28-day window) is not sent.
    assert of(sent, "slo_bad_run") == [("trigger", "info", False)]
    (info,) = [d.notification.alert for d in sent]
    assert info.labels["run_date"] == late.isoformat() and "used 71% of the error budget" in info.summary


def test_two_or_three_bad_runs_in_a_row_page_once_by_the_second_deadline(tmp_path: Path) -> None:
    late = {date(2026, 1, 21), date(2026, 1, 22), date(2026, 1, 23)}
    sent, _ = slo_history(DAILY, date(2026, 1, 1), 30, late, local("2026-01-30T12:00"), tmp_path)
    critical = [d.notification for d in sent if d.notification.alert.severity == "critical"]
    pages = [n for n in critical if not n.repeat]
    reminders = [n.at for n in critical if n.repeat]
    assert all(b - a >= timedelta(hours=4) for a, b in itertools.pairwise(reminders))
    assert [(n.action, n.alert.name) for n in pages] == [
        ("trigger", "slo_bad_runs_in_a_row"), ("resolve", "slo_bad_runs_in_a_row")]
    assert pages[0].at <= local("2026-01-22T08:01")  # the second bad run's deadline (+ group wait)
    assert pages[0].alert.labels["run_date"] == "2026-01-22"
    assert pages[1].at == local("2026-01-24T08:00")  # the streak ends with a good run


def test_budget_exhausted_is_one_ticket_reminded_at_most_daily_until_the_budget_recovers(tmp_path: Path) -> None:
    """Measured: "budget exhausted" stayed critical for 28 days with reminders every 4 h."""
    late = {date(2026, 1, 22), date(2026, 1, 25)}  # not in a row: no page
    sent, _ = slo_history(DAILY, date(2026, 1, 1), 60, late, local("2026-02-28T12:00"), tmp_path)
    assert of(sent, "slo_bad_run") == [("trigger", "info", False)]  # Jan 22: 1 of 1.1 runs
    tickets = of(sent, "slo_budget_exhausted")
    assert tickets[0] == ("trigger", "warning", False) and tickets[-1][0] == "resolve"
    reminders = [d.notification for d in sent if d.notification.alert.name == "slo_budget_exhausted"
                 and d.notification.repeat]
    gaps = [b.at - a.at for a, b in itertools.pairwise(reminders)]
    assert all(g >= timedelta(days=1) for g in gaps)
    assert not [d for d in sent if d.notification.alert.severity == "critical"]
    resolve = next(d.notification for d in sent if d.notification.alert.name == "slo_budget_exhausted"
                   and d.notification.action == "resolve")
    assert resolve.alert.at == local("2026-02-19T08:00")  # Jan 22 left the window: 1 bad of 28


def test_a_cold_start_is_insufficient_data_with_no_page_and_no_nan(tmp_path: Path) -> None:
    """Measured: after a cold start one late run among the first ten paged critical for 11 days."""
    late = {date(2026, 1, 3)}
    sent, engine = slo_history(DAILY, date(2026, 1, 1), 9, late, local("2026-01-09T12:00"), tmp_path)
    assert sent == []
    (status,) = engine.evaluate(local("2026-01-09T12:00"))
    assert status.status == "insufficient_data" and status.total == 9
    from prometheus_client import CollectorRegistry, generate_latest

    registry = CollectorRegistry()
    SLOGauges(registry).update([status])
    text = generate_latest(registry).decode()
    assert "NaN" not in text and "Inf" not in text
    values = [float(line.rsplit(" ", 1)[1]) for line in text.splitlines() if line and line[0] != "#"]
    assert values and all(math.isfinite(v) for v in values)


def test_a_run_that_never_happened_counts_bad_at_its_deadline(tmp_path: Path) -> None:
    missing = {date(2026, 1, 21), date(2026, 1, 22)}
    sent, _ = slo_history(DAILY, date(2026, 1, 1), 25, set(), local("2026-01-22T08:10"), tmp_path,
                          missing=missing)
    assert [(d.notification.action, d.notification.alert.name) for d in sent
            if d.notification.alert.severity == "critical"] == [("trigger", "slo_bad_runs_in_a_row")]


def test_every_run_unit_key_names_its_run_date() -> None:
    """Per-run alerts and the KPIs read the run date from a unit's key, whatever SLI made it."""
    from slo.alerting import run_labels

    assert run_labels("2026-01-17") == {"run_date": "2026-01-17"}
    assert run_labels("2026-01-17/overnight/x") == {"run_date": "2026-01-17", "mode": "overnight",
                                                    "processor": "x"}
    assert run_labels("grading_completeness/2026-01-17") == {"run_date": "2026-01-17"}  # a check
    assert run_labels("svc@1768719870") == {}  # a probe names no run
