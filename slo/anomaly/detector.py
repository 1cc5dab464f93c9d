"""A streaming robust anomaly detector for one series (the registry is in ``registry.py``).

Per point: transform (log for durations), compare with a trailing robust baseline
(median; per season key once the history is long enough; or, when the caller gives the
size of the run's work as a covariate, e.g. the rows it expects, the median of the
``neighbours`` recent runs of the most similar size), scale by the MAD of the recent
one-step prediction errors (x 1.4826, floored), flag a *spike* when the robust z passes the
threshold (a *seasonal* deviation when the value would be ordinary against the baseline
without seasons: usual for the series, not for its weekday or hour), and feed the clipped
z to a CUSUM that flags a *shift* or a *drift*. After a shift the stored history is
re-levelled so the spread learned so far is kept and the new level becomes the norm at
once, instead of alarming until the window has turned over.

A decision for point i uses only points up to i; state is bounded by the window sizes.
"""

from __future__ import annotations

import math
from bisect import bisect_left
from collections import deque
from collections.abc import Hashable, Iterable, Iterator
from datetime import datetime, timedelta
from math import exp, isfinite, log, log1p
from typing import Any, Literal, NamedTuple

from slo.anomaly.config import DetectorConfig
from slo.anomaly.window import SortedWindow

Kind = Literal["spike", "shift", "drift", "seasonal"]
MAD_TO_SIGMA = 1.4826
MAX_SEASON_KEYS = 32
Point = tuple[datetime, float, Hashable | None, float | None]
"""A point of :meth:`RobustDetector.update_many`: at, value, season key, covariate."""


class Decision(NamedTuple):
    """The verdict on one point; ``expected``/``lower``/``upper`` in the series' units."""

    is_anomaly: bool
    score: float
    expected: float | None
    lower: float | None
    upper: float | None
    kind: Kind | None


NO_DECISION = Decision(False, 0.0, None, None, None, None)
"""What the detector answers before it has ``min_history`` points."""


