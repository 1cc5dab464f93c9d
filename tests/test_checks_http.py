"""Live check results in: ``POST /v1/checks``, ``GET /v1/checks`` and ``phasewatch check``."""

from __future__ import annotations

import json
import sqlite3
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml
from click.testing import CliRunner

from monitor.app.cli.main import main
from monitor.app.http.server import create_app, serving
from monitor.app.phasewatch import Phasewatch
from monitor.checks.store import CheckStore
from monitor.config import default_config_text
from monitor.store.sqlite import SQLiteStore
from tests.test_service import Http, rejected

TOKEN = "s3cret-token"
AT = "2026-01-18T11:00:00+00:00"
READ = {"Authorization": f"Bearer {TOKEN}"}


def check(**fields: Any) -> dict[str, Any]:
    return {"name": "grading_completeness", "value": 0.93, "at": AT, **fields}


@pytest.fixture
def authed(app: Phasewatch) -> Iterator[Http]:
    client = Http(create_app(app, TOKEN))
    yield client
    client.close()


def post(client: Http, body: Any, **kwargs: Any) -> Any:
    headers = {"Authorization": f"Bearer {TOKEN}", **kwargs.pop("headers", {})}
    if isinstance(body, bytes):
        return client.post("/v1/checks", content=body, headers=headers, **kwargs)
    return client.post("/v1/checks", json=body, headers=headers, **kwargs)


def test_a_result_is_recorded_once_and_read_back_with_its_entities(authed: Http, app: Phasewatch) -> None:
    body = check(name="boxscore_missing_games", value=2, entities=["G4", "G7"],
                 run_date="2026-01-17")
    first = post(authed, body)
    assert (first.status_code, first.json()) == (202, {"accepted": 1, "duplicates": 0})
    again = post(authed, body)  # a sender's retry
    assert (again.status_code, again.json()) == (202, {"accepted": 0, "duplicates": 1})
    latest = app.checks.latest("boxscore_missing_games")
    assert latest is not None
    assert (latest.value, latest.entities, latest.pipeline, latest.source) == (
        2, ("G4", "G7"), "nba", "api")  # the configured check's pipeline, filled in
    listed = {c["name"]: c for c in authed.get("/v1/checks", headers=READ).json()["checks"]}
    assert listed["boxscore_missing_games"]["entities"] == ["G4", "G7"]
    assert listed["boxscore_missing_games"]["run_date"] == "2026-01-17"
    assert listed["game_completeness"] == {"name": "game_completeness", "configured": True,
                                           "level": None}


def test_an_array_and_ndjson_are_one_batch_each(authed: Http, app: Phasewatch) -> None:
    array = [check(at="2026-01-18T11:00:00Z"), check(at="2026-01-18T11:05:00Z")]
    assert post(authed, array).json() == {"accepted": 2, "duplicates": 0}
    lines = b"\n".join(json.dumps(check(at=f"2026-01-18T12:0{i}:00Z")).encode() for i in range(3))
    reply = post(authed, lines, headers={"Content-Type": "application/x-ndjson"})
    assert reply.json() == {"accepted": 3, "duplicates": 0}
    pretty = json.dumps(check(at="2026-01-18T13:00:00Z"), indent=2).encode()  # one object
    assert post(authed, pretty).json() == {"accepted": 1, "duplicates": 0}
    assert app.checks.latest("grading_completeness").at.hour == 13  # type: ignore[union-attr]


