"""phasewatch's metrics written to Google Cloud Monitoring (``export.cloud_monitoring``).

The only module that imports google-cloud-monitoring. Each ``export(now)`` reads the
Prometheus registry once and writes one point per series, within the API's limits:

- metric type: the configured prefix followed by the name on ``/metrics``; a metric's
  descriptor is created once per process, before its first point;
- counters are CUMULATIVE from ``start`` (when the registry began counting), gauges GAUGE,
  histograms CUMULATIVE DISTRIBUTION with the histogram's bucket bounds;
- resource ``generic_task`` (project_id, location, namespace, job, a task_id unique per
  instance);
- at most 200 series per ``CreateTimeSeries``, each series once per request and at most
  once per 10 s; points whose end time is outside the write window (25 h back, 5 min ahead)
  when their request is sent are dropped;
- a metric with more than 10 labels, a label key Cloud Monitoring refuses or more than 200
  buckets is not exported at all (logged once, its points counted as dropped): leaving a
  label out would merge series and write wrong values;
- UNAVAILABLE and DEADLINE_EXCEEDED are retried with full jitter. Every attempt is counted,
  a failure is logged once until that method next succeeds, and nothing is raised to the caller
  (a bug aside, which the caller's thread counts).
"""

from __future__ import annotations

import logging
import os
import random
import re
import secrets
import socket
import threading
import time
from collections import Counter
from collections.abc import Callable, Iterable
from contextlib import suppress
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from functools import partial

import google.auth
from google.api import distribution_pb2, label_pb2, metric_pb2, monitored_resource_pb2
from google.api_core import exceptions as api_errors
from google.auth.exceptions import DefaultCredentialsError
from google.cloud import monitoring_v3
from phasewatch_client.retry import wait_full_jitter
from tenacity import Retrying, retry_if_exception_type, stop_after_attempt

from monitor.clock import Clock
from monitor.errors import ConfigError, Problem
from monitor.telemetry.export_config import MIN_INTERVAL_S, CloudMonitoringExportConfig, metric_type
from monitor.telemetry.metrics import Metrics
from monitor.telemetry.snapshot import Buckets, Family, LabelSet, Reading, read

log = logging.getLogger(__name__)

EXPORTER = "cloud_monitoring"  # the ``exporter`` label of the phasewatch_export_* metrics
MAX_SERIES_PER_REQUEST = 200
MAX_LABELS = 10
MAX_BUCKETS = 200
MIN_GAP = timedelta(seconds=MIN_INTERVAL_S)
MAX_AGE = timedelta(hours=25)
MAX_AHEAD = timedelta(minutes=5)
LABEL_KEY = re.compile(r"^[a-z][a-z0-9_]{0,99}$")
RETRYABLE = (api_errors.ServiceUnavailable, api_errors.DeadlineExceeded)
WRITE_SCOPE = "https://www.googleapis.com/auth/monitoring.write"

Kind = metric_pb2.MetricDescriptor.MetricKind
ValueType = metric_pb2.MetricDescriptor.ValueType
KINDS = {"counter": Kind.CUMULATIVE, "gauge": Kind.GAUGE, "histogram": Kind.CUMULATIVE}
UNITS = (("_seconds", "s"), ("_bytes", "By"))  # else "1" (a count or a ratio)


@dataclass
class ExportResult:
    """What one export did: points written, and points dropped by reason."""

    written: int = 0
    dropped: Counter[str] = field(default_factory=Counter)


def default_task_id() -> str:
    """A task id for this process: host, pid and a random part (a restarted process is a new task)."""
    return f"{socket.gethostname()[:60]}-{os.getpid()}-{secrets.token_hex(4)}"


def build(config: CloudMonitoringExportConfig, metrics: Metrics, *, start: datetime,
          clock: Clock) -> CloudMonitoringExporter:
    """An exporter with the application default credentials; ConfigError when there are none
    or no project is known."""
    try:
        credentials, default_project = google.auth.default(scopes=[WRITE_SCOPE])
    except DefaultCredentialsError as exc:
        raise ConfigError("export.cloud_monitoring", [Problem(
            "credentials", f"no Google credentials found ({exc}); allowed: run on Google Cloud, "
            "set GOOGLE_APPLICATION_CREDENTIALS, or remove export.cloud_monitoring",
        )]) from None
    project = config.project or default_project
    if not project:
        raise ConfigError("export.cloud_monitoring", [Problem(
            "project", "not set, and the credentials name no project; allowed: a project id "
            "in the config, or $GOOGLE_CLOUD_PROJECT",
        )])
    client = monitoring_v3.MetricServiceClient(credentials=credentials)
    return CloudMonitoringExporter(config, metrics, client, project=project, start=start, wall=clock)


