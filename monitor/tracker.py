"""Run tracking: per run (pipeline, run_date, mode) and phase, what was expected and what happened."""

from __future__ import annotations

import heapq
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta
from operator import itemgetter
from typing import Any, ClassVar

from phasewatch_client.event import TERMINAL

from monitor.clock import Clock
from monitor.config import Config, Expectation
from monitor.events import Event, date_text
from monitor.interest import EventKey

RunKey = tuple[str, str, str]  # (pipeline, run_date ISO, mode)
# One piece of work: (pipeline, run date, phase, processor or None, invocation id or None).
Work = tuple[str, date, str, str | None, str | None]

DONE = frozenset({"succeeded", "skipped"})
# What a status weighs in judging a phase (``PhaseRun.is_complete``, ``is_failed``): done 1,
# failed 2, anything else (None, pending, running, progress) 0.
_STANDING: dict[str | None, int] = {"succeeded": 1, "skipped": 1, "failed": 2}
MAX_OPEN_INVOCATIONS = 1000  # per processor and run: a storm of starts must not grow memory
# The fields ``RunTracker.apply`` reads of every event, taken from the event's ``__dict__`` in
# one call, and the others read from it too: an ``Event`` is a pydantic model, whose
# ``__getattr__`` hook makes each attribute read cost about 40 ns (a plain object's 10, a
# dict's 16), and an event's way through ``apply`` read some twenty.
Fields = dict[str, Any]
_EVENT_FIELDS = itemgetter(
    "run_date", "pipeline", "mode", "timestamp", "phase", "batch_id", "processor", "status"
)


@dataclass
class ProcessorRun:
    """One processor within one run: its latest status and timings."""

    name: str
    status: str = "pending"  # pending | running | succeeded | failed | skipped
    status_at: datetime | None = None
    starts: int = 0
    started_at: datetime | None = None
    finished_at: datetime | None = None
    duration_s: float | None = None
    records: int | None = None
    expected_records: int | None = None
    data_as_of: datetime | None = None
    error: str | None = None
    last_heartbeat: datetime | None = None
    failures: int = 0
    invocations: int = 0  # distinct invocation ids seen
    # Started invocations (by ``invocation_id``) not finished yet, oldest first.
    open_invocations: dict[str, datetime] = field(default_factory=dict)
    # Finished invocations whose start may still arrive (Pub/Sub does not keep order).
    closed_invocations: dict[str, None] = field(default_factory=dict)

    @property
    def coverage(self) -> float | None:
        """What its finish produced: a success its ``records / expected_records`` (1 when it
        reports no figures), a skip or a failure 0 (skipped is not coverage); None while
        it has not finished."""
        if self.status == "succeeded":
            if self.records is None or not self.expected_records:
                return 1.0
            return min(self.records / self.expected_records, 1.0)
        return 0.0 if self.status in TERMINAL else None

    def as_dict(self) -> dict[str, Any]:
        return {
            "name": self.name, "status": self.status, "starts": self.starts,
            "failures": self.failures,
            "started_at": _iso(self.started_at), "finished_at": _iso(self.finished_at),
            "duration_s": self.duration_s, "records": self.records,
            "expected_records": self.expected_records, "data_as_of": _iso(self.data_as_of),
            "error": self.error, "last_heartbeat": _iso(self.last_heartbeat),
            "coverage": self.coverage, "invocations": self.invocations,
            "open_invocations": len(self.open_invocations),
        }


@dataclass
class BatchProgress:
    """Progress of one batch (``done`` of ``total``) and when it last moved."""

    batch_id: str
    processor: str | None
    first_seen: datetime
    updated_at: datetime
    last_progress_at: datetime
    done: int | None = None
    total: int | None = None
    finished: bool = False

    @property
    def fraction(self) -> float | None:
        if self.done is None or not self.total:
            return None
        return self.done / self.total

    def as_dict(self) -> dict[str, Any]:
        return {
            "batch_id": self.batch_id, "processor": self.processor, "done": self.done,
            "total": self.total, "fraction": self.fraction, "finished": self.finished,
            "first_seen": _iso(self.first_seen), "updated_at": _iso(self.updated_at),
            "last_progress_at": _iso(self.last_progress_at),
        }


