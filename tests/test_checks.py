"""Data checks: results kept once, thresholds that alert once, schedules, local runners, and
every reader (gates, expectations, SLIs, the daily summary) fed by live results."""

from __future__ import annotations

import sqlite3
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from typing import Any

import duckdb
import pytest

from alerts.channels.memory import MemoryChannel
from monitor.actuator.gates.base import GateContext
from monitor.actuator.simulated import simulated
from monitor.actuator.sinks import MemorySink
from monitor.app.daily_sources import _checks as daily_checks
from monitor.app.phasewatch import Phasewatch
from monitor.app.sim.replay import SimulatedWorld, run_replay
from monitor.checks.config import DuckDBRunnerConfig, SqlCheckConfig, SQLiteRunnerConfig
from monitor.checks.engine import Checks, interpret
from monitor.checks.errors import CheckRunError
from monitor.checks.result import CheckResult
from monitor.checks.runners import MemoryRunner
from monitor.checks.runners.duckdb import DuckDBRunner
from monitor.checks.runners.sqlite import SQLiteRunner
from monitor.clock import FakeClock
from monitor.config import Config
from monitor.errors import ConfigError
from tests.actuator_support import edit_config, phase_of

# 2026-01-18 is a Sunday; 06:00 ET is 11:00 UTC.
START = datetime(2026, 1, 18, 10, 0, tzinfo=UTC)
SIX_ET = datetime(2026, 1, 18, 11, 0, tzinfo=UTC)
COVERAGE = "SELECT coverage FROM t WHERE day = :run_date"


def sql_check(name: str = "coverage", **fields: Any) -> dict[str, Any]:
    return {"name": name, "pipeline": "nba", "kind": "sql", "query": COVERAGE,
            "runner": {"kind": "sqlite", "path": "unused.db"}, "schedule": "0 6 * * *",
            "run_date_days_ago": 1, "warn_when": "< 0.9", "critical_when": "< 0.7", **fields}


def config_with(*checks: dict[str, Any], edit: Any = None) -> Config:
    def change(data: dict[str, Any]) -> None:
        data["checks"] = [*data.get("checks", []), *checks]  # the example's, and these
        if edit is not None:
            edit(data)
    return edit_config(change)


@contextmanager
def built(config: Config, runner: MemoryRunner | None = None, *, db: str | Path = ":memory:",
          start: datetime = START) -> Iterator[tuple[Phasewatch, FakeClock, MemoryChannel]]:
    clock = FakeClock(start)
    channel = MemoryChannel("memory")
    sink = MemorySink()
    probe, _, _ = simulated(SimulatedWorld())  # every service passes; nothing is called
    runners = {"sqlite": runner.factory} if runner is not None else {}
    pw = Phasewatch.build(config, db_path=db, clock=clock, channels=[channel], probe=probe,
                          sinks={"http": sink, "pubsub": sink, "log": sink}, check_runners=runners)
    try:
        yield pw, clock, channel
    finally:
        pw.close()


def sent(pw: Phasewatch, channel: MemoryChannel, kind: str = "check") -> list[tuple[str, str]]:
    """(action, severity) of each notification of ``kind`` the channel got, in order."""
    pw.alerting.deliver_alerts(pw.clock.now() + timedelta(hours=1))
    return [(n.action, n.alert.severity) for n in channel.sent if n.alert.name == kind]


def result(value: float, at: datetime, name: str = "coverage", **fields: Any) -> CheckResult:
    return CheckResult(name, value, at, **fields)


# --- the store --------------------------------------------------------------------------

def test_a_result_is_kept_once_by_name_and_time_and_latest_carries_its_entities() -> None:
    with built(config_with()) as (pw, _, _):
        first = result(2, START, "missing_games", entities=("G4", "G7"), run_date=date(2026, 1, 17),
                       pipeline="nba")
        assert pw.checks.record([first]) == (1, 0)
        # The same check and time again (a retry): acknowledged, ignored, the first value stands.
        assert pw.checks.record([result(9, START, "missing_games")]) == (0, 1)
        latest = pw.checks.latest("missing_games")
        assert latest is not None
        assert (latest.value, latest.entities, latest.run_date) == (2, ("G4", "G7"), date(2026, 1, 17))
        # An older result arriving late does not replace the newest.
        pw.checks.record([result(5, START - timedelta(hours=1), "missing_games")])
        assert pw.checks.latest("missing_games").value == 2  # type: ignore[union-attr]
        assert pw.checks.latest("never") is None


# --- config -----------------------------------------------------------------------------

