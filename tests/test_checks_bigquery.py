"""The BigQuery runner through the real client, against a local server that speaks jobs.query.

The server answers ``jobs.query`` / ``jobs.get`` / ``jobs.getQueryResults`` / ``jobs.cancel``
in the REST shapes the client reads, and runs the query for real: the BigQuery SQL is
transpiled with sqlglot and run on DuckDB over small tables, with the query parameters the
client sent. So the NBA example's checks are tested for what they mean, not only their shape.
"""

from __future__ import annotations

import threading
import time
import uuid
from collections.abc import Iterator
from datetime import UTC, date, datetime, timedelta
from decimal import Decimal
from typing import Any
from zoneinfo import ZoneInfo

import duckdb
import pytest
import sqlglot
from phasewatch_client.kit.testing import LocalServer, StubReply, StubRequest

from monitor.checks.config import BigQueryRunnerConfig, SqlCheckConfig
from monitor.checks.engine import execute
from monitor.checks.errors import CheckRunError
from monitor.checks.runners.bigquery import BigQueryRunner, parameters_of
from monitor.config import load_config

ET = ZoneInfo("America/New_York")
RUN_DATE = date(2026, 1, 17)
NOW = datetime(2026, 1, 18, 11, 0, tzinfo=UTC)
_TYPES = {"BIGINT": "INTEGER", "INTEGER": "INTEGER", "HUGEINT": "INTEGER", "DOUBLE": "FLOAT",
          "FLOAT": "FLOAT", "VARCHAR": "STRING", "DATE": "DATE", "BOOLEAN": "BOOLEAN"}


class FakeBigQuery:
    """jobs.query and friends, answered by running the transpiled SQL on DuckDB."""

    def __init__(self, db: duckdb.DuckDBPyConnection, *, bytes_billed: int = 10_485_760,
                 hang: bool = False) -> None:
        self.db, self.bytes_billed, self.hang = db, bytes_billed, hang
        self.bodies: list[dict[str, Any]] = []
        self.cancelled: list[str] = []
        self._lock = threading.Lock()

    def __call__(self, request: StubRequest) -> StubReply:
        parts = request.path.split("/")  # /bigquery/v2/projects/{p}/{kind}[/{id}[/cancel]]
        project, kind = parts[4], parts[5]
        job_id = parts[6] if len(parts) > 6 else ""
        reference = {"projectId": project, "jobId": job_id, "location": "US"}
        if request.method == "POST" and kind == "queries":
            return self._query(project, request.json())
        if request.method == "POST" and kind == "jobs" and parts[-1] == "cancel":
            self.cancelled.append(job_id)
            return StubReply.of_json({"job": {"jobReference": reference,
                                              "status": {"state": "DONE"}}})
        if request.method == "GET" and kind == "jobs":
            return StubReply.of_json({"jobReference": reference, "status": {"state": "RUNNING"},
                                      "configuration": {"query": {"query": "..."}}})
        if request.method == "GET" and kind == "queries":
            return StubReply.of_json({"jobReference": reference, "jobComplete": False})
        return StubReply.of_json({"error": {"code": 404, "message": "not found"}}, 404)

    def _query(self, project: str, body: dict[str, Any]) -> StubReply:
        with self._lock:
            self.bodies.append(body)
        reference = {"projectId": project, "jobId": uuid.uuid4().hex, "location": "US"}
        cap = body.get("maximumBytesBilled")
        if cap is not None and int(cap) < self.bytes_billed:
            message = (f"Query exceeded limit for bytes billed: {cap}. {self.bytes_billed} or "
                       "higher required.")
            return StubReply.of_json({"error": {"code": 400, "message": message, "errors": [
                {"reason": "bytesBilledLimitExceeded", "message": message}]}}, 400)
        if self.hang:
            return StubReply.of_json({"kind": "bigquery#queryResponse", "jobReference": reference,
                                      "jobComplete": False})
        params = {p["name"]: _value(p) for p in body.get("queryParameters", [])}
        sql = sqlglot.transpile(body["query"], read="bigquery", write="duckdb")[0]
        with self._lock:
            cursor = self.db.cursor()
            result = cursor.execute(sql, params)
            rows = result.fetchall()
            fields = [{"name": d[0] or f"f{i}", "type": _TYPES.get(str(d[1]).upper(), "STRING")}
                      for i, d in enumerate(result.description or [])]
        return StubReply.of_json({
            "kind": "bigquery#queryResponse", "jobReference": reference, "jobComplete": True,
            "schema": {"fields": fields}, "totalRows": str(len(rows)),
            "totalBytesProcessed": str(self.bytes_billed),
            "rows": [{"f": [{"v": None if v is None else _text(v)} for v in row]} for row in rows],
        })


def _value(parameter: dict[str, Any]) -> Any:
    kind, text = parameter["parameterType"]["type"], parameter["parameterValue"]["value"]
    if kind == "DATE":
        return date.fromisoformat(text)
    if kind == "TIMESTAMP":
        return datetime.fromisoformat(text.replace(" ", "T"))
    return text


def _text(value: Any) -> str:
    return repr(float(value)) if isinstance(value, float | Decimal) else str(value)