@dataclass
class PhaseRun:
    """One phase within one run."""

    phase: str
    expectation: Expectation
    processors: dict[str, ProcessorRun] = field(default_factory=dict)
    phase_status: str | None = None  # from phase-level events (no processor)
    phase_started_at: datetime | None = None
    phase_finished_at: datetime | None = None
    phase_duration_s: float | None = None
    first_completion: datetime | None = None
    last_completion: datetime | None = None
    completed_at: datetime | None = None
    failed_at: datetime | None = None
    batches: dict[str, BatchProgress] = field(default_factory=dict)
    # (complete, failed) as the last event applied left them: the next one starts from it
    # instead of judging the phase again (only RunTracker.apply changes a phase).
    judged: tuple[bool, bool] | None = field(default=None, init=False, repr=False, compare=False)

    def names_with(self, statuses: frozenset[str]) -> list[str]:
        return [n for n, p in self.processors.items() if p.status in statuses]

    @property
    def done(self) -> list[str]:
        """Expected processors that succeeded or were skipped."""
        return [n for n in self.expectation.expected if self._status(n) in DONE]

    @property
    def missing(self) -> list[str]:
        """Expected processors not done (yet)."""
        return [n for n in self.expectation.expected if self._status(n) not in DONE]

    @property
    def critical_missing(self) -> list[str]:
        return [n for n in self.expectation.critical if self._status(n) not in DONE]

    def _status(self, name: str) -> str:
        proc = self.processors.get(name)
        return proc.status if proc else "pending"

    @property
    def first_start(self) -> datetime | None:
        starts = [p.started_at for p in self.processors.values() if p.started_at]
        if self.phase_started_at:
            starts.append(self.phase_started_at)
        return min(starts) if starts else None

    @property
    def coverage(self) -> float | None:
        """Share of the expected work that produced data: the mean of the expected
        processors' ``coverage`` (0 for one not finished); a phase without expected
        processors by its phase-level finish (success 1, skip or failure 0). None before
        anything finished. A phase whose processors all skipped has coverage 0."""
        expected = self.expectation.expected
        values = [p.coverage for n in expected if (p := self.processors.get(n)) is not None]
        if any(v is not None for v in values):
            return sum(v or 0.0 for v in values) / len(expected)
        if self.phase_status in TERMINAL:
            return 1.0 if self.phase_status == "succeeded" else 0.0
        return None

    def is_complete(self) -> bool:
        """Complete: a phase-level success or skip (the phase-level finish closes it, as a
        processor-level one closes its processor), or enough expected processors done with
        all critical."""
        if self.phase_status in DONE:
            return True
        expected, critical, required = self.expectation
        if not expected:
            return False
        # Runs on every event (twice): loops instead of the list-building properties.
        processors = self.processors
        for name in critical:
            proc = processors.get(name)
            if proc is None or proc.status not in DONE:
                return False
        done = 0
        for name in expected:
            proc = processors.get(name)
            if proc is not None and proc.status in DONE:
                done += 1
        return done >= required

    def completion_time(self) -> datetime | None:
        """When a complete phase completed, in event time: the latest needed event's own
        timestamp, whatever order the events arrived in (None while it is not complete).

        Needed: every critical processor and enough expected ones for ``required_count``
        (the earliest done that reach it), or a phase-level success or skip; the earlier of
        the two.
        """
        found: list[datetime] = []
        if self.phase_status in DONE and self.phase_finished_at is not None:
            found.append(self.phase_finished_at)
        expected, critical, required = self.expectation
        done: dict[str, datetime] = {}
        for name in expected:
            proc = self.processors.get(name)
            if proc is not None and proc.status in DONE and proc.status_at is not None:
                done[name] = proc.status_at
        if expected and len(done) >= required and all(c in done for c in critical):
            needed = [done[c] for c in critical]
            if required:
                needed.append(sorted(done.values())[required - 1])
            if needed:
                found.append(max(needed))
        return min(found) if found else None

    def judgement(self) -> tuple[bool, bool]:
        """(``is_complete()``, ``is_failed()``): as the last event applied left them, else
        judged now."""
        if self.judged is not None:
            return self.judged
        complete = self.is_complete()
        return complete, not complete and self._failed_unless_complete()

    def is_failed(self) -> bool:
        """Failed: a phase-level failure, or a critical processor whose latest status is failed."""
        return not self.is_complete() and self._failed_unless_complete()

    def _failed_unless_complete(self) -> bool:
        """is_failed() for a phase already known not to be complete."""
        if self.phase_status == "failed":
            return True
        processors = self.processors
        for name in self.expectation.critical:
            proc = processors.get(name)
            if proc is not None and proc.status == "failed":
                return True
        return False

    def is_degraded(self) -> bool:
        """Degraded: all critical work done, the rest finished but short of complete."""
        expected = self.expectation.expected
        return bool(expected) and not self.critical_missing and all(
            self._status(n) in TERMINAL for n in expected
        ) and not self.is_complete()

    @property
    def status(self) -> str:
        if self.is_complete():
            return "complete"
        if self.is_failed():
            return "failed"
        if self.is_degraded():
            return "degraded"
        if self.processors or self.phase_status:
            return "running"
        return "pending"

    def as_dict(self) -> dict[str, Any]:
        return {
            "phase": self.phase, "status": self.status,
            "expected": list(self.expectation.expected),
            "critical": list(self.expectation.critical),
            "required_count": self.expectation.required_count,
            "done": self.done, "missing": self.missing,
            "failed": self.names_with(frozenset({"failed"})),
            "running": self.names_with(frozenset({"running"})),
            "skipped": self.names_with(frozenset({"skipped"})),
            "coverage": self.coverage,
            "first_start": _iso(self.first_start),
            "first_completion": _iso(self.first_completion),
            "last_completion": _iso(self.last_completion),
            "completed_at": _iso(self.completed_at),
            "processors": [p.as_dict() for p in self.processors.values()],
            "batches": [b.as_dict() for b in self.batches.values()],
        }


