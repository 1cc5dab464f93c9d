"""Streaming anomaly detection on pipeline durations and lateness, and adaptive timeouts."""

from slo.anomaly.config import (
    GENERIC,
    AnomalyConfig,
    DetectorConfig,
    EnsembleConfig,
    TimeoutConfig,
)
from slo.anomaly.detector import NO_DECISION, Decision, Kind, RobustDetector
from slo.anomaly.ensemble import EnsembleDecision, EnsembleDetector, EnsembleKind
from slo.anomaly.registry import (
    Observation,
    SeriesDetectors,
    SeriesKey,
    SeriesKind,
    lateness_s,
)
from slo.anomaly.scan import Flagged, scan
from slo.anomaly.timeouts import TimeoutDecision, adaptive_timeout

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
