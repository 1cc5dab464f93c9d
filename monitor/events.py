"""The pipeline event (DESIGN §3) and the parsing of request bodies into events."""

from __future__ import annotations

import base64
import binascii
import json
import re
from collections.abc import Callable
from datetime import date, datetime
from functools import lru_cache
from typing import Annotated, Any, Literal

import msgspec
from phasewatch_client.event import (
    MAX_ATTRIBUTE_VALUE,
    MAX_ATTRIBUTES,
    MAX_COUNT,
    MAX_DATE,
    MAX_DURATION_S,
    MAX_ERROR_CHARS,
    MAX_INSTANT,
    MAX_TEXT,
    MIN_DATE,
    MIN_INSTANT,
    TRACEPARENT,
)
from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    StringConstraints,
    TypeAdapter,
    ValidationError,
    ValidationInfo,
    field_validator,
)

from monitor.errors import EventError, Problem
from monitor.validation import Instant, problems_from_validation_error, render_value

Status = Literal["started", "progress", "succeeded", "failed", "skipped"]
NDJSON_TYPES = frozenset({"application/x-ndjson", "application/jsonl", "application/jsonlines"})

ShortText = Annotated[str, StringConstraints(min_length=1, max_length=MAX_TEXT)]
Count = Annotated[int, Field(ge=0, le=MAX_COUNT)]


class Event(BaseModel):
    """One phase-transition event reported by a pipeline (the public contract)."""

    model_config = ConfigDict(frozen=True, extra="forbid", strict=True)

    event_id: ShortText
    pipeline: ShortText
    run_date: Annotated[date, Field(ge=MIN_DATE, le=MAX_DATE)]
    mode: Literal["overnight", "same_day", "tomorrow", "backfill"] | None = None
    phase: ShortText
    processor: ShortText | None = None
    status: Status
    timestamp: Instant
    duration_s: Annotated[float, Field(ge=0, le=MAX_DURATION_S, allow_inf_nan=False)] | None = None
    records: Count | None = None
    expected_records: Count | None = None
    data_as_of: Instant | None = None
    batch_id: ShortText | None = None
    # total before done, so that done's check can name the field that is wrong
    total: Count | None = None
    done: Count | None = None
    error: Annotated[str, StringConstraints(max_length=MAX_ERROR_CHARS)] | None = None
    attributes: (
        Annotated[
            dict[Annotated[str, StringConstraints(min_length=1, max_length=MAX_TEXT)],
                 Annotated[str, StringConstraints(max_length=MAX_ATTRIBUTE_VALUE)]],
            Field(max_length=MAX_ATTRIBUTES),
        ]
        | None
    ) = None
    traceparent: Annotated[str, StringConstraints(pattern=TRACEPARENT)] | None = None
    # The producer's execution (Cloud Run execution, Pub/Sub message id...): pairs starts
    # with finishes, so a start that never finishes is seen as hung.
    invocation_id: ShortText | None = None

    @field_validator("done")
    @classmethod
    def _done_within_total(cls, done: int | None, info: ValidationInfo) -> int | None:
        total = info.data.get("total")
        if done is not None and total is not None and done > total:
            raise ValueError(f"must not exceed total ({total})")
        return done

    def run_key(self) -> tuple[str, str, str]:
        """(pipeline, run_date, mode) once the mode is resolved."""
        return (self.pipeline, date_text(self.run_date), self.mode or "")

    # pydantic's ``model_fields_set``, made when first asked for: the request bodies' path
    # (``_fast``) leaves it None, since nothing on ingest's path asks (making it cost 0.57
    # µs an event); it is then the fields given a value, as that path always gave it.
    # pydantic's own paths (validation, copies, pickles) set it as they always do. (mypy
    # takes pydantic's slot for a dataclass field that only a field may override.)
    @property  # type: ignore[misc]
    def __pydantic_fields_set__(self) -> set[str]:
        fields_set = _fields_set_made(self)
        if fields_set is None:
            fields_set = {k for k, v in self.__dict__.items() if v is not None}
            _put_fields_set(self, fields_set)
        return fields_set

    @__pydantic_fields_set__.setter
    def __pydantic_fields_set__(self, fields_set: set[str]) -> None:
        _put_fields_set(self, fields_set)


_FIELDS_SET = BaseModel.__dict__["__pydantic_fields_set__"]
"""The slot that holds a model's fields set (``Event.__pydantic_fields_set__`` fills it)."""


