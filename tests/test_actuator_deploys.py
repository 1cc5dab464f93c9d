"""Deploys: from health-body versions, POST /v1/deploys and replay lines; deploy regressions."""

from __future__ import annotations

import json
from datetime import datetime, timedelta
from pathlib import Path

import pytest

from monitor.actuator.deploys import Deploys, list_deploys
from monitor.actuator.gates.health import body_version
from monitor.app.http.server import create_app
from monitor.app.sim.replay import DeployLine, HealthLine, parse_line
from monitor.errors import EventError
from monitor.store.sqlite import SQLiteStore
from tests.actuator_support import Rig, nba_config, rig
from tests.test_service import Http

SERVICE = "nba-phase3-analytics-processors"
START = datetime.fromisoformat("2026-01-21T05:00:00+00:00")
TOKEN = "s3cret"


def health(r: Rig, status: str, body: dict[str, object]) -> None:
    r.world.apply(HealthLine(type="health", service=SERVICE, status=status,  # type: ignore[arg-type]
                             timestamp=r.clock.now(), body=body))


def unhealthy(r: Rig) -> list[object]:
    return r.raised("service_unhealthy")


@pytest.mark.parametrize(("body", "version"), [
    (b'{"status": "pass", "version": "1.4.2"}', "1.4.2"),
    (b'{"status": "pass", "releaseId": "r-77"}', "r-77"),
    (b'{"status": "pass", "version": 42}', "42"),
    (b'{"status": "pass", "version": true}', None),
    (b'{"status": "pass", "version": "  "}', None),
    (b'not json', None),
])
def test_body_version_reads_health_json_version_and_release_id(body: bytes, version: str | None) -> None:
    assert body_version(body) == version


def test_a_new_version_in_the_health_body_is_a_deploy_and_labels_the_unhealthy_streak() -> None:
    with rig(start=START) as r:
        health(r, "pass", {"status": "pass", "version": "v1"})
        r.tick_for(120)
        assert r.pw.actuator is not None
        deploys = r.pw.actuator.ctx.health.deploys
        assert deploys.list() == []  # the first version seen is no deploy
        deployed_at = r.clock.now()
        health(r, "fail", {"status": "fail", "version": "v2"})
        r.tick_for(240)
        (deploy,) = deploys.list(SERVICE)
        assert (deploy.version, deploy.source) == ("v2", "probe")
        assert deployed_at <= deploy.at <= deployed_at + timedelta(minutes=1)
        (alert,) = [a for a in r.raised("service_unhealthy") if a.labels["service"] == SERVICE]
        assert alert.labels["cause"] == "deploy_regression"
        assert alert.labels["deploy_version"] == "v2"
        assert "deploy regression (deployed v2 at 2026-01-21 00:0" in alert.summary
        # The label is outside the key: the same subject resolves as ever.
        health(r, "pass", {"status": "pass", "version": "v3"})
        r.tick_for(240)  # recovered_after: 3 passing probes
        resolved = [x for x in r.pw.actuator.ctx.notifier.raised
                    if x.action == "resolve" and x.kind == "service_unhealthy"]
        assert resolved and resolved[0].key == alert.key


@pytest.mark.parametrize(("window_min", "labelled"), [(60, False), (180, True)])
def test_unhealthy_long_after_a_deploy_is_a_regression_only_within_the_window(
    window_min: int, labelled: bool,
) -> None:
    config = nba_config(health={"deploy_regression_min": window_min})
    with rig(config, start=START) as r:
        assert r.pw.actuator is not None
        r.pw.actuator.ctx.health.deploys.record(SERVICE, "v9", START, "api")
        r.tick_for(2 * 3600)  # healthy for two hours after the deploy
        health(r, "fail", {"status": "fail"})
        r.tick_for(300)
        (alert,) = [a for a in r.raised("service_unhealthy") if a.labels["service"] == SERVICE]
        assert ("cause" in alert.labels) is labelled
        assert ("deploy regression (deployed v9 at" in alert.summary) is labelled


