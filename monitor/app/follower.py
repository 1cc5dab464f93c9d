"""Threads that keep a process sharing its store in step with the others (``serve`` starts them).

- *heartbeat*: renews this process's leases every ``heartbeat_s`` and takes the lead when
  it is free, whatever the jobs and requests are doing (they run on other threads);
- *follow*: wakes when another process announces an append (PostgreSQL ``LISTEN``), or
  every ``interval_s`` when none does, and folds in what was stored.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable

log = logging.getLogger(__name__)

Wait = Callable[[float], bool]
"""Block up to the given seconds for an announced append: True when one came."""


class Follower:
    """Calls ``heartbeat`` every ``heartbeat_s`` and ``follow`` after each announced append."""

    def __init__(self, follow: Callable[[], int], heartbeat: Callable[[], bool], wait: Wait, *,
                 interval_s: float, heartbeat_s: float, close: Callable[[], None] = lambda: None,
                 ) -> None:
        self._follow = follow
        self._heartbeat = heartbeat
        self._wait = wait
        self._close = close
        self.interval_s = interval_s
        self.heartbeat_s = heartbeat_s
        self._stop = threading.Event()
        self._threads = (
            threading.Thread(target=self._beat, name="phasewatch-heartbeat", daemon=True),
            threading.Thread(target=self._run, name="phasewatch-follow", daemon=True),
        )

    def start(self) -> None:
        for thread in self._threads:
            thread.start()

    def stop(self, timeout_s: float = 10.0) -> None:
        self._stop.set()
        for thread in self._threads:
            thread.join(timeout_s)

    def _beat(self) -> None:
        failing = False
        while not self._stop.is_set():
            try:
                self._heartbeat()
            except Exception:
                if not failing:  # once per outage, not once a beat
                    log.exception("event=heartbeat.failed")
                failing = True
            else:
                if failing:
                    log.info("event=heartbeat.recovered")
                failing = False
            self._stop.wait(self.heartbeat_s)

    def _run(self) -> None:
        failing = False
        try:
            while not self._stop.is_set():
                self._wait(self.interval_s)
                if self._stop.is_set():
                    break
                try:
                    self._follow()
                except Exception:
                    if not failing:
                        log.exception("event=follow.failed")
                    failing = True
                    self._stop.wait(self.interval_s)
                else:
                    if failing:
                        log.info("event=follow.recovered")
                    failing = False
        finally:
            self._close()
