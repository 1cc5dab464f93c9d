"""Configuration of the anomaly detector and of adaptive timeouts.

Every knob has a default that works untouched on daily pipeline durations; the ``late``
series (completion time of day) and generic series (``phasewatch anomaly scan``) differ
only in the transform, the floor and the direction.
"""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, model_validator

Transform = Literal["log", "linear"]
Direction = Literal["up", "both"]
Seasonality = Literal["weekday", "hour", "none"]


class _Frozen(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")


class DetectorConfig(_Frozen):
    """Parameters of one streaming detector (one series)."""

    transform: Transform = Field(
        default="log",
        description="log: relative changes (durations); linear: absolute changes (lateness)",
    )
    value_floor: float = Field(
        default=1.0,
        gt=0,
        description="log transform only: values are clamped up to this (units of the series), "
        "so a 0.2 s job taking 0.9 s is not a 4x slowdown",
    )
    window: int = Field(default=56, ge=3, le=100_000, description="trailing points kept")
    min_history: int = Field(
        default=10, ge=2, description="points seen before the first decision is made"
    )
    threshold: float = Field(default=5.5, gt=0, description="robust z that makes a spike")
    mad_floor: float = Field(
        default=0.05,
        gt=0,
        description="lowest robust sigma, in transformed units (log: 0.05 = 5 %); "
        "keeps a series of equal values from flagging every tiny change",
    )
    mad_floor_rel: float = Field(
        default=0.0,
        ge=0,
        description="linear transform: also floor sigma at this fraction of |expected|",
    )
    direction: Direction = Field(
        default="up", description="up: only 'slower / later than usual'; both: either way"
    )
    seasonality: Seasonality = Field(
        default="weekday",
        description="weekday: baseline per day of week (or per caller-given key, e.g. game "
        "day) once the history spans season_min_days; hour: per hour of day (sub-daily "
        "series); none: one baseline",
    )
    season_min_days: float = Field(default=21.0, ge=0, description="history span that enables it")
    season_window: int = Field(default=8, ge=1, le=1000, description="points kept per season key")
    season_min_points: int = Field(default=3, ge=1, description="points a key needs to be used")
    cusum: bool = Field(default=True, description="CUSUM of the robust z for shifts and drifts")
    cusum_k: float = Field(default=1.0, ge=0, description="CUSUM allowance, in robust sigmas")
    cusum_h: float = Field(default=8.0, gt=0, description="CUSUM alarm level, in robust sigmas")
    cusum_clip: float = Field(
        default=3.0, gt=0, description="a point moves the CUSUM by at most this many sigmas"
    )
    drift_min_points: int = Field(
        default=6, ge=3, description="a CUSUM run at least this long may be called a drift"
    )
    tail_quantile: float = Field(
        default=0.0,
        ge=0,
        le=1,
        description="0 = off; else a spike must also exceed tail_factor x this quantile of "
        "recent absolute errors (for series where outliers recur, e.g. periodic spikes)",
    )
    tail_factor: float = Field(default=1.0, gt=0)
    cooldown: int = Field(
        default=0, ge=0, description="points after a flag during which no new flag is raised"
    )
    neighbours: int = Field(
        default=8, ge=1,
        description="points given the size of their work (durations: the rows the run "
        "expects) are compared with the median of this many recent runs of the most "
        "similar size, instead of their weekday",
    )

    @model_validator(mode="after")
    def _history_fits_window(self) -> DetectorConfig:
        if self.min_history > self.window:
            raise ValueError(
                f"min_history ({self.min_history}) must not exceed window ({self.window})"
            )
        return self


class EnsembleConfig(_Frozen):
    """Parameters of the ensemble detector for generic sub-daily metrics (``ensemble.py``).

    The defaults are the parameter set the NAB benchmark quotes (``bench/anomaly_eval.py``):
    chosen by the leave-one-group-out figure, not tuned per file or per group.
    """

    window: int = Field(
        default=2000, ge=10, le=100_000,
        description="trailing points behind the baseline, the scale and the records to beat",
    )
    level_window: int = Field(
        default=24, ge=2, le=1000,
        description="points in the short level and mean deviation (shift and burst scores)",
    )
    recompute_every: int = Field(
        default=64, ge=1, le=1000,
        description="the long median and scale are recomputed every this many points "
        "(and at each of the first ones); in between the last values hold",
    )
    season_window: int = Field(
        default=36, ge=1, le=1000, description="points kept per hour of day (the seasonal baseline)"
    )
    season_min_days: float = Field(
        default=2.0, ge=0, description="history span after which the per-hour baseline is used"
    )
    season_min_points: int = Field(default=3, ge=1, description="points an hour needs to be used")
    min_history: int = Field(default=10, ge=1, description="points seen before the first decision")
    z_min: float = Field(
        default=3.0, ge=0,
        description="every score (spike, shift, burst) must also be this many robust sigmas",
    )
    threshold: float = Field(
        default=1.0, gt=0,
        description="a score must exceed this multiple of the largest score of its kind over "
        "the window (1.0: beat every recent one)",
    )
    cooldown: int = Field(
        default=100, ge=0, description="points after a flag during which no new flag is raised"
    )
    flag_memory: int = Field(
        default=8000, ge=0, le=1_000_000,
        description="points during which a score that raised a flag stays the record of its kind "
        "(the score to beat), also once it has left the window: a repeat of a flagged anomaly, "
        "no larger, is not flagged again; at most window (0 too): only as long as the window",
    )
    scale_floor_rel: float = Field(
        default=0.01, ge=0, description="robust sigma floored at this fraction of |baseline|"
    )
    forecast: bool = Field(
        default=True,
        description="also score the error of a forecast from the two previous values and the "
        "value forecast_lag_s before (least squares over the window, refitted every "
        "recompute_every points), and its mean over level_window points",
    )
    pattern_long_window: int = Field(
        default=72, ge=0, le=100_000,
        description="points in a second, longer pattern score: the mean absolute forecast error "
        "over this many points, all with a forecast, at least z_min robust sigmas of its own "
        "values (slow departures from the pattern); at most window (a larger value counts as "
        "window); 0: none",
    )
    pattern_long_min: int = Field(
        default=0, ge=0, le=100_000,
        description="the long pattern is scored once this many of its points have a forecast "
        "(the mean of their errors), before its window is full; 0: once all of them have one",
    )
    context_bins: int = Field(
        default=16, ge=0, le=32,
        description="bins of the context (contextOSE's idea): each value binned between the "
        "context_quantile-th percentiles of the window before it, the context the bins of the "
        "last three values; where the context is familiar a score must beat its record by "
        "context_margin; 0: no context (the preset before, with more false positives)",
    )
    context_quantile: float = Field(
        default=1.0, ge=0, lt=50.0,
        description="the context's bins span this percentile to its complement (1: the 1st to "
        "the 99th) of the window's values before each recompute point",
    )
    context_margin: float = Field(
        default=1.1, ge=1.0, le=10.0,
        description="where the context was seen within the window, a score must beat its record "
        "by this factor (times the threshold) to flag; a new context needs the threshold alone; "
        "1: the context is not used",
    )
    forecast_lag_s: float = Field(
        default=86400.0, gt=0,
        description="seconds back to the forecast's seasonal value (the latest point at least "
        "this old); 1 day",
    )
    escalation: float = Field(
        default=0.0, ge=0, le=100.0,
        description="inside a cooldown, at least escalation_after points after the last flag, a "
        "score above this multiple of the threshold flags again (and starts a new cooldown): "
        "the anomaly grew; 0: none (the cooldown holds)",
    )
    escalation_after: int = Field(
        default=12, ge=1, le=100_000, description="points after a flag before an escalation may flag"
    )
    rearm_below: float = Field(
        default=0.0, ge=0, le=100.0,
        description="the cooldown ends once the score stayed below this for rearm_points points "
        "after the flag (the anomaly is over); 0: none (the cooldown runs its length)",
    )
    rearm_points: int = Field(
        default=12, ge=1, le=100_000, description="points the score must stay below rearm_below"
    )
    hour_of_week_weeks: int = Field(
        default=3, ge=0, le=52,
        description="a flag is dropped when the value lies within the range of the values of "
        "the same hour of the week in this many previous weeks (usual for its hour of the "
        "week); 0: none (the preset before)",
    )

    @model_validator(mode="after")
    def _level_fits_window(self) -> EnsembleConfig:
        if self.level_window > self.window:
            raise ValueError(
                f"level_window ({self.level_window}) must not exceed window ({self.window})"
            )
        return self


class TimeoutConfig(_Frozen):
    """Adaptive timeouts: quantile of past durations x margin, clamped."""

    quantile: float = Field(default=0.99, gt=0, le=1)
    margin: float = Field(default=1.5, ge=1)
    floor_s: float = Field(default=60.0, ge=0)
    ceiling_s: float = Field(default=6 * 3600.0, gt=0)
    min_history: int = Field(default=14, ge=1, description="below it the static value is used")
    window: int = Field(default=90, ge=1, description="most recent durations considered")

    @model_validator(mode="after")
    def _floor_below_ceiling(self) -> TimeoutConfig:
        if self.floor_s > self.ceiling_s:
            raise ValueError(f"floor_s ({self.floor_s}) exceeds ceiling_s ({self.ceiling_s})")
        return self


def _late_defaults() -> DetectorConfig:
    # Lateness is compared in seconds: 40 min late is as bad at 02:00 as at 09:00.
    return DetectorConfig(transform="linear", mad_floor=300.0)


def _records_defaults() -> DetectorConfig:
    # Rows per expected row (or rows, without expected_records): relative changes either
    # way, 0 rows included (the floor), two weeks of runs before the first verdict.
    return DetectorConfig(direction="both", value_floor=1e-3, mad_floor=0.03, min_history=14)


class AnomalyConfig(_Frozen):
    """Everything the anomaly package needs; the defaults work untouched."""

    enabled: bool = True
    duration: DetectorConfig = Field(default_factory=DetectorConfig)
    late: DetectorConfig = Field(
        default_factory=_late_defaults,
        description="arrival (completion time of day) of each processor's and phase's data",
    )
    records: DetectorConfig = Field(
        default_factory=_records_defaults,
        description="rows per processor run: records / expected_records when the event "
        "reports expected_records (runs expecting 0 rows, e.g. no games, are not judged), "
        "else records",
    )
    timeouts: TimeoutConfig = Field(default_factory=TimeoutConfig)

    def for_kind(self, kind: str) -> DetectorConfig:
        """The detector config of a series kind (``duration``, ``late`` or ``records``)."""
        if kind == "duration":
            return self.duration
        if kind == "late":
            return self.late
        if kind == "records":
            return self.records
        raise ValueError(f"unknown series kind {kind!r}; allowed: duration, late, records")


GENERIC = DetectorConfig(
    transform="linear",
    mad_floor=1e-9,
    mad_floor_rel=0.01,
    direction="both",
    window=1000,
    seasonality="hour",
    season_min_days=2.0,
    season_window=36,
    tail_quantile=1.0,
    cooldown=100,
    cusum=False,
)
"""Preset for generic sub-daily metrics (``anomaly scan --preset generic``; the NAB figures).

Values may be zero or negative (linear), either direction matters, outliers recur (a
spike must beat the largest recent error), the day has a shape (per-hour baseline), and
the samples are autocorrelated, which makes a CUSUM that assumes independence fire on
noise; so it is off.
"""