@pytest.mark.parametrize(("check", "field", "says"), [
    (sql_check(schedule="every morning"), "].sql.schedule", "five fields"),
    (sql_check(schedule="0 6 * * * *"), "].sql.schedule", "five fields"),
    (sql_check(pipeline="nope"), "(top)", "pipeline 'nope' is unknown"),
    (sql_check(warn_when="below 0.9"), "].sql.warn_when", "expected an operator"),
    (sql_check(runner={"kind": "postgres"}), "].sql.runner", "sqlite"),
    (sql_check(returns="rows"), "].sql.returns", "value"),
    (sql_check(timeout_s=0), "].sql.timeout_s", "greater than 0"),
    ({"name": "x", "pipeline": "nba"}, ":x]", "kind"),
])
def test_a_bad_check_config_names_the_field(check: dict[str, Any], field: str, says: str) -> None:
    with pytest.raises(ConfigError) as caught:
        config_with(check)
    text = str(caught.value)
    assert says in text, text
    assert any((p.field.startswith("checks[") and field in p.field) or p.field == field
               for p in caught.value.problems), text


def test_check_names_are_unique() -> None:
    with pytest.raises(ConfigError, match="checks: names must be unique; repeated: \\['coverage'\\]"):
        config_with(sql_check(), {"name": "coverage", "pipeline": "nba", "kind": "pushed"})


# --- what a query's answer means ---------------------------------------------------------

@pytest.mark.parametrize(("returns", "rows", "value", "entities"), [
    ("value", [(0.93,)], 0.93, None),
    ("value", [(12,)], 12.0, None),
    ("missing", [("G4",), ("G7",), ("G4",), (None,)], 2.0, ("G4", "G7")),
    ("missing", [], 0.0, ()),
])
def test_answers_become_a_value_and_missing_entities(
    returns: str, rows: list[tuple[Any, ...]], value: float, entities: tuple[str, ...] | None,
) -> None:
    check = SqlCheckConfig.model_validate(sql_check(returns=returns))
    assert interpret(check, rows) == (value, entities)


@pytest.mark.parametrize(("rows", "says"), [
    ([], "no value"), ([(None,)], "no value"), ([(1,), (2,)], "2 rows"), ([(1, 2)], "2 columns"),
    ([("high",)], "allowed: a number"), ([(True,)], "allowed: a number"),
])
def test_an_answer_that_is_not_one_number_is_a_run_error(rows: list[tuple[Any, ...]], says: str) -> None:
    check = SqlCheckConfig.model_validate(sql_check())
    with pytest.raises(CheckRunError) as caught:
        interpret(check, rows)
    assert caught.value.reason == "bad_answer" and says in caught.value.detail


def test_empty_value_stands_in_for_a_day_without_data() -> None:
    check = SqlCheckConfig.model_validate(sql_check(empty_value=1.0))
    assert interpret(check, []) == (1.0, None)


# --- thresholds ---------------------------------------------------------------------------

def test_one_notification_per_level_change_counted_at_the_channel() -> None:
    config = config_with(sql_check(), edit=lambda d: d["alerting"].update(group_wait_s=0))
    with built(config) as (pw, clock, channel):
        actions = []
        for value in (0.85, 0.86, 0.6, 0.95):
            clock.advance(600)
            pw.checks.record([result(value, clock.now())])
            actions += sent(pw, channel)
            channel.sent.clear()
        # warning, raised to critical, then resolved: a repeat of a level says nothing new.
        assert actions == [("trigger", "warning"), ("trigger", "critical"), ("resolve", "critical")]
        assert pw.checks.levels()["coverage"] == "ok"
        assert not [a for a in pw.router.active() if a.name == "check"]


def test_history_is_stored_but_never_pages() -> None:
    with built(config_with(sql_check())) as (pw, clock, channel):
        old = clock.now() - timedelta(days=3)
        assert pw.checks.record([result(0.1, old)]) == (1, 0)
        assert pw.checks.latest("coverage").value == 0.1  # type: ignore[union-attr]
        assert sent(pw, channel) == []


def test_a_result_written_into_the_store_by_another_process_is_judged_within_a_tick(
    tmp_path: Path,
) -> None:
    from monitor.checks.store import CheckStore
    from monitor.store.sqlite import SQLiteStore

    config = config_with(sql_check(), edit=lambda d: d["alerting"].update(group_wait_s=0))
    db = tmp_path / "pw.db"
    with built(config, db=db) as (pw, clock, channel):
        other = SQLiteStore(db)  # as `phasewatch check record --db` does
        CheckStore(other).record([result(0.5, clock.now())], clock.now())
        other.close()
        assert sent(pw, channel) == []
        pw.tick(clock.now())
        assert sent(pw, channel) == [("trigger", "critical")]


