"""SLO engine scenarios: DST calendars, zero traffic, missing runs, budgets in runs, alerts."""

from __future__ import annotations

import itertools
from datetime import UTC, date, datetime, timedelta
from fractions import Fraction
from typing import Any
from zoneinfo import ZoneInfo

import pytest
from prometheus_client import CollectorRegistry

from alerts.model import alert_key
from alerts.router import MemoryChannel, SimpleRouter
from monitor.config import Config, parse_config
from monitor.errors import ConfigError
from monitor.events import Event
from monitor.tracker import RunTracker
from slo import HealthProbe, SLOEngine, SLOGauges, SLOSpec
from slo.spec import CalendarWindow
from slo.windows import minute_of, period_bounds, window_bounds

NY = ZoneInfo("America/New_York")
_ids = itertools.count()

PIPELINE = """
version: 1
pipelines:
  - id: p
    timezone: America/New_York
    services:
      svc: {health_url: "http://127.0.0.1:1/health"}
    phases:
      - id: load
        processors:
          - {name: x, priority: critical}
          - {name: y, priority: optional}
      - id: publish
"""


def config(slos: str = "") -> Config:
    return parse_config(PIPELINE + slos, "<test>")


def local(text: str) -> datetime:
    """A wall-clock time in New York."""
    return datetime.fromisoformat(text).replace(tzinfo=NY)


def event(phase: str, status: str, at: datetime, processor: str | None = None, *,
          run_date: date, mode: str = "same_day", **fields: Any) -> Event:
    return Event(
        event_id=f"s{next(_ids)}", pipeline="p", run_date=run_date, mode=mode, phase=phase,
        processor=processor, status=status, timestamp=at.astimezone(UTC), **fields,
    )


def feed(cfg: Config, engine: SLOEngine, events: list[Event]) -> None:
    tracker = RunTracker(cfg, retention_days=100)
    for e in events:
        engine.on_update(tracker.apply(e))


DEADLINE_SLO = """
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


def daily_publishes(first: date, days: int, late: dict[date, str] | None = None) -> list[Event]:
    """A phase-level publish success every day at 07:00, or at the given late time."""
    out = []
    for i in range(days):
        day = first + timedelta(days=i)
        when = (late or {}).get(day, "07:00")
        out.append(event("publish", "started", local(f"{day}T06:30"), run_date=day))
        out.append(event("publish", "succeeded", local(f"{day}T{when}"), run_date=day))
    return out


# --------------------------------------------------------------------------- windows and DST


def test_calendar_week_and_month_follow_new_york_midnights_across_dst() -> None:
    week = CalendarWindow(kind="calendar", unit="week")
    month = CalendarWindow(kind="calendar", unit="month")
    # The week of the March change (Sunday 2026-03-08) is an hour short.
    start, end = period_bounds(local("2026-03-08T12:00"), week, NY)
    assert start == minute_of(datetime(2026, 3, 2, 5, 0, tzinfo=UTC))  # Monday 00:00 EST
    assert end == minute_of(datetime(2026, 3, 9, 4, 0, tzinfo=UTC))  # Monday 00:00 EDT
    assert end - start == 7 * 1440 - 60
    # The week of the November change (Sunday 2026-11-01) is an hour long.
    start, end = period_bounds(local("2026-11-01T01:30"), week, NY)
    assert start == minute_of(datetime(2026, 10, 26, 4, 0, tzinfo=UTC))
    assert end - start == 7 * 1440 + 60
    # Months: March starts at EST midnight, April at EDT midnight; November and December too.
    assert period_bounds(local("2026-03-31T23:59"), month, NY) == (
        minute_of(datetime(2026, 3, 1, 5, tzinfo=UTC)), minute_of(datetime(2026, 4, 1, 4, tzinfo=UTC)),
    )
    assert period_bounds(datetime(2026, 12, 1, 4, 59, tzinfo=UTC), month, NY)[0] == minute_of(
        datetime(2026, 11, 1, 4, tzinfo=UTC)
    )
    assert period_bounds(datetime(2026, 12, 1, 5, 0, tzinfo=UTC), month, NY)[0] == minute_of(
        datetime(2026, 12, 1, 5, tzinfo=UTC)
    )


def test_units_land_in_the_local_month_across_the_march_change() -> None:
    cfg = config("""
slos:
  - name: avail
    pipeline: p
    sli: {kind: availability, service: svc}
    objective: 0.9
    window: {kind: calendar, unit: month}
