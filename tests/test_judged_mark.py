"""The store's judged mark: the position up to which every stored event was judged (run
state, then the listeners). A restart judges the events after it instead of replaying them
in silence (docs/reliability.md, "The crash suite")."""

from __future__ import annotations

import json
import threading
from collections.abc import Sequence
from pathlib import Path

import pytest
from click.testing import CliRunner

from monitor.actuator.sinks import MemorySink
from monitor.app.cli.main import main
from monitor.app.phasewatch import Phasewatch
from monitor.clock import FakeClock
from monitor.config import Config
from monitor.events import Event
from monitor.tracker import Update
from tests.actuator_support import COVERAGE, PHASE3_OVERNIGHT, rig
from tests.factories import event_dict, make_event

RUN = "2026-01-17"


def build(config: Config, db: Path, clock: FakeClock, *, judge: bool = True,
          snapshots: bool = False) -> Phasewatch:
    sink = MemorySink()
    return Phasewatch.build(config, db_path=db, clock=clock, judge=judge, snapshots=snapshots,
                            sinks={"http": sink, "pubsub": sink, "log": sink})


def started(clock: FakeClock, processor: str, event_id: str) -> list[Event]:
    return [make_event("phase2", "started", clock.now().isoformat(), processor, run_date=RUN,
                       mode="overnight", event_id=event_id)]


def test_the_mark_follows_each_batch_once_it_is_judged(
        nba_config: Config, clock: FakeClock, tmp_path: Path) -> None:
    pw = build(nba_config, tmp_path / "pw.db", clock)
    try:
        assert pw.store.judged() == 0  # a new store: nothing to judge
        for n in range(3):
            pw.collector.ingest(started(clock, "p2_odds_game_lines", f"e{n}"))
            assert pw.store.judged() == pw.store.position() == n + 1
        pw.collector.ingest(started(clock, "p2_odds_game_lines", "e0"))  # a duplicate
        assert pw.store.judged() == 3
    finally:
        pw.close()


def test_a_process_that_keeps_no_mark_writes_none(
        nba_config: Config, clock: FakeClock, tmp_path: Path) -> None:
    """Built with ``judge=False`` (replay, the demo, the cold commands), ingest writes no
    mark: only a start that judged what was stored after the mark keeps it from then on."""
    pw = build(nba_config, tmp_path / "pw.db", clock, judge=False)
    try:
        for n in range(3):
            pw.collector.ingest(started(clock, "p2_odds_game_lines", f"e{n}"))
        assert pw.store.judged() is None
    finally:
        pw.close()


def test_the_mark_never_passes_a_batch_still_being_judged(
        nba_config: Config, clock: FakeClock, tmp_path: Path) -> None:
    """Batch A's listeners are slow (another thread); batch B, stored after it, is judged
    first: the mark stays before A until A is judged too."""
    pw = build(nba_config, tmp_path / "pw.db", clock)
    entered, release = threading.Event(), threading.Event()

    def slow(updates: Sequence[Update]) -> None:
        if updates[0].event.event_id == "a":
            entered.set()
            release.wait(10)

    pw.collector.listeners.insert(0, slow)
    try:
        pw.collector.ingest(started(clock, "p2_odds_game_lines", "first"))
        a = threading.Thread(target=pw.collector.ingest,
                             args=(started(clock, "p2_nbacom_gamebook_pdf", "a"),))
        a.start()
        assert entered.wait(10)
        pw.collector.ingest(started(clock, "p2_bigdataball_pbp", "b"))
        assert (pw.store.position(), pw.store.judged()) == (3, 1)
        release.set()
        a.join(10)
        assert pw.store.judged() == 3
    finally:
        release.set()
        pw.close()


def test_a_restart_judges_what_was_stored_after_the_mark_and_a_cold_build_does_not(
        nba_config: Config, clock: FakeClock, tmp_path: Path, caplog: pytest.LogCaptureFixture,
) -> None:
    """Two events stored and never judged (a kill between the store and the listeners): a
    cold command's build replays them in silence and leaves the mark; the service's build
    judges them, once."""
    db = tmp_path / "pw.db"
    pw = build(nba_config, db, clock)
    pw.collector.ingest(started(clock, "p2_odds_game_lines", "judged"))
    killed = pw.collector.resolve([*started(clock, "p2_nbacom_gamebook_pdf", "x"),
                                   *started(clock, "p2_bigdataball_pbp", "y")])
    pw.store.append(killed, clock.now())
    pw.close()

    cold = build(nba_config, db, clock, judge=False)
    try:
        run = cold.tracker.runs()[0]
        assert {"p2_nbacom_gamebook_pdf", "p2_bigdataball_pbp"} <= set(run.phases["phase2"].processors)
        assert cold.store.judged() == 1
    finally:
        cold.close()

    caplog.set_level("WARNING", "monitor.app.phasewatch")
    served = build(nba_config, db, clock)
    try:
        assert served.store.judged() == 3
        run = served.tracker.runs()[0]
        assert {"p2_odds_game_lines", "p2_nbacom_gamebook_pdf", "p2_bigdataball_pbp"} <= set(
            run.phases["phase2"].processors)
    finally:
        served.close()
    again = build(nba_config, db, clock)
    again.close()
    told = [r.getMessage() for r in caplog.records if "judged_after_restart" in r.getMessage()]
    assert len(told) == 1 and "events=2 " in told[0]


