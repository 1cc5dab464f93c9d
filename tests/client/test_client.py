"""phasewatch_client's event client against a real local HTTP server (no real sleeping)."""

from __future__ import annotations

import json
import logging
import sys
from collections.abc import Callable, Iterator
from datetime import date, datetime
from typing import Any

import httpx
import pytest
from phasewatch_client import ClientStats, EventError, FakeClock, PhasewatchClient

from tests.client.local_phasewatch import LocalPhasewatch

RUN_DATE = "2026-01-17"


MakeClient = Callable[..., PhasewatchClient]


@pytest.fixture
def make_client(clock: FakeClock, sleeps: list[float]) -> Iterator[MakeClient]:
    clients: list[PhasewatchClient] = []

    def make(url: str, **options: Any) -> PhasewatchClient:
        options.setdefault("sleep", sleeps.append)
        client = PhasewatchClient(url, pipeline="nba", clock=clock, **options)
        clients.append(client)
        return client

    yield make
    for client in clients:
        client.close()


def client_logs(caplog: pytest.LogCaptureFixture, level: int) -> list[str]:
    return [
        r.getMessage() for r in caplog.records if r.name == "phasewatch_client.client" and r.levelno == level
    ]


# --- track -------------------------------------------------------------------------


def test_track_reports_started_then_succeeded_with_duration_and_records(
    server: LocalPhasewatch, make_client: MakeClient, clock: FakeClock
) -> None:
    client = make_client(server.url)
    started_at = clock.now()
    with client.track("phase2", "PlayerGameSummaryProcessor", run_date=RUN_DATE,
                      mode="overnight", attributes={"host": "job-1"}) as run:
        clock.advance(12.5)
        run.records = 240
        run.expected_records = 250

    started, succeeded = server.events
    assert (started["status"], succeeded["status"]) == ("started", "succeeded")
    assert datetime.fromisoformat(started["timestamp"]) == started_at
    assert succeeded["duration_s"] == 12.5
    assert (succeeded["records"], succeeded["expected_records"]) == (240, 250)
    assert succeeded["processor"] == "PlayerGameSummaryProcessor"
    assert succeeded["run_date"] == RUN_DATE and succeeded["mode"] == "overnight"
    assert succeeded["attributes"] == {"host": "job-1"}
    assert started["event_id"] != succeeded["event_id"]
    assert client.stats == ClientStats(delivered=2, duplicates=0, pending=0, dropped=0, rejected=0)


def test_track_reports_failed_and_reraises_the_processors_own_exception(
    server: LocalPhasewatch, make_client: MakeClient, clock: FakeClock
) -> None:
    client = make_client(server.url)
    original = RuntimeError("boom " + "x" * 3000)
    with pytest.raises(RuntimeError) as raised, client.track("phase3", run_date=date(2026, 1, 17)):
        clock.advance(3)
        raise original

    assert raised.value is original
    failed = server.events[-1]
    assert failed["status"] == "failed" and failed["duration_s"] == 3.0
    assert failed["error"].startswith("RuntimeError: boom xxx")
    assert len(failed["error"]) == 2000
    assert "processor" not in failed  # a phase-level event


def test_track_clean_system_exit_counts_as_success(
    server: LocalPhasewatch, make_client: MakeClient
) -> None:
    client = make_client(server.url)
    with pytest.raises(SystemExit), client.track("phase2", "P", run_date=RUN_DATE):
        sys.exit(0)
    assert [e["status"] for e in server.events] == ["started", "succeeded"]


def test_track_as_decorator_reports_each_call(
    server: LocalPhasewatch, make_client: MakeClient, clock: FakeClock
) -> None:
    client = make_client(server.url)

    @client.track("phase4", "MLFeatureStoreProcessor", run_date=RUN_DATE)
    def build(n: int) -> int:
        clock.advance(1)
        return n * 2

    assert build(2) == 4
    assert build(3) == 6
    assert [e["status"] for e in server.events] == ["started", "succeeded"] * 2
    assert [e["duration_s"] for e in server.events if e["status"] == "succeeded"] == [1.0, 1.0]
    assert len({e["event_id"] for e in server.events}) == 4


def test_progress_is_reported_and_checked(server: LocalPhasewatch, make_client: MakeClient) -> None:
    client = make_client(server.url)
    with pytest.raises(EventError), client.track("phase2", "P", run_date=RUN_DATE) as run:
        run.progress(500, 1000, batch_id="b-1")
        run.progress(5, 3)  # the body's own mistake: raised where it was made

    progress = server.events[1]
    assert (progress["status"], progress["done"], progress["total"]) == ("progress", 500, 1000)
    assert progress["batch_id"] == "b-1"
    assert server.events[-1]["status"] == "failed"
    assert "done: must not exceed total (3) (got 5)" in server.events[-1]["error"]


