"""The collector: validate against config, append to the store, then update state and telemetry.

Listeners act on new events (decide triggers, raise alerts). Each takes a whole batch: the
updates of one request in the order they were stored, after all of them are in run state;
listeners run one after another in the order they were added. Among processes that share
a store only the leading one acts (``acting``): it judges its own events as it stores
them and the others' as it follows them, and keeps the store's judged mark. The others
store their events and fold them in only once the leader's mark has passed them, through
``follow`` as the other processes' events, handing each update to ``learners``, which keep
their state (SLO ledgers, anomaly baselines) without acting on it: whoever leads next
judges every event after the mark, and learned none of them.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, replace
from datetime import date, datetime
from operator import itemgetter
from typing import TypeVar

from prometheus_client import Counter, Histogram

from monitor.clock import Clock
from monitor.config import Config, PipelineConfig, within
from monitor.errors import EventError, Problem
from monitor.events import (
    Event,
    assign_fields,
    decode_push_data,
    parse_events,
    parse_push_envelope,
    replace_fields,
)
from monitor.store.base import DeadLetter, EventStore, Tailed
from monitor.telemetry.metrics import Metrics
from monitor.telemetry.tracing import RunTracer
from monitor.tracker import RunTracker, Update, Work
from monitor.validation import render_value

log = logging.getLogger(__name__)

Listener = Callable[[Sequence[Update]], None]
"""Takes the updates of one stored batch, oldest first (``monitor.host.Host.add_listener``)."""
Learner = Callable[[Update], None]
PushHandler = Callable[[bytes], "str | None"]  # monitor.host.PushHandler
Unknown = tuple[str, str, str]  # (pipeline, phase, processor name the phase does not know)
UnknownListener = Callable[[Sequence[Unknown], datetime], None]
# Why a batch is rejected, the first that applies (docs/events.md, "Rejections").
REJECTIONS = ("unknown_name", "run_date_window", "date_mismatch")


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

    outcome: str  # "stored" | "duplicate" | "ignored" (understood, nothing to keep) | "dead_lettered"
    reason: str | None = None


@dataclass(frozen=True)
class Redrive:
    """Outcome of a redrive of dead letters (``Collector.redrive``): messages ``replayed``
    (stored, or taken by another kind's handler) and ``duplicates`` (their letters deleted),
    and the letters ``still_invalid`` with why they are refused now (kept)."""

    replayed: int
    duplicates: int
    still_invalid: tuple[tuple[DeadLetter, EventError], ...]


_Metric = TypeVar("_Metric", Counter, Histogram)


def _child(parent: _Metric, children: dict[tuple[str, ...], _Metric],
           labels: tuple[str, ...]) -> _Metric:
    """``parent.labels(*labels)``, remembered in ``children``: labels() is a lookup under a
    lock, slow per event."""
    child = children.get(labels)
    if child is None:
        child = children[labels] = parent.labels(*labels)
    return child


# The fields ``Collector._resolve_one`` reads of every event, in one call from its
# ``__dict__``: an ``Event`` is a pydantic model, whose ``__getattr__`` hook makes each
# attribute read cost about 40 ns against a dict's 16 (``monitor.tracker``'s fields, the same).
_RESOLVE_FIELDS = itemgetter("pipeline", "phase", "run_date", "processor", "mode", "status")

_Bounds = tuple[datetime | None, datetime | None]
"""[start, end) of a mode's window (``PipelineConfig.mode_window_bounds``); None: open."""


class _Windows:
    """The windows the events of one body are checked against, each worked out once: per
    pipeline the run dates accepted ``now`` (and its today), per run date and mode the
    mode's window (``PipelineConfig.mode_window_bounds``: two zone conversions, 3.3 µs)."""

    def __init__(self, config: Config, now: datetime) -> None:
        self.config = config
        self.now = now
        self._run_dates: dict[str, tuple[date, date, date]] = {}
        self._modes: dict[tuple[str, date, str], _Bounds | None] = {}

    def run_dates(self, pipeline: PipelineConfig) -> tuple[date, date, date]:
        """Today in the pipeline's zone, and the first and last run date accepted."""
        found = self._run_dates.get(pipeline.id)
        if found is None:
            today = self.now.astimezone(pipeline.tz).date()
            found = self._run_dates[pipeline.id] = (today, *self.config.runs.window(today))
        return found

    def mode(self, pipeline: PipelineConfig, run_date: date, mode: str) -> _Bounds | None:
        """The window of ``mode`` for ``run_date``; None when no mode rule gives ``mode``."""
        key = (pipeline.id, run_date, mode)
        if key not in self._modes:
            self._modes[key] = pipeline.mode_window_bounds(run_date, mode)
        return self._modes[key]


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
        self.learners: list[Learner] = []
        self.acting: Callable[[], bool] = lambda: True
        self.push_handlers: list[PushHandler] = []  # other kinds of push messages (host.py)
        # Told the processor names a live batch was refused for (a processor renamed in a
        # deploy: its messages are dead-lettered, monitor.app.orphans tells it once).
        self.unknown_listeners: list[UnknownListener] = []
        self._lock = threading.Lock()
        # Judged marks (``judge_from``, ``followed``): the store's position after the last
        # batch appended (a shared store: up to which the leader followed it), the position
        # before each batch still being judged, and the last mark written.
        self._appended: int | None = None
        self._judging: list[int] = []
        # A shared store's leader: its own events it judged as it stored them, not yet
        # passed by ``follow`` (which passes them by once).
        self._own_judged: set[str] = set()
        self._marked = -1  # judge_from writes the first mark, 0 for an empty store
        self._mark_lock = threading.Lock()
        # Metric children per label set (``_child``).
        self._counters: dict[tuple[str, ...], Counter] = {}
        self._durations: dict[tuple[str, ...], Histogram] = {}
        self._transitions: dict[tuple[str, ...], Counter] = {}
        self._phase_durations: dict[tuple[str, ...], Histogram] = {}

    def resolve(self, events: Sequence[Event], prefix: str = "events", *,
                owned: bool = False, now: datetime | None = None,
                backfill: bool = False, unknown: list[Unknown] | None = None) -> list[Event]:
        """Check names against config and run dates against the window of ``now`` (default:
        the clock's) and, where the pipeline says so, against their mode's window
        (``mode_window.on_mismatch: reject``); canonicalize processor aliases; derive missing
        modes.

        ``owned``: the events were parsed for this call and no one else holds them, so
        they are completed in place rather than copied. ``backfill``: history, whose
        dates are kept as they were (never rejected for a mode mismatch; the accepted
        window still applies).

        One reason for a rejected batch, the first that applies of ``unknown_name``,
        ``run_date_window`` (``runs.accept_past_days`` / ``accept_future_days``) and
        ``date_mismatch`` (``mode_window``); the problems name every bad event.
        ``unknown`` collects the processor names of a known phase that are not configured.
        """
        out: list[Event] = []
        problems: list[Problem] = []
        reasons: set[str] = set()
        single = len(events) == 1
        complete = assign_fields if owned else replace_fields
        windows = _Windows(self.config, now or self.clock.now())
        started: dict[Work, str] = {}  # the work this body starts, and in which mode
        for i, event in enumerate(events):
            resolved = self._resolve_one(event, problems, reasons, complete, backfill,
                                         windows, started, unknown)
            if resolved is not None:
                out.append(resolved)
            elif not single:  # the problem names its field; which event, only now
                problems[-1] = replace(problems[-1], field=f"{prefix}[{i}].{problems[-1].field}")
        if problems:
            raise EventError(next(r for r in REJECTIONS if r in reasons), problems)
        return out

    def _continued(self, event: Event, work: Work, pipeline: PipelineConfig, ruled: str,
                   started: Mapping[Work, str], windows: _Windows) -> str:
        """The mode of an event that has none and is not a start: the mode of the one run
        in which its ``work`` is under way (started earlier in the same body, else
        ``RunTracker.modes_under_way``) when the event's time fits that mode's window
        (``mode_window``), else ``ruled`` (the mode rules'). Work that crosses midnight
        keeps its run: the rules would give its start (run date today: same_day) and its
        finish (run date yesterday: overnight) two runs."""
        in_body = started.get(work)
        modes = [in_body] if in_body is not None else self.tracker.modes_under_way(
            work, pipeline.rule_modes)
        if len(modes) != 1 or modes[0] == ruled:
            return ruled
        bounds = windows.mode(pipeline, event.run_date, modes[0])
        return modes[0] if bounds is not None and within(event.timestamp, bounds) else ruled

    def _resolve_one(self, event: Event, problems: list[Problem],
                     reasons: set[str], complete: Callable[[Event, dict[str, object]], Event],
                     backfill: bool, windows: _Windows,
                     started: dict[Work, str], unknown: list[Unknown] | None = None) -> Event | None:
        """The event resolved, or None with one problem added (its field not yet prefixed
        with the event's place in the body)."""
        pipeline_id, phase_id, run_date, processor, given_mode, status = _RESOLVE_FIELDS(
            event.__dict__)
        pipeline = self.config.pipeline_map.get(pipeline_id)
        if pipeline is None:
            problems.append(Problem(
                "pipeline",
                f"unknown pipeline; allowed: {', '.join(sorted(self.config.pipeline_map))}",
                render_value(pipeline_id),
            ))
            reasons.add("unknown_name")
            return None
        phase = pipeline.phase_map.get(phase_id)
        if phase is None:
            problems.append(Problem(
                "phase",
                f"unknown phase of {pipeline.id}; allowed: {', '.join(pipeline.phase_map)}",
                render_value(phase_id),
            ))
            reasons.add("unknown_name")
            return None
        today, first, last = windows.run_dates(pipeline)
        if not first <= run_date <= last:
            problems.append(Problem("run_date", self.config.runs.outside(today, pipeline.timezone),
                                    render_value(run_date.isoformat())))
            reasons.add("run_date_window")
            return None
        update: dict[str, object] = {}
        canonical: str | None = None
        if processor is not None:
            canonical = phase.canonical_names.get(processor)
            if canonical is None:
                allowed = ", ".join(p.name for p in phase.processors) or "none (phase-level only)"
                problems.append(Problem(
                    "processor",
                    f"unknown processor of {pipeline.id}/{phase.id}; allowed: {allowed}",
                    render_value(processor),
                ))
                reasons.add("unknown_name")
                if unknown is not None:
                    unknown.append((pipeline.id, phase.id, processor))
                return None
            if canonical != processor:
                update["processor"] = canonical
        work: Work | None = None  # only an event without a mode, or a start, needs it
        if given_mode is None or status == "started":
            work = (pipeline_id, run_date, phase_id, canonical, event.invocation_id)
        if given_mode is None:
            assert work is not None
            today = event.timestamp.astimezone(pipeline.tz).date()
            mode = pipeline.mode_for(run_date, today)
            if status != "started" and mode is not None:
                mode = self._continued(event, work, pipeline, mode, started, windows)
            if mode is None:
                problems.append(Problem(
                    "mode",
                    "required: no mode rule of this pipeline matches the run date; allowed: "
                    "overnight, same_day, tomorrow, backfill",
                ))
                reasons.add("unknown_name")
                return None
            update["mode"] = mode
        elif not backfill and pipeline.mode_window.on_mismatch == "reject":
            bounds = windows.mode(pipeline, run_date, given_mode)
            why = (None if bounds is None or within(event.timestamp, bounds)
                   else pipeline.mode_mismatch(run_date, given_mode, event.timestamp))
            if why is not None:
                problems.append(Problem(
                    "run_date", f"outside its mode's window: {why}; allowed: a run "
                    "date that fits the mode (or another mode)",
                    render_value(run_date.isoformat()),
                ))
                reasons.add("date_mismatch")
                return None
        if work is not None and status == "started":  # what later events of the body continue
            started[work] = str(update.get("mode", given_mode))
        return complete(event, update) if update else event

    def ingest(self, events: Sequence[Event], prefix: str = "events", *,
               owned: bool = False, backfill: bool = False,
               unknown: list[Unknown] | None = None, count: bool = True) -> IngestResult:
        """Store a batch all or nothing, then fold the new events into state and telemetry.

        ``owned``: as for ``resolve`` (the request-body paths parse their own events).
        ``backfill``: imported history; listeners learn from it but never act or alert.
        ``unknown``: as for ``resolve``. ``count``: a refused batch is counted as a
        rejection (not when a dead letter is redriven: it was counted when it arrived).
        """
        with self._lock:  # names and modes resolved against the run state this batch meets
            try:
                resolved = self.resolve(events, prefix, owned=owned, backfill=backfill,
                                        unknown=unknown)
            except EventError as exc:
                if count:
                    self.reject(exc)
                raise
            now = self.clock.now()
            shared = self.store.shared
            acting = not shared or self.acting()
            result = self.store.append(resolved, now, backfill=backfill)
            stored = [e for e, new in zip(resolved, result.inserted, strict=True) if new]
            # A shared store's follower folds its events in once the leader's mark passes them.
            updates = [u for e in stored if (u := self._apply(e, now)) is not None] if acting else []
            before: int | None = None
            last: int | None = None
            if not shared:  # kept from ``judge_from`` on
                if self._appended is not None and result.accepted and result.position is not None:
                    before = self._appended
                    self._appended = result.position
            elif acting and result.first is not None and self._appended is not None:
                # A leader that follows the store (``followed``; not ``phasewatch import``).
                before, last = result.first - 1, result.last
                self._own_judged.update(e.event_id for e in stored)
            if before is not None:
                self._judging.append(before)
        if backfill:
            updates = [replace(update, backfill=True) for update in updates]
        if result.duplicates:
            self.metrics.duplicates.inc(result.duplicates)
        self._observe(updates)
        self._dispatch(updates)
        if before is not None:
            self._judged(before, last)
        self.metrics.runs_tracked.set(len(self.tracker))
        return IngestResult(result.accepted, result.duplicates)

    def judge_from(self, position: int) -> None:
        """Keep the store's judged mark (``EventStore.judged``) from now on: every event up to
        ``position`` is judged, and each batch appended after it is once its listeners have
        run (``serve``: a restart judges the events stored after the mark, those a kill left
        unjudged). Only for a store of one process (appends return their position)."""
        with self._lock:
            self._appended = position
        self._mark(position)

    @property
    def own_judged(self) -> set[str]:
        """The ids of events this process judged as it stored them and no ``follow`` has
        passed yet (a shared store's leader): ``EventStore.tail(skip=...)`` leaves them out
        unread. An id is in it only once its event is folded in."""
        return self._own_judged

    def followed(self, position: int) -> None:
        """A shared store's leader judged every event up to ``position``, its own as it
        stored them and the others' as it followed them: keep the mark there (not past a
        batch of its own still being judged) from now on."""
        with self._lock:
            self._appended = max(position, self._appended or 0)
            judged = min([*self._judging, self._appended])
        self._mark(judged)

    def _judged(self, before: int, last: int | None = None) -> None:
        """The batch appended after ``before`` is judged: mark up to where every batch is
        (not past a batch appended earlier and still being judged on another thread, nor,
        on a shared store, past where the leader followed it, unless its own batch, up to
        ``last``, came right after that)."""
        with self._lock:
            self._judging.remove(before)
            if self._appended is None or (self.store.shared and not self.acting()):
                return
            if last is not None and self._appended == before:
                self._appended = last
            judged = min([*self._judging, self._appended])
        self._mark(judged)

    def _mark(self, position: int) -> None:
        with self._mark_lock:  # written in order: a mark never goes back
            if position <= self._marked:
                return
            try:
                self.store.mark_judged(position)
            except Exception:  # the batch is stored and judged: a restart judges it again
                self.metrics.telemetry_errors.labels("judged_mark").inc()
                log.exception("event=store.mark_failed position=%d", position)
                return
            self._marked = position

    def _apply(self, event: Event, now: datetime) -> Update | None:
        """Fold a stored event into run state; a failure here is logged, never a 5xx for a stored event."""
        try:
            return self.tracker.apply(event, now)
        except Exception:
            self.metrics.telemetry_errors.labels("tracker").inc()
            log.exception("event=tracker.apply_failed event_id=%s", event.event_id)
            return None

    def _observe(self, updates: Sequence[Update]) -> None:
        """Metrics and spans of a stored batch: ``phasewatch_events_total`` once per label
        set, a processor run's duration and a phase's transition as they happen."""
        counts: dict[tuple[str, str, str, str], int] = {}
        m = self.metrics
        tracing = self.tracer.enabled
        for update in updates:
            pipeline, phase, processor, status = update.key
            key = (pipeline, phase, processor or "", status)
            counts[key] = counts.get(key, 0) + 1
            if update.duration_s is not None and processor is not None:
                _child(m.processor_duration, self._durations, key).observe(update.duration_s)
            if update.phase_completed or update.phase_failed:
                self._transition(update)
            if tracing:
                self.tracer.on_update(update)
        for labels, count in counts.items():
            _child(m.events, self._counters, labels).inc(count)

    def _transition(self, update: Update) -> None:
        event = update.event
        m = self.metrics
        if update.phase_completed:
            _child(m.phase_transitions, self._transitions,
                   (event.pipeline, event.phase, "completed")).inc()
            start = update.phase.first_start
            if start is not None:
                seconds = max((event.timestamp - start).total_seconds(), 0.0)
                _child(m.phase_duration, self._phase_durations,
                       (event.pipeline, event.phase, update.run.mode)).observe(seconds)
        if update.phase_failed:
            _child(m.phase_transitions, self._transitions,
                   (event.pipeline, event.phase, "failed")).inc()

    def _dispatch(self, updates: Sequence[Update], acting: bool | None = None) -> None:
        if not updates:
            return
        if self.acting() if acting is None else acting:
            for listener in self.listeners:
                try:
                    listener(updates)
                except Exception:
                    log.exception("event=listener.failed listener=%r", listener)
            return
        for update in updates:
            for learner in self.learners:
                try:
                    learner(update)
                except Exception:
                    log.exception("event=listener.failed listener=%r", learner)

    def follow(self, events: Sequence[Tailed], *, acting: bool | None = None) -> int:
        """Fold in stored events (validated when they were stored): run state, then the
        listeners, or the learners when not ``acting`` (default: ``acting()``). An event
        this process judged as it stored it is passed by. Metrics and spans only for this
        process's own events on a shared store (it stored them without folding them in)."""
        with self._lock:
            now = self.clock.now()
            judged, own = self._own_judged, []
            updates = []
            for t in events:
                if t.own and t.event.event_id in judged:
                    judged.discard(t.event.event_id)
                    continue
                update = self._apply(t.event, now)
                if update is None:
                    continue
                if t.backfill:
                    update = replace(update, backfill=True)
                updates.append(update)
                if t.own:
                    own.append(update)
        if own and self.store.shared:
            self._observe(own)
        self._dispatch(updates, acting)
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

    def _tell_unknown(self, unknown: Sequence[Unknown]) -> None:
        """Tell the listeners of the names a dead-lettered message carried. Only there: a
        POST refused for them answers 422 naming the field, and writes nothing at all."""
        if not self.acting():
            return
        now = self.clock.now()
        names = list(dict.fromkeys(unknown))
        for listener in self.unknown_listeners:
            try:
                listener(names, now)
            except Exception:  # the rejection stands; telling it must not turn it into a 5xx
                log.exception("event=collector.unknown_listener_failed")

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
        unknown: list[Unknown] = []
        try:
            return self._push_data(message.data, unknown)
        except EventError as exc:
            dead = self._dead_letter(envelope.subscription, message.message_id, exc, message.data)
            if unknown:
                self._tell_unknown(unknown)
            return dead

    def _push_data(self, data: str, unknown: list[Unknown], *, count: bool = True) -> PushResult:
        """A push message's ``data`` (base64) through the push path: to the handler of
        another kind of message that takes it, else parsed as events and ingested. Raises
        EventError (counted as a rejection when ``count``) when it is not valid now."""
        try:
            raw = decode_push_data(data)
            for handler in self.push_handlers:
                outcome = handler(raw)
                if outcome is not None:
                    return PushResult(outcome)
            events = parse_events(raw, "application/json")
        except EventError as exc:
            if count:
                self.reject(exc)
            raise
        result = self.ingest(events, owned=True, unknown=unknown, count=count)
        return PushResult("stored" if result.accepted else "duplicate")

    def redrive(self, letters: Sequence[DeadLetter]) -> Redrive:
        """Put dead letters through the push path again, under the config of now (a name
        added since, as a processor or an alias, is known). Each letter whose message is
        stored, a duplicate or taken by another kind's handler is deleted, after its events
        are stored (a crash between the two loses nothing: the next redrive finds them
        duplicates); a letter still invalid is kept as it was (its stored reason is why it
        was refused on arrival) and reported with why it is refused now. Its events are
        judged as a late Pub/Sub redelivery's: the actionable horizon keeps runs long over
        quiet. A name still unknown is not told again (``unknown_processor`` was raised when
        the letter arrived). Store failures propagate before any letter is deleted: the
        letters whose events were stored stay, found duplicates by the next redrive."""
        done: list[int] = []
        replayed = duplicates = 0
        invalid: list[tuple[DeadLetter, EventError]] = []
        for letter in letters:
            try:
                result = self._push_data(letter.payload, [], count=False)
            except EventError as exc:
                invalid.append((letter, exc))
                continue
            done.append(letter.id)
            if result.outcome == "duplicate":
                duplicates += 1
            else:
                replayed += 1
        self.store.remove_dead_letters(done)
        if letters:
            log.info("event=dead_letters.redriven replayed=%d duplicates=%d still_invalid=%d",
                     replayed, duplicates, len(invalid))
        return Redrive(replayed, duplicates, tuple(invalid))

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
