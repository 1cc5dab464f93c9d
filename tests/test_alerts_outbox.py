"""The durable outbox: retries on the fake clock, Retry-After, ordering, pacing, dead rows,
and delivery after a restart."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import timedelta
from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st

from alerts.channels.memory import MemoryChannel
from alerts.config import DeliveryConfig
from alerts.errors import DeliveryError
from alerts.outbox import DEAD, DELIVERED, PENDING
from alerts.ratelimit import TokenBucket
from alerts.retry import RetryPolicy
from monitor.clock import FakeClock
from monitor.store.sqlite import SQLiteStore
from tests.test_alerts_support import make_alert, make_engine

RUN = {"pipeline": "nba", "run_date": "2026-01-17", "mode": "overnight"}
NOW_CFG = {"group_wait_s": 0}


def outage(n: int, status: int = 503, retry_after: float | None = None) -> list[DeliveryError]:
    return [DeliveryError.from_status("chat", status, "down", retry_after) for _ in range(n)]


@pytest.fixture
def db(tmp_path: Path) -> Iterator[SQLiteStore]:
    store = SQLiteStore(tmp_path / "pw.db")
    yield store
    store.close()


def test_outage_then_recovery_delivers_each_once_in_order(db: SQLiteStore, clock: FakeClock) -> None:
    chat = MemoryChannel("chat")
    engine = make_engine(db, clock, [chat], NOW_CFG)
    chat.failures = outage(6)
    a = make_alert("deadline", clock.now(), phase="phase4", **RUN)
    engine.router.fire(a)
    engine.router.fire(make_alert("deadline", clock.now(), phase="phase5", **RUN))
    engine.tick(clock.now())
    clock.advance(1)
    engine.router.resolve(a.key, clock.now())
    for _ in range(200):  # 100 minutes of ticks every 30 s
        clock.advance(30)
        engine.tick(clock.now())
    actions = [(n.action, n.alert.labels["phase"]) for n in chat.sent]
    assert sorted(actions) == [("resolve", "phase4"), ("trigger", "phase4"), ("trigger", "phase5")]
    assert actions.index(("trigger", "phase4")) < actions.index(("resolve", "phase4"))
    rows = engine.outbox.rows()
    assert {r.status for r in rows} == {DELIVERED}
    assert sum(r.attempts for r in rows) == 3 + 6  # each failure retried, nothing doubled


def test_retry_after_is_honoured_and_pauses_the_channel(db: SQLiteStore, clock: FakeClock) -> None:
    chat = MemoryChannel("chat")
    engine = make_engine(db, clock, [chat], NOW_CFG)
    chat.failures = outage(1, 429, retry_after=120)
    engine.router.fire(make_alert("deadline", clock.now(), phase="phase4", **RUN))
    engine.router.fire(make_alert("deadline", clock.now(), phase="phase5", **RUN))
    engine.tick(clock.now())
    assert chat.sent == []
    row = engine.outbox.rows(PENDING)[0]
    assert row.next_attempt_at - clock.now() == timedelta(seconds=120)
    clock.advance(119)
    engine.tick(clock.now())
    assert chat.sent == []  # the other alert waits too: the channel asked for a pause
    clock.advance(1)
    engine.tick(clock.now())
    assert len(chat.sent) == 2


def test_client_errors_are_never_retried(db: SQLiteStore, clock: FakeClock) -> None:
    chat = MemoryChannel("chat")
    engine = make_engine(db, clock, [chat], NOW_CFG)
    chat.failures = outage(1, 400)
    engine.router.fire(make_alert("deadline", clock.now(), phase="phase4", **RUN))
    engine.router.fire(make_alert("deadline", clock.now(), phase="phase5", **RUN))
    result = engine.tick(clock.now())
    assert (result.delivered, result.failed, result.retried) == (1, 1, 0)
    assert [r.status for r in engine.outbox.rows()] == [DEAD, DELIVERED]
    assert engine.outbox.stats(clock.now() - timedelta(hours=1)).dead_since == 1


def test_give_up_after_the_deadline(db: SQLiteStore, clock: FakeClock) -> None:
    chat = MemoryChannel("chat")
    engine = make_engine(db, clock, [chat], {**NOW_CFG, "delivery": {"give_up_after_s": 600,
                                                                      "max_backoff_s": 60}})
    chat.failures = outage(1000)
    engine.router.fire(make_alert("deadline", clock.now(), phase="phase4", **RUN))
    for _ in range(40):
        engine.tick(clock.now())
        clock.advance(30)
    [row] = engine.outbox.rows()
    assert row.status == DEAD and row.attempts > 3


def test_undelivered_outbox_is_delivered_after_restart(tmp_path: Path, clock: FakeClock) -> None:
    path = tmp_path / "pw.db"
    store = SQLiteStore(path)
    down = MemoryChannel("chat")
    down.failures = outage(3)
    engine = make_engine(store, clock, [down], NOW_CFG)
    for phase in ("phase3", "phase4", "phase5"):
        engine.router.fire(make_alert("deadline", clock.now(), phase=phase, **RUN))
    engine.tick(clock.now())  # queued; the first attempt fails; the process dies
    assert down.sent == [] and len(engine.outbox.rows(PENDING)) == 3
    engine.close()
    store.close()

    store = SQLiteStore(path)
    up = MemoryChannel("chat")
    engine = make_engine(store, clock, [up], NOW_CFG)
    for _ in range(20):
        clock.advance(30)
        engine.tick(clock.now())
    assert sorted(n.alert.labels["phase"] for n in up.sent) == ["phase3", "phase4", "phase5"]
    assert engine.outbox.rows(PENDING) == []
    store.close()


def test_pacing_spreads_a_burst(db: SQLiteStore, clock: FakeClock) -> None:
    chat = MemoryChannel("chat")
    engine = make_engine(db, clock, [chat], NOW_CFG)
    engine.outbox.rates["chat"] = TokenBucket(rate_per_s=1.0, burst=3)
    for i in range(10):
        engine.router.fire(make_alert("deadline", clock.now(), phase=f"p{i}", **RUN))
    engine.tick(clock.now())
    assert len(chat.sent) == 3
    clock.advance(4)
    engine.tick(clock.now())
    assert len(chat.sent) == 6
    clock.advance(30)
    engine.tick(clock.now())
    assert len(chat.sent) == 9  # the bucket holds at most 3


@given(attempt=st.integers(1, 60), elapsed=st.floats(0, 86_000), retry_after=st.one_of(
    st.none(), st.floats(0, 10_000)))
def test_retry_policy_bounds(attempt: int, elapsed: float, retry_after: float | None) -> None:
    cfg = DeliveryConfig(initial_backoff_s=2, max_backoff_s=300, give_up_after_s=86_400)
    policy = RetryPolicy(cfg)
    error = DeliveryError("c", "x", retryable=True, retry_after_s=retry_after)
    delay = policy.next_delay(error, attempt, elapsed)
    assert delay is not None
    if retry_after is None:
        assert 0 <= delay <= min(300, 2 * 2 ** (attempt - 1))  # capped full jitter
    else:
        assert delay == min(retry_after, cfg.retry_after_cap_s)
    assert policy.next_delay(error, attempt, 86_400) is None
    assert policy.next_delay(DeliveryError("c", "x", retryable=False), attempt, elapsed) is None
