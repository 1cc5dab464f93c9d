"""Client SDK for pipeline processors: report events to phasewatch's ``POST /v1/events``.

Delivery is synchronous, in the caller's thread, with short timeouts, and never raises
into the processor. Why not a background thread: processors run as Cloud Run jobs and
services or Cloud Functions, where CPU outside a request may be throttled and a process
may end the moment its work returns, so a background sender can silently never run; in
the caller's thread a ``started`` event reaches phasewatch before the work begins (trigger
verification relies on it) and tests need no thread synchronisation. What keeps it cheap:

- ``emit`` tries once (2 s to connect, 5 s to read); on a failure the event stays in
  a bounded buffer (oldest dropped when full, drops counted) and later emits only buffer
  it, until a hold-off on the injected clock has passed (doubling, capped); the next emit
  after it tries again and sends the buffer in order. So an outage costs one attempt per
  hold-off, not one per event, and logs one warning for the whole outage.
- ``flush`` retries with tenacity (full jitter, capped; ``Retry-After`` honoured) until the
  buffer is empty or ``max_attempts`` / ``flush_timeout_s`` run out; ``close`` is one such
  bounded flush, so it returns within about ``flush_timeout_s`` plus one request timeout.
- 5xx, 408, 429 and network errors are retried; any other 4xx can never succeed: it is
  logged once and that batch dropped (a rejected multi-event batch is re-sent one event at
  a time first, so one bad event does not take good ones with it). Re-sending is safe:
  phasewatch ignores a repeated ``event_id``.

Invalid input (a bad ``run_date``, ``done > total``) raises EventError at the call that
supplied it, as any wrong argument would; only delivery problems are swallowed. Waits and
hold-offs are ``phasewatch_client.retry`` strategies; sleeping goes through ``sleep`` (by
default the clock's own, so a ``FakeClock`` moves instead of the test waiting).
"""

from __future__ import annotations

import itertools
import logging
import threading
import time
from collections import deque
from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager, suppress
from dataclasses import dataclass
from datetime import date, datetime
from types import TracebackType
from typing import Protocol, TypedDict, Unpack, runtime_checkable

import httpx
from tenacity import (
    Retrying,
    retry_if_exception,
    stop_after_attempt,
    wait_exponential,
    wait_random_exponential,
)

from phasewatch_client.clock import Clock, SystemClock
from phasewatch_client.errors import DeliveryError
from phasewatch_client.event import MAX_ERROR_CHARS, Event, Mode, Status, build_event, new_event_id
from phasewatch_client.retry import (
    RetrySchedule,
    Sleep,
    parse_retry_after,
    stop_at,
    wait_before,
    wait_retry_after,
)

log = logging.getLogger(__name__)

EVENTS_PATH = "/v1/events"
BACKFILL_HEADER = "X-Phasewatch-Backfill"  # "true": history to store and learn from, never act on
_SPLIT_ON = frozenset({400, 413, 422})  # answers about an event (or size), not the request
_MAX_SEEN_REJECTIONS = 64


class TrackFields(TypedDict, total=False):
    """Optional fields accepted by ``track`` (None means absent)."""

    attributes: Mapping[str, str] | None
    traceparent: str | None
    invocation_id: str | None
    expected_records: int | None
    data_as_of: datetime | None


class EventFields(TrackFields, total=False):
    """Optional event fields accepted by ``emit`` (DESIGN §3; None means absent)."""

    duration_s: float | None
    records: int | None
    batch_id: str | None
    done: int | None
    total: int | None
    error: str | None


@runtime_checkable
class SleepingClock(Protocol):
    """A clock that can also wait (``FakeClock`` advances instead)."""

    def sleep(self, seconds: float) -> None: ...


@dataclass(frozen=True)
class Ack:
    """phasewatch's answer to a delivered batch."""

    accepted: int
    duplicates: int


@dataclass(frozen=True)
class ClientStats:
    """Counts of events since the client was created."""

    delivered: int
    duplicates: int
    pending: int
    dropped: int
    rejected: int


def describe_exception(exc: BaseException) -> str:
    """``Type: message`` of an exception, cut to the event's 2000-character limit."""
    text = f"{type(exc).__name__}: {exc}" if str(exc) else type(exc).__name__
    return text[:MAX_ERROR_CHARS]