""")
    engine = SLOEngine(cfg)
    # 04:30 UTC on April 1 is 00:30 EDT: April. 03:59 UTC is still March 31 (23:59 EDT).
    engine.observe_probe(HealthProbe("svc", datetime(2026, 4, 1, 3, 59, tzinfo=UTC), "fail"))
    engine.observe_probe(HealthProbe("svc", datetime(2026, 4, 1, 4, 30, tzinfo=UTC), "pass"))
    (april,) = engine.evaluate(datetime(2026, 4, 1, 5, 0, tzinfo=UTC))
    assert (april.good, april.total) == (1, 1)
    (march,) = engine.evaluate(datetime(2026, 4, 1, 3, 59, 30, tzinfo=UTC))
    assert (march.good, march.total) == (0, 1)
    assert march.window_start == datetime(2026, 3, 1, 5, 0, tzinfo=UTC)


def test_daily_deadline_follows_wall_clock_across_both_changes() -> None:
    cfg = config(DEADLINE_SLO.replace("{kind: rolling, days: 28}", "{kind: calendar, unit: month}"))
    engine = SLOEngine(cfg)
    # Published at 07:30 local every day of March and November: all on time.
    evs = daily_publishes(date(2026, 2, 25), 40, {d: "07:30" for d in [date(2026, 3, 8)]})
    evs += daily_publishes(date(2026, 10, 25), 40)
    feed(cfg, engine, evs)
    # 08:00 EDT on March 8 is 12:00 UTC: counted at 12:00, not before.
    (before,) = engine.evaluate(datetime(2026, 3, 8, 11, 59, tzinfo=UTC))
    (after,) = engine.evaluate(datetime(2026, 3, 8, 12, 0, tzinfo=UTC))
    assert after.total == before.total + 1 == 8
    assert after.good == 8
    # The budget is a share of the 31 runs March will hold (from the calendar).
    assert after.budget_basis == 31
    assert after.budget_total == Fraction(31, 20)


def test_window_end_includes_the_current_minute() -> None:
    bounds = window_bounds(datetime(2026, 1, 5, 10, 0, 30, tzinfo=UTC), SLOSpec.model_validate({
        "name": "n", "pipeline": "p", "objective": 0.9,
        "sli": {"kind": "availability", "service": "svc"},
    }).window, NY)
    assert bounds.end == minute_of(datetime(2026, 1, 5, 10, 1, tzinfo=UTC))
    assert bounds.end - bounds.start == 28 * 1440


# --------------------------------------------------------------------------- runs as units


def test_zero_traffic_window_is_insufficient_data_with_an_untouched_budget() -> None:
    cfg = config("""
slos:
  - name: ratio
    pipeline: p
    sli: {kind: success_ratio, phase: load, processors: []}
    objective: 0.99
""")
    engine = SLOEngine(cfg)
    router = SimpleRouter([MemoryChannel()])
    (status,) = engine.tick(datetime(2026, 1, 10, tzinfo=UTC), router)
    assert status.sli is None and status.total == 0
    assert status.status == "insufficient_data" and status.budget_remaining == 1.0
    assert all(w.burn_rate == 0.0 for w in status.windows)
    assert router.history == []
    assert status.as_dict()["sli"] is None


def test_a_run_that_never_happened_is_bad_once_its_deadline_passes() -> None:
    cfg = config(DEADLINE_SLO)
    engine = SLOEngine(cfg)
    first = date(2026, 1, 5)
    evs = [e for e in daily_publishes(first, 8) if e.run_date != date(2026, 1, 10)]
    feed(cfg, engine, evs)
    (at_759,) = engine.evaluate(local("2026-01-10T07:59"))
    assert (at_759.good, at_759.total) == (5, 5)
    (at_800,) = engine.evaluate(local("2026-01-10T08:00"))
    assert (at_800.good, at_800.total) == (5, 6)
    assert at_800.sli == pytest.approx(5 / 6)
    # A late-arriving event showing the run did finish in time repairs it.
    feed(cfg, engine, [
        event("publish", "started", local("2026-01-10T06:00"), run_date=date(2026, 1, 10)),
        event("publish", "succeeded", local("2026-01-10T07:45"), run_date=date(2026, 1, 10)),
    ])
    (repaired,) = engine.evaluate(local("2026-01-10T09:00"))
    assert (repaired.good, repaired.total) == (6, 6)


def test_one_late_run_in_27_pages_nobody_and_reports_the_budget_exactly() -> None:
    """28 days of a daily pipeline, one run late, SLO met: what burn-rate tools page on."""
    cfg = config(DEADLINE_SLO)
    engine = SLOEngine(cfg)
    channel = MemoryChannel()
    router = SimpleRouter([channel])
    first = date(2026, 2, 1)
    late_day = date(2026, 2, 27)
    evs = daily_publishes(first, 28, {late_day: "09:30"})
    tracker = RunTracker(cfg, retention_days=100)
    pending = sorted(evs, key=lambda e: e.timestamp)
    now = local("2026-02-01T00:00")
    end = local("2026-02-27T12:00")
    while now <= end:
        while pending and pending[0].timestamp <= now:
            engine.on_update(tracker.apply(pending.pop(0)))
        engine.tick(now, router)
        now += timedelta(minutes=5)
    (status,) = engine.evaluate(end)
    assert (status.good, status.total) == (26, 27)
    assert status.budget_total == Fraction(27, 20)  # 1.35 runs may be missed
    assert status.budget_consumed == 1
    assert status.budget_remaining_units == Fraction(7, 20)  # 0.35 runs left
    assert status.budget_remaining == pytest.approx(7 / 27)
    assert status.status == "ok"
    sent = [n.alert for n in channel.sent]
    assert {a.severity for a in sent} == {"info"}  # nobody paged, no ticket
    assert [a.labels["run_date"] for a in sent] == [late_day.isoformat()]
    assert "74%" in sent[0].summary


def test_a_later_event_changes_a_runs_verdict() -> None:
    cfg = config("""
