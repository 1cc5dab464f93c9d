"""Streaming anomaly detection on pipeline durations and lateness, and adaptive timeouts.

The ensemble detector's names load on first use (PEP 562): it needs numpy, which only
``phasewatch anomaly scan`` with the generic preset uses, and every module of the service
imports this package (its config section).
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from monitor.lazy import lazy_exports
from slo.anomaly.config import (
    GENERIC,
    AnomalyConfig,
    DetectorConfig,
    EnsembleConfig,
    TimeoutConfig,
)
from slo.anomaly.detector import NO_DECISION, Decision, Kind, RobustDetector
from slo.anomaly.registry import (
    Observation,
    SeriesDetectors,
    SeriesKey,
    SeriesKind,
    lateness_s,
)
from slo.anomaly.scan import Flagged, scan
from slo.anomaly.timeouts import TimeoutDecision, adaptive_timeout

if TYPE_CHECKING:
    from slo.anomaly.ensemble import EnsembleDecision, EnsembleDetector, EnsembleKind

_ENSEMBLE = ("EnsembleDecision", "EnsembleDetector", "EnsembleKind")

__all__ = [
    "GENERIC",
    "NO_DECISION",
    "AnomalyConfig",
    "Decision",
    "DetectorConfig",
    "EnsembleConfig",
    "EnsembleDecision",
    "EnsembleDetector",
    "EnsembleKind",
    "Flagged",
    "Kind",
    "Observation",
    "RobustDetector",
    "SeriesDetectors",
    "SeriesKey",
    "SeriesKind",
    "TimeoutConfig",
    "TimeoutDecision",
    "adaptive_timeout",
    "lateness_s",
    "scan",
]


# The ensemble detector (numpy) is imported on first use.
__getattr__ = lazy_exports(__name__, dict.fromkeys(_ENSEMBLE, "slo.anomaly.ensemble"))
