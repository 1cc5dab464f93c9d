"""The publisher: one "data available" event per completed phase of a dataset, exactly once.

When a phase of a configured dataset becomes complete (a collector listener, after the
event is stored), its completion is recorded under the next *generation* of (run, phase):
0 the first time, 1 after a re-run completes it again. A completion whose data checks are
configured waits until each check has a result measured after the completion that passes
(``publish`` job, every tick); with no checks it is released at once; if the checks do not
pass within ``checks_within_h`` it is withheld and a warning says so. Releasing writes one
outbox row per destination (the CloudEvent's Pub/Sub message, the OpenLineage RunEvent) in
the same transaction, so a restart neither loses nor repeats a decision.

Delivery claims each due row, sends it, and records the outcome: delivered, or retried with
full jitter (in order per dataset: a later message of a dataset waits for an earlier one),
or failed after ``retry.give_up_after_h``. On real time it runs on a worker thread of its
own, never on the ingest path; on simulated time (replay, tests) inline. A crash between a
destination's acceptance and the commit sends that message again after restart: at least
once, with the same ``ce-id`` for consumers to drop the repeat.

Backfills and history never publish: an imported event (``update.backfill``) or one outside
the pipeline's actionable horizon (``monitor.horizon``) records its completion as
``skipped``.
"""

from __future__ import annotations

import logging
import random
import threading
import uuid
from collections.abc import Mapping
from concurrent.futures import ThreadPoolExecutor
from datetime import datetime, timedelta
from typing import TYPE_CHECKING, Any, Protocol, cast

from phasewatch_client.retry import delay, wait_full_jitter
from prometheus_client import CollectorRegistry, Counter

from alerts.model import Alert, alert_key
from alerts.router import Router
from monitor import horizon
from monitor.clock import Clock, SystemClock
from monitor.config import Config
from monitor.errors import ConfigError, Problem
from monitor.publish import lineage
from monitor.publish.cloudevent import Completion, build_event, event_id, pubsub_message
from monitor.publish.config import DatasetConfig
from monitor.publish.senders import Sender, SendResult, default_senders
from monitor.publish.store import CompletionRow, OutboxRow, PublishStore, Queued
from monitor.store.base import ComponentStore
from monitor.tracker import RunState, RunTracker, Update

if TYPE_CHECKING:
    from monitor.host import Host

log = logging.getLogger(__name__)

STALE_CLAIM = timedelta(minutes=10)
SEEN_FOR = timedelta(days=3)  # completions remembered in memory (older ones are history)
WITHHELD, UNDELIVERED = "dataset_withheld", "dataset_event_undelivered"


class CheckReading(Protocol):
    """A data check's result (the actuator's ``CheckValue``)."""

    @property
    def value(self) -> float: ...

    @property
    def at(self) -> datetime: ...


class CheckReader(Protocol):
    """Where check results are read (the actuator's check source: the store live, the
    replay's ``check`` lines)."""

    def latest(self, name: str) -> CheckReading | None: ...


