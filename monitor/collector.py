"""The collector: validate against config, append to the store, then update state and telemetry.

Listeners act on new events (decide triggers, raise alerts). Among processes that share a
store only the leading one acts (``acting``); the others hand each update to ``learners``
instead, which keep their state (SLO ledgers, anomaly baselines) without acting on it.
Events another process stored come in through ``follow``.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable, Sequence
from dataclasses import dataclass, replace
from datetime import datetime

from prometheus_client import Counter, Histogram

from monitor.clock import Clock
from monitor.config import Config
from monitor.errors import EventError, Problem
from monitor.events import (
    Event,
    assign_fields,
    decode_push_data,
    parse_events,
    parse_push_envelope,
    replace_fields,
)
from monitor.store.base import EventStore, Tailed
from monitor.telemetry.metrics import Metrics
from monitor.telemetry.tracing import RunTracer
from monitor.tracker import RunTracker, Update
from monitor.validation import render_value

log = logging.getLogger(__name__)

Listener = Callable[[Update], None]
PushHandler = Callable[[bytes], "str | None"]  # monitor.host.PushHandler


@dataclass(frozen=True)
class IngestResult:
    """``accepted`` new events and ``duplicates`` acknowledged but ignored."""

    accepted: int
    duplicates: int

    def as_dict(self) -> dict[str, int]:
        return {"accepted": self.accepted, "duplicates": self.duplicates}


@dataclass(frozen=True)
class PushResult:
    """Outcome of one Pub/Sub push: stored, duplicate, or dead-lettered (all acknowledged)."""

    outcome: str  # "stored" | "duplicate" | "dead_lettered"
    reason: str | None = None


class Collector:
    """Accepts events: one transaction per batch, then tracker, metrics, traces and listeners."""

    def __init__(
        self,
        config: Config,
        store: EventStore,
        tracker: RunTracker,
        metrics: Metrics,
        tracer: RunTracer,
        clock: Clock,
    ) -> None:
        self.config = config
        self.store = store
        self.tracker = tracker
        self.metrics = metrics
        self.tracer = tracer
        self.clock = clock
        self.listeners: list[Listener] = []
        self.learners: list[Listener] = []
        self.acting: Callable[[], bool] = lambda: True
        self.push_handlers: list[PushHandler] = []  # other kinds of push messages (host.py)
        self._lock = threading.Lock()
        # Metric children per label set: labels() is a lookup under a lock, slow per event.
        self._counters: dict[tuple[str, str, str, str], Counter] = {}
        self._durations: dict[tuple[str, str, str, str], Histogram] = {}

    def resolve(self, events: Sequence[Event], prefix: str = "events", *,
                owned: bool = False, now: datetime | None = None) -> list[Event]:
        """Check names against config and run dates against the window of ``now`` (default:
        the clock's); canonicalize processor aliases; derive missing modes.

        ``owned``: the events were parsed for this call and no one else holds them, so
        they are completed in place rather than copied.
        """
        out: list[Event] = []
        problems: list[Problem] = []
        single = len(events) == 1
        complete = assign_fields if owned else replace_fields
        when = now or self.clock.now()
        for i, event in enumerate(events):
            where = "" if single else f"{prefix}[{i}]."
            resolved = self._resolve_one(event, where, problems, complete, when)
            if resolved is not None:
                out.append(resolved)
        if problems:
            names = any(not p.field.endswith("run_date") for p in problems)
            raise EventError("unknown_name" if names else "run_date_window", problems)
        return out

    def _resolve_one(self, event: Event, where: str, problems: list[Problem],
                     complete: Callable[[Event, dict[str, object]], Event],
                     now: datetime) -> Event | None:
        pipeline = self.config.pipeline_map.get(event.pipeline)
        if pipeline is None:
            problems.append(Problem(
                f"{where}pipeline",
                f"unknown pipeline; allowed: {', '.join(sorted(self.config.pipeline_map))}",
                render_value(event.pipeline),
            ))
            return None
        phase = pipeline.phase_map.get(event.phase)
        if phase is None:
            problems.append(Problem(
                f"{where}phase",
                f"unknown phase of {pipeline.id}; allowed: {', '.join(pipeline.phase_map)}",
                render_value(event.phase),
            ))
            return None
        today = now.astimezone(pipeline.tz).date()
        first, last = self.config.runs.window(today)
        if not first <= event.run_date <= last:
            problems.append(Problem(
                f"{where}run_date",
                f"outside the accepted window {first} to {last} "
                f"({self.config.runs.accept_past_days} days before to "
                f"{self.config.runs.accept_future_days} after today, {today} in {pipeline.timezone}; "
                "runs.accept_past_days / runs.accept_future_days)",
                render_value(event.run_date.isoformat()),
            ))
            return None
        update: dict[str, object] = {}
        if event.processor is not None:
            canonical = phase.canonical_names.get(event.processor)
            if canonical is None:
                allowed = ", ".join(p.name for p in phase.processors) or "none (phase-level only)"
                problems.append(Problem(
                    f"{where}processor",
                    f"unknown processor of {pipeline.id}/{phase.id}; allowed: {allowed}",
                    render_value(event.processor),
                ))
                return None
            if canonical != event.processor:
                update["processor"] = canonical
        if event.mode is None:
            today = event.timestamp.astimezone(pipeline.tz).date()
            mode = pipeline.mode_for(event.run_date, today)
            if mode is None:
                problems.append(Problem(
                    f"{where}mode",
                    "required: no mode rule of this pipeline matches the run date; allowed: "
                    "overnight, same_day, tomorrow, backfill",
                ))
                return None
            update["mode"] = mode
        return complete(event, update) if update else event

    def ingest(self, events: Sequence[Event], prefix: str = "events", *,
               owned: bool = False, backfill: bool = False) -> IngestResult:
        """Store a batch all or nothing, then fold the new events into state and telemetry.

        ``owned``: as for ``resolve`` (the request-body paths parse their own events).
        ``backfill``: imported history; listeners learn from it but never act or alert.
        """
        try:
            resolved = self.resolve(events, prefix, owned=owned)
        except EventError as exc:
            self.reject(exc)
            raise
        with self._lock:
            now = self.clock.now()
            result = self.store.append(resolved, now, backfill=backfill)
            updates = [
                update for e, new in zip(resolved, result.inserted, strict=True)
                if new and (update := self._apply(e, now)) is not None
            ]
        if backfill:
            updates = [replace(update, backfill=True) for update in updates]
        if result.duplicates:
            self.metrics.duplicates.inc(result.duplicates)
        self._count(updates)
        for update in updates:
            self._after_commit(update)
        self.metrics.runs_tracked.set(len(self.tracker))
        return IngestResult(result.accepted, result.duplicates)

    def _apply(self, event: Event, now: datetime) -> Update | None:
        """Fold a stored event into run state; a failure here is logged, never a 5xx for a stored event."""
        try:
            return self.tracker.apply(event, now)
        except Exception:
            self.metrics.telemetry_errors.labels("tracker").inc()
            log.exception("event=tracker.apply_failed event_id=%s", event.event_id)
            return None

    def _count(self, updates: Sequence[Update]) -> None:
        """``phasewatch_events_total``, one increment per label set of the batch."""
        counts: dict[tuple[str, str, str, str], int] = {}
        for update in updates:
            event = update.event
            labels = (event.pipeline, event.phase, event.processor or "", event.status)
            counts[labels] = counts.get(labels, 0) + 1
        for key, count in counts.items():
            counter = self._counters.get(key)
            if counter is None:
                counter = self._counters[key] = self.metrics.events.labels(*key)
            counter.inc(count)

    def _after_commit(self, update: Update) -> None:
        event = update.event
        m = self.metrics
        key = (event.pipeline, event.phase, event.processor or "", event.status)
        if update.duration_s is not None and event.processor is not None:
            histogram = self._durations.get(key)
            if histogram is None:
                histogram = self._durations[key] = m.processor_duration.labels(*key)
            histogram.observe(update.duration_s)
        if update.phase_completed:
            m.phase_transitions.labels(event.pipeline, event.phase, "completed").inc()
            start = update.phase.first_start
            if start is not None:
                seconds = max((event.timestamp - start).total_seconds(), 0.0)
                m.phase_duration.labels(event.pipeline, event.phase, update.run.mode).observe(seconds)
        if update.phase_failed:
            m.phase_transitions.labels(event.pipeline, event.phase, "failed").inc()
        self.tracer.on_update(update)
        self._dispatch(update)

    def _dispatch(self, update: Update) -> None:
        for listener in self.listeners if self.acting() else self.learners:
            try:
                listener(update)
            except Exception:
                log.exception("event=listener.failed listener=%r", listener)

    def follow(self, events: Sequence[Tailed]) -> int:
        """Fold in events another process stored (they were validated there): run state,
        then listeners or learners. No metrics or spans: the storing process counted them."""
        with self._lock:
            now = self.clock.now()
            updates = [replace(u, backfill=True) if t.backfill else u for t in events
                       if (u := self._apply(t.event, now)) is not None]
        for update in updates:
            self._dispatch(update)
        if updates:
            self.metrics.runs_tracked.set(len(self.tracker))
        return len(updates)

    def reject(self, exc: EventError) -> None:
        """Count a rejection under its bounded reason."""
        self.metrics.rejected.labels(exc.reason).inc()

    def ingest_body(self, body: bytes, content_type: str | None = None, *,
                    backfill: bool = False) -> IngestResult:
        """Parse a request body (event, array or NDJSON) and ingest it."""
        try:
            events = parse_events(body, content_type)
        except EventError as exc:
            self.reject(exc)
            raise
        return self.ingest(events, owned=True, backfill=backfill)

    def ingest_push(self, body: bytes) -> PushResult:
        """Ingest a Pub/Sub push; a message that can never be valid is dead-lettered and acked.

        A malformed envelope raises EventError (400): it did not come from Pub/Sub.
        Store failures propagate, so the caller answers 5xx and Pub/Sub redelivers.
        """
        try:
            envelope = parse_push_envelope(body)
        except EventError as exc:
            self.reject(exc)
            raise
        message = envelope.message
        try:
            data = decode_push_data(message)
            for handler in self.push_handlers:
                outcome = handler(data)
                if outcome is not None:
                    return PushResult(outcome)
            events = parse_events(data, "application/json")
        except EventError as exc:
            self.reject(exc)
            return self._dead_letter(envelope.subscription, message.message_id, exc, message.data)
        try:
            result = self.ingest(events, owned=True)  # counts its own rejections
        except EventError as exc:
            return self._dead_letter(envelope.subscription, message.message_id, exc, message.data)
        return PushResult("stored" if result.accepted else "duplicate")

    def _dead_letter(
        self, subscription: str | None, message_id: str, exc: EventError, payload: str
    ) -> PushResult:
        new = self.store.add_dead_letter(
            received_at=self.clock.now(), source=f"pubsub:{subscription or '?'}",
            message_id=message_id, reason=exc.reason, detail=str(exc), payload=payload,
        )
        if new:
            self.metrics.dead_letters.labels(exc.reason).inc()
            log.warning(
                "event=pubsub.dead_lettered message_id=%s reason=%s detail=%r",
                message_id, exc.reason, str(exc)[:300],
            )
        return PushResult("dead_lettered", exc.reason)

    def now(self) -> datetime:
        return self.clock.now()
