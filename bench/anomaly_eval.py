"""Evaluate the streaming anomaly detector; prints figures, asserts nothing.

    python bench/anomaly_eval.py            # NAB subset, synthetic durations, throughput
    python bench/anomaly_eval.py --quick    # a smoke run in a few seconds

(a) NAB subset (``$PHASEWATCH_SHARED`` or ``../shared`` next to the repo): the streaming
    protocol (no look-ahead, one parameter set for every file, state reset per file, the
    first 15 % of rows, at most 750, not scored but learnt from), NAB standard-profile
    score implemented below from the published definition, window precision/recall/F1.
(b) A synthetic suite of daily durations from fixed seeds, with the one-sided duration
    defaults: F1, detection delays, false positives per 100 normal runs.
(c) Throughput: points per second through ``RobustDetector.update`` vs a batch numpy
    trailing median/MAD over the same data.
"""

from __future__ import annotations

import argparse
import csv
import json
import math
import os
import statistics
import time
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path

import numpy as np

from slo.anomaly import GENERIC, DetectorConfig, RobustDetector

# --------------------------------------------------------------------------- NAB scoring
# Lavin & Ahmad 2015, "Evaluating Real-time Anomaly Detection Algorithms": per labelled
# window only the earliest detection counts, weighted by a scaled sigmoid of its position
# (1 at the window's start, ~0 at its end); a missed window costs the FN weight; a
# detection outside every window costs the FP weight times the scaled sigmoid of its
# distance past the preceding window in window widths (-1 when none precedes it).


@dataclass(frozen=True)
class Weights:
    """One NAB application profile's cost matrix."""

    tp: float
    fp: float
    fn: float


@dataclass(frozen=True)
class FileScore:
    """NAB score of one file's binary detections."""

    raw: float
    windows: int
    detected: int
    false_positives: int


def probation_rows(n_rows: int) -> int:
    """Rows not scored at the start of a file: 15 % of it, at most 750 (15 % of 5000)."""
    return min(math.floor(0.15 * n_rows), 750)


def scaled_sigmoid(x: float) -> float:
    """2 * sigmoid(-5x) - 1; -1 beyond three window widths past a window."""
    if x > 3.0:
        return -1.0
    return 2.0 / (1.0 + math.exp(5.0 * x)) - 1.0


def score_file(flags: Sequence[bool], windows: Sequence[tuple[int, int]], w: Weights) -> FileScore:
    """Raw NAB score; ``windows`` are inclusive row ranges in time order."""
    probation = probation_rows(len(flags))
    max_tp = scaled_sigmoid(-1.0)
    raw = 0.0
    detected = false_positives = 0
    nxt = 0  # index of the first window not yet passed
    prev_end: int | None = None
    prev_width = 0
    hit = False
    for i, flag in enumerate(flags):
        while nxt < len(windows) and i > windows[nxt][1]:
            prev_end = windows[nxt][1]
            prev_width = windows[nxt][1] - windows[nxt][0] + 1
            nxt += 1
            hit = False
        if not flag or i < probation:
            continue
        if nxt < len(windows) and windows[nxt][0] <= i:
            if not hit:
                start, end = windows[nxt]
                raw += w.tp * scaled_sigmoid(-(end - i + 1) / (end - start + 1)) / max_tp
                hit = True
                detected += 1
        else:
            false_positives += 1
            if prev_end is None:
                raw -= w.fp
            else:
                raw += w.fp * scaled_sigmoid(abs(prev_end - i) / (prev_width - 1))
    raw -= w.fn * (len(windows) - detected)
    return FileScore(raw, len(windows), detected, false_positives)


def normalised(raw_total: float, n_windows: int, w: Weights) -> float:
    """100 * (raw - null) / (perfect - null): null misses every window, perfect hits each start."""
    null = -w.fn * n_windows
    if n_windows == 0:  # nothing to find: only false positives count, and the scale is undefined
        return 0.0
    return 100.0 * (raw_total - null) / (w.tp * n_windows - null)


def shared_dir() -> Path:
    """The shared folder: ``$PHASEWATCH_SHARED``, else ``../shared`` next to the repo."""
    override = os.environ.get("PHASEWATCH_SHARED")
    if override:
        return Path(override)
    return Path(__file__).resolve().parents[1].parent / "shared"


@dataclass(frozen=True)
class NabFile:
    name: str
    times: list[datetime]
    values: list[float]
    windows: list[tuple[int, int]]


