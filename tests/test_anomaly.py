"""The streaming anomaly detector, adaptive timeouts, the scan command and the benchmark."""

from __future__ import annotations

import itertools
import json
import math
import statistics
import subprocess
import sys
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from zoneinfo import ZoneInfo

import numpy as np
import pytest
from click.testing import CliRunner
from hypothesis import example, given, settings
from hypothesis import strategies as st

from monitor.app.cli.main import main
from slo.anomaly import (
    NO_DECISION,
    AnomalyConfig,
    DetectorConfig,
    EnsembleConfig,
    EnsembleDetector,
    Observation,
    RobustDetector,
    SeriesDetectors,
    SeriesKey,
    TimeoutConfig,
    adaptive_timeout,
    lateness_s,
)
from slo.anomaly.ensemble import KINDS
from slo.anomaly.scan import REASONS
from slo.anomaly.window import SortedWindow

START = datetime(2026, 1, 5, 4, 0, tzinfo=UTC)  # a Monday
REPO = Path(__file__).resolve().parents[1]


def daily(values: list[float], start: datetime = START) -> list[tuple[datetime, float]]:
    return [(start + timedelta(days=i), v) for i, v in enumerate(values)]


def noisy(n: int, level: float = 100.0, seed: int = 1, rel: float = 0.03) -> list[float]:
    """Deterministic small noise around ``level`` (no RNG state shared between tests)."""
    return [level * (1.0 + rel * math.sin(seed * 7.3 + i * 2.39)) for i in range(n)]


def run(detector: RobustDetector, points: list[tuple[datetime, float]]) -> list:  # type: ignore[type-arg]
    return [detector.update(at, value) for at, value in points]


# ---------------------------------------------------------------------------- the maths


@given(st.lists(st.floats(-1e6, 1e6), min_size=1, max_size=80), st.integers(1, 25))
def test_sorted_window_matches_brute_force(values: list[float], size: int) -> None:
    window = SortedWindow(size)
    for i, v in enumerate(values):
        window.push(v)
        tail = values[max(0, i + 1 - size) : i + 1]
        assert window.sorted == sorted(tail)
        assert window.chronological() == tail
        assert window.median() == statistics.median(tail)


def test_mad_floor_when_values_repeat() -> None:
    cfg = DetectorConfig()
    detector = RobustDetector(cfg)
    decisions = run(detector, daily([100.0] * 30))
    last = decisions[-1]
    assert last.expected == pytest.approx(100.0)
    # MAD is 0: the floor (5 % in log space) sets the band instead of a zero-width one.
    assert last.upper == pytest.approx(100.0 * math.exp(cfg.threshold * cfg.mad_floor))
    assert not any(d.is_anomaly for d in decisions)
    assert not detector.update(START + timedelta(days=30), 103.0).is_anomaly
    assert detector.update(START + timedelta(days=31), 250.0).kind == "spike"


@given(st.lists(st.floats(0.0, 1e5), min_size=1, max_size=40), st.integers(2, 15))
def test_no_decision_before_min_history(values: list[float], min_history: int) -> None:
    detector = RobustDetector(DetectorConfig(min_history=min_history))
    decisions = run(detector, daily(values))
    assert all(d == NO_DECISION for d in decisions[:min_history])
    assert all(d.expected is not None for d in decisions[min_history:])


def test_seasonality_switches_on_after_three_weeks() -> None:
    # Mondays take three times as long: normal for this series once the weeks are known.
    values = [300.0 if (START + timedelta(days=i)).weekday() == 0 else 100.0 for i in range(49)]
    values = [v * (1.0 + 0.02 * math.sin(i)) for i, v in enumerate(values)]
    decisions = run(RobustDetector(), daily(values))
    monday_2, monday_3, monday_4 = decisions[14], decisions[21], decisions[28]
    assert monday_2.expected == pytest.approx(100.0, rel=0.05)  # 2 weeks: one baseline
    assert monday_2.is_anomaly
    assert monday_3.expected == pytest.approx(300.0, rel=0.05)  # 3 weeks: per weekday
    assert not monday_3.is_anomaly and not monday_4.is_anomaly
    assert decisions[22].expected == pytest.approx(100.0, rel=0.05)  # a Tuesday


def test_gradual_drift_is_detected_as_drift() -> None:
    values = noisy(40) + [v * 1.025 ** (i + 1) for i, v in enumerate(noisy(40, seed=2))]
    decisions = run(RobustDetector(), daily(values))
    assert not any(d.is_anomaly for d in decisions[:40])
    flagged = [i for i, d in enumerate(decisions) if d.is_anomaly]
    assert flagged and flagged[0] < 40 + 25
    assert decisions[flagged[0]].kind == "drift"