class RobustDetector:
    """Streaming robust anomaly detector for one series (see the module docstring)."""

    def __init__(self, config: DetectorConfig | None = None) -> None:
        self.config = cfg = config or DetectorConfig()
        # Config fields copied to plain attributes: update() is the hot path.
        self._log = cfg.transform == "log"
        self._floor = cfg.value_floor
        self._log_floor = math.log(cfg.value_floor)
        self._both = cfg.direction == "both"
        self._seasonal = cfg.seasonality != "none"
        self._hourly = cfg.seasonality == "hour"
        self._season_span = timedelta(days=cfg.season_min_days)
        self._season_min = cfg.season_min_points
        self._window = cfg.window
        self._min_history = cfg.min_history
        self._threshold = cfg.threshold
        self._mad_floor = cfg.mad_floor
        self._mad_floor_rel = cfg.mad_floor_rel
        self._tail_q = cfg.tail_quantile
        self._tail_factor = cfg.tail_factor
        self._cusum_on = cfg.cusum
        self._cusum_k = cfg.cusum_k
        self._cusum_h = cfg.cusum_h
        self._cusum_clip = cfg.cusum_clip
        self._neighbours = cfg.neighbours
        self.reset()

    def reset(self) -> None:
        """Forget everything, as if newly created."""
        cfg = self.config
        self._n = 0
        self._first_at: datetime | None = None
        self._season_on = False
        self._values = SortedWindow(cfg.window)
        self._errors = SortedWindow(cfg.window)
        self._keys: dict[Hashable, SortedWindow] = {}
        self._up = 0.0
        self._down = 0.0
        self._run_up: list[tuple[float, Hashable]] = []
        self._run_down: list[tuple[float, Hashable]] = []
        self._cool = 0
        # (point number, log1p of the covariate, transformed value) of the points that
        # carried a covariate, oldest first, as three columns; those older than the window
        # are ignored.
        self._sized = _Sized(cfg.window)

    def update(self, at: datetime, value: float, season_key: Hashable | None = None,
               covariate: float | None = None) -> Decision:
        """Judge ``value`` observed at ``at`` against the history, then learn from it.

        ``season_key`` groups comparable points (e.g. game day or not); by default the
        day of week of ``at`` (or its hour with ``seasonality="hour"``). Keys should come
        from a small set: at most 32 are kept, points with further keys use the global
        baseline. ``covariate`` (>= 0) is the size of the point's work, e.g. the rows a
        run expects: once ``min_history`` points carried one, a point with a covariate is
        compared with the median of the ``neighbours`` most similar in size (in log),
        instead of its season. A non-finite value is ignored.
        """
        return self.update_many(((at, value, season_key, covariate),))[0]

    def update_many(self, points: Iterable[Point]) -> list[Decision]:
        """:meth:`update` of each point (at, value, season key, covariate) in turn: the same
        decisions and the same state, the settings read once instead of once a point."""
        decisions: list[Decision] = []
        self._learn(points, decisions, None)
        return decisions

    def flagged_many(self, points: Iterable[Point]) -> list[tuple[int, Decision]]:
        """Learn from ``points`` as :meth:`update_many` does; the decisions on the flagged
        ones (with their index in ``points``), without making those on the others."""
        flagged: list[tuple[int, Decision]] = []
        self._learn(points, None, flagged)
        return flagged

    def _learn(self, points: Iterable[Point], decisions: list[Decision] | None,
               flagged: list[tuple[int, Decision]] | None) -> None:
        """Judge each point, then learn from it; the decisions go to ``decisions`` (all) or
        ``flagged`` (the flagged ones)."""
        is_log, floor, log_floor = self._log, self._floor, self._log_floor
        seasonal, hourly, season_span = self._seasonal, self._hourly, self._season_span
        season_min, season_window = self._season_min, self.config.season_window
        window, min_history = self._window, self._min_history
        mad_floor, mad_floor_rel = self._mad_floor, self._mad_floor_rel
        threshold, both, tail_q, tail_factor = self._threshold, self._both, self._tail_q, self._tail_factor
        cusum, cusum_k, clip, cooldown = self._cusum_on, self._cusum_k, self._cusum_clip, self.config.cooldown
        values, errors, keys, sized = self._values, self._errors, self._keys, self._sized
        for index, (at, value, season_key, covariate) in enumerate(points):
            if not isfinite(value):
                if decisions is not None:
                    decisions.append(NO_DECISION)  # nothing to judge or learn from
                continue
            y = (log(value) if value > floor else log_floor) if is_log else value
            if not self._season_on:
                if self._first_at is None:
                    self._first_at = at
                elif seasonal:
                    self._season_on = at - self._first_at >= season_span
            key: Hashable | None = None
            key_window: SortedWindow | None = None
            if seasonal:
                key = season_key
                if key is None:
                    key = at.hour if hourly else at.weekday()
                key_window = keys.get(key)
                if key_window is None and len(keys) < MAX_SEASON_KEYS:
                    key_window = keys[key] = SortedWindow(season_window)

            # The baseline: the median of the window; or of the runs nearest in size; or
            # of the season (then the window's is kept as ``overall``).
            srt = values.sorted
            n = len(srt)
            if n:
                h = n >> 1
                center = srt[h] if n & 1 else (srt[h - 1] + srt[h]) * 0.5
            else:
                center = y
            overall: float | None = None
            size = (log1p(covariate) if covariate is not None and isfinite(covariate)
                    and covariate >= 0.0 else None)
            if size is not None and sized.count_from(self._n - window) >= min_history:
                center = self._nearest(size)
            elif self._season_on and key_window is not None and len(key_window.ring) >= season_min:
                srt = key_window.sorted
                m = len(srt)
                h = m >> 1
                overall = center
                center = srt[h] if m & 1 else (srt[h - 1] + srt[h]) * 0.5
            error = y - center

            if n < min_history:
                if decisions is not None:
                    decisions.append(NO_DECISION)
            else:
                # The scale: the MAD of the recent errors, floored.
                srt = errors.sorted
                m = len(srt)
                h = m >> 1
                scale = MAD_TO_SIGMA * (srt[h] if m & 1 else (srt[h - 1] + srt[h]) * 0.5)
                if scale < mad_floor:
                    scale = mad_floor
                if mad_floor_rel:
                    scale = max(scale, mad_floor_rel * abs(center))
                z = error / scale
                kind: Kind | None = None
                if z > threshold or (both and z < -threshold):
                    kind = "spike"
                    if tail_q and abs(error) <= tail_factor * srt[min(int(tail_q * m), m - 1)]:
                        kind = None
                if cusum:
                    zc = clip if z > clip else (-clip if z < -clip else z)
                    if self._up + zc - cusum_k > 0.0 or self._down - zc - cusum_k > 0.0:
                        kind = self._cusum(zc, error, key, kind)
                    else:  # both sums back at zero: no run goes on (most points)
                        self._up = self._down = 0.0
                        self._run_up.clear()
                        self._run_down.clear()
                if kind == "spike" and overall is not None and abs(y - overall) <= threshold * scale:
                    kind = "seasonal"  # ordinary for the series, not for its weekday (or hour)
                if self._cool:
                    self._cool -= 1
                    kind = None
                if kind is not None:
                    self._cool = cooldown
                if decisions is not None or kind is not None:
                    # tuple.__new__: the named tuple's own __new__ (a Python function)
                    # costs twice as much.
                    if is_log:
                        expected = exp(center)
                        spread = exp(threshold * scale)
                        decision = tuple.__new__(Decision, (kind is not None, z, expected,
                                                            expected / spread, expected * spread,
                                                            kind))
                    else:
                        band = threshold * scale
                        decision = tuple.__new__(Decision, (kind is not None, z, center,
                                                            center - band, center + band, kind))
                    if decisions is not None:
                        decisions.append(decision)
                    elif flagged is not None:
                        flagged.append((index, decision))

            self._n += 1
            values.push(y)
            if n:
                errors.push(error if error >= 0.0 else -error)
            if key_window is not None:
                key_window.push(y)
            if size is not None:
                sized.append(self._n - 1, size, y)

    def _nearest(self, size: float) -> float:
        """Median value of the ``neighbours`` points nearest in size (the newest on ties)."""
        ys = self._sized.nearest(size, self._n - self._window, self._neighbours)
        ys.sort()
        m = len(ys)
        h = m >> 1
        return ys[h] if m & 1 else (ys[h - 1] + ys[h]) * 0.5

    def _cusum(self, zc: float, error: float, key: Hashable, kind: Kind | None) -> Kind | None:
        """Accumulate the clipped z ``zc``; past ``cusum_h`` a level change is declared."""
        k = self._cusum_k
        up = self._up + zc - k
        if up > 0.0:
            self._up = up
            run = self._run_up
            run.append((error, key))
            if up > self._cusum_h:
                kind = self._relevel(run, +1.0)
            elif len(run) > self._window:
                del run[0]
        else:
            self._up = 0.0
            self._run_up.clear()
        # Runs that got faster are learnt as fast as slower ones, but in one-sided mode
        # they are not reported: the new, lower level is simply the norm from then on.
        down = self._down - zc - k
        if down > 0.0:
            self._down = down
            run = self._run_down
            run.append((error, key))
            if down > self._cusum_h:
                faster = self._relevel(run, -1.0)
                if self._both:
                    kind = faster
            elif len(run) > self._window:
                del run[0]
        else:
            self._down = 0.0
            self._run_down.clear()
        return kind

    def _relevel(self, run: list[tuple[float, Hashable]], sign: float) -> Kind:
        """Accept a level change: move the history before it to the new level."""
        errors = sorted(e for e, _ in run)
        m = len(errors)
        delta = errors[m >> 1] if m & 1 else (errors[(m >> 1) - 1] + errors[m >> 1]) * 0.5
        kind: Kind = "shift"
        if m >= self.config.drift_min_points:
            third = m // 3
            first = sum(e for e, _ in run[:third]) / third
            last = sum(e for e, _ in run[-third:]) / third
            if sign * (last - first) > 0.5 * abs(delta):
                kind = "drift"
        # The run's last entry is the current point, not yet in the windows.
        self._values.shift(delta, len(run) - 1)
        newest: dict[Hashable, int] = {}
        for _, k in run[:-1]:
            newest[k] = newest.get(k, 0) + 1
        for k, window in self._keys.items():
            window.shift(delta, newest.get(k, 0))
        cut = self._n - (len(run) - 1)
        self._sized.shift(delta, cut)
        self._up = self._down = 0.0
        self._run_up = []
        self._run_down = []
        return kind

    def rebuild(self, points: Iterable[tuple[datetime, float]]) -> None:
        """Reset, then learn from ``points`` in order: the same state as uninterrupted."""
        self.reset()
        for at, value in points:
            self.update(at, value)

    def export_state(self) -> dict[str, Any]:
        """The whole state as plain data (JSON-serialisable when season keys are)."""
        return {
            "n": self._n,
            "first_at": self._first_at.isoformat() if self._first_at else None,
            "season_on": self._season_on,
            "values": self._values.chronological(),
            "errors": self._errors.chronological(),
            "keys": [[k, w.chronological()] for k, w in self._keys.items()],
            "cusum": [self._up, self._down],
            "run_up": [list(item) for item in self._run_up],
            "run_down": [list(item) for item in self._run_down],
            "cool": self._cool,
            "sized": [list(item) for item in self._sized],  # rows, as before columns
        }

    def restore(self, state: dict[str, Any]) -> None:
        """Continue from a state produced by :meth:`export_state` with the same config."""
        cfg = self.config
        self.reset()
        self._n = int(state["n"])
        first = state["first_at"]
        self._first_at = datetime.fromisoformat(first) if first else None
        self._season_on = bool(state["season_on"])
        self._values = SortedWindow(cfg.window, state["values"])
        self._errors = SortedWindow(cfg.window, state["errors"])
        self._keys = {k: SortedWindow(cfg.season_window, vs) for k, vs in state["keys"]}
        self._up, self._down = (float(x) for x in state["cusum"])
        self._run_up = [(float(e), k) for e, k in state["run_up"]]
        self._run_down = [(float(e), k) for e, k in state["run_down"]]
        self._cool = int(state["cool"])
        for i, s, y in state.get("sized", ()):
            self._sized.append(int(i), float(s), float(y))