def load_nab(root: Path) -> tuple[list[NabFile], Weights]:
    """The labelled files, their windows as row ranges, and the standard profile."""
    labels = json.loads((root / "labels" / "combined_windows.json").read_text())
    profile = json.loads((root / "profiles.json").read_text())["standard"]["CostMatrix"]
    weights = Weights(tp=profile["tpWeight"], fp=profile["fpWeight"], fn=profile["fnWeight"])
    files = []
    for name in sorted(labels):
        with (root / "data" / name).open(newline="") as fh:
            rows = list(csv.DictReader(fh))
        stamps = [r["timestamp"] for r in rows]
        row_of = {s: i for i, s in enumerate(stamps)}
        windows = [(row_of[a[:19]], row_of[b[:19]]) for a, b in labels[name]]
        times = [datetime.fromisoformat(s).replace(tzinfo=UTC) for s in stamps]
        files.append(NabFile(name, times, [float(r["value"]) for r in rows], windows))
    return files, weights


def evaluate_nab(files: Sequence[NabFile], weights: Weights, config: DetectorConfig) -> dict[str, float]:
    """Score one parameter set over every file, a fresh detector per file."""
    raw = 0.0
    windows = detected = fps = 0
    for f in files:
        detector = RobustDetector(config)
        flags = [detector.update(t, v).is_anomaly for t, v in zip(f.times, f.values, strict=True)]
        s = score_file(flags, f.windows, weights)
        raw += s.raw
        windows += s.windows
        detected += s.detected
        fps += s.false_positives
    precision = detected / (detected + fps) if detected + fps else 0.0
    recall = detected / windows if windows else 0.0
    f1 = 2 * precision * recall / (precision + recall) if precision + recall else 0.0
    return {
        "score": normalised(raw, windows, weights),
        "windows": windows,
        "detected": detected,
        "false_positives": fps,
        "precision": precision,
        "recall": recall,
        "f1": f1,
    }


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


def throughput(n_points: int, window: int) -> dict[str, float]:
    """Streaming points/s (full detector, defaults) vs a batch numpy trailing median/MAD."""
    rng = np.random.default_rng(7)
    values = np.exp(5.0 + 0.1 * rng.standard_t(3, size=n_points)).tolist()
    start = datetime(2000, 1, 1, tzinfo=UTC)
    times = [start + timedelta(minutes=5 * i) for i in range(n_points)]
    detector = RobustDetector(DetectorConfig(window=window))
    update = detector.update
    t0 = time.perf_counter()
    for t, v in zip(times, values, strict=True):
        update(t, v)
    streaming = n_points / (time.perf_counter() - t0)

    t0 = time.perf_counter()
    y = np.log(np.asarray(values))
    windows = np.lib.stride_tricks.sliding_window_view(y, window)
    chunk = 100_000  # bounded memory: the (n, window) copies are made a slice at a time
    for lo in range(0, len(windows), chunk):
        part = windows[lo : lo + chunk]
        med = np.median(part, axis=1)
        np.median(np.abs(part - med[:, None]), axis=1)
    batch = n_points / (time.perf_counter() - t0)
    return {"points": n_points, "window": window, "streaming_per_s": streaming,
            "batch_numpy_per_s": batch, "streaming_over_batch": streaming / batch}


# ------------------------------------------------------------------------------ main


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="small smoke run")
    parser.add_argument("--json", action="store_true", help="print one JSON object")
    args = parser.parse_args()
    report: dict[str, object] = {}

    root = shared_dir() / "data" / "nab"
    if root.is_dir():
        files, weights = load_nab(root)
        if args.quick:  # two files that hold labelled windows (some groups have none)
            files = [f for f in files if f.windows][:2]
        report["nab_generic_preset"] = evaluate_nab(files, weights, GENERIC)
        report["nab_duration_defaults_two_sided"] = evaluate_nab(
            files, weights, DetectorConfig(direction="both")
        )
    else:
        report["nab"] = f"skipped: {root} not found (set PHASEWATCH_SHARED)"

    seeds = range(3) if args.quick else range(40)
    report["synthetic_duration_defaults"] = evaluate_synthetic(seeds, DetectorConfig())
    report["throughput"] = throughput(20_000 if args.quick else 1_000_000, DetectorConfig().window)

    if args.json:
        print(json.dumps(report, indent=2))
        return
    for section, figures in report.items():
        print(f"== {section}")
        if isinstance(figures, dict):
            for key, value in figures.items():
                shown = f"{value:,.3f}" if isinstance(value, float) else str(value)
                print(f"  {key:28s} {shown}")
        else:
            print(f"  {figures}")


if __name__ == "__main__":
    main()