@pytest.mark.parametrize(("body", "status", "field", "says"), [
    (check(value="high"), 422, "value", "number"),
    (check(value=1e400), 422, "value", "finite"),
    ({"name": "x", "value": 1}, 422, "at", "required"),
    (check(at="2026-01-18T11:00:00"), 422, "at", "timezone"),
    (check(colour="red"), 422, "colour", "allowed: name, value, at, entities, run_date, pipeline"),
    (check(name=""), 422, "name", "at least 1"),
    (check(entities=["G1", ""]), 422, "entities[1]", "at least 1"),
    (check(entities=["G"] * 10_001), 422, "entities", "at most 10000"),
    (check(run_date="yesterday"), 422, "run_date", "date"),
    (check(pipeline="mlb"), 422, "pipeline", "unknown pipeline; allowed: nba"),
    ([check(), check(name="games_today", pipeline="nope")], 422, "checks[1].pipeline",
     "unknown pipeline"),
    (b"{not json", 400, "body", "JSON"),
    (b"   ", 400, "body", "empty"),
    ([], 400, "body", "no check results"),
    ([check(at=f"2026-01-18T11:{i // 60:02d}:{i % 60:02d}Z") for i in range(1001)], 422, "body",
     "at most 1000"),
])
def test_bad_input_is_refused_naming_the_field_and_nothing_is_stored(
    authed: Http, app: Phasewatch, body: Any, status: int, field: str, says: str,
) -> None:
    if isinstance(body, dict) and body.get("value") == 1e400:
        body = json.dumps(body).replace("inf", "1e400").replace("Infinity", "1e400").encode()
    reply = post(authed, body)
    assert reply.status_code == status, reply.text
    details = reply.json()["details"]
    assert any(d["field"] == field and says in d["message"] for d in details), details
    assert app.checks.store.latest_all() == []
    assert rejected(app) >= 1


def test_a_configured_checks_pipeline_cannot_be_contradicted() -> None:
    from monitor.checks.api import parse_checks, resolve
    from monitor.config import parse_config
    from monitor.errors import EventError

    data = yaml.safe_load(default_config_text())
    data["pipelines"].append({**data["pipelines"][0], "id": "nba2", "expectations": []})
    config = parse_config(yaml.safe_dump(data), "<test>")
    items = parse_checks(json.dumps([check(pipeline="nba"), check(pipeline="nba2")]).encode())
    with pytest.raises(EventError) as caught:
        resolve(config, items, "api")
    (problem,) = caught.value.problems
    assert problem.field == "checks[1].pipeline"
    assert "configured for pipeline nba" in problem.message


@pytest.mark.parametrize("header", [None, "Bearer wrong", f"Basic {TOKEN}"])
def test_posting_checks_needs_the_token(authed: Http, app: Phasewatch, header: str | None) -> None:
    headers = {"Authorization": header} if header else {}
    reply = authed.post("/v1/checks", json=check(), headers=headers)
    assert reply.status_code == 401
    assert reply.json()["details"][0]["field"] == "Authorization"
    assert app.checks.store.latest_all() == []
    assert authed.get("/v1/checks").status_code == 401  # reads need the token too (read_auth)
    assert authed.get("/v1/checks", headers=READ).status_code == 200


def test_the_openapi_document_describes_the_check_body(authed: Http) -> None:
    doc = authed.get("/openapi.json", headers=READ).json()
    operation = doc["paths"]["/v1/checks"]["post"]
    assert operation["security"] == [{"bearer": []}]
    schema = doc["components"]["schemas"]["CheckInput"]
    assert set(schema["required"]) == {"name", "value", "at"}


# --- the CLI ------------------------------------------------------------------------------

def cli(*args: str, env: dict[str, str] | None = None) -> Any:
    return CliRunner().invoke(main, list(args), env={"COLUMNS": "120", **(env or {})})


def test_check_record_sends_to_a_running_phasewatch(app: Phasewatch) -> None:
    with serving(create_app(app, TOKEN)) as url:
        args = ("check", "record", "--name", "grading_completeness", "--value", "0.62",
                "--at", AT, "--run-date", "2026-01-17", "--url", url)
        sent = cli(*args, env={"PHASEWATCH_TOKEN": TOKEN})
        assert sent.exit_code == 0, sent.output
        assert sent.output.startswith("recorded: check grading_completeness = 0.62")
        again = cli(*args, env={"PHASEWATCH_TOKEN": TOKEN})
        assert again.exit_code == 0 and again.output.startswith("duplicate:")
        refused = cli(*args, env={"PHASEWATCH_TOKEN": "wrong"})
        assert refused.exit_code == 1
        assert "refused (401)" in refused.output and "Authorization" in refused.output
    latest = app.checks.latest("grading_completeness")
    assert latest is not None and latest.value == 0.62 and str(latest.run_date) == "2026-01-17"