class _Sized:
    """The last ``size`` points that carried a covariate, oldest first: point number,
    log1p of the covariate, transformed value; and the same points grouped by their size
    (``nearest``): runs of one processor repeat a few sizes, so the neighbours of a size
    are found among a few groups instead of every point of the window."""

    __slots__ = ("_groups", "numbers", "sizes", "values")

    def __init__(self, size: int) -> None:
        self.numbers: deque[int] = deque(maxlen=size)
        self.sizes: deque[float] = deque(maxlen=size)
        self.values: deque[float] = deque(maxlen=size)
        # size -> (numbers, values) of the points of that size, oldest first
        self._groups: dict[float, tuple[list[int], list[float]]] = {}

    def append(self, number: int, size: float, value: float) -> None:
        numbers = self.numbers
        if len(numbers) == numbers.maxlen:  # the oldest point leaves
            oldest = self.sizes[0]
            leaving = self._groups[oldest]
            del leaving[0][0], leaving[1][0]
            if not leaving[0]:
                del self._groups[oldest]
        numbers.append(number)
        self.sizes.append(size)
        self.values.append(value)
        group = self._groups.get(size)
        if group is None:
            group = self._groups[size] = ([], [])
        group[0].append(number)
        group[1].append(value)

    def count_from(self, oldest: int) -> int:
        """How many points are numbered from ``oldest`` on."""
        numbers = self.numbers
        if not numbers or numbers[0] >= oldest:  # all of them: every point carried one
            return len(numbers)
        return len(numbers) - bisect_left(numbers, oldest)  # numbers ascend

    def shift(self, delta: float, before: int) -> None:
        """Add ``delta`` to the values of the points numbered below ``before``."""
        self.values = deque((y + delta if i < before else y
                             for i, y in zip(self.numbers, self.values, strict=True)),
                            maxlen=self.values.maxlen)
        self._groups = {}
        for number, size, value in self:
            group = self._groups.setdefault(size, ([], []))
            group[0].append(number)
            group[1].append(value)

    def nearest(self, size: float, oldest: int, count: int) -> list[float]:
        """The values of the ``count`` points numbered from ``oldest`` on that are nearest to
        ``size``, the newest among equally near ones (the first ``count`` in the order of
        (distance, -number)), in no particular order."""
        groups = self._groups
        same = groups.get(size)
        if same is not None:  # the nearest: no other size is as near
            chosen = _newest(same, oldest, count)
            if len(chosen) == count or len(groups) == 1:
                return chosen
        else:
            chosen = []
        by_distance: dict[float, list[tuple[list[int], list[float]]]] = {}
        for other, group in groups.items():
            if group is not same:
                by_distance.setdefault(abs(other - size), []).append(group)
        for distance in sorted(by_distance):
            near = by_distance[distance]
            if len(near) == 1:
                chosen += _newest(near[0], oldest, count - len(chosen))
            else:  # as near above as below: newest first across both
                points = sorted((p for g in near for p in zip(*g, strict=True)), reverse=True)
                for number, value in points:
                    if number < oldest or len(chosen) == count:
                        break
                    chosen.append(value)
            if len(chosen) == count:
                break
        return chosen

    def __iter__(self) -> Iterator[tuple[int, float, float]]:
        return zip(self.numbers, self.sizes, self.values, strict=True)


def _newest(group: tuple[list[int], list[float]], oldest: int, count: int) -> list[float]:
    """The values of the newest ``count`` points of ``group`` numbered from ``oldest`` on."""
    numbers, values = group
    start = len(numbers) - count
    if start < 0 or numbers[start] < oldest:
        start = bisect_left(numbers, oldest)  # numbers ascend
    return values[start:]
