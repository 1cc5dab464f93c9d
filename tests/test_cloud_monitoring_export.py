"""Metric export to Cloud Monitoring, against an in-process gRPC MetricService that records
every request (the fake Google's OpenTelemetry exporter tests with): the real
google-cloud-monitoring client on the wire, the requests decoded back and compared."""

from __future__ import annotations

import logging
import subprocess
import sys
import threading
from collections.abc import Iterator
from concurrent import futures
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import grpc
import pytest
from click.testing import CliRunner
from google.api import metric_pb2
from google.cloud import monitoring_v3
from google.cloud.monitoring_v3.services.metric_service.transports import MetricServiceGrpcTransport
from google.protobuf import empty_pb2, json_format
from prometheus_client import Counter
from prometheus_client.parser import text_string_to_metric_families

from monitor.app.cli.main import main
from monitor.app.phasewatch import Phasewatch
from monitor.clock import FakeClock
from monitor.config import Config, default_config_text, parse_config
from monitor.errors import ConfigError
from monitor.telemetry.cloud_monitoring import CloudMonitoringExporter
from monitor.telemetry.export_config import CloudMonitoringExportConfig, ExportConfig, metric_type
from monitor.telemetry.metrics import Metrics
from monitor.telemetry.periodic import PeriodicExport
from monitor.telemetry.snapshot import read
from tests.factories import make_event

SERVICE = "google.monitoring.v3.MetricService"
T0 = datetime(2026, 1, 18, 12, 0, tzinfo=UTC)
NOW = T0 + timedelta(minutes=5)


@dataclass
class FakeMetricService:
    """Records every request; answers OK, or the queued failures first, or hangs when told."""

    address: str = ""
    calls: list[tuple[str, Any]] = field(default_factory=list)
    fail: list[grpc.StatusCode] = field(default_factory=list)  # next answers of CreateTimeSeries
    fail_descriptors: list[grpc.StatusCode] = field(default_factory=list)  # of CreateMetricDescriptor
    hang: bool = False
    entered: threading.Event = field(default_factory=threading.Event)
    release: threading.Event = field(default_factory=threading.Event)
    lock: threading.Lock = field(default_factory=threading.Lock)

    def answer(self, method: str, request: Any, context: grpc.ServicerContext) -> None:
        with self.lock:
            self.calls.append((method, request))
            queue = self.fail if method == "CreateTimeSeries" else self.fail_descriptors
            code = queue.pop(0) if queue else None
        if self.hang:
            self.entered.set()
            self.release.wait(10)
        if code is not None:
            context.abort(code, "refused by the test")

    def requests(self, method: str) -> list[dict[str, Any]]:
        """The requests to ``method`` as the JSON the REST API documents."""
        with self.lock:
            return [json_format.MessageToDict(r) for m, r in self.calls if m == method]

    def written(self) -> list[dict[str, Any]]:
        return [ts for r in self.requests("CreateTimeSeries") for ts in r["timeSeries"]]


@pytest.fixture
def gcm() -> Iterator[FakeMetricService]:
    fake = FakeMetricService()

    def create_time_series(request: Any, context: grpc.ServicerContext) -> Any:
        fake.answer("CreateTimeSeries", request, context)
        return empty_pb2.Empty()

    def create_metric_descriptor(request: Any, context: grpc.ServicerContext) -> Any:
        fake.answer("CreateMetricDescriptor", request, context)
        return request.metric_descriptor

    handler = grpc.method_handlers_generic_handler(SERVICE, {
        "CreateTimeSeries": grpc.unary_unary_rpc_method_handler(
            create_time_series,
            request_deserializer=monitoring_v3.CreateTimeSeriesRequest.pb().FromString,
            response_serializer=empty_pb2.Empty.SerializeToString),
        "CreateMetricDescriptor": grpc.unary_unary_rpc_method_handler(
            create_metric_descriptor,
            request_deserializer=monitoring_v3.CreateMetricDescriptorRequest.pb().FromString,
            response_serializer=metric_pb2.MetricDescriptor.SerializeToString),
    })
    server = grpc.server(futures.ThreadPoolExecutor(max_workers=2))
    server.add_generic_rpc_handlers((handler,))
    port = server.add_insecure_port("127.0.0.1:0")
    server.start()
    fake.address = f"127.0.0.1:{port}"
    try:
        yield fake
    finally:
        fake.release.set()
        server.stop(grace=None)


