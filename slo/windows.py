"""Time windows in whole minutes: rolling and calendar (in the pipeline's timezone), burn windows.

Time is counted in epoch minutes (UTC). A unit at time ``t`` falls in minute ``t // 60``;
a window is a half-open range of minutes ``[start, end)``. Evaluated at ``now``, every
window ends at ``end = minute(now) + 1``: it includes the current minute. Calendar
boundaries are local midnights turned into UTC with zoneinfo, so a month that spans a
daylight-saving change is an hour shorter or longer than its days suggest; a rolling window
of N days starts at the same wall-clock time N local days back, for the same reason.
Burn-rate windows are durations (minutes), not days.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from zoneinfo import ZoneInfo

from slo.spec import AlertingPolicy, CalendarWindow, DeadlineTime, WindowSpec

MINUTES_PER_DAY = 1440
REFERENCE_DAYS = 30  # the SRE workbook's burn-rate windows are for a 30-day SLO window


def minute_of(when: datetime) -> int:
    """Epoch minute (UTC) containing ``when``; ``when`` must be timezone-aware."""
    if when.tzinfo is None:
        raise ValueError("a timezone-aware datetime is required")
    return int(when.timestamp()) // 60


def at_minute(minute: int) -> datetime:
    """The UTC datetime at the start of an epoch minute."""
    return datetime.fromtimestamp(minute * 60, UTC)


def local_midnight(day: date, tz: ZoneInfo) -> datetime:
    """Midnight starting ``day`` in ``tz``, as an aware datetime."""
    return datetime(day.year, day.month, day.day, tzinfo=tz)


def local_deadline(run_date: date, when: DeadlineTime, tz: ZoneInfo) -> datetime:
    """The deadline instant of ``run_date`` (a wall-clock time that DST skips maps forward)."""
    day = run_date + timedelta(days=when.day_offset)
    local = datetime.combine(day, when.time, tzinfo=tz)
    # A wall time that does not exist (spring forward) is normalized via UTC.
    return local.astimezone(UTC)


def period_bounds(now: datetime, window: CalendarWindow, tz: ZoneInfo) -> tuple[int, int]:
    """Start and end minutes of the calendar period that contains ``now``."""
    today = now.astimezone(tz).date()
    if window.unit == "week":
        first = today - timedelta(days=today.weekday())
        after = first + timedelta(days=7)
    else:
        first = today.replace(day=1)
        after = (first + timedelta(days=32)).replace(day=1)
    return minute_of(local_midnight(first, tz)), minute_of(local_midnight(after, tz))


@dataclass(frozen=True)
class Bounds:
    """The minutes an SLO window covers at one evaluation."""

    start: int
    end: int  # exclusive: minute(now) + 1
    period_end: int | None  # calendar windows: where the period ends
    length: int  # minutes of a full window (rolling: the window; calendar: the whole period)


def window_bounds(now: datetime, window: WindowSpec, tz: ZoneInfo) -> Bounds:
    """The SLO window at ``now``."""
    end = minute_of(now) + 1
    if isinstance(window, CalendarWindow):
        start, period_end = period_bounds(now, window, tz)
        return Bounds(start, end, period_end, period_end - start)
    start = minute_of(local_days_before(at_minute(end), window.days, tz))
    return Bounds(start, end, None, end - start)


def local_days_before(when: datetime, days: int, tz: ZoneInfo) -> datetime:
    """The same wall-clock time ``days`` local days before ``when`` (a rolling window's start).

    Across a daylight-saving change N local days are N x 24 h plus or minus an hour: a daily
    SLO's window holds N runs, never N + 1 or N - 1. A wall time that the spring change skips
    is read with the offset before it (zoneinfo's ``fold=0``).
    """
    local = when.astimezone(tz)
    earlier = datetime.combine(local.date() - timedelta(days=days), local.time(), tzinfo=tz)
    return earlier.astimezone(UTC)


@dataclass(frozen=True)
class BurnWindow:
    """A burn-rate window: its label (a Prometheus duration) and length in minutes."""

    label: str
    minutes: int


def scaled_minutes(minutes: int, window: WindowSpec, policy: AlertingPolicy) -> int:
    """A workbook window (for 30 days) scaled to this SLO window, whole minutes, at least 1."""
    if not policy.scale_to_window:
        return minutes
    return max(1, round(minutes * window.nominal_days / REFERENCE_DAYS))


def duration_label(minutes: int) -> str:
    """Minutes as a Prometheus duration: 5m, 1h, 5h36m, 2d19h12m."""
    days, rest = divmod(minutes, MINUTES_PER_DAY)
    hours, mins = divmod(rest, 60)
    out = (f"{days}d" if days else "") + (f"{hours}h" if hours else "") + (f"{mins}m" if mins else "")
    return out or "0m"


def burn_windows(window: WindowSpec, policy: AlertingPolicy) -> list[BurnWindow]:
    """Every distinct burn-rate window of the policy, shortest first."""
    minutes = {
        scaled_minutes(m, window, policy)
        for pair in policy.burn_rates
        for m in (pair.long_min, pair.short_min)
    }
    return [BurnWindow(duration_label(m), m) for m in sorted(minutes)]


def retention_minutes(window: WindowSpec) -> int:
    """How far back an SLO needs its units: the window, and for calendar windows also the
    trailing period used to estimate a whole period's volume; plus a day of slack."""
    if isinstance(window, CalendarWindow):
        period = 7 if window.unit == "week" else 31
        return (2 * period + 2) * MINUTES_PER_DAY
    return (window.days + 1) * MINUTES_PER_DAY
