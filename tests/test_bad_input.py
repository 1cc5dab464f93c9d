"""Every bad input is a 4xx naming the field: the cases that once answered 5xx (issue 16).

Each case here was measured against ``phasewatch serve`` answering 503 or 500 (or raising
out of the app); the fuzz suite (tests/test_fuzz.py) looks for the ones not yet known.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Any

import pytest
from phasewatch_client.event import MAX_COUNT

from monitor.app.http.server import create_app
from monitor.app.phasewatch import Phasewatch
from tests.test_service import Http, ev, push_envelope

SERVICE = "nba-scrapers"


@pytest.fixture
def http(app: Phasewatch) -> Iterator[Http]:
    client = Http(create_app(app, None))
    yield client
    client.close()


def problem_fields(response: Any) -> list[str]:
    return [d["field"] for d in response.json()["details"]]


@pytest.mark.parametrize("field", ["records", "expected_records", "total", "done"])
def test_counts_above_int64_are_422_not_503(http: Http, app: Phasewatch, field: str) -> None:
    fields: dict[str, Any] = {field: MAX_COUNT + 1}
    if field == "done":
        fields["batch_id"] = "b1"
    response = http.post("/v1/events", json=ev(**fields))
    assert response.status_code == 422, response.text
    assert field in problem_fields(response)
    assert str(MAX_COUNT) in response.text  # the message says what is allowed
    assert app.store.count() == 0


def test_the_largest_count_is_stored(http: Http, app: Phasewatch) -> None:
    response = http.post("/v1/events", json=ev(records=MAX_COUNT, expected_records=MAX_COUNT))
    assert response.status_code == 202, response.text
    assert app.store.count() == 1


def test_a_push_that_can_never_be_stored_is_dead_lettered_and_acked(
    http: Http, app: Phasewatch
) -> None:
    data = json.dumps(ev(records=2**64)).encode()
    for _ in range(2):  # the redelivery is acked too, and kept once
        response = http.post("/v1/pubsub/push", json=push_envelope(data, "m-big"))
        assert response.status_code == 200, response.text
        assert response.json()["outcome"] == "dead_lettered"
    assert app.store.count() == 0
    assert len(app.store.dead_letters()) == 1


def test_deeply_nested_silence_body_is_400(http: Http) -> None:
    response = http.post("/v1/silences", content=b"[" * 5000)
    assert response.status_code == 400, response.text
    assert problem_fields(response) == ["body"]


def test_huge_silence_duration_is_422(http: Http) -> None:
    body = {"matchers": ["alertname=deadline"], "author": "me", "comment": "c",
            "duration": "99999999999d"}
    response = http.post("/v1/silences", json=body)
    assert response.status_code == 422, response.text
    assert "duration" in problem_fields(response)


@pytest.mark.parametrize("field", ["starts_at", "ends_at"])
def test_silence_times_out_of_range_are_422(http: Http, field: str) -> None:
    body = {"matchers": ["alertname=deadline"], "author": "me", "comment": "c",
            field: "9999-12-31T23:59:59-14:00"}
    response = http.post("/v1/silences", json=body)
    assert response.status_code == 422, response.text
    assert field in problem_fields(response)


def test_deploy_timestamp_past_9999_in_utc_is_422(http: Http, app: Phasewatch) -> None:
    body = {"service": SERVICE, "timestamp": "9999-12-31T23:59:59-14:00"}
    response = http.post("/v1/deploys", json=body)
    assert response.status_code == 422, response.text
    assert problem_fields(response) == ["timestamp"]
    assert http.get("/v1/deploys").json()["deploys"] == []


@pytest.mark.parametrize("path", ["/v1/actions", "/v1/dead-letters", "/v1/deploys"])
@pytest.mark.parametrize("limit", ["%C2%B2", "%D9%A3", "1_0", "+5", "0", "1001", "9" * 40])
def test_limit_that_is_not_1_to_1000_in_ascii_digits_is_400(
    http: Http, path: str, limit: str
) -> None:
    response = http.get(f"{path}?limit={limit}")
    assert response.status_code == 400, response.text
    assert problem_fields(response) == ["limit"]


@pytest.mark.parametrize("since", ["0001-01-01T00:00:00%2B14:00", "9999-12-31T23:59:59-14:00"])
def test_actions_since_outside_datetime_range_is_400(http: Http, since: str) -> None:
    response = http.get(f"/v1/actions?since={since}")
    assert response.status_code == 400, response.text
    assert problem_fields(response) == ["since"]


@pytest.mark.parametrize("run_date", ["0001-01-01", "9999-12-31", "0001-01-01T00:00:00+14:00"])
def test_manual_action_run_date_outside_the_contract_is_422(http: Http, run_date: str) -> None:
    # Found by tests/test_fuzz.py: a skip built an event the contract refuses, and answered 500.
    body = {"action": "skip", "pipeline": "nba", "run_date": run_date, "phase": "phase2",
            "processor": "p2_odds_game_lines"}
    response = http.post("/v1/actions/trigger", json=body)
    assert response.status_code == 422, response.text
    assert problem_fields(response) == ["run_date"]
