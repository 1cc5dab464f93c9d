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
  unusual values, a change of variance).

Each must be at least ``z_min`` robust sigmas (1.4826 x the median absolute error of the
last ``window`` points, floored at ``scale_floor_rel`` x the baseline): noise never counts.

Each score is calibrated on the series itself: it is divided by the largest score of its
kind over the previous ``window`` points, so a point is flagged when one score beats
``threshold`` x every recent one ("larger than anything in the last week"). That makes
one parameter set hold across series of any scale and noise, with no fitting. After a
flag, ``cooldown`` points raise no new one.

The detector consumes points in chunks with numpy (:meth:`EnsembleDetector.detect`); the
result is the same however the points are split into chunks, one at a time included, and
a decision for a point uses only the points before it (and the point itself). State is
bounded by ``window`` points of four series plus ``season_window`` points per hour.
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
EnsembleKind = Literal["spike", "seasonal", "shift", "burst"]
KINDS: tuple[EnsembleKind, ...] = ("spike", "seasonal", "shift", "burst")
MAD_TO_SIGMA = 1.4826
SCALE_FLOOR = 1e-9
_SPIKE, _SEASONAL, _SHIFT, _BURST = range(4)


class Scores(NamedTuple):
    """Per-point scores before the threshold and cooldown (arrays, one entry per point)."""

    score: Floats  # the largest of the three calibrated scores; 0 before min_history
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


def _medians_before(a: Floats, positions: npt.NDArray[np.int64], window: int) -> Floats:
    """``median(a[max(0, p - window) : p])`` for each ``p`` (each > 0)."""
    out = np.empty(len(positions))
    full = positions >= window
    if full.any():
        views = np.lib.stride_tricks.sliding_window_view(a, window)
        out[full] = np.median(views[positions[full] - window], axis=1)
    for q in np.flatnonzero(~full).tolist():
        out[q] = np.median(a[: positions[q]])
    return out


def _trailing_medians(a: Floats, first: int, width: int) -> Floats:
    """``median(a[max(0, p - width + 1) : p + 1])`` for ``p`` in ``[first, len(a))``."""
    positions = np.arange(first, len(a))
    return _medians_before(a, positions + 1, width)


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
            scores = self.scores(t, v)
        else:
            part = self.scores(t[finite], v[finite])
            scores = Scores(*(self._spread(a, finite) for a in part))  # type: ignore[arg-type]
            scores.score[~finite] = 0.0
        cfg = self.config
        flagged, self._cool = flag_with_cooldown(scores.score, cfg.threshold, cfg.cooldown,
                                                 self._cool)
        return Verdicts(flagged, scores)

    @staticmethod
    def _spread(a: npt.NDArray[np.generic], where: npt.NDArray[np.bool_]) -> npt.NDArray[np.generic]:
        out = np.zeros(len(where), dtype=a.dtype)
        if a.dtype.kind == "f":
            out[~where] = np.nan
        out[where] = a
        return out

    def scores(self, t: Floats, v: Floats) -> Scores:
        """Scores of a chunk of finite points (no threshold, no cooldown); learns from them."""
        m = len(v)
        if m == 0:
            empty = np.empty(0)
            return Scores(empty, np.empty(0, dtype=np.int64), empty, empty, empty)
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

        # Every score must stand out from the noise, and beat its record; with no record
        # yet (a flat series), the noise floor is the bar.
        floor = cfg.z_min * scale
        with np.errstate(divide="ignore", invalid="ignore", over="ignore"):
            spike_score = np.where(err > floor, err / np.maximum(spike_record, floor), 0.0)
            shift_score = np.where(shift > floor, shift / np.maximum(shift_record, floor), 0.0)
            burst_score = np.where(burst > floor, burst / np.maximum(burst_record, floor), 0.0)
        stacked = np.stack([spike_score, shift_score, burst_score])
        best = np.argmax(stacked, axis=0)
        score = stacked[best, np.arange(m)]
        score[idx < cfg.min_history] = 0.0
        band = np.maximum(cfg.threshold * np.maximum(spike_record, 0.0), floor)
        # A seasonal deviation: off its hour's baseline, yet within the series' recent range.
        ordinary = (v <= _prev_max(x, cfg.window, h)) & (-v <= _prev_max(-x, cfg.window, h))
        kind = np.select([best == 1, best == 2, seasonal & ordinary],
                         [_SHIFT, _BURST, _SEASONAL], _SPIKE).astype(np.int64)

        # A shift is judged on the recent level against the long median: that is its range.
        is_shift = best == 1
        expected = np.where(is_shift, median, center)
        band = np.where(is_shift, cfg.threshold * np.maximum(shift_record, 0.0), band)

        self._remember(x, errs, spikes, shifts, bursts, median, error_median, m)
        return Scores(score, kind, expected, expected - band, expected + band)

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
