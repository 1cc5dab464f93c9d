"""Severity by blast radius: critical only when something downstream waits on the subject.

Emitters propose a severity (the catalogue says which); the router applies this policy to
every alert before anything else sees it, so one rule holds for all of them: an alert about
one processor that is optional in its phase (nothing is blocked when it fails) is at most
``severity.optional_processor`` (warning). Configured overrides by alertname come last.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import replace
from typing import TYPE_CHECKING, cast

from alerts.config import SeverityConfig
from alerts.model import SEVERITY_RANK, Alert, Severity

if TYPE_CHECKING:
    from monitor.config import Config

MODES = ("overnight", "same_day", "tomorrow", "backfill")
# (pipeline, phase) -> mode ("" for any) -> the processors that are critical there
CriticalMap = Mapping[tuple[str, str], Mapping[str, frozenset[str]]]


def critical_processors(config: Config) -> dict[tuple[str, str], dict[str, frozenset[str]]]:
    """Per pipeline and phase: its critical processors in each mode, and in any mode ("")."""
    out: dict[tuple[str, str], dict[str, frozenset[str]]] = {}
    for pipeline in config.pipelines:
        for phase in pipeline.phases:
            by_mode = {m: frozenset(phase.expectation(m).critical) for m in MODES}
            by_mode[""] = frozenset().union(*by_mode.values())
            out[(pipeline.id, phase.id)] = by_mode
    return out


class SeverityPolicy:
    """Caps the severity of alerts whose blast radius is one optional processor."""

    def __init__(self, critical: CriticalMap, cfg: SeverityConfig) -> None:
        self.critical = critical
        self.cfg = cfg

    def apply(self, alert: Alert) -> Alert:
        severity = self.severity(alert)
        return alert if severity == alert.severity else replace(alert, severity=severity)

    def severity(self, alert: Alert) -> Severity:
        """The severity ``alert`` is sent with."""
        severity = alert.severity
        labels = alert.labels
        processor = labels.get("processor")
        if processor and not self.is_critical(labels.get("pipeline", ""), labels.get("phase", ""),
                                              processor, labels.get("mode", "")):
            cap = cast(Severity, self.cfg.optional_processor)
            if SEVERITY_RANK[severity] > SEVERITY_RANK[cap]:
                severity = cap
        return self.cfg.overrides.get(alert.name, severity)

    def is_critical(self, pipeline: str, phase: str, processor: str, mode: str = "") -> bool:
        """Whether the phase waits for ``processor`` (in ``mode``; any mode when empty).

        Unknown pipelines or phases count as critical: the policy only lowers what it knows.
        """
        by_mode = self.critical.get((pipeline, phase))
        if by_mode is None:
            return True
        return processor in by_mode.get(mode, by_mode[""])
