"""phasewatch_client.retry: the shared strategies, slept on by tenacity or scheduled on a clock."""

from __future__ import annotations

import random
from datetime import UTC, datetime, timedelta

import pytest
import tenacity
from hypothesis import given
from hypothesis import strategies as st
from phasewatch_client import DeliveryError, FakeClock
from phasewatch_client.retry import (
    RetrySchedule,
    call_state,
    delay,
    jittered,
    parse_retry_after,
    stop_at,
    stop_if_retry_after_over,
    wait_before,
    wait_full_jitter,
    wait_retry_after,
)
from tenacity import retry_if_exception, stop_after_attempt, wait_exponential, wait_fixed


@given(attempt=st.integers(1, 80), seed=st.integers(0, 2**32))
def test_full_jitter_is_capped_and_reproducible_from_its_generator(attempt: int, seed: int) -> None:
    wait = wait_full_jitter(2.0, 300.0, random.Random(seed))
    again = wait_full_jitter(2.0, 300.0, random.Random(seed))
    seconds = delay(wait, attempt).total_seconds()
    assert 0 <= seconds <= min(300.0, 2.0 * 2 ** (attempt - 1))
    assert delay(again, attempt).total_seconds() == seconds


def test_jittered_stays_within_its_ratio() -> None:
    wait = jittered(300.0, 0.2, random.Random(3))
    seen = [delay(wait, 1) for _ in range(200)]
    assert all(timedelta(seconds=240) <= s <= timedelta(seconds=360) for s in seen)
    assert len(set(seen)) > 100


@pytest.mark.parametrize(("hint", "at_least", "expected"), [
    (None, False, 4.0), (None, True, 4.0),
    (10.0, False, 10.0), (10.0, True, 10.0),
    (1.0, False, 1.0), (1.0, True, 4.0),  # a floor under the backoff, or a replacement of it
    (99.0, False, 30.0), (-5.0, False, 0.0),
])
def test_retry_after_replaces_or_lengthens_the_wait(hint: float | None, at_least: bool, expected: float) -> None:
    wait = wait_retry_after(wait_fixed(4), cap_s=30.0, at_least_fallback=at_least)
    state = call_state(1, DeliveryError("busy", status_code=429, retry_after_s=hint))
    assert wait(state) == expected


def test_schedule_retries_what_can_succeed_until_it_stops() -> None:
    schedule = RetrySchedule(
        wait_retry_after(wait_exponential(multiplier=1, max=8)),
        stop=stop_after_attempt(4),
        retry=retry_if_exception(lambda e: isinstance(e, DeliveryError) and e.retryable),
    )
    down = DeliveryError("HTTP 503")
    assert [schedule.next_delay(down, n) for n in (1, 2, 3, 4, 5)] == [1, 2, 4, None, None]
    assert schedule.next_delay(DeliveryError("HTTP 400", retryable=False), 1) is None
    assert schedule.next_delay(DeliveryError("HTTP 429", retry_after_s=7), 2) == 7


def test_an_in_process_loop_sleeps_on_the_injected_clock() -> None:
    clock = FakeClock(datetime(2026, 1, 17, tzinfo=UTC))
    deadline = clock.monotonic() + 10
    calls: list[float] = []

    def always_down() -> None:
        calls.append(clock.monotonic())
        raise DeliveryError("HTTP 503", retry_after_s=4)

    retrying = tenacity.Retrying(
        wait=wait_before(wait_retry_after(wait_fixed(1), at_least_fallback=True), deadline, clock.monotonic),
        stop=stop_at(deadline, clock.monotonic), sleep=clock.sleep, reraise=True,
    )
    with pytest.raises(DeliveryError):
        retrying(always_down)
    assert calls == [0, 4, 8, 10]  # the last wait is cut at the deadline


def test_a_long_retry_after_ends_the_retries() -> None:
    stop = stop_if_retry_after_over(30.0)
    assert stop(call_state(1, DeliveryError("busy", retry_after_s=3600)))
    assert not stop(call_state(1, DeliveryError("busy", retry_after_s=3)))
    assert not stop(call_state(1, DeliveryError("down")))


@pytest.mark.parametrize(("header", "seconds"), [
    ("3", 3.0), ("1.5", 1.5), ("-2", 0.0), (None, None), ("", None),
    ("Wed, 21 Oct 2026 07:28:00 GMT", None),
])
def test_parse_retry_after(header: str | None, seconds: float | None) -> None:
    assert parse_retry_after(header) == seconds