class Publisher:
    """Records completions, judges their checks, and delivers their events from an outbox."""

    def __init__(self, config: Config, clock: Clock, db: ComponentStore, tracker: RunTracker,
                 router: Router, checks: CheckReader, senders: Mapping[str, Sender], *,
                 registry: CollectorRegistry | None = None, background: bool | None = None,
                 seed: int | None = None) -> None:
        self.config = config
        self.cfg = config.publish
        self.clock = clock
        self.tracker = tracker
        self.router = router
        self.checks = checks
        self.senders = dict(senders)
        self.store = PublishStore(db)
        self.background = isinstance(clock, SystemClock) if background is None else background
        self.rng = random.Random(None if self.background else (seed or 0))
        self._lock = threading.Lock()  # one delivery pass at a time
        self._pool_lock = threading.Lock()
        self._seen: set[tuple[tuple[str, str, str], str, datetime]] = set()
        self._pool: ThreadPoolExecutor | None = None
        self._queued = threading.Event()
        self.completions = Counter(
            "phasewatch_dataset_completions", "Completed phases of datasets, by what became of "
            "them (released, withheld, skipped).", ["dataset", "state"], registry=registry)
        self.sends = Counter(
            "phasewatch_dataset_events", '"Data available" messages by dataset, destination and '
            "outcome (delivered, retry, failed).", ["dataset", "sink", "outcome"], registry=registry)
        released = self.store.release_claims()
        if released:
            log.warning("event=publish.resumed sends=%d (interrupted by a stop)", released)

    # --- completions ------------------------------------------------------------------

    def on_update(self, update: Update) -> None:
        """Collector listener: a phase of a dataset became complete."""
        if not update.phase_completed or update.phase.completed_at is None:
            return
        dataset = self.cfg.by_phase.get((update.run.pipeline, update.phase.phase))
        if dataset is None or update.run.mode not in dataset.modes:
            return
        now = self.clock.now()
        pipeline = self.config.pipeline_map[update.run.pipeline]
        why = "backfill" if update.backfill else horizon.outside(
            pipeline, update.event, update.run.mode, now)
        self._record(dataset, update.run, update.phase.completed_at, why, now)

    def _record(self, dataset: DatasetConfig, run: RunState, completed_at: datetime,
                skip: str | None, now: datetime) -> None:
        seen = (run.key, dataset.phase, completed_at)
        if seen in self._seen:
            return
        row = self.store.record(dataset.name, run.key, dataset.phase, completed_at,
                                "skipped" if skip else "waiting", skip, now)
        self._seen.add(seen)
        if row is None:
            return
        if skip:
            self.completions.labels(dataset.name, "skipped").inc()
            log.info("event=publish.skipped dataset=%s run=%s generation=%d why=%r", dataset.name,
                     "/".join(run.key), row.completion.generation, skip)
            return
        self._judge(row, now)

    def _judge(self, row: CompletionRow, now: datetime) -> None:
        """Release a waiting completion whose checks pass; withhold it once they are late."""
        c = row.completion
        dataset = self.cfg.by_phase.get((c.pipeline, c.phase))
        if dataset is None:
            self.store.withhold(row.id, "the dataset is no longer configured", now)
            return
        values: dict[str, dict[str, Any]] = {}
        waiting: list[str] = []
        for check in dataset.checks:
            reading = self.checks.latest(check.check)
            if reading is None or reading.at < c.completed_at:
                waiting.append(f"{check.check} has no result since the phase completed")
                continue
            run_date = getattr(reading, "run_date", None)  # a result that names its run date
            if run_date is not None and run_date.isoformat() != c.run_date:
                waiting.append(f"{check.check} has no result for {c.run_date} (latest: {run_date})")
                continue
            values[check.check] = {"value": reading.value, "measured_at": reading.at.isoformat(),
                                   "condition": check.condition()}
            if not check.passes(reading.value):
                waiting.append(f"{check.check} = {reading.value:g} (needs {check.condition()})")
        if not waiting:
            self._release(row, dataset, values, now)
        elif now - c.completed_at >= timedelta(hours=dataset.checks_within_h):
            self._withhold(row, dataset, "; ".join(waiting), now)

    def _release(self, row: CompletionRow, dataset: DatasetConfig,
                 checks: dict[str, dict[str, Any]], now: datetime) -> None:
        c = row.completion
        data, outputs = self._data(c, dataset, checks)
        queued = []
        if "pubsub" in self.cfg.sinks():
            event = build_event(c, data, event_type=self.cfg.type, source=self.cfg.source)
            queued.append(Queued("pubsub", event_id(c), dataset.name,
                                 pubsub_message(event, dataset.name).as_dict()))
        if "openlineage" in self.cfg.sinks():
            queued.append(Queued("openlineage", event_id(c), dataset.name, {
                "completion": data["completion"], "outputs": outputs}))
        if not self.store.release(row.id, queued, now):
            return
        self.completions.labels(dataset.name, "released").inc()
        log.info("event=publish.released dataset=%s run=%s/%s/%s generation=%d", dataset.name,
                 c.pipeline, c.run_date, c.mode, c.generation)
        self.router.resolve(alert_key(WITHHELD, self._run_labels(c)), now)
        self.kick()

    def _withhold(self, row: CompletionRow, dataset: DatasetConfig, why: str, now: datetime) -> None:
        if not self.store.withhold(row.id, why, now):
            return
        c = row.completion
        self.completions.labels(dataset.name, "withheld").inc()
        log.warning("event=publish.withheld dataset=%s run=%s/%s/%s why=%r", dataset.name,
                    c.pipeline, c.run_date, c.mode, why)
        labels = self._run_labels(c)
        self.router.fire(Alert(
            alert_key(WITHHELD, labels), "warning",
            f"dataset {dataset.name} {c.run_date} ({c.mode}) not published: {c.phase} completed "
            f"at {c.completed_at.isoformat()} but its checks did not pass within "
            f"{dataset.checks_within_h:g} h: {why}", now, "",
            {"alertname": WITHHELD, **labels, "phase": c.phase}))

    @staticmethod
    def _run_labels(c: Completion) -> dict[str, str]:
        return {"dataset": c.dataset, "pipeline": c.pipeline, "run_date": c.run_date, "mode": c.mode}

    def _data(self, c: Completion, dataset: DatasetConfig, checks: dict[str, dict[str, Any]]
              ) -> tuple[dict[str, Any], list[tuple[str, int | None]]]:
        """The event's data (the run, row counts, check values) and the lineage outputs."""
        run = self.tracker.get((c.pipeline, c.run_date, c.mode))
        phase_cfg = self.config.pipeline_map[c.pipeline].phase_map[c.phase]
        processors: list[dict[str, Any]] = []
        row_counts: dict[str, int] = {}
        outputs: list[tuple[str, int | None]] = []
        phase = run.phases.get(c.phase) if run is not None else None
        if phase is not None:
            for name, proc in phase.processors.items():
                processors.append({
                    "name": name, "status": proc.status, "records": proc.records,
                    "expected_records": proc.expected_records,
                    "finished_at": proc.finished_at.isoformat() if proc.finished_at else None,
                    "data_as_of": proc.data_as_of.isoformat() if proc.data_as_of else None,
                })
                if proc.records is not None:
                    row_counts[name] = proc.records
        if dataset.tables:
            outputs = [(t, None) for t in dataset.tables]
        else:
            outputs = [(p.output, row_counts.get(p.name)) for p in phase_cfg.processors
                       if p.output and not p.disabled]
        completion = {"dataset": c.dataset, "pipeline": c.pipeline, "run_date": c.run_date,
                      "mode": c.mode, "phase": c.phase, "generation": c.generation,
                      "completed_at": c.completed_at.isoformat()}
        data = {
            "completion": completion,
            "run": {
                "first_event_at": run.first_event_at.isoformat() if run and run.first_event_at
                else None,
                "phase_started_at": phase.first_start.isoformat() if phase and phase.first_start
                else None,
                "processors": processors,
            },
            "row_counts": row_counts, "records": sum(row_counts.values()) if row_counts else None,
            "checks": checks,
        }
        return data, outputs

    # --- periodic ---------------------------------------------------------------------

    def tick(self, now: datetime) -> None:
        """The ``publish`` job: completions the listener could not see, checks, due sends."""
        self.store.release_claims(older_than=now - STALE_CLAIM)
        self._seen = {s for s in self._seen if now - s[2] < SEEN_FOR}
        self._reconcile(now)
        for row in self.store.waiting():
            self._judge(row, now)
        self.kick()

    def _reconcile(self, now: datetime) -> None:
        """Complete phases of recent runs with no recorded completion (a stop between an
        event's commit and its listener): recorded as the listener would have."""
        for run in self.tracker:
            pipeline = self.config.pipeline_map.get(run.pipeline)
            if pipeline is None or horizon.outside_run_dates(pipeline, run.run_date, run.mode, now):
                continue
            for dataset in self.cfg.datasets:
                if dataset.pipeline != run.pipeline or run.mode not in dataset.modes:
                    continue
                phase = run.phases.get(dataset.phase)
                at = phase.completed_at if phase is not None else None
                if phase is None or at is None or not phase.is_complete():
                    continue
                if now - at > timedelta(hours=pipeline.horizon.max_event_age_h):
                    continue  # history: never published
                self._record(dataset, run, at, None, now)

    # --- delivery ---------------------------------------------------------------------

    def kick(self) -> None:
        """Deliver due messages: now (simulated time) or on the worker (real time)."""
        if not self.background:
            self.deliver(self.clock.now())
            return
        if self._queued.is_set():
            return  # a pass is already waiting to run: it will see this row too
        self._queued.set()
        with self._pool_lock:
            if self._pool is None:
                self._pool = ThreadPoolExecutor(1, "publish")
            pool = self._pool
        pool.submit(self._work)

    def _work(self) -> None:
        self._queued.clear()
        try:
            self.deliver(self.clock.now())
        except Exception:
            log.exception("event=publish.delivery_failed")

    def deliver(self, now: datetime) -> int:
        """Send every due row, in order per (destination, dataset); returns how many went out."""
        with self._lock:
            blocked: set[tuple[str, str]] = set()
            delivered = 0
            for row in self.store.due(now):
                key = (row.sink, row.ordering_key)
                if key in blocked:
                    continue
                token = uuid.uuid4().hex
                if row.next_attempt_at > now or not self.store.claim(row.id, token, now):
                    blocked.add(key)  # later messages of this dataset wait: order holds
                    continue
                if self._send(row, token, now):
                    delivered += 1
                else:
                    blocked.add(key)
            return delivered

    def _send(self, row: OutboxRow, token: str, now: datetime) -> bool:
        sender = self.senders.get(row.sink)
        if sender is None:
            result = SendResult(False, f"no sender for {row.sink!r}", retryable=False)
        else:
            try:
                result = sender.send(row.payload)
            except Exception as exc:  # a sender must not raise; if one does, retry
                log.exception("event=publish.sender_raised sink=%s", row.sink)
                result = SendResult(False, f"sender error: {type(exc).__name__}: {exc}"[:300])
        attempts = row.attempts + 1
        done = self.clock.now()
        dataset = row.ordering_key  # the dataset's name
        if result.ok:
            self.store.finish(row.id, token, {"state": "delivered", "attempts": attempts,
                                              "receipt": result.detail, "last_error": None,
                                              "done_at": done})
            self.sends.labels(dataset, row.sink, "delivered").inc()
            self.router.resolve(alert_key(UNDELIVERED, {"dataset": dataset, "sink": row.sink}), done)
            log.info("event=publish.delivered sink=%s event_id=%s attempts=%d", row.sink,
                     row.event_id, attempts)
            return True
        retry = self.cfg.retry
        give_up = not result.retryable or done - row.created_at >= timedelta(hours=retry.give_up_after_h)
        if give_up:
            self.store.finish(row.id, token, {"state": "failed", "attempts": attempts,
                                              "last_error": result.detail, "done_at": done})
            self.sends.labels(dataset, row.sink, "failed").inc()
            self._fire_undelivered(row, dataset, result, attempts, done)
            return True  # settled: the dataset's next message may go
        wait = delay(wait_full_jitter(retry.initial_s, retry.max_s, self.rng), attempts)
        self.store.finish(row.id, token, {"state": "pending", "attempts": attempts,
                                          "last_error": result.detail,
                                          "next_attempt_at": done + wait})
        self.sends.labels(dataset, row.sink, "retry").inc()
        log.warning("event=publish.retry sink=%s event_id=%s attempt=%d error=%r", row.sink,
                    row.event_id, attempts, result.detail)
        return False

    def _fire_undelivered(self, row: OutboxRow, dataset: str, result: SendResult, attempts: int,
                          now: datetime) -> None:
        labels = {"dataset": dataset, "sink": row.sink}
        self.router.fire(Alert(
            alert_key(UNDELIVERED, labels), "warning",
            f'"data available" event of {dataset} not delivered to {row.sink} after {attempts} '
            f"attempt(s): {result.detail}", now, f"event id {row.event_id}",
            {"alertname": UNDELIVERED, **labels}))

    # --- reads and shutdown -----------------------------------------------------------

    def report(self) -> list[dict[str, Any]]:
        """The replay report's ``datasets``: every completion and what became of it."""
        sent: dict[int, list[str]] = {}
        for message in self.store.outbox():
            if message.state == "delivered":
                sent.setdefault(message.completion, []).append(message.sink)
        out = []
        for row in self.store.completions():
            c = row.completion
            out.append({
                "time": (row.decided_at or row.created_at).isoformat(), "dataset": c.dataset,
                "pipeline": c.pipeline, "run_date": c.run_date, "mode": c.mode, "phase": c.phase,
                "generation": c.generation, "completed_at": c.completed_at.isoformat(),
                "state": row.state, "reason": row.reason, "event_id": event_id(c),
                "delivered_to": sent.get(row.id, []),
            })
        return out

    def wait_idle(self, timeout_s: float = 10.0) -> None:
        """Let a queued delivery pass finish (background mode; tests and shutdown)."""
        with self._pool_lock:
            pool = self._pool
        if pool is not None:
            pool.submit(lambda: None).result(timeout=timeout_s)

    def close(self) -> None:
        with self._pool_lock:
            pool, self._pool = self._pool, None
        if pool is not None:
            pool.shutdown(wait=True)
        for sender in self.senders.values():
            try:
                sender.close()
            except Exception:
                log.warning("event=publish.close_failed", exc_info=True)


