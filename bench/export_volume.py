"""Metric export to Cloud Monitoring: what it writes and what it costs; prints figures, asserts nothing.

    python bench/export_volume.py            # after the demo's 12 days (about 30 s of CPU)
    python bench/export_volume.py --quick    # after 2 days (a few seconds)

(a) Volume: the series phasewatch writes after the demo scenario (the bundled NBA config),
    scalar and distribution, and the bytes a month at each interval, counted as Cloud
    Monitoring's pricing counts them (8 bytes a scalar point, 80 a distribution point).
(b) Cost of one export in process: ``CloudMonitoringExporter.export`` of that registry to a
    local gRPC MetricService (the real client; the server runs in this process, so its
    decoding is in the CPU figure too), against the baseline of rendering ``/metrics`` once,
    measured in the same run. Median and spread of the runs, wall and CPU.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
import time
from collections.abc import Callable
from concurrent import futures
from datetime import timedelta
from pathlib import Path
from typing import Any

import grpc
from google.api import metric_pb2
from google.cloud import monitoring_v3
from google.cloud.monitoring_v3.services.metric_service.transports import MetricServiceGrpcTransport
from google.protobuf import empty_pb2

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from monitor.actuator.simulated import simulated
from monitor.app.phasewatch import Phasewatch
from monitor.app.sim.demo import write_scenario
from monitor.app.sim.replay import SimulatedWorld, _peek_start, read_lines, replay
from monitor.clock import FakeClock
from monitor.config import load_config
from monitor.telemetry.cloud_monitoring import CloudMonitoringExporter
from monitor.telemetry.export_config import CloudMonitoringExportConfig
from monitor.telemetry.snapshot import Buckets, read

MONTH_S = 30 * 86_400
SCALAR_BYTES, DISTRIBUTION_BYTES = 8, 80


def demo_phasewatch(days: int) -> Phasewatch:
    """A Phasewatch after replaying the demo scenario of ``days`` days (left open)."""
    path = Path(tempfile.mkdtemp()) / "scenario.jsonl"
    write_scenario(path, days)
    clock = FakeClock(_peek_start(path))  # as run_replay does, which closes its Phasewatch
    world = SimulatedWorld()
    probe, sinks, checks = simulated(world)
    pw = Phasewatch.build(load_config(), db_path=":memory:", clock=clock, probe=probe, sinks=sinks,
                          checks=checks, dry_run_alerts=True)
    replay(read_lines(path, pw), pw, clock, world)
    return pw


def fake_metric_service() -> tuple[grpc.Server, str]:
    def create_time_series(request: Any, context: grpc.ServicerContext) -> Any:
        return empty_pb2.Empty()

    def create_metric_descriptor(request: Any, context: grpc.ServicerContext) -> Any:
        return request.metric_descriptor

    handler = grpc.method_handlers_generic_handler("google.monitoring.v3.MetricService", {
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
    return server, f"127.0.0.1:{port}"


def timed(fn: Callable[[int], object], runs: int) -> tuple[list[float], list[float]]:
    walls, cpus = [], []
    for i in range(runs):
        w, c = time.perf_counter(), time.process_time()
        fn(i)
        walls.append((time.perf_counter() - w) * 1000)
        cpus.append((time.process_time() - c) * 1000)
    return walls, cpus


def row(name: str, walls: list[float], cpus: list[float]) -> str:
    spread = f"{min(walls):.1f}-{max(walls):.1f}"
    return (f"| {name} | {statistics.median(walls):.1f} | {spread} | "
            f"{statistics.median(cpus):.1f} |")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true", help="2 days of demo instead of 12")
    parser.add_argument("--runs", type=int, default=7)
    args = parser.parse_args()
    days = 2 if args.quick else 12

    pw = demo_phasewatch(days)
    readings = read(pw.metrics.registry).readings
    dist = sum(isinstance(r.value, Buckets) for r in readings)
    scalar = len(readings) - dist
    print(f"(a) after {days} demo days: {len({r.family.name for r in readings})} metric types, "
          f"{scalar} scalar series, {dist} distribution series\n")
    print("| interval | points a month | MiB a month |")
    print("|---|---|---|")
    for interval in (60, 300):
        points = MONTH_S // interval
        mib = points * (scalar * SCALAR_BYTES + dist * DISTRIBUTION_BYTES) / 2**20
        print(f"| {interval} s | {points * len(readings):,} | {mib:.0f} |")

    server, address = fake_metric_service()
    try:
        client = monitoring_v3.MetricServiceClient(
            transport=MetricServiceGrpcTransport(channel=grpc.insecure_channel(address)))
        now = pw.clock.now()
        config = CloudMonitoringExportConfig(project="bench-project")
        exporter = CloudMonitoringExporter(config, pw.metrics, client, start=now, wall=pw.clock,
                                           task_id="bench")
        exporter.export(now + timedelta(seconds=60))  # creates the descriptors
        export = timed(lambda i: exporter.export(now + timedelta(seconds=120 + 60 * i)), args.runs)
        exposition = timed(lambda i: pw.metrics.exposition(), args.runs)
    finally:
        server.stop(grace=None)
        pw.close()
    print(f"\n(b) {args.runs} runs, {len(readings)}+ series (ms)\n")
    print("| | median wall | spread | median CPU |")
    print("|---|---|---|---|")
    print(row("render /metrics (baseline)", *exposition))
    print(row("export to Cloud Monitoring", *export))


if __name__ == "__main__":
    main()
