"""First attempts of new triggers, sent and recorded on a thread of their own.

The deciding call (on the ingest thread, in ``serve`` the server's event loop) writes the
trigger *sending*, claimed by itself, in one short transaction and hands the row here. The
sender thread's event loop sends it (aiohttp); a recorder thread writes the outcomes, all
those that arrived while it wrote the previous ones in one transaction (a group commit).
A burst of completions costs the ingest thread one transaction per trigger, and a trigger
waits neither behind the requests queued on the ingest loop nor behind the bookkeeping of
the triggers before it (a transaction waits for the store's lock, which ingest holds often).

Exactly once holds as on every other path: a trigger is sent only after its row is
committed, and the row leaves *sending* only by the conditional update of its outcome. A
process that dies after the target accepted but before that update leaves the row sending
with its claim; the next start releases it and sends it again with the same idempotency
key (the at-least-once edge the key is for), and records it once.
"""

from __future__ import annotations

import asyncio
import logging
import queue
import threading
from collections.abc import Callable
from datetime import datetime

from monitor.actuator.delivery import Delivery, Outcome, send_all_async
from monitor.actuator.store import TriggerRow

log = logging.getLogger(__name__)


class Sender:
    """A thread with an event loop that sends first attempts, and one that records them.

    Started by the first ``submit``; ``done`` is called once per submitted row when its
    attempt is over (recorded, settled before the send, or cut off by ``close``).
    """

    def __init__(self, delivery: Delivery, clock: Callable[[], datetime],
                 done: Callable[[], None]) -> None:
        self._delivery = delivery
        self._clock = clock
        self._done = done
        self._lock = threading.Lock()
        self._loop: asyncio.AbstractEventLoop | None = None
        self._threads: list[threading.Thread] = []
        self._closed = False
        self._inbox: list[tuple[TriggerRow, str]] = []  # submitted, not started yet
        self._tasks: set[asyncio.Task[bool]] = set()  # touched on the sender's loop only
        self._outcomes: queue.SimpleQueue[Outcome | None] = queue.SimpleQueue()  # None: stop

    def submit(self, row: TriggerRow, token: str) -> bool:
        """Send the first attempt of ``row`` (claimed with ``token``) soon; False once closed
        (the caller delivers it another way)."""
        with self._lock:  # close() takes it too: a row handed over is one close waits for
            if self._closed:
                return False
            self._inbox.append((row, token))
            if len(self._inbox) == 1:  # one wake-up (a write to the loop's pipe) per batch
                self._running().call_soon_threadsafe(self._start)
        return True

    def _running(self) -> asyncio.AbstractEventLoop:
        if self._loop is None:
            loop = asyncio.new_event_loop()
            ready = threading.Event()
            self._threads = [
                threading.Thread(target=self._run, args=(loop, ready), name="actuator-sender",
                                 daemon=True),
                threading.Thread(target=self._record_all, name="actuator-recorder", daemon=True),
            ]
            for thread in self._threads:
                thread.start()
            ready.wait()
            self._loop = loop
        return self._loop

    @staticmethod
    def _run(loop: asyncio.AbstractEventLoop, ready: threading.Event) -> None:
        asyncio.set_event_loop(loop)
        loop.call_soon(ready.set)
        loop.run_forever()

    def _start(self) -> None:
        with self._lock:
            rows, self._inbox = self._inbox, []
        loop = asyncio.get_running_loop()
        for row, token in rows:
            task = loop.create_task(self._attempt(row, token))
            self._tasks.add(task)
            task.add_done_callback(self._ended)

    def _ended(self, task: asyncio.Task[bool]) -> None:
        """An attempt is over: counted done here unless its outcome went to the recorder,
        which counts it (a task cancelled before its first step never ran its body)."""
        self._tasks.discard(task)
        if task.cancelled() or task.exception() is not None or not task.result():
            self._done()

    async def _attempt(self, row: TriggerRow, token: str) -> bool:
        """Send ``row``; True when its outcome went to the recorder."""
        delivery = self._delivery
        now = self._clock()
        try:
            if not delivery.answers_now(row, now):
                # A probe aged out since the decision: the gate would probe, and block this
                # loop for up to the probe's timeout. A worker thread does it all instead.
                await asyncio.to_thread(delivery.deliver_claimed, row, token, now)
                return False
            attempt = delivery.prepare(row, token, now)
            if attempt is None:
                return False  # settled before the send (superseded, kill switch, dry run...)
            sent = await send_all_async(delivery.ctx, attempt.targets, row.delivered,
                                        attempt.request)
            outcome = delivery.outcome(attempt, self._clock(), sent)
        except Exception:
            delivery.internal_error(row, token, now)
            return False
        self._outcomes.put(outcome)
        return True

    def _record_all(self) -> None:
        """The recorder thread: write what the sends made of their attempts, in batches."""
        while (first := self._outcomes.get()) is not None:
            batch, stop = [first], False
            while not stop:
                try:
                    outcome = self._outcomes.get_nowait()
                except queue.Empty:
                    break
                if outcome is None:
                    stop = True
                else:
                    batch.append(outcome)
            self._record(batch)
            if stop:
                return

    def _record(self, outcomes: list[Outcome]) -> None:
        """Write ``outcomes`` in one transaction, then tell what they changed."""
        try:
            self._delivery.record(outcomes)
        except Exception:
            log.exception("event=trigger.record_failed triggers=%d", len(outcomes))
            now = self._clock()
            for outcome in outcomes:  # sent, not recorded: back to pending, same key later
                row_id, claim = outcome.update.trigger_id, outcome.update.claim
                try:
                    self._delivery.release(row_id, claim, now)
                except Exception:
                    log.exception("event=trigger.release_failed id=%d", row_id)
        finally:
            for _ in outcomes:
                self._done()

    def close(self, timeout_s: float = 10.0) -> None:
        """Stop taking rows; wait (bounded) for the sends in flight and record them; close
        the sinks' clients of this loop. An attempt cut off keeps its claim, which the next
        start releases and sends again with the same idempotency key."""
        with self._lock:
            self._closed = True
            loop, threads = self._loop, self._threads
            self._loop = None  # closed once
        if loop is None:
            return
        try:
            asyncio.run_coroutine_threadsafe(self._drain(timeout_s), loop).result(timeout_s + 10)
        except Exception:
            log.warning("event=sender.close_failed", exc_info=True)
        self._outcomes.put(None)  # after every outcome of the drained sends
        loop.call_soon_threadsafe(loop.stop)
        for thread in threads:
            thread.join(timeout_s)
        if not threads[0].is_alive():
            loop.close()

    async def _drain(self, timeout_s: float) -> None:
        if self._tasks:
            _, late = await asyncio.wait(set(self._tasks), timeout=timeout_s)
            for task in late:
                task.cancel()
            if late:
                log.warning("event=sender.cut_off triggers=%d (resent after the next start)",
                            len(late))
                await asyncio.wait(late)
        for sink in self._delivery.ctx.sinks.values():
            aclose = getattr(sink, "aclose", None)
            if aclose is not None:
                try:
                    await aclose()
                except Exception:
                    log.warning("event=sink.close_failed", exc_info=True)
