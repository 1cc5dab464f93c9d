"""A mirror: rows copied to an outside table store through a bounded queue, on a thread of its own.

Ingest only *offers* a row: a put on a bounded queue that never waits. When the queue is
full the row is dropped and counted (``phasewatch_mirror_rows_dropped_total``, reason
``queue_full``): the mirror is telemetry, so it fails open. A daemon thread (as the metric
export in ``monitor.telemetry.periodic``) wakes every ``interval_s``, or as soon as a batch's
worth of rows is waiting, encodes the rows and writes them in batches of ``batch`` per table.

Each row carries an insert id (an event's ``event_id``) that the sink passes on as its
de-duplication key, so a retried row is the same row, never a second copy:

- rows the sink reports as not written for a passing reason (another row of the request was
  invalid, a backend error) are sent again, alone, with the same ids;
- a request that failed as a whole for a passing reason (5xx, 429, a timeout, no connection)
  is retried with capped full jitter (tenacity, ``phasewatch_client.retry``); still failing,
  its rows are kept and tried first on the next wake, so an outage loses nothing until the
  queue is full;
- rows the sink refuses for good (invalid, no such table, no permission) are dropped,
  counted (reason ``rejected``) and logged once per table until a write to it succeeds.

``shutdown`` writes what is left once, without retries; rows still not written are counted
(reason ``shutdown``).
"""

from __future__ import annotations

import logging
import random
import threading
import time
from collections import defaultdict, deque
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Protocol

from phasewatch_client.retry import wait_full_jitter
from tenacity import Retrying, retry_if_exception_type, stop_after_attempt

from monitor.telemetry.metrics import Metrics

log = logging.getLogger(__name__)

Row = tuple[str, dict[str, Any]]
"""(insert id, the row as JSON values)."""
Encoder = Callable[[Any], Row]


class SinkUnavailable(Exception):
    """The whole request failed for a passing reason (retry it)."""


class SinkRejected(Exception):
    """The whole request was refused for good (retrying would not help)."""


@dataclass(frozen=True)
class InsertOutcome:
    """Rows of one request the sink did not write, by index: to retry, or refused for good."""

    retry: tuple[int, ...] = ()
    rejected: tuple[tuple[int, str], ...] = ()  # (index, why)


class MirrorSink(Protocol):
    """Writes rows to a table; raises SinkUnavailable or SinkRejected when the request failed."""

    def insert(self, table: str, rows: Sequence[Row]) -> InsertOutcome: ...


@dataclass
class MemorySink:
    """A sink in memory, de-duplicating by insert id as BigQuery does (for tests, yours too)."""

    tables: dict[str, dict[str, dict[str, Any]]] = field(default_factory=lambda: defaultdict(dict))
    requests: int = 0

    def insert(self, table: str, rows: Sequence[Row]) -> InsertOutcome:
        self.requests += 1
        for insert_id, row in rows:
            self.tables[table].setdefault(insert_id, row)
        return InsertOutcome()

    def rows(self, table: str) -> list[dict[str, Any]]:
        return list(self.tables.get(table, {}).values())


@dataclass
class FlushResult:
    """What one pass wrote and dropped, by table."""

    written: dict[str, int] = field(default_factory=lambda: defaultdict(int))
    dropped: dict[str, int] = field(default_factory=lambda: defaultdict(int))
    unavailable: bool = False  # the sink was still unavailable: rows were kept for later


