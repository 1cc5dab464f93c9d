"""The store's judged mark: the position up to which every stored event was judged (run
state, then the listeners). A restart judges the events after it instead of replaying them
in silence (docs/reliability.md, "The crash suite")."""

from __future__ import annotations

import threading
from collections.abc import Sequence
from pathlib import Path

import pytest

from monitor.actuator.sinks import MemorySink
from monitor.app.phasewatch import Phasewatch
from monitor.clock import FakeClock
from monitor.config import Config
from monitor.tracker import Update
from tests.factories import make_event

RUN = "2026-01-17"


def build(config: Config, db: Path, clock: FakeClock, *, judge: bool = True,
          snapshots: bool = False) -> Phasewatch:
    sink = MemorySink()
    return Phasewatch.build(config, db_path=db, clock=clock, judge=judge, snapshots=snapshots,
                            sinks={"http": sink, "pubsub": sink, "log": sink})


def started(clock: FakeClock, processor: str, event_id: str) -> list[object]:
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
        assert [r for r in caplog.records if "snapshot.ignored" in r.getMessage()]
        run = served.tracker.runs()[0]
        assert {"p2_odds_game_lines", "p2_nbacom_gamebook_pdf"} <= set(run.phases["phase2"].processors)
        assert served.store.judged() == 2
    finally:
        served.close()
