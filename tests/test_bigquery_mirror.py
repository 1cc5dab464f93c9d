"""The BigQuery mirror, with the real google-cloud-bigquery client against a local REST server.

The server (tests/bigquery_support.py) keeps rows in DuckDB tables made from the mirror's
own DDL and de-duplicates by insertId as BigQuery does; it can answer partial insert
errors, fail whole requests, lose an answer after storing, stay down, or hang.
"""

from __future__ import annotations

import random
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner
from google.auth.credentials import AnonymousCredentials
from google.cloud import bigquery
from phasewatch_client.kit.testing import LocalServer

from alerts.channels.memory import MemoryChannel
from alerts.model import Alert
from monitor.actuator.gates.base import HealthResult
from monitor.actuator.sinks import MemorySink as TriggerMemorySink
from monitor.app.cli.main import main
from monitor.app.phasewatch import Phasewatch
from monitor.checks.result import CheckResult
from monitor.clock import FakeClock
from monitor.config import Config, default_config_text, parse_config
from monitor.errors import ConfigError
from monitor.events import Event
from monitor.store.sqlite import SQLiteStore
from monitor.telemetry.bigquery import BigQuerySink
from monitor.telemetry.metrics import Metrics
from monitor.telemetry.mirror import MemorySink, Mirror
from monitor.telemetry.mirror_config import BigQueryMirrorConfig, MirrorConfig
from monitor.telemetry.mirror_tables import ENCODERS
from tests.bigquery_support import DATASET, PROJECT, FakeBigQuery
from tests.factories import make_event

CONFIG = BigQueryMirrorConfig(project="nba-props-platform", dataset=DATASET, batch=5, queue_max=10,
                              interval_s=3600)
T0 = datetime(2026, 1, 18, 12, 0, tzinfo=UTC)


@pytest.fixture
def fake() -> Iterator[tuple[FakeBigQuery, LocalServer]]:
    bq = FakeBigQuery()
    with LocalServer(bq) as server:
        yield bq, server
        bq.release.set()


def client(server: LocalServer) -> bigquery.Client:
    return bigquery.Client(project=PROJECT, credentials=AnonymousCredentials(),  # type: ignore[no-untyped-call]
                           client_options={"api_endpoint": server.url})


def sink(server: LocalServer, config: BigQueryMirrorConfig = CONFIG) -> BigQuerySink:
    return BigQuerySink(client(server), config, project=PROJECT)


def mirror(target: Any, metrics: Metrics | None = None, **kw: Any) -> Mirror:
    options: dict[str, Any] = {"batch": CONFIG.batch, "interval_s": 3600, "queue_max": CONFIG.queue_max,
                               "sleep": lambda s: None, "rng": random.Random(1)} | kw
    return Mirror(target, ENCODERS, metrics or Metrics(), name="bigquery", **options)


def events(n: int, start: int = 0) -> list[Event]:
    return [make_event("phase2", "succeeded", (T0 + timedelta(seconds=i)).isoformat(),
                       "bdl_player_boxscores", event_id=f"ev-{i}", mode="overnight")
            for i in range(start, start + n)]


def offer_events(m: Mirror, evs: list[Event]) -> None:
    for i, e in enumerate(evs):
        m.offer("events", (e, T0 + timedelta(microseconds=i)))


def sample(metrics: Metrics, name: str, **labels: str) -> float:
    return metrics.registry.get_sample_value(name, labels) or 0.0


def insert_ids(bq: FakeBigQuery) -> list[list[str]]:
    return [[row["insertId"] for row in body["rows"]] for body in bq.inserts]


# --- writing ---------------------------------------------------------------------------------


def test_events_are_written_with_their_event_id_as_insert_id(fake: tuple[FakeBigQuery, LocalServer]) -> None:
    bq, server = fake
    metrics = Metrics()
    m = mirror(sink(server), metrics)
    offer_events(m, events(7))

    result = m.flush()

    assert result.written == {"events": 7} and not result.unavailable
    assert insert_ids(bq) == [[f"ev-{i}" for i in range(5)], ["ev-5", "ev-6"]]  # batches of 5
    rows = sorted(bq.stored("events"), key=lambda r: r["event_id"])
    assert [r["event_id"] for r in rows] == [f"ev-{i}" for i in range(7)]
    first = rows[0]
    assert (first["pipeline"], first["run_date"].isoformat(), first["mode"], first["phase"],
            first["processor"], first["status"]) == (
        "nba", "2026-01-17", "overnight", "phase2", "bdl_player_boxscores", "succeeded")
    assert first["timestamp"] == T0 and first["received_at"] == T0
    assert sample(metrics, "phasewatch_mirror_rows_total", mirror="bigquery", table="events") == 7
    assert sample(metrics, "phasewatch_mirror_requests_total", mirror="bigquery", outcome="ok") == 2


