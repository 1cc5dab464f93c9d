"""A thread that keeps a process sharing its store up with the others (``serve`` starts it).

It wakes when another process announces an append (PostgreSQL ``LISTEN``), or every
``interval_s`` when none does, and folds in what was stored; every ``heartbeat_s`` it renews
this process's leases, whatever the jobs are doing (they run on other threads).
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable

log = logging.getLogger(__name__)

Wait = Callable[[float], bool]
"""Block up to the given seconds for an announced append: True when one came."""


class Follower:
    """Calls ``follow`` after each announced append and ``heartbeat`` every ``heartbeat_s``."""

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
        self._thread = threading.Thread(target=self._run, name="phasewatch-follow", daemon=True)
        self._failing = False

    def start(self) -> None:
        self._thread.start()

    def stop(self, timeout_s: float = 10.0) -> None:
        self._stop.set()
        self._thread.join(timeout_s)

    def _run(self) -> None:
        next_beat = 0.0
        try:
            while not self._stop.is_set():
                self._wait(self.interval_s)
                if self._stop.is_set():
                    break
                try:
                    if time.monotonic() >= next_beat:
                        next_beat = time.monotonic() + self.heartbeat_s
                        self._heartbeat()
                    self._follow()
                except Exception:
                    if not self._failing:  # once per outage, not once a second
                        log.exception("event=follow.failed")
                    self._failing = True
                    self._stop.wait(self.interval_s)
                else:
                    if self._failing:
                        log.info("event=follow.recovered")
                    self._failing = False
        finally:
            self._close()