def test_level_shift_is_flagged_once_then_learnt() -> None:
    # x1.2 is below the spike threshold on this series: only the CUSUM can see it.
    values = noisy(40) + [v * 1.2 for v in noisy(40, seed=3)]
    decisions = run(RobustDetector(), daily(values))
    flagged = [i for i, d in enumerate(decisions) if d.is_anomaly]
    assert flagged and 40 <= flagged[0] <= 45
    assert decisions[flagged[0]].kind == "shift"
    assert not any(d.kind == "spike" for d in decisions)
    assert flagged == [flagged[0]]  # re-levelled: the new level is normal at once
    assert decisions[-1].expected == pytest.approx(120.0, rel=0.05)


def test_non_finite_values_are_ignored() -> None:
    detector = RobustDetector()
    run(detector, daily(noisy(20)))
    before = detector.export_state()
    assert detector.update(START + timedelta(days=20), math.nan) == NO_DECISION
    assert detector.update(START + timedelta(days=21), math.inf) == NO_DECISION
    assert detector.export_state() == before


def test_one_sided_by_default_two_sided_on_request() -> None:
    values = [*noisy(30), 20.0]
    assert not run(RobustDetector(), daily(values))[-1].is_anomaly
    two_sided = RobustDetector(DetectorConfig(direction="both"))
    assert run(two_sided, daily(values))[-1].kind == "spike"


def _slate(i: int) -> int:
    """A varying slate: 2 to 14 games a night."""
    return 2 + (i * 5) % 13


def test_duration_judged_against_runs_of_the_same_size() -> None:
    # Half fixed cost, half per game: a 14-game night takes 2.4x a 2-game night.
    nights = [(START + timedelta(days=i), (300.0 + 50.0 * _slate(i)) * (1 + 0.02 * math.sin(i * 2.39)),
               25.0 * _slate(i)) for i in range(60)]
    sized = RobustDetector()
    blind = RobustDetector()
    for at, seconds, rows in nights:
        assert not sized.update(at, seconds, covariate=rows).is_anomaly
        blind.update(at, seconds)
    light = START + timedelta(days=60)  # 2 games, twice as long as 2-game nights take
    decision = sized.update(light, 2 * 400.0, covariate=50.0)
    assert decision.is_anomaly and decision.kind == "spike"
    assert decision.expected == pytest.approx(400.0, rel=0.05)
    assert not blind.update(light, 2 * 400.0).is_anomaly  # ordinary for the series as a whole


def test_covariate_state_survives_export_and_relevel() -> None:
    detector = RobustDetector()
    for i in range(40):
        detector.update(START + timedelta(days=i), 100.0 * (1 + 0.02 * math.sin(i)), covariate=_slate(i))
    shifted = [detector.update(START + timedelta(days=40 + i), 200.0 * (1 + 0.02 * math.sin(i)),
                               covariate=_slate(i)) for i in range(10)]
    assert [d.kind for d in shifted if d.is_anomaly][:1] == ["spike"]
    assert not shifted[-1].is_anomaly  # re-levelled: the new level is the norm
    copy = RobustDetector()
    copy.restore(json.loads(json.dumps(detector.export_state())))
    at = START + timedelta(days=60)
    assert copy.update(at, 210.0, covariate=7) == detector.update(at, 210.0, covariate=7)


series_values = st.lists(
    st.one_of(st.floats(1.0, 1e4), st.sampled_from([5.0, 50.0, 5000.0])), min_size=1, max_size=120
)


@settings(max_examples=60, deadline=None)
@given(series_values, st.integers(0, 120), st.sampled_from(["up", "both"]), st.booleans())
def test_appending_future_points_never_changes_past_decisions(
    values: list[float], cut: int, direction: str, sized: bool
) -> None:
    cfg = DetectorConfig(direction=direction, min_history=3, window=20)  # type: ignore[arg-type]
    points = daily(values)

    def decide(upto: int) -> list[object]:
        detector = RobustDetector(cfg)
        return [detector.update(at, v, covariate=_slate(i) if sized and i % 4 else None)
                for i, (at, v) in enumerate(points[:upto])]

    full = decide(len(points))
    prefix = decide(cut)
    assert prefix == full[: len(prefix)]


def _observations(n: int) -> list[Observation]:
    out = []
    for i in range(n):
        at = START + timedelta(days=i, hours=2)
        jump = 3.0 if i % 17 == 16 else 1.0
        out.append(Observation(SeriesKey("nba", "raw", "boxscores", "overnight", "duration"),
                               at, 120.0 * jump * (1 + 0.05 * math.sin(i)), covariate=_slate(i)))
        out.append(Observation(SeriesKey("nba", "raw", "", "overnight", "late"),
                               at, 7200.0 + 600.0 * math.cos(i)))
    return out


