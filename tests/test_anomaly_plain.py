"""The streaming robust detector decides as its plain form does, bit for bit."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from typing import Any

from hypothesis import given, settings
from hypothesis import strategies as st

from slo.anomaly import DetectorConfig, RobustDetector
from slo.anomaly.detector import Point
from tests.anomaly_plain import PlainDetector

START = datetime(2026, 1, 5, 4, 0, tzinfo=UTC)


@st.composite
def configs(draw: st.DrawFn) -> DetectorConfig:
    """Small windows and low alarm levels, so that seasons, re-levels, the tail test,
    the cooldown and the size neighbours all come into play within a short series."""
    window = draw(st.integers(3, 12))
    return DetectorConfig(
        transform=draw(st.sampled_from(["log", "linear"])),
        value_floor=draw(st.sampled_from([1e-3, 1.0, 20.0])),
        window=window,
        min_history=draw(st.integers(2, window)),
        threshold=draw(st.sampled_from([0.5, 2.0, 5.5])),
        mad_floor=draw(st.sampled_from([1e-9, 0.05, 3.0])),
        mad_floor_rel=draw(st.sampled_from([0.0, 0.01, 0.5])),
        direction=draw(st.sampled_from(["up", "both"])),
        seasonality=draw(st.sampled_from(["weekday", "hour", "none"])),
        season_min_days=draw(st.sampled_from([0.0, 0.5, 3.0])),
        season_window=draw(st.integers(1, 4)),
        season_min_points=draw(st.integers(1, 3)),
        cusum=draw(st.booleans()),
        cusum_k=draw(st.sampled_from([0.0, 0.5, 1.0])),
        cusum_h=draw(st.sampled_from([0.5, 2.0, 8.0])),
        cusum_clip=draw(st.sampled_from([1.0, 3.0])),
        drift_min_points=draw(st.integers(3, 6)),
        tail_quantile=draw(st.sampled_from([0.0, 0.5, 1.0])),
        tail_factor=draw(st.sampled_from([0.5, 1.0])),
        cooldown=draw(st.integers(0, 3)),
        neighbours=draw(st.integers(1, 5)),
    )


@st.composite
def points(draw: st.DrawFn) -> list[tuple[int, float, object, float | None]]:
    """Segments of levels, trends (drifts) and noise, with stray values between them
    (ties, zeros, negatives, NaN, infinity); season keys and sizes, some missing."""
    out: list[tuple[int, float, object, float | None]] = []
    for _ in range(draw(st.integers(0, 5))):
        level = draw(st.sampled_from([0.0, 2.0, 50.0, 1000.0, -30.0]))
        trend = draw(st.sampled_from([0.0, 0.0, 0.1, -0.2, 1.0]))
        noise = draw(st.lists(st.floats(-0.1, 0.1), min_size=1, max_size=25))
        for i, e in enumerate(noise):
            value = level * (1.0 + trend * i + e) + e
            if draw(st.integers(0, 9)) == 0:
                value = draw(st.one_of(st.floats(-1e4, 1e4), st.sampled_from([float("nan"), float("inf")])))
            out.append((
                draw(st.sampled_from([1, 6, 24, 24, 30])),  # hours since the point before
                value,
                draw(st.sampled_from([None, None, 0, 1, 2, "game day"])),  # season keys
                draw(st.sampled_from([None, None, 0.0, 3.0, 3.0, 7.0, 12.0, -1.0, float("nan")])),
            ))
    return out


def same(a: Any, b: Any) -> bool:
    """Equal to the bit: ``repr`` tells -0.0 from 0.0 and shows a NaN."""
    return repr(a) == repr(b)


@settings(max_examples=300, deadline=None)
@given(configs(), points(), st.integers(0, 6))
def test_streaming_detector_decides_as_the_plain_one(
    config: DetectorConfig, series: list[tuple[int, float, object, float | None]], chunk: int
) -> None:
    """Point by point (``update``), or in chunks of ``chunk`` points (``update_many``, and
    ``flagged_many``: the flagged ones only)."""
    plain = PlainDetector(config)
    at = START
    timed: list[Point] = []
    for hours, value, key, covariate in series:
        at += timedelta(hours=hours)
        timed.append((at, value, key, covariate))
    expected = [plain.update(*point) for point in timed]
    streaming = RobustDetector(config)
    if chunk:
        got = [d for i in range(0, len(timed), chunk) for d in streaming.update_many(timed[i : i + chunk])]
    else:
        got = [streaming.update(*point) for point in timed]
    assert same(got, expected)
    assert json.dumps(streaming.export_state()) == json.dumps(plain.export_state())

    flagging = RobustDetector(config)
    step = chunk or 1
    flagged = [(i + j, d) for i in range(0, len(timed), step)
               for j, d in flagging.flagged_many(timed[i : i + step])]
    assert same(flagged, [(i, d) for i, d in enumerate(expected) if d.is_anomaly])
    assert json.dumps(flagging.export_state()) == json.dumps(plain.export_state())
