"""SLO specs: what an SLO measures (its SLI), its objective, its window and its alerting policy.

Frozen pydantic models with ``extra="forbid"``, validated once when the config loads.
Names are checked against the pipelines in ``monitor.config.Config`` (cross-validation
lives there, since a spec alone does not know the pipelines).
"""

from __future__ import annotations

from datetime import date
from datetime import time as TimeOfDay
from typing import Annotated, Literal, get_args

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

from monitor.fields import Condition

NAME_PATTERN = r"^[A-Za-z0-9][A-Za-z0-9_.:-]{0,127}$"
Name = Annotated[str, Field(pattern=NAME_PATTERN)]
CheckName = Annotated[str, Field(min_length=1, max_length=128)]  # as the checks: section's
Mode = Literal["overnight", "same_day", "tomorrow", "backfill"]
Weekday = Literal["mon", "tue", "wed", "thu", "fri", "sat", "sun"]
WEEKDAYS: tuple[Weekday, ...] = ("mon", "tue", "wed", "thu", "fri", "sat", "sun")
ProbeStatus = Literal["pass", "warn", "fail"]


class Frozen(BaseModel):
    """Immutable, and unknown keys are an error."""

    model_config = ConfigDict(frozen=True, extra="forbid")


# --------------------------------------------------------------------------- SLIs


class SuccessRatioSLI(Frozen):
    """Share of phase or processor runs (or attempts) that succeed."""

    kind: Literal["success_ratio"]
    phase: Name
    processors: tuple[Name, ...] | None = Field(
        default=None,
        description="count processor runs of these processors ([] = all of the phase); "
        "omitted: count phase runs (complete = good, failed = bad)",
    )
    modes: tuple[Mode, ...] | None = Field(default=None, description="default: every mode")
    count: Literal["runs", "attempts"] = Field(
        default="runs",
        description="runs: a run's latest verdict (a retry that succeeds repairs it); "
        "attempts: every terminal event (what the Prometheus rules count)",
    )


class DeadlineTime(Frozen):
    """A time of day on the run date plus ``day_offset`` days, in the pipeline's timezone."""

    day_offset: int = Field(default=0, ge=-7, le=7)
    time: TimeOfDay

    @field_validator("time", mode="before")
    @classmethod
    def _minutes_only(cls, value: object) -> object:
        if isinstance(value, str) and value.count(":") != 1:
            raise ValueError(f"time {value!r}; allowed: HH:MM (24 h, no seconds)")
        return value

    @field_validator("time")
    @classmethod
    def _whole_minute(cls, value: TimeOfDay) -> TimeOfDay:
        if value.second or value.microsecond or value.tzinfo is not None:
            raise ValueError("time: allowed: HH:MM in the pipeline's timezone (no seconds, no offset)")
        return value


class DueSpec(Frozen):
    """Which run dates are due. A due run date that never completes counts as bad."""

    days: tuple[Weekday, ...] = Field(default=WEEKDAYS, min_length=1)
    start: date | None = Field(
        default=None, description="first due run date (e.g. season start): every due run date from "
        "it on counts, reported or not (default: counting starts at the pipeline's first event)",
    )
    end: date | None = Field(default=None, description="last due run date")
    skip_dates: tuple[date, ...] = ()
    only_seen: bool = Field(
        default=False,
        description="due only when the pipeline reported any event for that run date "
        "(in any mode, from seen_phases) or expected_when holds; a date nobody touched is then "
        "not counted",
    )
    seen_phases: tuple[Name, ...] = Field(default=(), description="empty: any phase")
    expected_when: dict[CheckName, Condition] = Field(
        default_factory=dict,
        description="with only_seen: a run date is due too when every one of these data checks "
        "(check name -> condition, as an expectation's when) holds on the check's latest result "
        "for that run date, even if the pipeline never reported on it; a run date the check has "
        "no result for is not made due by it",
    )

    @model_validator(mode="after")
    def _ordered(self) -> DueSpec:
        if self.start and self.end and self.end < self.start:
            raise ValueError(f"due.end {self.end} is before due.start {self.start}")
        if len(set(self.days)) != len(self.days):
            raise ValueError("due.days: each weekday once")
        if self.expected_when and not self.only_seen:
            raise ValueError("due.expected_when needs only_seen: true (without it every run date "
                             "the calendar allows is due already)")
        return self

    def is_due(self, run_date: date) -> bool:
        """Due by the calendar rules (``only_seen`` and ``expected_when`` are checked by the SLI)."""
        if WEEKDAYS[run_date.weekday()] not in self.days:
            return False
        if self.start and run_date < self.start:
            return False
        if self.end and run_date > self.end:
            return False
        return run_date not in self.skip_dates


