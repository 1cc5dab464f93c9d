"""The fast path of event parsing (msgspec) against its reference (pydantic's ``Event``).

Whatever msgspec accepts, pydantic accepts with the same values; whatever it refuses or
cannot vouch for goes to pydantic, which accepts it or words the error. The stored JSON
is the bytes pydantic writes. Generated events probe the edges: bounds, offsets, long
fractions, null fields, unknown fields, escapes.
"""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta, timezone
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from pydantic import ValidationError

from monitor.errors import EventError
from monitor.events import (
    _MANY,
    _ONE,
    _WIRE_MANY,
    _WIRE_ONE,
    Event,
    _fast,
    assign_fields,
    event_to_json,
    parse_event,
    parse_events,
    replace_fields,
)
from monitor.store.base import utc_text
from slo.anomaly.detector import RobustDetector
from tests.factories import event_dict

_PYDANTIC_JSON = Event.__pydantic_serializer__


def _same(fast: Event, slow: Event) -> bool:
    """Equal values, equal types, and the same offsets (the tzinfo classes may differ)."""
    if fast.__dict__.keys() != slow.__dict__.keys():
        return False
    for name, value in slow.__dict__.items():
        other = fast.__dict__[name]
        if type(value) is not type(other) or value != other:
            return False
        if isinstance(value, datetime) and value.utcoffset() != other.utcoffset():
            return False
    return True


def _instant(draw: st.DrawFn, edges: bool) -> str:
    day = draw(st.datetimes(min_value=datetime(1969, 12, 31, 22), max_value=datetime(3000, 1, 1, 2))
               if edges else st.datetimes(min_value=datetime(2026, 1, 1),
                                          max_value=datetime(2026, 2, 1)))
    text = day.strftime("%Y-%m-%dT%H:%M:%S")
    if not edges:
        return text + draw(st.sampled_from(["", ".5", ".123456"])) + draw(
            st.sampled_from(["Z", "+00:00", "-05:00"]))
    digits = draw(st.sampled_from(["", ".5", ".123456", ".1234567", ".000000000", ".9999995"]))
    zone = draw(st.sampled_from(["Z", "z", "+00:00", "-00:00", "+01:00", "-05:30", "+23:59",
                                 "+0100", "", "+24:00"]))
    return text + digits + zone


# Values at and past the contract's edges; an event gets a few of them.
EDGES: dict[str, st.SearchStrategy[Any]] = {
    "event_id": st.sampled_from(["", "x" * 128, "x" * 129, "\u2028<&>\"\\", "\U0001f600"]),
    "pipeline": st.sampled_from(["mlb", "", None, 1]),
    "run_date": st.sampled_from(["1970-01-01", "2999-12-31", "1969-12-31", "3000-01-01",
                                 "2026-02-30", "20260117", "2026-1-17"]),
    "status": st.sampled_from(["progress", "skipped", "done", "", None]),
    "mode": st.sampled_from(["overnight", "same_day", "nightly", None]),
    "processor": st.one_of(st.none(), st.text(max_size=3)),
    "duration_s": st.one_of(st.none(), st.integers(-1, 40_000_000), st.booleans(),
                            st.floats(-1, 40_000_000, allow_nan=False)),
    "records": st.one_of(st.none(), st.integers(-1, 2**64), st.floats(0, 10), st.booleans()),
    "expected_records": st.one_of(st.none(), st.integers(0, 2**63)),
    "total": st.one_of(st.none(), st.integers(0, 10)),
    "done": st.one_of(st.none(), st.integers(0, 10)),
    "error": st.one_of(st.none(), st.text(max_size=3), st.just("e" * 2001)),
    "attributes": st.one_of(st.none(), st.dictionaries(st.text(max_size=2), st.text(max_size=2),
                                                       max_size=3)),
    "traceparent": st.sampled_from([
        None, "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01",
        "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01\n", "00-x"]),
    "batch_id": st.one_of(st.none(), st.text(max_size=2)),
    "unknown_field": st.just(1),
}


