"""A scheduler job's attempt, and the ``POST /v1/scheduler-outcomes`` body that reports one.

An attempt is *finished* (its target answered, or did not in time) or *started* (Cloud
Scheduler's ``AttemptStarted`` entry: it fired). A finished attempt succeeded when its HTTP
status is 2xx and its status code, if any, is ``OK``: Cloud Scheduler counts nothing else
as a success.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Annotated, Literal

from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    PlainValidator,
    StringConstraints,
    TypeAdapter,
    ValidationError,
)

from monitor.errors import EventError, Problem
from monitor.validation import Instant, body_rejection

# google.rpc.Code names: Cloud Scheduler's ``jsonPayload.status`` of a finished attempt.
RPC_CODES = (
    "OK", "CANCELLED", "UNKNOWN", "INVALID_ARGUMENT", "DEADLINE_EXCEEDED", "NOT_FOUND",
    "ALREADY_EXISTS", "PERMISSION_DENIED", "RESOURCE_EXHAUSTED", "FAILED_PRECONDITION",
    "ABORTED", "OUT_OF_RANGE", "UNIMPLEMENTED", "INTERNAL", "UNAVAILABLE", "DATA_LOSS",
    "UNAUTHENTICATED",
)
RpcCode = Literal[
    "OK", "CANCELLED", "UNKNOWN", "INVALID_ARGUMENT", "DEADLINE_EXCEEDED", "NOT_FOUND",
    "ALREADY_EXISTS", "PERMISSION_DENIED", "RESOURCE_EXHAUSTED", "FAILED_PRECONDITION",
    "ABORTED", "OUT_OF_RANGE", "UNIMPLEMENTED", "INTERNAL", "UNAVAILABLE", "DATA_LOSS",
    "UNAUTHENTICATED",
]
Kind = Literal["finished", "started"]


@dataclass(frozen=True)
class Attempt:
    """One attempt of a scheduler job, from a LogEntry, the API or a replay line."""

    attempt_id: str  # idempotency key: the LogEntry's insertId, or the caller's id
    job: str
    at: datetime
    kind: Kind = "finished"
    http_status: int | None = None
    code: str | None = None
    url: str | None = None
    scheduled_at: datetime | None = None
    detail: str | None = None
    source: str = "api"

    @property
    def ok(self) -> bool | None:
        """Whether a finished attempt succeeded (None for a started one)."""
        if self.kind == "started":
            return None
        if self.code is not None and self.code != "OK":
            return False
        return self.http_status is None or 200 <= self.http_status <= 299

    def status_text(self) -> str:
        """How it ended, for a person: ``HTTP 404 NOT_FOUND``, ``DEADLINE_EXCEEDED``, ``HTTP 200``."""
        if self.kind == "started":
            return "started"
        parts = []
        if self.http_status is not None:
            parts.append(f"HTTP {self.http_status}")
        if self.code is not None and (self.code != "OK" or not parts):
            parts.append(self.code)
        return " ".join(parts) or "finished"


Text = Annotated[str, StringConstraints(min_length=1, max_length=2000)]


def _status(value: object) -> int | str:
    if isinstance(value, int) and not isinstance(value, bool) and 100 <= value <= 599:
        return value
    if isinstance(value, str) and value in RPC_CODES:
        return value
    raise ValueError(f"allowed: an HTTP status from 100 to 599, or a google.rpc.Code name "
                     f"({', '.join(RPC_CODES)})")


Status = Annotated[
    int | str, PlainValidator(_status, json_schema_input_type=Annotated[int, Field(ge=100, le=599)]
                                                                  | RpcCode),
]


class OutcomeBody(BaseModel):
    """One scheduler job attempt as ``POST /v1/scheduler-outcomes`` takes it."""

    model_config = ConfigDict(frozen=True, extra="forbid", strict=True)

    job: Annotated[str, StringConstraints(min_length=1, max_length=500)] = Field(
        description="the job id (a configured scheduler job)")
    status: Status = Field(
        description="the target's HTTP status, or a google.rpc.Code name (DEADLINE_EXCEEDED...)")
    timestamp: Instant = Field(description="when the attempt finished")
    url: Annotated[str, StringConstraints(min_length=1, max_length=2048)] | None = Field(
        default=None, description="the URL it called (default: the configured one)")
    id: Annotated[str, StringConstraints(min_length=1, max_length=256)] | None = Field(
        default=None, description="idempotency key (default: job and timestamp)")
    scheduled_time: Instant | None = None
    detail: Text | None = None

    def attempt(self, source: str = "api") -> Attempt:
        http = self.status if isinstance(self.status, int) else None
        code = self.status if isinstance(self.status, str) else None
        return Attempt(
            self.id or f"{self.job}@{self.timestamp.isoformat()}", self.job, self.timestamp,
            "finished", http, code, self.url, self.scheduled_time, self.detail, source,
        )


_ONE = TypeAdapter(OutcomeBody)
_MANY = TypeAdapter(Annotated[list[OutcomeBody], Field(min_length=1, max_length=1000)])


def parse_outcomes(body: bytes) -> list[Attempt]:
    """One outcome or a JSON array of them; EventError (4xx) naming each bad field."""
    stripped = body.lstrip()
    if not stripped:
        raise EventError("empty", [Problem("body", "empty; expected an outcome or an array")],
                         status_code=400)
    many = stripped[:1] == b"["
    try:
        parsed = _MANY.validate_json(stripped) if many else [_ONE.validate_json(stripped)]
    except ValidationError as exc:
        raise body_rejection(exc, OutcomeBody, "outcomes" if many else "") from None
    return [item.attempt() for item in parsed]
