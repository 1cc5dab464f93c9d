"""Adaptive timeouts: learned from past durations, clamped, static until there is history."""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Literal, NamedTuple

from slo.anomaly.config import TimeoutConfig

TimeoutSource = Literal["adaptive", "static"]


class TimeoutDecision(NamedTuple):
    """The timeout to apply and where it came from."""

    seconds: float
    source: TimeoutSource


def _quantile(sorted_values: Sequence[float], q: float) -> float:
    """Linear-interpolated quantile of sorted values (numpy's default method)."""
    pos = (len(sorted_values) - 1) * q
    lo = math.floor(pos)
    hi = min(lo + 1, len(sorted_values) - 1)
    frac = pos - lo
    return sorted_values[lo] + (sorted_values[hi] - sorted_values[lo]) * frac


def adaptive_timeout(
    history: Sequence[float], static_s: float, config: TimeoutConfig | None = None
) -> TimeoutDecision:
    """Timeout for the next run: quantile x margin of recent durations, within floor/ceiling.

    ``history`` holds past successful durations in seconds, oldest first; negative and
    non-finite values are ignored. Below ``min_history`` usable values, ``static_s``.
    """
    cfg = config or TimeoutConfig()
    recent = [d for d in history[-cfg.window :] if math.isfinite(d) and d >= 0.0]
    if len(recent) < cfg.min_history:
        return TimeoutDecision(static_s, "static")
    learned = _quantile(sorted(recent), cfg.quantile) * cfg.margin
    return TimeoutDecision(min(max(learned, cfg.floor_s), cfg.ceiling_s), "adaptive")
