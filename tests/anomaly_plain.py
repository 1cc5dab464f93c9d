"""The robust detector written plainly, as the reference its streaming form is held to.

``slo.anomaly.detector.RobustDetector`` keeps its windows sorted as points come and go,
finds the size neighbours among groups of equal size and judges a point in one pass;
this one keeps each window in arrival order and sorts it whenever it needs an order
statistic, as the module docstring of the detector describes the method. Every float is
computed by the same operations in the same order, so both must agree bit for bit
(``tests/test_anomaly_plain.py``).
"""

from __future__ import annotations

import math
from collections import deque
from collections.abc import Hashable
from datetime import datetime, timedelta
from typing import Any

from slo.anomaly.config import DetectorConfig
from slo.anomaly.detector import MAD_TO_SIGMA, MAX_SEASON_KEYS, NO_DECISION, Decision, Kind


def median(values: list[float] | deque[float]) -> float:
    ordered = sorted(values)
    m = len(ordered)
    h = m >> 1
    return ordered[h] if m & 1 else (ordered[h - 1] + ordered[h]) * 0.5


def shift(values: deque[float], delta: float, keep_newest: int) -> None:
    """Add ``delta`` to every value but the ``keep_newest`` most recent ones."""
    for i in range(max(len(values) - keep_newest, 0)):
        values[i] += delta