def test_post_deploys_is_authenticated_validated_durable_and_listed(tmp_path: Path) -> None:
    db = tmp_path / "pw.db"
    with rig(db=db, start=START) as r:
        client = Http(create_app(r.pw, TOKEN))
        auth = {"Authorization": f"Bearer {TOKEN}"}
        try:
            body = {"service": SERVICE, "version": "2026.01.20-week1",
                    "timestamp": "2026-01-21T05:40:00Z"}
            assert client.post("/v1/deploys", json=body).status_code == 401
            bad = client.post("/v1/deploys", json={"service": SERVICE, "version": 7}, headers=auth)
            assert bad.status_code == 422
            assert [d["field"] for d in bad.json()["details"]] == ["version"]
            naive = client.post("/v1/deploys", headers=auth,
                                json={"service": SERVICE, "timestamp": "2026-01-21T05:40:00"})
            assert naive.status_code == 422 and naive.json()["details"][0]["field"] == "timestamp"
            missing = client.post("/v1/deploys", json={"version": "x"}, headers=auth)
            assert missing.status_code == 422 and missing.json()["details"][0]["field"] == "service"
            unknown = client.post("/v1/deploys", json={"service": "nope"}, headers=auth)
            assert unknown.status_code == 404
            (problem,) = unknown.json()["details"]
            assert problem["field"] == "service" and SERVICE in problem["message"]
            extra = client.post("/v1/deploys", json={**body, "env": "prod"}, headers=auth)
            assert extra.status_code == 422
            ok = client.post("/v1/deploys", json=body, headers=auth)
            assert ok.status_code == 201
            assert ok.json()["deploy"] == {"service": SERVICE, "version": "2026.01.20-week1",
                                           "time": "2026-01-21T05:40:00+00:00", "source": "api"}
            now = client.post("/v1/deploys", json={"service": SERVICE}, headers=auth)
            assert now.json()["deploy"]["time"] == START.isoformat()  # no timestamp: now
            assert client.post("/v1/deploys", json=body, headers=auth).status_code == 201
            listed = client.get("/v1/deploys", headers=auth).json()["deploys"]
            assert [d["version"] for d in listed] == ["2026.01.20-week1", None]  # newest first, once
            assert client.get("/v1/deploys?service=nope", headers=auth).status_code == 400
            assert client.get("/v1/deploys?limit=0", headers=auth).status_code == 400
            paths = client.get("/openapi.json", headers=auth).json()["paths"]
            assert paths["/v1/deploys"].keys() == {"get", "post"}
        finally:
            client.close()
    with rig(db=db, start=START) as again:
        assert again.pw.actuator is not None
        assert len(again.pw.actuator.ctx.health.deploys.list(SERVICE)) == 2


def test_replay_deploy_lines_are_validated() -> None:
    config = nba_config()
    line = parse_line(json.dumps({"type": "deploy", "service": SERVICE, "version": "v2",
                                  "timestamp": "2026-01-21T05:40:00Z"}).encode(), config)
    assert isinstance(line, DeployLine) and line.version == "v2"
    with pytest.raises(EventError) as unknown:
        parse_line(b'{"type": "deploy", "service": "nope", "timestamp": "2026-01-21T05:40:00Z"}',
                   config)
    assert unknown.value.problems[0].field == "service"
    with pytest.raises(EventError) as naive:
        parse_line(b'{"type": "deploy", "service": "x", "timestamp": "2026-01-21T05:40:00"}', config)
    assert naive.value.problems[0].field == "timestamp"
    with pytest.raises(EventError) as kind:
        parse_line(b'{"type": "deploys", "service": "x"}', config)
    assert "deploy" in kind.value.problems[0].message


@pytest.mark.parametrize("limit", ["²", "1²", " 5", "-1", "1e3"])
def test_a_limit_that_is_not_ascii_digits_is_400_naming_the_field(limit: str) -> None:
    with rig(start=START) as r:
        client = Http(create_app(r.pw, TOKEN))
        try:
            response = client.get("/v1/deploys", params={"limit": limit},
                                  headers={"Authorization": f"Bearer {TOKEN}"})
        finally:
            client.close()
    assert response.status_code == 400, response.text
    assert [d["field"] for d in response.json()["details"]] == ["limit"]


def test_versions_alternating_under_a_traffic_split_are_one_deploy_not_one_per_flip() -> None:
    store = SQLiteStore(":memory:")
    deploys = Deploys(store, ["svc"])
    t0 = datetime.fromisoformat("2026-01-21T05:00:00+00:00")
    minute = timedelta(minutes=1)
    assert deploys.observe_version("svc", "A", t0) is None  # the first version: a baseline
    new = deploys.observe_version("svc", "B", t0 + minute)
    assert new is not None and new.version == "B"
    for k in range(2, 20):  # a 50/50 split answers A, B, A, B...
        assert deploys.observe_version("svc", "AB"[k % 2], t0 + k * minute) is None
    for k in range(20, 60):  # B alone for 40 min
        assert deploys.observe_version("svc", "B", t0 + k * minute) is None
    rollback = deploys.observe_version("svc", "A", t0 + 60 * minute)  # A gone 41 min: a deploy
    assert rollback is not None and rollback.version == "A"
    assert [d["version"] for d in list_deploys(deploys, {})["deploys"]] == ["A", "B"]