def test_check_record_into_a_store_is_taken_by_the_service_within_a_tick(
    app: Phasewatch, tmp_path: Path,
) -> None:
    db = tmp_path / "pw.db"  # the app fixture's store
    result = cli("check", "record", "--name", "boxscore_missing_games", "--value", "1",
                 "--entity", "G4", "--at", AT, "--db", str(db))
    assert result.exit_code == 0, result.output
    assert result.output.startswith("recorded: check boxscore_missing_games = 1")
    store = SQLiteStore(db)
    try:
        latest = CheckStore(store).latest("boxscore_missing_games")
    finally:
        store.close()
    assert latest is not None and latest.entities == ("G4",) and latest.source == "cli"
    assert app.checks.latest("boxscore_missing_games") == latest  # gates read it at once


@pytest.mark.parametrize(("args", "says"), [
    (("--value", "x"), "--value"),
    (("--value", "nan"), "--value nan: Input should be a finite number"),
    (("--value", "1", "--at", "yesterday"), "--at 'yesterday': not a time"),
    (("--value", "1", "--run-date", "2026-13-01"), "--run-date"),
    (("--value", "1", "--entity", ""), "--entity"),
    (("--value", "1", "--url", "http://x", "--db", "y.db"), "--url and --db: give one"),
    (("--value", "1", "--db", "missing.db"), "--db missing.db: no such file"),
    (("--value", "1", "--pipeline", "mlb", "--db", "{db}"), "--pipeline: unknown pipeline"),
])
def test_check_record_refuses_bad_input_with_exit_2(
    args: tuple[str, ...], says: str, app: Phasewatch, tmp_path: Path,
) -> None:
    filled = [a.replace("{db}", str(tmp_path / "pw.db")) for a in args]
    result = cli("check", "record", "--name", "games_today", *filled)
    assert result.exit_code == 2, result.output
    assert result.output.startswith("error: ") and says in result.output, result.output


def test_check_record_reports_an_unreachable_service_with_exit_1() -> None:
    result = cli("check", "record", "--name", "games_today", "--value", "3", "--retries", "0",
                 "--url", "http://127.0.0.1:9")
    assert result.exit_code == 1
    assert "unreachable" in result.output


def test_check_run_tries_a_configured_query_and_records_nothing(tmp_path: Path) -> None:
    warehouse = tmp_path / "w.db"
    db = sqlite3.connect(warehouse)
    db.execute("CREATE TABLE missing (game_date TEXT, game_id TEXT)")
    db.execute("INSERT INTO missing VALUES ('2026-01-17', 'G4'), ('2026-01-17', 'G7')")
    db.commit()
    db.close()
    data = yaml.safe_load(default_config_text())
    # The example's SLO counts game days by games_today's results: it stays declared.
    data["checks"] = [{"name": "games_today", "pipeline": "nba", "kind": "pushed"},
                      {"name": "missing_games", "pipeline": "nba", "kind": "sql",
                       "runner": {"kind": "sqlite", "path": str(warehouse)},
                       "query": "SELECT game_id FROM missing WHERE game_date = :run_date",
                       "returns": "missing", "schedule": "0 6 * * *", "run_date_days_ago": 1,
                       "warn_when": "> 0"}]
    config = tmp_path / "c.yaml"
    config.write_text(yaml.safe_dump(data), "utf-8")
    result = cli("check", "run", "missing_games", "--config", str(config), "--run-date",
                 "2026-01-17", "--json")
    assert result.exit_code == 0, result.output
    out = json.loads(result.output)
    assert (out["value"], out["entities"], out["run_date"], out["level"]) == (
        2, ["G4", "G7"], "2026-01-17", "warning")
    unknown = cli("check", "run", "nope", "--config", str(config))
    assert unknown.exit_code == 2 and "allowed: missing_games" in unknown.output
    warehouse.unlink()
    failed = cli("check", "run", "missing_games", "--config", str(config))
    assert failed.exit_code == 1 and "could not run (failed)" in failed.output
