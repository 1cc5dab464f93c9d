"""A streaming ensemble of robust residual scores for generic sub-daily metrics.

Per point, against a baseline of the previous points only:

- **spike** / **seasonal**: the absolute error of the value against its baseline (the
  median of the same hour of day over the last ``season_window`` days once the history
  spans ``season_min_days``, else the median of the last ``window`` points); called
  *seasonal* when the value lies within the series' range over the last ``window``
  points: ordinary for the series, not for its hour;
- **shift**: the distance of the median of the last ``level_window`` points from the long
  median (a level shift);
- **burst**: the mean absolute error over the last ``level_window`` points (a run of
  unusual values, a change of variance);
- **forecast** (with ``forecast`` on): the absolute error of a one-step forecast, a least
  squares fit of the value on the two values before it and on the value one day before
  (``forecast_lag_s``: the latest point at least that old), refitted every
  ``recompute_every`` points on the last ``window`` points; what recurs daily (a nightly
  job's spike) is forecast, so it stops setting the record that a new spike must beat;
- **pattern**: the mean absolute forecast error over the last ``level_window`` points
  (the series stopped following its recent and daily pattern), and the same over the last
  ``pattern_long_window`` points (a slower departure), once all of them have a forecast:
  at least ``z_min`` robust sigmas of its own values, judged against its own records.

Each must be at least ``z_min`` robust sigmas (1.4826 x the median absolute error of the
last ``window`` points, floored at ``scale_floor_rel`` x the baseline): noise never counts.

Each score is calibrated on the series itself: it is divided by the largest score of its
kind over the previous ``window`` points, so a point is flagged when one score beats
``threshold`` x every recent one ("larger than anything in the last week"). That makes
one parameter set hold across series of any scale and noise, with no fitting. A score that
beats its record by little counts only in a new context (contextOSE's idea, from the points
so far): where the bins of the last three values (``context_bins`` between the 1st and
99th percentiles of the window) were already the context of a point within the window, it
must beat ``context_margin`` x the threshold. A flag is dropped where the value lies within
the range of its hour of the week over the ``hour_of_week_weeks`` weeks before. After a
flag, ``cooldown`` points raise no new one (unless a score beats ``escalation`` x the
threshold, or the re-arm ends the cooldown: both off in the preset). A score that raised a
flag stays the record of its kind for ``flag_memory`` points, also once it has left the
window: a repeat of a flagged anomaly, no larger, is not flagged again.

The detector consumes points in chunks with numpy (:meth:`EnsembleDetector.detect`); the
result is the same however the points are split into chunks, one at a time included, and
a decision for a point uses only the points before it (and the point itself). State is
bounded by ``window`` points of eleven series, ``season_window`` points per hour, the
points of the last ``forecast_lag_s`` (at most ``LAG_LOOKBACK``) and the scores of the
flags of the last ``flag_memory`` points, where each of the ``context_bins`` ** 3
contexts was last seen, and the range of each hour of the last ``hour_of_week_weeks`` weeks.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from datetime import datetime
from typing import Literal, NamedTuple

import numpy as np
import numpy.typing as npt

from slo.anomaly.config import EnsembleConfig

Floats = npt.NDArray[np.float64]
EnsembleKind = Literal["spike", "seasonal", "shift", "burst", "forecast", "pattern"]
KINDS: tuple[EnsembleKind, ...] = ("spike", "seasonal", "shift", "burst", "forecast", "pattern")
MAD_TO_SIGMA = 1.4826
SCALE_FLOOR = 1e-9
FORECAST_MIN_ROWS = 30
"""Points with all their inputs a forecast's fit needs (its four coefficients)."""
CONTEXT_ORDER = 3
"""Values in a context (contextOSE's idea: the bins of the last three values)."""
LAG_LOOKBACK = 20_000
"""Points searched back for the forecast's seasonal value (a day of points sampled every 5 s)."""
HOURS_PER_WEEK = 168
_SPIKE, _SEASONAL, _SHIFT, _BURST, _FORECAST, _PATTERN = range(6)


class Scores(NamedTuple):
    """Per-point scores (arrays, one entry per point).

    The records they are calibrated on include the scores of earlier flags still
    remembered (``flag_memory``), so they depend on the threshold and the cooldown; a
    point is flagged where ``score`` exceeds the threshold outside the cooldown.
    """

    score: Floats  # the largest of the calibrated scores (over the context's margin where the
    # context is familiar); 0 before min_history
    kind: npt.NDArray[np.int64]  # index into KINDS of that score
    expected: Floats  # the baseline (for a shift: the long median)
    lower: Floats  # the range the value (for a shift: the recent level) could take without
    upper: Floats  # beating the record


class EnsembleDecision(NamedTuple):
    """The verdict on one point, shaped like :class:`~slo.anomaly.detector.Decision`."""

    is_anomaly: bool
    score: float
    expected: float | None
    lower: float | None
    upper: float | None
    kind: EnsembleKind | None


