"""Turns pydantic validation errors into Problems that name the field and what is allowed.

The one place where validation errors become user-facing messages (config and events).
"""

from __future__ import annotations

import re
import types
import typing
from collections.abc import Mapping
from datetime import datetime
from typing import Annotated, Any, Union, get_args, get_origin
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from phasewatch_client.event import INSTANT_RANGE, MAX_INSTANT, MIN_INSTANT, instant_in_range
from pydantic import AfterValidator, AwareDatetime, BaseModel, Field, TypeAdapter, ValidationError
from pydantic_core import ErrorDetails

from monitor.errors import EventError, Problem

_MAX_VALUE_CHARS = 80


def render_value(value: Any) -> str:
    """A short printable form of a bad value."""
    text = repr(value)
    return text if len(text) <= _MAX_VALUE_CHARS else text[: _MAX_VALUE_CHARS - 3] + "..."


def render_loc(loc: tuple[int | str, ...], data: Any = None) -> str:
    """``('phases', 2, 'priority')`` → ``phases[2].priority``; items with an id or name show it."""
    out = ""
    node = data
    for part in loc:
        if isinstance(part, int):
            label = str(part)
            if isinstance(node, list) and 0 <= part < len(node):
                node = node[part]
                if isinstance(node, dict):
                    ident = node.get("id", node.get("name"))
                    if isinstance(ident, str):
                        label = f"{part}:{ident}"
            else:
                node = None
            out += f"[{label}]"
        else:
            node = node.get(part) if isinstance(node, dict) else None
            out += f".{part}" if out else str(part)
    return out or "(top)"


def _unwrap(tp: Any) -> list[Any]:
    """The concrete types inside Annotated / Optional / Union."""
    origin = get_origin(tp)
    if origin is typing.Annotated:
        return _unwrap(get_args(tp)[0])
    if origin in (Union, types.UnionType):
        return [t for arg in get_args(tp) for t in _unwrap(arg)]
    return [tp]


def _model_at(root: type[BaseModel], loc: tuple[int | str, ...]) -> type[BaseModel] | None:
    """The model class that owns the mapping at ``loc`` (best effort; None when unsure)."""
    candidates: list[Any] = [root]
    for part in loc:
        nxt: list[Any] = []
        for tp in candidates:
            for t in _unwrap(tp):
                origin = get_origin(t)
                if isinstance(t, type) and issubclass(t, BaseModel):
                    if isinstance(part, str) and part in t.model_fields:
                        nxt.append(t.model_fields[part].annotation)
                    elif isinstance(part, str):
                        # a discriminated union tag names the member
                        nxt.extend([t] if _tag_of(t) == part else [])
                elif origin in (tuple, list) and isinstance(part, int):
                    nxt.append(get_args(t)[0])
                elif origin is dict and isinstance(part, str):
                    nxt.append(get_args(t)[1])
        candidates = nxt
    models = [t for tp in candidates for t in _unwrap(tp) if isinstance(t, type) and issubclass(t, BaseModel)]
    return models[0] if len(models) == 1 else None


def _tag_of(model: type[BaseModel]) -> str | None:
    field = model.model_fields.get("kind")
    if field is None:
        return None
    args = get_args(field.annotation)
    return args[0] if len(args) == 1 and isinstance(args[0], str) else None


def body_rejection(exc: ValidationError, root: type[BaseModel], prefix: str = "",
                   data: Any = None) -> EventError:
    """A request body pydantic refused, as its answer: 400 ``invalid_json`` when it is not
    JSON, else 422 ``schema``, with one Problem per error naming the field."""
    invalid = any(e["type"] == "json_invalid" for e in exc.errors(include_url=False))
    problems = problems_from_validation_error(exc, data, root=root, prefix=prefix)
    return EventError("invalid_json" if invalid else "schema", problems,
                      status_code=400 if invalid else 422)