def test_partial_insert_errors_are_retried_with_the_same_row_ids_and_stored_once(
    fake: tuple[FakeBigQuery, LocalServer],
) -> None:
    bq, server = fake
    metrics = Metrics()
    waits: list[float] = []
    m = mirror(sink(server), metrics, sleep=waits.append)
    bq.script.extend([{1: "backendError", 3: "stopped"}, {0: "timeout"}])
    offer_events(m, events(5))

    result = m.flush()

    assert insert_ids(bq) == [["ev-0", "ev-1", "ev-2", "ev-3", "ev-4"], ["ev-1", "ev-3"], ["ev-1"]]
    assert sorted(r["event_id"] for r in bq.stored("events")) == [f"ev-{i}" for i in range(5)]
    assert result.written == {"events": 5} and not result.dropped
    assert len(waits) == 2 and all(0 <= w <= 10 for w in waits)  # jittered, capped
    assert sample(metrics, "phasewatch_mirror_requests_total", mirror="bigquery", outcome="partial") == 2
    assert sample(metrics, "phasewatch_mirror_requests_total", mirror="bigquery", outcome="ok") == 1


def test_a_lost_answer_is_retried_and_insert_ids_keep_a_single_copy(
    fake: tuple[FakeBigQuery, LocalServer],
) -> None:
    bq, server = fake
    m = mirror(sink(server))
    bq.script.append("stored_then_503")  # stored, but the client sees a 503
    offer_events(m, events(3))

    result = m.flush()

    assert insert_ids(bq) == [["ev-0", "ev-1", "ev-2"]] * 2  # the same ids again
    assert sorted(r["event_id"] for r in bq.stored("events")) == ["ev-0", "ev-1", "ev-2"]
    assert result.written == {"events": 3}


def test_invalid_rows_are_dropped_and_counted_the_rest_written(
    fake: tuple[FakeBigQuery, LocalServer], caplog: pytest.LogCaptureFixture,
) -> None:
    bq, server = fake
    metrics = Metrics()
    m = mirror(sink(server), metrics)
    # As BigQuery answers a request with one invalid row: the others are "stopped", not stored.
    bq.script.append({0: "stopped", 1: "invalid", 2: "stopped"})
    offer_events(m, events(3))

    result = m.flush()

    assert insert_ids(bq) == [["ev-0", "ev-1", "ev-2"], ["ev-0", "ev-2"]]
    assert sorted(r["event_id"] for r in bq.stored("events")) == ["ev-0", "ev-2"]
    assert result.dropped == {"events": 1}
    assert sample(metrics, "phasewatch_mirror_rows_dropped_total", mirror="bigquery", table="events",
                  reason="rejected") == 1
    [logged] = [r.message for r in caplog.records if "rows_rejected" in r.message]
    assert "invalid: row 1" in logged


def test_a_missing_table_drops_the_batch_for_good(fake: tuple[FakeBigQuery, LocalServer]) -> None:
    bq, server = fake
    metrics = Metrics()
    m = mirror(sink(server), metrics)
    bq.script.append(404)
    offer_events(m, events(2))

    result = m.flush()

    assert len(bq.inserts) == 1 and result.dropped == {"events": 2}  # never retried
    assert sample(metrics, "phasewatch_mirror_rows_dropped_total", mirror="bigquery", table="events",
                  reason="rejected") == 2


def test_an_outage_keeps_rows_and_the_bounded_queue_drops_the_rest_counted(
    fake: tuple[FakeBigQuery, LocalServer],
) -> None:
    bq, server = fake
    metrics = Metrics()
    m = mirror(sink(server), metrics)  # queue of 10, batches of 5, 3 attempts
    bq.down = True

    offer_events(m, events(10))
    first = m.flush()  # one batch tried 3 times, kept; the pass ends
    offer_events(m, events(20, start=10))  # room for 5 more: 15 dropped at once

    assert first.unavailable and first.written == {}
    assert len(bq.inserts) == 3 and m.waiting == 15
    assert sample(metrics, "phasewatch_mirror_rows_dropped_total", mirror="bigquery", table="events",
                  reason="queue_full") == 15
    assert sample(metrics, "phasewatch_mirror_requests_total", mirror="bigquery",
                  outcome="unavailable") == 3

    bq.down = False
    again = m.flush()

    stored = sorted(int(r["event_id"][3:]) for r in bq.stored("events"))
    assert stored == list(range(15))  # the 10 kept through the outage, then 5 of the 20
    assert again.written == {"events": 15} and m.waiting == 0
    assert sample(metrics, "phasewatch_mirror_rows_total", mirror="bigquery", table="events") == 15


