"""The core of ``phasewatch anomaly scan``: stream rows through one detector, keep the flags.

The ensemble detector (numpy) is imported when a scan uses it: the service, which imports this
module for ``REASONS``, and its CLI commands never load numpy.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from datetime import datetime
from itertools import islice
from typing import TYPE_CHECKING, NamedTuple

from slo.anomaly.config import DetectorConfig, EnsembleConfig
from slo.anomaly.detector import Kind, RobustDetector

if TYPE_CHECKING:
    from slo.anomaly.ensemble import EnsembleKind

CHUNK = 4096
REASONS: dict[str, str] = {
    "spike": "spike",
    "seasonal": "seasonal deviation",
    "shift": "level shift",
    "drift": "drift",
    "burst": "burst of unusual values",
    "forecast": "off its forecast",
    "pattern": "run of values off their forecast",
}
"""A flagged point's kind in words (alerts, ``anomaly scan``)."""


class Flagged(NamedTuple):
    """A row the detector flagged, with what it expected and why it flagged it."""

    time: datetime
    value: float
    expected: float
    lower: float
    upper: float
    score: float
    kind: Kind | EnsembleKind

    @property
    def reason(self) -> str:
        return REASONS[self.kind]


def scan(
    rows: Iterable[tuple[datetime, float]], config: DetectorConfig | EnsembleConfig | None = None
) -> Iterator[Flagged]:
    """Run one streaming detector over ``rows`` and yield the flagged rows.

    A :class:`DetectorConfig` runs :class:`RobustDetector` point by point; an
    :class:`EnsembleConfig` runs :class:`EnsembleDetector` over chunks of rows (the same
    verdicts, faster).
    """
    if isinstance(config, EnsembleConfig):
        yield from _scan_ensemble(rows, config)
        return
    detector = RobustDetector(config)
    for at, value in rows:
        d = detector.update(at, value)
        if d.is_anomaly and d.expected is not None and d.kind is not None:
            assert d.lower is not None and d.upper is not None
            yield Flagged(at, value, d.expected, d.lower, d.upper, d.score, d.kind)


def _scan_ensemble(rows: Iterable[tuple[datetime, float]], config: EnsembleConfig) -> Iterator[Flagged]:
    from slo.anomaly.ensemble import KINDS, EnsembleDetector

    detector = EnsembleDetector(config)
    it = iter(rows)
    while chunk := list(islice(it, CHUNK)):
        verdicts = detector.detect([at.timestamp() for at, _ in chunk], [v for _, v in chunk])
        s = verdicts.scores
        for i in verdicts.flagged.nonzero()[0].tolist():
            at, value = chunk[i]
            yield Flagged(at, value, float(s.expected[i]), float(s.lower[i]), float(s.upper[i]),
                          float(s.score[i]), KINDS[int(s.kind[i])])
