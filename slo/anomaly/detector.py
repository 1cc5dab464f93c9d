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
from typing import Any, Literal, NamedTuple

from slo.anomaly.config import DetectorConfig
from slo.anomaly.window import SortedWindow

Kind = Literal["spike", "shift", "drift", "seasonal"]
MAD_TO_SIGMA = 1.4826
MAX_SEASON_KEYS = 32


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
        self._min_history = cfg.min_history
        self._threshold = cfg.threshold
        self._mad_floor = cfg.mad_floor
        self._mad_floor_rel = cfg.mad_floor_rel
        self._tail_q = cfg.tail_quantile
        self._tail_factor = cfg.tail_factor
        self._cusum_on = cfg.cusum
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
        if not math.isfinite(value):
            return NO_DECISION  # nothing to judge or learn from
        size = (math.log1p(covariate) if covariate is not None and math.isfinite(covariate)
                and covariate >= 0.0 else None)
        y = (math.log(value) if value > self._floor else self._log_floor) if self._log else value
        if not self._season_on:
            if self._first_at is None:
                self._first_at = at
            elif self._seasonal:
                self._season_on = at - self._first_at >= self._season_span
        key: Hashable | None = None
        key_window: SortedWindow | None = None
        if self._seasonal:
            key = season_key
            if key is None:
                key = at.hour if self._hourly else at.weekday()
            key_window = self._keys.get(key)
            if key_window is None and len(self._keys) < MAX_SEASON_KEYS:
                key_window = self._keys[key] = SortedWindow(self.config.season_window)

        values = self._values
        n = len(values.sorted)
        overall: float | None = None  # the baseline without seasons, when a season's is used
        if n:
            srt = values.sorted
            h = n >> 1
            center = srt[h] if n & 1 else (srt[h - 1] + srt[h]) * 0.5
        else:
            center = y
        if size is not None and self._recent_sized() >= self._min_history:
            center = self._nearest(size)
        elif self._season_on and key_window is not None and len(key_window.ring) >= self._season_min:
            srt = key_window.sorted
            m = len(srt)
            h = m >> 1
            overall = center
            center = srt[h] if m & 1 else (srt[h - 1] + srt[h]) * 0.5
        error = y - center
        decision = (self._decide(center, error, key, y, overall) if n >= self._min_history
                    else NO_DECISION)

        self._n += 1
        values.push(y)
        if n:
            self._errors.push(error if error >= 0.0 else -error)
        if key_window is not None:
            key_window.push(y)
        if size is not None:
            self._sized.append(self._n - 1, size, y)
        return decision

    def _recent_sized(self) -> int:
        """How many points that carried a covariate are in the window."""
        numbers = self._sized.numbers
        return len(numbers) - bisect_left(numbers, self._n - self.config.window)  # numbers ascend

    def _nearest(self, size: float) -> float:
        """Median value of the ``neighbours`` points nearest in size (the newest on ties)."""
        ys = sorted(self._sized.nearest(size, self._n - self.config.window, self._neighbours))
        m = len(ys)
        h = m >> 1
        return ys[h] if m & 1 else (ys[h - 1] + ys[h]) * 0.5

    def _decide(self, center: float, error: float, key: Hashable, y: float,
                overall: float | None) -> Decision:
        errors = self._errors.sorted
        n = len(errors)
        h = n >> 1
        scale = MAD_TO_SIGMA * (errors[h] if n & 1 else (errors[h - 1] + errors[h]) * 0.5)
        if scale < self._mad_floor:
            scale = self._mad_floor
        if self._mad_floor_rel:
            scale = max(scale, self._mad_floor_rel * abs(center))
        z = error / scale
        threshold = self._threshold
        kind: Kind | None = None
        if z > threshold or (self._both and z < -threshold):
            kind = "spike"
            if self._tail_q and abs(error) <= self._tail_factor * errors[
                min(int(self._tail_q * n), n - 1)
            ]:
                kind = None
        if self._cusum_on:
            kind = self._cusum(z, error, key, kind)
        if kind == "spike" and overall is not None and abs(y - overall) <= threshold * scale:
            kind = "seasonal"  # ordinary for the series, not for its weekday (or hour)
        if self._cool:
            self._cool -= 1
            kind = None
        if kind is None:
            flagged = False
        else:
            flagged = True
            self._cool = self.config.cooldown
        if self._log:
            expected = math.exp(center)
            spread = math.exp(threshold * scale)
            return Decision(flagged, z, expected, expected / spread, expected * spread, kind)
        band = threshold * scale
        return Decision(flagged, z, center, center - band, center + band, kind)

    def _cusum(self, z: float, error: float, key: Hashable, kind: Kind | None) -> Kind | None:
        """Accumulate the clipped z; past ``cusum_h`` a level change is declared."""
        cfg = self.config
        clip = cfg.cusum_clip
        zc = clip if z > clip else (-clip if z < -clip else z)
        self._up = up = max(0.0, self._up + zc - cfg.cusum_k)
        if up > 0.0:
            self._run_up.append((error, key))
            if up > cfg.cusum_h:
                kind = self._relevel(self._run_up, +1.0)
        else:
            self._run_up.clear()
        # Runs that got faster are learnt as fast as slower ones, but in one-sided mode
        # they are not reported: the new, lower level is simply the norm from then on.
        self._down = down = max(0.0, self._down - zc - cfg.cusum_k)
        if down > 0.0:
            self._run_down.append((error, key))
            if down > cfg.cusum_h:
                faster = self._relevel(self._run_down, -1.0)
                if self._both:
                    kind = faster
        else:
            self._run_down.clear()
        if len(self._run_up) > cfg.window:
            del self._run_up[0]
        if len(self._run_down) > cfg.window:
            del self._run_down[0]
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
        # size -> [(number, value)] of the points of that size, oldest first
        self._groups: dict[float, deque[tuple[int, float]]] = {}

    def append(self, number: int, size: float, value: float) -> None:
        if len(self.numbers) == self.numbers.maxlen:  # the oldest point leaves
            oldest = self.sizes[0]
            leaving = self._groups[oldest]
            leaving.popleft()
            if not leaving:
                del self._groups[oldest]
        self.numbers.append(number)
        self.sizes.append(size)
        self.values.append(value)
        group = self._groups.get(size)
        if group is None:
            group = self._groups[size] = deque()
        group.append((number, value))

    def shift(self, delta: float, before: int) -> None:
        """Add ``delta`` to the values of the points numbered below ``before``."""
        self.values = deque((y + delta if i < before else y
                             for i, y in zip(self.numbers, self.values, strict=True)),
                            maxlen=self.values.maxlen)
        self._groups = {}
        for number, size, value in self:
            self._groups.setdefault(size, deque()).append((number, value))

    def nearest(self, size: float, oldest: int, count: int) -> list[float]:
        """The values of the ``count`` points numbered from ``oldest`` on that are nearest to
        ``size`` (the newest first among equally near ones): the order of sorting them all
        by (distance, -number)."""
        by_distance: dict[float, list[deque[tuple[int, float]]]] = {}
        for other, group in self._groups.items():
            by_distance.setdefault(abs(other - size), []).append(group)
        chosen: list[float] = []
        for distance in sorted(by_distance):
            groups = by_distance[distance]
            if len(groups) == 1:
                points: Iterable[tuple[int, float]] = reversed(groups[0])
            else:  # as near above as below: newest first across both
                points = sorted((p for g in groups for p in g), reverse=True)
            for number, value in points:
                if number < oldest:
                    break
                chosen.append(value)
                if len(chosen) == count:
                    return chosen
        return chosen

    def __iter__(self) -> Iterator[tuple[int, float, float]]:
        return zip(self.numbers, self.sizes, self.values, strict=True)
