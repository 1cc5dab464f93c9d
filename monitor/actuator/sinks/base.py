"""The trigger sink protocol: how a decided trigger (or a recovery step) reaches the pipeline."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Literal, Protocol

from monitor.actuator.config import HttpTrigger, LogTrigger, PubSubTrigger

Target = HttpTrigger | PubSubTrigger | LogTrigger
SinkOutcome = Literal["accepted", "already_running", "failed"]
JsonScalar = str | int | float | bool
JsonValue = JsonScalar | list[str]  # a payload value: a flag, or ids (a playbook's entities)


@dataclass(frozen=True)
class TriggerRequest:
    """What phasewatch asks the pipeline to do; ``idempotency_key`` is the same on every retry."""

    pipeline: str
    run_date: str
    mode: str
    phase: str
    reason: str
    attempt: int
    idempotency_key: str
    rule: str | None = None
    processors: tuple[str, ...] = ()
    action: str | None = None
    batch_id: str | None = None
    extra: Mapping[str, JsonValue] = field(default_factory=dict)

    def body(self) -> dict[str, object]:
        """The JSON body (HTTP) or message data (Pub/Sub)."""
        out: dict[str, object] = {
            "pipeline": self.pipeline, "run_date": self.run_date, "game_date": self.run_date,
            "mode": self.mode, "phase": self.phase, "reason": self.reason,
            "attempt": self.attempt, "idempotency_key": self.idempotency_key,
            "triggered_by": "phasewatch",
        }
        if self.rule:
            out["rule"] = self.rule
        if self.processors:
            out["processors"] = list(self.processors)
        if self.action:
            out["action"] = self.action
        if self.batch_id:
            out["batch_id"] = self.batch_id
        out.update(self.extra)
        return out

    def attributes(self) -> dict[str, str]:
        """Flat string attributes (Pub/Sub message attributes, log fields)."""
        attrs = {
            "idempotency_key": self.idempotency_key, "pipeline": self.pipeline,
            "run_date": self.run_date, "mode": self.mode, "phase": self.phase,
            "reason": self.reason, "attempt": str(self.attempt),
        }
        if self.processors:
            attrs["processors"] = ",".join(self.processors)
        if self.action:
            attrs["action"] = self.action
        if self.batch_id:
            attrs["batch_id"] = self.batch_id
        return attrs


@dataclass(frozen=True)
class SinkResult:
    """How the target answered: accepted, already running, or failed (retryable or not)."""

    outcome: SinkOutcome
    detail: str = ""
    retryable: bool = True
    status_code: int | None = None
    retry_after_s: float | None = None  # a refusal's Retry-After: the target said when to come back

    @property
    def ok(self) -> bool:
        return self.outcome != "failed"


class TriggerSink(Protocol):
    """Sends one request to one configured target; never raises for the target's failures."""

    def send(self, target: Target, request: TriggerRequest) -> SinkResult:
        """Deliver ``request`` to ``target`` once (no retry: the actuator schedules retries)."""
        ...

    def close(self) -> None:
        """Release connections."""
        ...