@pytest.mark.parametrize("n", [5, 30, 90])
def test_rebuild_and_restore_equal_uninterrupted_state(n: int) -> None:
    points = _observations(n)
    live = SeriesDetectors()
    for p in points:
        live.observe(p.key.pipeline, p.key.phase, p.key.processor, p.key.mode, p.key.kind,
                     p.at, p.value, covariate=p.covariate)
    rebuilt = SeriesDetectors()
    rebuilt.rebuild(points)
    assert rebuilt.export_state() == live.export_state()
    restored = SeriesDetectors()
    restored.restore(json.loads(json.dumps(live.export_state())))
    nxt = _observations(n + 20)[2 * n :]
    for p in nxt:
        args = (p.key.pipeline, p.key.phase, p.key.processor, p.key.mode, p.key.kind, p.at, p.value)
        expected = live.observe(*args, covariate=p.covariate)
        assert rebuilt.observe(*args, covariate=p.covariate) == expected
        assert restored.observe(*args, covariate=p.covariate) == expected


def test_registry_keys_series_and_rejects_unknown_kind() -> None:
    detectors = SeriesDetectors(AnomalyConfig())
    at = START
    detectors.observe("nba", "raw", None, "overnight", "duration", at, 10.0)
    detectors.observe("nba", "raw", "p", "overnight", "late", at, 10.0)
    assert len(detectors) == 2
    with pytest.raises(ValueError, match="allowed: duration, late"):
        detectors.observe("nba", "raw", None, "overnight", "bogus", at, 1.0)  # type: ignore[arg-type]


def test_lateness_is_seconds_from_run_date_midnight_in_pipeline_tz() -> None:
    tz = ZoneInfo("America/New_York")
    done = datetime(2026, 1, 19, 8, 30, tzinfo=UTC)  # 03:30 New York, next day
    assert lateness_s(date(2026, 1, 18), done, tz) == 27.5 * 3600


def test_a_value_usual_for_the_series_but_not_its_weekday_is_a_seasonal_deviation() -> None:
    # Mondays take three times as long; a Monday as short as a Tuesday is the odd one.
    values = [300.0 if (START + timedelta(days=i)).weekday() == 0 else 100.0 for i in range(49)]
    values = [v * (1.0 + 0.02 * math.sin(i)) for i, v in enumerate(values)]
    detector = RobustDetector(DetectorConfig(direction="both"))
    run(detector, daily(values))
    monday = detector.update(START + timedelta(days=49), 101.0)
    assert monday.is_anomaly and monday.kind == "seasonal"
    assert monday.expected == pytest.approx(300.0, rel=0.05)
    assert detector.update(START + timedelta(days=50), 400.0).kind == "spike"  # a Tuesday


# ------------------------------------------------------------------ ensemble (generic)

FIVE_MIN = 1.7e9 + 300.0 * np.arange(3000)


def periodic(n: int = 3000) -> np.ndarray:  # type: ignore[type-arg]
    """A daily cycle of 5-minute points with small deterministic noise."""
    i = np.arange(n)
    return 100.0 + 20.0 * np.sin(2 * np.pi * i / 288) + np.sin(i * 2.39)


def flags(values: np.ndarray, config: EnsembleConfig | None = None) -> list[int]:  # type: ignore[type-arg]
    return np.flatnonzero(EnsembleDetector(config).detect(FIVE_MIN[: len(values)], values).flagged).tolist()


def test_ensemble_flags_a_spike_with_its_expected_range() -> None:
    values = periodic()
    quiet = flags(values)
    assert all(i < 288 for i in quiet)  # at most the first day, before the hours are known
    values[2500] += 60.0
    verdicts = EnsembleDetector().detect(FIVE_MIN, values)
    assert np.flatnonzero(verdicts.flagged).tolist() == [*quiet, 2500]
    s = verdicts.scores
    assert s.kind[2500] == 0 and s.score[2500] > 1.0  # "spike": beats every recent error
    assert s.lower[2500] < periodic()[2500] < s.upper[2500] < values[2500]
    assert s.expected[2500] == pytest.approx(periodic()[2500], abs=3.0)


def test_ensemble_calls_a_level_shift_a_shift_and_a_value_off_its_hour_seasonal() -> None:
    values = periodic()
    values[2400:] += 25.0
    # The forecast (the values before and a day before) is off at the very first point ...
    verdicts = EnsembleDetector().detect(FIVE_MIN, values)
    found = [i for i in np.flatnonzero(verdicts.flagged).tolist() if i >= 2400]
    assert found[0] == 2400 and KINDS[verdicts.scores.kind[2400]] == "forecast"
    # ... and without it, the recent level leaves the long median within level_window.
    no_forecast = EnsembleConfig(forecast=False)
    verdicts = EnsembleDetector(no_forecast).detect(FIVE_MIN, values)
    found = [i for i in np.flatnonzero(verdicts.flagged).tolist() if i >= 2400]
    assert found and found[0] <= 2400 + 13 and verdicts.scores.kind[found[0]] == 2  # shift
    values = periodic()
    values[2664] = 80.0  # the daily low, at the daily high's hour
    verdicts = EnsembleDetector().detect(FIVE_MIN, values)
    assert verdicts.flagged[2664] and verdicts.scores.kind[2664] == 1  # seasonal


