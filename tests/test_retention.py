"""Retention (issue 16, point 4): the history past ``retention`` is deleted, exactly that,
in bounded batches, on both stores; what is still in use stays; space goes back to the disk.

The measured defect: nothing was ever deleted (380 to 755 bytes per event for ever; 1.25 M
events made a 475 MB file).
"""

from __future__ import annotations

import json
import sqlite3
from collections.abc import Iterator
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
import yaml
from click.testing import CliRunner

from alerts.store import AlertStore
from monitor.actuator.store import ActuatorStore, AuditEntry
from monitor.app.cli.main import main
from monitor.app.phasewatch import Phasewatch
from monitor.app.retention import BOUNDED_TABLES, RULES, cutoffs, pruner
from monitor.checks.result import CheckResult
from monitor.checks.store import CheckStore
from monitor.clock import FakeClock
from monitor.config import Config, default_config_text, parse_config
from monitor.errors import ConfigError
from monitor.publish.store import PublishStore
from monitor.store.base import utc_text
from monitor.store.leases import Leases
from monitor.store.registry import Store, open_store
from monitor.store.retention import Pruner
from monitor.store.sqlite import SQLiteStore
from tests.factories import make_event
from tests.test_alerts_support import make_alert

NOW = datetime(2026, 1, 18, 12, tzinfo=UTC)  # 07:00 in New York: today is 2026-01-18 there
DAY = timedelta(days=1)
# 2026-01-18 minus 400 days: the oldest run date kept.
FIRST_KEPT = date(2024, 12, 14)


def config(**retention: int) -> Config:
    data = yaml.safe_load(default_config_text())
    data["retention"] = retention
    return parse_config(yaml.safe_dump(data), "<test>")


@pytest.fixture
def store(db: str) -> Iterator[Store]:
    s = open_store(db)
    yield s
    s.close()


def put(store: Store, event_id: str, run_date: date, received: datetime,
        mode: str = "backfill") -> None:
    event = make_event("phase1", "started", received.isoformat(), event_id=event_id,
                       run_date=run_date.isoformat(), mode=mode)
    store.append([event], received)


def ids(store: Store, table: str, column: str = "id") -> set[Any]:
    return {r[0] for r in store.read(f"SELECT {column} FROM {table}")}


def test_every_table_is_pruned_by_a_rule_or_bounded_by_the_config(db: str) -> None:
    pw = Phasewatch.build(config(), db_path=db, clock=FakeClock(NOW))
    try:
        store = pw.store
        PublishStore(store)  # made when publish.datasets is configured
        Leases(store, "me")  # made when processes share the store
        tables = store.table_names()
    finally:
        pw.close()
    ruled = {rule.table for rule in RULES}
    assert tables == ruled | set(BOUNDED_TABLES), (tables - ruled - set(BOUNDED_TABLES))


def test_events_past_retention_go_by_whole_runs_and_tracked_runs_stay(store: Store) -> None:
    cfg = config()
    # A run of the first kept run date and one a day older, received a month ago.
    put(store, "kept-edge", FIRST_KEPT, NOW - 30 * DAY)
    put(store, "gone-1", FIRST_KEPT - DAY, NOW - 30 * DAY)
    put(store, "gone-2", FIRST_KEPT - DAY, NOW - 29 * DAY)
    # An old run a backfill is loading: an event two days ago keeps the whole run (tracked).
    put(store, "tracked-old", date(2024, 6, 1), NOW - 30 * DAY)
    put(store, "tracked-new", date(2024, 6, 1), NOW - 2 * DAY)
    put(store, "recent", date(2026, 1, 17), NOW - DAY, mode="overnight")
    prunes = pruner(store, cfg)
    at = cutoffs(cfg, NOW)
    assert prunes.count(at).rows["events"] == 2
    assert prunes.prune(at).rows["events"] == 2
    left = {r[0] for r in store.read("SELECT event_id FROM events")}
    assert left == {"kept-edge", "tracked-old", "tracked-new", "recent"}
    # 11 days on the edge has aged out; the old run stays while it received an event in
    # the last runs.track_days (14), and goes once it has not.
    assert prunes.prune(cutoffs(cfg, NOW + 11 * DAY)).rows["events"] == 1
    assert prunes.prune(cutoffs(cfg, NOW + 12 * DAY)).rows["events"] == 0
    assert prunes.prune(cutoffs(cfg, NOW + 13 * DAY)).rows["events"] == 2


