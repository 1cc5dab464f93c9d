"""Duration charts: each processor's durations run by run (log scale), anomalies ringed.

One small chart per pipeline, phase and mode, from ``GET /v1/runs`` (durations) and
``GET /v1/anomalies`` (the rings); drawn as inline SVG by the template.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from monitor.app.anomalies import clock_offset, human_duration
from monitor.app.page.board import mode_rank
from monitor.app.page.style import SERIES
from monitor.config import Config

WIDTH, HEIGHT = 360, 170
LEFT, RIGHT, TOP, BOTTOM = 46, 8, 8, 22
PHASE_SERIES = "(phase)"  # a phase reported without processors: its own duration
TICKS_S = (10, 30, 60, 120, 300, 600, 900, 1800, 3600, 7200, 14400, 28800, 86400)
TICK_GAP = 16
_RING = {"duration": ("bad", 6.5), "late": ("warn", 10.0)}


@dataclass(frozen=True)
class Point:
    x: float
    y: float
    title: str


@dataclass(frozen=True)
class Series:
    name: str
    colour: str
    points: tuple[Point, ...]

    @property
    def path(self) -> str:
        """An SVG path through the points, left to right."""
        return " ".join(f"{'M' if i == 0 else 'L'}{p.x:.1f},{p.y:.1f}"
                        for i, p in enumerate(self.points))


@dataclass(frozen=True)
class Ring:
    """An anomaly, circled on the point it is about."""

    x: float
    y: float
    r: float
    tone: str
    title: str


@dataclass(frozen=True)
class Tick:
    at: float
    label: str


@dataclass(frozen=True)
class Chart:
    title: str
    series: tuple[Series, ...]
    rings: tuple[Ring, ...]
    yticks: tuple[Tick, ...]
    xticks: tuple[Tick, ...]
    width: int = WIDTH
    height: int = HEIGHT
    left: int = LEFT
    right: int = WIDTH - RIGHT
    top: int = TOP
    bottom: int = HEIGHT - BOTTOM


SeriesKey = tuple[str, str, str]  # (pipeline, phase, mode)


def charts(runs: Sequence[Mapping[str, Any]], anomalies: Sequence[Mapping[str, Any]],
           config: Config) -> list[Chart]:
    """A chart per pipeline, phase and mode with durations, in config order."""
    durations = _durations(runs)
    out: list[Chart] = []
    for pipeline in config.pipelines:
        dates = sorted({r["run_date"] for r in runs if r["pipeline"] == pipeline.id})
        order = {p.id: i for i, p in enumerate(pipeline.phases)}
        keys = sorted((k for k in durations if k[0] == pipeline.id),
                      key=lambda k: (order.get(k[1], len(order)), mode_rank(k[2])))
        for key in keys:
            mine = [a for a in anomalies if (a["pipeline"], a["phase"], a["mode"]) == key]
            out.append(_chart(key, durations[key], dates, mine))
    return out


def _durations(runs: Sequence[Mapping[str, Any]]) -> dict[SeriesKey, dict[str, dict[str, float]]]:
    """(pipeline, phase, mode) → series name → run date → seconds."""
    out: dict[SeriesKey, dict[str, dict[str, float]]] = {}
    for run in runs:
        for phase in run["phases"]:
            key = (run["pipeline"], phase["phase"], run["mode"])
            values = {p["name"]: p["duration_s"] for p in phase["processors"]
                      if p["duration_s"] is not None}
            if not phase["processors"] and phase["first_start"] and phase["completed_at"]:
                values[PHASE_SERIES] = (datetime.fromisoformat(phase["completed_at"])
                                        - datetime.fromisoformat(phase["first_start"])).total_seconds()
            for name, seconds in values.items():
                out.setdefault(key, {}).setdefault(name, {})[run["run_date"]] = seconds
    return out


def _chart(key: SeriesKey, series: dict[str, dict[str, float]], dates: list[str],
           anomalies: Sequence[Mapping[str, Any]]) -> Chart:
    _, phase, mode = key
    values = [v for by_date in series.values() for v in by_date.values()]
    lo, hi, yticks = _scale(values)
    step = (WIDTH - RIGHT - LEFT) / max(len(dates), 1)

    def x(run_date: str) -> float:
        return LEFT + (dates.index(run_date) + 0.5) * step

    def y(seconds: float) -> float:
        share = (math.log(max(seconds, 1.0)) - lo) / (hi - lo)
        return (HEIGHT - BOTTOM) - share * (HEIGHT - BOTTOM - TOP)

    drawn = tuple(
        Series(name, SERIES[i % len(SERIES)], tuple(
            Point(x(d), y(s), f"{name} {d}: {human_duration(s)}")
            for d, s in sorted(by_date.items())))
        for i, (name, by_date) in enumerate(sorted(series.items())))
    rings = []
    for a in anomalies:
        name = a["processor"] or PHASE_SERIES
        seconds = series.get(name, {}).get(a["run_date"])
        if seconds is None or a["run_date"] not in dates:
            continue  # a run no longer tracked: it stays in the anomaly list
        tone_name, radius = _RING.get(a["kind"], ("bad", 6.5))
        rings.append(Ring(x(a["run_date"]), y(seconds), radius, tone_name, anomaly_text(a)))
    every = max(1, math.ceil(len(dates) / 6))
    xticks = tuple(Tick(x(d), d[5:]) for i, d in enumerate(dates) if i % every == 0)
    ticks: list[Tick] = []
    for seconds, label in yticks:  # bottom up, each at least TICK_GAP px above the last
        at = y(seconds)
        if not ticks or ticks[-1].at - at >= TICK_GAP:
            ticks.append(Tick(at, label))
    return Chart(f"{phase} · {mode or '-'}", drawn, tuple(rings), tuple(ticks), xticks)


def _scale(values: Sequence[float]) -> tuple[float, float, list[tuple[float, str]]]:
    """Log-scale bounds around ``values`` and the round ticks inside them (at least two)."""
    low = math.log(max(min(values), 1.0) / 1.4)
    high = math.log(max(max(values), 1.0) * 1.4)
    inside = [t for t in TICKS_S if low <= math.log(t) <= high]
    if len(inside) < 2:  # widen to the round values either side
        below = [t for t in TICKS_S if math.log(t) < low][-1:]
        above = [t for t in TICKS_S if math.log(t) > high][:1]
        inside = sorted({*below, *inside, *above})
        low, high = min(low, math.log(inside[0])), max(high, math.log(inside[-1]))
    return low, high, [(t, _tick_label(t)) for t in inside]


def _tick_label(seconds: int) -> str:
    if seconds < 60:
        return f"{seconds}s"
    if seconds < 3600:
        return f"{seconds // 60}m"
    return f"{seconds // 3600}h"


def anomaly_text(a: Mapping[str, Any]) -> str:
    """``team_defense_game_summary (2026-01-23 overnight): 4.8 h, expected about 7 min``."""
    show = human_duration if a["kind"] == "duration" else clock_offset
    what = a["processor"] or f"phase {a['phase']}"
    return (f"{what} ({a['run_date']} {a['mode']}): {a['kind']} {show(a['value'])}, "
            f"expected about {show(a['expected'])} (score {a['score']:.1f})")
