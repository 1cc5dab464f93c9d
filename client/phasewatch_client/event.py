"""The pipeline event (DESIGN §3), validated in plain Python as the server validates it.

``validate_event`` checks the JSON form of an event (what goes over the wire) against the
contract and raises ``EventError`` whose problems name each bad field, with messages worded
as the server's. A property test holds it to the server's pydantic model: both accept and
reject the same events. Where the server is more lenient than the contract (a Unix time
in a string for ``timestamp`` or ``run_date``) the client keeps to the contract.
"""

from __future__ import annotations

import json
import math
import re
import uuid
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta, timezone
from typing import Any, Literal, get_args

from phasewatch_client.errors import EventError, Problem

Status = Literal["started", "progress", "succeeded", "failed", "skipped"]
Mode = Literal["overnight", "same_day", "tomorrow", "backfill"]
STATUSES: tuple[str, ...] = get_args(Status)
MODES: tuple[str, ...] = get_args(Mode)
TERMINAL = frozenset({"succeeded", "failed", "skipped"})

MAX_TEXT = 128
MAX_ERROR_CHARS = 2000
MAX_ATTRIBUTES = 32
MAX_ATTRIBUTE_VALUE = 1024
MIN_DATE, MAX_DATE = date(1970, 1, 1), date(2999, 12, 31)
MAX_DURATION_S = 366 * 86400.0
# Counts (records, expected_records, total, done) fit a signed 64-bit integer: what every
# store's INTEGER column (SQLite, PostgreSQL bigint, BigQuery INT64) can hold.
MAX_COUNT = 2**63 - 1
MIN_INSTANT = datetime(1970, 1, 1, tzinfo=UTC)
MAX_INSTANT = datetime(2999, 12, 31, 23, 59, 59, tzinfo=UTC)
TRACEPARENT = r"^[0-9a-f]{2}-[0-9a-f]{32}-[0-9a-f]{16}-[0-9a-f]{2}$"
INSTANT_RANGE = "must be between 1970-01-01T00:00:00Z and 2999-12-31T23:59:59Z"

_TRACEPARENT = re.compile(TRACEPARENT.strip("^$"))
_DATE = re.compile(r"([0-9]{4})-([0-9]{2})-([0-9]{2})")
_DATETIME = re.compile(
    r"([0-9]{4})-([0-9]{2})-([0-9]{2})[Tt _]([0-9]{2}):([0-9]{2})"
    r"(?::([0-9]{2})(?:[.,]([0-9]+))?)?"
    r"(?:([Zz])|([+-])([0-9]{2}):?([0-9]{2}))?"
)
_MAX_VALUE_CHARS = 80


@dataclass(frozen=True, kw_only=True)
class Event:
    """One validated phase-transition event; ``as_dict`` / ``to_json`` give its wire form."""

    event_id: str
    pipeline: str
    run_date: date
    mode: Mode | None = None
    phase: str
    processor: str | None = None
    status: Status
    timestamp: datetime
    duration_s: float | None = None
    records: int | None = None
    expected_records: int | None = None
    data_as_of: datetime | None = None
    batch_id: str | None = None
    total: int | None = None  # before done, whose check compares with it
    done: int | None = None
    error: str | None = None
    attributes: Mapping[str, str] | None = None
    traceparent: str | None = None
    invocation_id: str | None = None  # pairs a start with its finish (an execution id)

    def as_dict(self) -> dict[str, Any]:
        """The JSON-ready fields, unset ones left out."""
        values = ((name, getattr(self, name)) for name in self.__dataclass_fields__)
        return {name: _wire(value) for name, value in values if value is not None}

    def to_json(self) -> str:
        """The event as phasewatch's ``POST /v1/events`` takes it."""
        return json.dumps(self.as_dict(), separators=(",", ":"), ensure_ascii=False)


FIELDS: tuple[str, ...] = tuple(Event.__dataclass_fields__)
REQUIRED = ("event_id", "pipeline", "run_date", "phase", "status", "timestamp")


def new_event_id() -> str:
    """A fresh idempotency key (uuid4 hex)."""
    return uuid.uuid4().hex