def test_levels_survive_a_restart(tmp_path: Path) -> None:
    config = config_with(sql_check(), edit=lambda d: d["alerting"].update(group_wait_s=0))
    db = tmp_path / "pw.db"
    with built(config, db=db) as (pw, clock, channel):
        pw.checks.record([result(0.8, clock.now())])
        assert sent(pw, channel) == [("trigger", "warning")]
    with built(config, db=db, start=START + timedelta(minutes=5)) as (pw, clock, channel):
        pw.checks.record([result(0.81, clock.now())])  # still warning: nothing new
        assert sent(pw, channel) == []
        pw.checks.record([result(0.99, clock.now() + timedelta(minutes=1))])
        assert sent(pw, channel) == [("resolve", "warning")]


# --- schedules and runs -------------------------------------------------------------------

def test_a_check_runs_at_its_cron_time_in_the_pipeline_timezone_for_its_run_date() -> None:
    runner = MemoryRunner(default=[(0.97,)])
    with built(config_with(sql_check()), runner) as (pw, clock, _):
        while clock.now() < SIX_ET - timedelta(seconds=30):
            clock.advance(30)
            pw.tick(clock.now())
        assert runner.calls == []  # 05:59:30 ET
        clock.advance(30)
        pw.tick(clock.now())
        (call,) = runner.calls
        assert call == (COVERAGE, {"run_date": date(2026, 1, 17), "now": SIX_ET})
        for _ in range(20):
            clock.advance(30)
            pw.tick(clock.now())
        assert len(runner.calls) == 1  # once per cron time
        latest = pw.checks.latest("coverage")
        assert latest is not None and latest.source == "runner"
        assert (latest.value, latest.run_date, latest.pipeline) == (0.97, date(2026, 1, 17), "nba")
        (run,) = pw.checks.report()
        assert run["outcome"] == "recorded" and run["scheduled"].startswith("2026-01-18T06:00")


def test_a_cron_time_missed_while_down_runs_once_after_the_restart(tmp_path: Path) -> None:
    runner = MemoryRunner(default=[(0.97,)])
    db = tmp_path / "pw.db"
    with built(config_with(sql_check()), runner, db=db) as (pw, clock, _):
        pw.tick(clock.now())  # 05:00 ET: up, then down before 06:00
    with built(config_with(sql_check()), runner, db=db, start=SIX_ET + timedelta(hours=2)) as (
            pw, clock, _):
        pw.tick(clock.now())
        pw.tick(clock.now() + timedelta(seconds=30))
        (call,) = runner.calls
        assert call[1]["run_date"] == date(2026, 1, 17)


def test_a_run_that_fails_alerts_once_and_resolves_when_one_succeeds() -> None:
    runner = MemoryRunner(default=CheckRunError("timeout", "query ran over 60 s"))
    config = config_with(sql_check(schedule="*/10 * * * *"),
                         edit=lambda d: d["alerting"].update(group_wait_s=0))
    with built(config, runner) as (pw, clock, channel):
        pw.tick(clock.now())  # the schedule starts
        for _ in range(3):
            clock.advance(600)
            pw.tick(clock.now())
        assert len(runner.calls) == 3
        assert sent(pw, channel, "check_error") == [("trigger", "warning")]
        assert pw.checks.latest("coverage") is None
        runner.default = [(0.95,)]
        clock.advance(600)
        pw.tick(clock.now())
        assert sent(pw, channel, "check_error") == [("trigger", "warning"), ("resolve", "warning")]
        assert [r["outcome"] for r in pw.checks.report()] == ["error"] * 3 + ["recorded"]
        text = pw.metrics.exposition()[0].decode()
        assert 'phasewatch_check_runs_total{check="coverage",outcome="timeout"} 3.0' in text
        assert 'phasewatch_check_runs_total{check="coverage",outcome="recorded"} 1.0' in text
        assert 'phasewatch_check_value{check="coverage"} 0.95' in text