class CloudMonitoringExporter:
    """Writes the registry of ``metrics`` to Cloud Monitoring; ``export`` never raises an API error."""

    def __init__(
        self, config: CloudMonitoringExportConfig, metrics: Metrics,
        client: monitoring_v3.MetricServiceClient, *, start: datetime, wall: Clock,
        project: str | None = None, task_id: str | None = None, attempts: int = 3,
        sleep: Callable[[float], None] = time.sleep, rng: random.Random | None = None,
    ) -> None:
        """``start``: when the registry began counting (the start of every cumulative point);
        ``wall``: the clock the write window is checked against when a request is sent."""
        project = project or config.project
        if not project:
            raise ValueError("a project is needed: pass project= or set it in the config")
        self.config, self.metrics, self.client = config, metrics, client
        self.start, self.wall, self.attempts, self.sleep = start, wall, attempts, sleep
        self.project_name = f"projects/{project}"
        self.task_id = task_id or default_task_id()
        self.resource = monitored_resource_pb2.MonitoredResource(type="generic_task", labels={
            "project_id": project, "location": config.location, "namespace": config.namespace,
            "job": config.job, "task_id": self.task_id,
        })
        self.wait = wait_full_jitter(initial=1.0, maximum=10.0, rng=rng)
        self._described: set[str] = set()
        self._last_written: dict[tuple[str, LabelSet], datetime] = {}
        self._refused: set[str] = set()
        self._failing: set[str] = set()  # methods whose last request failed (logged)
        self._lock = threading.Lock()

    def export(self, now: datetime, *, attempts: int | None = None) -> ExportResult:
        """Write every series' value as of ``now``; ``attempts`` per request (default: the
        exporter's). Safe to call from several threads: one export runs at a time."""
        result = ExportResult()
        with self._lock:
            if now <= self.start:  # a cumulative point needs an end after its start
                return result
            snapshot = read(self.metrics.registry)
            for name in snapshot.unsupported:
                self._refuse_once(name, "its kind is not exported (counters, gauges and histograms are)")
            due = [r for r in snapshot.readings if self._due(r, now, result)]
            pending: list[tuple[tuple[str, LabelSet], monitoring_v3.TimeSeries]] = []
            families = list(_by_family(due).items())
            for i, (family, readings) in enumerate(families):
                error = self._describe(family, attempts)
                if isinstance(error, RETRYABLE):  # still down after the retries: not this time
                    left = len(pending) + sum(len(rs) for _, rs in families[i:])
                    self._drop(result, "write_failed", left)
                    return result
                if error is not None:
                    self._drop(result, "descriptor_failed", len(readings))
                    continue
                pending += [((family.name, r.labels), self._series(r, now)) for r in readings]
            self._write(pending, now, result, attempts)
        return result

    def metric_type(self, family: Family) -> str:
        return metric_type(self.config.prefix, family.name)

    # --- what is written -------------------------------------------------------------------

    def _due(self, reading: Reading, now: datetime, result: ExportResult) -> bool:
        """Whether ``reading`` is written now; when not, it is counted as dropped."""
        family = reading.family
        refusal = _refusal(family, reading)
        if refusal is not None:
            reason, detail = refusal
            self._refuse_once(family.name, detail)
            self._drop(result, reason, 1)
            return False
        last = self._last_written.get((family.name, reading.labels))
        if last is not None and now - last < MIN_GAP:
            self._drop(result, "too_frequent", 1)
            return False
        return True

    def _series(self, reading: Reading, now: datetime) -> monitoring_v3.TimeSeries:
        family = reading.family
        kind = KINDS[family.kind]
        if kind == Kind.CUMULATIVE:
            interval = monitoring_v3.TimeInterval(start_time=self.start, end_time=now)
        else:
            interval = monitoring_v3.TimeInterval(end_time=now)
        if isinstance(reading.value, Buckets):
            value_type = ValueType.DISTRIBUTION
            value = monitoring_v3.TypedValue(distribution_value=_distribution(reading.value))
        else:
            value_type = ValueType.DOUBLE
            value = monitoring_v3.TypedValue(double_value=reading.value)
        return monitoring_v3.TimeSeries(
            metric=metric_pb2.Metric(type=self.metric_type(family), labels=dict(reading.labels)),
            resource=self.resource, metric_kind=kind, value_type=value_type,
            points=[monitoring_v3.Point(interval=interval, value=value)],
        )

    def _descriptor(self, family: Family) -> metric_pb2.MetricDescriptor:
        unit = next((u for suffix, u in UNITS if family.name.endswith(suffix)), "1")
        return metric_pb2.MetricDescriptor(
            type=self.metric_type(family), metric_kind=KINDS[family.kind],
            value_type=ValueType.DISTRIBUTION if family.kind == "histogram" else ValueType.DOUBLE,
            unit=unit, description=family.documentation, display_name=family.name,
            labels=[label_pb2.LabelDescriptor(key=k, value_type=label_pb2.LabelDescriptor.STRING)
                    for k in family.labels],
        )

    # --- requests --------------------------------------------------------------------------

    def _describe(self, family: Family, attempts: int | None) -> Exception | None:
        """Create ``family``'s descriptor unless this process already has; the error if it failed."""
        metric_type = self.metric_type(family)
        if metric_type in self._described:
            return None
        descriptor = self._descriptor(family)

        def create() -> None:
            with suppress(api_errors.AlreadyExists):  # another instance made the same one
                self.client.create_metric_descriptor(
                    name=self.project_name, metric_descriptor=descriptor,
                    timeout=self.config.timeout_s, retry=None,
                )

        error = self._call("CreateMetricDescriptor", create, attempts)
        if error is None:
            self._described.add(metric_type)
        return error

    def _write(self, pending: list[tuple[tuple[str, LabelSet], monitoring_v3.TimeSeries]],
               now: datetime, result: ExportResult, attempts: int | None) -> None:
        for i in range(0, len(pending), MAX_SERIES_PER_REQUEST):
            batch = pending[i:i + MAX_SERIES_PER_REQUEST]
            outside = self._outside_window(now)
            if outside is not None:
                self._drop(result, outside, len(batch))
                continue
            error = self._call("CreateTimeSeries", partial(
                self.client.create_time_series, name=self.project_name,
                time_series=[s for _, s in batch], timeout=self.config.timeout_s, retry=None,
            ), attempts)
            if error is not None:
                # Still unavailable after the retries: the rest would fail the same way.
                left = len(pending) - i if isinstance(error, RETRYABLE) else len(batch)
                self._drop(result, "write_failed", left)
                if isinstance(error, RETRYABLE):
                    return
                continue
            for key, _ in batch:
                self._last_written[key] = now
            result.written += len(batch)
            self.metrics.export_points.labels(EXPORTER).inc(len(batch))

    def _outside_window(self, end: datetime) -> str | None:
        """The drop reason when the API would refuse a point ending at ``end`` now."""
        wall = self.wall.now()
        if end < wall - MAX_AGE:
            return "too_old"
        if end > wall + MAX_AHEAD:
            return "too_new"
        return None

    def _call(self, method: str, send: Callable[[], object], attempts: int | None) -> Exception | None:
        """``send`` with retries on UNAVAILABLE / DEADLINE_EXCEEDED; the API error it ended with."""

        def attempt() -> None:
            try:
                send()
            except api_errors.GoogleAPICallError as exc:
                status = exc.grpc_status_code
                self._count(method, status.name if status is not None else type(exc).__name__)
                raise
            self._count(method, "ok")

        retrying = Retrying(
            stop=stop_after_attempt(attempts or self.attempts), wait=self.wait,
            retry=retry_if_exception_type(RETRYABLE), sleep=self.sleep, reraise=True,
        )
        try:
            retrying(attempt)
        except api_errors.GoogleAPICallError as exc:
            if method not in self._failing:
                log.warning("event=export.failed exporter=%s method=%s error=%r (logged once; "
                            "failures are counted in phasewatch_export_requests_total until a "
                            "%s succeeds)", EXPORTER, method, exc.message, method)
                self._failing.add(method)
            return exc
        if method in self._failing:
            log.info("event=export.recovered exporter=%s method=%s", EXPORTER, method)
            self._failing.discard(method)
        return None

    # --- accounting ------------------------------------------------------------------------

    def _count(self, method: str, outcome: str) -> None:
        self.metrics.export_requests.labels(EXPORTER, method, outcome).inc()

    def _drop(self, result: ExportResult, reason: str, n: int) -> None:
        if n:
            result.dropped[reason] += n
            self.metrics.export_dropped.labels(EXPORTER, reason).inc(n)

    def _refuse_once(self, name: str, reason: str) -> None:
        if name not in self._refused:
            self._refused.add(name)
            log.warning("event=export.metric_refused exporter=%s metric=%s reason=%r",
                        EXPORTER, name, reason)


