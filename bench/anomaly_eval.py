"""Evaluate the anomaly detectors; prints figures, asserts nothing.

    python bench/anomaly_eval.py            # NAB (all figures), synthetic durations, throughput
    python bench/anomaly_eval.py --quick    # a smoke run in a few seconds
    python bench/anomaly_eval.py --variants # only NAB: post-processing variants of the ensemble
    python bench/anomaly_eval.py --options  # only NAB: the ensemble's options, alone and stacked

(a) NAB subset (``$PHASEWATCH_SHARED`` or ``../shared``, 51 files in six groups): NAB's own
    scoring (``nab_score.py``: windows, sigmoid weights, probation, normalised between the
    null and the perfect detector), the streaming protocol (no look-ahead, state reset per
    file, the probation rows learnt from but not scored), and for each detector side by
    side:
    - the whole-set score of one fixed parameter set (for the ensemble, its preset and the
      presets before it: without its context and hour of the week, without its long
      pattern either, without its flag memory either, without its forecast either) in the three
      NAB profiles, with detection delays;
    - leave one group out: for each group, the parameter set (threshold included) that
      scores best on the other five is scored on it; the quoted figure is the mean over
      the groups that hold windows (``artificialNoAnomaly`` has none, so no normalised
      score: its false positives are shown, and its files count when the others are held
      out). "Pooled" normalises all held-out files together.
(b) A synthetic suite of daily durations from fixed seeds, with the one-sided duration
    defaults (``RobustDetector``): F1, detection delays, false positives per 100 normal runs.
(c) Throughput, median and spread of 5 runs, wall and CPU: the ensemble over 1 M points
    in chunks (the preset; the preset before, without the context and the hour of the week;
    without the long pattern either; without the forecast either), ``RobustDetector.update`` and a batch numpy trailing median/MAD over the
    same data; and the user's path, ``phasewatch anomaly scan`` of a CSV, per preset.
"""

from __future__ import annotations

import argparse
import itertools
import json
import math
import os
import statistics
import subprocess
import sys
import tempfile
import time
from collections import deque
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt
from nab_score import FileScorer, NabFile, Weights, load_corpus, load_profiles, normalised, shared_dir

from slo.anomaly import GENERIC, DetectorConfig, EnsembleConfig, EnsembleDetector, RobustDetector
from slo.anomaly.ensemble import flag_with_cooldown

Floats = npt.NDArray[np.float64]
ScoreFn = Callable[[NabFile], npt.NDArray[Any]]
"""A detector's scores per file (flagged where above a threshold, outside a cooldown), or its
own flags (booleans: the ensemble's, whose cooldown is its own)."""
Structure = Callable[[float, int], ScoreFn]
"""A detector's scores per file for a threshold and a cooldown (the ensemble's depend on them:
its records hold the scores of its flags for ``flag_memory`` points)."""


def detections(out: npt.NDArray[Any], threshold: float, cooldown: int) -> npt.NDArray[np.int64]:
    """The rows flagged: a detector's own flags as they are, else its scores above the
    threshold outside the cooldown."""
    if out.dtype == np.bool_:
        return np.flatnonzero(out)
    return np.flatnonzero(flag_with_cooldown(out, threshold, cooldown)[0])


def fixed(fn: ScoreFn) -> Structure:
    """Scores that do not depend on the threshold or the cooldown."""
    return lambda threshold, cooldown: fn

# ------------------------------------------------------------------------------ NAB


@dataclass(frozen=True)
class Candidate:
    """One parameter set of a detector: a continuous score per file, a threshold, a cooldown."""

    label: str
    structure: str
    threshold: float
    cooldown: int


class Corpus:
    """The NAB files with their scorers, and the raw score of any set of detections."""

    def __init__(self, files: Sequence[NabFile], profiles: dict[str, Weights]) -> None:
        self.files = list(files)
        self.profiles = profiles
        self.scorers = [FileScorer(len(f.values), f.windows) for f in self.files]
        self.groups = sorted({f.group for f in self.files})
        self.group_of = np.array([f.group for f in self.files])
        self.windows = np.array([s.windows for s in self.scorers])

    def norm(self, raw: Floats, mask: npt.NDArray[np.bool_], w: Weights) -> float:
        return normalised(float(raw[mask].sum()), int(self.windows[mask].sum()), w)


