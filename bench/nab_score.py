"""The NAB corpus and its scoring, as numenta/NAB's ``sweeper.py`` and ``runner.py`` define them.

Lavin & Ahmad 2015, "Evaluating Real-time Anomaly Detection Algorithms", and the code of
NAB 1.1 (``Sweeper.calcSweepScore``, ``calcScoreByThreshold``, ``Runner.normalize``):

- the first ``min(floor(0.15 n), 0.15 * 5000)`` rows of a file are probationary: never
  scored, neither as detections nor as the windows they hold;
- a flagged row inside a labelled window scores ``tp * S(-(right - i + 1) / width) / S(-1)``
  with ``S(x) = 2 / (1 + exp(5x)) - 1`` (``-1`` once ``x >= 3``); a window keeps its best
  (earliest) detection, and a window with none costs ``-fn``;
- a flagged row outside every window scores ``fp * S(|prev_right - i| / (prev_width - 1))``,
  where ``prev`` is the last window that ended before it, and ``fp * S(3) = -fp`` before any;
- a set of files is scored by the sum of their raw scores, normalised as
  ``100 * (raw - null) / (perfect - null)``: the null detector flags nothing
  (``-fn`` per scorable window), the perfect one scores ``tp`` per window.

Only the detections matter, so a detector's threshold is part of its parameter set here.
"""

from __future__ import annotations

import csv
import json
import math
import os
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

import numpy as np
import numpy.typing as npt

PROBATION_PERCENT = 0.15
PROFILES = ("standard", "reward_low_FP_rate", "reward_low_FN_rate")


@dataclass(frozen=True)
class Weights:
    """One NAB application profile's cost matrix."""

    tp: float
    fp: float
    fn: float


def probation_rows(n_rows: int) -> int:
    """Rows not scored at the start of a file: 15 % of it, at most 750 (15 % of 5000)."""
    return int(min(math.floor(PROBATION_PERCENT * n_rows), PROBATION_PERCENT * 5000))


def scaled_sigmoid(x: float) -> float:
    """NAB's ``scaledSigmoid``: 2 * sigmoid(-5x) - 1, and -1 from three window widths on."""
    if x >= 3.0:
        return -1.0
    return 2.0 / (1.0 + math.exp(5.0 * x)) - 1.0


@dataclass(frozen=True)
class NabFile:
    """One data file: rows in file order, windows as inclusive row ranges."""

    group: str
    name: str
    times: list[datetime]
    values: npt.NDArray[np.float64]
    windows: list[tuple[int, int]]
    labels: list[int]  # rows of the labelled anomalies (a window may hold two)

    @property
    def seconds(self) -> npt.NDArray[np.float64]:
        return np.array([t.timestamp() for t in self.times])


class FileScorer:
    """Per-row sweep weights of one file, so any set of detections scores in O(detections)."""

    def __init__(self, n_rows: int, windows: Sequence[tuple[int, int]]) -> None:
        self.n_rows = n_rows
        self.probation = probation_rows(n_rows)
        self.window_of = np.full(n_rows, -1, dtype=np.int64)
        self.tp_position = np.zeros(n_rows)  # S(position) / S(-1) inside a window
        self.fp_position = np.full(n_rows, -1.0)  # S(distance past the previous window)
        max_tp = scaled_sigmoid(-1.0)
        prev: tuple[int, int] | None = None
        cursor = 0
        for k, (left, right) in enumerate(windows):
            width = right - left + 1
            self._fill_fp(cursor, left, prev)
            for i in range(left, right + 1):
                self.window_of[i] = k
                self.tp_position[i] = scaled_sigmoid(-(right - i + 1) / width) / max_tp
            prev, cursor = (right, width), right + 1
        self._fill_fp(cursor, n_rows, prev)
        # A window counts only if some row of it is past the probation (NAB's score parts).
        self.scorable = [right >= self.probation for _, right in windows]

    def _fill_fp(self, lo: int, hi: int, prev: tuple[int, int] | None) -> None:
        if prev is None:
            return  # stays -1: before the first window
        right, width = prev
        for i in range(lo, hi):
            self.fp_position[i] = scaled_sigmoid(abs(right - i) / (width - 1)) if width > 1 else -1.0

    @property
    def windows(self) -> int:
        return sum(self.scorable)

    def score(self, flagged: Iterable[int], w: Weights) -> FileScore:
        """Raw NAB score of the flagged rows (indices in any order)."""
        best: dict[int, float] = {}
        fp_sum = 0.0
        false_positives = 0
        first: dict[int, int] = {}
        for i in flagged:
            if i < self.probation:
                continue
            k = int(self.window_of[i])
            if k < 0:
                fp_sum += w.fp * float(self.fp_position[i])
                false_positives += 1
            else:
                value = w.tp * float(self.tp_position[i])
                if value > best.get(k, -math.inf):
                    best[k] = value
                    first[k] = i
        raw = fp_sum
        for k, ok in enumerate(self.scorable):
            if ok:
                raw += max(-w.fn, best.get(k, -w.fn))
        return FileScore(raw, self.windows, len(best), false_positives, fp_sum, first)


@dataclass(frozen=True)
class FileScore:
    """NAB score of one file's detections, and what it is made of."""

    raw: float
    windows: int
    detected: int
    false_positives: int
    fp_cost: float
    first_detection: dict[int, int]  # window index -> row of its earliest detection


def normalised(raw_total: float, n_windows: int, w: Weights) -> float:
    """``100 * (raw - null) / (perfect - null)``; a set without windows has no scale: NaN."""
    if n_windows == 0:
        return math.nan
    null = -w.fn * n_windows
    return 100.0 * (raw_total - null) / (w.tp * n_windows - null)


def shared_dir() -> Path:
    """The shared folder: ``$PHASEWATCH_SHARED``, else ``../shared`` next to the repo."""
    override = os.environ.get("PHASEWATCH_SHARED")
    if override:
        return Path(override)
    return Path(__file__).resolve().parents[1].parent / "shared"


def load_profiles(root: Path) -> dict[str, Weights]:
    """NAB's three application profiles from ``profiles.json``."""
    raw = json.loads((root / "profiles.json").read_text())
    out = {}
    for name in PROFILES:
        m = raw[name]["CostMatrix"]
        out[name] = Weights(tp=m["tpWeight"], fp=m["fpWeight"], fn=m["fnWeight"])
    return out


def load_corpus(root: Path) -> list[NabFile]:
    """Every labelled file, rows in file order (some step back in time: NAB keeps them).

    A window's ends are the first rows carrying its start and end stamps, as NAB's
    ``timestamps.index`` finds them.
    """
    labels = json.loads((root / "labels" / "combined_windows.json").read_text())
    points = json.loads((root / "labels" / "combined_labels.json").read_text())
    files = []
    for name in sorted(labels):
        with (root / "data" / name).open(newline="") as fh:
            rows = list(csv.DictReader(fh))
        stamps = [r["timestamp"] for r in rows]
        first_row: dict[str, int] = {}
        for i, s in enumerate(stamps):
            first_row.setdefault(s, i)
        windows = [(first_row[a[:19]], first_row[b[:19]]) for a, b in labels[name]]
        times = [datetime.fromisoformat(s).replace(tzinfo=UTC) for s in stamps]
        values = np.array([float(r["value"]) for r in rows])
        marks = [first_row[p[:19]] for p in points.get(name, [])]
        files.append(NabFile(name.split("/")[0], name, times, values, windows, marks))
    return files