@dataclass
class RunState:
    """One run of a pipeline: (pipeline, run_date, mode)."""

    pipeline: str
    run_date: date
    mode: str
    phases: dict[str, PhaseRun]
    first_event_at: datetime | None = None
    last_event_at: datetime | None = None
    seen_at: datetime | None = None  # by the clock: when its latest event arrived

    @property
    def key(self) -> RunKey:
        return (self.pipeline, self.run_date.isoformat(), self.mode)

    def as_dict(self) -> dict[str, Any]:
        return {
            "pipeline": self.pipeline, "run_date": self.run_date.isoformat(), "mode": self.mode,
            "first_event_at": _iso(self.first_event_at),
            "last_event_at": _iso(self.last_event_at),
            "phases": [p.as_dict() for p in self.phases.values()],
        }


@dataclass(slots=True)
class Update:
    """What one event changed, for telemetry and the actions that follow ingest.

    Read-only by convention, not ``frozen``: a frozen dataclass sets each field through
    ``object.__setattr__``, and one is made per stored event (0.96 -> 0.20 µs)."""

    run: RunState
    phase: PhaseRun
    event: Event
    # The event's routing key (pipeline, phase, processor, status: ``monitor.interest``),
    # read once here: the listeners route every event by it, and an ``Event`` is a pydantic
    # model, whose attribute reads cost more than this tuple's (``_EVENT_FIELDS``).
    key: EventKey
    duration_s: float | None = None  # of the processor run this event finished
    started_at: datetime | None = None  # of that processor run
    phase_completed: bool = False  # this event made the phase complete
    phase_failed: bool = False  # this event made the phase fail
    backfill: bool = False  # imported history: feeds state, SLOs and baselines, never acts or alerts


Evicted = Callable[[str, int], None]  # (reason: "age" | "cap", runs)
SWEEP_EVERY = timedelta(hours=1)