def test_shutdown_writes_what_is_left_once_and_counts_the_rest(fake: tuple[FakeBigQuery, LocalServer]) -> None:
    bq, server = fake
    metrics = Metrics()
    m = mirror(sink(server), metrics)
    bq.down = True
    offer_events(m, events(7))

    assert m.shutdown() is True

    assert len(bq.inserts) == 1  # one attempt, no retries
    assert sample(metrics, "phasewatch_mirror_rows_dropped_total", mirror="bigquery", table="events",
                  reason="shutdown") == 7


def test_the_memory_sink_keeps_one_row_per_insert_id() -> None:
    memory = MemorySink()
    m = mirror(memory)
    offer_events(m, events(3) + events(2))  # ev-0 and ev-1 twice

    m.flush()

    assert sorted(r["event_id"] for r in memory.rows("events")) == ["ev-0", "ev-1", "ev-2"]


# --- serve: what is mirrored, and ingest never waits ---------------------------------------------


def mirrored_config(nba_config: Config) -> Config:
    config = CONFIG.model_copy(update={"batch": 100, "queue_max": 1000})
    return nba_config.model_copy(update={"mirror": MirrorConfig(bigquery=config)})


def build(config: Config, clock: FakeClock, tmp_path: Path, db: str | None = None,
          **kw: Any) -> Phasewatch:
    triggers = TriggerMemorySink()
    return Phasewatch.build(config, db_path=db or tmp_path / "pw.db", clock=clock,
                            sinks={"http": triggers, "pubsub": triggers, "log": triggers}, **kw)


def test_only_start_mirror_mirrors_and_it_is_off_by_default(nba_config: Config, clock: FakeClock,
                                                            tmp_path: Path) -> None:
    assert parse_config(default_config_text(), "t").mirror.bigquery is None
    pw = build(mirrored_config(nba_config), clock, tmp_path)  # what replay and demo do
    try:
        assert pw.mirror is None and "mirror-bigquery" not in pw.jobs
    finally:
        pw.close()


def test_serve_mirrors_events_checks_probes_alerts_and_slo_days(
    nba_config: Config, clock: FakeClock, tmp_path: Path,
) -> None:
    channel = MemoryChannel("log")
    pw = build(mirrored_config(nba_config), clock, tmp_path, channels=[channel])
    memory = MemorySink()
    try:
        pw.start_mirror(memory)
        assert pw.mirror is not None
        pw.ingest([make_event("phase2", "succeeded", clock.now().isoformat(), "bdl_player_boxscores",
                              event_id="e-1")])
        pw.checks.record([CheckResult("prediction_coverage", 0.75, clock.now(), pipeline="nba")])
        assert pw.actuator is not None
        for listener in pw.actuator.ctx.health.listeners:
            listener(HealthResult("prediction-worker", "fail", "503 from /health", clock.now(), 503))
        pw.router.fire(Alert("test:one", "warning", "something to see", clock.now(),
                             labels={"pipeline": "nba", "phase": "phase3"}))
        clock.advance(600)
        pw.run_job("deliver-alerts")
        clock.set(datetime(2026, 1, 19, 6, 0, tzinfo=UTC))  # 01:00 in New York: Jan 18 ended
        pw.run_job("mirror-bigquery")
        pw.mirror.flush()
    finally:
        pw.close()

    [event] = memory.rows("events")
    assert event["event_id"] == "e-1" and event["processor"] == "bdl_player_boxscores"
    [check] = memory.rows("checks")
    assert check == {"id": "prediction_coverage@2026-01-18T12:00:00.000000Z",
                     "name": "prediction_coverage", "value": 0.75, "run_date": None,
                     "measured_at": "2026-01-18T12:00:00.000000Z", "pipeline": "nba",
                     "entities": None, "source": "api", "received_at": check["received_at"]}
    [probe] = memory.rows("probes")
    assert (probe["service"], probe["status"], probe["http_status"]) == ("prediction-worker", "fail", 503)
    [alert] = [a for a in memory.rows("alerts") if a["key"] == "test:one"]
    assert (alert["status"], alert["channel"], alert["action"], alert["pipeline"], alert["phase"]) == (
        "delivered", "log", "trigger", "nba", "phase3")
    days = memory.rows("slo_days")
    assert {d["slo"] for d in days} == {s.name for s in nba_config.slos}
    assert {d["day"] for d in days} == {"2026-01-18"}
    assert all(d["evaluated_at"] == "2026-01-19T04:59:59.000000Z" for d in days)  # end of Jan 18, ET


