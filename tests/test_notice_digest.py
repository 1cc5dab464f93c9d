"""Notices in bulk: an info notice is told at once, but notices of one kind that keep coming
(a backfill of 30 dates, each Phase 4 triggered degraded) are folded into one message per
burst instead of one each. Fake clock, in-memory channels, a real SQLite file."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import contextmanager
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest
from pydantic import ValidationError

from alerts.channels.memory import MemoryChannel
from alerts.config import AlertingConfig
from alerts.engine import AlertEngine
from alerts.notification import Notification
from monitor.clock import FakeClock
from monitor.store.sqlite import SQLiteStore
from tests.test_alerts_router import run
from tests.test_alerts_support import make_alert, make_engine


@pytest.fixture
def db(tmp_path: Path) -> Iterator[SQLiteStore]:
    store = SQLiteStore(tmp_path / "pw.db")
    yield store
    store.close()


def notice(engine: AlertEngine, clock: FakeClock, day: int, kind: str = "degraded_trigger",
           pipeline: str = "nba") -> None:
    """One notice (raised and cleared at once) about the backfill run of January ``day``."""
    alert = make_alert(kind, clock.now(), "info", pipeline=pipeline, run_date=f"2026-01-{day:02d}",
                       mode="backfill", phase="phase4", summary=f"{kind}: phase4 of 2026-01-{day:02d}")
    engine.router.fire(alert)
    engine.router.resolve(alert.key, clock.now())


def backfill(engine: AlertEngine, clock: FakeClock, days: int, every_s: float = 150) -> None:
    for day in range(1, days + 1):
        notice(engine, clock, day)
        run(engine, clock, every_s)


def run_dates(sent: list[Notification]) -> list[str]:
    return sorted(d for n in sent for d in (f"2026-01-{i:02d}" for i in range(1, 32))
                  if d in n.alert.summary or d in n.alert.details)


def test_a_lone_notice_is_told_at_once_as_before(db: SQLiteStore, clock: FakeClock) -> None:
    chat = MemoryChannel("chat")
    engine = make_engine(db, clock, [chat])
    start = clock.now()
    notice(engine, clock, 1)
    run(engine, clock, 3 * 3600)
    assert [(n.notice, n.alert.count, n.at - start) for n in chat.sent] == [
        (True, 1, timedelta(seconds=30))]  # the group wait, as any alert
    assert engine.router.groups() == {}


def test_notices_of_one_kind_that_keep_coming_are_one_message_per_burst(
    db: SQLiteStore, clock: FakeClock,
) -> None:
    """30 backfilled dates, a notice every 2.5 min for 75 min: the first told at once, the
    rest folded (at most an hour held, then when they stop for 5 min). Before: 30 messages."""
    chat = MemoryChannel("chat")
    engine = make_engine(db, clock, [chat])
    start = clock.now()
    backfill(engine, clock, 30)
    run(engine, clock, 3600)
    assert [(n.notice, n.alert.severity, n.alert.name) for n in chat.sent] == [
        (True, "info", "degraded_trigger")] * 3
    first, hour, rest = chat.sent
    assert (first.alert.count, first.at - start) == (1, timedelta(seconds=30))
    assert sum(n.alert.count for n in chat.sent) == 30
    assert hour.at - start <= timedelta(minutes=2.5 + 60 + 1)  # held an hour at most
    assert rest.at - start <= timedelta(minutes=75 + 5 + 1)  # told once they stopped
    assert run_dates(chat.sent) == [f"2026-01-{d:02d}" for d in range(1, 31)]
    assert "pipeline=nba" in hour.alert.summary and "phase=phase4" in hour.alert.summary
    assert hour.alert.labels["alertname"] == "degraded_trigger"
    assert engine.router.groups() == {}  # nothing left held


def test_notices_of_one_kind_in_one_flush_are_one_message_at_once(
    db: SQLiteStore, clock: FakeClock,
) -> None:
    """Two stalled batches recovered in the same tick: one message, not one now and the
    other five minutes later."""
    chat = MemoryChannel("chat")
    engine = make_engine(db, clock, [chat])
    start = clock.now()
    notice(engine, clock, 1)
    notice(engine, clock, 2)
    run(engine, clock, 600)
    assert [(n.alert.count, n.at - start) for n in chat.sent] == [(2, timedelta(seconds=30))]
    assert run_dates(chat.sent) == ["2026-01-01", "2026-01-02"]


def test_notices_far_apart_are_each_told_at_once(db: SQLiteStore, clock: FakeClock) -> None:
    chat = MemoryChannel("chat")
    engine = make_engine(db, clock, [chat])
    backfill(engine, clock, 3, every_s=600)
    assert [n.alert.count for n in chat.sent] == [1, 1, 1]


def test_other_kinds_and_other_pipelines_are_not_folded_together(
    db: SQLiteStore, clock: FakeClock,
) -> None:
    chat = MemoryChannel("chat")
    engine = make_engine(db, clock, [chat])
    notice(engine, clock, 1)
    notice(engine, clock, 1, kind="backstop_trigger")
    notice(engine, clock, 1, pipeline="nba-shadow")
    run(engine, clock, 60)
    assert sorted((n.alert.name, n.alert.labels["pipeline"], n.alert.count) for n in chat.sent) == [
        ("backstop_trigger", "nba", 1), ("degraded_trigger", "nba", 1),
        ("degraded_trigger", "nba-shadow", 1)]


@contextmanager
def restarted(path: Path, clock: FakeClock, chat: MemoryChannel,
              before: Callable[[AlertEngine], None]) -> Iterator[AlertEngine]:
    """The engine started again on the store at ``path`` after ``before`` ran on one that
    then stopped."""
    db = SQLiteStore(path)
    engine = make_engine(db, clock, [chat])
    before(engine)
    engine.close()
    db.close()
    db = SQLiteStore(path)
    try:
        engine = make_engine(db, clock, [chat])
        yield engine
        engine.close()
    finally:
        db.close()


def test_notices_held_when_phasewatch_stops_are_told_once_after_the_restart(
    tmp_path: Path, clock: FakeClock,
) -> None:
    chat = MemoryChannel("chat")

    def before(engine: AlertEngine) -> None:
        backfill(engine, clock, 4, every_s=60)
        assert [n.alert.count for n in chat.sent] == [1]  # three held

    with restarted(tmp_path / "pw.db", clock, chat, before) as engine:
        run(engine, clock, 3600)
        assert [n.alert.count for n in chat.sent] == [1, 3]
        assert run_dates(chat.sent) == [f"2026-01-{d:02d}" for d in range(1, 5)]


def test_a_restart_remembers_when_a_kind_was_last_told(tmp_path: Path, clock: FakeClock) -> None:
    """A notice told just before a restart still holds the next of its kind for the digest.
    Before: the restarted process had forgotten it, and told the next one on its own at once
    (two messages within ``quiet_s``)."""
    chat = MemoryChannel("chat")

    def before(engine: AlertEngine) -> None:
        notice(engine, clock, 1)
        run(engine, clock, 60)
        assert [n.alert.count for n in chat.sent] == [1]  # told after the group wait

    with restarted(tmp_path / "pw.db", clock, chat, before) as engine:
        notice(engine, clock, 2)
        run(engine, clock, 120)
        assert len(chat.sent) == 1  # held: the first was told 90 s ago
        notice(engine, clock, 3)
        run(engine, clock, 3600)
        assert [n.alert.count for n in chat.sent] == [1, 2]
        assert run_dates(chat.sent) == ["2026-01-01", "2026-01-02", "2026-01-03"]


@pytest.mark.parametrize("alerting", [
    {"notice_digest": {"quiet_s": 0}, "channels": [{"kind": "memory", "name": "chat"}]},
    {"channels": [{"kind": "alertmanager", "name": "chat", "url": "http://127.0.0.1:9/"}]},
])
def test_with_the_digest_off_or_a_channel_that_groups_itself_every_notice_is_its_own(
    db: SQLiteStore, clock: FakeClock, alerting: dict[str, Any],
) -> None:
    engine = make_engine(db, clock, None, alerting, dry_run=True)  # the configured kinds
    backfill(engine, clock, 5)
    run(engine, clock, 600)
    chat = engine.channels["chat"]
    assert isinstance(chat, MemoryChannel)
    assert [n.alert.count for n in chat.sent] == [1] * 5


@pytest.mark.parametrize(("field", "value"), [("quiet_s", -1), ("max_wait_s", 0)])
def test_a_bad_digest_setting_names_the_field(field: str, value: float) -> None:
    with pytest.raises(ValidationError) as raised:
        AlertingConfig.model_validate({"notice_digest": {field: value}})
    assert f"notice_digest.{field}" in str(raised.value).replace("\n", ".")


def test_a_notice_raised_just_before_a_crash_is_told_once_after_the_restart(
    tmp_path: Path, clock: FakeClock,
) -> None:
    """A stalled batch recovered, then phasewatch killed inside the group wait (before any
    flush): the restarted process tells the notice, once. Before: never told (a notice is
    resolved at once, and a restart took up only firing or told episodes)."""
    chat = MemoryChannel("chat")
    db = SQLiteStore(tmp_path / "pw.db")
    engine = make_engine(db, clock, [chat])
    notice(engine, clock, 1, kind="stalled_recovered")
    db.close()  # killed: no flush, no close
    clock.advance(5)
    db = SQLiteStore(tmp_path / "pw.db")
    try:
        engine = make_engine(db, clock, [chat])
        run(engine, clock, 600)
        assert [(n.alert.name, n.notice) for n in chat.sent] == [("stalled_recovered", True)]
        engine.close()
        engine = make_engine(db, clock, [chat])  # and not again after another restart
        run(engine, clock, 600)
        assert len(chat.sent) == 1
        assert engine.router.groups() == {}
    finally:
        db.close()
