"""An SLO's history: its units per local day of the window (``evaluate(now, daily=True)``)."""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta

from slo import SLOEngine
from tests.test_slo_engine import DEADLINE_SLO, NY, config, daily_publishes, feed, local


def test_days_add_up_to_the_window_and_show_the_late_run() -> None:
    cfg = config(DEADLINE_SLO)
    engine = SLOEngine(cfg)
    late = date(2026, 2, 10)
    feed(cfg, engine, daily_publishes(date(2026, 2, 1), 14, {late: "09:30"}))
    (status,) = engine.evaluate(local("2026-02-14T12:00"), daily=True)
    assert status.days is not None
    # A rolling 28-day window that ends at noon touches 29 local days, the first cut at noon.
    assert len(status.days) == 29
    assert status.days[0].day == date(2026, 1, 17) and status.days[-1].day == date(2026, 2, 14)
    assert sum(d.good for d in status.days) == status.good == 13
    assert sum(d.total for d in status.days) == status.total == 14
    by_day = {d.day: (d.good, d.total) for d in status.days}
    assert by_day[late] == (0, 1)  # counted on its run date, at the 08:00 deadline
    assert by_day[date(2026, 2, 9)] == (1, 1)
    assert by_day[date(2026, 1, 20)] == (0, 0)  # before the first run
    history = status.as_dict()["history"]
    assert history[-1] == {"date": "2026-02-14", "good": 1, "total": 1}


def test_days_follow_local_midnights_not_utc() -> None:
    cfg = config(DEADLINE_SLO.replace("{kind: rolling, days: 28}", "{kind: calendar, unit: month}"))
    engine = SLOEngine(cfg)
    feed(cfg, engine, daily_publishes(date(2026, 3, 1), 3))
    # 03:00 UTC on March 4 is still March 3 in New York: three local days, none of them empty.
    (status,) = engine.evaluate(datetime(2026, 3, 4, 3, 0, tzinfo=UTC), daily=True)
    assert status.days is not None
    assert [(d.day.isoformat(), d.good, d.total) for d in status.days] == [
        ("2026-03-01", 1, 1), ("2026-03-02", 1, 1), ("2026-03-03", 1, 1)]
    assert status.window_start == datetime(2026, 3, 1, tzinfo=NY).astimezone(UTC)


def test_history_is_only_there_when_asked_for() -> None:
    cfg = config(DEADLINE_SLO)
    engine = SLOEngine(cfg)
    feed(cfg, engine, daily_publishes(date(2026, 2, 1), 3))
    (status,) = engine.evaluate(local("2026-02-03T12:00") + timedelta(minutes=1))
    assert status.days is None
    assert "history" not in status.as_dict()