class Verdicts(NamedTuple):
    """Per-point verdicts of :meth:`EnsembleDetector.detect`."""

    flagged: npt.NDArray[np.bool_]
    scores: Scores


def flag_with_cooldown(
    score: Floats, threshold: float, cooldown: int, cool: int = 0
) -> tuple[npt.NDArray[np.bool_], int]:
    """Points whose score exceeds ``threshold``, none within ``cooldown`` after a flag.

    ``cool`` is the number of points still cooling at the start; the one left at the end
    is returned with the flags, to carry into the next chunk.
    """
    flagged = np.zeros(len(score), dtype=np.bool_)
    nxt = cool  # first index allowed to flag
    for i in np.flatnonzero(score > threshold).tolist():
        if i >= nxt:
            flagged[i] = True
            nxt = i + cooldown + 1
    return flagged, max(nxt - len(score), 0)


def _prev_max(a: Floats, window: int, start: int) -> Floats:
    """``max(a[p - window : p])`` for ``p`` in ``[start, len(a))``; ``-inf`` with nothing before.

    van Herk / Gil-Werman: block prefix and suffix maxima, O(n) whatever the window.
    """
    b = np.concatenate([np.full(window, -np.inf), a])
    pad = (-len(b)) % window
    blocks = np.concatenate([b, np.full(pad, -np.inf)]).reshape(-1, window)
    prefix = np.maximum.accumulate(blocks, axis=1).ravel()
    suffix = np.maximum.accumulate(blocks[:, ::-1], axis=1)[:, ::-1].ravel()
    p = np.arange(start, len(a))
    # Window of p in b coordinates: b[p : p + window].
    return np.maximum(suffix[p], prefix[p + window - 1])


