"""OpenTelemetry configured by its standard variables, phasewatch's own settings on top.

The exporters are real (OTLP over HTTP and gRPC, Cloud Trace) and export to receivers in
this process that record what they get.
"""

from __future__ import annotations

import logging
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from phasewatch_client.kit.testing import LocalServer, StubReply

from monitor.actuator.sinks import MemorySink
from monitor.app.phasewatch import Phasewatch
from monitor.clock import FakeClock
from monitor.config import Config, apply_environment, load_config
from monitor.telemetry.tracing import build_tracer_provider, run_trace_id
from tests.factories import body, event_dict

TRACE_ID = format(run_trace_id("nba", "2026-01-17", "overnight"), "032x")


@pytest.fixture(autouse=True)
def _no_otel_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    """The SDK reads OTEL_* itself: none leaks in from the machine running the tests."""
    for name in ("OTEL_SERVICE_NAME", "OTEL_RESOURCE_ATTRIBUTES", "OTEL_TRACES_EXPORTER",
                 "OTEL_EXPORTER_OTLP_ENDPOINT", "OTEL_EXPORTER_OTLP_TRACES_ENDPOINT",
                 "OTEL_EXPERIMENTAL_RESOURCE_DETECTORS", "OTEL_SDK_DISABLED"):
        monkeypatch.delenv(name, raising=False)


def _exported_by(config: Config, tmp_path: Path) -> Phasewatch:
    """A phasewatch with the configured exporter that ingested one processor run, flushed."""
    sink = MemorySink()
    pw = Phasewatch.build(config, db_path=tmp_path / "pw.db",
                          clock=FakeClock(datetime(2026, 1, 18, 12, tzinfo=UTC)),
                          sinks={"http": sink, "pubsub": sink, "log": sink})
    pw.collector.ingest_body(body(event_dict(
        "phase2", "succeeded", "2026-01-18T06:00:00Z", "p2_odds_game_lines", duration_s=60)))
    assert pw.tracer.provider is not None, "no exporter was configured"
    assert pw.tracer.provider.force_flush(10_000)
    pw.close()
    return pw


def _spans(request: Any) -> list[Any]:
    return [s for rs in request.resource_spans for ss in rs.scope_spans for s in ss.spans]


def _service_name(request: Any) -> str:
    (rs,) = request.resource_spans
    return next(a.value.string_value for a in rs.resource.attributes if a.key == "service.name")


# --- the measured defects ---------------------------------------------------------------------

def test_otel_traces_exporter_otlp_with_the_standard_endpoint_exports(tmp_path: Path) -> None:
    from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceRequest

    with LocalServer(lambda request: StubReply(200)) as collector:
        config = apply_environment(load_config(), {
            "OTEL_TRACES_EXPORTER": "otlp", "OTEL_EXPORTER_OTLP_ENDPOINT": collector.url,
        })
        _exported_by(config, tmp_path)
        received = [(r.path, r.headers.get("content-type"), r.body) for r in collector.requests]
    assert [(path, kind) for path, kind, _ in received] == [("/v1/traces", "application/x-protobuf")]
    request = ExportTraceServiceRequest.FromString(received[0][2])
    assert [(s.name, s.trace_id.hex()) for s in _spans(request)] == [
        ("processor p2_odds_game_lines", TRACE_ID)]
    assert _service_name(request) == "phasewatch"


def test_otel_service_name_is_kept(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("OTEL_SERVICE_NAME", "nba-watch")
    monkeypatch.setenv("OTEL_RESOURCE_ATTRIBUTES", "deployment.environment=prod,service.name=ignored")
    provider = build_tracer_provider(load_config().telemetry, SimpleSpanProcessor(InMemorySpanExporter()))
    assert provider is not None
    attributes = provider.resource.attributes
    assert attributes["service.name"] == "nba-watch"  # OTEL_SERVICE_NAME wins over the attributes
    assert attributes["deployment.environment"] == "prod"


def test_a_log_line_says_which_exporter_is_active(caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.INFO, logger="monitor.telemetry.tracing")
    build_tracer_provider(apply_environment(load_config(), {}).telemetry)
    assert "event=telemetry.traces exporter=none" in caplog.text
    caplog.clear()
    env = {"OTEL_TRACES_EXPORTER": "otlp", "OTEL_EXPORTER_OTLP_ENDPOINT": "http://127.0.0.1:9"}
    provider = build_tracer_provider(apply_environment(load_config(), env).telemetry)
    assert provider is not None
    provider.shutdown()
    line = next(r.getMessage() for r in caplog.records if "event=telemetry.traces" in r.getMessage())
    assert "exporter=otlp protocol=http/protobuf endpoint=http://127.0.0.1:9/v1/traces" in line
    assert "service_name=phasewatch" in line