def test_the_slo_days_are_offered_once_per_day(nba_config: Config, clock: FakeClock, tmp_path: Path) -> None:
    pw = build(mirrored_config(nba_config), clock, tmp_path)
    memory = MemorySink()
    try:
        pw.start_mirror(memory)
        assert pw.mirror is not None
        for hour in (0, 1, 2):  # three runs on Jan 18: yesterday (Jan 17) once
            clock.set(datetime(2026, 1, 18, 12 + hour, tzinfo=UTC))
            pw.run_job("mirror-bigquery")
        clock.set(datetime(2026, 1, 20, 12, tzinfo=UTC))  # two days later: Jan 18 and 19
        pw.run_job("mirror-bigquery")
        pw.mirror.flush()
        queued = pw.metrics.registry.get_sample_value("phasewatch_mirror_rows_total",
                                                      {"mirror": "bigquery", "table": "slo_days"})
    finally:
        pw.close()
    assert queued == 3 * len(nba_config.slos)
    days = sorted({d["day"] for d in memory.rows("slo_days")})
    assert days == ["2026-01-17", "2026-01-18", "2026-01-19"]


def test_ingest_is_not_blocked_while_bigquery_hangs(
    fake: tuple[FakeBigQuery, LocalServer], nba_config: Config, clock: FakeClock, tmp_path: Path,
) -> None:
    bq, server = fake
    pw = build(mirrored_config(nba_config), clock, tmp_path)
    try:
        pw.start_mirror(sink(server))
        assert pw.mirror is not None
        bq.hang = True
        pw.ingest([make_event("phase2", "started", clock.now().isoformat(), "bdl_player_boxscores",
                              event_id="first")])
        pw.mirror.flush_now()
        assert bq.entered.wait(10), "the mirror never reached BigQuery"

        outcome = pw.ingest([make_event("phase2", "succeeded", clock.now().isoformat(),
                                        "bdl_player_boxscores", event_id=f"while-{i}")
                             for i in range(50)])  # while the mirror's thread waits on BigQuery

        assert outcome.accepted == 50 and pw.mirror.waiting == 50
        bq.hang = False
        bq.release.set()
    finally:
        pw.close()  # stops the thread, then writes what is left
    ids = {r["event_id"] for r in bq.stored("events")}
    assert ids == {"first", *(f"while-{i}" for i in range(50))}


def test_a_full_queue_drops_without_blocking_ingest(nba_config: Config, clock: FakeClock,
                                                     tmp_path: Path) -> None:
    config = nba_config.model_copy(update={"mirror": MirrorConfig(bigquery=CONFIG.model_copy(
        update={"queue_max": 5, "batch": 5}))})
    pw = build(config, clock, tmp_path)
    try:
        pw.start_mirror(MemorySink())
        outcome = pw.ingest([make_event("phase2", "succeeded", clock.now().isoformat(),
                                        "bdl_player_boxscores", event_id=f"e-{i}") for i in range(12)])
        dropped = pw.metrics.registry.get_sample_value(
            "phasewatch_mirror_rows_dropped_total",
            {"mirror": "bigquery", "table": "events", "reason": "queue_full"})
    finally:
        pw.close()
    assert outcome.accepted == 12
    # 5 fit; the thread may take a batch off the queue meanwhile, making room for more
    assert dropped is not None and 0 < dropped <= 7


def test_received_at_orders_events_as_they_were_folded_in(nba_config: Config, clock: FakeClock,
                                                          tmp_path: Path) -> None:
    pw = build(mirrored_config(nba_config), clock, tmp_path)
    memory = MemorySink()
    try:
        pw.start_mirror(memory)
        assert pw.mirror is not None
        pw.ingest([make_event("phase2", "succeeded", clock.now().isoformat(), "bdl_player_boxscores",
                              event_id=f"e-{i}") for i in range(4)])  # one instant, one batch
        pw.mirror.flush()
    finally:
        pw.close()
    rows = memory.rows("events")
    order = [r["event_id"] for r in sorted(rows, key=lambda r: r["received_at"])]
    assert order == ["e-0", "e-1", "e-2", "e-3"] and len({r["received_at"] for r in rows}) == 4


