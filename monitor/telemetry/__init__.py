"""Telemetry: Prometheus metrics and OpenTelemetry traces."""

from monitor.telemetry.metrics import DURATION_BUCKETS, Metrics
from monitor.telemetry.tracing import RunTracer, build_tracer_provider, run_trace_id

__all__ = ["DURATION_BUCKETS", "Metrics", "RunTracer", "build_tracer_provider", "run_trace_id"]
