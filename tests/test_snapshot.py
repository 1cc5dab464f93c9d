"""Fast start (``monitor.app.snapshot``): the state after a restart is the state before it,
and a snapshot that does not fit the store, the code or the config is never used."""

from __future__ import annotations

import io
import json
import logging
import pickle
import shutil
import sqlite3
import subprocess
import sys
from collections import deque
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from pydantic import BaseModel

from monitor.actuator.api import list_actions
from monitor.actuator.simulated import simulated
from monitor.app.anomalies import Anomaly
from monitor.app.phasewatch import Phasewatch
from monitor.app.reads import alerts_body, anomalies_body, runs_body, slos_body
from monitor.app.sim.demo import demo_config, write_scenario, write_warehouse
from monitor.app.sim.replay import Replayer, SimulatedWorld, read_lines
from monitor.app.snapshot import NAME, dump_state, load_state, read_state
from monitor.checks.result import CheckResult
from monitor.clock import FakeClock
from monitor.config import Config
from monitor.store.registry import open_store
from monitor.store.snapshots import Snapshot, SnapshotStore
from monitor.store.sqlite import SQLiteStore
from slo.sli.deadline import Deadline
from tests.factories import make_event

DAYS = 4  # of the demo's scenario: runs, SLO budgets, anomaly baselines, failures, checks
ROOT = Path(__file__).resolve().parent.parent
SHORT = 150  # lines played on PostgreSQL (each write a round trip)


@dataclass
class Scenario:
    config: Config
    lines: Path

    @property
    def start(self) -> datetime:
        """Where simulated time starts: the earliest line."""
        stamps = (json.loads(line)["timestamp"] for line in self.lines.read_text().splitlines())
        return min(datetime.fromisoformat(s) for s in stamps)


@pytest.fixture(scope="module")
def scenario(tmp_path_factory: pytest.TempPathFactory) -> Scenario:
    out = tmp_path_factory.mktemp("scenario")
    write_warehouse(out / "warehouse.db", DAYS)
    write_scenario(out / "events.jsonl", DAYS)
    config = changed(demo_config(out / "warehouse.db"), "server",
                     snapshot_interval_s=6 * 3600.0,  # a save every 6 simulated hours
                     tick_interval_s=300.0)  # the jobs every 5 simulated minutes: a fast suite
    return Scenario(config, out / "events.jsonl")


def changed(config: Config, section: str, **fields: Any) -> Config:
    """``config`` with some fields of one section changed."""
    part = getattr(config, section).model_copy(update=fields)
    return config.model_copy(update={section: part})


def build(config: Config, db: str, clock: FakeClock, *, snapshots: bool = True) -> Phasewatch:
    """A phasewatch on simulated time and a simulated world, as replay runs it."""
    probe, sinks, _ = simulated(SimulatedWorld())
    return Phasewatch.build(config, db_path=db, clock=clock, probe=probe, sinks=sinks,
                            dry_run_alerts=True, snapshots=snapshots)


def play(pw: Phasewatch, clock: FakeClock, path: Path, *, upto: int | None = None,
         start: int = 0) -> datetime:
    """Feed the scenario's lines ``start:upto`` as replay does (ticks on the way); the end time."""
    lines = read_lines(path, pw)[start:upto]
    player = Replayer(pw, clock, SimulatedWorld())
    for line in lines:
        player.feed(line)
    return clock.now()


def view(pw: Phasewatch) -> dict[str, Any]:
    """What the API and the report show: runs, SLOs, anomalies, alerts, actions, every
    report section (the actuator's among them)."""
    assert pw.actuator is not None
    return {
        "runs": runs_body(pw), "slos": slos_body(pw, history=True), "anomalies": anomalies_body(pw),
        "alerts": alerts_body(pw), "actions": list_actions(pw.actuator, {}),
        "sections": pw.report_sections(),
        "timeouts": {key: pw.anomalies.timeout(key.pipeline, key.phase, key.processor or None,
                                               key.mode, 60.0).seconds
                     for key in pw.anomalies.series()},
    }