def test_ensemble_forecast_learns_a_daily_job_and_flags_the_same_jump_at_another_hour() -> None:
    n = 288 * 10
    values = 50.0 + 10.0 * np.sin(2 * np.pi * np.arange(n) / 288) + np.sin(np.arange(n) * 2.39)
    values[36::288] += 40.0  # a nightly job at 03:00 ...
    values[288 * 8 + 180] += 40.0  # ... and the same jump at 15:00 on the ninth day
    with_forecast = EnsembleDetector().detect(FIVE_MIN[:n], values)
    assert np.flatnonzero(with_forecast.flagged[288 * 2:]).tolist() == [288 * 6 + 180]
    assert KINDS[with_forecast.scores.kind[288 * 8 + 180]] == "forecast"
    s = with_forecast.scores
    assert s.lower[288 * 8 + 180] < s.expected[288 * 8 + 180] < s.upper[288 * 8 + 180] < values[288 * 8 + 180]
    # Against the per-hour baseline alone, the nightly jumps set the record: no flag.
    baseline_only = EnsembleDetector(EnsembleConfig(forecast=False)).detect(FIVE_MIN[:n], values)
    assert not baseline_only.flagged[288 * 2:].any()


def test_every_ensemble_kind_has_a_reason_in_words() -> None:
    assert set(KINDS) <= set(REASONS)


def test_ensemble_does_not_flag_again_a_repeat_no_larger_than_a_flagged_one_within_flag_memory() -> None:
    n = 12_000
    times = 1.7e9 + 300.0 * np.arange(n)
    values = 100.0 + np.sin(np.arange(n) * 2.39)
    values[3000] += 30.0  # a spike ...
    values[6000] += 28.0  # ... its repeat, no larger, 3,000 points (beyond the window) later
    values[9000] += 45.0  # a larger one
    cfg = EnsembleConfig(forecast=False, season_min_days=1000.0)  # only the baseline scores
    late = [i for i in np.flatnonzero(EnsembleDetector(cfg).detect(times, values).flagged) if i > 2000]
    assert late == [3000, 9000]  # the repeat beats the window's record, not the flagged spike
    # Without the memory (a flagged score is the bar only for the window), the repeat flags.
    forget = cfg.model_copy(update={"flag_memory": 0})
    late = [i for i in np.flatnonzero(EnsembleDetector(forget).detect(times, values).flagged) if i > 2000]
    assert late == [3000, 6000, 9000]
    # Once flag_memory points have passed, the same spike is flagged again.
    values[9000] -= 45.0
    values[3000 + cfg.flag_memory + 1] += 28.0
    late = [i for i in np.flatnonzero(EnsembleDetector(cfg).detect(times, values).flagged) if i > 2000]
    assert late == [3000, 3000 + cfg.flag_memory + 1]


def test_ensemble_long_pattern_flags_a_sustained_rise_of_errors_that_short_bursts_hide() -> None:
    # Bursts of 24 noisy points every 300 set the records of the 24-point scores; 200 points
    # of noise a little lower than theirs but lasting longer beat only the 72-point mean.
    n = 3000
    i = np.arange(n)
    noise_scale = np.ones(n)
    for start in range(400, 2400, 300):
        noise_scale[start:start + 24] = 8.0
    noise_scale[2400:2600] = 6.0
    values = 100.0 + 20.0 * np.sin(2 * np.pi * i / 288) + noise_scale * np.random.default_rng(2).standard_normal(n)
    verdicts = EnsembleDetector().detect(FIVE_MIN, values)
    late = np.flatnonzero(verdicts.flagged[2000:]) + 2000
    assert len(late) == 1 and 2400 <= late[0] < 2600
    assert KINDS[verdicts.scores.kind[late[0]]] == "pattern"
    short_only = EnsembleDetector(EnsembleConfig(pattern_long_window=0)).detect(FIVE_MIN, values)
    assert not short_only.flagged[2000:].any()


@pytest.mark.parametrize(("at", "size", "flagged"), [
    (2504, 31.5, False),  # 5% above the record, in the context of the spike at 1000: familiar
    (2504, 34.0, True),  # 13% above it: beats the context's margin (1.1)
    (2501, 31.5, True),  # 5% above it, after other values: a new context
])
def test_ensemble_a_score_barely_beating_its_record_in_a_familiar_context_needs_the_margin(
    at: int, size: float, flagged: bool
) -> None:
    n = 3000
    times = 1.7e9 + 300.0 * np.arange(n)
    values = 100.0 + np.sin(2 * np.pi * np.arange(n) / 8)  # contexts repeat every 8 points
    values[1000] += 30.0
    values[at] += size
    # Only the baseline scores, and the context (off by default).
    cfg = EnsembleConfig(forecast=False, season_min_days=1000.0, context_bins=16)
    verdicts = EnsembleDetector(cfg).detect(times, values)
    assert np.flatnonzero(verdicts.flagged).tolist() == [1000, at] if flagged else [1000]
    assert (verdicts.scores.score[at] > cfg.threshold) == flagged  # the score carries the margin
    if not flagged:
        s = verdicts.scores
        assert s.lower[at] < values[at] < s.upper[at]  # within the range that would not flag
    # Without the context, any score beating its record flags.
    no_context = EnsembleDetector(cfg.model_copy(update={"context_bins": 0})).detect(times, values)
    assert np.flatnonzero(no_context.flagged).tolist() == [1000, at]