def build_event(fields: Mapping[str, Any]) -> Event:
    """Validate Python values exactly as the server will (through JSON); EventError names the field."""
    payload = {k: v for k, v in fields.items() if v is not None}
    try:
        data = json.loads(json.dumps(payload, default=_jsonable))
    except (TypeError, ValueError) as exc:
        raise EventError("schema", [Problem("body", str(exc))]) from None
    return validate_event(data)


def validate_event(data: object) -> Event:
    """An Event from the JSON form of one (a parsed object); EventError lists every problem."""
    if not isinstance(data, dict):
        raise EventError("schema", [Problem("(top)", "Input should be an object", render_value(data))])
    problems: list[Problem] = []
    values: dict[str, Any] = {}
    for name in FIELDS:
        if name not in data:
            if name in REQUIRED:
                problems.append(Problem(name, "required field is missing"))
            continue
        value = data[name]
        if value is None and name not in REQUIRED:
            continue
        try:
            values[name] = _CHECKS[name](value, values)
        except _Invalid as bad:
            problems.extend(bad.problems or [Problem(name, bad.message, render_value(value))])
    allowed = ", ".join(FIELDS)
    problems += [Problem(str(k), f"unknown field; allowed: {allowed}") for k in data if k not in FIELDS]
    if problems:
        raise EventError("schema", problems)
    return Event(**values)


def render_value(value: object) -> str:
    """A short printable form of a bad value."""
    text = repr(value)
    return text if len(text) <= _MAX_VALUE_CHARS else text[: _MAX_VALUE_CHARS - 3] + "..."


def _wire(value: object) -> object:
    if isinstance(value, date):  # datetime too
        return value.isoformat()
    if isinstance(value, Mapping):
        return dict(value)
    return value


def _jsonable(value: object) -> object:
    wired = _wire(value)
    if wired is value:
        raise TypeError(f"cannot send {type(value).__name__} in an event")
    return wired


# --- checks: one per field, in the server's wording ---------------------------------------------

class _Invalid(Exception):
    def __init__(self, message: str, problems: list[Problem] | None = None) -> None:
        self.message, self.problems = message, problems or []


def _text(value: object, max_length: int = MAX_TEXT, min_length: int = 1) -> str:
    if not isinstance(value, str):
        raise _Invalid("Input should be a valid string")
    if len(value) < min_length:
        raise _Invalid(f"String should have at least {min_length} character{'s' * (min_length != 1)}")
    if len(value) > max_length:
        raise _Invalid(f"String should have at most {max_length} characters")
    return value


def _choice(options: tuple[str, ...]) -> Callable[[object, dict[str, Any]], str]:
    quoted = [repr(o) for o in options]
    message = f"Input should be {', '.join(quoted[:-1])} or {quoted[-1]}"

    def check(value: object, _: dict[str, Any]) -> str:
        if not isinstance(value, str) or value not in options:
            raise _Invalid(message)
        return value

    return check


def _count(value: object, _: dict[str, Any] | None = None) -> int:
    if not isinstance(value, int) or isinstance(value, bool):
        raise _Invalid("Input should be a valid integer")
    if value < 0:
        raise _Invalid("Input should be greater than or equal to 0")
    if value > MAX_COUNT:
        raise _Invalid(f"Input should be less than or equal to {MAX_COUNT}")
    return value


def _duration(value: object, _: dict[str, Any]) -> float:
    if not isinstance(value, int | float) or isinstance(value, bool):
        raise _Invalid("Input should be a valid number")
    try:
        number = float(value)
    except OverflowError:
        number = math.inf
    if not math.isfinite(number):
        raise _Invalid("Input should be a finite number")
    if number < 0:
        raise _Invalid("Input should be greater than or equal to 0")
    if number > MAX_DURATION_S:
        raise _Invalid(f"Input should be less than or equal to {MAX_DURATION_S:.0f}")
    return number


