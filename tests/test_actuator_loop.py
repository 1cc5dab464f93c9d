"""First trigger attempts on an attached event loop: what goes there, what must not, shutdown.

The loop is driven by hand (``run_until_complete``) or run in a thread, so the order of the
decision, the send and the detach is the test's, not the scheduler's.
"""

from __future__ import annotations

import asyncio
import logging
import threading
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from datetime import datetime
from typing import Any

import pytest

from monitor.actuator.config import ServiceConfig
from monitor.actuator.engine import Actuator
from monitor.actuator.gates.base import Endpoint, HealthResult
from monitor.actuator.sinks import SinkResult
from monitor.actuator.sinks.base import Target, TriggerRequest
from tests.actuator_support import PHASE3_OVERNIGHT, Rig, rig


class TwoWaySink:
    """Accepts every request and says which way it was sent: ``send`` or ``send_async``."""

    def __init__(self) -> None:
        self.ways: list[str] = []

    def send(self, target: Target, request: TriggerRequest) -> SinkResult:
        self.ways.append("send")
        return SinkResult("accepted")

    async def send_async(self, target: Target, request: TriggerRequest) -> SinkResult:
        self.ways.append("send_async")
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
        yield r, actuator, sink, probe


def final_completion(r: Rig) -> None:
    """The last phase3 completion: the grading trigger is decided."""
    r.ingest("phase3", "succeeded", PHASE3_OVERNIGHT[-1])


def grading_row(actuator: Actuator) -> Any:
    (row,) = [t for t in actuator.store.triggers() if t.phase == "grading"]
    return row


def test_a_probe_that_aged_out_before_the_send_ran_is_not_probed_on_the_loop() -> None:
    """Decided with a fresh probe; the loop reaches the send after ``max_age_s``: the gate
    must probe, and a probe blocks for up to its timeout, so not on the loop."""
    with background_rig() as (r, actuator, sink, probe):
        loop = asyncio.new_event_loop()
        try:
            actuator.attach_loop(loop)
            final_completion(r)  # queued on the loop, which is not running yet
            r.clock.advance(actuator.ctx.acfg.health.max_age_s + 1)
            loop.run_until_complete(actuator.detach_loop())  # runs the queued send
        finally:
            loop.close()
        assert actuator.wait_idle(10)
        assert probe.on_loop and not any(probe.on_loop)
        assert sink.ways == ["send"]
        assert (grading_row(actuator).state, grading_row(actuator).attempts) == ("succeeded", 1)


def test_a_failure_escaping_a_send_on_the_loop_is_logged(caplog: pytest.LogCaptureFixture,
                                                         monkeypatch: pytest.MonkeyPatch) -> None:
    """The worker path logs what escapes a delivery (``dispatch_failed``); the loop path too."""
    with background_rig() as (r, actuator, sink, _):
        def store_down(*args: Any, **kwargs: Any) -> bool:
            raise RuntimeError("database is locked")

        loop = asyncio.new_event_loop()
        try:
            actuator.attach_loop(loop)
            final_completion(r)
            monkeypatch.setattr(actuator.store, "update_trigger", store_down)
            with caplog.at_level(logging.ERROR, logger="monitor.actuator"):
                loop.run_until_complete(actuator.detach_loop())
        finally:
            loop.close()
        assert sink.ways == ["send_async"]
        assert actuator.wait_idle(10)
        assert any("dispatch_failed" in rec.getMessage() for rec in caplog.records
                   if rec.name == "monitor.actuator.engine"), caplog.text


def test_a_closed_loop_sends_on_a_worker_without_a_stray_coroutine() -> None:
    with background_rig() as (r, actuator, sink, _):
        loop = asyncio.new_event_loop()
        actuator.attach_loop(loop)
        loop.close()  # the server stopped without its lifespan's shutdown
        final_completion(r)
        assert actuator.wait_idle(10)
        assert sink.ways == ["send"]
        assert grading_row(actuator).state == "succeeded"


def test_a_send_cancelled_before_it_started_is_not_counted_as_running() -> None:
    """``asyncio.run`` cancels the tasks left at its end, some before their first step:
    ``wait_idle`` must not wait for them forever."""
    with background_rig() as (r, actuator, sink, _):
        loop = asyncio.new_event_loop()

        async def cancel_the_others() -> None:  # as asyncio.run's teardown does
            others = [t for t in asyncio.all_tasks() if t is not asyncio.current_task()]
            for task in others:
                task.cancel()
            await asyncio.gather(*others, return_exceptions=True)

        try:
            actuator.attach_loop(loop)
            final_completion(r)
            loop.run_until_complete(cancel_the_others())
        finally:
            loop.close()
        assert actuator.wait_idle(1)
        assert sink.ways == []
        assert grading_row(actuator).state == "sending"  # its claim is released on the next start


def test_a_decision_racing_detach_is_sent_on_a_worker_not_on_the_detached_loop(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """A tick thread that read the loop just before ``detach_loop`` must not hand it a send
    that detach neither waits for nor closes the client of."""
    with background_rig() as (r, actuator, sink, _):
        loop = asyncio.new_event_loop()
        runner = threading.Thread(target=loop.run_forever, daemon=True)
        runner.start()
        deciding, detached = threading.Event(), threading.Event()
        answers_now = actuator.delivery.answers_now

        def slow_answer(row: Any, now: datetime) -> bool:
            deciding.set()
            assert detached.wait(10)
            return answers_now(row, now)

        monkeypatch.setattr(actuator.delivery, "answers_now", slow_answer)
        try:
            actuator.attach_loop(loop)
            decider = threading.Thread(target=final_completion, args=(r,))
            decider.start()
            assert deciding.wait(10)
            asyncio.run_coroutine_threadsafe(actuator.detach_loop(), loop).result(10)
            detached.set()
            decider.join(10)
            assert actuator.wait_idle(10)
        finally:
            loop.call_soon_threadsafe(loop.stop)
            runner.join(10)
            loop.close()
        assert sink.ways == ["send"]
        assert grading_row(actuator).state == "succeeded"