_fields_set_made: Callable[[Event], set[str] | None] = _FIELDS_SET.__get__
"""The event's fields set if it has been made, else None."""
_put_fields_set: Callable[[Event, set[str] | None], None] = _FIELDS_SET.__set__


date_text: Callable[[date], str] = lru_cache(maxsize=4096)(date.isoformat)
"""``day.isoformat()``, remembered: the tracker and the store write a run date per event, and
a batch holds few."""


_ONE = TypeAdapter(Event)
_MANY = TypeAdapter(list[Event])


def _reject(exc: ValidationError, prefix: str = "") -> EventError:
    problems = problems_from_validation_error(exc, root=Event, prefix=prefix)
    return EventError("invalid_json" if _is_json_error(exc) else "schema", problems)


def _is_json_error(exc: ValidationError) -> bool:
    return any(e["type"] == "json_invalid" for e in exc.errors(include_url=False))


def parse_events(body: bytes, content_type: str | None = None) -> list[Event]:
    """Parse one event, a JSON array of events, or NDJSON; raise EventError naming the field.

    A body is first decoded by msgspec (``_fast``); pydantic validates what msgspec refuses
    or cannot vouch for, and so gives every error message and every rare form a value.
    """
    stripped = body.lstrip()
    if not stripped:
        raise EventError("empty", [Problem("body", "empty; expected an event, an array or NDJSON")])
    ctype = (content_type or "").split(";")[0].strip().lower()
    if stripped[:1] == b"[":
        fast = _fast(_WIRE_MANY, stripped)
        if fast:
            return fast
        try:
            events = _MANY.validate_json(stripped)
        except ValidationError as exc:
            raise _reject(exc, prefix="events") from None
        if not events:
            raise EventError("empty", [Problem("body", "empty array; expected at least one event")])
        return events
    if ctype in NDJSON_TYPES:
        return _parse_ndjson(stripped)
    fast = _fast(_WIRE_ONE, stripped)
    if fast:
        return fast
    try:
        return [_ONE.validate_json(stripped)]
    except ValidationError as exc:
        if b"\n" in stripped.rstrip() and _trailing_data(exc):
            return _parse_ndjson(stripped)
        raise _reject(exc) from None


def parse_event(raw: str | bytes) -> Event:
    """One event object, by the request bodies' path (msgspec, then pydantic for what it
    refuses); a bad one raises pydantic's ValidationError."""
    fast = _fast(_WIRE_ONE, raw)
    return fast[0] if fast else _ONE.validate_json(raw)


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
        fast = _fast(_WIRE_ONE, line)
        if fast:
            events.extend(fast)
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


def decode_push_data(message: PushMessage | str) -> bytes:
    """The event JSON carried in ``message.data`` (base64; or that text itself, as a dead
    letter keeps it), or EventError if it is not base64."""
    data = message if isinstance(message, str) else message.data
    try:
        return base64.b64decode(data, validate=True)
    except (binascii.Error, ValueError):
        raise EventError(
            "push_data", [Problem("message.data", "not valid base64", render_value(data))]
        ) from None


def event_to_json(event: Event) -> str:
    """Canonical JSON of an event as stored (unset optional fields left out): the bytes
    pydantic's ``model_dump_json(exclude_none=True)`` writes, by msgspec at a fifth of its
    cost (``tests/test_events_wire.py`` holds them equal). The values go into a ``_Wire``
    (the same fields in the same order; making one checks nothing), whose encoding leaves
    out the fields that are None: cheaper than a dict of the others."""
    return _ENCODE(_Wire(**event.__dict__)).decode()


_ENCODE = msgspec.json.Encoder().encode
_new_event = Event.__new__
_set = object.__setattr__


# --- the fast path: msgspec decodes, pydantic is the reference -----------------------------
# ``_Wire`` mirrors ``Event``: the same fields in the same order, types and the bounds
# msgspec can check. What it cannot check is checked after decoding (``_fast``), and a body
# with anything else goes to pydantic, which accepts or words the error. Encoded, it leaves
# out what is None (``omit_defaults``): the stored JSON (``event_to_json``).

_WireText = Annotated[str, msgspec.Meta(min_length=1, max_length=MAX_TEXT)]
_WireCount = Annotated[int, msgspec.Meta(ge=0, le=MAX_COUNT)]
_WireTime = Annotated[datetime, msgspec.Meta(tz=True)]