@dataclass
class Rig:
    exporter: CloudMonitoringExporter
    metrics: Metrics
    wall: FakeClock
    sleeps: list[float]


CONFIG = CloudMonitoringExportConfig(project="nba-props-platform", location="us-east1")


def make_exporter(gcm: FakeMetricService, metrics: Metrics | None = None,
                  config: CloudMonitoringExportConfig = CONFIG, **kw: Any) -> Rig:
    metrics = metrics or Metrics()
    client = monitoring_v3.MetricServiceClient(
        transport=MetricServiceGrpcTransport(channel=grpc.insecure_channel(gcm.address)))
    wall = FakeClock(NOW)
    sleeps: list[float] = []
    exporter = CloudMonitoringExporter(config, metrics, client, start=T0, wall=wall,
                                       task_id="task-1", sleep=sleeps.append, **kw)
    return Rig(exporter, metrics, wall, sleeps)


def series_count(metrics: Metrics) -> int:
    """Series in the registry now (an export adds its own phasewatch_export_* series)."""
    return len(read(metrics.registry).readings)


def sample(metrics: Metrics, name: str, **labels: str) -> float:
    value = metrics.registry.get_sample_value(name, labels)
    return 0.0 if value is None else value


RESOURCE = {"type": "generic_task", "labels": {
    "project_id": "nba-props-platform", "location": "us-east1", "namespace": "phasewatch",
    "job": "phasewatch", "task_id": "task-1"}}
PREFIX = "workload.googleapis.com/phasewatch/"


def by_type(series: list[dict[str, Any]], name: str) -> list[dict[str, Any]]:
    return [s for s in series if s["metric"]["type"] == metric_type(PREFIX, name)]


def test_series_decode_into_the_expected_kinds_values_and_start_times(gcm: FakeMetricService) -> None:
    rig = make_exporter(gcm)
    m = rig.metrics
    m.events.labels("nba", "phase3", "player_game_summary", "succeeded").inc(3)
    m.service_health.labels("prediction-worker").set(0.5)
    for seconds in (3, 40, 40, 100_000):
        m.processor_duration.labels("nba", "phase3", "player_game_summary", "succeeded").observe(seconds)

    result = rig.exporter.export(NOW)

    series = gcm.written()
    start, end = "2026-01-18T12:00:00Z", "2026-01-18T12:05:00Z"
    assert by_type(series, "phasewatch_events_total") == [{
        "metric": {"type": PREFIX + "events_total", "labels": {
            "pipeline": "nba", "phase": "phase3", "processor": "player_game_summary",
            "status": "succeeded"}},
        "resource": RESOURCE, "metricKind": "CUMULATIVE", "valueType": "DOUBLE",
        "points": [{"interval": {"startTime": start, "endTime": end}, "value": {"doubleValue": 3.0}}],
    }]
    assert by_type(series, "phasewatch_service_health") == [{
        "metric": {"type": PREFIX + "service_health",
                   "labels": {"service": "prediction-worker"}},
        "resource": RESOURCE, "metricKind": "GAUGE", "valueType": "DOUBLE",
        "points": [{"interval": {"endTime": end}, "value": {"doubleValue": 0.5}}],
    }]
    # 17 buckets for the 16 bounds of DURATION_BUCKETS: below 1 s, then one per bound, the last
    # above 86400 s. 3 s falls in (1, 5], the two 40 s in (30, 60], 100000 s in the last.
    counts = ["0", "1", "0", "0", "2"] + ["0"] * 11 + ["1"]
    assert by_type(series, "phasewatch_processor_duration_seconds") == [{
        "metric": {"type": PREFIX + "processor_duration_seconds", "labels": {
            "pipeline": "nba", "phase": "phase3", "processor": "player_game_summary",
            "status": "succeeded"}},
        "resource": RESOURCE, "metricKind": "CUMULATIVE", "valueType": "DISTRIBUTION",
        "points": [{"interval": {"startTime": start, "endTime": end}, "value": {"distributionValue": {
            "count": "4", "mean": (3 + 40 + 40 + 100_000) / 4,
            "bucketOptions": {"explicitBuckets": {"bounds": [
                1.0, 5.0, 15.0, 30.0, 60.0, 120.0, 300.0, 600.0, 900.0, 1800.0, 3600.0, 7200.0,
                14400.0, 28800.0, 57600.0, 86400.0]}},
            "bucketCounts": counts}}}],
    }]
    assert result.written == len(series) and not result.dropped
    assert sample(m, "phasewatch_export_points_total", exporter="cloud_monitoring") == len(series)