@st.composite
def raw_events(draw: st.DrawFn) -> dict[str, Any]:
    """A valid event object with a few of its fields at or past the contract's edges."""
    event: dict[str, Any] = {
        "event_id": draw(st.text(min_size=1, max_size=8)), "pipeline": "nba",
        "run_date": "2026-01-17", "phase": "phase2",
        "status": draw(st.sampled_from(["started", "succeeded", "failed"])),
        "timestamp": _instant(draw, edges=False),
    }
    if draw(st.booleans()):
        event["timestamp"] = _instant(draw, edges=True)
    if draw(st.booleans()):
        event["data_as_of"] = _instant(draw, edges=draw(st.booleans()))
    for name in draw(st.sets(st.sampled_from(sorted(EDGES)), max_size=3)):
        event[name] = draw(EDGES[name])
    return event


def fast_agrees(decoder: Any, body: bytes) -> list[Event] | None:
    """What pydantic makes of ``body`` (None: it refuses it), asserting that the fast path
    (``decoder``: one event or an array) gives the same events or steps aside."""
    try:
        slow = _MANY.validate_json(body) if decoder is _WIRE_MANY else [_ONE.validate_json(body)]
    except ValidationError:
        slow = None
    fast = _fast(decoder, body)
    if fast is not None:
        assert slow is not None, "msgspec accepted what pydantic refuses"
        assert all(_same(a, b) for a, b in zip(fast, slow, strict=True))
    return slow


@settings(max_examples=400, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.lists(raw_events(), min_size=1, max_size=3))
def test_the_fast_path_gives_pydantics_values_or_steps_aside(events: list[dict[str, Any]]) -> None:
    body = json.dumps(events).encode()
    fast_agrees(_WIRE_ONE, json.dumps(events[0]).encode())
    slow = fast_agrees(_WIRE_MANY, body)
    if slow is None:
        with pytest.raises(EventError) as refused:
            parse_events(body)
        with pytest.raises(ValidationError) as words:
            _MANY.validate_json(body)
        assert refused.value.problems  # words from pydantic's errors, as before
        assert str(words.value)
    else:
        parsed = parse_events(body)
        assert all(_same(a, b) for a, b in zip(parsed, slow, strict=True))
        assert [event_to_json(e) for e in parsed] == [
            _PYDANTIC_JSON.to_json(e, exclude_none=True).decode() for e in slow]
        # and once completed as ingest completes them (a mode derived, an alias resolved),
        # whichever path made them
        update = {"mode": "backfill", "processor": "Canonical"}
        for event in [*parsed, *slow]:
            for done in (replace_fields(event, update), event.model_copy(update=update)):
                assert event_to_json(done) == _PYDANTIC_JSON.to_json(done, exclude_none=True).decode()