def _warehouse() -> duckdb.DuckDBPyConnection:
    """The tables the NBA checks read, for game date 2026-01-17 (values worked out below)."""
    db = duckdb.connect()
    at = "TIMESTAMPTZ '2026-01-18 05:00:00+00'"
    for schema in ("nba_raw", "nba_analytics", "nba_predictions"):
        db.execute(f"CREATE SCHEMA {schema}")
    db.execute("CREATE TABLE nba_raw.nbac_schedule (game_id VARCHAR, game_date DATE, game_status"
               " INTEGER, home_team_tricode VARCHAR, away_team_tricode VARCHAR, processed_at"
               " TIMESTAMPTZ)")
    games = [("G1", 3, "BOS", "NYK"), ("G2", 3, "LAL", "GSW"), ("G3", 1, "MIA", "CHI"),
             ("G4", 3, "DEN", "PHX")]
    for game, status, home, away in games:  # G3 is not final: never expected
        db.execute(f"INSERT INTO nba_raw.nbac_schedule VALUES (?, DATE '2026-01-17', ?, ?, ?, {at})",
                   (game, status, home, away))
    db.execute("CREATE TABLE nba_raw.nbac_gamebook_player_stats (game_id VARCHAR, game_date DATE,"
               " player_lookup VARCHAR, processed_at TIMESTAMPTZ)")
    db.execute("INSERT INTO nba_raw.nbac_gamebook_player_stats VALUES ('G1', DATE '2026-01-17',"
               " 'p1', TIMESTAMPTZ '2026-01-18 03:00:00+00'), ('G2', DATE '2026-01-17', 'p2',"
               " TIMESTAMPTZ '2026-01-18 03:00:00+00')")  # G4 has no gamebook: 2 of 3 final
    db.execute("CREATE TABLE nba_raw.nbac_player_boxscores (game_id VARCHAR, game_date DATE,"
               " team_abbr VARCHAR)")
    db.execute("INSERT INTO nba_raw.nbac_player_boxscores VALUES ('G1', DATE '2026-01-17', 'BOS'),"
               " ('G1', DATE '2026-01-17', 'NYK'), ('G2', DATE '2026-01-17', 'LAL')")
    db.execute("CREATE TABLE nba_analytics.upcoming_player_game_context (game_date DATE,"
               " player_lookup VARCHAR, processed_at TIMESTAMPTZ)")
    for player in ("p1", "p2", "p3", "p4", "p5"):
        db.execute("INSERT INTO nba_analytics.upcoming_player_game_context VALUES"
                   " (DATE '2026-01-17', ?, TIMESTAMPTZ '2026-01-18 01:00:00+00')", (player,))
    db.execute("CREATE TABLE nba_predictions.player_prop_predictions (game_date DATE, system_id"
               " VARCHAR, player_lookup VARCHAR, line_source VARCHAR, processed_at TIMESTAMPTZ)")
    for player, source in (("p1", "ACTUAL_PROP"), ("p2", "ACTUAL_PROP"), ("p3", "ESTIMATED_AVG"),
                           ("p4", "NO_PROP_LINE")):
        db.execute("INSERT INTO nba_predictions.player_prop_predictions VALUES"
                   " (DATE '2026-01-17', 's1', ?, ?, TIMESTAMPTZ '2026-01-18 02:00:00+00')",
                   (player, source))
    db.execute("CREATE TABLE nba_predictions.prediction_accuracy (game_date DATE, system_id"
               " VARCHAR, player_lookup VARCHAR)")
    db.execute("INSERT INTO nba_predictions.prediction_accuracy VALUES"
               " (DATE '2026-01-17', 's1', 'p1'), (DATE '2026-01-17', 's1', 'p2')")
    db.execute("CREATE TABLE nba_predictions.ml_feature_store_v2 (game_date DATE,"
               " player_lookup VARCHAR, processed_at TIMESTAMPTZ)")
    db.execute("INSERT INTO nba_predictions.ml_feature_store_v2 VALUES"
               " (DATE '2026-01-17', 'p1', TIMESTAMPTZ '2026-01-18 08:30:00+00')")
    return db


@pytest.fixture
def bigquery() -> Iterator[tuple[FakeBigQuery, LocalServer]]:
    fake = FakeBigQuery(_warehouse())
    with LocalServer(fake) as server:
        yield fake, server


def runner_for(server: LocalServer, **changes: Any) -> BigQueryRunner:
    config = BigQueryRunnerConfig(kind="bigquery", project="p", api_endpoint=server.url,  # type: ignore[arg-type]
                                  maximum_bytes_billed=2_000_000_000, **changes)
    return BigQueryRunner(config)


def test_parameters_are_named_with_at_signs_but_not_system_variables() -> None:
    assert parameters_of("SELECT @run_date, @@query_label, '@x'@now") == {"run_date", "now", "x"}