def test_every_series_on_metrics_is_written_once_and_described_once(gcm: FakeMetricService) -> None:
    rig = make_exporter(gcm)
    m = rig.metrics
    m.events.labels("nba", "phase2", "bdl_boxscores", "failed").inc()
    m.phase_duration.labels("nba", "phase2", "overnight").observe(600)
    m.runs_tracked.set(4)

    exposed = []
    for at in (NOW, NOW + timedelta(seconds=60)):
        exposed.append(exposed_series(m))
        rig.exporter.export(at)

    requests = gcm.requests("CreateTimeSeries")
    assert len(requests) == 2
    for request, shown in zip(requests, exposed, strict=True):
        written = [("phasewatch_" + s["metric"]["type"].removeprefix(PREFIX),
                    tuple(sorted(s["metric"].get("labels", {}).items()))) for s in request["timeSeries"]]
        assert sorted(written) == sorted(shown)
    # The second export also carries the first one's own phasewatch_export_* counters.
    assert {name for name, _ in exposed[1] - exposed[0]} == {
        "phasewatch_export_points_total", "phasewatch_export_requests_total"}
    descriptors = [r["metricDescriptor"] for r in gcm.requests("CreateMetricDescriptor")]
    types = [d["type"] for d in descriptors]
    assert sorted(types) == sorted({metric_type(PREFIX, name) for name, _ in exposed[1]})  # each once
    events = next(d for d in descriptors if d["type"].endswith("/events_total"))
    assert (events["metricKind"], events["valueType"], events["unit"]) == ("CUMULATIVE", "DOUBLE", "1")
    assert [label["key"] for label in events["labels"]] == ["pipeline", "phase", "processor", "status"]
    phase = next(d for d in descriptors if d["type"].endswith("/phase_duration_seconds"))
    assert (phase["metricKind"], phase["valueType"], phase["unit"]) == ("CUMULATIVE", "DISTRIBUTION", "s")


def series_keys(request: dict[str, Any]) -> set[tuple[str, tuple[tuple[str, str], ...]]]:
    return {(s["metric"]["type"], tuple(sorted(s["metric"].get("labels", {}).items())))
            for s in request["timeSeries"]}


def exposed_series(metrics: Metrics) -> set[tuple[str, tuple[tuple[str, str], ...]]]:
    """The series /metrics shows, parsed from its text: a histogram is one series per label set."""
    shown = set()
    for family in text_string_to_metric_families(metrics.exposition()[0].decode()):
        for s in family.samples:
            if family.type != "histogram":
                shown.add((s.name, tuple(sorted(s.labels.items()))))
            elif s.name.endswith("_count"):
                shown.add((family.name, tuple(sorted(s.labels.items()))))
    return shown


def test_at_most_200_series_per_request_and_one_point_per_series(gcm: FakeMetricService) -> None:
    rig = make_exporter(gcm)
    for i in range(450):
        rig.metrics.rejected.labels(f"reason-{i}").inc()

    result = rig.exporter.export(NOW)

    requests = gcm.requests("CreateTimeSeries")
    sizes = [len(r["timeSeries"]) for r in requests]
    assert max(sizes) == 200 and len(requests) >= 3
    for request in requests:
        keys = [(s["metric"]["type"], tuple(sorted(s["metric"].get("labels", {}).items())))
                for s in request["timeSeries"]]
        assert len(keys) == len(set(keys))  # a series at most once per request
        assert all(len(s["points"]) == 1 for s in request["timeSeries"])
    assert sum(sizes) == result.written
    assert len(by_type(gcm.written(), "phasewatch_events_rejected_total")) == 450


