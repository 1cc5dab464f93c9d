"""When a scheduled check is due: cron expressions in the pipeline's timezone (croniter)."""

from __future__ import annotations

from datetime import datetime
from zoneinfo import ZoneInfo

from croniter import croniter


def previous_fire(cron: str, tz: ZoneInfo, now: datetime) -> datetime:
    """The latest time at or before ``now`` that ``cron`` names, read as local time in ``tz``."""
    local = now.astimezone(tz)
    if local.second == local.microsecond == 0 and croniter.match(cron, local):
        return local  # get_prev is strictly earlier: a fire exactly now is now
    fire: datetime = croniter(cron, local).get_prev(datetime)
    return fire


def next_fire(cron: str, tz: ZoneInfo, now: datetime) -> datetime:
    """The first time after ``now`` that ``cron`` names, read as local time in ``tz``."""
    fire: datetime = croniter(cron, now.astimezone(tz)).get_next(datetime)
    return fire
