"""The log-only sink: records the trigger as a structured log line (the ``log`` trigger kind)."""

from __future__ import annotations

import logging

from monitor.actuator.sinks.base import SinkResult, Target, TriggerRequest

log = logging.getLogger(__name__)


class LogSink:
    """Accepts every request and logs it; nothing reaches the pipeline."""

    def send(self, target: Target, request: TriggerRequest) -> SinkResult:
        fields = " ".join(f"{k}={v}" for k, v in sorted(request.attributes().items()))
        log.info("event=trigger.logged kind=%s %s", target.kind, fields)
        return SinkResult("accepted", "logged only")

    def close(self) -> None:
        return None