class PhasewatchClient:
    """Reports a pipeline's events to phasewatch; delivery problems never reach the caller."""

    def __init__(
        self,
        url: str,
        token: str | None = None,
        *,
        pipeline: str,
        clock: Clock | None = None,
        transport: httpx.BaseTransport | None = None,
        max_buffer: int = 1000,
        max_batch: int = 100,
        timeout_s: float = 5.0,
        connect_timeout_s: float = 2.0,
        max_attempts: int = 5,
        backoff_s: float = 0.5,
        max_backoff_s: float = 30.0,
        flush_timeout_s: float = 30.0,
        sleep: Sleep | None = None,
        backfill: bool = False,
    ) -> None:
        if min(max_buffer, max_batch, max_attempts) < 1:
            raise ValueError("max_buffer, max_batch and max_attempts must be at least 1")
        base = _base_url(url)
        self.pipeline = pipeline
        self.where = f"{base.scheme}://{base.netloc.decode()}"  # no credentials in logs
        self.clock: Clock = clock or SystemClock()
        self._sleep = sleep or _sleep_of(self.clock)
        self._max_batch = max_batch
        self._max_attempts = max_attempts
        self._flush_timeout_s = flush_timeout_s
        # A failure's Retry-After (capped) lengthens a wait, never shortens it.
        self._flush_wait = wait_retry_after(
            wait_random_exponential(multiplier=backoff_s, max=max_backoff_s), max_backoff_s,
            at_least_fallback=True,
        )
        self._hold_off = RetrySchedule(wait_retry_after(
            wait_exponential(multiplier=backoff_s, max=max_backoff_s), max_backoff_s,
            at_least_fallback=True,
        ))
        headers = {"User-Agent": "phasewatch-client", "Content-Type": "application/json"}
        if token:
            headers["Authorization"] = f"Bearer {token}"
        if backfill:  # imported history: phasewatch stores and learns, never acts or alerts
            headers[BACKFILL_HEADER] = "true"
        self._http = httpx.Client(
            base_url=url, headers=headers, transport=transport,
            timeout=httpx.Timeout(timeout_s, connect=connect_timeout_s),
        )
        self._lock = threading.Lock()
        self._buffer: deque[Event] = deque(maxlen=max_buffer)
        self._counts = {"delivered": 0, "duplicates": 0, "dropped": 0, "rejected": 0}
        self._failures = 0  # consecutive failed attempts; > 0 means an outage
        self._outage_since = 0.0
        self._retry_at = 0.0
        self._seen_rejections: set[tuple[int | None, str]] = set()
        self._closed = False

    def __repr__(self) -> str:
        return f"PhasewatchClient({self.where!r}, pipeline={self.pipeline!r})"

    def __enter__(self) -> PhasewatchClient:
        return self

    def __exit__(
        self, kind: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.close()

    @property
    def stats(self) -> ClientStats:
        """Delivered, duplicate, pending, dropped (buffer full) and rejected (4xx) counts."""
        with self._lock:
            return ClientStats(pending=len(self._buffer), **self._counts)

    def emit(
        self,
        phase: str,
        status: Status,
        *,
        run_date: date | str,
        processor: str | None = None,
        mode: Mode | None = None,
        event_id: str | None = None,
        timestamp: datetime | None = None,
        **fields: Unpack[EventFields],
    ) -> Event:
        """Build, validate and report one event (EventError on invalid fields); returns it."""
        event = build_event({
            "event_id": event_id or new_event_id(), "pipeline": self.pipeline,
            "run_date": run_date, "mode": mode, "phase": phase, "processor": processor,
            "status": status, "timestamp": timestamp or self.clock.now(), **fields,
        })
        self.enqueue(event)
        return event

    def enqueue(self, event: Event) -> None:
        """Buffer an already-built event and deliver what is buffered unless holding off."""
        with self._lock:
            if self._closed:
                raise RuntimeError("PhasewatchClient is closed")
            if len(self._buffer) == self._buffer.maxlen:
                self._counts["dropped"] += 1  # the deque drops the oldest
            self._buffer.append(event)
            if self._failures and self.clock.monotonic() < self._retry_at:
                return
            with suppress(DeliveryError):  # noted in _drain; the events wait in the buffer
                self._drain()

    def flush(self) -> int:
        """Deliver the buffer, retrying with capped full jitter; returns events still pending."""
        with suppress(DeliveryError):  # noted in _drain; what is left stays buffered
            self._retrying()(self._drain_locked)
        with self._lock:
            return len(self._buffer)

    def send(self, events: Sequence[Event]) -> Ack:
        """Deliver ``events`` now, retried, bypassing the buffer; raises DeliveryError on failure."""
        attempts = itertools.count(1)

        def attempt() -> Ack:
            number = next(attempts)
            try:
                return self._post(events)
            except DeliveryError as exc:
                exc.attempts = number
                raise

        ack: Ack = self._retrying()(attempt)
        return ack

    def close(self) -> None:
        """Flush (bounded by max_attempts and flush_timeout_s), then release connections."""
        if self._closed:
            return
        pending = self.flush()
        with self._lock:
            self._closed = True
            self._http.close()
            if pending or self._counts["dropped"]:
                log.info(
                    "event=client.closed pipeline=%s undelivered=%d dropped=%d rejected=%d",
                    self.pipeline, pending, self._counts["dropped"], self._counts["rejected"],
                )

    @contextmanager
    def track(
        self,
        phase: str,
        processor: str | None = None,
        *,
        run_date: date | str,
        mode: Mode | None = None,
        **fields: Unpack[TrackFields],
    ) -> Iterator[Tracking]:
        """Report started, then succeeded or failed (re-raising); also usable as a decorator."""
        handle = Tracking(self, phase, processor, run_date, mode, fields)
        try:
            yield handle
        except BaseException as exc:
            if isinstance(exc, SystemExit) and exc.code in (0, None):
                handle.finish("succeeded")
            else:
                handle.finish("failed", describe_exception(exc))
            raise
        handle.finish("succeeded")

    # delivery -----------------------------------------------------------------------

    def _retrying(self) -> Retrying:
        deadline = self.clock.monotonic() + self._flush_timeout_s
        return Retrying(
            stop=stop_after_attempt(self._max_attempts) | stop_at(deadline, self.clock.monotonic),
            wait=wait_before(self._flush_wait, deadline, self.clock.monotonic),
            sleep=self._sleep, reraise=True,
            retry=retry_if_exception(lambda e: isinstance(e, DeliveryError) and e.retryable),
        )

    def _drain_locked(self) -> None:
        with self._lock:
            self._drain()

    def _drain(self) -> None:
        """Send the buffer in order (lock held); raise DeliveryError when worth retrying."""
        singles = 0  # events of a rejected batch still to re-send one at a time
        while self._buffer:
            batch = list(itertools.islice(self._buffer, 1 if singles else self._max_batch))
            try:
                ack = self._post(batch)
            except DeliveryError as exc:
                if exc.retryable:
                    self._note_failure(exc)
                    raise
                if len(batch) > 1 and exc.status_code in _SPLIT_ON:
                    singles = len(batch)
                    continue
                self._drop_rejected(batch, exc)
            else:
                self._delivered(batch, ack)
            singles = max(singles - 1, 0)

    def _post(self, events: Sequence[Event]) -> Ack:
        body = "[" + ",".join(e.to_json() for e in events) + "]"
        try:
            response = self._http.post(EVENTS_PATH, content=body.encode("utf-8"))
        except httpx.RequestError as exc:
            raise DeliveryError(describe_exception(exc)) from exc
        return _ack_or_raise(response, len(events))

    def _delivered(self, batch: list[Event], ack: Ack) -> None:
        for _ in batch:
            self._buffer.popleft()
        self._counts["delivered"] += ack.accepted
        self._counts["duplicates"] += ack.duplicates
        if self._failures:
            log.info(
                "event=client.recovered url=%s down_s=%.1f failed_attempts=%d dropped=%d",
                self.where, max(0.0, self.clock.monotonic() - self._outage_since),
                self._failures, self._counts["dropped"],
            )
            self._failures = 0

    def _note_failure(self, exc: DeliveryError) -> None:
        now = self.clock.monotonic()
        self._failures += 1
        hold_off = self._hold_off.next_delay(exc, self._failures)
        self._retry_at = now + (hold_off or 0.0)
        if self._failures == 1:
            self._outage_since = now
            log.warning(
                "event=client.unreachable url=%s error=%r pending=%d "
                "note=buffering_and_retrying_one_warning_per_outage",
                self.where, exc.message, len(self._buffer),
            )
        else:
            log.debug("event=client.retry_failed url=%s error=%r", self.where, exc.message)

    def _drop_rejected(self, batch: list[Event], exc: DeliveryError) -> None:
        for _ in batch:
            self._buffer.popleft()
        self._counts["rejected"] += len(batch)
        key = (exc.status_code, exc.message)
        if key in self._seen_rejections:
            log.debug("event=client.rejected status=%s count=%d", exc.status_code, len(batch))
            return
        if len(self._seen_rejections) < _MAX_SEEN_REJECTIONS:
            self._seen_rejections.add(key)
        log.error(
            "event=client.rejected url=%s status=%s count=%d event_ids=%s error=%r",
            self.where, exc.status_code, len(batch), ",".join(e.event_id for e in batch[:5]),
            exc.message,
        )


def _base_url(url: str) -> httpx.URL:
    """The parsed base URL, or ValueError saying what is allowed."""
    try:
        base = httpx.URL(url)
    except httpx.InvalidURL:
        base = httpx.URL()
    if base.scheme not in ("http", "https") or not base.host:
        raise ValueError(f"url must be http(s)://host[:port][/prefix]; got {url!r}")
    return base


def _ack_or_raise(response: httpx.Response, sent: int) -> Ack:
    code = response.status_code
    if response.is_success:
        return _ack(_json_or_none(response), sent)
    retryable = code in (408, 429) or code >= 500
    raise DeliveryError(
        f"HTTP {code}: {_error_detail(response)}", status_code=code, retryable=retryable,
        retry_after_s=parse_retry_after(response.headers.get("Retry-After")),
    )


def _ack(body: object, sent: int) -> Ack:
    """The ``{"accepted", "duplicates"}`` answer; anything else counts all as accepted."""
    if isinstance(body, dict):
        accepted, duplicates = body.get("accepted", sent), body.get("duplicates", 0)
        if isinstance(accepted, int) and isinstance(duplicates, int):
            return Ack(accepted, duplicates)
    return Ack(sent, 0)


def _json_or_none(response: httpx.Response) -> object:
    try:
        return response.json()
    except ValueError:
        return None


def _error_detail(response: httpx.Response) -> str:
    """phasewatch's ``error`` (or its ``details``) as one line, else the start of the body."""
    body = _json_or_none(response)
    if not isinstance(body, dict):
        return response.text[:300] or response.reason_phrase
    text = str(body.get("error") or "")
    if not text:
        details = [d for d in body.get("details") or [] if isinstance(d, dict)]
        text = "; ".join(f"{d.get('field', '?')}: {d.get('message', '')}" for d in details)
    return text[:500] or response.reason_phrase


class Tracking:
    """Handle yielded by ``track``: set ``records`` etc. on it, or report ``progress``."""

    def __init__(
        self,
        client: PhasewatchClient,
        phase: str,
        processor: str | None,
        run_date: date | str,
        mode: Mode | None,
        fields: TrackFields,
    ) -> None:
        self._client = client
        self._phase, self._processor, self._run_date, self._mode = phase, processor, run_date, mode
        self._attributes = fields.get("attributes")
        self._traceparent = fields.get("traceparent")
        self._invocation_id = fields.get("invocation_id")
        self._records: int | None = None
        self._expected: int | None = None
        self.expected_records = fields.get("expected_records")
        self.data_as_of: datetime | None = fields.get("data_as_of")
        self.started = self._emit("started", expected_records=self._expected,
                                  data_as_of=self.data_as_of)
        self._start = client.clock.monotonic()

    @property
    def records(self) -> int | None:
        """Rows or entities produced, reported on the terminal event."""
        return self._records

    @records.setter
    def records(self, value: int | None) -> None:
        self._records = _count("records", value)

    @property
    def expected_records(self) -> int | None:
        """What a complete run would produce (coverage), reported on the terminal event."""
        return self._expected

    @expected_records.setter
    def expected_records(self, value: int | None) -> None:
        self._expected = _count("expected_records", value)

    def progress(self, done: int, total: int | None = None, batch_id: str | None = None) -> Event:
        """Report a ``progress`` event (stall detection); EventError on invalid values."""
        return self._emit("progress", done=done, total=total, batch_id=batch_id)

    def finish(self, status: Status, error: str | None = None) -> None:
        """Report the terminal event; never raises (the processor's outcome comes first)."""
        duration = max(0.0, self._client.clock.monotonic() - self._start)
        try:
            self._emit(
                status, duration_s=duration, records=self._records,
                expected_records=self._expected, data_as_of=self.data_as_of, error=error,
            )
        except Exception:  # a bug here must not replace the processor's own outcome
            log.exception("event=client.finish_failed phase=%s", self._phase)

    def _emit(self, status: Status, **fields: Unpack[EventFields]) -> Event:
        every: EventFields = {"attributes": self._attributes, "traceparent": self._traceparent,
                              "invocation_id": self._invocation_id}
        return self._client.emit(
            self._phase, status, run_date=self._run_date, processor=self._processor,
            mode=self._mode, **(every | fields),
        )


def _sleep_of(clock: Clock) -> Sleep:
    """The clock's own ``sleep`` when it has one, else real sleeping."""
    return clock.sleep if isinstance(clock, SleepingClock) else time.sleep


def _count(name: str, value: int | None) -> int | None:
    if value is not None and (isinstance(value, bool) or not isinstance(value, int) or value < 0):
        raise ValueError(f"{name} must be an integer >= 0 or None; got {value!r}")
    return value