def test_on_real_time_a_slow_query_runs_on_a_worker_and_is_recorded_at_a_later_tick() -> None:
    import threading

    release = threading.Event()

    def slow(params: Any) -> list[tuple[Any, ...]]:
        release.wait(10)
        return [(0.91,)]

    runner = MemoryRunner(default=slow)
    with built(config_with(sql_check(schedule="* * * * *"))) as (pw, clock, _):
        checks = Checks(pw, {"sqlite": runner.factory}, background=True)
        try:
            checks.tick(clock.now())  # the first tick only sets the schedule's start
            clock.advance(60)
            checks.tick(clock.now())  # starts the query, does not wait for it
            assert checks.latest("coverage") is None
            release.set()
            (_, _, future) = checks._pending["coverage"]
            future.result(5)  # the query ended on its worker
            checks.tick(clock.now())
            assert checks.latest("coverage").value == 0.91  # type: ignore[union-attr]
        finally:
            checks.close()


def test_disabled_and_remote_checks_are_not_scheduled_on_simulated_time() -> None:
    config = config_with(sql_check(enabled=False), sql_check("remote", runner={
        "kind": "bigquery", "project": "p"}))
    clock = FakeClock(START)
    pw = Phasewatch.build(config, db_path=":memory:", clock=clock, sinks={"http": MemorySink()},
                          probe=simulated(SimulatedWorld())[0])
    try:
        assert pw.checks.runners == {}
        assert pw.checks.not_run["coverage"] == "enabled: false"
        assert pw.checks.not_run["remote"] == "the bigquery runner does not run here"
    finally:
        pw.close()


# --- the local runners --------------------------------------------------------------------

def test_sqlite_runner_reads_the_file_read_only_with_named_parameters(tmp_path: Path) -> None:
    path = tmp_path / "w.db"
    db = sqlite3.connect(path)
    db.execute("CREATE TABLE t (day TEXT, coverage REAL)")
    db.execute("INSERT INTO t VALUES ('2026-01-17', 0.93)")
    db.commit()
    db.close()
    runner = SQLiteRunner(SQLiteRunnerConfig(kind="sqlite", path=str(path)))
    params = {"run_date": date(2026, 1, 17), "now": SIX_ET}
    assert runner.query(COVERAGE, params, 5) == [(0.93,)]
    with pytest.raises(CheckRunError, match="readonly"):
        runner.query("INSERT INTO t VALUES ('x', 1)", params, 5)
    slow = ("WITH RECURSIVE n(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM n) "
            "SELECT COUNT(*) FROM n")
    with pytest.raises(CheckRunError) as caught:
        runner.query(slow, params, 0.2)
    assert caught.value.reason == "timeout"
    missing = SQLiteRunner(SQLiteRunnerConfig(kind="sqlite", path=str(tmp_path / "none.db")))
    with pytest.raises(CheckRunError, match="no SQLite database"):
        missing.query(COVERAGE, params, 5)


def test_duckdb_runner_binds_only_the_parameters_a_query_names_and_times_out(tmp_path: Path) -> None:
    path = tmp_path / "w.duckdb"
    db = duckdb.connect(str(path))
    db.execute("CREATE TABLE t (day DATE, coverage DOUBLE)")
    db.execute("INSERT INTO t VALUES (DATE '2026-01-17', 0.93)")
    db.close()
    runner = DuckDBRunner(DuckDBRunnerConfig(kind="duckdb", path=str(path)))
    params = {"run_date": date(2026, 1, 17), "now": SIX_ET}
    assert runner.query("SELECT coverage FROM t WHERE day = $run_date", params, 5) == [(0.93,)]
    assert runner.query("SELECT 42", params, 5) == [(42,)]
    with pytest.raises(CheckRunError, match="one SELECT"):
        runner.query("SELECT 1; SELECT 2", params, 5)
    with pytest.raises(CheckRunError) as caught:
        runner.query("SELECT COUNT(*) FROM range(100000000000) a", params, 0.3)
    assert caught.value.reason == "timeout"


def test_a_sqlite_check_runs_end_to_end_from_config(tmp_path: Path) -> None:
    path = tmp_path / "w.db"
    db = sqlite3.connect(path)
    db.execute("CREATE TABLE t (day TEXT, coverage REAL)")
    db.execute("INSERT INTO t VALUES ('2026-01-17', 0.62)")
    db.commit()
    db.close()
    config = config_with(sql_check(runner={"kind": "sqlite", "path": str(path)}),
                         edit=lambda d: d["alerting"].update(group_wait_s=0))
    clock = FakeClock(SIX_ET - timedelta(minutes=1))
    channel = MemoryChannel("memory")
    pw = Phasewatch.build(config, db_path=":memory:", clock=clock, channels=[channel],
                          sinks={"http": MemorySink()}, probe=simulated(SimulatedWorld())[0])
    try:
        pw.tick(clock.now())
        clock.advance(60)
        pw.tick(clock.now())
        assert pw.checks.latest("coverage").value == 0.62  # type: ignore[union-attr]
        assert sent(pw, channel) == [("trigger", "critical")]
    finally:
        pw.close()


