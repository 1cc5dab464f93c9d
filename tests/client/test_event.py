"""The client's plain-Python event validator against the server's pydantic model."""

from __future__ import annotations

import json
from datetime import UTC, date, datetime
from typing import Any, get_args

import pytest
from hypothesis import example, given, settings
from hypothesis import strategies as st
from phasewatch_client import MODES, STATUSES, EventError, build_event, validate_event
from phasewatch_client.event import FIELDS
from pydantic import ValidationError

from monitor.events import Event as ServerEvent
from monitor.events import Status as ServerStatus
from monitor.events import parse_events
from monitor.fields import Mode as ServerMode
from monitor.validation import problems_from_validation_error

VALID: dict[str, Any] = {
    "event_id": "e-1", "pipeline": "nba", "run_date": "2026-01-17", "phase": "phase2",
    "status": "started", "timestamp": "2026-01-17T09:30:00-05:00",
}

texts = st.one_of(st.text(max_size=3), st.text(min_size=126, max_size=130), st.just(""))
counts = st.one_of(st.integers(-3, 10**6), st.just(10**30), st.booleans(), st.floats(0, 5), st.just("3"))
numbers = st.one_of(
    st.integers(-5, 40_000_000), st.floats(allow_nan=True, allow_infinity=True), st.booleans(),
    st.just(31_622_400), st.just(31_622_400.000001), st.just(-0.0), st.just("1.5"),
)
dates = st.one_of(
    st.dates(date(1960, 1, 1), date(3010, 1, 1)).map(date.isoformat),
    st.sampled_from(["2026-13-01", "2026-02-29", "2024-02-29", "2026-1-17", "2026-01-17T00:00:00",
                     " 2026-01-17", "1969-12-31", "1970-01-01", "2999-12-31", "3000-01-01"]),
    st.integers(0, 30_000_000),
)
offsets = st.sampled_from(["Z", "z", "+00:00", "-05:00", "+0530", "+23:59", "-23:59", "+24:00", "+05",
                           "+05:60", "", " Z"])
fractions = st.sampled_from(["", ".5", ",25", ".123456789", ".", ".1234567891"])
separators = st.sampled_from(["T", "t", " ", "_", "x"])
instants = st.one_of(
    st.builds(
        lambda d, sep, h, m, s, frac, off: f"{d}{sep}{h:02d}:{m:02d}{s}{frac if s else ''}{off}",
        st.dates(date(1969, 12, 30), date(3000, 1, 2)).map(date.isoformat), separators,
        st.integers(0, 25), st.integers(0, 61), st.sampled_from([":00", ":59", ":60", ""]), fractions, offsets,
    ),
    st.datetimes(datetime(1969, 12, 31), datetime(3000, 1, 2), timezones=st.just(UTC)).map(datetime.isoformat),
    st.datetimes(datetime(2000, 1, 1), datetime(2030, 1, 1)).map(datetime.isoformat),  # naive
    st.sampled_from(["2026-01-17", "2026-01-17T9:30:00Z", "2026-01-17T09Z", "0000-01-17T09:30:00Z"]),
    st.integers(0, 2_000_000_000),
)
keys = st.one_of(st.text(min_size=0, max_size=3), st.text(min_size=128, max_size=129))
attributes = st.one_of(
    st.dictionaries(keys, st.one_of(st.text(max_size=3), st.text(min_size=1024, max_size=1025), st.integers()),
                    max_size=3),
    st.dictionaries(st.text(min_size=1, max_size=4), st.just("v"), min_size=31, max_size=34),
    st.lists(st.text(max_size=2), max_size=2),
)
traceparents = st.one_of(
    st.just("00-" + "a" * 32 + "-" + "b" * 16 + "-01"),
    st.sampled_from(["00-" + "A" * 32 + "-" + "b" * 16 + "-01", "00-" + "a" * 32 + "-" + "b" * 16 + "-01\n",
                     "0-" + "a" * 32 + "-" + "b" * 16 + "-01"]),
    st.text(max_size=5), st.integers(),
)
choices = {
    "mode": st.one_of(st.sampled_from(MODES), st.text(max_size=8), st.integers()),
    "status": st.one_of(st.sampled_from(STATUSES), st.sampled_from(["done", "Started"]), st.integers()),
}

