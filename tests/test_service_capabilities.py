"""The capability endpoints: SLOs, anomalies, alerts and silences, actions (real ASGI calls)."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from monitor.app.http.server import create_app
from monitor.app.phasewatch import Phasewatch
from tests.factories import event_dict
from tests.test_service import TOKEN, Http

AUTH = {"Authorization": f"Bearer {TOKEN}"}


@pytest.fixture
def authed(app: Phasewatch) -> Iterator[Http]:
    client = Http(create_app(app, TOKEN))
    yield client
    client.close()


def test_slos_lists_every_configured_slo(authed: Http, app: Phasewatch) -> None:
    response = authed.get("/v1/slos", headers=AUTH)
    assert response.status_code == 200
    names = [s["name"] for s in response.json()["slos"]]
    assert names == [s.name for s in app.config.slos]
    first = response.json()["slos"][0]
    assert {"name", "objective", "sli", "budget_remaining", "status"} <= set(first)


def test_anomalies_newest_first(authed: Http, app: Phasewatch) -> None:
    from tests.test_anomaly_monitor import _history, _live

    _history(app, 20)
    _live(app, 20, 45.0)
    items = authed.get("/v1/anomalies", headers=AUTH).json()["anomalies"]
    assert items and items[0]["processor"] == "team_defense_game_summary"
    assert {"time", "kind", "value", "expected", "score"} <= set(items[0])


def test_silences_need_the_token_and_valid_matchers(authed: Http) -> None:
    body = {"matchers": ['alertname="anomaly"'], "author": "ana", "comment": "INC-42",
            "duration": "2h"}
    assert authed.post("/v1/silences", json=body).status_code == 401
    created = authed.post("/v1/silences", json=body, headers=AUTH)
    assert created.status_code == 201, created.text
    silence_id = created.json()["id"]
    listed = authed.get("/v1/alerts", headers=AUTH).json()
    assert [s["id"] for s in listed["silences"]] == [silence_id]
    bad = authed.post("/v1/silences", json={**body, "matchers": ["nonsense"]}, headers=AUTH)
    assert bad.status_code == 422 and bad.json()["details"][0]["field"].startswith("matchers")
    not_json = authed.post("/v1/silences", content=b"{", headers=AUTH)
    assert not_json.status_code == 400 and not_json.json()["details"][0]["field"] == "body"
    gone = authed.request("DELETE", "/v1/silences/nope", headers=AUTH)
    assert gone.status_code == 404 and gone.json()["details"][0]["field"] == "silence_id"
    assert authed.request("DELETE", f"/v1/silences/{silence_id}").status_code == 401
    assert authed.request("DELETE", f"/v1/silences/{silence_id}", headers=AUTH).status_code == 200


def test_manual_action_is_audited(authed: Http, app: Phasewatch) -> None:
    app.collector.ingest_body(b"[" + __import__("json").dumps(event_dict(
        "phase3", "succeeded", "2026-01-18T06:00:00Z", "player_game_summary")).encode() + b"]")
    body = {"action": "skip", "pipeline": "nba", "run_date": "2026-01-17", "phase": "phase3",
            "processor": "team_defense_game_summary", "actor": "ana", "note": "source down"}
    assert authed.post("/v1/actions/trigger", json=body).status_code == 401
    done = authed.post("/v1/actions/trigger", json=body, headers=AUTH)
    assert done.status_code == 200, done.text
    actions = authed.get("/v1/actions", headers=AUTH).json()["actions"]
    manual = [a for a in actions if a["kind"] == "manual"]
    assert len(manual) == 1
    assert (manual[0]["action"], manual[0]["manual"], manual[0]["actor"]) == ("skip", True, "ana")
    assert done.json()["outcome"] == "skipped"
    bad = authed.post("/v1/actions/trigger", json={**body, "phase": "phase9"}, headers=AUTH)
    assert bad.status_code in (404, 422) and "phase" in bad.json()["details"][0]["field"]