def test_a_snapshot_taken_past_the_mark_is_not_used(
        nba_config: Config, clock: FakeClock, tmp_path: Path, caplog: pytest.LogCaptureFixture,
) -> None:
    """The snapshot job ran while a batch was stored and not yet judged, then the kill: the
    snapshot claims the batch and its state does not hold it. The restart rebuilds from the
    events up to the mark and judges the batch."""
    db = tmp_path / "pw.db"
    pw = build(nba_config, db, clock, snapshots=True)
    pw.collector.ingest(started(clock, "p2_odds_game_lines", "judged"))
    pw.store.append(pw.collector.resolve(started(clock, "p2_nbacom_gamebook_pdf", "x")),
                    clock.now())
    pw.save_snapshot(wait=True)
    pw.close()
    caplog.set_level("INFO", "monitor.app.snapshot")
    served = build(nba_config, db, clock, snapshots=True)
    try:
        assert [r for r in caplog.records if "snapshot.ignored" in r.getMessage()
                and "past the judged mark 1" in r.getMessage()]
        run = served.tracker.runs()[0]
        assert {"p2_odds_game_lines", "p2_nbacom_gamebook_pdf"} <= set(run.phases["phase2"].processors)
        assert served.store.judged() == 2
    finally:
        served.close()


def test_a_completion_stored_before_a_kill_triggers_the_next_phase_once_after_the_restart(
        tmp_path: Path) -> None:
    """Phase 3's last completion is stored and the process killed before it is judged: the
    restart judges it and grading is triggered at once, and the ticks after it, which also
    look at the run, decide nothing new: the sends after it are that trigger's retries (the
    simulated grading never starts). A guard: before, the first tick after the start
    triggered it from the rebuilt state (triggers were never lost, alerts were)."""
    db = tmp_path / "pw.db"
    with rig(db=db) as r:
        r.complete("phase3", PHASE3_OVERNIGHT[:-1])
        last = PHASE3_OVERNIGHT[-1]
        r.clock.advance(60)
        r.pw.store.append(r.pw.collector.resolve([make_event(
            "phase3", "succeeded", r.clock.now().isoformat(), last, run_date=RUN,
            **COVERAGE.get(last, {}))]), r.clock.now())
        assert r.sent("grading") == []
    with rig(db=db, start=r.clock.now()) as r:
        assert len(r.sent("grading")) == 1
        r.tick_for(1800)
        keys = [s.request.idempotency_key for s in r.sent("grading")]
        first = "nba:2026-01-17:overnight:grading"
        assert keys.count(first) == 1
        assert all(k.startswith(f"{first}:retrigger-") for k in keys if k != first), keys


def _import(db: Path, tmp_path: Path, clock: FakeClock, ids: range) -> None:
    lines = tmp_path / f"import-{ids.start}.jsonl"
    lines.write_text("".join(json.dumps(event_dict(
        "phase2", "succeeded", clock.now().isoformat(), "p2_odds_game_lines",
        run_date=f"2026-01-{day:02d}", mode="backfill", event_id=f"imported-{day}")) + "\n"
        for day in ids))
    result = CliRunner().invoke(main, ["import", str(lines), "--db", str(db)])
    assert result.exit_code == 0, result.output


def test_an_import_into_a_stopped_store_keeps_the_mark_with_it(
        nba_config: Config, clock: FakeClock, tmp_path: Path, caplog: pytest.LogCaptureFixture,
) -> None:
    """`phasewatch import --db` is judged as it goes (a backfill acts on nothing): the next
    start replays it in silence, as before the mark. Unless a kill left events unjudged
    before it: the mark stays there, and the start judges those and the import after them."""
    caplog.set_level("WARNING", "monitor.app.phasewatch")
    db = tmp_path / "pw.db"
    build(nba_config, db, clock).close()
    _import(db, tmp_path, clock, range(1, 6))
    pw = build(nba_config, db, clock)
    try:
        assert pw.store.judged() == pw.store.position() == 5
        pw.store.append(pw.collector.resolve(started(clock, "p2_odds_game_lines", "killed")),
                        clock.now())
    finally:
        pw.close()
    _import(db, tmp_path, clock, range(6, 9))
    pw = build(nba_config, db, clock)
    pw.close()
    told = [r.getMessage() for r in caplog.records if "judged_after_restart" in r.getMessage()]
    assert len(told) == 1 and "events=4 " in told[0]  # the one a kill left, the 3 imported