class PlainDetector:
    """The method of ``RobustDetector``, windows sorted whenever an order is needed."""

    def __init__(self, config: DetectorConfig) -> None:
        self.config = config
        self.n = 0
        self.first_at: datetime | None = None
        self.season_on = False
        self.values: deque[float] = deque(maxlen=config.window)
        self.errors: deque[float] = deque(maxlen=config.window)
        self.keys: dict[Hashable, deque[float]] = {}
        self.up = self.down = 0.0
        self.run_up: list[tuple[float, Hashable]] = []
        self.run_down: list[tuple[float, Hashable]] = []
        self.cool = 0
        self.sized: deque[tuple[int, float, float]] = deque(maxlen=config.window)

    def update(self, at: datetime, value: float, season_key: Hashable | None = None,
               covariate: float | None = None) -> Decision:
        cfg = self.config
        if not math.isfinite(value):
            return NO_DECISION
        size = (math.log1p(covariate) if covariate is not None and math.isfinite(covariate)
                and covariate >= 0.0 else None)
        if cfg.transform == "log":
            y = math.log(value) if value > cfg.value_floor else math.log(cfg.value_floor)
        else:
            y = value
        if not self.season_on:
            if self.first_at is None:
                self.first_at = at
            elif cfg.seasonality != "none":
                self.season_on = at - self.first_at >= timedelta(days=cfg.season_min_days)
        key: Hashable | None = None
        key_values: deque[float] | None = None
        if cfg.seasonality != "none":
            key = season_key
            if key is None:
                key = at.hour if cfg.seasonality == "hour" else at.weekday()
            key_values = self.keys.get(key)
            if key_values is None and len(self.keys) < MAX_SEASON_KEYS:
                key_values = self.keys[key] = deque(maxlen=cfg.season_window)
        n = len(self.values)
        overall: float | None = None
        center = median(self.values) if n else y
        oldest = self.n - cfg.window
        recent = [(i, s, v) for i, s, v in self.sized if i >= oldest]
        if size is not None and len(recent) >= cfg.min_history:
            near = sorted((abs(s - size), -i, v) for i, s, v in recent)
            center = median([v for _, _, v in near[: cfg.neighbours]])
        elif self.season_on and key_values is not None and len(key_values) >= cfg.season_min_points:
            overall = center
            center = median(key_values)
        error = y - center
        decision = self.decide(center, error, key, y, overall) if n >= cfg.min_history else NO_DECISION
        self.n += 1
        self.values.append(y)
        if n:
            self.errors.append(error if error >= 0.0 else -error)
        if key_values is not None:
            key_values.append(y)
        if size is not None:
            self.sized.append((self.n - 1, size, y))
        return decision

    def decide(self, center: float, error: float, key: Hashable, y: float,
               overall: float | None) -> Decision:
        cfg = self.config
        scale = MAD_TO_SIGMA * median(self.errors)
        if scale < cfg.mad_floor:
            scale = cfg.mad_floor
        if cfg.mad_floor_rel:
            scale = max(scale, cfg.mad_floor_rel * abs(center))
        z = error / scale
        kind: Kind | None = None
        if z > cfg.threshold or (cfg.direction == "both" and z < -cfg.threshold):
            kind = "spike"
            ordered = sorted(self.errors)
            at = min(int(cfg.tail_quantile * len(ordered)), len(ordered) - 1)
            if cfg.tail_quantile and abs(error) <= cfg.tail_factor * ordered[at]:
                kind = None
        if cfg.cusum:
            kind = self.cusum(z, error, key, kind)
        if kind == "spike" and overall is not None and abs(y - overall) <= cfg.threshold * scale:
            kind = "seasonal"
        if self.cool:
            self.cool -= 1
            kind = None
        if kind is not None:
            self.cool = cfg.cooldown
        if cfg.transform == "log":
            expected = math.exp(center)
            spread = math.exp(cfg.threshold * scale)
            return Decision(kind is not None, z, expected, expected / spread, expected * spread, kind)
        band = cfg.threshold * scale
        return Decision(kind is not None, z, center, center - band, center + band, kind)

    def cusum(self, z: float, error: float, key: Hashable, kind: Kind | None) -> Kind | None:
        cfg = self.config
        zc = min(max(z, -cfg.cusum_clip), cfg.cusum_clip)
        self.up = max(0.0, self.up + zc - cfg.cusum_k)
        if self.up > 0.0:
            self.run_up.append((error, key))
            if self.up > cfg.cusum_h:
                kind = self.relevel(self.run_up, +1.0)
        else:
            self.run_up = []
        self.down = max(0.0, self.down - zc - cfg.cusum_k)
        if self.down > 0.0:
            self.run_down.append((error, key))
            if self.down > cfg.cusum_h:
                faster = self.relevel(self.run_down, -1.0)
                if cfg.direction == "both":
                    kind = faster
        else:
            self.run_down = []
        self.run_up = self.run_up[-cfg.window:]
        self.run_down = self.run_down[-cfg.window:]
        return kind

    def relevel(self, run: list[tuple[float, Hashable]], sign: float) -> Kind:
        cfg = self.config
        delta = median([e for e, _ in run])
        kind: Kind = "shift"
        m = len(run)
        if m >= cfg.drift_min_points:
            third = m // 3
            first = sum(e for e, _ in run[:third]) / third
            last = sum(e for e, _ in run[-third:]) / third
            if sign * (last - first) > 0.5 * abs(delta):
                kind = "drift"
        before = run[:-1]  # the run's last entry is the current point, not yet learnt
        shift(self.values, delta, len(before))
        for k, window in self.keys.items():
            shift(window, delta, sum(1 for _, key in before if key == k))
        cut = self.n - len(before)
        self.sized = deque([(i, s, v + delta if i < cut else v) for i, s, v in self.sized],
                           maxlen=self.sized.maxlen)
        self.up = self.down = 0.0
        self.run_up = []
        self.run_down = []
        return kind

    def export_state(self) -> dict[str, Any]:
        """In the format of ``RobustDetector.export_state``."""
        return {
            "n": self.n,
            "first_at": self.first_at.isoformat() if self.first_at else None,
            "season_on": self.season_on,
            "values": list(self.values),
            "errors": list(self.errors),
            "keys": [[k, list(w)] for k, w in self.keys.items()],
            "cusum": [self.up, self.down],
            "run_up": [list(item) for item in self.run_up],
            "run_down": [list(item) for item in self.run_down],
            "cool": self.cool,
            "sized": [list(item) for item in self.sized],
        }