def test_ensemble_long_pattern_longer_than_the_window_counts_as_the_window() -> None:
    values = periodic(800)
    values[700:] += np.sin(np.arange(100) * 0.7) * 5.0
    small = EnsembleDetector(EnsembleConfig(window=50)).detect(FIVE_MIN[:800], values)
    same = EnsembleDetector(EnsembleConfig(window=50, pattern_long_window=50)).detect(FIVE_MIN[:800], values)
    assert small.flagged.tolist() == same.flagged.tolist()
    np.testing.assert_allclose(small.scores.score, same.scores.score)


# The opt-in options of the flagging, each exercised by the property below: escalation
# inside the cooldown, the re-arm that ends it, the hour of the week.
FLAG_OPTIONS: list[dict[str, float]] = [
    {},
    {"escalation": 1.2, "escalation_after": 2, "cooldown": 10},
    {"rearm_below": 0.5, "rearm_points": 3, "cooldown": 20},
    {"hour_of_week_weeks": 1},
    {"escalation": 1.2, "escalation_after": 2, "rearm_below": 0.5, "rearm_points": 3,
     "hour_of_week_weeks": 1, "cooldown": 20},
]


@pytest.mark.parametrize(("width", "least"), [(72, 0), (72, 24), (96, 1)])
def test_ensemble_long_pattern_is_scored_once_pattern_long_min_of_its_points_have_a_forecast(
    width: int, least: int, monkeypatch: pytest.MonkeyPatch
) -> None:
    seen: list[tuple[np.ndarray, np.ndarray]] = []  # type: ignore[type-arg]
    original = EnsembleDetector._long_pattern

    def spy(self: EnsembleDetector, ferrs: np.ndarray, known: np.ndarray, *args: object) -> object:  # type: ignore[type-arg]
        out = original(self, ferrs, known, *args)  # type: ignore[arg-type]
        seen.append((known.copy(), out[0].copy()))
        return out

    monkeypatch.setattr(EnsembleDetector, "_long_pattern", spy)
    cfg = EnsembleConfig(pattern_long_window=width, pattern_long_min=least)
    EnsembleDetector(cfg).detect(FIVE_MIN[:1000], periodic(1000))
    known, long = seen[0]
    first = int(np.argmax(known))  # the first point with a forecast; all after have one
    assert known[first:].all() and 0 < first < 400
    need = least or width
    assert not long[:first + need - 1].any()  # scored from the need-th point with a forecast on
    assert (long[first + need - 1:] > 0).all()


@settings(max_examples=40, deadline=None)
@given(st.lists(st.floats(-1e3, 1e3), min_size=1, max_size=150),
       st.lists(st.integers(0, 150), max_size=6), st.sampled_from(FLAG_OPTIONS),
       st.sampled_from([900.0, 7200.0]))
@example([0.0, 2.04229135e-308, 4.0], [], {}, 900.0)  # a subnormal range: the context's divide overflowed
def test_ensemble_verdicts_do_not_depend_on_chunks_or_future_points(
    values: list[float], cuts: list[int], options: dict[str, float], step: float
) -> None:
    # The forecast's lag is 4 points and 30 of the window's 40 fit it: it is exercised; so
    # are the long pattern (8 points), the context and the memory of flagged scores (90
    # points, beyond the window), and the options of the flagging (points 2 hours apart
    # reach the same hour of the next week after 84 points).
    cfg = EnsembleConfig(window=40, level_window=4, recompute_every=3, min_history=3,
                         season_window=3, season_min_days=0.1, cooldown=2,
                         forecast_lag_s=4 * step, flag_memory=90, pattern_long_window=8,
                         context_bins=4).model_copy(update=options)
    times = 1.7e9 + step * np.arange(len(values))
    whole = EnsembleDetector(cfg).detect(times, values)
    detector = EnsembleDetector(cfg)
    bounds = sorted({0, len(values), *(c for c in cuts if c < len(values))})
    parts = [detector.detect(times[a:b], values[a:b]) for a, b in itertools.pairwise(bounds)]
    assert np.concatenate([p.flagged for p in parts]).tolist() == whole.flagged.tolist()
    np.testing.assert_allclose(np.concatenate([p.scores.score for p in parts]), whole.scores.score)
    one = EnsembleDetector(cfg)
    singles = [one.update(datetime.fromtimestamp(t, UTC), v) for t, v in zip(times, values, strict=True)]
    assert [s.is_anomaly for s in singles] == whole.flagged.tolist()
    np.testing.assert_allclose([s.score for s in singles], whole.scores.score)