# --- config and the command line -----------------------------------------------------------------


def test_mirror_config_refuses_a_queue_smaller_than_a_batch() -> None:
    with pytest.raises(ConfigError) as info:
        parse_config(default_config_text() + "\nmirror: {bigquery: {batch: 100, queue_max: 10}}\n", "bad.yaml")
    assert str(info.value) == (
        "bad.yaml: mirror.bigquery: queue_max 10 is less than batch 100; allowed: queue_max >= batch")
    with pytest.raises(ConfigError, match=r"mirror\.bigquery\.dataset"):
        parse_config(default_config_text() + "\nmirror: {bigquery: {dataset: a-b}}\n", "bad.yaml")


def test_bigquery_ddl_prints_partitioned_clustered_tables_that_create(tmp_path: Path) -> None:
    import duckdb
    import sqlglot

    result = CliRunner().invoke(main, ["bigquery", "ddl", "--project", "nba-props-platform",
                                       "--dataset", "ops"])
    assert result.exit_code == 0, result.output
    text = result.output
    assert "CREATE TABLE IF NOT EXISTS `nba-props-platform.ops.events` (" in text
    events_ddl = text.split("CREATE TABLE")[1]
    assert "PARTITION BY run_date\nCLUSTER BY pipeline, phase, processor\n" in events_ddl
    assert text.count("CREATE TABLE IF NOT EXISTS") == 5
    con = duckdb.connect()
    con.execute("ATTACH ':memory:' AS \"nba-props-platform\"")
    con.execute('CREATE SCHEMA "nba-props-platform".ops')
    for statement in sqlglot.transpile(text, read="bigquery", write="duckdb"):
        con.execute(statement)
    assert con.execute('SELECT COUNT(*) FROM "nba-props-platform".ops.events').fetchone() == (0,)

    bad = CliRunner().invoke(main, ["bigquery", "ddl", "--project", "X"])
    assert bad.exit_code == 2 and bad.output.startswith("error: --project 'X': not valid")


def test_backfill_copies_a_store_once_however_often_it_runs(
    fake: tuple[FakeBigQuery, LocalServer], nba_config: Config, clock: FakeClock, tmp_path: Path,
    db: str,
) -> None:
    bq, server = fake
    channel = MemoryChannel("log")
    pw = build(nba_config, clock, tmp_path, db, channels=[channel])
    try:
        pw.ingest([make_event("phase2", "succeeded", clock.now().isoformat(), "bdl_player_boxscores",
                              event_id=f"b-{i}") for i in range(12)])
        pw.checks.record([CheckResult("grading_completeness", 0.9, clock.now())])
        pw.router.fire(Alert("test:two", "critical", "a page", clock.now()))
        clock.advance(600)
        pw.run_job("deliver-alerts")
    finally:
        pw.close()
    args = ["bigquery", "backfill", "--db", db, "--project", PROJECT,
            "--dataset", DATASET, "--api-endpoint", server.url]

    first = CliRunner().invoke(main, args)
    again = CliRunner().invoke(main, args)

    assert first.exit_code == 0, first.output
    assert "events: 12 in the store, 0 already in BigQuery, 12 written, 0 not written" in first.output
    assert "checks: 1 in the store, 0 already in BigQuery, 1 written" in first.output
    assert again.exit_code == 0, again.output
    assert "events: 12 in the store, 12 already in BigQuery, 0 written" in again.output
    assert sorted(r["event_id"] for r in bq.stored("events")) == sorted(f"b-{i}" for i in range(12))
    assert [r["name"] for r in bq.stored("checks")] == ["grading_completeness"]
    assert "test:two" in {r["key"] for r in bq.stored("alerts")}
    assert any("WHERE run_date BETWEEN" in q for q in bq.queries)


def test_backfill_says_what_is_wrong_with_its_options(tmp_path: Path) -> None:
    missing = CliRunner().invoke(main, ["bigquery", "backfill", "--db", str(tmp_path / "none.db")])
    assert missing.exit_code == 2 and "--db" in missing.output and "no such file" in missing.output
    store = tmp_path / "s.db"
    SQLiteStore(store).close()
    no_project = CliRunner().invoke(main, ["bigquery", "backfill", "--db", str(store),
                                           "--api-endpoint", "http://127.0.0.1:1"])
    assert no_project.exit_code == 2
    assert no_project.output.strip() == ("error: --api-endpoint needs --project (or "
                                         "mirror.bigquery.project in the config)")