@settings(max_examples=100, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(raw_events(), st.sampled_from([{}, {"mode": "backfill"}, {"processor": "Canonical"},
                                      {"mode": "overnight", "error": None}]),
       st.booleans(), st.booleans())
def test_a_fast_events_fields_set_is_the_one_it_was_given_at_parse(
    raw: dict[str, Any], update: dict[str, Any], asked_first: bool, in_place: bool,
) -> None:
    """The fast path leaves an event's fields set to be made when asked for: it is the set
    of fields given a value at parse, plus the fields an update gives, whether it was
    asked for before the update or after, and pydantic's copies and dumps read it."""
    parsed = _fast(_WIRE_ONE, json.dumps(raw).encode())
    if parsed is None:
        return
    (event,) = parsed
    given_at_parse = {k for k, v in event.__dict__.items() if v is not None}
    if asked_first:
        assert event.model_fields_set == given_at_parse
    done = assign_fields(event, update) if in_place else replace_fields(event, update)
    assert done.model_fields_set == given_at_parse | update.keys()
    assert done.model_copy().model_fields_set == given_at_parse | update.keys()
    assert done.model_dump(exclude_unset=True) == {
        k: v for k, v in done.model_dump().items() if k in given_at_parse | update.keys()}
    if not in_place:
        assert event.model_fields_set == given_at_parse


@pytest.mark.parametrize("change", [
    {"done": 5, "total": 4},  # done above total: pydantic's validator words it
    {"run_date": "1969-12-31"},
    {"timestamp": "1969-12-31T23:59:59Z"},
    {"timestamp": "2999-12-31T23:59:59-00:01"},
    {"timestamp": "9999-12-31T23:59:59-01:00"},  # past datetime's range in UTC
    {"data_as_of": "3000-01-01T00:00:00Z"},
    {"traceparent": "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01\n"},
])
def test_what_msgspec_would_let_through_is_refused_in_pydantics_words(change: dict[str, Any]) -> None:
    body = json.dumps([{**event_dict("phase2", "progress", "2026-01-18T06:00:00Z"), **change}])
    with pytest.raises(ValidationError) as reference:
        _MANY.validate_json(body)
    with pytest.raises(EventError) as refused:
        parse_events(body.encode())
    fields = {".".join(str(p) for p in e["loc"][1:]) for e in reference.value.errors()}
    assert {p.field.removeprefix("events[0].") for p in refused.value.problems} == fields


def test_a_time_finer_than_microseconds_is_cut_as_pydantic_cuts_it() -> None:
    # msgspec would round .9999995 up to the next second; pydantic keeps .999999
    raw = json.dumps(event_dict("phase2", "started", "2026-01-18T06:00:00.9999995Z")).encode()
    assert parse_event(raw).timestamp.microsecond == _ONE.validate_json(raw).timestamp.microsecond


@given(st.datetimes(min_value=datetime(1, 1, 2), max_value=datetime(9999, 12, 30),
                    timezones=st.sampled_from([None, UTC, timezone(timedelta(hours=5, minutes=30)),
                                               timezone(timedelta(hours=-9)),
                                               timezone(timedelta(seconds=1))])))
def test_utc_text_is_the_fixed_width_text_it_always_was(when: datetime) -> None:
    reference = when.astimezone(UTC) if when.utcoffset() else when
    assert utc_text(when) == f"{reference.isoformat(timespec='microseconds')[:26]}Z"


@settings(max_examples=300, deadline=None)
@given(st.lists(st.tuples(st.sampled_from([0.0, -0.0, 1.0, 2.0, 2.5, 3.0, 6.2]),
                          st.floats(0.5, 100), st.integers(0, 3)), min_size=1, max_size=90),
       st.sampled_from([2.0, 1.5, 3.0, 0.0, 10.0, 6.1]),
       st.integers(0, 60), st.one_of(st.none(), st.tuples(st.floats(-5, 5), st.integers(0, 200))))
def test_the_size_neighbours_are_the_reference_choice(
    points: list[tuple[float, float, int]], size: float, later: int,
    shift: tuple[float, int] | None,
) -> None:
    """``_nearest``: the median of the ``neighbours`` points nearest in size among those of
    the window, newest first on ties, as the sort of (distance, -number, value) tuples
    chose them; points without a size between (gaps in the numbers), a re-levelling, and
    sizes as near above as below (the sizes stand for log1p of the covariates)."""
    detector = RobustDetector()
    number = 0
    for covariate, value, gap in points:
        number += gap  # points without a covariate in between
        detector._sized.append(number, covariate, value)
        number += 1
    if shift is not None:
        detector._sized.shift(*shift)
    detector._n = number + later
    oldest = detector._n - detector.config.window
    count = detector._sized.count_from(oldest)  # the points with a size in the window
    sized = [item for item in detector._sized if item[0] >= oldest]
    assert count == len(sized)
    near = sorted((abs(s - size), -i, y) for i, s, y in sized)
    ys = sorted(y for _, _, y in near[: detector.config.neighbours])
    if not ys:
        return
    m = len(ys)
    expected = ys[m >> 1] if m & 1 else (ys[(m >> 1) - 1] + ys[m >> 1]) * 0.5
    assert detector._nearest(size) == expected