def test_handle_refuses_negative_records(server: LocalPhasewatch, make_client: MakeClient) -> None:
    client = make_client(server.url)
    with pytest.raises(ValueError, match="records must be an integer >= 0"), client.track(
        "phase2", "P", run_date=RUN_DATE
    ) as run:
        run.records = -1


def test_emit_validates_locally_and_names_the_field(
    server: LocalPhasewatch, make_client: MakeClient
) -> None:
    client = make_client(server.url)
    with pytest.raises(EventError, match="run_date"):
        client.emit("phase2", "started", run_date="2026-02-30")
    with pytest.raises(EventError, match="timestamp: Input should have timezone info"):
        client.emit("phase2", "started", run_date=RUN_DATE, timestamp=datetime(2026, 1, 18, 9))
    assert server.requests == [] and client.stats.pending == 0


# --- outages -------------------------------------------------------------------------


def test_unreachable_phasewatch_never_breaks_the_processor_and_warns_once(
    down: LocalPhasewatch, make_client: MakeClient, sleeps: list[float],
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.DEBUG, logger="phasewatch_client.client")
    client = make_client(down.url)
    with client.track("phase2", "P", run_date=RUN_DATE) as run:
        run.progress(1, 2)
        run.records = 2
    assert client.stats.pending == 3

    assert client.flush() == 3  # still down: bounded retries, nothing raised
    assert len(sleeps) == 4 and all(0 <= s <= 30.0 for s in sleeps)
    warnings = client_logs(caplog, logging.WARNING)
    assert len(warnings) == 1 and "event=client.unreachable" in warnings[0]

    down.start()
    assert client.flush() == 0
    assert [e["status"] for e in down.events] == ["started", "progress", "succeeded"]
    assert any("event=client.recovered" in m for m in client_logs(caplog, logging.INFO))
    assert len(client_logs(caplog, logging.WARNING)) == 1


def test_during_an_outage_emits_buffer_until_the_hold_off_passes(
    server: LocalPhasewatch, make_client: MakeClient, clock: FakeClock,
    caplog: pytest.LogCaptureFixture,
) -> None:
    server.behaviour.fail_next = 100
    client = make_client(server.url, backoff_s=0.5)
    for done in range(5):
        client.emit("phase2", "progress", run_date=RUN_DATE, done=done)
    assert len(server.requests) == 1  # one attempt, then hold off

    clock.advance(0.5)
    client.emit("phase2", "progress", run_date=RUN_DATE, done=5)
    assert len(server.requests) == 2

    server.behaviour.fail_next = 0
    clock.advance(1.0)  # the hold-off doubled
    client.emit("phase2", "progress", run_date=RUN_DATE, done=6)
    assert len(server.requests) == 3
    assert [e["done"] for e in server.events] == list(range(7))  # in order, one batch
    assert len(client_logs(caplog, logging.WARNING)) == 1


def test_flush_retries_5xx_with_capped_full_jitter(
    server: LocalPhasewatch, make_client: MakeClient, sleeps: list[float]
) -> None:
    server.behaviour.fail_next = 100
    client = make_client(server.url, backoff_s=1.0, max_backoff_s=4.0, max_attempts=10)
    client.emit("phase2", "started", run_date=RUN_DATE)
    assert client.flush() == 1
    assert len(sleeps) == 9
    assert all(0 <= s <= min(4.0, 2.0**i) for i, s in enumerate(sleeps))

    server.behaviour.fail_next = 2
    assert client.flush() == 0
    assert len(sleeps) == 11 and len(server.events) == 1


def test_retry_after_is_honoured_up_to_the_cap(
    server: LocalPhasewatch, make_client: MakeClient, sleeps: list[float]
) -> None:
    server.behaviour.fail_status, server.behaviour.retry_after = 429, "3"
    server.behaviour.fail_next = 2
    client = make_client(server.url, backoff_s=0.1, max_backoff_s=10.0)
    client.emit("phase2", "started", run_date=RUN_DATE)
    assert client.flush() == 0
    assert len(sleeps) == 1 and 3.0 <= sleeps[0] <= 10.0