def same(a: Any, b: Any, where: str = "state") -> None:
    """Deep equality of two state object graphs (numpy arrays, deques, plain objects)."""
    assert type(a) is type(b), f"{where}: {type(a).__name__} != {type(b).__name__}"
    if isinstance(a, np.ndarray):
        assert np.array_equal(a, b), where
    elif isinstance(a, dict):
        assert list(a) == list(b), f"{where}: keys differ"
        for key in a:
            same(a[key], b[key], f"{where}[{key!r}]")
    elif isinstance(a, list | tuple | deque):
        assert len(a) == len(b), f"{where}: lengths {len(a)} != {len(b)}"
        for i, (x, y) in enumerate(zip(a, b, strict=True)):
            same(x, y, f"{where}[{i}]")
    elif isinstance(a, BaseModel) or (not hasattr(a, "__dict__") and not _slots(a)):
        assert a == b, where
    else:
        same(_fields(a), _fields(b), f"{where}.{type(a).__name__}")


def _slots(obj: Any) -> list[str]:
    return [s for cls in type(obj).__mro__ for s in getattr(cls, "__slots__", ())]


def _fields(obj: Any) -> dict[str, Any]:
    return {**getattr(obj, "__dict__", {}), **{s: getattr(obj, s) for s in _slots(obj)}}


def components(pw: Phasewatch) -> dict[str, Any]:
    return {"tracker": pw.tracker, "slo": pw.slo, "anomalies": pw.anomalies,
            "correlator": pw.correlator}


def restored(caplog: pytest.LogCaptureFixture) -> list[str]:
    return [r.getMessage() for r in caplog.records
            if r.getMessage().startswith(("event=snapshot.restored", "event=snapshot.ignored"))]


@dataclass
class Played:
    """The scenario played into an SQLite store with snapshots, then stopped: what the API
    showed and the components held just before the stop, the store after the stop (its
    snapshot saved by the stop) and a copy taken just before it (as a crash leaves it: its
    snapshot the periodic job's)."""

    end: datetime
    view: dict[str, Any]
    state: dict[str, dict[str, Any]]
    stopped: Path
    crashed: Path


@pytest.fixture(scope="module")
def played(scenario: Scenario, tmp_path_factory: pytest.TempPathFactory) -> Played:
    out = tmp_path_factory.mktemp("played")
    clock = FakeClock(scenario.start)
    pw = build(scenario.config, str(out / "pw.db"), clock)
    end = play(pw, clock, scenario.lines)
    before = view(pw)
    state = read_state(dump_state(components(pw), scenario.config), scenario.config)
    assert isinstance(pw.store, SQLiteStore)
    with sqlite3.connect(out / "crashed.db") as crashed:
        raw = sqlite3.connect(out / "pw.db")
        raw.backup(crashed)
        raw.close()
    pw.close()  # saves the snapshot
    return Played(end, before, state, out / "pw.db", out / "crashed.db")


def slow_ticks(config: Config) -> Config:
    """Ticks every 10 simulated minutes: on PostgreSQL each tick is a few round trips."""
    return changed(config, "server", tick_interval_s=600.0)


def copied(path: Path, tmp_path: Path) -> str:
    tmp_path.mkdir(exist_ok=True)
    db = tmp_path / "pw.db"
    shutil.copy(path, db)
    return str(db)


# Report sections that list what this process did, not state the events build: the scheduled
# check runs it made and the daily summaries it sent (both empty after any start; the results
# and the deliveries are in the store).
PROCESS_LOGS = ("checks", "daily_summaries")


def same_view(again: Phasewatch, before: dict[str, Any]) -> None:
    """``again`` shows what ``before`` was (but for ``PROCESS_LOGS``)."""
    after = view(again)
    assert [after["sections"].pop(name) for name in PROCESS_LOGS] == [[]] * len(PROCESS_LOGS)
    expected = {**before, "sections": {k: v for k, v in before["sections"].items()
                                       if k not in PROCESS_LOGS}}
    for key in expected:
        assert after[key] == expected[key], key


