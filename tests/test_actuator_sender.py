"""First trigger attempts on the sender thread (monitor/actuator/sender.py): off the ingest
thread, outcomes written in batches, exactly once across a crash between the target's
answer and its record, probes never on the sender's loop, shutdown.
"""

from __future__ import annotations

import asyncio
import json
import logging
import threading
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
import pytest
import yaml

from monitor.actuator.config import ServiceConfig
from monitor.actuator.delivery import Outcome
from monitor.actuator.engine import Actuator
from monitor.actuator.gates.base import Endpoint, HealthResult
from monitor.actuator.sinks import MemorySink, SinkResult
from monitor.actuator.sinks.base import Target, TriggerRequest
from monitor.actuator.store import AuditEntry, TriggerUpdate
from monitor.app.http.server import create_app, serving
from monitor.app.phasewatch import Phasewatch
from monitor.clock import FakeClock, SystemClock
from monitor.config import parse_config
from monitor.events import Event
from tests.actuator_support import PHASE3_OVERNIGHT, Rig, http_peer, json_answer, rig
from tests.test_actuator_live import KEY, config_text, health_or, phase3, triggers_of


class TwoWaySink:
    """Accepts every request, saying which way it was sent (``send`` or ``send_async``) and
    from which thread; ``hold`` keeps async answers back until that many are in flight."""

    def __init__(self, hold: int = 0) -> None:
        self.ways: list[str] = []
        self.threads: list[str] = []
        self.hold = hold
        self._in_flight = 0
        self._all_in: asyncio.Event | None = None

    def send(self, target: Target, request: TriggerRequest) -> SinkResult:
        self.ways.append("send")
        self.threads.append(threading.current_thread().name)
        return SinkResult("accepted")

    async def send_async(self, target: Target, request: TriggerRequest) -> SinkResult:
        self.ways.append("send_async")
        self.threads.append(threading.current_thread().name)
        if self.hold:
            if self._all_in is None:
                self._all_in = asyncio.Event()
            self._in_flight += 1
            if self._in_flight == self.hold:
                self._all_in.set()
            await asyncio.wait_for(self._all_in.wait(), 10)
        return SinkResult("accepted")

    def close(self) -> None:
        pass


class LoopAwareProbe:
    """Passes every probe, remembering whether each ran on a running event loop."""

    def __init__(self) -> None:
        self.on_loop: list[bool] = []

    def probe(self, service: str, config: ServiceConfig, endpoints: Sequence[Endpoint],
              at: datetime) -> HealthResult:
        try:
            asyncio.get_running_loop()
            self.on_loop.append(True)
        except RuntimeError:
            self.on_loop.append(False)
        return HealthResult(service, "pass", "ok", at, 200)


@contextmanager
def background_rig() -> Iterator[tuple[Rig, Actuator, TwoWaySink, LoopAwareProbe]]:
    """A rig whose actuator dispatches as ``serve`` does, with health known from a probe round."""
    with rig() as r:
        actuator = r.pw.actuator
        assert actuator is not None
        sink, probe = TwoWaySink(), LoopAwareProbe()
        for kind in actuator.ctx.sinks:
            actuator.ctx.sinks[kind] = sink
        actuator.ctx.health.probe = probe
        actuator.background = True
        r.complete("phase3", PHASE3_OVERNIGHT[:-1])  # phase4 goes (critical + fraction), not grading
        actuator.health_job(r.clock.now())  # every service probed just now: gates answer from memory
        assert actuator.wait_idle(10)
        probe.on_loop.clear()
        sink.ways.clear()
        sink.threads.clear()
        yield r, actuator, sink, probe


def final_completion(r: Rig) -> None:
    """The last phase3 completion: the grading trigger is decided."""
    r.ingest("phase3", "succeeded", PHASE3_OVERNIGHT[-1])


def grading_row(actuator: Actuator) -> Any:
    (row,) = [t for t in actuator.store.triggers() if t.phase == "grading"]
    return row


def audited_on(actuator: Actuator) -> list[tuple[str, list[AuditEntry]]]:
    """Each committed write of audit lines from now on: (thread, its lines)."""
    writes: list[tuple[str, list[AuditEntry]]] = []
    told = actuator.store._on_audit
    assert told is not None

    def record(entries: Sequence[AuditEntry]) -> None:
        writes.append((threading.current_thread().name, list(entries)))
        told(entries)

    actuator.store._on_audit = record
    return writes