def test_a_query_goes_out_as_jobs_query_with_its_parameters_cap_and_timeout(
    bigquery: tuple[FakeBigQuery, LocalServer],
) -> None:
    fake, server = bigquery
    runner = runner_for(server)
    try:
        rows = runner.query("SELECT COUNT(*) FROM nba_raw.nbac_schedule WHERE game_date = @run_date",
                            {"run_date": RUN_DATE, "now": NOW}, timeout_s=30)
    finally:
        runner.close()
    assert rows == [(4,)]
    (body,) = fake.bodies
    assert body["maximumBytesBilled"] == "2000000000"
    assert body["jobTimeoutMs"] == "30000"
    assert body["useLegacySql"] is False
    # Only the parameters the query names are sent (BigQuery types them).
    assert body["queryParameters"] == [{"name": "run_date", "parameterType": {"type": "DATE"},
                                        "parameterValue": {"value": "2026-01-17"}}]


def test_a_query_over_the_bytes_cap_is_a_run_error_naming_the_reason(
    bigquery: tuple[FakeBigQuery, LocalServer],
) -> None:
    fake, server = bigquery
    fake.bytes_billed = 3_000_000_000
    runner = runner_for(server)
    with pytest.raises(CheckRunError) as caught:
        runner.query("SELECT 1", {}, timeout_s=30)
    runner.close()
    assert caught.value.reason == "failed"
    assert "bytesBilledLimitExceeded" in caught.value.detail
    assert len(fake.bodies) == 1  # a refusal is not retried


def test_a_query_past_its_timeout_is_cancelled_and_a_timeout_error() -> None:
    fake = FakeBigQuery(duckdb.connect(), hang=True)
    with LocalServer(fake) as server:
        runner = runner_for(server)
        started = time.monotonic()
        with pytest.raises(CheckRunError) as caught:
            runner.query("SELECT 1", {}, timeout_s=1.0)
        runner.close()
    assert caught.value.reason == "timeout"
    assert time.monotonic() - started < 15
    assert fake.cancelled  # the client asked BigQuery to stop the job


def test_without_the_library_the_runner_says_what_to_install(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    import builtins

    real = builtins.__import__

    def no_google(name: str, *args: Any, **kwargs: Any) -> Any:
        if name.startswith("google.cloud") or name.startswith("google.api_core"):
            raise ImportError(name)
        return real(name, *args, **kwargs)

    monkeypatch.setattr(builtins, "__import__", no_google)
    runner = BigQueryRunner(BigQueryRunnerConfig(kind="bigquery", project="p"))
    with pytest.raises(CheckRunError) as caught:
        runner.query("SELECT 1", {}, 5)
    assert caught.value.reason == "unavailable" and "phasewatch[gcp]" in caught.value.detail


# --- the NBA example's checks, for what they mean -----------------------------------------

# (value, missing entities) each check of examples/nba.yaml gives on the tables above, for
# game date 2026-01-17 at 2026-01-18 11:00 UTC, worked out by hand.
EXPECTED: dict[str, tuple[float, tuple[str, ...] | None]] = {
    "game_completeness": (2 / 3, None),          # G1, G2 of the final G1, G2, G4
    "boxscore_team_coverage": (3 / 6, None),     # BOS, NYK, LAL of six teams
    "boxscore_missing_games": (1, ("G4",)),
    "grading_completeness": (2 / 3, None),       # p1, p2 of the gradable p1, p2, p3
    "prediction_coverage": (4 / 5, None),        # p1..p4 of p1..p5
    "games_today": (4, None),
    "predictions_today": (4, None),
    "schedule_freshness_h": (6.0, None),         # processed 05:00 UTC
    "raw_freshness_h": (8.0, None),
    "analytics_freshness_h": (10.0, None),
    "predictions_freshness_h": (9.0, None),
    "features_freshness_h": (2.5, None),
}
NOT_ON_DUCKDB = {"bq_load_jobs_ratio"}  # INFORMATION_SCHEMA: parsed only


def nba_checks() -> dict[str, SqlCheckConfig]:
    return {c.name: c for c in load_config(None).checks if isinstance(c, SqlCheckConfig)}


def test_every_nba_check_is_a_bigquery_check_with_a_known_meaning() -> None:
    checks = nba_checks()
    assert set(checks) == set(EXPECTED) | NOT_ON_DUCKDB
    for check in checks.values():
        assert check.runner.kind == "bigquery"
        assert check.runner.maximum_bytes_billed == 2_000_000_000
        sqlglot.parse_one(check.query, read="bigquery")  # valid BigQuery SQL
        assert parameters_of(check.query) <= {"run_date", "now"}, check.name


def test_the_nba_checks_measure_what_they_say(bigquery: tuple[FakeBigQuery, LocalServer]) -> None:
    fake, server = bigquery
    checks = nba_checks()
    for name, (value, entities) in EXPECTED.items():
        check = checks[name]
        runner = runner_for(server)
        # The cron time whose run date is the game date (noon ET: no DST edge).
        scheduled = datetime.combine(RUN_DATE + timedelta(days=check.run_date_days_ago),
                                     datetime.min.time().replace(hour=12), ET)
        result = execute(check, runner, ET, scheduled, NOW)
        runner.close()
        assert result.value == pytest.approx(value), name
        assert result.entities == entities, name
        assert result.run_date == RUN_DATE
    assert len(fake.bodies) == len(EXPECTED)
