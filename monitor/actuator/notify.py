"""Alerts the actuator raises, keyed per subject so that repeats deduplicate in the router."""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime

from alerts.model import Alert, Severity, alert_key
from alerts.router import Router

log = logging.getLogger(__name__)

Explainer = Callable[[str, Mapping[str, str]], Sequence[str]]
"""What another component knows about an alert's subject, as lines for its details: given
the alert's kind and labels (a scheduler job of its phase that a person paused)."""


@dataclass(frozen=True)
class Raised:
    """One alert the actuator fired or resolved (its own record, in time order)."""

    at: datetime
    action: str  # fire | resolve
    kind: str
    key: str
    severity: str
    summary: str
    labels: Mapping[str, str]


class Notifier:
    """Fires and resolves the actuator's alerts through the shared router (one at a time)."""

    def __init__(self, router: Router, history_limit: int = 10_000) -> None:
        self._router = router
        self._lock = threading.Lock()
        self._firing: dict[str, str] = {}  # key -> severity
        self.raised: list[Raised] = []
        self._limit = history_limit
        self.explainers: list[Explainer] = []

    @staticmethod
    def key(kind: str, labels: Mapping[str, str | None]) -> str:
        return alert_key(kind, _clean(labels))

    def fire(self, kind: str, severity: Severity, summary: str, at: datetime,
             labels: Mapping[str, str | None], details: str = "",
             annotations: Mapping[str, str] | None = None) -> str:
        """Fire (or repeat) an alert; ``annotations`` are labels outside its key (a cause, a
        category), so the same subject keeps one key and resolves by its ``labels``."""
        clean = _clean(labels)
        key = alert_key(kind, clean)
        shown = {**(annotations or {}), **clean}
        details = "\n".join(line for line in (details, *self._explain(kind, clean)) if line)
        alert = Alert(key, severity, summary, at, details, {"alertname": kind, **shown})
        with self._lock:
            self._router.fire(alert)
            if self._firing.get(key) != severity:  # new, or escalated / de-escalated
                self._firing[key] = severity
                self._record(Raised(at, "fire", kind, key, severity, summary, shown))
        return key

    def _explain(self, kind: str, labels: Mapping[str, str]) -> list[str]:
        lines: list[str] = []
        for explain in self.explainers:
            try:
                lines.extend(explain(kind, labels))
            except Exception:  # context is a courtesy: never let it stop the alert
                log.exception("event=notify.explainer_failed kind=%s", kind)
        return lines

    def resolve(self, kind: str, labels: Mapping[str, str | None], at: datetime) -> None:
        clean = _clean(labels)
        key = alert_key(kind, clean)
        with self._lock:
            self._router.resolve(key, at)
            if key in self._firing:
                del self._firing[key]
                self._record(Raised(at, "resolve", kind, key, "", "", clean))

    def firing(self, kind: str, labels: Mapping[str, str | None]) -> bool:
        """Whether the router has the alert of ``kind`` about ``labels`` firing (also one an
        earlier process fired: the router's episodes are durable)."""
        key = alert_key(kind, _clean(labels))
        with self._lock:
            return any(a.key == key for a in self._router.active())

    def active(self, kind: str) -> list[dict[str, str]]:
        """The labels of the router's firing alerts of ``kind``, including those an earlier
        process fired (the router's episodes are durable): a watch that keeps what it fired
        in memory adopts them on start, or they would never resolve."""
        with self._lock:
            alerts = self._router.active()
        found = [_labels_of(a.labels) for a in alerts]
        # The key check skips alerts fired with annotations (labels outside their key).
        return [labels for a, labels in zip(alerts, found, strict=True)
                if a.key == alert_key(kind, labels)]

    def notice(self, kind: str, summary: str, at: datetime, labels: Mapping[str, str | None],
               details: str = "") -> None:
        """An info notification, not a lasting condition: raised and cleared at the same
        instant, which the router tells once and never resolves (nor reminds)."""
        self.fire(kind, "info", summary, at, labels, details)
        self.resolve(kind, labels, at)

    def expire(self, now: datetime) -> None:
        """Nothing to expire: notices clear as they are raised (kept for the tick's call)."""

    def _record(self, raised: Raised) -> None:
        self.raised.append(raised)
        if len(self.raised) > self._limit:
            del self.raised[: len(self.raised) - self._limit]


def _labels_of(shown: Mapping[str, str]) -> dict[str, str]:
    return {k: v for k, v in shown.items() if k != "alertname"}


def _clean(labels: Mapping[str, str | None]) -> dict[str, str]:
    return {k: v for k, v in labels.items() if v is not None}


def run_labels(pipeline: str, run_date: str, mode: str, phase: str | None = None,
               **extra: str | None) -> dict[str, str | None]:
    """The labels of an alert about one run (and phase, processor, service...)."""
    return {"pipeline": pipeline, "run_date": run_date, "mode": mode, "phase": phase, **extra}


def blocked_service(blocked_by: str | None) -> str | None:
    """The service in a row's ``blocked_by`` ("health:<service>"), if any."""
    if not blocked_by or ":" not in blocked_by:
        return None
    return blocked_by.split(":", 1)[1] or None
