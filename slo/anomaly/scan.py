"""The core of ``phasewatch anomaly scan``: stream rows through one detector, keep the flags."""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from datetime import datetime
from typing import NamedTuple

from slo.anomaly.config import DetectorConfig
from slo.anomaly.detector import Kind, RobustDetector


class Flagged(NamedTuple):
    """A row the detector flagged."""

    time: datetime
    value: float
    expected: float
    score: float
    kind: Kind


def scan(
    rows: Iterable[tuple[datetime, float]], config: DetectorConfig | None = None
) -> Iterator[Flagged]:
    """Run one streaming detector over ``rows`` (time order) and yield the flagged rows."""
    detector = RobustDetector(config)
    for at, value in rows:
        decision = detector.update(at, value)
        if decision.is_anomaly and decision.expected is not None and decision.kind is not None:
            yield Flagged(at, value, decision.expected, decision.score, decision.kind)