def test_a_series_is_written_at_most_every_10_seconds(gcm: FakeMetricService) -> None:
    rig = make_exporter(gcm)
    first = rig.exporter.export(NOW)
    again = rig.exporter.export(NOW + timedelta(seconds=9))
    later = rig.exporter.export(NOW + timedelta(seconds=10))
    assert again.dropped == {"too_frequent": first.written}
    # Only series first seen since (the first export's own counters) are written 9 s later.
    requests = gcm.requests("CreateTimeSeries")
    assert {s["metric"]["type"] for s in requests[1]["timeSeries"]} == {
        PREFIX + "export_points_total", PREFIX + "export_requests_total"}
    # 10 s after the first: its series again; those written at +9 s wait.
    assert series_keys(requests[0]) <= series_keys(requests[2])
    assert later.dropped == {"too_frequent": again.written}
    assert sample(rig.metrics, "phasewatch_export_points_dropped_total",
                  exporter="cloud_monitoring", reason="too_frequent") == first.written + again.written


@pytest.mark.parametrize(("point_at", "reason"), [
    (NOW - timedelta(hours=25, seconds=1), "too_old"),
    (NOW + timedelta(minutes=5, seconds=1), "too_new"),
])
def test_points_outside_the_write_window_are_dropped_and_counted(
    gcm: FakeMetricService, point_at: datetime, reason: str,
) -> None:
    rig = make_exporter(gcm)  # the wall clock reads NOW
    rig.exporter.start = point_at - timedelta(hours=1)
    series = series_count(rig.metrics)
    result = rig.exporter.export(point_at)
    edge = rig.exporter.export(NOW - timedelta(hours=25) if reason == "too_old" else NOW + timedelta(minutes=5))
    assert result.written == 0 and result.dropped == {reason: series}
    assert sample(rig.metrics, "phasewatch_export_points_dropped_total",
                  exporter="cloud_monitoring", reason=reason) == series
    assert len(gcm.requests("CreateTimeSeries")) == 1 and edge.written > series  # the edge is sent


def test_a_metric_with_more_than_10_labels_is_refused_visibly(
    gcm: FakeMetricService, caplog: pytest.LogCaptureFixture,
) -> None:
    metrics = Metrics()
    wide = Counter("wide_things", "Eleven labels.", [f"l{i}" for i in range(11)], registry=metrics.registry)
    wide.labels(*[str(i) for i in range(11)]).inc()
    rig = make_exporter(gcm, metrics)
    with caplog.at_level(logging.WARNING, logger="monitor.telemetry.cloud_monitoring"):
        first = rig.exporter.export(NOW)
        second = rig.exporter.export(NOW + timedelta(seconds=60))
    written_types = {s["metric"]["type"] for s in gcm.written()}
    described = {r["metricDescriptor"]["type"] for r in gcm.requests("CreateMetricDescriptor")}
    assert PREFIX + "wide_things_total" not in written_types | described
    assert first.dropped == second.dropped == {"too_many_labels": 1}
    assert sample(metrics, "phasewatch_export_points_dropped_total",
                  exporter="cloud_monitoring", reason="too_many_labels") == 2
    refusals = [r.getMessage() for r in caplog.records if "metric_refused" in r.getMessage()]
    assert len(refusals) == 1 and "wide_things_total" in refusals[0] and "11 labels" in refusals[0]


