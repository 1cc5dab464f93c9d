"""Reads need the token too (``server.read_auth: token``, the default when a token is set).

Measured before: with a token set and ``--allow-unauthenticated`` on Cloud Run, anyone
could read ``/v1/dead-letters`` (message payloads), ``/v1/actions`` and ``/v1/alerts``.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from monitor.actuator.sinks import MemorySink
from monitor.app.http.server import create_app
from monitor.app.phasewatch import Phasewatch
from monitor.clock import FakeClock
from monitor.config import default_config_text, parse_config
from monitor.errors import ConfigError
from tests.test_service import TOKEN, Http

AUTH = {"Authorization": f"Bearer {TOKEN}"}
READS = ["/v1/dead-letters", "/v1/actions", "/v1/alerts", "/v1/runs", "/v1/slos", "/v1/anomalies",
         "/v1/deploys", "/openapi.json", "/metrics"]


def _client(tmp_path: Path, clock: FakeClock, server_yaml: str = "", token: str | None = TOKEN) -> Iterator[Http]:
    text = default_config_text() + (f"server:\n{server_yaml}" if server_yaml else "")
    sink = MemorySink()
    pw = Phasewatch.build(parse_config(text, "t.yaml"), db_path=tmp_path / "pw.db", clock=clock,
                          sinks={"http": sink, "pubsub": sink, "log": sink})
    client = Http(create_app(pw, token))
    try:
        yield client
    finally:
        client.close()
        pw.close()


@pytest.fixture
def default(tmp_path: Path, clock: FakeClock) -> Iterator[Http]:
    yield from _client(tmp_path, clock)


@pytest.mark.parametrize("path", READS)
@pytest.mark.parametrize("header", [None, "Bearer wrong"], ids=["missing", "wrong"])
def test_reads_need_the_token_by_default(default: Http, path: str, header: str | None) -> None:
    response = default.get(path, headers={"Authorization": header} if header else {})
    assert response.status_code == 401, response.text
    assert response.headers["www-authenticate"].startswith("Bearer")
    assert response.json()["details"][0]["field"] == "Authorization"
    assert default.request("HEAD", path).status_code == 401


@pytest.mark.parametrize("path", READS)
def test_reads_with_the_token_are_served(default: Http, path: str) -> None:
    assert default.get(path, headers=AUTH).status_code == 200


@pytest.mark.parametrize("path", ["/health", "/ready"])
def test_health_and_readiness_stay_public_by_default(default: Http, path: str) -> None:
    assert default.get(path).status_code == 200


def test_public_paths_open_metrics_for_a_scraper_and_nothing_else(tmp_path: Path, clock: FakeClock) -> None:
    for client in _client(tmp_path, clock, "  public_paths: [/health, /metrics]\n"):
        assert client.get("/metrics").status_code == 200
        assert client.get("/health").status_code == 200
        assert client.get("/ready").status_code == 401  # not listed any more
        assert client.get("/v1/dead-letters").status_code == 401
        assert client.post("/v1/events", json=[]).status_code == 401  # writes never


def test_read_auth_public_opens_reads_but_never_writes(tmp_path: Path, clock: FakeClock) -> None:
    for client in _client(tmp_path, clock, "  read_auth: public\n"):
        assert client.get("/v1/dead-letters").status_code == 200
        assert client.post("/v1/events", json=[]).status_code == 401


def test_without_a_token_everything_is_open_as_before(tmp_path: Path, clock: FakeClock) -> None:
    for client in _client(tmp_path, clock, token=None):
        assert client.get("/v1/dead-letters").status_code == 200


def test_the_openapi_document_says_which_reads_need_the_token(default: Http) -> None:
    paths = default.get("/openapi.json", headers=AUTH).json()["paths"]
    assert paths["/v1/dead-letters"]["get"]["security"] == [{"bearer": []}]
    assert "401" in paths["/v1/dead-letters"]["get"]["responses"]
    assert "security" not in paths["/health"]["get"]


@pytest.mark.parametrize(("yaml", "field", "allowed"), [
    ("  read_auth: open\n", "server.read_auth", "'token' or 'public'"),
    ("  public_paths: [/v1/dead-letters]\n", "server.public_paths[0]", "'/health', '/ready', '/metrics', '/openapi.json', '/' or '/dashboard'"),
])
def test_bad_read_auth_settings_name_the_field(yaml: str, field: str, allowed: str) -> None:
    with pytest.raises(ConfigError) as info:
        parse_config(default_config_text() + "server:\n" + yaml, "t.yaml")
    (problem,) = info.value.problems
    assert problem.field == field
    assert allowed in problem.message