def test_a_restart_restores_the_state_it_stopped_with(
        scenario: Scenario, played: Played, tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    assert played.view["runs"]["runs"] and played.view["actions"]["count"] and played.view["timeouts"]
    caplog.set_level(logging.INFO, logger="monitor.app.snapshot")
    again = build(scenario.config, copied(played.stopped, tmp_path), FakeClock(played.end))
    try:
        assert [m.split()[0] for m in restored(caplog)] == ["event=snapshot.restored"]
        same_view(again, played.view)
        for name, component in components(again).items():
            for field_name in component.snapshot_fields:
                same(getattr(component, field_name), played.state[name][field_name],
                     f"{name}.{field_name}")
    finally:
        again.close()


def test_after_a_crash_the_events_after_the_last_snapshot_are_replayed(
        scenario: Scenario, played: Played, tmp_path: Path,
        caplog: pytest.LogCaptureFixture) -> None:
    """The store as a kill leaves it: the periodic job's snapshot, then more events. The
    events after the snapshot are replayed on start; runs, SLOs, detectors and actions are
    as before the crash."""
    caplog.set_level(logging.INFO, logger="monitor.app.snapshot")
    db = copied(played.crashed, tmp_path)
    store = SQLiteStore(db)
    stored = SnapshotStore(store).load(NAME)
    assert stored is not None and 0 < stored.position < store.position()
    store.close()
    again = build(scenario.config, db, FakeClock(played.end))
    try:
        assert [m.split()[0] for m in restored(caplog)] == ["event=snapshot.restored"]
        after = view(again)
        for key in ("runs", "slos", "timeouts", "actions"):
            assert after[key] == played.view[key], key
        same(again.anomalies.detectors, played.state["anomalies"]["detectors"], "detectors")
        same(again.tracker._runs, played.state["tracker"]["_runs"], "runs")
    finally:
        again.close()


def test_a_restart_on_postgresql_restores_the_state_it_stopped_with(
        scenario: Scenario, postgres_url: str, caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.INFO, logger="monitor.app.snapshot")
    clock = FakeClock(scenario.start)
    pw = build(slow_ticks(scenario.config), postgres_url, clock)
    end = play(pw, clock, scenario.lines, upto=SHORT)
    before = view(pw)
    pw.close()
    again = build(slow_ticks(scenario.config), postgres_url, FakeClock(end))
    try:
        assert [m.split()[0] for m in restored(caplog)] == ["event=snapshot.restored"]
        same_view(again, before)
    finally:
        again.close()


def events_slos(pw: Phasewatch) -> list[dict[str, Any]]:
    return [s for s in slos_body(pw, history=True)["slos"] if s["unit"] != "probes"]


def test_a_snapshot_written_by_the_leader_starts_another_instance(
        scenario: Scenario, postgres_url: str) -> None:
    """Instances sharing a PostgreSQL store: one saves, a new one restores it and replays the
    events another instance stored since; its state is the one that followed them all."""
    clock = FakeClock(scenario.start)
    config = slow_ticks(scenario.config)
    first = build(config, postgres_url, clock)
    second = build(config, postgres_url, clock)
    try:
        play(first, clock, scenario.lines, upto=SHORT // 2)
        first.save_snapshot()
        end = play(second, clock, scenario.lines, start=SHORT // 2, upto=SHORT)
        first.follow()
        third = build(config, postgres_url, FakeClock(end))
        try:
            assert third.position == first.position
            assert runs_body(third) == runs_body(first)
            # Health probes are each instance's own (the leader probes; a start reads them all
            # from the store): the SLOs counted in probes differ between instances anyway.
            assert events_slos(third) == events_slos(first)
        finally:
            third.close()
    finally:
        second.close()
        first.close()


def test_every_snapshotted_field_round_trips(scenario: Scenario, played: Played,
                                             tmp_path: Path) -> None:
    """Recent anomalies, the runs told about, the correlator's failures and the check results
    a deadline SLO's due.expected_when keeps (which the short scenario leaves empty) come back
    as they were."""
    pw = build(scenario.config, copied(played.stopped, tmp_path), FakeClock(played.end))
    try:
        at = played.end
        pw.anomalies.recent.append(Anomaly(at, "nba", "2026-01-15", "overnight", "phase3", "p",
                                           "duration", 900.0, 300.0, 200.0, 400.0, 7.5, "spike"))
        pw.anomalies._announced[("nba", "2026-01-15", "overnight")] = at
        pw.correlator._failed("nba", ("phase2", "a"), "quota exceeded for x", at)
        pw.correlator._failed("nba", ("phase3", "b"), "quota exceeded for y", at)
        pw.observe_check(CheckResult("games_today", 9, at))  # a game day (due.expected_when)
        (games,) = [t.sli for t in pw.slo._slos if isinstance(t.sli, Deadline) and t.sli.expect]
        assert games.expected
        body = dump_state(components(pw), scenario.config)
        fresh = build(scenario.config, copied(played.stopped, tmp_path / "fresh"),
                      FakeClock(played.end), snapshots=False)
        try:
            load_state(body, components(fresh), scenario.config)
            for name, component in components(pw).items():
                for field_name in component.snapshot_fields:
                    same(getattr(components(fresh)[name], field_name),
                         getattr(component, field_name), f"{name}.{field_name}")
            assert anomalies_body(fresh) == anomalies_body(pw)
        finally:
            fresh.close()
    finally:
        pw.close()


# --------------------------------------------------------------------------- never wrong state


@pytest.fixture
def saved(played: Played, tmp_path: Path) -> tuple[str, datetime]:
    """A store whose state was saved at its stop (a copy of one), and the time it stopped."""
    return copied(played.stopped, tmp_path), played.end


def rewrite(db: str, **changes: Any) -> None:
    """Change the stored snapshot: its header's fields, its body, its position."""
    store = SQLiteStore(db)
    try:
        table = SnapshotStore(store)
        snap = table.load(NAME)
        assert snap is not None
        header = {**snap.header, **changes.get("header", {})}
        table.delete(NAME)
        table.save(Snapshot(NAME, changes.get("position", snap.position), snap.taken_at, header,
                            changes.get("body", snap.body)))
    finally:
        store.close()


def rebuilt_view(config: Config, db: str, end: datetime) -> dict[str, Any]:
    pw = build(config, db, FakeClock(end), snapshots=False)
    try:
        return view(pw)
    finally:
        pw.close()


class Boom:
    """A pickle that would run a command when loaded."""

    def __reduce__(self) -> tuple[Any, ...]:
        import os

        return os.system, ("touch /tmp/phasewatch-snapshot-pwned",)


def evil_body() -> bytes:
    out = io.BytesIO()
    pickle.Pickler(out, protocol=5).dump({"tracker": Boom()})
    return out.getvalue()


@pytest.mark.parametrize(("change", "reason"), [
    ({"header": {"code": "0" * 64}}, "another code"),
    ({"header": {"format": 99}}, "another format"),
    ({"header": {"history_days": 7}}, "another history_days"),
    ({"header": {"sha256": "0" * 64}}, "corrupt"),
    ({"body": b"not a pickle"}, "corrupt"),
    ({"header": {"events": {"count": 1, "seq_sum": 1, "last_event_id": "x"}}}, "events changed"),
    ({"position": 10**9}, "summarises events up to"),
], ids=["code", "format", "window", "sha256", "body", "events", "position"])
def test_a_snapshot_that_does_not_fit_is_ignored_and_the_state_rebuilt(
        scenario: Scenario, saved: tuple[str, datetime], change: dict[str, Any], reason: str,
        caplog: pytest.LogCaptureFixture) -> None:
    db, end = saved
    expected = rebuilt_view(scenario.config, db, end)
    rewrite(db, **change)
    caplog.set_level(logging.INFO, logger="monitor.app.snapshot")
    pw = build(scenario.config, db, FakeClock(end))
    try:
        [message] = restored(caplog)
        assert message.startswith("event=snapshot.ignored") and reason in message
        assert caplog.records[-1].levelno >= logging.INFO
        assert view(pw) == expected
    finally:
        pw.close()


def test_a_snapshot_of_code_that_would_run_is_refused(
        scenario: Scenario, saved: tuple[str, datetime], caplog: pytest.LogCaptureFixture) -> None:
    db, end = saved
    body = evil_body()
    import hashlib

    marker = Path("/tmp/phasewatch-snapshot-pwned")
    marker.unlink(missing_ok=True)
    rewrite(db, body=body, header={"sha256": hashlib.sha256(body).hexdigest()})
    caplog.set_level(logging.INFO, logger="monitor.app.snapshot")
    pw = build(scenario.config, db, FakeClock(end))
    pw.close()
    [message] = restored(caplog)
    assert "posix.system is not allowed" in message or "os.system is not allowed" in message
    assert not marker.exists()


def test_another_config_or_events_changed_under_it_are_ignored(
        scenario: Scenario, played: Played, tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.INFO, logger="monitor.app.snapshot")
    end = played.end
    build(changed(scenario.config, "runs", track_days=10), copied(played.stopped, tmp_path / "a"),
          FakeClock(end)).close()
    assert "another config" in restored(caplog)[-1]
    db = copied(played.stopped, tmp_path / "b")
    with sqlite3.connect(db) as raw:  # an event the snapshot summarises is gone
        raw.execute("DELETE FROM events WHERE seq = 5")
    build(scenario.config, db, FakeClock(end)).close()
    assert "its events changed" in restored(caplog)[-1]
    build(scenario.config, copied(played.stopped, tmp_path / "c"),
          FakeClock(end - timedelta(days=3))).close()  # a clock set back
    assert "taken after now" in restored(caplog)[-1]


def test_events_another_process_stored_meanwhile_are_never_claimed(
        scenario: Scenario, tmp_path: Path) -> None:
    """An SQLite store written by ``phasewatch import`` while the service runs: the service
    has not applied those events, so its snapshot must not stand for them."""
    db = str(tmp_path / "pw.db")
    clock = FakeClock(scenario.start)
    pw = build(scenario.config, db, clock)
    end = play(pw, clock, scenario.lines, upto=200)
    other = SQLiteStore(db)  # another process's connection: its own origin
    imported = make_event("phase2", "failed", end.isoformat(), "OddsApiGameLinesBatchProcessor",
                          run_date=end.date().isoformat(), mode="overnight", event_id="imported-1")
    other.append([imported], end)
    other.close()
    play(pw, clock, scenario.lines, start=200, upto=260)  # events of its own after it
    pw.close()
    full = rebuilt_view(scenario.config, db, clock.now())
    again = build(scenario.config, db, FakeClock(clock.now()))
    try:
        assert view(again)["runs"] == full["runs"]
        assert view(again)["slos"] == full["slos"]
    finally:
        again.close()


def test_the_snapshot_table_keeps_the_newest(db: str) -> None:
    store = open_store(db)
    try:
        table = SnapshotStore(store)
        at = datetime(2026, 1, 1, tzinfo=UTC)
        assert table.save(Snapshot("state", 10, at, {"a": 1}, b"\x00ten"))
        assert not table.save(Snapshot("state", 9, at, {"a": 2}, b"nine"))  # older: kept out
        assert table.save(Snapshot("state", 10, at, {"a": 3}, b"\x00\xfften again"))
        got = table.load("state")
        assert got is not None and (got.position, got.header, got.body) == (
            10, {"a": 3}, b"\x00\xfften again")
        assert table.load("other") is None
        assert json.loads(json.dumps(got.header)) == got.header
    finally:
        store.close()


def test_serve_restores_its_snapshot_bench_quick_run(tmp_path: Path) -> None:
    """``phasewatch serve`` as a user starts it (bench/start.py): restored after a stop."""
    result = subprocess.run(
        [sys.executable, str(ROOT / "bench" / "start.py"), "--quick", "--runs", "1", "--events",
         "3000", "--cache", str(tmp_path)], capture_output=True, text=True, timeout=600, cwd=ROOT)
    assert result.returncode == 0, result.stderr[-3000:]
    assert "the snapshot restored in 1 starts, the state rebuilt from every event in 2" in result.stdout


def test_a_config_reference_cannot_reach_a_function(scenario: Scenario) -> None:
    """A forged reference walks the config to a function (a method's ``__globals__`` reaches
    ``eval``): refused, as anything callable is."""
    from monitor.app import snapshot

    marker = Path("/tmp/phasewatch-snapshot-pwned-2")
    marker.unlink(missing_ok=True)
    evil = [("a", "model_dump"), ("a", "__globals__"), ("k", "__builtins__"), ("k", "eval")]

    class Call:
        def __reduce__(self) -> tuple[Any, ...]:
            return snapshot.config_object, (tuple(evil),)

    with pytest.raises(pickle.UnpicklingError, match="not a config object"):
        read_state(pickle.dumps({"tracker": {"_runs": Call()}}, protocol=5), scenario.config)
    for path in ([("a", "__class__")], [("a", "pipelines"), ("a", "index")]):
        with pytest.raises(pickle.UnpicklingError, match="not a config object"):
            read_state(_reference(snapshot.config_object, path), scenario.config)
    assert read_state(_reference(snapshot.config_object, [("a", "pipelines"), ("i", 0)]),
                      scenario.config) is scenario.config.pipelines[0]
    assert not marker.exists()


def _reference(function: Any, path: list[tuple[str, Any]]) -> bytes:
    class Ref:
        def __reduce__(self) -> tuple[Any, ...]:
            return function, (tuple(path),)

    return pickle.dumps(Ref(), protocol=5)