def _check_installed(configured: bool, module: str, section: str, extra: str) -> None:
    if configured and not lineage.installed(module):
        raise ConfigError(f"publish.{section}", [Problem(
            "(package)", f"needs {module} (not installed); allowed: pip install "
            f"'phasewatch[{extra}]', or remove publish.{section}")])


def install_publisher(host: Host, checks: CheckReader,
                      senders: Mapping[str, Sender] | None = None) -> Publisher | None:
    """Publish the host's datasets (listener, ``publish`` job, ``datasets`` report); None
    when none are configured. ``senders`` replaces the real ones (replay, tests).
    ConfigError when a configured destination's client library is not installed."""
    cfg = host.config.publish
    if not cfg.datasets:
        return None
    if senders is None:
        _check_installed(cfg.pubsub is not None, "google.cloud.pubsub_v1", "pubsub", "gcp")
        _check_installed(cfg.openlineage is not None, "openlineage.client", "openlineage",
                         "lineage")
    chosen = dict(senders) if senders is not None else default_senders(cfg.pubsub, cfg.openlineage)
    publisher = Publisher(host.config, host.clock, cast(ComponentStore, host.store), host.tracker,
                          host.router, checks, chosen, registry=host.metrics.registry)
    host.add_listener(publisher.on_update)
    host.add_job("publish", publisher.tick)
    host.add_report_section("datasets", publisher.report)
    return publisher