class RunTracker:
    """Keeps run state up to date from accepted events, bounded by the clock.

    With a ``clock``, a run is kept while its run date is within ``retention_days`` of
    today (in its pipeline's timezone) or it received an event in the last
    ``retention_days`` (a backfill being loaded); the others are dropped by a sweep at most
    once an hour of the clock. The run dates seen never move that bound: a stray date far
    ahead evicts nothing. ``max_runs`` is a hard cap: past it, the runs whose latest event
    arrived longest ago go first. ``on_evict(reason, n)`` counts both. Without a clock
    (the CLI folding a whole store) nothing is evicted by age.
    """

    # What a snapshot keeps (monitor.app.snapshot); the others are wiring, and a start
    # sweeps at once (``_next_sweep``).
    snapshot_fields: ClassVar[tuple[str, ...]] = ("_runs",)

    def __init__(self, config: Config, retention_days: int = 14, *, clock: Clock | None = None,
                 max_runs: int | None = None, on_evict: Evicted | None = None) -> None:
        self.config = config
        self.retention = timedelta(days=retention_days)
        self.clock = clock
        self.max_runs = max_runs
        self._on_evict = on_evict
        self._runs: dict[RunKey, RunState] = {}
        self._next_sweep: datetime | None = None
        # The run of the last event applied, and the runs that held it (a snapshot puts
        # others in their place): a batch brings a run's events together, and the next
        # event of the same run finds it by three comparisons instead of its key. Forgotten
        # when a sweep or a rebuild drops runs (a new run, which may drop others, replaces it).
        self._last: RunState | None = None
        self._last_in: dict[RunKey, RunState] | None = None

    def __len__(self) -> int:
        return len(self._runs)

    def rebuild(self, events: Iterable[Event]) -> int:
        """Replace state by replaying stored events; returns how many were applied."""
        self._runs.clear()
        self._last = None
        self._next_sweep = None
        count = 0
        for event in events:
            self.apply(event)
            count += 1
        return count

    def _new_run(self, key: RunKey, event: Event, now: datetime | None) -> RunState:
        """The run ``key`` of ``event``, not held yet: made (after a sweep, within the cap)."""
        if now is not None:
            self.sweep(now)
        if self.max_runs is not None and len(self._runs) >= self.max_runs:
            self._evict_oldest_seen(len(self._runs) - self.max_runs + 1)
        pipeline = self.config.pipeline_map[event.pipeline]
        mode = event.mode or ""
        phases = {
            p.id: PhaseRun(p.id, p.expectation(mode)) for p in pipeline.phases
        }
        run = self._runs[key] = RunState(event.pipeline, event.run_date, mode, phases)
        return run

    def sweep(self, now: datetime, *, force: bool = False) -> int:
        """Drop the runs past ``retention`` at ``now`` (at most once an hour unless ``force``)."""
        if not force and self._next_sweep is not None and now < self._next_sweep:
            return 0
        self._next_sweep = now + SWEEP_EVERY
        seen_since = now - self.retention
        oldest: dict[str, date] = {
            p.id: now.astimezone(p.tz).date() - self.retention for p in self.config.pipelines
        }
        stale = [
            key for key, run in self._runs.items()
            if run.run_date < oldest[run.pipeline]
            and (run.seen_at is None or run.seen_at < seen_since)
        ]
        for key in stale:
            del self._runs[key]
        if stale:
            self._last = None
        self._evicted("age", len(stale))
        return len(stale)

    def _evict_oldest_seen(self, count: int) -> None:
        # A run never seen by the clock (no ``now``) counts as seen longest ago.
        floor = datetime.min.replace(tzinfo=UTC)
        oldest = heapq.nsmallest(count, self._runs.values(),
                                 key=lambda r: (r.seen_at or floor, r.run_date))
        for run in oldest:
            del self._runs[run.key]
        self._evicted("cap", len(oldest))

    def _evicted(self, reason: str, count: int) -> None:
        if count and self._on_evict is not None:
            self._on_evict(reason, count)

    def apply(self, event: Event, now: datetime | None = None) -> Update:
        """Fold one accepted event (with its mode resolved) into the run state.

        ``now``: when it arrived (default: the clock's now; the rebuild passes the event's
        own time, which stands for its arrival).
        """
        if now is None and self.clock is not None:
            now = self.clock.now()
        fields: Fields = event.__dict__
        run_date, pipeline, mode, ts, phase_id, batch_id, processor, status = _EVENT_FIELDS(fields)
        run = self._last
        if (run is None or self._last_in is not self._runs or run_date != run.run_date
                or pipeline != run.pipeline or (mode or "") != run.mode):
            key = event.run_key()
            run = self._runs.get(key) or self._new_run(key, event, now)
            self._last, self._last_in = run, self._runs
        if now is not None and (run.seen_at is None or now > run.seen_at):
            run.seen_at = now
        if run.first_event_at is None or ts < run.first_event_at:
            run.first_event_at = ts
        if run.last_event_at is None or ts > run.last_event_at:
            run.last_event_at = ts
        phase = run.phases[phase_id]
        was_complete, was_failed = judged = phase.judged or phase.judgement()
        duration: float | None = None
        started: datetime | None = None
        if batch_id is not None:
            _apply_batch(phase, fields, batch_id, processor, status, ts)
        if processor is None:
            before = phase.phase_status
            duration, started = _apply_phase_event(phase, fields, status, ts)
            after = phase.phase_status
        else:
            proc = phase.processors.get(processor)
            if proc is None:
                proc = phase.processors[processor] = ProcessorRun(processor)
            before = proc.status
            duration, started = _apply_processor_event(proc, fields, status, ts)
            after = proc.status
        if status in DONE:
            if phase.first_completion is None or ts < phase.first_completion:
                phase.first_completion = ts
            if phase.last_completion is None or ts > phase.last_completion:
                phase.last_completion = ts
        # A phase is judged by its statuses' standings alone (done, failed or neither),
        # and this event changed one status at most: judge again only if its standing moved.
        if before is not after and _STANDING.get(before, 0) != _STANDING.get(after, 0):
            is_complete = phase.is_complete()
            is_failed = not is_complete and phase._failed_unless_complete()
            judged = (is_complete, is_failed)
        else:
            is_complete, is_failed = judged
        phase.judged = judged
        completed = not was_complete and is_complete
        failed = not was_failed and is_failed
        if completed:
            phase.completed_at = phase.completion_time() or ts
        if failed:
            phase.failed_at = ts
        return Update(run, phase, event, (pipeline, phase_id, processor, status), duration, started,
                      completed, failed)

    def seen(self, key: RunKey, now: datetime) -> None:
        """An event of a held run arrived at ``now`` that changes nothing else (a repeated
        heartbeat a cold command's rebuild does not apply): the run was seen then."""
        run = self._runs.get(key)
        if run is not None and (run.seen_at is None or now > run.seen_at):
            run.seen_at = now

    def runs(
        self, *, pipeline: str | None = None, run_date: date | None = None
    ) -> list[RunState]:
        """Tracked runs, newest run date first."""
        found = [
            r for r in self._runs.values()
            if (pipeline is None or r.pipeline == pipeline)
            and (run_date is None or r.run_date == run_date)
        ]
        return sorted(found, key=lambda r: (r.run_date, r.pipeline, r.mode), reverse=True)

    def get(self, key: RunKey) -> RunState | None:
        return self._runs.get(key)

    def modes_under_way(self, work: Work, modes: Iterable[str]) -> list[str]:
        """Of ``modes``, those whose run of ``work``'s pipeline and run date has it under
        way: its invocation open there (when it names one), else its processor running
        there (its phase, for phase-level work)."""
        pipeline, run_date, phase_id, processor, invocation = work
        day = date_text(run_date)
        found = []
        for mode in modes:
            run = self._runs.get((pipeline, day, mode))
            phase = run.phases.get(phase_id) if run is not None else None
            if phase is None:
                continue
            if processor is None:
                if phase.phase_status == "running":
                    found.append(mode)
                continue
            proc = phase.processors.get(processor)
            if proc is None:
                continue
            if invocation is not None:
                if invocation in proc.open_invocations:
                    found.append(mode)
            elif proc.status == "running":
                found.append(mode)
        return found

    def __iter__(self) -> Iterator[RunState]:
        return iter(list(self._runs.values()))