def test_unavailable_is_retried_with_jitter_then_written(gcm: FakeMetricService) -> None:
    rig = make_exporter(gcm)
    gcm.fail = [grpc.StatusCode.UNAVAILABLE, grpc.StatusCode.DEADLINE_EXCEEDED]
    result = rig.exporter.export(NOW)
    first, second, third = gcm.requests("CreateTimeSeries")
    assert first == second == third  # the same request again
    assert result.written == len(third["timeSeries"]) and not result.dropped
    # Full jitter: uniform in [0, 1 s], then [0, 2 s].
    assert len(rig.sleeps) == 2 and 0 <= rig.sleeps[0] <= 1 and 0 <= rig.sleeps[1] <= 2
    count = {o: sample(rig.metrics, "phasewatch_export_requests_total", exporter="cloud_monitoring",
                       method="CreateTimeSeries", outcome=o)
             for o in ("UNAVAILABLE", "DEADLINE_EXCEEDED", "ok")}
    assert count == {"UNAVAILABLE": 1, "DEADLINE_EXCEEDED": 1, "ok": 1}


def test_failures_are_counted_and_logged_once_until_a_success(
    gcm: FakeMetricService, caplog: pytest.LogCaptureFixture,
) -> None:
    rig = make_exporter(gcm)
    rig.metrics.rejected.labels("bad_json").inc()
    counts = []
    with caplog.at_level(logging.INFO, logger="monitor.telemetry.cloud_monitoring"):
        gcm.fail = [grpc.StatusCode.UNAVAILABLE] * 3
        counts.append(series_count(rig.metrics))
        down = rig.exporter.export(NOW)
        gcm.fail = [grpc.StatusCode.INVALID_ARGUMENT]
        counts.append(series_count(rig.metrics))
        invalid = rig.exporter.export(NOW + timedelta(seconds=60))
        counts.append(series_count(rig.metrics))
        up = rig.exporter.export(NOW + timedelta(seconds=120))
    assert down.dropped == {"write_failed": counts[0]} and down.written == 0
    assert invalid.dropped == {"write_failed": counts[1]} and invalid.written == 0
    assert up.written == counts[2] and not up.dropped
    assert len(gcm.requests("CreateTimeSeries")) == 3 + 1 + 1  # INVALID_ARGUMENT is not retried
    assert sample(rig.metrics, "phasewatch_export_points_dropped_total",
                  exporter="cloud_monitoring", reason="write_failed") == counts[0] + counts[1]
    assert sample(rig.metrics, "phasewatch_export_requests_total", exporter="cloud_monitoring",
                  method="CreateTimeSeries", outcome="UNAVAILABLE") == 3
    messages = [r.getMessage() for r in caplog.records]
    assert sum("export.failed" in m for m in messages) == 1
    assert sum("export.recovered" in m for m in messages) == 1


def test_a_failed_descriptor_is_tried_again_and_its_points_wait(gcm: FakeMetricService) -> None:
    rig = make_exporter(gcm)
    gcm.fail_descriptors = [grpc.StatusCode.PERMISSION_DENIED] * 100
    series = series_count(rig.metrics)
    refused = rig.exporter.export(NOW)
    refused_types = {r["metricDescriptor"]["type"] for r in gcm.requests("CreateMetricDescriptor")}
    tried = len(refused_types)
    gcm.fail_descriptors = []
    later = rig.exporter.export(NOW + timedelta(seconds=60))

    assert refused.written == 0 and refused.dropped == {"descriptor_failed": series}
    assert len(gcm.requests("CreateTimeSeries")) == 1 and later.written > series  # only the later
    again = [r["metricDescriptor"]["type"] for r in gcm.requests("CreateMetricDescriptor")][tried:]
    assert refused_types <= set(again)  # each refused descriptor is asked for again
    assert sample(rig.metrics, "phasewatch_export_requests_total", exporter="cloud_monitoring",
                  method="CreateMetricDescriptor", outcome="PERMISSION_DENIED") == tried