def problems_from_validation_error(
    exc: ValidationError, data: Any = None, *, root: type[BaseModel] | None, prefix: str = ""
) -> list[Problem]:
    """One Problem per error, naming the field path, the bad value and what is allowed.

    ``root`` is the model that was validated: an unknown field's message lists the fields
    its owner allows (None: the message points to the documentation).
    """
    problems = []
    errors = exc.errors(include_url=False)
    deeper = {tuple(e["loc"])[:n] for e in errors for n in range(len(e["loc"]))}
    for err in errors:
        loc = tuple(err["loc"])
        if err["type"] == "too_short" and loc in deeper:
            continue  # the items' own errors say what is wrong
        message = err["msg"]
        value: str | None = render_value(err.get("input"))
        if err["type"] == "extra_forbidden":
            owner = _model_at(root, loc[:-1]) if root else None
            allowed = ", ".join(owner.model_fields) if owner else "see the documentation"
            message = f"unknown field; allowed: {allowed}"
            value = None
        elif err["type"] == "missing":
            message = "required field is missing"
            value = None
        elif (instant := _instant_message(err)) is not None:
            message = instant
        elif message.startswith("Value error, "):
            message = message.removeprefix("Value error, ")
            loc_value = err.get("input")
            value = None if isinstance(loc_value, dict | list) else value
        where = render_loc(loc, data)
        if where == "(top)":
            where = prefix.rstrip(": ") or ("body" if err["type"] == "json_invalid" else where)
        else:
            where = prefix + where
        problems.append(Problem(where, message, value))
    return problems


def known_zone(value: str) -> bool:
    """Whether ``value`` names an IANA time zone this machine knows."""
    try:
        ZoneInfo(value)
    except (ZoneInfoNotFoundError, ValueError):
        return False
    return True


def _known_zone(value: str) -> str:
    if not known_zone(value):
        raise ValueError(
            f"unknown timezone {value!r}; allowed: an IANA name such as America/New_York"
        )
    return value


Timezone = Annotated[str, AfterValidator(_known_zone)]
"""A config field holding an IANA timezone name, checked when the config is loaded."""


# Bounds keep every stored value inside what date arithmetic downstream can handle: an
# event from year 1 or lasting 1e308 s would be stored, then crash the rebuild, and
# 9999-12-31T23:59:59-14:00 overflows as soon as it is turned to UTC. pydantic checks them
# itself (a Python validator cost 2 µs an event on ingest); ``_instant_problem`` words them.
Instant = Annotated[AwareDatetime, Field(ge=MIN_INSTANT, le=MAX_INSTANT)]
"""An aware time inside the event contract's range (1970 to 2999 UTC): every time a user sends."""
_INSTANT_BOUNDS = {("greater_than_equal", "ge", MIN_INSTANT), ("less_than_equal", "le", MAX_INSTANT)}
_AWARE: TypeAdapter[datetime] = TypeAdapter(AwareDatetime)


def _instant_message(err: ErrorDetails) -> str | None:
    """The contract's words for an ``Instant`` out of range; a naive time is told so first
    (pydantic compares the bounds before it looks for an offset)."""
    ctx = err.get("ctx") or {}
    if not any(err["type"] == kind and ctx.get(name) in (bound, _bound_text(bound))
               for kind, name, bound in _INSTANT_BOUNDS):
        return None
    try:
        _AWARE.validate_python(err["input"])
    except ValidationError as exc:
        return str(exc.errors(include_url=False)[0]["msg"])
    return INSTANT_RANGE


def _bound_text(bound: datetime) -> str:
    """How pydantic shows a datetime bound in an error's context."""
    return bound.isoformat().replace("+00:00", "Z")

_DIGITS = re.compile(r"[0-9]{1,9}")


def query_int(query: Mapping[str, str], name: str, problems: list[Problem], *,
              default: int, low: int, high: int) -> int:
    """An integer query parameter from ``low`` to ``high`` in ASCII digits; a problem otherwise.

    ``str.isdigit`` accepts ``²`` and other digits ``int()`` refuses: this does not.
    """
    raw = query.get(name)
    if raw is None:
        return default
    if _DIGITS.fullmatch(raw) and low <= int(raw) <= high:
        return int(raw)
    problems.append(Problem(name, f"must be an integer from {low} to {high}", render_value(raw)))
    return default


def query_instant(query: Mapping[str, str], name: str, problems: list[Problem]) -> datetime | None:
    """An RFC 3339 query parameter with an offset, inside the contract's range; a problem otherwise."""
    raw = query.get(name)
    if raw is None:
        return None
    try:
        value = datetime.fromisoformat(raw)
    except ValueError:
        value = None
    if value is None or value.tzinfo is None:
        problems.append(Problem(name, "not an RFC 3339 time with offset", render_value(raw)))
        return None
    if not instant_in_range(value):
        problems.append(Problem(name, INSTANT_RANGE, render_value(raw)))
        return None
    return value
