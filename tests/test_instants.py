"""Times a user sends (``monitor.validation.Instant``): what is refused, and the exact words.

The range is checked by pydantic's own bounds (no Python validator on the ingest path);
the messages are the contract's, whichever check refuses the value first.
"""

from __future__ import annotations

import json
from datetime import datetime

import pytest
from phasewatch_client.event import INSTANT_RANGE
from pydantic import BaseModel, ValidationError

from monitor.errors import EventError
from monitor.events import parse_events
from monitor.validation import Instant, problems_from_validation_error
from tests.factories import event_dict

NAIVE = "Input should have timezone info"

CASES = [
    ("1969-12-31T23:59:59.999999Z", INSTANT_RANGE),
    ("1970-01-01T00:59:59+01:00", INSTANT_RANGE),
    ("2999-12-31T23:59:59.000001Z", INSTANT_RANGE),
    ("3000-01-01T01:00:00+01:00", INSTANT_RANGE),
    ("9999-12-31T23:59:59-14:00", INSTANT_RANGE),  # past datetime's range in UTC
    ("0001-01-01T00:00:00+14:00", INSTANT_RANGE),
    ("1960-01-01T00:00:00", NAIVE),  # both naive and out of range: naive is said first
    ("3500-01-01 00:00:00", NAIVE),
    ("2026-01-18T06:00:00", NAIVE),
    (12345, "Input should be a valid datetime"),
    ("2026-13-01T00:00:00Z", "Input should be a valid datetime, month value is outside expected range of 1-12"),
]
ACCEPTED = ["1970-01-01T00:00:00Z", "1969-12-31T23:00:00-01:00", "2999-12-31T23:59:59Z",
            "3000-01-01T00:59:59+01:00", "1970-01-01T23:59:00+23:59", "2026-01-18t06:00:00.5z"]


def event_problems(field: str, value: object) -> list[tuple[str, str, str | None]]:
    body = event_dict("phase2", "started", "2026-01-18T06:00:00Z", "p2_odds_game_lines",
                      **{field: value})
    with pytest.raises(EventError) as info:
        parse_events(json.dumps([body]).encode())
    return [(p.field, p.message, p.value) for p in info.value.problems]


@pytest.mark.parametrize("field", ["timestamp", "data_as_of"])
@pytest.mark.parametrize(("value", "message"), CASES)
def test_an_event_time_is_refused_with_the_contracts_words(field: str, value: object,
                                                           message: str) -> None:
    assert event_problems(field, value) == [(f"events[0].{field}", message, repr(value))]


@pytest.mark.parametrize("field", ["timestamp", "data_as_of"])
@pytest.mark.parametrize("value", ACCEPTED)
def test_an_event_time_inside_the_range_is_kept_as_sent(field: str, value: str) -> None:
    body = event_dict("phase2", "started", "2026-01-18T06:00:00Z", "p2_odds_game_lines",
                      **{field: value})
    (event,) = parse_events(json.dumps(body).encode())
    sent = datetime.fromisoformat(value.upper().replace("Z", "+00:00"))
    assert getattr(event, field) == sent
    assert getattr(event, field).utcoffset() == sent.utcoffset()


class Lax(BaseModel):
    """A model that is not strict (silences, deploys): numbers are Unix times."""

    at: Instant


@pytest.mark.parametrize(("value", "message"), [
    ("0001-01-01T00:00:00+14:00", INSTANT_RANGE),
    ("1960-01-01T00:00:00", NAIVE),
    (99999999999999, INSTANT_RANGE),  # a Unix time in the year 5138
    (-1, INSTANT_RANGE),
])
def test_a_lax_models_time_is_refused_with_the_same_words(value: object, message: str) -> None:
    with pytest.raises(ValidationError) as info:
        Lax.model_validate({"at": value})
    problems = problems_from_validation_error(info.value, root=Lax)
    assert [(p.field, p.message, p.value) for p in problems] == [("at", message, repr(value))]