class DeadlineSLI(Frozen):
    """Share of due run dates whose phase (or whole run) completed by a deadline."""

    kind: Literal["deadline"]
    phase: Name | None = Field(default=None, description="omitted: every phase of the run")
    by: DeadlineTime
    by_mode: dict[Mode, DeadlineTime] = Field(
        default_factory=dict, description="a different deadline for runs of these modes"
    )
    modes: tuple[Mode, ...] | None = Field(
        default=None,
        description="runs of these modes count; the run date is good when any of them "
        "completed by its deadline (default: every mode)",
    )
    due: DueSpec = DueSpec()

    @model_validator(mode="after")
    def _modes_cover(self) -> DeadlineSLI:
        if self.modes is not None:
            extra = sorted(set(self.by_mode) - set(self.modes))
            if extra:
                raise ValueError(f"by_mode names {extra}; allowed: the modes listed {list(self.modes)}")
        return self

    def deadline_for(self, mode: str) -> DeadlineTime:
        for key, value in self.by_mode.items():
            if key == mode:
                return value
        return self.by


class DurationSLI(Frozen):
    """Share of successful runs that took at most ``max_s`` seconds."""

    kind: Literal["duration"]
    phase: Name
    processors: tuple[Name, ...] | None = Field(
        default=None, description="processor runs ([] = all); omitted: the phase, first start to complete"
    )
    modes: tuple[Mode, ...] | None = None
    max_s: float = Field(gt=0)


class FreshnessSLI(Frozen):
    """Share of successful runs whose data watermark (``data_as_of``) was at most ``max_age_h`` old."""

    kind: Literal["freshness"]
    phase: Name
    processors: tuple[Name, ...] | None = Field(
        default=None, description="processor runs ([] = all); omitted: phase-level events"
    )
    modes: tuple[Mode, ...] | None = Field(
        default=None, description="runs of these modes count (default: every mode but backfill, "
        "whose input is as old as its date on purpose)",
    )
    max_age_h: float = Field(gt=0)
    missing: Literal["bad", "ignore"] = Field(
        default="bad", description="a success that reports no data_as_of"
    )

    @property
    def counted_modes(self) -> tuple[Mode, ...]:
        """The modes whose runs count: ``modes``, else every mode but backfill (a backfill
        rebuilds the past: its input is as old as its run date on purpose). The engine and
        ``slo sql`` both read it."""
        return self.modes or tuple(m for m in get_args(Mode) if m != "backfill")


class CoverageSLI(Frozen):
    """Share of successful runs with ``records / expected_records`` at least ``min_ratio``."""

    kind: Literal["coverage"]
    phase: Name
    processors: tuple[Name, ...] | None = Field(
        default=None, description="processor runs ([] = all); omitted: phase-level events"
    )
    modes: tuple[Mode, ...] | None = None
    min_ratio: float = Field(gt=0, le=1)
    missing: Literal["bad", "ignore"] = Field(
        default="bad", description="a success without records or expected_records"
    )


class AvailabilitySLI(Frozen):
    """Share of health probes of a service whose status is good."""

    kind: Literal["availability"]
    service: Name
    good: tuple[ProbeStatus, ...] = Field(default=("pass",), min_length=1)


class CheckSLI(Frozen):
    """Share of runs whose data check result (its latest for the run date) is within bounds."""

    kind: Literal["check"]
    check: Name = Field(description="the data check whose results count (one unit per run date)")
    min: float | None = Field(default=None, description="good when the value is at least this")
    max: float | None = Field(default=None, description="good when the value is at most this")

    @model_validator(mode="after")
    def _bounded(self) -> CheckSLI:
        if self.min is None and self.max is None:
            raise ValueError("set min, max or both: the values a good run's check has")
        if self.min is not None and self.max is not None and self.min > self.max:
            raise ValueError(f"min {self.min:g} is above max {self.max:g}")
        return self


SLISpec = Annotated[
    SuccessRatioSLI | DeadlineSLI | DurationSLI | FreshnessSLI | CoverageSLI | AvailabilitySLI
    | CheckSLI,
    Field(discriminator="kind"),
]