def _row_medians(rows: Floats) -> Floats:
    """``np.median(rows, axis=1)`` of a fresh array, partitioned in place (several times faster)."""
    n = rows.shape[1]
    if n % 2:
        rows.partition(n // 2, axis=1)
        return rows[:, n // 2]
    rows.partition((n // 2 - 1, n // 2), axis=1)
    return np.asarray((rows[:, n // 2 - 1] + rows[:, n // 2]) / 2.0)


def _row_percentiles(rows: Floats, q: float) -> Floats:
    """``np.percentile(rows, [q, 100 - q], axis=1).T`` of a fresh array, partitioned in place."""
    n = rows.shape[1]
    at = np.array([q, 100.0 - q]) / 100.0 * (n - 1)
    lo = np.floor(at).astype(np.int64)
    hi = np.minimum(lo + 1, n - 1)
    rows.partition(sorted({*lo.tolist(), *hi.tolist()}), axis=1)
    frac = at - lo
    return np.asarray(rows[:, lo] * (1.0 - frac) + rows[:, hi] * frac)


def _medians_before(a: Floats, positions: npt.NDArray[np.int64], window: int) -> Floats:
    """``median(a[max(0, p - window) : p])`` for each ``p`` (each > 0)."""
    out = np.empty(len(positions))
    full = positions >= window
    if full.any():
        views = np.lib.stride_tricks.sliding_window_view(a, window)
        out[full] = _row_medians(views[positions[full] - window])  # fancy indexing copies
    for q in np.flatnonzero(~full).tolist():
        out[q] = np.median(a[: positions[q]])
    return out


def _trailing_medians(a: Floats, first: int, width: int) -> Floats:
    """``median(a[max(0, p - width + 1) : p + 1])`` for ``p`` in ``[first, len(a))``."""
    positions = np.arange(first, len(a))
    return _medians_before(a, positions + 1, width)


def _calibrated(raw: Floats, records: Floats, floors: Floats) -> Floats:
    """Each score over the larger of its record and its noise floor; 0 within the floor."""
    with np.errstate(divide="ignore", invalid="ignore", over="ignore"):
        return np.where(raw > floors, raw / np.maximum(records, floors), 0.0)


class EnsembleDetector:
    """Streaming ensemble detector for one series (see the module docstring)."""

    def __init__(self, config: EnsembleConfig | None = None) -> None:
        self.config = config or EnsembleConfig()
        self.reset()

    def reset(self) -> None:
        """Forget everything, as if newly created."""
        self._n = 0
        self._t0: float | None = None
        self._x: Floats = np.empty(0)
        self._err: Floats = np.empty(0)
        self._spike: Floats = np.empty(0)
        self._shift: Floats = np.empty(0)
        self._burst: Floats = np.empty(0)
        self._median = 0.0
        self._error_median = 0.0
        self._hours: dict[int, Floats] = {}
        self._cool = 0
        # Scores of recent flags, each the record of its kind for flag_memory points:
        # (kind index in the order of _calibrated, absolute point number, score).
        self._remembered: list[tuple[int, int, float]] = []
        # The forecast: inputs per point (previous value, the one before, the seasonal
        # value; NaN where missing), its errors and their records, the coefficients.
        self._inputs: Floats = np.empty((0, 3))
        self._ferr: Floats = np.empty(0)
        self._fspike: Floats = np.empty(0)
        self._pattern: Floats = np.empty(0)
        self._ferr_median = 0.0
        # The long pattern: which points had a forecast, its scores and their median.
        self._known: npt.NDArray[np.bool_] = np.empty(0, dtype=np.bool_)
        self._long: Floats = np.empty(0)
        self._long_median = 0.0
        # The context: the bins' range, the last bins, and where each context was last seen.
        self._ctx_range: tuple[float, float] | None = None
        self._ctx_codes: npt.NDArray[np.int64] = np.empty(0, dtype=np.int64)
        self._ctx_seen: npt.NDArray[np.int64] = np.full(
            self.config.context_bins ** CONTEXT_ORDER, np.iinfo(np.int64).min // 2, dtype=np.int64)
        self._fit: Floats = np.full(6, np.nan)  # c0..c3, reference, scale
        self._lag_t: Floats = np.empty(0)  # running maximum of the times (for the lag)
        self._lag_x: Floats = np.empty(0)
        self._t_max = -math.inf
        self._first_forecast = math.inf  # time (running maximum) of the first forecast
        self._x0: float | None = None  # the first value: the origin of the fits' sums
        # The last flag (absolute point number), the run of low scores since (re-arm), and
        # the range of the values of each hour (hours since the epoch) of the last weeks.
        self._last_flag = -(1 << 62)
        self._low_run = 0
        self._hour_ranges: dict[int, tuple[float, float]] = {}

    def __len__(self) -> int:
        """Points learnt so far."""
        return self._n

    def update(self, at: datetime, value: float) -> EnsembleDecision:
        """One point (slow: use :meth:`detect` for many); a non-finite value is not judged."""
        verdicts = self.detect(np.array([at.timestamp()]), np.array([float(value)]))
        s = verdicts.scores
        if not math.isfinite(value):
            return EnsembleDecision(False, 0.0, None, None, None, None)
        flagged = bool(verdicts.flagged[0])
        return EnsembleDecision(flagged, float(s.score[0]), float(s.expected[0]),
                                float(s.lower[0]), float(s.upper[0]),
                                KINDS[int(s.kind[0])] if flagged else None)

    def detect(self, times: Sequence[float] | Floats, values: Sequence[float] | Floats) -> Verdicts:
        """Judge a chunk of points (Unix seconds, values) in order, then learn from it.

        Non-finite values are not judged (score 0, no expected value) and not learnt.
        """
        t = np.asarray(times, dtype=np.float64)
        v = np.asarray(values, dtype=np.float64)
        finite = np.isfinite(v)
        if finite.all():
            return self._judge(t, v)
        part = self._judge(t[finite], v[finite])
        scores = Scores(*(self._spread(a, finite) for a in part.scores))  # type: ignore[arg-type]
        scores.score[~finite] = 0.0
        return Verdicts(self._spread(part.flagged, finite).astype(np.bool_), scores)

    @staticmethod
    def _spread(a: npt.NDArray[np.generic], where: npt.NDArray[np.bool_]) -> npt.NDArray[np.generic]:
        out = np.zeros(len(where), dtype=a.dtype)
        if a.dtype.kind == "f":
            out[~where] = np.nan
        out[where] = a
        return out

    def scores(self, t: Floats, v: Floats) -> Scores:
        """Scores of a chunk of finite points; learns from them (and from their flags)."""
        return self._judge(t, v).scores

    def _judge(self, t: Floats, v: Floats) -> Verdicts:
        """Verdicts on a chunk of finite points; learns from them."""
        m = len(v)
        if m == 0:
            empty = np.empty(0)
            return Verdicts(np.zeros(0, dtype=np.bool_),
                            Scores(empty, np.empty(0, dtype=np.int64), empty, empty, empty))
        cfg = self.config
        if self._t0 is None:
            self._t0 = float(t[0])
        n0, h = self._n, len(self._x)
        idx = n0 + np.arange(m)  # absolute point numbers
        x = np.concatenate([self._x, v])
        pos = h + np.arange(m)  # positions of the chunk in x

        # The long median, recomputed at the first points and every recompute_every-th.
        recompute = (idx < cfg.recompute_every) | (idx % cfg.recompute_every == 0)
        median = self._held(x, pos, recompute, cfg.window, self._median, first=v[0])
        seasonal, center = self._center(t, v, median)
        err = np.abs(v - center)
        errs = np.concatenate([self._err, err])
        error_median = self._held(errs, pos, recompute, cfg.window, self._error_median, first=0.0)
        scale = np.maximum(np.maximum(MAD_TO_SIGMA * error_median, cfg.scale_floor_rel * np.abs(center)),
                           SCALE_FLOOR)

        # Records are kept from min_history on: the first points' scores rest on a
        # baseline of a handful of points and would set records nothing could beat.
        warm = idx < cfg.min_history
        spikes = np.concatenate([self._spike, np.where(warm, 0.0, err)])
        spike_record = _prev_max(spikes, cfg.window, h)
        level = _trailing_medians(x, h, cfg.level_window)
        shift = np.where(warm, 0.0, np.abs(level - median))
        shifts = np.concatenate([self._shift, shift])
        shift_record = _prev_max(shifts, cfg.window, h)
        csum = np.concatenate([[0.0], np.cumsum(errs)])
        lo = np.maximum(pos + 1 - cfg.level_window, 0)
        burst = np.where(warm, 0.0, (csum[pos + 1] - csum[lo]) / (pos + 1 - lo))
        bursts = np.concatenate([self._burst, burst])
        burst_record = _prev_max(bursts, cfg.window, h)

        floor = cfg.z_min * scale

        # The forecast's error and its mean over level_window, judged the same way against
        # their own scale and records; no score where there is no forecast yet.
        forecast, t_max = self._forecast(t, v, x, pos, idx, median, scale)
        known = ~np.isnan(forecast)
        ferr = np.where(known, np.abs(v - forecast), 0.0)
        # The first day of forecasts (forecast_lag_s) only sets the records: a record of a
        # few hours of errors would be beaten by the first ordinary daily swing.
        if known.any() and math.isinf(self._first_forecast):
            self._first_forecast = float(t_max[np.argmax(known)])
        fwarm = ~known | (t_max - self._first_forecast < cfg.forecast_lag_s)
        ferrs = np.concatenate([self._ferr, ferr])
        ferr_median = self._held(ferrs, pos, recompute, cfg.window, self._ferr_median, first=0.0)
        ffloor = cfg.z_min * np.maximum(
            np.maximum(MAD_TO_SIGMA * ferr_median, cfg.scale_floor_rel * np.abs(center)), SCALE_FLOOR)
        ffloor = np.where(known & ~fwarm, ffloor, np.inf)
        fspikes = np.concatenate([self._fspike, np.where(warm, 0.0, ferr)])
        fspike_record = _prev_max(fspikes, cfg.window, h)
        fsum = np.concatenate([[0.0], np.cumsum(ferrs)])
        pattern = np.where(warm, 0.0, (fsum[pos + 1] - fsum[lo]) / (pos + 1 - lo))
        patterns = np.concatenate([self._pattern, pattern])
        pattern_record = _prev_max(patterns, cfg.window, h)

        # Every score must stand out from the noise, and beat its record (with the scores of
        # flags still remembered); with no record yet (a flat series), the noise floor is
        # the bar.
        raw_rows = [err, shift, burst, ferr, pattern]
        floor_rows = [floor, floor, floor, ffloor, ffloor]
        record_rows = [spike_record, shift_record, burst_record, fspike_record, pattern_record]
        if cfg.pattern_long_window:
            long, long_floor, long_record = self._long_pattern(ferrs, known, pos, recompute, warm,
                                                               center)
            raw_rows.append(long)
            floor_rows.append(long_floor)
            record_rows.append(long_record)
        raw, floors, records = np.stack(raw_rows), np.stack(floor_rows), np.stack(record_rows)
        # Where the recent context was seen within the window, a score must beat its record
        # by context_margin: the score reported is divided by it there.
        margin = self._context_margin(x, v, pos, idx, recompute)
        stacked = _calibrated(raw, records, floors)
        score = stacked.max(axis=0) / margin
        score[idx < cfg.min_history] = 0.0
        flagged, memory = self._flag(raw, records, floors, score, margin, n0, t, v)
        if memory is not None:
            records = np.maximum(records, memory)
            spike_record, shift_record, fspike_record = records[0], records[1], records[3]
            stacked = _calibrated(raw, records, floors)
            score = stacked.max(axis=0) / margin
            score[idx < cfg.min_history] = 0.0
        # The reason named: a baseline score that flags on its own (a spike is a spike, even
        # if also off the forecast), else the largest.
        best = np.argmax(stacked[:3], axis=0)
        best = np.where(stacked[best, np.arange(m)] > cfg.threshold, best,
                        np.argmax(stacked, axis=0))
        bar = cfg.threshold * margin
        band = np.maximum(bar * np.maximum(spike_record, 0.0), floor)
        # A seasonal deviation: off its hour's baseline, yet within the series' recent range.
        ordinary = (v <= _prev_max(x, cfg.window, h)) & (-v <= _prev_max(-x, cfg.window, h))
        kind = np.select([best == 1, best == 2, best == 3, best >= 4, seasonal & ordinary],
                         [_SHIFT, _BURST, _FORECAST, _PATTERN, _SEASONAL], _SPIKE).astype(np.int64)

        # A shift is judged on the recent level against the long median: that is its range;
        # a forecast error and a pattern on the forecast and its record.
        is_shift, is_forecast = best == 1, best >= 3
        expected = np.where(is_shift, median, np.where(is_forecast, forecast, center))
        fband = np.maximum(bar * np.maximum(fspike_record, 0.0), ffloor)
        band = np.select([is_shift, is_forecast], [bar * np.maximum(shift_record, 0.0), fband], band)

        self._remember(x, errs, spikes, shifts, bursts, median, error_median, m)
        self._ferr, self._fspike = ferrs[-cfg.window:], fspikes[-cfg.window:]
        self._pattern, self._ferr_median = patterns[-cfg.window:], float(ferr_median[-1])
        return Verdicts(flagged, Scores(score, kind, expected, expected - band, expected + band))

    def _flag(self, raw: Floats, records: Floats, floors: Floats, score: Floats, margin: Floats,
              n0: int, t: Floats, v: Floats) -> tuple[npt.NDArray[np.bool_], Floats | None]:
        """Flags of a chunk, and the scores of flags still remembered at each of its points.

        ``raw``, ``records`` and ``floors``: one row per score kind; ``score`` the largest
        calibrated score without the memory, divided by the context's ``margin`` (the
        memory only raises the bar, so the points above the threshold are the only
        candidates). Each flag's scores above the threshold become the records of their
        kinds for ``flag_memory`` points. Inside a cooldown a score above ``escalation`` x
        the threshold flags again; the cooldown ends early once the score stayed below
        ``rearm_below`` for ``rearm_points`` points; a flag is dropped where the value is
        usual for its hour of the week. Returns ``None`` for the memory when there is none
        beyond the window's records.
        """
        cfg = self.config
        m = len(score)
        remember = cfg.flag_memory > cfg.window  # else the window's records already hold them
        flagged = np.zeros(m, dtype=np.bool_)
        nxt = self._cool  # first point allowed to flag (without escalation)
        last = self._last_flag - n0  # the last flag, relative to the chunk
        rearmed = self._rearm_points(score) if cfg.rearm_below else None
        if rearmed is not None and nxt > 0:
            nxt = min(nxt, self._rearm_end(rearmed, last))
        hours = np.floor(t / 3600.0).astype(np.int64) if cfg.hour_of_week_weeks else None
        for i in np.flatnonzero(score > cfg.threshold).tolist():
            factor = 1.0
            if i < nxt:
                if not cfg.escalation or i - last < cfg.escalation_after:
                    continue
                factor = cfg.escalation
            at = n0 + i
            parts = _calibrated(raw[:, i], self._bar(records[:, i], at), floors[:, i])
            if parts.max() <= cfg.threshold * margin[i] * factor:
                continue
            if hours is not None and self._usual_for_hour(hours, v, i):
                continue
            flagged[i] = True
            last = i
            nxt = i + cfg.cooldown + 1
            if rearmed is not None:
                nxt = min(nxt, self._rearm_end(rearmed, i))
            if remember:
                self._remembered += [(k, at, float(raw[k, i]))
                                     for k in np.flatnonzero(parts > cfg.threshold).tolist()]
        if hours is not None:
            self._learn_hours(hours, v)
        self._last_flag = n0 + last
        self._cool = max(nxt - m, 0)
        if not remember or not self._remembered:
            return flagged, None
        memory = np.zeros_like(records)
        for k, at, value in self._remembered:  # the points (at, at + flag_memory] hold it
            lo, hi = max(at + 1 - n0, 0), min(at + cfg.flag_memory + 1 - n0, m)
            if lo < hi:
                np.maximum(memory[k, lo:hi], value, out=memory[k, lo:hi])
        end = n0 + m  # the next chunk's first point
        self._remembered = [r for r in self._remembered if end - r[1] <= cfg.flag_memory]
        return flagged, memory

    def _rearm_points(self, score: Floats) -> npt.NDArray[np.int64]:
        """The points of the chunk that end ``rearm_points`` scores in a row below
        ``rearm_below`` (the run carried over from earlier chunks); learns the run."""
        cfg = self.config
        low = score < cfg.rearm_below
        at = np.arange(len(score))
        broken = np.maximum.accumulate(np.where(low, -1, at))  # the last point not low
        run = np.where(broken >= 0, at - broken, at + 1 + self._low_run)
        self._low_run = min(int(run[-1]), cfg.rearm_points)
        return np.flatnonzero(run >= cfg.rearm_points)

    def _rearm_end(self, rearmed: npt.NDArray[np.int64], flag: int) -> int:
        """The first point allowed to flag after a flag at ``flag`` (relative to the chunk)
        by the re-arm: the point after the first run of low scores wholly after the flag."""
        k = int(np.searchsorted(rearmed, flag + self.config.rearm_points))
        return int(rearmed[k]) + 1 if k < len(rearmed) else 1 << 62

    def _usual_for_hour(self, hours: npt.NDArray[np.int64], v: Floats, i: int) -> bool:
        """Whether ``v[i]`` lies within the range of the values of its hour of the week in
        the ``hour_of_week_weeks`` weeks before (from earlier chunks and this one)."""
        same = hours[i] - HOURS_PER_WEEK * np.arange(1, self.config.hour_of_week_weeks + 1)
        lo, hi = math.inf, -math.inf
        for hour in same.tolist():
            if hour in self._hour_ranges:
                a, b = self._hour_ranges[hour]
                lo, hi = min(lo, a), max(hi, b)
        before = v[:i][np.isin(hours[:i], same)]
        if len(before):
            lo, hi = min(lo, float(before.min())), max(hi, float(before.max()))
        return lo <= float(v[i]) <= hi

    def _learn_hours(self, hours: npt.NDArray[np.int64], v: Floats) -> None:
        """The range of the values of each hour, for ``hour_of_week_weeks`` weeks."""
        unique, inverse = np.unique(hours, return_inverse=True)
        lows, highs = np.full(len(unique), np.inf), np.full(len(unique), -np.inf)
        np.minimum.at(lows, inverse, v)
        np.maximum.at(highs, inverse, v)
        ranges = self._hour_ranges
        for hour, a, b in zip(unique.tolist(), lows.tolist(), highs.tolist(), strict=True):
            was = ranges.get(hour)
            ranges[hour] = (min(a, was[0]), max(b, was[1])) if was else (a, b)
        oldest = max(ranges) - HOURS_PER_WEEK * self.config.hour_of_week_weeks
        if min(ranges) < oldest:
            self._hour_ranges = {h: r for h, r in ranges.items() if h >= oldest}

    def _long_pattern(self, ferrs: Floats, known: npt.NDArray[np.bool_], pos: npt.NDArray[np.int64],
                      recompute: npt.NDArray[np.bool_], warm: npt.NDArray[np.bool_],
                      center: Floats) -> tuple[Floats, Floats, Floats]:
        """The long pattern score of a chunk, its noise floor and its records; learns them.

        The mean absolute forecast error over the last ``pattern_long_window`` points, scored
        only once all of them had a forecast (0 before). Unlike the short pattern, it is not
        held back for the forecast's first day: its floor is ``z_min`` robust sigmas of its
        own values (1.4826 x their median over the window), and its records are its own, so
        a fresh fit's larger errors raise its bar rather than flag. A slow departure from the
        series' recent and daily pattern, too gradual for the shorter scores, beats them.
        """
        cfg = self.config
        width = min(cfg.pattern_long_window, cfg.window)
        knowns = np.concatenate([self._known, known])
        counts = np.concatenate([[0], np.cumsum(knowns)])
        fsum = np.concatenate([[0.0], np.cumsum(ferrs)])
        lo = np.maximum(pos + 1 - width, 0)
        count = counts[pos + 1] - counts[lo]
        need = min(cfg.pattern_long_min, width) if cfg.pattern_long_min else width
        ready = (count >= need) & ~warm
        long = np.where(ready, (fsum[pos + 1] - fsum[lo]) / np.maximum(count, 1), 0.0)
        longs = np.concatenate([self._long, long])
        median = self._held(longs, pos, recompute, cfg.window, self._long_median, first=0.0)
        floor = cfg.z_min * np.maximum(
            np.maximum(MAD_TO_SIGMA * median, cfg.scale_floor_rel * np.abs(center)), SCALE_FLOOR)
        record = _prev_max(longs, cfg.window, len(self._long))
        self._known, self._long = knowns[-cfg.window:], longs[-cfg.window:]
        self._long_median = float(median[-1])
        return long, floor, record

    def _context_margin(self, x: Floats, v: Floats, pos: npt.NDArray[np.int64],
                        idx: npt.NDArray[np.int64],
                        recompute: npt.NDArray[np.bool_]) -> Floats:
        """Per point: 1 where the context is new (or not used), else ``context_margin``; learns.

        contextOSE's idea, from the points so far only: each value is binned in
        ``context_bins`` between the 1st and 99th percentiles of the ``window`` points before
        the last recompute point (values beyond them fall in the end bins); the context of a
        point is the bins of its last ``CONTEXT_ORDER`` values; it is new when it was not the
        context of any of the ``window`` points before.
        """
        cfg = self.config
        m = len(v)
        bins = cfg.context_bins
        if not bins or cfg.context_margin == 1.0:
            return np.ones(m)
        at = np.flatnonzero(recompute & (pos > 0))
        ranges = np.full((m, 2), np.nan)
        full = pos[at] >= cfg.window
        if full.any():
            rows = np.lib.stride_tricks.sliding_window_view(x, cfg.window)[pos[at[full]] - cfg.window]
            ranges[at[full]] = _row_percentiles(rows, cfg.context_quantile)  # fancy indexing copies
        for q in at[~full].tolist():
            ranges[q] = np.percentile(x[:pos[q]], [cfg.context_quantile, 100.0 - cfg.context_quantile])
        if self._ctx_range is None:  # the first point: its own range
            ranges[0] = (v[0], v[0])
        held = np.where(~np.isnan(ranges[:, 0]), np.arange(m), -1)
        np.maximum.accumulate(held, out=held)
        before = np.array(self._ctx_range if self._ctx_range is not None else (np.nan, np.nan))
        ranges = np.where((held >= 0)[:, None], ranges[np.maximum(held, 0)], before[None, :])
        self._ctx_range = (float(ranges[-1, 0]), float(ranges[-1, 1]))
        lo, span = ranges[:, 0], ranges[:, 1] - ranges[:, 0]
        with np.errstate(divide="ignore", invalid="ignore", over="ignore"):
            where = np.where(span > 0, np.clip((v - lo) / span, 0.0, 1.0), 0.0)
        codes = np.concatenate([self._ctx_codes, (where * (bins - 1)).astype(np.int64)])
        self._ctx_codes = codes[-(CONTEXT_ORDER - 1):]
        new = np.ones(m, dtype=np.bool_)
        first = len(codes) - m  # codes before the chunk (at most CONTEXT_ORDER - 1)
        k = np.arange(m) + first - (CONTEXT_ORDER - 1)  # the context's first code, per point
        has = k >= 0
        if has.any():
            key = np.zeros(int(has.sum()), dtype=np.int64)
            for j in range(CONTEXT_ORDER):
                key = key * bins + codes[k[has] + j]
            point = idx[has]
            order = np.argsort(key, kind="stable")
            ks, ps = key[order], point[order]
            prev = self._ctx_seen[ks]
            same = np.r_[False, ks[1:] == ks[:-1]]
            prev[same] = ps[:-1][same[1:]]
            seen = np.empty(len(ks), dtype=np.bool_)
            seen[order] = ps - prev <= cfg.window
            new[has] = ~seen
            last = np.r_[ks[1:] != ks[:-1], True]  # the latest point of each context
            self._ctx_seen[ks[last]] = ps[last]
        return np.where(new, 1.0, cfg.context_margin)

    def _bar(self, records: Floats, at: int) -> Floats:
        """The records of one point raised to the scores of flags remembered there."""
        bar = records.copy()
        for k, flagged_at, value in self._remembered:
            if at - flagged_at <= self.config.flag_memory:
                bar[k] = max(bar[k], value)
        return bar

    def _forecast(self, t: Floats, v: Floats, x: Floats, pos: npt.NDArray[np.int64],
                  idx: npt.NDArray[np.int64], median: Floats,
                  scale: Floats) -> tuple[Floats, Floats]:
        """One-step forecasts of the chunk (NaN where none) and the running maximum of its
        times; learns the fits' inputs.

        The inputs of a point: the two values before it and its seasonal value, the latest
        point at least ``forecast_lag_s`` older (times taken as their running maximum, so
        rows that step back in time keep the search in order). At every
        ``recompute_every``-th point the coefficients are fitted by least squares on the
        previous ``window`` points that have all their inputs, each input and target
        centred on the long median and divided by the robust scale at the fit.
        """
        cfg = self.config
        m = len(v)
        assert self._t0 is not None
        t_max = np.maximum.accumulate(np.concatenate([[self._t_max], t]))[1:]
        lag_t = np.concatenate([self._lag_t, t_max])
        lag_x = np.concatenate([self._lag_x, v])
        at = len(self._lag_t) + np.arange(m)
        key = t_max - cfg.forecast_lag_s
        found = np.maximum(np.searchsorted(lag_t, key, side="right") - 1, at - LAG_LOOKBACK)
        seasonal = np.where(key >= self._t0, lag_x[np.maximum(found, 0)], np.nan)
        keep = max(int(np.searchsorted(lag_t, key[-1], side="right")) - 1, len(lag_t) - LAG_LOOKBACK, 0)
        self._lag_t, self._lag_x, self._t_max = lag_t[keep:], lag_x[keep:], float(t_max[-1])

        previous = np.where(pos >= 1, x[np.maximum(pos - 1, 0)], np.nan)
        before = np.where(pos >= 2, x[np.maximum(pos - 2, 0)], np.nan)
        inputs = np.concatenate([self._inputs, np.stack([previous, before, seasonal], axis=1)])
        self._inputs = inputs[-cfg.window:]
        if not cfg.forecast:
            return np.full(m, np.nan), t_max

        # Fits at the refit points, on rows [p - window, p) with every input: the sums of
        # products of (1, inputs, value), relative to the first value, as differences of
        # running sums; then centred on the long median and scaled at the fit.
        refit = np.flatnonzero(idx % cfg.recompute_every == 0)
        fits = np.full((len(refit), 6), np.nan)
        if len(refit):
            if self._x0 is None:
                self._x0 = float(v[0])
            complete = ~np.isnan(inputs).any(axis=1)
            u = np.column_stack([np.ones(len(x)), inputs - self._x0, x - self._x0])
            u[~complete] = 0.0
            sums = np.concatenate([np.zeros((1, 5, 5)),
                                   np.cumsum(u[:, :, None] * u[:, None, :], axis=0)])
            p = pos[refit]
            g = sums[p] - sums[np.maximum(p - cfg.window, 0)]  # (k, 5, 5)
            ref, sc = median[refit], scale[refit]
            d = ref - self._x0
            to_z = np.zeros((len(refit), 4, 4))  # z = u @ to_z: (1, (inputs - ref) / scale)
            to_z[:, 0, 0] = 1.0
            to_z[:, 0, 1:] = -(d / sc)[:, None]
            to_z[:, 1:, 1:] = np.eye(3)[None] / sc[:, None, None]
            gram = np.einsum("kai,kab,kbj->kij", to_z, g[:, :4, :4], to_z)
            moment = np.einsum("kai,ka->ki", to_z,
                               (g[:, :4, 4] - d[:, None] * g[:, :4, 0]) / sc[:, None])
            coef = np.einsum("kij,kj->ki", np.linalg.pinv(gram, rcond=1e-10, hermitian=True), moment)
            ok = g[:, 0, 0] >= FORECAST_MIN_ROWS
            fits[ok] = np.column_stack([coef, ref, sc])[ok]
        # Each point uses the last fit at or before it (from an earlier chunk at first).
        last = np.full(m, -1)
        last[refit] = np.arange(len(refit))
        np.maximum.accumulate(last, out=last)
        fit = np.concatenate([self._fit[None, :], fits])[last + 1]
        if len(refit):
            self._fit = fits[-1]
        ref, sc = fit[:, 4], fit[:, 5]
        z_in = (inputs[-m:] - ref[:, None]) / sc[:, None]
        return np.asarray(ref + sc * (fit[:, 0] + np.einsum("ki,ki->k", fit[:, 1:4], z_in))), t_max

    def _held(self, a: Floats, pos: npt.NDArray[np.int64], recompute: npt.NDArray[np.bool_],
              window: int, held: float, first: float) -> Floats:
        """Median of the ``window`` points before each recompute point, held in between."""
        out = np.empty(len(pos))
        at = np.flatnonzero(recompute & (pos > 0))
        out[at] = _medians_before(a, pos[at], window)
        if self._n == 0:
            out[0] = first  # no history: the first point is its own baseline
            recompute = recompute.copy()
            recompute[0] = True
        # Forward-fill from the last recompute point (or the value held from earlier chunks).
        last = np.where(recompute, np.arange(len(pos)), -1)
        np.maximum.accumulate(last, out=last)
        return np.where(last >= 0, out[np.maximum(last, 0)], held)

    def _center(self, t: Floats, v: Floats, median: Floats) -> tuple[npt.NDArray[np.bool_], Floats]:
        """The per-hour baseline where it applies, else the long median."""
        cfg = self.config
        assert self._t0 is not None
        hour_median = np.full(len(v), np.nan)
        hours = (np.floor(t / 3600.0) % 24).astype(np.int64)
        keep = cfg.season_window
        for hour in np.unique(hours).tolist():
            rows = np.flatnonzero(hours == hour)
            past = self._hours.get(hour, np.empty(0))
            series = np.concatenate([past, v[rows]])
            at = len(past) + np.arange(len(rows))
            enough = np.minimum(at, keep) >= cfg.season_min_points
            if enough.any():
                hour_median[rows[enough]] = _medians_before(series, at[enough], keep)
            self._hours[hour] = series[-keep:]
        on = (t - self._t0 >= cfg.season_min_days * 86400.0) & ~np.isnan(hour_median)
        return on, np.where(on, hour_median, median)

    def _remember(self, x: Floats, errs: Floats, spikes: Floats, shifts: Floats, bursts: Floats,
                  median: Floats, error_median: Floats, m: int) -> None:
        keep = self.config.window
        self._x, self._err, self._spike = x[-keep:], errs[-keep:], spikes[-keep:]
        self._shift, self._burst = shifts[-keep:], bursts[-keep:]
        self._median, self._error_median = float(median[-1]), float(error_median[-1])
        self._n += m