def test_dead_letters_audit_and_actions_past_retention_go_and_the_rest_stays(store: Store) -> None:
    cfg = config(audit_days=200)
    edge = NOW - 200 * DAY
    for i, when in enumerate((edge - timedelta(seconds=1), edge, NOW - 500 * DAY, NOW)):
        store.add_dead_letter(received_at=when, source="push", message_id=f"m{i}", reason="schema",
                              detail="", payload="{}")
    actuator = ActuatorStore(store)
    actuator.migrate()
    actuator.audit([AuditEntry(when, "decision", "trigger", "not_taken", "nba")
                    for when in (edge - timedelta(seconds=1), edge, NOW)])
    # Triggers keep "one per run and phase": kept while runs.accept_past_days (400) accepts
    # their run date, whatever audit_days says, and never while they are still pending.
    for run_date, state in (("2024-12-13", "succeeded"), ("2024-12-13", "pending"),
                            ("2024-12-14", "succeeded"), ("2026-01-17", "succeeded")):
        row = actuator.decide(("nba", run_date, "overnight" if state == "succeeded" else "same_day"),
                              "phase4", reason="all_complete", rule=None, now=NOW)
        assert row is not None
        if state == "succeeded":
            actuator.update_trigger(row.id, {"state": "succeeded"}, state="pending")
    prunes = pruner(store, cfg)
    counted = prunes.count(cutoffs(cfg, NOW)).rows
    pruned = prunes.prune(cutoffs(cfg, NOW)).rows
    assert counted == pruned
    # dead_letters_days is 400: the one 500 days old; the audit line a second past 200 days.
    assert (pruned["dead_letters"], pruned["actuator_audit"], pruned["actuator_triggers"]) == (1, 1, 1)
    assert [r[0] for r in store.read("SELECT run_date || ' ' || state FROM actuator_triggers"
                                     " ORDER BY id")] == [
        "2024-12-13 pending", "2024-12-14 succeeded", "2026-01-17 succeeded"]


def test_open_alerts_and_undelivered_notifications_stay(store: Store) -> None:
    cfg = config()
    alerts = AlertStore(store)
    old = NOW - 500 * DAY
    settled = alerts.open_episode(make_alert("a", old, job="settled"), old)
    alerts.resolve_episode(settled, make_alert("a", old, job="settled"), old + DAY)
    still_open = alerts.open_episode(make_alert("a", old, job="open"), old)
    waiting = alerts.open_episode(make_alert("a", old, job="waiting"), old)
    alerts.resolve_episode(waiting, make_alert("a", old, job="waiting"), old + DAY)
    recent = alerts.open_episode(make_alert("a", NOW, job="recent"), NOW)
    with store.transaction() as db:
        for episode, status, done in ((settled, "delivered", old + DAY), (waiting, "pending", None),
                                      (recent, "delivered", NOW)):
            db.execute(
                "INSERT INTO alert_outbox (created_at, channel, kind, key, episode, action, severity,"
                " payload, status, next_attempt_at, done_at) VALUES (?, 'pager', 'notification', 'k',"
                " ?, 'resolve', 'warning', '{}', ?, ?, ?)",
                (utc_text(old), episode, status, utc_text(old), done and utc_text(done)))
        db.execute("INSERT INTO alert_refs (channel, key, episode, ref) VALUES ('slack', 'k', ?, 'ts')",
                   (settled,))
    pruned = pruner(store, cfg).prune(cutoffs(cfg, NOW)).rows
    assert (pruned["alert_episodes"], pruned["alert_outbox"], pruned["alert_refs"]) == (1, 1, 1)
    assert ids(store, "alert_episodes") == {still_open, waiting, recent}
    assert {r[0] for r in store.read("SELECT status FROM alert_outbox")} == {"pending", "delivered"}


def test_each_checks_latest_result_stays_however_old(store: Store) -> None:
    cfg = config()
    checks = CheckStore(store)
    checks.record([CheckResult("rows", 1.0, NOW - 600 * DAY), CheckResult("rows", 2.0, NOW - 500 * DAY),
                   CheckResult("rows", 3.0, NOW), CheckResult("lonely", 4.0, NOW - 700 * DAY)], NOW)
    assert pruner(store, cfg).prune(cutoffs(cfg, NOW)).rows["check_results"] == 2
    assert sorted(r.value for r in checks.latest_all()) == [3.0, 4.0]


