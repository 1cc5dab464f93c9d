"""An exporter run on a thread of its own, every ``interval_s``.

As OpenTelemetry's ``PeriodicExportingMetricReader``: a slow or hung backend holds up only
this thread, never ingest, the periodic jobs or the event loop. Not a ``Host`` job on purpose:
jobs run one at a time under one lock, so a hung export would delay alert delivery, and a
failing job marks ``/ready`` down, while a telemetry failure must leave the service up.
"""

from __future__ import annotations

import logging
import threading
from datetime import datetime
from typing import Protocol

from monitor.clock import Clock
from monitor.telemetry.metrics import Metrics

log = logging.getLogger(__name__)


class Exporter(Protocol):
    """Writes the current metric values somewhere; raises only on a bug."""

    def export(self, now: datetime, *, attempts: int | None = None) -> object: ...


class PeriodicExport:
    """Calls ``exporter.export(clock.now())`` every ``interval_s`` on a daemon thread."""

    def __init__(self, exporter: Exporter, clock: Clock, interval_s: float, metrics: Metrics,
                 name: str) -> None:
        self.exporter, self.clock, self.interval_s = exporter, clock, interval_s
        self.metrics, self.name = metrics, name
        self.exports = 0  # exports finished (for /ready-style checks and tests)
        self._wake = threading.Event()
        self._stopping = threading.Event()
        self.thread: threading.Thread | None = None
        self._logged_error = False

    def start(self) -> None:
        if self.thread is None:
            self.thread = threading.Thread(target=self._run, name=f"phasewatch-export-{self.name}",
                                           daemon=True)
            self.thread.start()

    def export_now(self) -> None:
        """Export at once on the thread, as if the interval had passed."""
        self._wake.set()

    def shutdown(self, timeout_s: float = 5.0) -> bool:
        """Stop the thread and, when it stops within ``timeout_s``, write the last values once
        (one attempt, no retries). False when it was still busy (a hung request)."""
        self._stopping.set()
        self._wake.set()
        if self.thread is not None:
            self.thread.join(timeout_s)
            if self.thread.is_alive():  # it ends when its request does
                log.warning("event=export.shutdown_busy exporter=%s (the last values are not written)",
                            self.name)
                return False
        self._export(attempts=1)
        return True

    def _run(self) -> None:
        while True:
            self._wake.wait(self.interval_s)
            self._wake.clear()
            if self._stopping.is_set():
                return
            self._export()

    def _export(self, attempts: int | None = None) -> None:
        try:
            self.exporter.export(self.clock.now(), attempts=attempts)
        except Exception:  # a bug in the exporter: counted, logged once, never raised
            self.metrics.telemetry_errors.labels(self.name).inc()
            if not self._logged_error:
                log.exception("event=export.crashed exporter=%s (further crashes only counted)",
                              self.name)
                self._logged_error = True
        self.exports += 1