FIELD_VALUES: dict[str, st.SearchStrategy[Any]] = {
    "event_id": texts, "pipeline": texts, "phase": texts, "processor": texts, "batch_id": texts,
    "invocation_id": texts,
    "run_date": dates, "timestamp": instants, "data_as_of": instants,
    "duration_s": numbers, "records": counts, "expected_records": counts, "total": counts, "done": counts,
    "error": st.one_of(st.text(max_size=5), st.text(min_size=1999, max_size=2001), st.integers()),
    "attributes": attributes, "traceparent": traceparents, **choices,
}


@st.composite
def events(draw: st.DrawFn) -> dict[str, Any]:
    """A valid event with a few fields replaced, removed, nulled or added."""
    event = dict(VALID)
    for name in draw(st.lists(st.sampled_from(FIELDS), max_size=4, unique=True)):
        how = draw(st.sampled_from(["set", "set", "set", "drop", "null"]))
        if how == "drop":
            event.pop(name, None)
        else:
            event[name] = None if how == "null" else draw(FIELD_VALUES[name])
    if draw(st.integers(0, 9)) == 0:
        event[draw(st.sampled_from(["extra", "Phase", "run-date"]))] = 1
    return event


def server_problems(data: dict[str, Any]) -> set[str] | None:
    """The fields the server names, or None when it accepts the event."""
    try:
        ServerEvent.model_validate_json(json.dumps(data))
    except ValidationError as exc:
        return {p.field for p in problems_from_validation_error(exc, root=ServerEvent)}
    return None


def client_problems(data: dict[str, Any]) -> set[str] | None:
    try:
        validate_event(json.loads(json.dumps(data)))
    except EventError as exc:
        return {p.field for p in exc.problems}
    return None


@settings(max_examples=1500, deadline=None)
@given(events())
@example({**VALID, "done": 5, "total": 3})
@example({**VALID, "done": 5, "total": -1})
@example({**VALID, "timestamp": "2026-01-17T09:30:00"})
@example({**VALID, "attributes": {"": "x", "a": 1}})
def test_client_and_server_accept_and_reject_the_same_events(event: dict[str, Any]) -> None:
    assert client_problems(event) == server_problems(event)


def test_the_literals_match_the_servers() -> None:
    assert get_args(ServerStatus) == STATUSES and get_args(ServerMode) == MODES
    assert tuple(ServerEvent.model_fields) == FIELDS


def test_messages_name_the_field_the_value_and_what_is_allowed() -> None:
    with pytest.raises(EventError) as caught:
        build_event({**VALID, "mode": "nightly", "done": 5, "total": 3, "colour": "red"})
    assert [p.render() for p in caught.value.problems] == [
        "mode: Input should be 'overnight', 'same_day', 'tomorrow' or 'backfill' (got 'nightly')",
        "done: must not exceed total (3) (got 5)",
        "colour: unknown field; allowed: " + ", ".join(FIELDS),
    ]
    assert caught.value.reason == "schema" and caught.value.status_code == 422


def test_a_built_event_is_what_the_server_stores() -> None:
    sent = build_event({**VALID, "run_date": date(2026, 1, 17), "attributes": {"host": "job-1"},
                        "timestamp": datetime(2026, 1, 17, 14, 30, tzinfo=UTC), "duration_s": 2})
    (stored,) = parse_events(sent.to_json().encode())
    assert stored.run_date == sent.run_date and stored.timestamp == sent.timestamp
    assert stored.duration_s == sent.duration_s == 2.0 and stored.attributes == {"host": "job-1"}


def test_python_values_json_cannot_carry_are_refused() -> None:
    with pytest.raises(EventError, match="cannot send set"):
        build_event({**VALID, "attributes": {"a", "b"}})