def test_the_newest_row_of_a_serial_table_is_never_deleted(store: Store) -> None:
    cfg = config()
    put(store, "only", date(2023, 1, 1), NOW - 900 * DAY)  # past retention, but the newest
    assert pruner(store, cfg).prune(cutoffs(cfg, NOW)).rows["events"] == 0
    put(store, "new", date(2026, 1, 17), NOW)  # a later event: the old one may go now
    assert pruner(store, cfg).prune(cutoffs(cfg, NOW)).rows["events"] == 1
    assert store.position() == 2


def test_batches_are_bounded_and_a_capped_pass_leaves_the_rest_for_the_next(store: Store) -> None:
    cfg = config()
    for i in range(25):
        put(store, f"e{i}", date(2024, 1, 1) + timedelta(days=i % 5), NOW - 30 * DAY)
    put(store, "newest", date(2026, 1, 17), NOW)
    deletes: list[int] = []
    prunes = Pruner(store, RULES, batch_rows=4,
                    on_pruned=lambda table, rows: deletes.append(rows))
    first = prunes.prune(cutoffs(cfg, NOW), max_rows=10)
    assert (first.total, first.complete) == (10, False)
    second = prunes.prune(cutoffs(cfg, NOW))
    assert (second.total, second.complete) == (15, True)
    assert max(deletes) == 4 and sum(deletes) == 25  # one transaction per batch of at most 4


# --- config ------------------------------------------------------------------------------------

def test_the_defaults_are_400_days_as_ingest_accepts() -> None:
    retention = config().retention
    assert {retention.days(s) for s in ("events", "dead_letters", "audit", "alerts", "signals")} == {400}


@pytest.mark.parametrize(("retention", "message"), [
    ({"events_days": 30}, "events_days: 30 days is shorter than the 70 days of history"),
    ({"alerts_days": 69}, "alerts_days: 69 days is shorter than the 70 days"),
])
def test_a_retention_shorter_than_the_history_read_back_is_refused(
    retention: dict[str, int], message: str,
) -> None:
    with pytest.raises(ConfigError) as info:
        config(**retention)
    assert info.value.problems[0].field == "retention"
    assert message in str(info.value) and "allowed: at least 70" in str(info.value)


def test_a_long_slo_window_raises_the_minimum_and_is_named() -> None:
    data = yaml.safe_load(default_config_text())
    data["slos"][0]["window"] = {"kind": "rolling", "days": 90}
    data["retention"] = {"signals_days": 80}
    with pytest.raises(ConfigError, match=r"signals_days: 80 days is shorter than the 91 days .*"
                       r"slos\[0:[^]]+\] window of 90d\); allowed: at least 91"):
        parse_config(yaml.safe_dump(data), "<test>")


def test_an_actionable_horizon_reaching_further_back_raises_the_minimum() -> None:
    data = yaml.safe_load(default_config_text())
    data["pipelines"][0]["horizon"] = {"run_dates": {"overnight": [-120, 0]}}
    data["retention"] = {"audit_days": 100}
    with pytest.raises(ConfigError, match=r"audit_days: 100 days is shorter than the 121 days .*"
                       r"horizon.run_dates.overnight acts on run dates 120 days back"):
        parse_config(yaml.safe_dump(data), "<test>")


def test_dead_letters_may_be_kept_a_short_time() -> None:
    assert config(dead_letters_days=7).retention.dead_letters_days == 7


# --- space ---------------------------------------------------------------------------------------

def test_an_sqlite_store_file_stays_bounded_over_many_simulated_days(tmp_path: Path) -> None:
    cfg = config(events_days=70, dead_letters_days=70, audit_days=70, alerts_days=70,
                 signals_days=70)
    store = SQLiteStore(tmp_path / "pw.db")
    prunes = pruner(store, cfg)
    sizes: dict[int, int] = {}
    start = NOW - 400 * DAY
    try:
        for day in range(210):
            at = start + day * DAY
            run_date = at.date().isoformat()
            store.append([make_event("phase3", status, at.isoformat(), f"proc{i}", run_date=run_date,
                                     mode="overnight", error="x" * 300 if status == "failed" else None)
                          for i in range(20) for status in ("started", "failed")], at)
            if day % 7 == 6 and prunes.prune(cutoffs(cfg, at)).total:  # a weekly pass
                store.reclaim()
            sizes[day] = store.file_bytes()
    finally:
        store.close()
    # Past the 70 days kept (and a week between passes), the file keeps its working size,
    # which 210 days of events without pruning would have tripled.
    assert sizes[209] <= sizes[104] * 1.15, (sizes[104], sizes[209])
    assert sizes[209] < sizes[76] * 1.3, (sizes[76], sizes[209])