def _apply_phase_event(phase: PhaseRun, fields: Fields, status: str,
                       ts: datetime) -> tuple[float | None, datetime | None]:
    """A phase-level finish sets the phase's own status: a success or a skip closes the
    phase (as a processor's closes the processor), a failure fails it. ``fields``: the
    event's (``status`` and ``ts`` among them)."""
    if status == "started":
        if phase.phase_started_at is None or ts < phase.phase_started_at:
            phase.phase_started_at = ts
        if phase.phase_status is None or phase.phase_status == "progress":
            phase.phase_status = "running"
        return None, None
    if status == "progress":
        phase.phase_status = phase.phase_status or "running"
        return None, None
    phase.phase_status = status
    phase.phase_finished_at = ts
    duration = _duration(fields["duration_s"], ts, phase.phase_started_at)
    phase.phase_duration_s = duration
    return duration, phase.phase_started_at


def _apply_processor_event(proc: ProcessorRun, fields: Fields, status: str,
                           ts: datetime) -> tuple[float | None, datetime | None]:
    """``fields``: the event's (``status`` and ``ts`` among them)."""
    if status == "started" or status == "progress":
        heartbeat = proc.last_heartbeat
        if heartbeat is None or ts > heartbeat:
            proc.last_heartbeat = ts
    invocation = fields["invocation_id"]
    if status == "started":
        proc.starts += 1
        if invocation is not None:
            _open_invocation(proc, invocation, ts)
        if proc.status_at is None or ts >= proc.status_at:
            proc.status, proc.status_at = "running", ts
            proc.started_at = ts
        elif proc.started_at is None:
            # The start of a run whose finish came first (a backlog delivered out of
            # order): the processor did start then, though it is no longer running.
            proc.started_at = ts
        return None, None
    if status == "progress":
        if proc.status == "pending":
            proc.status, proc.status_at = "running", ts
        return None, None
    # A finish pairs with its own invocation's start when it names one, else the latest.
    own = None
    if invocation is not None:
        own = proc.open_invocations.pop(invocation, None)
        if own is None:
            _bounded_add(proc.closed_invocations, invocation)
    started = own if own is not None and own <= ts else (
        proc.started_at if proc.started_at and proc.started_at <= ts else None)
    duration = _duration(fields["duration_s"], ts, started)
    if status == "failed":
        proc.failures += 1
    if proc.status_at is None or ts >= proc.status_at:
        proc.status, proc.status_at = status, ts
        proc.finished_at = ts
        proc.duration_s = duration
        records, expected = fields["records"], fields["expected_records"]
        proc.records = records if records is not None else proc.records
        proc.expected_records = expected if expected is not None else proc.expected_records
        proc.data_as_of = fields["data_as_of"] or proc.data_as_of
        proc.error = fields["error"] if status == "failed" else None
    return duration, started if started else _start_from_duration(ts, duration)