def test_ensemble_escalation_flags_inside_the_cooldown_only_an_anomaly_grown_past_its_factor() -> None:
    n = 3000
    times = 1.7e9 + 300.0 * np.arange(n)
    values = 100.0 + np.sin(np.arange(n) * 2.39)
    values[2000] += 20.0  # a spike ...
    values[2030] += 25.0  # ... 1.25 x larger within its cooldown: not flagged
    values[2060] += 40.0  # 2 x larger: the anomaly grew
    values[2065] += 70.0  # larger still, but too soon after the flag before (escalation_after)
    # Only the baseline scores, without the context or the hour of the week (the preset's).
    cfg = EnsembleConfig(forecast=False, season_min_days=1000.0, context_bins=0, hour_of_week_weeks=0)
    plain = EnsembleDetector(cfg).detect(times, values)
    assert [i for i in np.flatnonzero(plain.flagged) if i >= 1000] == [2000]
    grown = EnsembleDetector(cfg.model_copy(update={"escalation": 1.5})).detect(times, values)
    assert [i for i in np.flatnonzero(grown.flagged) if i >= 1000] == [2000, 2060]


def test_ensemble_rearm_ends_the_cooldown_once_the_scores_stayed_low() -> None:
    n = 3000
    times = 1.7e9 + 300.0 * np.arange(n)
    values = 100.0 + np.sin(np.arange(n) * 2.39)
    values[2000] += 20.0  # a spike, then quiet: the anomaly is over ...
    values[2040] += 25.0  # ... so a larger one 40 points later is a new anomaly
    cfg = EnsembleConfig(forecast=False, season_min_days=1000.0, context_bins=0, hour_of_week_weeks=0)
    plain = EnsembleDetector(cfg).detect(times, values)
    assert [i for i in np.flatnonzero(plain.flagged) if i >= 1000] == [2000]
    rearm = cfg.model_copy(update={"rearm_below": 0.5})
    assert [i for i in np.flatnonzero(EnsembleDetector(rearm).detect(times, values).flagged)
            if i >= 1000] == [2000, 2040]
    # Scores that do not stay low (a run of raised values after the spike) keep the cooldown.
    values[2001:2040] += 12.0
    assert [i for i in np.flatnonzero(EnsembleDetector(rearm).detect(times, values).flagged)
            if i >= 1000] == [2000]


def test_ensemble_hour_of_week_drops_a_flag_whose_value_is_usual_for_its_hour_of_the_week() -> None:
    week = 7 * 24 * 12  # points 5 minutes apart, from the start of an hour
    n = 4 * week
    times = 3600.0 * 472_222 + 300.0 * np.arange(n)
    base = 100.0 + np.sin(2 * np.pi * np.arange(n) / 8)  # the noise repeats every week
    values = base.copy()
    values[2400:2412] += 30.0  # an hour at 130 ...
    values[2400 + week:2412 + week] += 30.0  # ... and the same hour a week later (beyond the window)
    values[6500] += 30.0  # the same value at another hour of the week
    # Only the baseline scores, without the context or the hour of the week (the preset's).
    cfg = EnsembleConfig(forecast=False, season_min_days=1000.0, flag_memory=0, context_bins=0,
                         hour_of_week_weeks=0)
    plain = EnsembleDetector(cfg).detect(times, values)
    assert [i for i in np.flatnonzero(plain.flagged) if i >= 1000] == [2400, 2400 + week, 6500]
    weekly = cfg.model_copy(update={"hour_of_week_weeks": 3})
    assert [i for i in np.flatnonzero(EnsembleDetector(weekly).detect(times, values).flagged)
            if i >= 1000] == [2400, 6500]
    # Two weeks later: usual within 3 weeks, new within 1 (the week before was quiet).
    values = base.copy()
    values[2400:2412] += 30.0
    values[2400 + 2 * week:2412 + 2 * week] += 30.0
    assert [i for i in np.flatnonzero(EnsembleDetector(weekly).detect(times, values).flagged)
            if i >= 1000] == [2400]
    one = cfg.model_copy(update={"hour_of_week_weeks": 1})
    assert [i for i in np.flatnonzero(EnsembleDetector(one).detect(times, values).flagged)
            if i >= 1000] == [2400, 2400 + 2 * week]

@pytest.mark.parametrize("level", [0.0, 7.0])
def test_ensemble_flags_the_first_change_of_a_flat_series(level: float) -> None:
    values = np.r_[np.full(500, level), level + 2.0, np.full(100, level)]
    assert flags(values) == [500]  # no record to beat yet: the noise floor is the bar