def sweep(corpus: Corpus, structures: dict[str, Structure], thresholds: Sequence[float],
          cooldowns: Sequence[int], w: Weights) -> tuple[list[Candidate], Floats]:
    """Raw NAB score of every (structure, threshold, cooldown) on every file."""
    candidates: list[Candidate] = []
    rows = []
    for name, structure in structures.items():
        cache: dict[int, list[npt.NDArray[Any]]] = {}
        for thr, cd in itertools.product(thresholds, cooldowns):
            fn = structure(thr, cd)
            if id(fn) not in cache:
                cache[id(fn)] = [fn(f) for f in corpus.files]
            scores = cache[id(fn)]
            candidates.append(Candidate(f"{name} threshold={thr:g} cooldown={cd}", name, thr, cd))
            rows.append([
                s.score(detections(sc, thr, cd), w).raw
                for s, sc in zip(corpus.scorers, scores, strict=True)
            ])
    return candidates, np.array(rows)


def leave_one_group_out(corpus: Corpus, candidates: list[Candidate], raw: Floats,
                        w: Weights) -> dict[str, Any]:
    """Per held-out group: the candidate best on the other groups, and its score there."""
    per_group: dict[str, Any] = {}
    held_scores = []
    pooled = np.zeros(len(corpus.files))
    for group in corpus.groups:
        held = corpus.group_of == group
        train = np.array([corpus.norm(r, ~held, w) for r in raw])
        best = int(np.argmax(train))
        pooled[held] = raw[best][held]
        entry: dict[str, Any] = {"chosen": candidates[best].label,
                                 "score_on_the_other_five": round(float(train[best]), 1)}
        if corpus.windows[held].sum():
            entry["held_out_score"] = round(corpus.norm(raw[best], held, w), 1)
            held_scores.append(entry["held_out_score"])
        else:
            entry["held_out_score"] = None
            entry["held_out_raw"] = round(float(raw[best][held].sum()), 2)
        per_group[group] = entry
    return {
        "mean_held_out_score": round(statistics.fmean(held_scores), 1),
        "pooled_held_out_score": round(corpus.norm(pooled, np.ones(len(pooled), bool), w), 1),
        "groups": per_group,
    }


def whole_set(corpus: Corpus, fn: ScoreFn, threshold: float, cooldown: int) -> dict[str, Any]:
    """One fixed parameter set on every file: the three profiles, per group, delays."""
    flags = [detections(fn(f), threshold, cooldown) for f in corpus.files]
    out: dict[str, Any] = {}
    everything = np.ones(len(corpus.files), bool)
    for profile, w in corpus.profiles.items():
        results = [s.score(fl, w) for s, fl in zip(corpus.scorers, flags, strict=True)]
        raw = np.array([r.raw for r in results])
        out[profile] = round(corpus.norm(raw, everything, w), 1)
        if profile == "standard":
            out["per_group_standard"] = {
                g: (round(corpus.norm(raw, corpus.group_of == g, w), 1)
                    if corpus.windows[corpus.group_of == g].sum() else None)
                for g in corpus.groups
            }
            detected = sum(r.detected for r in results)
            fps = sum(r.false_positives for r in results)
            out["windows_detected"] = f"{detected} of {int(corpus.windows.sum())}"
            out["false_positives"] = fps
            out.update(delays(corpus, results))
    return out


