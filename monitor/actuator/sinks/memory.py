"""An in-memory sink for users' own tests: records requests, fails on demand."""

from __future__ import annotations

import threading
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass

from monitor.actuator.sinks.base import SinkResult, Target, TriggerRequest


@dataclass(frozen=True)
class SentRequest:
    """One request the memory sink received and how it answered."""

    target: Target
    request: TriggerRequest
    result: SinkResult


class MemorySink:
    """Accepts requests (or answers the queued results first) and keeps them in ``sent``."""

    def __init__(
        self, responder: Callable[[Target, TriggerRequest], SinkResult | None] | None = None,
    ) -> None:
        self.sent: list[SentRequest] = []
        self.responder = responder  # answers a request when it returns a result
        self._answers: deque[SinkResult] = deque()
        self._lock = threading.Lock()

    def answer_next(self, *results: SinkResult) -> None:
        """Queue answers for the next requests (then it accepts again)."""
        with self._lock:
            self._answers.extend(results)

    def fail_next(self, times: int = 1, detail: str = "simulated failure", *, retryable: bool = True) -> None:
        self.answer_next(*[SinkResult("failed", detail, retryable)] * times)

    def send(self, target: Target, request: TriggerRequest) -> SinkResult:
        chosen = self.responder(target, request) if self.responder is not None else None
        with self._lock:
            if chosen is None:
                chosen = self._answers.popleft() if self._answers else SinkResult("accepted")
            self.sent.append(SentRequest(target, request, chosen))
        return chosen

    def accepted(self) -> list[TriggerRequest]:
        """The requests that were accepted (or answered already running)."""
        with self._lock:
            return [s.request for s in self.sent if s.result.ok]

    def close(self) -> None:
        return None