def test_ensemble_ignores_non_finite_values() -> None:
    values = periodic(600)
    with_gaps = values.copy()
    with_gaps[[100, 300]] = [math.nan, math.inf]
    a = EnsembleDetector().detect(FIVE_MIN[:600], with_gaps)
    b = EnsembleDetector().detect(np.delete(FIVE_MIN[:600], [100, 300]), np.delete(values, [100, 300]))
    assert not a.flagged[[100, 300]].any() and a.scores.score[100] == 0.0
    assert np.delete(a.flagged, [100, 300]).tolist() == b.flagged.tolist()
    # A gap inside a cooldown does not shorten it: the cooldown counts the points judged.
    values[400] += 60.0
    values[501] += 200.0  # 100 points after the flag at 400 when the gap at 430 is skipped
    with_gaps = values.copy()
    with_gaps[430] = math.nan
    a = EnsembleDetector().detect(FIVE_MIN[:600], with_gaps)
    b = EnsembleDetector().detect(np.delete(FIVE_MIN[:600], 430), np.delete(values, 430))
    assert a.flagged[400] and not a.flagged[501]
    assert np.delete(a.flagged, 430).tolist() == b.flagged.tolist()


# ------------------------------------------------------------------- adaptive timeouts


durations = st.lists(st.floats(0.0, 1e5), max_size=60)


@given(durations, st.floats(1.0, 1e4))
def test_adaptive_timeout_within_floor_and_ceiling_or_static(
    history: list[float], static_s: float
) -> None:
    cfg = TimeoutConfig(floor_s=30.0, ceiling_s=3600.0, min_history=10)
    decision = adaptive_timeout(history, static_s, cfg)
    if len(history) < cfg.min_history:
        assert decision.source == "static" and decision.seconds == static_s
    else:
        assert decision.source == "adaptive"
        assert cfg.floor_s <= decision.seconds <= cfg.ceiling_s


def test_adaptive_timeout_is_quantile_times_margin() -> None:
    cfg = TimeoutConfig(
        quantile=0.9, margin=2.0, floor_s=1.0, ceiling_s=10_000.0, min_history=5, window=100
    )
    history = [float(x) for x in range(1, 101)]  # p90 = 90.1
    assert adaptive_timeout(history, 5.0, cfg).seconds == pytest.approx(180.2)
    assert adaptive_timeout([1.0] * 20, 5.0, cfg).seconds == 2.0
    assert adaptive_timeout([1.0] * 4, 5.0, cfg) == (5.0, "static")
    assert adaptive_timeout([5000.0] * 20, 5.0, cfg).seconds == 10_000.0


# ------------------------------------------------------------------------ scan command


def _csv(tmp_path: Path, header: str = "timestamp,value") -> Path:
    lines = [header]
    for i, v in enumerate(noisy(40)):
        at = START + timedelta(days=i)
        lines.append(f"{at:%Y-%m-%d %H:%M:%S},{900.0 if i == 30 else v:.3f}")
    path = tmp_path / "durations.csv"
    path.write_text("\n".join(lines) + "\n")
    return path


def test_scan_prints_flagged_rows_and_exits_1(tmp_path: Path) -> None:
    result = CliRunner().invoke(main, ["anomaly", "scan", str(_csv(tmp_path))], env={"COLUMNS": "120"})
    assert result.exit_code == 1, result.output
    head, *rows = [ln.split() for ln in result.stdout.splitlines() if ln.strip()]
    assert head == ["time", "value", "expected", "range", "score", "reason"] and len(rows) == 1
    assert rows[0][:2] == ["2026-02-04T04:00:00+00:00", "900"] and rows[0][-1] == "spike"
    assert rows[0][4] == "to"  # the expected range: "lower to upper"


def test_scan_exits_0_when_nothing_is_flagged(tmp_path: Path) -> None:
    path = tmp_path / "calm.csv"
    path.write_text("timestamp,value\n" + "".join(
        f"{START + timedelta(days=i):%Y-%m-%dT%H:%M:%S},{v:.3f}\n" for i, v in enumerate(noisy(40))))
    result = CliRunner().invoke(main, ["anomaly", "scan", str(path)])
    assert result.exit_code == 0, result.output
    assert result.stdout == "" and "0 flagged" in result.stderr


def test_scan_json_and_value_column_autodetect(tmp_path: Path) -> None:
    path = _csv(tmp_path, header="timestamp,seconds")
    result = CliRunner().invoke(main, ["anomaly", "scan", str(path), "--json"])
    assert result.exit_code == 1, result.output
    rows = [json.loads(ln) for ln in result.stdout.splitlines()]
    assert len(rows) == 1
    row = rows[0]
    assert row["value"] == 900.0 and row["kind"] == "spike" and row["reason"] == "spike"
    assert row["expected"] == pytest.approx(100.0, rel=0.05) and row["score"] > 5
    assert row["lower"] < row["expected"] < row["upper"] < row["value"]


def _metric_csv(tmp_path: Path, rows: list[tuple[str, float]]) -> Path:
    path = tmp_path / "metric.csv"
    path.write_text("timestamp,value\n" + "".join(f"{t},{v}\n" for t, v in rows))
    return path


def _five_minutes(n: int, start: datetime = START) -> list[tuple[str, float]]:
    return [(f"{start + timedelta(minutes=5 * i):%Y-%m-%d %H:%M:%S}", 50.0 + math.sin(i * 2.39))
            for i in range(n)]