def _run_date(value: object, _: dict[str, Any]) -> date:
    if not isinstance(value, str):
        raise _Invalid("Input should be a valid date")
    match = _DATE.fullmatch(value)
    try:
        if match is None:
            raise ValueError
        day = date(*(int(g) for g in match.groups()))
    except ValueError:
        raise _Invalid("Input should be a valid date in the format YYYY-MM-DD") from None
    if day < MIN_DATE:
        raise _Invalid(f"Input should be greater than or equal to {MIN_DATE.isoformat()}")
    if day > MAX_DATE:
        raise _Invalid(f"Input should be less than or equal to {MAX_DATE.isoformat()}")
    return day


def _instant(value: object, _: dict[str, Any] | None = None) -> datetime:
    """RFC 3339 with an offset, between 1970 and 2999 (``T``, ``t``, space or ``_`` between)."""
    if not isinstance(value, str):
        raise _Invalid("Input should be a valid datetime")
    match = _DATETIME.fullmatch(value)
    if match is None:
        raise _Invalid("Input should be a valid datetime")
    year, month, day, hour, minute, second, fraction, zulu, sign, off_h, off_m = match.groups()
    try:
        micro = int((fraction or "0")[:6].ljust(6, "0"))
        naive = datetime(int(year), int(month), int(day), int(hour), int(minute), int(second or 0), micro)
        if not (zulu or sign):
            raise _Invalid("Input should have timezone info")
        offset = timedelta(hours=int(off_h or 0), minutes=int(off_m or 0))
        if int(off_m or 0) > 59:
            raise ValueError
        instant = naive.replace(tzinfo=timezone(-offset if sign == "-" else offset))
    except ValueError:
        raise _Invalid("Input should be a valid datetime") from None
    if not instant_in_range(instant):
        raise _Invalid(INSTANT_RANGE)
    return instant


def instant_in_range(value: datetime) -> bool:
    """Whether an aware time is inside the contract's range (the server's check too)."""
    try:
        return MIN_INSTANT <= value <= MAX_INSTANT
    except OverflowError:  # an offset that pushes year 1 or 9999 out of datetime's range
        return False


def _done(value: object, values: dict[str, Any]) -> int:
    done = _count(value)
    total = values.get("total")
    if total is not None and done > total:
        raise _Invalid(f"must not exceed total ({total})")
    return done


def _error(value: object, _: dict[str, Any]) -> str:
    return _text(value, MAX_ERROR_CHARS, min_length=0)


def _attributes(value: object, _: dict[str, Any]) -> dict[str, str]:
    if not isinstance(value, dict):
        raise _Invalid("Input should be an object")
    problems = []
    for key, item in value.items():
        for where, text, max_length, min_length in ((f"{key}.[key]", key, MAX_TEXT, 1),
                                                    (key, item, MAX_ATTRIBUTE_VALUE, 0)):
            try:
                _text(text, max_length, min_length)
            except _Invalid as bad:
                problems.append(Problem(f"attributes.{where}", bad.message, render_value(text)))
    if len(value) > MAX_ATTRIBUTES:
        message = f"Dictionary should have at most {MAX_ATTRIBUTES} items after validation, not more"
        problems.append(Problem("attributes", message, render_value(value)))
    if problems:
        raise _Invalid("", problems)
    return dict(value)


def _traceparent(value: object, _: dict[str, Any]) -> str:
    if not isinstance(value, str) or not _TRACEPARENT.fullmatch(value):
        raise _Invalid("Input should be a valid string" if not isinstance(value, str)
                       else f"String should match pattern '{TRACEPARENT}'")
    return value


def _short_text(value: object, _: dict[str, Any]) -> str:
    return _text(value)


_CHECKS: dict[str, Callable[[object, dict[str, Any]], Any]] = {
    "event_id": _short_text,
    "pipeline": _short_text,
    "run_date": _run_date,
    "mode": _choice(MODES),
    "phase": _short_text,
    "processor": _short_text,
    "status": _choice(STATUSES),
    "timestamp": lambda v, _: _instant(v),
    "duration_s": _duration,
    "records": lambda v, _: _count(v),
    "expected_records": lambda v, _: _count(v),
    "data_as_of": lambda v, _: _instant(v),
    "batch_id": _short_text,
    "total": lambda v, _: _count(v),
    "done": _done,
    "error": _error,
    "attributes": _attributes,
    "traceparent": _traceparent,
    "invocation_id": _short_text,
}