# --- every reader gets live results ------------------------------------------------------

def test_live_results_feed_check_gates_expectations_slis_and_the_daily_summary() -> None:
    def edit(data: dict[str, Any]) -> None:
        data["alerting"]["group_wait_s"] = 0
        data["slos"].append({"name": "grading", "pipeline": "nba", "objective": 0.9,
                             "sli": {"kind": "check", "check": "grading_completeness", "min": 0.8}})

    # 2026-02-08: the expectation's deadline is 08:30 ET = 13:30 UTC.
    start = datetime(2026, 2, 8, 13, 0, tzinfo=UTC)
    with built(config_with(edit=edit), start=start) as (pw, clock, channel):
        assert pw.actuator is not None
        pipeline = pw.config.pipeline_map["nba"]
        phase5 = pipeline.phase_map["phase5"]
        gate = next(g for g in pw.actuator.ctx.gates(pipeline, phase5) if g.kind == "check")
        context = GateContext(pipeline, phase5, None, clock.now())
        assert gate.check(context).passed  # no result yet: the example's gate fails open
        pw.checks.record([result(40, clock.now(), "feature_store_clean_player_pct")])
        verdict = gate.check(context)
        assert not verdict.passed and "40, below 60" in verdict.detail
        # The prediction gap expectation reads games_today / predictions_today.
        pw.checks.record([result(10, clock.now(), "games_today"),
                          result(0, clock.now(), "predictions_today")])
        clock.set(datetime(2026, 2, 8, 13, 31, tzinfo=UTC))
        pw.tick(clock.now())
        assert sent(pw, channel, "expectation") == [("trigger", "critical")]
        # The SLI counts one unit per run date, its latest result deciding.
        for n, (day, value) in enumerate((("2026-02-05", 0.9), ("2026-02-06", 0.5),
                                          ("2026-02-07", 0.95))):
            pw.checks.record([result(value, clock.now() - timedelta(minutes=5 - n), "grading_completeness",
                                     run_date=date.fromisoformat(day))])
        (slo,) = [s for s in pw.slo_report() if s["name"] == "grading"]
        assert slo["sli"] == pytest.approx(2 / 3)
        # The daily summary grades the latest value.
        (graded,) = [c for c in daily_checks(pw, pw.actuator) if c.name == "grading_completeness"]
        assert graded.value == 0.95


def test_a_phase_gate_on_a_check_holds_the_trigger_until_a_live_result_passes() -> None:
    def edit(data: dict[str, Any]) -> None:
        gates = phase_of(data, "phase5")["transition"]["gates"]
        for gate in gates:
            if gate["kind"] == "check":
                gate["on_missing"] = "defer"

    with built(config_with(edit=edit), start=datetime(2026, 1, 18, 6, 0, tzinfo=UTC)) as (pw, clock, _):
        assert pw.actuator is not None
        pipeline = pw.config.pipeline_map["nba"]
        phase5 = pipeline.phase_map["phase5"]
        gate = next(g for g in pw.actuator.ctx.gates(pipeline, phase5) if g.kind == "check")
        assert not gate.check(GateContext(pipeline, phase5, None, clock.now())).passed
        pw.checks.record([result(95, clock.now(), "feature_store_clean_player_pct")])
        assert gate.check(GateContext(pipeline, phase5, None, clock.now())).passed


def test_replay_check_lines_are_recorded_like_live_results(tmp_path: Path) -> None:
    path = tmp_path / "r.jsonl"
    path.write_text(
        '{"type": "check", "name": "grading_completeness", "value": 0.42,'
        ' "timestamp": "2026-01-18T14:00:00Z"}\n', "utf-8")
    outcome = run_replay(path, config_with(edit=lambda d: d["alerting"].update(group_wait_s=0)),
                         db_path=tmp_path / "pw.db")
    alerts = {a["summary"] for a in outcome.report["alerts"] if a["key"].startswith("check:")}
    assert alerts == {"Grading completeness is 0.42 (critical when < 0.5)"}
    from monitor.checks.store import CheckStore
    from monitor.store.sqlite import SQLiteStore

    store = SQLiteStore(tmp_path / "pw.db")
    try:
        latest = CheckStore(store).latest("grading_completeness")
    finally:
        store.close()
    assert latest is not None and (latest.value, latest.source) == (0.42, "replay")