# --------------------------------------------------------------------------- windows


class RollingWindow(Frozen):
    """The last ``days`` local days (the pipeline's timezone), ending now."""

    kind: Literal["rolling"]
    days: int = Field(ge=1, le=90)

    @property
    def nominal_days(self) -> int:
        return self.days

    @property
    def label(self) -> str:
        return f"{self.days}d"


class CalendarWindow(Frozen):
    """The current calendar week (Monday first) or month, in the pipeline's timezone."""

    kind: Literal["calendar"]
    unit: Literal["week", "month"]

    @property
    def nominal_days(self) -> int:
        return 7 if self.unit == "week" else 30

    @property
    def label(self) -> str:
        return self.unit


WindowSpec = Annotated[RollingWindow | CalendarWindow, Field(discriminator="kind")]


# --------------------------------------------------------------------------- alerting


class BurnRatePair(Frozen):
    """Alert when the burn rate is at least ``factor`` over both windows (SRE workbook)."""

    severity: Literal["critical", "warning"]
    factor: float = Field(gt=0)
    long_min: int = Field(gt=0, description="long window in minutes, for a 30-day SLO window")
    short_min: int = Field(gt=0, description="short window in minutes, for a 30-day SLO window")

    @model_validator(mode="after")
    def _short_is_shorter(self) -> BurnRatePair:
        if self.short_min >= self.long_min:
            raise ValueError(f"short_min {self.short_min} must be less than long_min {self.long_min}")
        return self


DEFAULT_BURN_RATES: tuple[BurnRatePair, ...] = (
    BurnRatePair(severity="critical", factor=14.4, long_min=60, short_min=5),
    BurnRatePair(severity="critical", factor=6, long_min=360, short_min=30),
    BurnRatePair(severity="warning", factor=3, long_min=1440, short_min=120),
    BurnRatePair(severity="warning", factor=1, long_min=4320, short_min=360),
)


class BudgetAlerts(Frozen):
    """Alerts on the error budget itself, meaningful at any volume (docs/slos.md, "Alerts")."""

    single_bad_unit_pct: float | None = Field(
        default=50, gt=0, le=100,
        description="info, once: a bad run that consumes at least this share of the budget while "
        "budget is left (SLOs counted in runs; null: off)",
    )
    consecutive_bad: int | None = Field(
        default=2, ge=2,
        description="this many bad runs in a row page (critical for a deadline SLO, else a "
        "warning), once per streak (SLOs counted in runs; null: off)",
    )
    low_remaining_pct: float | None = Field(
        default=25, gt=0, lt=100,
        description="warning: less than this share of the budget is left (SLOs counted in "
        "events or probes)",
    )
    exhausted: bool = Field(
        default=True, description="warning (a ticket, reminded daily): nothing of the budget is left",
    )
    projected_exhaustion: bool = Field(
        default=True,
        description="warning: at the window's pace the budget runs out before it ends (SLOs "
        "counted in events or probes)",
    )


class AlertingPolicy(Frozen):
    """Multi-window burn-rate alerts where volume allows, budget alerts always."""

    burn_rates: tuple[BurnRatePair, ...] = DEFAULT_BURN_RATES
    scale_to_window: bool = Field(
        default=True, description="scale burn-rate windows by the SLO window / 30 days"
    )
    min_events: int = Field(
        default=10, ge=1,
        description="a burn-rate pair is judged only when its long window holds this many units",
    )
    min_units: int = Field(
        default=10, ge=1,
        description="fewer units in the window (for a calendar window: expected in the period) "
        "is a cold start: status insufficient_data, and the SLO raises no alert",
    )
    budget: BudgetAlerts = BudgetAlerts()


# --------------------------------------------------------------------------- the SLO


class SLOSpec(Frozen):
    """One service level objective of a pipeline (or of one of its services)."""

    name: Name
    pipeline: Name
    description: str | None = None
    sli: SLISpec
    objective: float = Field(gt=0, lt=1)
    window: WindowSpec = RollingWindow(kind="rolling", days=28)
    alerting: AlertingPolicy = AlertingPolicy()

    @property
    def unit(self) -> str:
        """What the budget is counted in."""
        if self.sli.kind == "availability":
            return "probes"
        if self.sli.kind == "success_ratio" and self.sli.count == "attempts":
            return "events"
        return "runs"