def test_ingest_is_not_blocked_while_cloud_monitoring_hangs(
    gcm: FakeMetricService, nba_config: Config, clock: FakeClock, tmp_path: Path,
) -> None:
    config = nba_config.model_copy(update={"export": ExportConfig(cloud_monitoring=CONFIG)})
    pw = Phasewatch.build(config, db_path=tmp_path / "pw.db", clock=clock)
    try:
        clock.advance(60)
        rig = make_exporter(gcm, pw.metrics)
        gcm.hang = True
        pw.start_export(rig.exporter)
        assert pw.export is not None
        pw.export.export_now()
        assert gcm.entered.wait(10), "the export never reached the service"

        event = make_event("phase2", "succeeded", clock.now().isoformat(), "bdl_player_boxscores")
        outcome = pw.ingest([event])  # while the export thread waits on the hung service

        assert outcome.accepted == 1
        assert not gcm.release.is_set() and pw.export.exports == 0
        gcm.hang = False
        gcm.release.set()
        clock.advance(60)
    finally:
        pw.close()  # stops the thread, then writes the last values once
    assert pw.export.exports == 2
    hung, last = gcm.requests("CreateTimeSeries")
    events = PREFIX + "events_total"
    assert not [s for s in hung["timeSeries"] if s["metric"]["type"] == events]  # read before ingest
    [written] = [s for s in last["timeSeries"] if s["metric"]["type"] == events]
    assert written["metric"]["labels"]["processor"] == "bdl_player_boxscores"
    assert written["points"][0]["value"] == {"doubleValue": 1.0}


def test_shutdown_does_not_wait_for_a_hung_request(gcm: FakeMetricService, clock: FakeClock) -> None:
    rig = make_exporter(gcm)
    clock.set(NOW)
    export = PeriodicExport(rig.exporter, clock, 60, rig.metrics, "cloud_monitoring")
    gcm.hang = True
    export.start()
    export.export_now()
    assert gcm.entered.wait(10)
    assert export.shutdown(timeout_s=0.1) is False  # and no last write behind the hung one
    assert len(gcm.calls) == 1
    gcm.hang = False
    gcm.release.set()
    assert export.thread is not None
    export.thread.join(10)  # the thread ends with its export
    assert not export.thread.is_alive() and export.exports == 1


def test_export_config_is_off_by_default_and_refuses_intervals_under_10_s() -> None:
    assert parse_config(default_config_text(), "t").export.cloud_monitoring is None
    with pytest.raises(ConfigError) as info:
        parse_config(default_config_text() + "\nexport: {cloud_monitoring: {interval_s: 5}}\n", "bad.yaml")
    assert str(info.value) == (
        "bad.yaml: export.cloud_monitoring.interval_s: must be at least 10 seconds (Cloud "
        "Monitoring accepts one point per series every 10 s) (got 5)")
    with pytest.raises(ConfigError) as info:
        parse_config(default_config_text() + "\nexport: {cloud_monitoring: {prefix: x.com/}}\n", "bad.yaml")
    assert str(info.value) == (
        "bad.yaml: export.cloud_monitoring.prefix: must start with workload.googleapis.com/ or "
        "custom.googleapis.com/ followed by letters, digits, '_', '.', '-' or '/' (got 'x.com/')")


def test_serve_without_google_credentials_exits_2_naming_the_section(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("GOOGLE_APPLICATION_CREDENTIALS", str(tmp_path / "missing.json"))
    config = tmp_path / "pw.yaml"
    config.write_text(default_config_text() + "\nexport: {cloud_monitoring: {project: p-12345}}\n")
    result = CliRunner().invoke(main, ["serve", "--config", str(config), "--db", str(tmp_path / "pw.db"),
                                       "--port", "0"])
    assert result.exit_code == 2, result.output
    assert "export.cloud_monitoring: credentials: no Google credentials found" in result.output


def test_google_cloud_monitoring_is_loaded_only_when_the_export_is_on() -> None:
    """The command line starts without it (and works without the gcp extra)."""
    code = ("import sys, monitor.app.cli.main; "
            "print(sorted(m for m in sys.modules if m.startswith('google.cloud.monitoring')))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]"


def test_an_unavailable_service_ends_the_export_after_the_retries(gcm: FakeMetricService) -> None:
    rig = make_exporter(gcm)
    gcm.fail_descriptors = [grpc.StatusCode.UNAVAILABLE] * 3
    series = series_count(rig.metrics)
    result = rig.exporter.export(NOW)
    assert len(gcm.calls) == 3  # one descriptor, three attempts, nothing after
    assert result.dropped == {"write_failed": series} and result.written == 0
