"""The pipeline event (DESIGN §3) and the parsing of request bodies into events."""

from __future__ import annotations

import base64
import binascii
import json
from datetime import date
from typing import Annotated, Any, Literal

from pydantic import (
    AwareDatetime,
    BaseModel,
    ConfigDict,
    Field,
    StringConstraints,
    TypeAdapter,
    ValidationError,
    model_validator,
)

from monitor.errors import EventError, Problem
from monitor.validation import problems_from_validation_error, render_value

Status = Literal["started", "progress", "succeeded", "failed", "skipped"]
TERMINAL = frozenset({"succeeded", "failed", "skipped"})
MAX_ATTRIBUTES = 32
NDJSON_TYPES = frozenset({"application/x-ndjson", "application/jsonl", "application/jsonlines"})

ShortText = Annotated[str, StringConstraints(min_length=1, max_length=128)]
TRACEPARENT = r"^[0-9a-f]{2}-[0-9a-f]{32}-[0-9a-f]{16}-[0-9a-f]{2}$"


class Event(BaseModel):
    """One phase-transition event reported by a pipeline (the public contract)."""

    model_config = ConfigDict(frozen=True, extra="forbid", strict=True)

    event_id: ShortText
    pipeline: ShortText
    run_date: date
    mode: Literal["overnight", "same_day", "tomorrow", "backfill"] | None = None
    phase: ShortText
    processor: ShortText | None = None
    status: Status
    timestamp: AwareDatetime
    duration_s: Annotated[float, Field(ge=0, allow_inf_nan=False)] | None = None
    records: Annotated[int, Field(ge=0)] | None = None
    expected_records: Annotated[int, Field(ge=0)] | None = None
    data_as_of: AwareDatetime | None = None
    batch_id: ShortText | None = None
    done: Annotated[int, Field(ge=0)] | None = None
    total: Annotated[int, Field(ge=0)] | None = None
    error: Annotated[str, StringConstraints(max_length=2000)] | None = None
    attributes: (
        Annotated[
            dict[Annotated[str, StringConstraints(min_length=1, max_length=128)],
                 Annotated[str, StringConstraints(max_length=1024)]],
            Field(max_length=MAX_ATTRIBUTES),
        ]
        | None
    ) = None
    traceparent: Annotated[str, StringConstraints(pattern=TRACEPARENT)] | None = None

    @model_validator(mode="after")
    def _progress_consistent(self) -> Event:
        if self.done is not None and self.total is not None and self.done > self.total:
            raise ValueError(f"done ({self.done}) must not exceed total ({self.total})")
        return self

    def run_key(self) -> tuple[str, str, str]:
        """(pipeline, run_date, mode) once the mode is resolved."""
        return (self.pipeline, self.run_date.isoformat(), self.mode or "")


_ONE = TypeAdapter(Event)
_MANY = TypeAdapter(list[Event])


def _reject(exc: ValidationError, prefix: str = "") -> EventError:
    problems = problems_from_validation_error(exc, root=Event, prefix=prefix)
    return EventError("invalid_json" if _is_json_error(exc) else "schema", problems)


def _is_json_error(exc: ValidationError) -> bool:
    return any(e["type"] == "json_invalid" for e in exc.errors(include_url=False))


def parse_events(body: bytes, content_type: str | None = None) -> list[Event]:
    """Parse one event, a JSON array of events, or NDJSON; raise EventError naming the field."""
    stripped = body.lstrip()
    if not stripped:
        raise EventError("empty", [Problem("body", "empty; expected an event, an array or NDJSON")])
    ctype = (content_type or "").split(";")[0].strip().lower()
    if stripped[:1] == b"[":
        try:
            events = _MANY.validate_json(stripped)
        except ValidationError as exc:
            raise _reject(exc, prefix="events") from None
        if not events:
            raise EventError("empty", [Problem("body", "empty array; expected at least one event")])
        return events
    if ctype in NDJSON_TYPES:
        return _parse_ndjson(stripped)
    try:
        return [_ONE.validate_json(stripped)]
    except ValidationError as exc:
        if b"\n" in stripped.rstrip() and _trailing_data(exc):
            return _parse_ndjson(stripped)
        raise _reject(exc) from None


def _trailing_data(exc: ValidationError) -> bool:
    return any(
        e["type"] == "json_invalid" and "trailing characters" in e["msg"]
        for e in exc.errors(include_url=False)
    )


def _parse_ndjson(body: bytes) -> list[Event]:
    events: list[Event] = []
    for number, line in enumerate(body.splitlines(), start=1):
        if not line.strip():
            continue
        try:
            events.append(_ONE.validate_json(line))
        except ValidationError as exc:
            raise _reject(exc, prefix=f"line {number}: ") from None
    if not events:
        raise EventError("empty", [Problem("body", "no events in NDJSON body")])
    return events


class PushMessage(BaseModel):
    """The ``message`` of a Pub/Sub push envelope."""

    model_config = ConfigDict(extra="allow", populate_by_name=True)

    data: str = ""
    message_id: str = Field(alias="messageId", min_length=1)
    attributes: dict[str, str] = Field(default_factory=dict)


class PushEnvelope(BaseModel):
    """A Pub/Sub push request body."""

    model_config = ConfigDict(extra="allow")

    message: PushMessage
    subscription: str | None = None


def parse_push_envelope(body: bytes) -> PushEnvelope:
    """Parse a push envelope; a malformed envelope is the sender's fault (EventError)."""
    try:
        return PushEnvelope.model_validate_json(body)
    except ValidationError as exc:
        problems = problems_from_validation_error(exc, root=PushEnvelope)
        raise EventError("push_envelope", problems, status_code=400) from None


def decode_push_data(message: PushMessage) -> bytes:
    """The event JSON carried in ``message.data`` (base64), or EventError if it is not base64."""
    try:
        return base64.b64decode(message.data, validate=True)
    except (binascii.Error, ValueError):
        raise EventError(
            "push_data", [Problem("message.data", "not valid base64", render_value(message.data))]
        ) from None


def event_to_json(event: Event) -> str:
    """Canonical JSON of an event as stored (unset optional fields left out)."""
    return event.model_dump_json(exclude_none=True)


def event_from_json(text: str | bytes) -> Event:
    """An event read back from the store."""
    return _ONE.validate_json(text)


def event_dict(event: Event) -> dict[str, Any]:
    """Plain JSON-ready dict of an event."""
    out: dict[str, Any] = json.loads(event_to_json(event))
    return out