def delays(corpus: Corpus, results: Sequence[Any]) -> dict[str, Any]:
    """Detection delay after the labelled anomaly of each detected window: rows and time."""
    rows: list[int] = []
    minutes: list[float] = []
    for f, r in zip(corpus.files, results, strict=True):
        for k, first in r.first_detection.items():
            left, right = f.windows[k]
            marks = [m for m in f.labels if left <= m <= right] or [(left + right) // 2]
            rows.append(first - marks[0])
            minutes.append((f.times[first] - f.times[marks[0]]).total_seconds() / 60)
    if not rows:
        return {}
    return {
        "delay_rows_median": statistics.median(rows),
        "delay_rows_p90": float(np.percentile(rows, 90)),
        "delay_minutes_median": round(statistics.median(minutes), 1),
        "detected_before_the_label": f"{sum(r < 0 for r in rows)} of {len(rows)}",
    }


# The ensemble's parameter grid for leave one group out; the preset is its whole-set best.
BEFORE: dict[str, Any] = {"context_bins": 0, "hour_of_week_weeks": 0}
"""The preset before the sixth attempt (45a4b7f): no context, no hour of the week."""
ENSEMBLE_GRID = {"window": (1000, 2000), "level_window": (12, 24)}
ENSEMBLE_THRESHOLDS = (1.0, 1.1)
COOLDOWNS = (50, 100, 200)


def ensemble_fn(config: EnsembleConfig) -> ScoreFn:
    """The ensemble's own flags (its cooldown, escalation and re-arm included)."""
    def fn(f: NabFile) -> npt.NDArray[np.bool_]:
        return EnsembleDetector(config).detect(f.seconds, f.values).flagged
    return fn


def ensemble_structure(config: EnsembleConfig) -> Structure:
    """The ensemble with the threshold and cooldown swept (its scores depend on its flags)."""
    def structure(threshold: float, cooldown: int) -> ScoreFn:
        return ensemble_fn(config.model_copy(update={"threshold": threshold, "cooldown": cooldown}))
    return structure


def robust_fn(config: DetectorConfig) -> ScoreFn:
    """The duration detector's ``RobustDetector`` (``GENERIC`` preset before): 1.0 where it flags."""
    def fn(f: NabFile) -> Floats:
        detector = RobustDetector(config)
        return np.array([float(detector.update(t, float(v)).is_anomaly)
                         for t, v in zip(f.times, f.values, strict=True)])
    return fn


def river_fn(seed: int = 42) -> ScoreFn | None:
    """river's HalfSpaceTrees behind a min-max scaler, as river's docs set it up; None if absent."""
    try:
        from river import anomaly, preprocessing
    except ImportError:
        return None

    def fn(f: NabFile) -> Floats:
        model = preprocessing.MinMaxScaler() | anomaly.HalfSpaceTrees(seed=seed)
        out = np.empty(len(f.values))
        for i, v in enumerate(f.values.tolist()):
            point = {"x": v}
            out[i] = model.score_one(point)
            model.learn_one(point)
        return out
    return fn


def evaluate_nab(corpus: Corpus, quick: bool) -> dict[str, Any]:
    w = corpus.profiles["standard"]
    report: dict[str, Any] = {}
    preset = EnsembleConfig()
    report["ensemble_preset"] = {
        "parameters": f"window={preset.window} level_window={preset.level_window} "
                      f"threshold={preset.threshold:g} cooldown={preset.cooldown} "
                      f"context_bins={preset.context_bins} "
                      f"hour_of_week_weeks={preset.hour_of_week_weeks}",
        **whole_set(corpus, ensemble_fn(preset), preset.threshold, preset.cooldown),
    }
    # The presets before, each without one more of the later additions.
    earlier: dict[str, dict[str, Any]] = {
        "ensemble_without_the_context_and_the_hour_of_week": BEFORE,
        "ensemble_without_the_long_pattern_either": {"pattern_long_window": 0},
        "ensemble_without_the_flag_memory_either": {"flag_memory": 0},
        "ensemble_without_the_forecast_either": {"forecast": False},
    }
    update: dict[str, Any] = {}
    for name, change in earlier.items():
        update |= change
        config = EnsembleConfig(**update)
        report[name] = whole_set(corpus, ensemble_fn(config), config.threshold, config.cooldown)
    report["robust_generic_preset_before"] = whole_set(corpus, robust_fn(GENERIC), 0.5, 0)
    if quick:
        return report

    structures = {
        f"window={a} level_window={b}": ensemble_structure(EnsembleConfig(window=a, level_window=b))
        for a, b in itertools.product(*ENSEMBLE_GRID.values())
    }
    candidates, raw = sweep(corpus, structures, ENSEMBLE_THRESHOLDS, COOLDOWNS, w)
    report["ensemble_leave_one_group_out"] = leave_one_group_out(corpus, candidates, raw, w)

    robust = {f"threshold={z:g} cooldown={cd}":
              fixed(robust_fn(GENERIC.model_copy(update={"threshold": z, "cooldown": cd})))
              for z in (4.0, 5.5, 8.0) for cd in COOLDOWNS}
    candidates, raw = sweep(corpus, robust, (0.5,), (0,), w)
    report["robust_leave_one_group_out"] = leave_one_group_out(corpus, candidates, raw, w)

    hst = river_fn()
    if hst is None:
        report["river_half_space_trees"] = "skipped: river not installed (pip install river)"
    else:
        candidates, raw = sweep(corpus, {"HalfSpaceTrees": fixed(hst)}, (0.7, 0.8, 0.9, 0.95),
                                COOLDOWNS, w)
        whole = np.array([corpus.norm(r, np.ones(len(r), bool), w) for r in raw])
        best = int(np.argmax(whole))
        report["river_half_space_trees"] = {
            "whole_set_best_of_grid": round(float(whole[best]), 1),
            "its_parameters": candidates[best].label,
            **leave_one_group_out(corpus, candidates, raw, w),
        }
    return report


# ----------------------------------------------------------- variants of the ensemble
# ``--variants``: post-processing tried on top of the preset's scores, each scored on the
# whole set (best of its threshold x cooldown grid) and left one group out over that grid,
# then left one group out choosing among every variant's grids at once.


def _moving_mean(r: Floats, k: int) -> Floats:
    c = np.concatenate([[0.0], np.cumsum(r)])
    t = np.arange(len(r))
    lo = np.maximum(t + 1 - k, 0)
    return np.asarray((c[t + 1] - c[lo]) / (t + 1 - lo))


_normal_tail = np.vectorize(lambda z: 0.5 * math.erfc(z / math.sqrt(2.0)), otypes=[float])


def likelihood(r: Floats, short: int, long: int, min_points: int = 100) -> Floats:
    """NAB's HTM post-processing ("anomaly likelihood"): the mean of the last ``short`` raw
    scores against a normal fitted to the ``long`` scores before them, as -log10 of its
    tail (4 = a one-in-10,000 average); 0 before ``min_points``."""
    c1 = np.concatenate([[0.0], np.cumsum(r)])
    c2 = np.concatenate([[0.0], np.cumsum(r * r)])
    t = np.arange(len(r))
    lo = np.maximum(t - long, 0)
    n = np.maximum(t - lo, 1)
    mean = (c1[t] - c1[lo]) / n
    std = np.sqrt(np.maximum((c2[t] - c2[lo]) / n - mean**2, 1e-12))
    tail = _normal_tail((_moving_mean(r, short) - mean) / std)
    out = np.asarray(-np.log10(np.maximum(tail, 1e-300)))
    out[t < min_points] = 0.0
    return out


def context_novelty(values: Floats, bins: int, order: int = 3, window: int = 2000) -> Floats:
    """1 where the last ``order`` values, binned between the running min and max, form a
    context not seen in the previous ``window`` points (contextOSE's idea, simplified)."""
    out = np.zeros(len(values))
    lo = hi = float(values[0])
    seen: dict[tuple[int, ...], int] = {}
    history: deque[tuple[int, ...]] = deque()
    context: list[int] = []
    for i, x in enumerate(values.tolist()):
        lo, hi = min(lo, x), max(hi, x)
        context = [*context[-(order - 1):], int((x - lo) / (hi - lo) * (bins - 1)) if hi > lo else 0]
        if len(context) < order:
            continue
        key = tuple(context)
        out[i] = float(seen.get(key, 0) == 0 and i > 100)
        seen[key] = seen.get(key, 0) + 1
        history.append(key)
        if len(history) > window:
            seen[history.popleft()] -= 1
    return out


def evaluate_variants(corpus: Corpus) -> dict[str, Any]:
    w = corpus.profiles["standard"]
    cache: dict[tuple[str, EnsembleConfig], Any] = {}

    def ens(f: NabFile, cfg: EnsembleConfig | None = None) -> Any:
        cfg = cfg or EnsembleConfig()
        key = (f.name, cfg)
        if key not in cache:
            cache[key] = EnsembleDetector(cfg).scores(f.seconds, f.values)
        return cache[key]

    def per_kind(cfg: EnsembleConfig, shift: float, burst: float) -> ScoreFn:
        def fn(f: NabFile) -> Floats:
            s = ens(f, cfg)
            return np.asarray(s.score / np.where(s.kind == 2, shift, np.where(s.kind == 3, burst, 1.0)))
        return fn

    ratio = (1.0, 1.1)
    # The others post-process the preset's scores (at its own threshold and cooldown).
    families: dict[str, tuple[Structure, Sequence[float]]] = {
        "preset": (ensemble_structure(EnsembleConfig()), ratio)}
    for short, long in ((1, 2000), (5, 2000), (10, 2000), (10, 8640)):
        families[f"likelihood of the preset's score, short={short} long={long}"] = (
            fixed(lambda f, a=short, b=long: likelihood(np.minimum(ens(f).score, 3.0), a, b)),
            (2.0, 3.0, 4.0, 5.0, 6.0, 8.0))
    for z in (2.0, 4.0, 5.0):
        families[f"z_min={z:g}"] = (fixed(per_kind(EnsembleConfig(z_min=z), 1.0, 1.0)), ratio)
    for shift, burst in ((1.0, 1.3), (1.3, 1.0), (1.3, 1.3), (1.0, 2.0)):
        families[f"shift must beat its record x{shift:g}, burst x{burst:g}"] = (
            fixed(per_kind(EnsembleConfig(), shift, burst)), ratio)
    for bins in (8, 16):
        novelty = {f.name: context_novelty(f.values, bins) for f in corpus.files}
        families[f"context novelty, {bins} bins"] = (
            fixed(lambda f, nov=novelty: _moving_mean(nov[f.name], 6) * 10), (1.0, 2.0, 3.0, 5.0))
        for boost in (0.1, 0.4):
            families[f"preset x (1 + {boost:g} x novel context), {bins} bins"] = (
                fixed(lambda f, nov=novelty, b=boost: ens(f).score * (1 + b * nov[f.name])), ratio)
    report: dict[str, Any] = {}
    every: list[Candidate] = []
    rows = []
    everything = np.ones(len(corpus.files), bool)
    for name, (fn, thresholds) in families.items():
        candidates, raw = sweep(corpus, {name: fn}, thresholds, COOLDOWNS, w)
        whole = np.array([corpus.norm(r, everything, w) for r in raw])
        best = int(np.argmax(whole))
        logo = leave_one_group_out(corpus, candidates, raw, w)
        report[name] = (f"whole set {whole[best]:.1f} ({candidates[best].label[len(name) + 1:]}); "
                        f"left one group out {logo['mean_held_out_score']}")
        every += candidates
        rows.append(raw)
    logo = leave_one_group_out(corpus, every, np.concatenate(rows), w)
    report["left one group out, choosing among all of the above"] = {
        "mean_held_out_score": logo["mean_held_out_score"],
        **{g: f"{v['chosen']}: {v['held_out_score']}" for g, v in logo["groups"].items()},
    }
    return report


# ------------------------------------------------------------ options of the ensemble
# ``--options``: the ensemble's options, each alone and stacked, on the preset before the
# sixth attempt (``BEFORE``: no context, no hour of the week; "preset" below). Each
# design is scored like the preset: its whole-set score at the preset's parameters, and
# left one group out over the bench's own grid (window x level window x threshold x
# cooldown); then left one group out choosing among every design's grid at once (each
# fold chooses its options on the other five groups).

ESCALATION = {"escalation": 1.5}
REARM = {"rearm_below": 0.5}
HOUR_OF_WEEK = {"hour_of_week_weeks": 3}
CONTEXT = {"context_bins": 16}
OPTION_DESIGNS: dict[str, dict[str, Any]] = {
    "preset": {},
    "escalation 1.5": ESCALATION,
    "escalation 1.25": {"escalation": 1.25},
    "escalation 2": {"escalation": 2.0},
    "re-arm below 0.5 for 12 points": REARM,
    "hour of week, 3 weeks": HOUR_OF_WEEK,
    "escalation 1.5 + hour of week": ESCALATION | HOUR_OF_WEEK,
    "escalation 1.5 + re-arm": ESCALATION | REARM,
    "re-arm + hour of week": REARM | HOUR_OF_WEEK,
    "escalation 1.5 + re-arm + hour of week": ESCALATION | REARM | HOUR_OF_WEEK,
    "context 16": CONTEXT,
    "context 16 + escalation 1.5": CONTEXT | ESCALATION,
    "context 16 + hour of week": CONTEXT | HOUR_OF_WEEK,
    "context 16 + re-arm": CONTEXT | REARM,
    "context 16 + escalation 1.5 + hour of week": CONTEXT | ESCALATION | HOUR_OF_WEEK,
    # (the designs above were named in advance; the preset is the one every fold chose)
    # The neighbours of the chosen design: the weeks, the bins, the bins' percentile.
    **{f"hour of week, {k} weeks": {"hour_of_week_weeks": k} for k in (1, 2, 4, 8)},
    **{f"context 16 + hour of week, {k} weeks": CONTEXT | {"hour_of_week_weeks": k}
       for k in (1, 2, 4, 8)},
    **{f"context {b} + hour of week": {"context_bins": b} | HOUR_OF_WEEK for b in (8, 12, 24)},
    **{f"context 16, percentile {q:g} + hour of week": CONTEXT | {"context_quantile": q} | HOUR_OF_WEEK
       for q in (0.5, 2.0)},
    "context 16 + hour of week + re-arm": CONTEXT | HOUR_OF_WEEK | REARM,
    "long pattern 96": {"pattern_long_window": 96},
    "long pattern 72 from 1 point": {"pattern_long_min": 1},
    "long pattern 72 from 24 points": {"pattern_long_min": 24},
    "long pattern 96 from 1 point": {"pattern_long_window": 96, "pattern_long_min": 1},
    "long pattern 96 from 24 points": {"pattern_long_window": 96, "pattern_long_min": 24},
    "long pattern 96 from 48 points": {"pattern_long_window": 96, "pattern_long_min": 48},
    "context 16 + hour of week + long pattern 96 from 24 points":
        CONTEXT | HOUR_OF_WEEK | {"pattern_long_window": 96, "pattern_long_min": 24},
}


NAMED_IN_ADVANCE = 15
"""The first designs: those the sixth attempt named before measuring (docs/anomalies.md)."""


def evaluate_options(corpus: Corpus, names: Sequence[str] | None = None) -> dict[str, Any]:
    w = corpus.profiles["standard"]
    report: dict[str, Any] = {}
    every: list[Candidate] = []
    rows = []
    for name, update in OPTION_DESIGNS.items():
        if names and name not in names:
            continue
        preset = EnsembleConfig(**(BEFORE | update))
        structures = {
            f"{name}: window={a} level_window={b}":
                ensemble_structure(preset.model_copy(update={"window": a, "level_window": b}))
            for a, b in itertools.product(*ENSEMBLE_GRID.values())
        }
        candidates, raw = sweep(corpus, structures, ENSEMBLE_THRESHOLDS, COOLDOWNS, w)
        logo = leave_one_group_out(corpus, candidates, raw, w)
        whole = whole_set(corpus, ensemble_fn(preset), preset.threshold, preset.cooldown)
        report[name] = {
            "whole_set": whole["standard"],
            "left_one_group_out": logo["mean_held_out_score"],
            "pooled_held_out": logo["pooled_held_out_score"],
            "reward_low_FP": whole["reward_low_FP_rate"],
            "reward_low_FN": whole["reward_low_FN_rate"],
            "windows_detected": whole["windows_detected"],
            "false_positives": whole["false_positives"],
            "per_group_whole_set": whole["per_group_standard"],
            "held_out": {g: f"{v['held_out_score']} ({v['chosen'][len(name) + 2:]})"
                         for g, v in logo["groups"].items()},
        }
        print(f"{name}: whole {whole['standard']} left one group out "
              f"{logo['mean_held_out_score']}", file=sys.stderr, flush=True)
        every += candidates
        rows.append(raw)
    per_design = len(every) // max(len(rows), 1)
    advance = [n for n in OPTION_DESIGNS if not names or n in names][:NAMED_IN_ADVANCE]
    for label, count in (("the designs named in advance", len(advance)),
                         ("all of the above", len(rows))):
        if len(rows) < 2 or (count == len(rows) and label != "all of the above"):
            continue
        logo = leave_one_group_out(corpus, every[:count * per_design],
                                   np.concatenate(rows[:count]), w)
        report[f"left one group out, choosing among {label}"] = {
            "mean_held_out_score": logo["mean_held_out_score"],
            **{g: f"{v['chosen']}: {v['held_out_score']}" for g, v in logo["groups"].items()},
        }
    return report


# ------------------------------------------------------------------ synthetic durations


@dataclass(frozen=True)
class Event:
    kind: str  # spike | shift | drift
    onset: int  # run index
    last: int  # last run index at which a detection still counts for this event


@dataclass(frozen=True)
class Series:
    times: list[datetime]
    values: list[float]
    events: list[Event]


SEASON_DAYS = 165
OFF_SEASON_DAYS = 60


def synthetic_series(seed: int) -> Series:
    """Two seasons of daily runs: weekly pattern, t(3) noise, gaps, labelled anomalies."""
    rng = np.random.default_rng(seed)
    start = datetime(2024, 10, 1, 6, 0, tzinfo=UTC)
    days = [d for d in range(SEASON_DAYS)]
    days += [d + SEASON_DAYS + OFF_SEASON_DAYS for d in range(SEASON_DAYS)]
    days = [d for d in days if rng.random() > 0.05]  # missing days
    n = len(days)
    times = [start + timedelta(days=d, minutes=float(rng.integers(0, 90))) for d in days]
    base = math.log(rng.uniform(60.0, 3600.0))
    weekly = rng.normal(0.0, 0.15, size=7)
    sigma = rng.uniform(0.04, 0.10)
    level = np.zeros(n)
    events: list[Event] = []
    # Non-overlapping slots for the anomalies, after the learning period.
    slots = rng.permutation(np.arange(40, n - 40, 25))
    kinds = ["spike", "spike", "spike", "shift", "drift", "down"]
    for kind, onset in zip(kinds, sorted(slots[: len(kinds)]), strict=False):
        onset = int(onset)
        if kind == "shift":
            level[onset:] += rng.uniform(0.2, 0.6)
            events.append(Event("shift", onset, onset + 10))
        elif kind == "down":  # faster runs: not an anomaly for a one-sided detector
            level[onset:] -= rng.uniform(0.3, 0.6)
        elif kind == "drift":
            length = int(rng.integers(15, 30))
            total = rng.uniform(0.4, 0.8)
            ramp = np.clip((np.arange(n) - onset + 1) / length, 0.0, 1.0) * total
            level += ramp
            events.append(Event("drift", onset, onset + length + 5))
        else:
            events.append(Event("spike", onset, onset + 1))
    spikes = {e.onset for e in events if e.kind == "spike"}
    values = []
    for i, d in enumerate(days):
        y = base + weekly[(start + timedelta(days=d)).weekday()] + level[i]
        y += sigma * float(rng.standard_t(3))
        if i in spikes:
            y += rng.uniform(0.7, 1.4)
        values.append(math.exp(y))
    return Series(times, values, sorted(events, key=lambda e: e.onset))


def evaluate_synthetic(seeds: Sequence[int], config: DetectorConfig) -> dict[str, float]:
    """Event-level scores: first flag inside an event's span detects it, others are FPs."""
    tp = fn = fp = normal_runs = 0
    delays: dict[str, list[int]] = {"spike": [], "shift": [], "drift": []}
    for seed in seeds:
        s = synthetic_series(seed)
        detector = RobustDetector(config)
        flags = [detector.update(t, v).is_anomaly for t, v in zip(s.times, s.values, strict=True)]
        owner = [-1] * len(flags)
        for k, e in enumerate(s.events):
            for i in range(e.onset, min(e.last, len(flags) - 1) + 1):
                owner[i] = k
        first: dict[int, int] = {}
        for i, flag in enumerate(flags):
            if owner[i] < 0:
                normal_runs += 1
                fp += flag
            elif flag and owner[i] not in first:
                first[owner[i]] = i
        for k, e in enumerate(s.events):
            if k in first:
                tp += 1
                delays[e.kind].append(first[k] - e.onset)
            else:
                fn += 1
    precision = tp / (tp + fp) if tp + fp else 0.0
    recall = tp / (tp + fn) if tp + fn else 0.0
    f1 = 2 * precision * recall / (precision + recall) if precision + recall else 0.0
    out: dict[str, float] = {
        "events": tp + fn,
        "detected": tp,
        "false_positives": fp,
        "precision": precision,
        "recall": recall,
        "f1": f1,
        "fp_per_100_normal_runs": 100.0 * fp / normal_runs if normal_runs else 0.0,
    }
    for kind, ds in delays.items():
        out[f"median_delay_{kind}_runs"] = statistics.median(ds) if ds else float("nan")
    return out


# ------------------------------------------------------------------------- throughput


def timed(fn: Callable[[], object], runs: int) -> dict[str, float]:
    """Median and spread (min-max) of wall and CPU seconds over ``runs`` runs."""
    wall, cpu = [], []
    for _ in range(runs):
        w0, c0 = time.perf_counter(), time.process_time()
        fn()
        wall.append(time.perf_counter() - w0)
        cpu.append(time.process_time() - c0)
    return {"wall_s": statistics.median(wall), "wall_min_s": min(wall), "wall_max_s": max(wall),
            "cpu_s": statistics.median(cpu)}


def throughput(n_points: int, runs: int) -> dict[str, Any]:
    """Points per second: the ensemble in chunks vs RobustDetector.update vs numpy batch."""
    rng = np.random.default_rng(7)
    values = np.exp(5.0 + 0.1 * rng.standard_t(3, size=n_points))
    seconds = 946_684_800.0 + 300.0 * np.arange(n_points)
    chunk = 8192

    def ensemble(config: EnsembleConfig | None = None) -> None:
        detector = EnsembleDetector(config)
        for lo in range(0, n_points, chunk):
            detector.detect(seconds[lo:lo + chunk], values[lo:lo + chunk])

    def ensemble_before() -> None:  # the preset before: no context, no hour of the week
        ensemble(EnsembleConfig(**BEFORE))

    def ensemble_without_long_pattern() -> None:
        ensemble(EnsembleConfig(**BEFORE, pattern_long_window=0))

    def ensemble_without_forecast() -> None:
        ensemble(EnsembleConfig(**BEFORE, forecast=False))

    robust_n = min(n_points, 200_000)
    start = datetime(2000, 1, 1, tzinfo=UTC)
    times = [start + timedelta(minutes=5 * i) for i in range(robust_n)]
    listed = values[:robust_n].tolist()

    def robust() -> None:
        update = RobustDetector(DetectorConfig(window=56)).update
        for t, v in zip(times, listed, strict=True):
            update(t, v)

    def batch() -> None:  # trailing median/MAD of 56 points, slices of bounded memory
        y = np.log(values)
        view = np.lib.stride_tricks.sliding_window_view(y, 56)
        for lo in range(0, len(view), 100_000):
            part = view[lo:lo + 100_000]
            med = np.median(part, axis=1)
            np.median(np.abs(part - med[:, None]), axis=1)

    out: dict[str, Any] = {"points": n_points, "runs": runs}
    for name, fn, n in (("ensemble_chunks", ensemble, n_points),
                        ("ensemble_chunks_the_preset_before", ensemble_before, n_points),
                        ("ensemble_chunks_without_the_long_pattern_either",
                         ensemble_without_long_pattern, n_points),
                        ("ensemble_chunks_without_forecast", ensemble_without_forecast, n_points),
                        ("robust_update", robust, robust_n),
                        ("numpy_batch_median_mad", batch, n_points)):
        t = timed(fn, runs)
        out[f"{name}_per_s"] = round(n / t["wall_s"])
        out[f"{name}_per_cpu_s"] = round(n / t["cpu_s"])
        out[f"{name}_spread_per_s"] = f"{n / t['wall_max_s']:,.0f} to {n / t['wall_min_s']:,.0f}"
    return out


def scan_path(n_rows: int, runs: int) -> dict[str, Any]:
    """``phasewatch anomaly scan`` of an n-row CSV per preset: wall and children's CPU."""
    rng = np.random.default_rng(3)
    out: dict[str, Any] = {"rows": n_rows, "runs": runs}
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "metric.csv"
        start = datetime(2020, 1, 1, tzinfo=UTC)
        values = 50.0 + 5.0 * rng.standard_normal(n_rows)
        with path.open("w") as fh:
            fh.write("timestamp,value\n")
            for i, v in enumerate(values.tolist()):
                fh.write(f"{(start + timedelta(minutes=5 * i)):%Y-%m-%d %H:%M:%S},{v:.3f}\n")
        for preset in ("generic", "duration"):
            cmd = [str(Path(sys.executable).parent / "phasewatch"), "anomaly", "scan", str(path),
                   "--preset", preset, "--json"]
            wall, cpu = [], []
            for _ in range(runs):
                before = os.times()
                w0 = time.perf_counter()
                subprocess.run(cmd, capture_output=True, check=False)
                wall.append(time.perf_counter() - w0)
                after = os.times()
                cpu.append((after.children_user - before.children_user)
                           + (after.children_system - before.children_system))
            out[f"{preset}_rows_per_s"] = round(n_rows / statistics.median(wall))
            out[f"{preset}_rows_per_cpu_s"] = round(n_rows / statistics.median(cpu))
            out[f"{preset}_spread_rows_per_s"] = f"{n_rows / max(wall):,.0f} to {n_rows / min(wall):,.0f}"
    return out


# ------------------------------------------------------------------------------ main


def _plain(o: object) -> object:
    """numpy scalars (a median of row numbers) as Python numbers, for ``--json``."""
    if isinstance(o, np.generic):
        return o.item()
    raise TypeError(f"{type(o).__name__} is not JSON serializable")


def show(report: dict[str, Any], indent: str = "") -> None:
    for key, value in report.items():
        if isinstance(value, dict):
            print(f"{indent}{key}")
            show(value, indent + "  ")
        else:
            shown = f"{value:,.3f}" if isinstance(value, float) else str(value)
            print(f"{indent}  {key:34s} {shown}")


def main() -> None:
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="small smoke run")
    parser.add_argument("--json", action="store_true", help="print one JSON object")
    parser.add_argument("--variants", action="store_true",
                        help="only the NAB variants of the ensemble's post-processing (about 2 min)")
    parser.add_argument("--options", nargs="*", metavar="DESIGN",
                        help="only NAB: the ensemble's options alone and stacked, each whole set "
                        "and left one group out (all designs, or those named; about 15 min)")
    args = parser.parse_args()
    report: dict[str, Any] = {}

    root = shared_dir() / "data" / "nab"
    if args.options is not None:
        if not root.is_dir():
            sys.exit(f"error: {root} not found (set PHASEWATCH_SHARED)")
        unknown = sorted(set(args.options) - set(OPTION_DESIGNS))
        if unknown:
            sys.exit(f"error: unknown design {unknown}; allowed: {', '.join(OPTION_DESIGNS)}")
        corpus = Corpus(load_corpus(root), load_profiles(root))
        report["nab_options"] = evaluate_options(corpus, args.options)
        print(json.dumps(report, indent=2, default=_plain)) if args.json else show(report)
        return
    if args.variants:
        if not root.is_dir():
            sys.exit(f"error: {root} not found (set PHASEWATCH_SHARED)")
        report["nab_variants"] = evaluate_variants(Corpus(load_corpus(root), load_profiles(root)))
        print(json.dumps(report, indent=2, default=_plain)) if args.json else show(report)
        return
    if root.is_dir():
        files = load_corpus(root)
        if args.quick:  # two files that hold labelled windows (some groups have none)
            files = [f for f in files if f.windows][:2]
        report["nab"] = evaluate_nab(Corpus(files, load_profiles(root)), args.quick)
    else:
        report["nab"] = f"skipped: {root} not found (set PHASEWATCH_SHARED)"

    seeds = range(3) if args.quick else range(40)
    report["synthetic_duration_defaults"] = evaluate_synthetic(seeds, DetectorConfig())
    runs = 1 if args.quick else 5
    report["throughput"] = throughput(20_000 if args.quick else 1_000_000, runs)
    if not args.quick:
        report["anomaly_scan_cli"] = scan_path(200_000, runs)

    if args.json:
        print(json.dumps(report, indent=2, default=_plain))
        return
    show(report)


if __name__ == "__main__":
    main()