def test_scan_generic_preset_explains_each_flag(tmp_path: Path) -> None:
    rows = _five_minutes(1200)
    rows[1000] = (rows[1000][0], 95.0)
    result = CliRunner().invoke(main, ["anomaly", "scan", str(_metric_csv(tmp_path, rows)),
                                       "--preset", "generic", "--json"])
    assert result.exit_code == 1, result.output
    found = [json.loads(ln) for ln in result.stdout.splitlines()]
    spike = [f for f in found if f["value"] == 95.0]
    assert len(spike) == 1 and spike[0]["reason"] == "spike"
    assert spike[0]["lower"] < 50.0 < spike[0]["upper"] < 95.0
    assert all({"expected", "lower", "upper", "score", "reason"} <= f.keys() for f in found)


def test_scan_rows_stepping_back_in_time_error_keep_or_skip(tmp_path: Path) -> None:
    # Local time around a clock change: the hour 01:00-01:55 comes twice.
    rows = _five_minutes(40, datetime(2026, 11, 1, 0, 0))
    rows[24:24] = [(f"2026-11-01 01:{m:02d}:00", 50.0) for m in range(0, 60, 5)]
    path = _metric_csv(tmp_path, rows)
    refused = CliRunner().invoke(main, ["anomaly", "scan", str(path)])
    assert refused.exit_code == 2
    assert ":26: rows must be in time order" in refused.stderr and "--out-of-order keep" in refused.stderr
    kept = CliRunner().invoke(main, ["anomaly", "scan", str(path), "--out-of-order", "keep"])
    assert kept.exit_code == 0, kept.output
    assert "skipped" not in kept.stderr
    skipped = CliRunner().invoke(main, ["anomaly", "scan", str(path), "--out-of-order", "skip"])
    assert skipped.exit_code == 0, skipped.output
    assert "11 rows out of time order skipped" in skipped.stderr  # 01:55 itself is no step back


def test_scan_bad_column_exits_2_listing_columns(tmp_path: Path) -> None:
    path = _csv(tmp_path)
    result = CliRunner().invoke(main, ["anomaly", "scan", str(path), "--value-column", "secs"])
    assert result.exit_code == 2
    assert "'secs'" in result.stderr and "columns: timestamp, value" in result.stderr
    result = CliRunner().invoke(main, ["anomaly", "scan", str(path), "--time-column", "ts"])
    assert result.exit_code == 2 and "'ts'" in result.stderr
    missing = CliRunner().invoke(main, ["anomaly", "scan", str(tmp_path / "nope.csv")])
    assert missing.exit_code == 2 and "nope.csv" in missing.stderr


# --------------------------------------------------------------------------- benchmark


def test_bench_runs_quick() -> None:
    proc = subprocess.run(
        [sys.executable, str(REPO / "bench" / "anomaly_eval.py"), "--quick", "--json"],
        capture_output=True, text=True, timeout=120, check=False,
    )
    assert proc.returncode == 0, proc.stderr
    report = json.loads(proc.stdout)
    assert report["throughput"]["ensemble_chunks_per_s"] > 0
    assert 0.0 <= report["synthetic_duration_defaults"]["f1"] <= 1.0
    if isinstance(report["nab"], dict):  # the shared NAB data is there
        assert 0.0 <= report["nab"]["ensemble_preset"]["standard"] <= 100.0


def test_nab_scoring_follows_nabs_sweeper() -> None:
    from bench.nab_score import FileScorer, Weights, normalised, probation_rows

    standard = Weights(tp=1.0, fp=0.11, fn=1.0)
    scorer = FileScorer(100, [(40, 49)])  # probation: the first 15 rows
    assert probation_rows(100) == 15 and probation_rows(10_000) == 750

    def raw(*rows: int) -> float:
        return scorer.score(rows, standard).raw

    assert raw() == -1.0  # the window missed
    assert raw(40) == pytest.approx(1.0)  # its first row: the full reward
    assert raw(49) == pytest.approx((2 / (1 + math.exp(-0.5)) - 1) / (2 / (1 + math.exp(-5)) - 1))
    assert raw(40, 45) == raw(45, 40) == raw(40)  # a window counts its earliest detection
    assert raw(40, 10) == raw(40)  # probation rows are never scored
    assert raw(40, 20) == pytest.approx(1.0 - 0.11)  # before any window: the full FP cost
    # after a window: the cost grows with the distance, in window widths, up to -fp at 3
    assert raw(40, 55) == pytest.approx(1.0 + 0.11 * (2 / (1 + math.exp(5 * 6 / 9)) - 1))
    assert raw(40, 90) == pytest.approx(1.0 - 0.11)
    assert normalised(raw(), 1, standard) == 0.0 and normalised(raw(40), 1, standard) == 100.0
    assert math.isnan(normalised(-0.22, 0, standard))  # no windows: no scale
    assert FileScorer(100, [(2, 9)]).windows == 0  # a window inside the probation is not scored