def test_reclaim_gives_the_pruned_space_back_to_the_disk(tmp_path: Path) -> None:
    store = SQLiteStore(tmp_path / "pw.db")
    try:
        store.append([make_event("phase3", "failed", (NOW - 500 * DAY).isoformat(), f"p{i}",
                                 run_date="2024-08-01", mode="backfill", error="x" * 2000)
                      for i in range(2000)], NOW - 500 * DAY)
        put(store, "new", date(2026, 1, 17), NOW)
        store.reclaim()  # the write-ahead log folded in: the file as it stands
        full = store.file_bytes()
        assert pruner(store, config()).prune(cutoffs(config(), NOW)).rows["events"] == 2000
        freed = store.reclaim()
        assert store.file_bytes() < full * 0.2 and freed > full * 0.8, (full, freed)
    finally:
        store.close()


def test_an_sqlite_file_made_before_incremental_vacuum_is_converted_once(tmp_path: Path) -> None:
    path = tmp_path / "old.db"
    SQLiteStore(path).close()
    with sqlite3.connect(path, isolation_level=None) as raw:  # as files were made before
        raw.execute("PRAGMA auto_vacuum = NONE")
        raw.execute("VACUUM")
        assert raw.execute("PRAGMA auto_vacuum").fetchone()[0] == 0
    raw.close()
    store = SQLiteStore(path)
    put(store, "a", date(2026, 1, 17), NOW)
    assert store._db.execute("PRAGMA auto_vacuum").fetchone()[0] == 2
    store.close()
    again = SQLiteStore(path)
    assert again.count() == 1
    again.close()


# --- the job, the metric, the CLI ---------------------------------------------------------------

def test_the_prune_job_runs_hourly_and_counts_rows_in_the_metric(tmp_path: Path) -> None:
    clock = FakeClock(NOW)
    pw = Phasewatch.build(config(), db_path=tmp_path / "pw.db", clock=clock)
    try:
        put(pw.store, "old", date(2023, 1, 1), NOW - 800 * DAY)
        put(pw.store, "new", date(2026, 1, 17), NOW)
        assert pw.job_runs["prune"].every_s == 3600
        pw.run_job("prune")
        assert pw.job_runs["prune"].last_error is None
        value = pw.metrics.registry.get_sample_value("phasewatch_store_rows_pruned_total",
                                                     {"table": "events"})
        assert value == 1.0
        assert pw.store.count() == 1
    finally:
        pw.close()


def test_cli_prune_dry_run_deletes_nothing_and_prune_deletes_it(tmp_path: Path) -> None:
    path = tmp_path / "pw.db"
    store = SQLiteStore(path)
    put(store, "old", date(2023, 1, 1), NOW - 800 * DAY)
    put(store, "new", date(2026, 1, 17), NOW)
    store.close()
    runner = CliRunner()
    at = ["--db", str(path), "--at", NOW.isoformat()]
    dry = runner.invoke(main, ["prune", *at, "--dry-run"])
    assert dry.exit_code == 0, dry.output
    assert "rows that would be deleted" in dry.output and "would delete 1 rows" in dry.output
    done = runner.invoke(main, ["prune", *at, "--json"])
    assert done.exit_code == 0, done.output
    out = json.loads(done.output)
    assert (out["rows"]["events"], out["total"], out["complete"]) == (1, 1, True)
    assert out["bytes_after"] <= out["bytes_before"]
    again = runner.invoke(main, ["prune", *at, "--json"])
    assert json.loads(again.output)["total"] == 0


def test_cli_prune_names_a_missing_store_and_a_bad_time(tmp_path: Path) -> None:
    runner = CliRunner()
    missing = runner.invoke(main, ["prune", "--db", str(tmp_path / "nope.db")])
    assert missing.exit_code == 2 and "no such file" in missing.output
    SQLiteStore(tmp_path / "pw.db").close()
    bad = runner.invoke(main, ["prune", "--db", str(tmp_path / "pw.db"), "--at", "yesterday"])
    assert bad.exit_code == 2 and "--at 'yesterday': not a time" in bad.output
