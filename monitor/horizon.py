"""The actionable horizon: the runs and events phasewatch may act and open alerts on.

History is for learning, never for acting. Loading a year of events, a burst of late
events after an outage, or a backfill must not trigger the production pipeline nor page
anyone about runs that are long over. A run is inside the horizon when its run date, minus
today in the pipeline's timezone, is within its mode's bounds (``pipelines[].horizon``);
an event is fresh when its own timestamp is at most ``max_event_age_h`` old. Everything
else still feeds run state, SLOs and anomaly baselines.
"""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta

from monitor.config import Config, PipelineConfig
from monitor.events import Event


def outside_run_dates(pipeline: PipelineConfig, run_date: date, mode: str,
                      now: datetime) -> str | None:
    """Why a run is outside the pipeline's horizon at ``now``; None when it is inside."""
    bounds = pipeline.horizon.days(mode)
    if bounds == "any":
        return None
    today = now.astimezone(pipeline.tz).date()
    offset = (run_date - today).days
    earliest, latest = bounds
    if earliest <= offset <= latest:
        return None
    first, last = today + timedelta(days=earliest), today + timedelta(days=latest)
    window = first.isoformat() if first == last else f"{first.isoformat()}..{last.isoformat()}"
    return f"run date {run_date.isoformat()} is outside the {mode} horizon ({window})"


def stale(pipeline: PipelineConfig, event: Event, now: datetime) -> str | None:
    """Why an event is too old to act or alert on; None when it is fresh."""
    age = now - event.timestamp
    limit = pipeline.horizon.max_event_age_h
    if age <= timedelta(hours=limit):
        return None
    return f"event is {age.total_seconds() / 3600:.1f} h old (max_event_age_h {limit:g})"


def outside(pipeline: PipelineConfig, event: Event, mode: str, now: datetime) -> str | None:
    """Why an event may not cause an action or a new alert; None when it may."""
    return outside_run_dates(pipeline, event.run_date, mode, now) or stale(pipeline, event, now)


class Horizon:
    """``outside`` at one ``now``, for a batch of events: each run's bounds worked out once,
    and each pipeline's oldest fresh instant (an event's age is one comparison)."""

    def __init__(self, config: Config, now: datetime) -> None:
        self.config = config
        self.now = now
        self._runs: dict[tuple[str, date, str], str | None] = {}
        self._fresh_since: dict[str, datetime] = {}

    def run(self, pipeline: str, run_date: date, mode: str) -> str | None:
        """``outside_run_dates`` of a run."""
        key = (pipeline, run_date, mode)
        try:
            return self._runs[key]
        except KeyError:
            why = self._runs[key] = outside_run_dates(
                self.config.pipeline_map[pipeline], run_date, mode, self.now)
            return why

    def __call__(self, event: Event, mode: str) -> str | None:
        """``outside`` of an event whose run has ``mode``."""
        return self.run(event.pipeline, event.run_date, mode) or self.stale(event)

    def stale(self, event: Event) -> str | None:
        """``stale`` of an event."""
        try:
            since = self._fresh_since[event.pipeline]
        except KeyError:
            # now - timestamp <= limit as one comparison: exact (whole microseconds) in UTC.
            limit = self.config.pipeline_map[event.pipeline].horizon.max_event_age_h
            since = self._fresh_since[event.pipeline] = self.now.astimezone(UTC) - timedelta(
                hours=limit)
        if event.timestamp >= since:
            return None
        return stale(self.config.pipeline_map[event.pipeline], event, self.now)
