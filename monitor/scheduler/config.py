"""The ``scheduler`` section: the pipeline's Cloud Scheduler jobs and how their outcomes alert.

Only this component's own models; ``monitor.config`` composes the section into ``Config``
and checks the names it uses (pipelines, phases, processors) against the pipelines.
"""

from __future__ import annotations

from datetime import datetime
from functools import cached_property
from typing import Annotated
from zoneinfo import ZoneInfo

from croniter import croniter
from pydantic import AfterValidator, Field, HttpUrl, model_validator

from monitor.fields import AlertSeverity, Condition, Frozen, Name
from monitor.validation import Timezone


def _cron(text: str) -> str:
    fields = text.split()
    if len(fields) != 5 or not croniter.is_valid(text):
        raise ValueError(
            f"cron {text!r}: expected five fields (minute hour day-of-month month day-of-week), "
            "as Cloud Scheduler takes them, e.g. '30 10 * * *'"
        )
    return text


Cron = Annotated[str, AfterValidator(_cron)]
JobName = Annotated[str, Field(pattern=r"^[A-Za-z0-9_-]{1,500}$")]
"""A Cloud Scheduler job id: letters, digits, hyphens and underscores, up to 500."""


class SchedulerJobConfig(Frozen):
    """One Cloud Scheduler job of a pipeline: when it fires, what it calls, what it starts."""

    name: JobName = Field(description="the job id (the last part of projects/P/locations/L/jobs/ID)")
    pipeline: Name
    phase: Name | None = Field(default=None, description="the phase it starts (or checks)")
    processor: Name | None = Field(default=None, description="the processor it starts, if one")
    cron: Cron = Field(description="its schedule, five cron fields")
    timezone: Timezone | None = Field(
        default=None, description="the schedule's time zone (default: the pipeline's)"
    )
    url: HttpUrl | None = Field(default=None, description="the target it calls (shown in alerts)")
    grace_min: float = Field(
        default=15.0, gt=0, le=24 * 60,
        description="how long after a scheduled time an attempt may arrive before it counts as "
        "missed",
    )
    severity: AlertSeverity = Field(default="critical", description="of a failed attempt's alert")
    missed_severity: AlertSeverity = Field(
        default="warning", description="of the alert for a job that did not fire (and for one "
        "left paused on a day with work)"
    )
    expected_when: dict[Name, Condition] = Field(
        default_factory=dict,
        description="when its work is due, by data checks of its pipeline (e.g. {games_today: "
        "'> 0'}): a scheduled time passing while a person has the job paused and every "
        "condition holds for its run date raises scheduler_job_left_paused",
    )
    run_date_days_ago: int = Field(
        default=0, ge=0, le=366,
        description="the run date a fire works on, for expected_when: its scheduled day minus "
        "this (1: yesterday's games)",
    )

    @model_validator(mode="after")
    def _processor_needs_phase(self) -> SchedulerJobConfig:
        if self.processor is not None and self.phase is None:
            raise ValueError("processor needs the phase it belongs to (phase)")
        return self

    @cached_property
    def zone(self) -> ZoneInfo | None:
        return ZoneInfo(self.timezone) if self.timezone else None

    def last_due(self, before: datetime, tz: ZoneInfo) -> datetime:
        """The latest scheduled time at or before ``before`` (in the job's time zone, else ``tz``)."""
        local = before.astimezone(self.zone or tz)
        if croniter.match(self.cron, local):
            return local.replace(second=0, microsecond=0)
        found: datetime = croniter(self.cron, local).get_prev(datetime)
        return found

    def next_due(self, after: datetime, tz: ZoneInfo) -> datetime:
        """The first scheduled time after ``after``."""
        found: datetime = croniter(self.cron, after.astimezone(self.zone or tz)).get_next(datetime)
        return found


class SchedulerConfig(Frozen):
    """The scheduler jobs phasewatch watches: a failed attempt or a missed fire alerts."""

    jobs: tuple[SchedulerJobConfig, ...] = Field(
        default=(), description="the pipeline's Cloud Scheduler jobs (outcomes of other jobs are "
        "accepted and listed, never alerted)",
    )

    @model_validator(mode="after")
    def _unique(self) -> SchedulerConfig:
        names = [j.name for j in self.jobs]
        dup = sorted({n for n in names if names.count(n) > 1})
        if dup:
            raise ValueError(f"jobs: names must be unique; repeated: {dup}")
        return self

    @cached_property
    def job_map(self) -> dict[str, SchedulerJobConfig]:
        return {j.name: j for j in self.jobs}