slos:
  - name: ratio
    pipeline: p
    sli: {kind: success_ratio, phase: load, processors: [x]}
    objective: 0.9
""")
    engine = SLOEngine(cfg)
    day = date(2026, 1, 5)
    feed(cfg, engine, [event("load", "failed", local("2026-01-05T06:00"), "x", run_date=day)])
    (failed,) = engine.evaluate(local("2026-01-05T07:00"))
    assert (failed.good, failed.total) == (0, 1)
    feed(cfg, engine, [event("load", "succeeded", local("2026-01-05T06:30"), "x", run_date=day)])
    (retried,) = engine.evaluate(local("2026-01-05T07:00"))
    assert (retried.good, retried.total) == (1, 1)


# --------------------------------------------------------------------------- alerts


AVAIL_SLO = """
slos:
  - name: svc-up
    pipeline: p
    sli: {kind: availability, service: svc}
    objective: 0.99
    window: {kind: rolling, days: 30}
"""


def test_fast_burn_pages_then_resolves_with_a_stable_key() -> None:
    cfg = config(AVAIL_SLO)
    engine = SLOEngine(cfg)
    channel = MemoryChannel()
    router = SimpleRouter([channel])
    start = datetime(2026, 1, 10, tzinfo=UTC)
    # A probe every minute for a day, all failing between 12:00 and 12:20.
    for minute in range(24 * 60):
        at = start + timedelta(minutes=minute)
        bad = 12 * 60 <= minute < 12 * 60 + 20
        engine.observe_probe(HealthProbe("svc", at, "fail" if bad else "pass"))
    times = [start + timedelta(minutes=m) for m in range(11 * 60, 14 * 60)]
    for now in times:
        engine.tick(now, router)
    page_key = alert_key("slo_burn_rate", {"slo": "svc-up", "pipeline": "p", "service": "svc", "tier": "page"})
    pages = [n for n in channel.sent if n.alert.key == page_key]
    assert [n.action for n in pages] == ["trigger", "resolve"]
    # 14.4x over 1h needs 9 bad probes in the hour (8.64 allowed), and the 5m window burning:
    assert pages[0].at == start + timedelta(hours=12, minutes=8)
    assert pages[0].alert.severity == "critical"
    # Resolves once the 5-minute window is clean (12:20-12:24); the 6h/30m pair never held:
    # 20 bad probes in 6 hours is a 5.6x burn, under its 6x threshold.
    assert pages[1].at == start + timedelta(hours=12, minutes=24)


def test_budget_exhausted_fires_then_resolves_when_bad_runs_leave_the_window() -> None:
    cfg = config(DEADLINE_SLO.replace("days: 28}", "days: 7}\n    alerting: {min_units: 7}"))
    engine = SLOEngine(cfg)
    router = SimpleRouter([MemoryChannel()])
    first = date(2026, 1, 1)
    feed(cfg, engine, daily_publishes(first, 30, {date(2026, 1, 10): "09:00"}))
    engine.tick(local("2026-01-10T08:00"), router)
    key = alert_key("slo_budget_exhausted", {"slo": "publish-by-8", "pipeline": "p", "phase": "publish"})
    assert key in {a.key for a in router.active()}
    engine.tick(local("2026-01-17T08:00"), router)  # the late run left the 7-day window
    assert key not in {a.key for a in router.active()}
    assert [d.notification.action for d in router.history if d.notification.alert.key == key] == [
        "trigger", "resolve",
    ]


def test_projected_exhaustion_on_a_calendar_month_warns_for_probe_slos_only() -> None:
    cfg = config(DEADLINE_SLO.replace("{kind: rolling, days: 28}", "{kind: calendar, unit: month}")
                 .replace("0.95", "0.9"))
    engine = SLOEngine(cfg)
    late = {date(2026, 1, d): "09:00" for d in (2, 3)}
    feed(cfg, engine, daily_publishes(date(2026, 1, 1), 4, late))
    (status,) = engine.evaluate(local("2026-01-04T12:00"))
    assert status.budget_basis == 31 and status.budget_total == Fraction(31, 10)
    assert status.projected_bad is not None and status.projected_bad > status.budget_total
    # Runs: 2 bad of 3.1, the streak ended with a good run: nothing to raise (the projection
    # alerts SLOs counted in events or probes).
    assert engine.alerts([status]) == []
    cfg = config(AVAIL_SLO.replace("{kind: rolling, days: 30}", "{kind: calendar, unit: month}")
                 .replace("0.99", "0.9"))
    engine = SLOEngine(cfg)
    start = datetime(2025, 12, 1, 5, tzinfo=UTC)
    for hour in range(31 * 24):  # December: a probe an hour, all passing
        engine.observe_probe(HealthProbe("svc", start + timedelta(hours=hour), "pass"))
    jan = datetime(2026, 1, 1, 5, tzinfo=UTC)
    for hour in range(96):  # January 1-4: 40 of 96 failing
        engine.observe_probe(HealthProbe("svc", jan + timedelta(hours=hour),
                                         "fail" if hour % 12 < 5 else "pass"))
    (status,) = engine.evaluate(jan + timedelta(hours=96))
    assert status.budget_consumed == 40 and status.budget_consumed < status.budget_total * 3 / 4
    assert status.projected_bad is not None and status.projected_bad >= status.budget_total
    assert {a.key.split(":")[0] for a in engine.alerts([status])} == {"slo_budget_projected"}


# --------------------------------------------------------------------------- outputs and config


def test_gauges_are_set_from_statuses() -> None:
    cfg = config(AVAIL_SLO)
    engine = SLOEngine(cfg)
    at = datetime(2026, 1, 10, tzinfo=UTC)
    for m in range(4):
        engine.observe_probe(HealthProbe("svc", at + timedelta(minutes=m), "fail" if m == 0 else "pass"))
    registry = CollectorRegistry()
    gauges = SLOGauges(registry)
    gauges.update(engine.evaluate(at + timedelta(minutes=4)))
    assert registry.get_sample_value("phasewatch_slo_sli_ratio", {"slo": "svc-up"}) == 0.75
    remaining = registry.get_sample_value("phasewatch_slo_error_budget_remaining_ratio", {"slo": "svc-up"})
    assert remaining == pytest.approx(1 - 1 / (0.01 * 4))
    assert registry.get_sample_value("phasewatch_slo_burn_rate", {"slo": "svc-up", "window": "5m"}) == 25.0
    assert registry.get_sample_value("phasewatch_slo_burn_rate", {"slo": "svc-up", "window": "30d"}) == 25.0


@pytest.mark.parametrize(("slo", "message"), [
    ("{name: s, pipeline: nope, sli: {kind: availability, service: svc}, objective: 0.9}",
     "slos[0:s].pipeline 'nope' is unknown; allowed: ['p']"),
    ("{name: s, pipeline: p, sli: {kind: success_ratio, phase: zzz}, objective: 0.9}",
     "slos[0:s].sli.phase 'zzz' is unknown; allowed: ['load', 'publish']"),
    ("{name: s, pipeline: p, sli: {kind: success_ratio, phase: load, processors: [q]}, objective: 0.9}",
     "slos[0:s].sli.processors ['q'] are not processors of load; allowed: ['x', 'y']"),
    ("{name: s, pipeline: p, sli: {kind: availability, service: db}, objective: 0.9}",
     "slos[0:s].sli.service 'db' is unknown; allowed: ['svc']"),
    ("{name: s, pipeline: p, sli: {kind: nope}, objective: 0.9}", "sli"),
    ("{name: s, pipeline: p, sli: {kind: availability, service: svc}, objective: 1}", "objective"),
    ("{name: s, pipeline: p, sli: {kind: deadline, by: {time: '08:00:30'}}, objective: 0.9}",
     "HH:MM"),
])
def test_config_errors_name_the_field_and_the_allowed_values(slo: str, message: str) -> None:
    with pytest.raises(ConfigError) as info:
        config(f"slos:\n  - {slo}\n")
    assert message in str(info.value)


def test_the_bundled_example_has_the_issue_slos() -> None:
    from monitor.config import load_config

    names = {s.name for s in load_config().slos}
    assert {"nba-predictions-by-10am", "nba-phase3-overnight-by-6am", "nba-feature-freshness",
            "nba-player-context-coverage", "nba-phase3-success"} <= names