class Mirror:
    """Offers rows to a sink without ever blocking the caller (see the module docstring)."""

    def __init__(
        self, sink: MirrorSink, encoders: Mapping[str, Encoder], metrics: Metrics, *,
        name: str, batch: int, interval_s: float, queue_max: int, attempts: int = 3,
        sleep: Callable[[float], None] = time.sleep, rng: random.Random | None = None,
    ) -> None:
        self.sink, self.encoders, self.metrics, self.name = sink, dict(encoders), metrics, name
        self.batch, self.interval_s, self.attempts, self.sleep = batch, interval_s, attempts, sleep
        self.wait = wait_full_jitter(initial=1.0, maximum=10.0, rng=rng)
        # A deque: append and popleft are atomic, with no lock or condition to signal on the
        # ingest path. Producers racing past the length check may overshoot the bound by
        # one row each.
        self._queue: deque[tuple[str, Any]] = deque()
        self.queue_max = queue_max
        self._carry: dict[str, list[Row]] = defaultdict(list)  # kept through an outage
        self._offered = 0
        self._wake = threading.Event()
        self._stopping = threading.Event()
        self._flush_lock = threading.Lock()
        self._dropped = {t: metrics.mirror_dropped.labels(name, t, "queue_full") for t in self.encoders}
        self._failing: set[str] = set()  # tables whose last write was refused (logged)
        self._unavailable = False  # the sink's last request failed (logged)
        self.thread: threading.Thread | None = None
        self.flushes = 0

    # --- the ingest side: never waits ------------------------------------------------------

    def offer(self, table: str, item: Any) -> bool:
        """Queue ``item`` for ``table`` (encoded later, on the mirror's thread); False when the
        queue is full and it was dropped (counted)."""
        if len(self._queue) >= self.queue_max:
            self._dropped[table].inc()
            return False
        self._queue.append((table, item))
        self._offered += 1
        if self._offered % self.batch == 0:
            self._wake.set()  # a batch is waiting: no need to sit out the interval
        return True

    @property
    def waiting(self) -> int:
        """Rows queued or kept for a retry."""
        return len(self._queue) + sum(len(rows) for rows in self._carry.values())

    # --- the thread ----------------------------------------------------------------------------

    def start(self) -> None:
        if self.thread is None:
            self.thread = threading.Thread(target=self._run, name=f"phasewatch-mirror-{self.name}",
                                           daemon=True)
            self.thread.start()

    def flush_now(self) -> None:
        """Write at once on the thread, as if the interval had passed."""
        self._wake.set()

    def shutdown(self, timeout_s: float = 10.0) -> bool:
        """Stop the thread and write what is left once, without retries (the rest is counted as
        dropped, reason ``shutdown``). False when the thread was still busy after ``timeout_s``."""
        self._stopping.set()
        self._wake.set()
        if self.thread is not None:
            self.thread.join(timeout_s)
            if self.thread.is_alive():
                log.warning("event=mirror.shutdown_busy mirror=%s waiting=%d (not written)",
                            self.name, self.waiting)
                return False
        result = self.flush(attempts=1)
        for table, rows in self._carry.items():
            self._drop(result, table, "shutdown", len(rows))
        self._carry.clear()
        while True:  # the sink went away mid-way: what is still queued is lost too
            try:
                table, _ = self._queue.popleft()
            except IndexError:
                break
            self._drop(result, table, "shutdown", 1)
        self.metrics.mirror_queue.labels(self.name).set(0)
        return True

    def _run(self) -> None:
        while True:
            self._wake.wait(self.interval_s)
            self._wake.clear()
            if self._stopping.is_set():
                return
            try:
                self.flush()
            except Exception:  # a bug: counted, never raised into anything else
                self.metrics.telemetry_errors.labels(f"mirror_{self.name}").inc()
                log.exception("event=mirror.crashed mirror=%s", self.name)

    # --- writing -------------------------------------------------------------------------------

    def flush(self, attempts: int | None = None) -> FlushResult:
        """Write everything waiting, batch by batch; rows of a sink that stays unavailable are
        kept (up to a batch per table) and the pass ends. Safe from any thread."""
        result = FlushResult()
        with self._flush_lock:
            while not result.unavailable:
                pending = self._take()
                if not pending:
                    break
                for table, rows in pending.items():
                    if result.unavailable:  # the sink is down: keep them for the next pass
                        self._carry[table] = rows + self._carry[table]
                    else:
                        self._write(table, rows, result, attempts or self.attempts)
            self.flushes += 1
            self.metrics.mirror_queue.labels(self.name).set(self.waiting)
        return result

    def write(self, table: str, rows: Sequence[Row], attempts: int | None = None) -> FlushResult:
        """Write ``rows`` now on the caller's thread, with the same retries (a backfill); rows
        still not written when the sink stays unavailable are counted in ``dropped``."""
        result = FlushResult()
        with self._flush_lock:
            for start in range(0, len(rows), self.batch):
                chunk = list(rows[start:start + self.batch])
                if result.unavailable:  # still down: the rest would fail the same way
                    result.dropped[table] += len(chunk)
                    continue
                result.dropped[table] += len(self._send(table, chunk, result, attempts or self.attempts))
        return result

    def _take(self) -> dict[str, list[Row]]:
        """Rows kept from the last pass first, then up to a batch more from the queue."""
        pending: dict[str, list[Row]] = {t: rows for t, rows in self._carry.items() if rows}
        self._carry.clear()
        taken = sum(len(rows) for rows in pending.values())
        while taken < self.batch:
            try:
                table, item = self._queue.popleft()
            except IndexError:
                break
            try:
                row = self.encoders[table](item)
            except Exception:
                self.metrics.telemetry_errors.labels(f"mirror_{self.name}").inc()
                log.exception("event=mirror.encode_failed mirror=%s table=%s", self.name, table)
                continue
            pending.setdefault(table, []).append(row)
            taken += 1
        return pending

    def _write(self, table: str, rows: list[Row], result: FlushResult, attempts: int) -> None:
        for start in range(0, len(rows), self.batch):
            chunk = rows[start:start + self.batch]
            if result.unavailable:
                self._carry[table].extend(chunk)
                continue
            kept = self._send(table, chunk, result, attempts)
            if kept:
                self._carry[table].extend(kept)

    def _send(self, table: str, rows: list[Row], result: FlushResult, attempts: int) -> list[Row]:
        """Write ``rows`` with retries; the rows still to write when the sink stays unavailable."""
        left = rows

        def attempt() -> None:
            nonlocal left
            try:
                outcome = self.sink.insert(table, left)
            except SinkUnavailable:
                self._count_request("unavailable")
                raise
            except SinkRejected:
                self._count_request("rejected")
                raise
            self._count_request("partial" if outcome.retry or outcome.rejected else "ok")
            for _index, why in outcome.rejected:
                self._refused(table, why)
            self._drop(result, table, "rejected", len(outcome.rejected))
            failed = set(outcome.retry) | {i for i, _ in outcome.rejected}
            self._wrote(table, len(left) - len(failed), result)
            left = [left[i] for i in sorted(set(outcome.retry))]
            if left:
                raise SinkUnavailable(f"{len(left)} rows not written yet")

        retrying = Retrying(
            stop=stop_after_attempt(attempts), wait=self.wait, sleep=self.sleep, reraise=True,
            retry=retry_if_exception_type(SinkUnavailable),
        )
        try:
            retrying(attempt)
        except SinkUnavailable as exc:
            if not self._unavailable:
                log.warning("event=mirror.unavailable mirror=%s table=%s rows=%d error=%r (rows are "
                            "kept and retried; logged once until a write succeeds)",
                            self.name, table, len(left), str(exc)[:300])
                self._unavailable = True
            result.unavailable = True
            return left
        except SinkRejected as exc:
            self._refused(table, str(exc))
            self._drop(result, table, "rejected", len(left))
            return []
        if self._unavailable:
            log.info("event=mirror.recovered mirror=%s", self.name)
            self._unavailable = False
        return []

    # --- accounting ----------------------------------------------------------------------------

    def _wrote(self, table: str, n: int, result: FlushResult) -> None:
        if n > 0:
            result.written[table] += n
            self.metrics.mirror_rows.labels(self.name, table).inc(n)
            if table in self._failing:
                self._failing.discard(table)
                log.info("event=mirror.table_recovered mirror=%s table=%s", self.name, table)

    def _drop(self, result: FlushResult, table: str, reason: str, n: int) -> None:
        if n > 0:
            result.dropped[table] += n
            self.metrics.mirror_dropped.labels(self.name, table, reason).inc(n)

    def _refused(self, table: str, why: str) -> None:
        if table not in self._failing:
            self._failing.add(table)
            log.error("event=mirror.rows_rejected mirror=%s table=%s error=%r (rows dropped and "
                      "counted; logged once until a write to the table succeeds)",
                      self.name, table, why[:300])

    def _count_request(self, outcome: str) -> None:
        self.metrics.mirror_requests.labels(self.name, outcome).inc()