def _refusal(family: Family, reading: Reading) -> tuple[str, str] | None:
    """Why Cloud Monitoring would refuse ``reading``'s metric: (reason, detail), or None."""
    if len(family.labels) > MAX_LABELS:
        return "too_many_labels", (f"{len(family.labels)} labels {list(family.labels)}; "
                                   f"Cloud Monitoring takes {MAX_LABELS}")
    bad = [k for k in family.labels if not LABEL_KEY.match(k)]
    if bad:
        return "invalid_label", f"label keys {bad} do not match {LABEL_KEY.pattern}"
    if isinstance(reading.value, Buckets) and len(reading.value.counts) > MAX_BUCKETS:
        return "too_many_buckets", (f"{len(reading.value.counts)} buckets; Cloud Monitoring "
                                    f"takes {MAX_BUCKETS}")
    return None


def _by_family(readings: Iterable[Reading]) -> dict[Family, list[Reading]]:
    grouped: dict[Family, list[Reading]] = {}
    for reading in readings:
        grouped.setdefault(reading.family, []).append(reading)
    return grouped


def _distribution(buckets: Buckets) -> distribution_pb2.Distribution:
    count = buckets.count
    explicit = distribution_pb2.Distribution.BucketOptions.Explicit(bounds=list(buckets.bounds))
    return distribution_pb2.Distribution(
        count=count, mean=buckets.total / count if count else 0.0,
        bucket_options=distribution_pb2.Distribution.BucketOptions(explicit_buckets=explicit),
        bucket_counts=list(buckets.counts),
    )