def test_the_ingest_thread_writes_the_decision_and_the_sender_sends_and_records(
        tmp_path: Path) -> None:
    """In serve, ingest runs on the server's loop: it writes the decision and nothing else
    of the trigger; the send and its success happen on other threads (before, the send and
    its success transaction ran on the ingest loop, behind and between the requests)."""
    with http_peer(health_or(lambda r: json_answer(202, {"ok": True}))) as peer:
        config = parse_config(config_text(peer.url), "live.yaml")
        pw = Phasewatch.build(config, db_path=tmp_path / "pw.db", clock=SystemClock())
        try:
            assert pw.actuator is not None
            pw.actuator.health_job(pw.clock.now())  # health known: the gates answer from memory
            writes = audited_on(pw.actuator)
            with serving(create_app(pw, None)) as url, httpx.Client(base_url=url) as client:
                assert client.post("/v1/events", json=phase3()).status_code == 202
                assert pw.actuator.wait_idle(30)
            (sent,) = triggers_of(peer)
            assert sent.headers["idempotency-key"] == KEY
            lines = [(thread, e.kind, e.outcome) for thread, entries in writes for e in entries
                     if e.phase == "phase4" and e.outcome in ("taken", "succeeded")]
            assert lines == [("phasewatch-serving", "decision", "taken"),
                             ("actuator-recorder", "trigger", "succeeded")]
        finally:
            pw.close()


BURST = {"version": 1, "pipelines": [{
    "id": "p", "timezone": "UTC", "horizon": {"run_dates": {"overnight": "any"}},
    "phases": [{"id": "s0", "processors": [{"name": "w0"}]},
               {"id": "s1", "processors": [{"name": "w1"}],
                "triggers": [{"kind": "http", "url": "http://127.0.0.1:9/t"}]}]}]}


def completions(n: int, at: datetime) -> list[Event]:
    """The s0 completions of ``n`` runs: each makes its run's s1 due."""
    return [Event.model_validate_json(json.dumps({
        "event_id": f"c{i}", "pipeline": "p", "run_date": (at.date() - timedelta(days=i)).isoformat(),
        "mode": "overnight", "phase": "s0", "processor": "w0", "status": "succeeded",
        "timestamp": at.isoformat()})) for i in range(n)]


def burst_phasewatch(sink: Any, db: str | Path = ":memory:") -> Phasewatch:
    clock = FakeClock(datetime(2026, 1, 18, 6, tzinfo=UTC))
    pw = Phasewatch.build(parse_config(yaml.safe_dump(BURST), "burst.yaml"), db_path=db,
                          clock=clock, sinks={"http": sink})
    assert pw.actuator is not None
    pw.actuator.background = True
    return pw


def test_answers_that_arrive_together_are_recorded_in_one_transaction(db: str) -> None:
    """A burst of 20 triggers answered at once: 20 decisions (on the deciding thread), one
    write of their 20 successes (it was one transaction per trigger)."""
    sink = TwoWaySink(hold=20)
    pw = burst_phasewatch(sink, db)
    try:
        assert pw.actuator is not None
        writes = audited_on(pw.actuator)
        pw.collector.ingest(completions(20, pw.clock.now()))
        assert pw.actuator.wait_idle(30)
        successes = [[e for e in entries if e.kind == "trigger"] for _, entries in writes]
        assert [len(s) for s in successes if s] == [20]
        assert {e.outcome for s in successes for e in s} == {"succeeded"}
        rows = pw.actuator.store.triggers()
        assert [(r.state, r.attempts) for r in rows] == [("succeeded", 1)] * 20
        assert sink.ways == ["send_async"] * 20
    finally:
        pw.close()


def test_a_trigger_accepted_but_not_recorded_before_a_crash_is_sent_again_once(db: str) -> None:
    """The target accepted; the process died before the recorder wrote the success. The next
    start sends it again with the same idempotency key (the at-least-once edge the key is
    for) and records one success: one row, one success line in the audit."""
    first = MemorySink()
    pw = burst_phasewatch(first, db)
    try:
        assert pw.actuator is not None
        pw.actuator.delivery.record = lambda outcomes: None  # type: ignore[method-assign]  # dies here
        pw.collector.ingest(completions(1, pw.clock.now()))
        assert pw.actuator.wait_idle(30)
        (row,) = pw.actuator.store.triggers()
        assert (row.state, row.attempts) == ("sending", 0)
        now = pw.clock.now()
    finally:
        pw.close()
    assert [s.result.outcome for s in first.sent] == ["accepted"]
    second = MemorySink()
    clock = FakeClock(now + timedelta(seconds=30))
    pw = Phasewatch.build(parse_config(yaml.safe_dump(BURST), "burst.yaml"), db_path=db,
                          clock=clock, sinks={"http": second})
    try:
        assert pw.actuator is not None
        for _ in range(10):
            clock.advance(30)
            pw.tick()
        assert [s.request.idempotency_key for s in first.sent + second.sent] == [
            "p:2026-01-18:overnight:s1"] * 2
        assert [s.request.attempt for s in second.sent] == [1]  # the same attempt, resent
        (row,) = pw.actuator.store.triggers()
        assert (row.state, row.attempts) == ("succeeded", 1)
        lines = [a["outcome"] for a in pw.actuator.store.audit_rows(kinds=["trigger"])]
        assert lines == ["succeeded"]
    finally:
        pw.close()