def test_without_a_sleep_the_clock_sleeps(down: LocalPhasewatch, clock: FakeClock) -> None:
    client = PhasewatchClient(down.url, pipeline="nba", clock=clock, max_attempts=3, max_backoff_s=4.0)
    client.emit("phase2", "started", run_date=RUN_DATE)
    before = clock.monotonic()
    assert client.flush() == 1
    assert 0 < clock.monotonic() - before <= 8.0  # two waits on the fake clock, none in real time
    client.close()


def test_close_is_bounded_by_flush_timeout(
    server: LocalPhasewatch, make_client: MakeClient, clock: FakeClock,
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.INFO, logger="phasewatch_client.client")
    server.behaviour.fail_next = 10_000
    client = make_client(
        server.url, sleep=clock.sleep, max_attempts=500, flush_timeout_s=10.0, max_backoff_s=4.0
    )
    client.emit("phase2", "started", run_date=RUN_DATE)
    before = clock.monotonic()
    client.close()
    assert 0 < clock.monotonic() - before <= 10.0
    assert len(server.requests) < 400  # the deadline stopped it, not max_attempts
    assert any("event=client.closed" in m and "undelivered=1" in m
               for m in client_logs(caplog, logging.INFO))
    client.close()  # idempotent
    with pytest.raises(RuntimeError, match="closed"):
        client.emit("phase2", "succeeded", run_date=RUN_DATE)


def test_full_buffer_drops_the_oldest_and_counts(
    down: LocalPhasewatch, make_client: MakeClient
) -> None:
    client = make_client(down.url, max_buffer=3)
    for done in range(5):
        client.emit("phase2", "progress", run_date=RUN_DATE, done=done)
    assert (client.stats.pending, client.stats.dropped) == (3, 2)

    down.start()
    assert client.flush() == 0
    assert [e["done"] for e in down.events] == [2, 3, 4]


# --- rejections ----------------------------------------------------------------------


def test_4xx_drops_the_batch_and_is_logged_once(
    server: LocalPhasewatch, make_client: MakeClient, sleeps: list[float],
    caplog: pytest.LogCaptureFixture,
) -> None:
    server.behaviour.reject_status = 400
    client = make_client(server.url)
    client.emit("phase9", "started", run_date=RUN_DATE)
    client.emit("phase9", "succeeded", run_date=RUN_DATE)

    assert len(server.requests) == 2 and sleeps == []  # never retried
    assert client.stats == ClientStats(delivered=0, duplicates=0, pending=0, dropped=0, rejected=2)
    errors = client_logs(caplog, logging.ERROR)
    assert len(errors) == 1
    assert "event=client.rejected" in errors[0] and "status=400" in errors[0]
    assert "phase: unknown phase; allowed: phase2" in errors[0]
    assert client_logs(caplog, logging.WARNING) == []


def test_a_rejected_batch_is_resent_one_by_one_so_good_events_survive(
    down: LocalPhasewatch, make_client: MakeClient
) -> None:
    client = make_client(down.url)
    for phase in ("phase2", "phase9", "phase3"):
        client.emit(phase, "started", run_date=RUN_DATE)
    down.behaviour.reject_status, down.behaviour.reject_phase = 422, "phase9"
    down.start()

    assert client.flush() == 0
    assert [e["phase"] for e in down.events] == ["phase2", "phase3"]
    assert (client.stats.delivered, client.stats.rejected) == (2, 1)


# --- auth and transport --------------------------------------------------------------


def test_token_is_sent_as_bearer_and_never_logged(
    server: LocalPhasewatch, make_client: MakeClient, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)
    server.behaviour.fail_next = 1
    client = make_client(server.url, token="s3cret-token")
    client.emit("phase2", "started", run_date=RUN_DATE)
    client.flush()

    assert server.requests[-1].headers["Authorization"] == "Bearer s3cret-token"
    assert "s3cret" not in repr(client)
    assert all("s3cret" not in r.getMessage() for r in caplog.records)


def test_no_token_no_authorization_header(server: LocalPhasewatch, make_client: MakeClient) -> None:
    make_client(server.url).emit("phase2", "started", run_date=RUN_DATE)
    assert "Authorization" not in server.requests[0].headers


def test_transport_can_be_injected(make_client: MakeClient) -> None:
    bodies: list[Any] = []

    def handler(request: httpx.Request) -> httpx.Response:
        bodies.append(json.loads(request.content))
        return httpx.Response(202, json={"accepted": 1, "duplicates": 0})

    client = make_client("http://phasewatch.test", transport=httpx.MockTransport(handler))
    event = client.emit("phase2", "skipped", run_date=RUN_DATE, event_id="e-1")
    assert bodies == [[event.as_dict()]]
    assert bodies[0][0]["event_id"] == "e-1"