def _open_invocation(proc: ProcessorRun, invocation: str, ts: datetime) -> None:
    if invocation in proc.open_invocations:
        return  # a redelivered start
    proc.invocations += 1
    if proc.closed_invocations.pop(invocation, 0) is None:
        return  # its finish came first
    if len(proc.open_invocations) >= MAX_OPEN_INVOCATIONS:
        del proc.open_invocations[next(iter(proc.open_invocations))]
    proc.open_invocations[invocation] = ts


def _bounded_add(ids: dict[str, None], invocation: str) -> None:
    if len(ids) >= MAX_OPEN_INVOCATIONS:
        del ids[next(iter(ids))]
    ids[invocation] = None


def _apply_batch(phase: PhaseRun, fields: Fields, batch_id: str, processor: str | None,
                 status: str, ts: datetime) -> None:
    """``fields``: the event's (the others given among them)."""
    batch = phase.batches.get(batch_id)
    if batch is None:
        batch = phase.batches[batch_id] = BatchProgress(batch_id, processor, ts, ts, ts)
    batch.updated_at = max(batch.updated_at, ts)
    total, done = fields["total"], fields["done"]
    if total is not None:
        batch.total = total
    if done is not None and (batch.done is None or done > batch.done):
        batch.done = done
        batch.last_progress_at = max(batch.last_progress_at, ts)
    if status in TERMINAL:
        batch.finished = True


def _duration(given: float | None, ts: datetime, started: datetime | None) -> float | None:
    """An event's duration: as it gives it, else since ``started`` (its time ``ts``)."""
    if given is not None:
        return given
    if started is None:
        return None
    return max((ts - started).total_seconds(), 0.0)


def _start_from_duration(ts: datetime, duration: float | None) -> datetime | None:
    if duration is None:
        return None
    return ts - timedelta(seconds=duration)


def _iso(when: datetime | None) -> str | None:
    return when.isoformat() if when else None