def test_a_probe_that_aged_out_before_the_sender_ran_is_not_probed_on_its_loop(
        monkeypatch: pytest.MonkeyPatch) -> None:
    """Decided with a fresh probe; the sender reaches the row after ``max_age_s``: the gate
    must probe, and a probe blocks for up to its timeout, so not on the sender's loop."""
    with background_rig() as (r, actuator, sink, probe):
        late = iter([actuator.ctx.acfg.health.max_age_s + 1])

        def aged_on_the_sender() -> datetime:
            r.clock.advance(next(late, 0))  # the sender's first look: past the probe's age
            return r.clock.now()

        monkeypatch.setattr(actuator._sender, "_clock", aged_on_the_sender)
        final_completion(r)
        assert actuator.wait_idle(10)
        assert probe.on_loop and not any(probe.on_loop)
        assert sink.ways == ["send"]
        assert (grading_row(actuator).state, grading_row(actuator).attempts) == ("succeeded", 1)


def test_a_failure_to_record_is_logged_and_the_trigger_retried_later(
        caplog: pytest.LogCaptureFixture, monkeypatch: pytest.MonkeyPatch) -> None:
    with background_rig() as (r, actuator, sink, _):
        writes = actuator.store.update_triggers
        broken = iter([RuntimeError("database is locked")])

        def store_down(updates: Any) -> list[bool]:
            error = next(broken, None)
            if error is not None:
                raise error
            return writes(updates)

        monkeypatch.setattr(actuator.store, "update_triggers", store_down)
        with caplog.at_level(logging.ERROR, logger="monitor.actuator"):
            final_completion(r)
            assert actuator.wait_idle(10)
        assert sink.ways == ["send_async"]
        assert any("event=trigger.record_failed" in rec.getMessage() for rec in caplog.records)
        row = grading_row(actuator)
        assert (row.state, row.claim, row.last_error) == ("pending", None, "internal error (see log)")
        r.clock.advance(90)
        actuator.tick(r.clock.now())
        assert actuator.wait_idle(10)
        assert sink.ways == ["send_async", "send"]  # the retry, on a dispatch worker
        assert grading_row(actuator).state == "succeeded"


def test_a_decision_after_close_is_sent_by_a_worker() -> None:
    with background_rig() as (r, actuator, sink, _):
        actuator._sender.close()
        final_completion(r)
        assert actuator.wait_idle(10)
        assert sink.ways == ["send"]
        assert grading_row(actuator).state == "succeeded"


def test_a_decision_racing_close_is_sent_once(monkeypatch: pytest.MonkeyPatch) -> None:
    """A deciding thread that passed ``answers_now`` just before the sender closes: the row
    is sent by a worker, never dropped."""
    with background_rig() as (r, actuator, sink, _):
        deciding, closed = threading.Event(), threading.Event()
        answers_now = actuator.delivery.answers_now

        def slow_answer(row: Any, now: datetime) -> bool:
            if threading.current_thread().name == "decider":
                deciding.set()
                assert closed.wait(10)
            return answers_now(row, now)

        monkeypatch.setattr(actuator.delivery, "answers_now", slow_answer)
        decider = threading.Thread(target=final_completion, args=(r,), name="decider")
        decider.start()
        assert deciding.wait(10)
        actuator._sender.close()
        closed.set()
        decider.join(10)
        assert actuator.wait_idle(10)
        assert sink.ways == ["send"]
        assert (grading_row(actuator).state, grading_row(actuator).attempts) == ("succeeded", 1)


def test_a_send_cut_off_by_close_keeps_its_claim_and_is_not_counted_running() -> None:
    """Close waits (bounded) for the sends in flight; one still out is cancelled, counted
    done for ``wait_idle``, and keeps its claim for the next start."""
    with background_rig() as (r, actuator, sink, _):
        sink.hold = 2  # one send, never joined by a second: it waits until cut off
        final_completion(r)
        actuator._sender.close(timeout_s=0.2)
        assert actuator.wait_idle(1)
        assert sink.ways == ["send_async"]
        assert grading_row(actuator).state == "sending"  # released and resent on the next start


def test_a_failure_to_tell_one_outcome_does_not_silence_the_others(
        caplog: pytest.LogCaptureFixture) -> None:
    """Outcomes written together are told one by one (log, metrics, alerts): one that raises
    is logged, and the rest are still told."""
    with rig() as r:
        actuator = r.pw.actuator
        assert actuator is not None
        now = r.clock.now()
        rows = [actuator.store.decide(("nba", day, "overnight"), "phase4", reason="manual",
                                      rule=None, now=now, claim="me/1")
                for day in ("2026-01-16", "2026-01-17")]
        told: list[int] = []

        def broken() -> None:
            raise RuntimeError("router down")

        outcomes = [Outcome(TriggerUpdate(row.id, {"state": "succeeded", "claim": None},
                                          claim="me/1"), then)
                    for row, then in zip([r_ for r_ in rows if r_ is not None],
                                         [broken, lambda: told.append(2)], strict=True)]
        with caplog.at_level(logging.ERROR, logger="monitor.actuator"):
            actuator.delivery.record(outcomes)
        assert told == [2]
        assert [t.state for t in actuator.store.triggers()] == ["succeeded", "succeeded"]
        assert "event=trigger.tell_failed" in caplog.text