class _Wire(msgspec.Struct, kw_only=True, forbid_unknown_fields=True, omit_defaults=True,
            gc=False):
    event_id: _WireText
    pipeline: _WireText
    run_date: date
    mode: Literal["overnight", "same_day", "tomorrow", "backfill"] | None = None
    phase: _WireText
    processor: _WireText | None = None
    status: Status
    timestamp: _WireTime
    duration_s: Annotated[float, msgspec.Meta(ge=0, le=MAX_DURATION_S)] | None = None
    records: _WireCount | None = None
    expected_records: _WireCount | None = None
    data_as_of: _WireTime | None = None
    batch_id: _WireText | None = None
    total: _WireCount | None = None
    done: _WireCount | None = None
    error: Annotated[str, msgspec.Meta(max_length=MAX_ERROR_CHARS)] | None = None
    attributes: Annotated[
        dict[_WireText, Annotated[str, msgspec.Meta(max_length=MAX_ATTRIBUTE_VALUE)]],
        msgspec.Meta(max_length=MAX_ATTRIBUTES),
    ] | None = None
    # \Z, not $: Python's $ also matches before a final newline, pydantic's does not.
    traceparent: Annotated[str, msgspec.Meta(pattern=TRACEPARENT.removesuffix("$") + r"\Z")] | None = None
    invocation_id: _WireText | None = None


_WIRE_ONE = msgspec.json.Decoder(_Wire)
_WIRE_MANY = msgspec.json.Decoder(list[_Wire])
_as_dict = msgspec.structs.asdict
# A time with more than microseconds: msgspec rounds the digits past them, pydantic cuts.
_LONG_FRACTION = re.compile(rb"\.[0-9]{7,}[Zz+-]")


def _fast(decoder: msgspec.json.Decoder[Any], body: str | bytes) -> list[Event] | None:
    """The events of ``body`` decoded by msgspec, with the values pydantic would give them;
    None when msgspec refuses the body or a check says pydantic must judge it."""
    if isinstance(body, str):
        body = body.encode()
    if _LONG_FRACTION.search(body):
        return None
    try:
        decoded = decoder.decode(body)
    except msgspec.MsgspecError:
        return None
    out: list[Event] = []
    for wire in decoded if isinstance(decoded, list) else (decoded,):
        values = _as_dict(wire)
        if not _in_bounds(values):
            return None
        event = _new_event(Event)
        _set(event, "__dict__", values)
        _set(event, "__pydantic_extra__", None)
        _set(event, "__pydantic_private__", None)
        _put_fields_set(event, None)  # made when asked for
        out.append(event)
    return out


def _in_bounds(values: dict[str, Any]) -> bool:
    """The contract's checks msgspec has no words for: the date and time ranges, and done
    not above total."""
    if not MIN_DATE <= values["run_date"] <= MAX_DATE:
        return False
    try:
        if not MIN_INSTANT <= values["timestamp"] <= MAX_INSTANT:
            return False
        data_as_of = values["data_as_of"]
        if data_as_of is not None and not MIN_INSTANT <= data_as_of <= MAX_INSTANT:
            return False
    except OverflowError:  # an offset that pushes year 1 or 9999 out of datetime's range
        return False
    done, total = values["done"], values["total"]
    return done is None or total is None or done <= total


def replace_fields(event: Event, update: dict[str, Any]) -> Event:
    """``event.model_copy(update=update)`` at half the cost (ingest runs it on most events)."""
    copied = _new_event(Event)
    values = event.__dict__.copy()
    values.update(update)
    _set(copied, "__dict__", values)
    _set(copied, "__pydantic_extra__", None)
    fields_set = _fields_set_made(event)
    if fields_set is None and None in update.values():  # made first: it counts no None
        fields_set = event.__pydantic_fields_set__
    _put_fields_set(copied, None if fields_set is None else fields_set | update.keys())
    _set(copied, "__pydantic_private__", None)
    return copied


def assign_fields(event: Event, update: dict[str, Any]) -> Event:
    """``replace_fields`` in place, for an event no one else holds yet (one the collector
    has just parsed from a request body): no copy at all. Returns ``event``."""
    fields_set = _fields_set_made(event)
    if fields_set is None and None in update.values():  # made first: it counts no None
        fields_set = event.__pydantic_fields_set__
    event.__dict__.update(update)
    if fields_set is not None:
        fields_set.update(update)  # its own set: no other event holds it
    return event


def event_from_json(text: str | bytes) -> Event:
    """An event read back from the store: by the request bodies' path (``parse_event``), so
    a replay, a start and a cold command decode at msgspec's cost with pydantic's values."""
    return parse_event(text)


def event_dict(event: Event) -> dict[str, Any]:
    """Plain JSON-ready dict of an event."""
    out: dict[str, Any] = json.loads(event_to_json(event))
    return out
