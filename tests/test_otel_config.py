"""OpenTelemetry configured by its standard variables, phasewatch's own settings on top.

The exporters are real (OTLP over HTTP and gRPC, Cloud Trace) and export to receivers in
this process that record what they get.
"""

from __future__ import annotations

import functools
import logging
from collections.abc import Iterator
from concurrent import futures
from contextlib import contextmanager
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
from monitor.config import Config, apply_environment, default_config_text, load_config, parse_config
from monitor.errors import ConfigError
from monitor.telemetry.exporters import build_resource
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



# --- more exporters, against receivers that record ---------------------------------------------

@contextmanager
def grpc_receiver(service: str, method: str, request_type: Any, reply: Any) -> Iterator[tuple[str, list[Any]]]:
    """A gRPC server on a free loopback port answering one unary method; yields (address, requests)."""
    import grpc

    received: list[Any] = []

    def answer(request: Any, context: Any) -> Any:
        received.append(request)
        return reply

    handler = grpc.method_handlers_generic_handler(service, {method: grpc.unary_unary_rpc_method_handler(
        answer, request_deserializer=request_type.FromString,
        response_serializer=type(reply).SerializeToString)})
    server = grpc.server(futures.ThreadPoolExecutor(max_workers=2))
    server.add_generic_rpc_handlers((handler,))
    port = server.add_insecure_port("127.0.0.1:0")
    server.start()
    try:
        yield f"127.0.0.1:{port}", received
    finally:
        server.stop(None)


def test_otlp_over_grpc_by_the_standard_protocol_variable(tmp_path: Path) -> None:
    from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import (
        ExportTraceServiceRequest,
        ExportTraceServiceResponse,
    )

    with grpc_receiver("opentelemetry.proto.collector.trace.v1.TraceService", "Export",
                       ExportTraceServiceRequest, ExportTraceServiceResponse()) as (address, received):
        config = apply_environment(load_config(), {
            "OTEL_TRACES_EXPORTER": "otlp", "OTEL_EXPORTER_OTLP_PROTOCOL": "grpc",
            "OTEL_EXPORTER_OTLP_ENDPOINT": f"http://{address}",
        })
        assert (config.telemetry.exporter, config.telemetry.otlp_protocol) == ("otlp", "grpc")
        _exported_by(config, tmp_path)
    (request,) = received
    assert [(s.name, s.trace_id.hex()) for s in _spans(request)] == [
        ("processor p2_odds_game_lines", TRACE_ID)]


def test_cloud_trace_exports_otlp_with_google_credentials_and_the_project(tmp_path: Path) -> None:
    from google.oauth2.credentials import Credentials
    from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceRequest

    from monitor.telemetry.exporters import EXPORTERS, cloud_trace_exporter

    with LocalServer(lambda request: StubReply(200)) as telemetry_api:
        config = apply_environment(load_config(), {
            "OTEL_TRACES_EXPORTER": "gcp_trace", "GOOGLE_CLOUD_PROJECT": "nba-props-prod",
            "OTEL_EXPORTER_OTLP_TRACES_ENDPOINT": f"{telemetry_api.url}/v1/traces"})
        sink = MemorySink()
        credentials = Credentials(token="ya29.test-token")
        exporters = {**EXPORTERS, "gcp_trace": functools.partial(cloud_trace_exporter, credentials=credentials)}
        pw = Phasewatch.build(config, db_path=tmp_path / "pw.db",
                              clock=FakeClock(datetime(2026, 1, 18, 12, tzinfo=UTC)),
                              sinks={"http": sink, "pubsub": sink, "log": sink}, exporters=exporters)
        pw.collector.ingest_body(body(event_dict(
            "phase2", "succeeded", "2026-01-18T06:00:00Z", "p2_odds_game_lines", duration_s=60)))
        assert pw.tracer.provider is not None and pw.tracer.provider.force_flush(10_000)
        pw.close()
        (received,) = telemetry_api.requests
    assert received.path == "/v1/traces"
    assert received.headers["authorization"] == "Bearer ya29.test-token"
    request = ExportTraceServiceRequest.FromString(received.body)
    assert [(s.name, s.trace_id.hex()) for s in _spans(request)] == [
        ("processor p2_odds_game_lines", TRACE_ID)]
    (rs,) = request.resource_spans
    assert {a.key: a.value.string_value for a in rs.resource.attributes}["gcp.project_id"] == "nba-props-prod"


def test_phasewatch_settings_override_the_standard_variables() -> None:
    env = {"OTEL_TRACES_EXPORTER": "otlp", "OTEL_EXPORTER_OTLP_PROTOCOL": "grpc",
           "OTEL_EXPORTER_OTLP_ENDPOINT": "http://collector:4317"}
    assert apply_environment(load_config(), {**env, "PHASEWATCH_TRACES_EXPORTER": "console"}).telemetry.exporter == "console"
    text = default_config_text() + "telemetry:\n  exporter: otlp\n  otlp_protocol: http/protobuf\n" \
        "  otlp_endpoint: http://local:4318/v1/traces\n  service_name: nba-watch\n"
    telemetry = apply_environment(parse_config(text, "t.yaml"), env).telemetry
    assert (telemetry.otlp_protocol, str(telemetry.otlp_endpoint)) == ("http/protobuf", "http://local:4318/v1/traces")
    assert build_resource(telemetry).attributes["service.name"] == "nba-watch"


def test_the_standard_endpoint_variables_as_the_sdk_reads_them() -> None:
    def endpoint(**env: str) -> str | None:
        value = apply_environment(load_config(), env).telemetry.otlp_endpoint
        return None if value is None else str(value)

    assert endpoint(OTEL_TRACES_EXPORTER="otlp") is None  # the SDK's default, localhost
    assert endpoint(OTEL_EXPORTER_OTLP_ENDPOINT="http://c:4318/") == "http://c:4318/v1/traces"
    assert endpoint(OTEL_EXPORTER_OTLP_ENDPOINT="http://c:4318",
                    OTEL_EXPORTER_OTLP_TRACES_ENDPOINT="http://t:9/x") == "http://t:9/x"
    assert endpoint(OTEL_EXPORTER_OTLP_ENDPOINT="http://c:4317", OTEL_EXPORTER_OTLP_PROTOCOL="grpc") == "http://c:4317/"
    assert apply_environment(load_config(), {"OTEL_TRACES_EXPORTER": "otlp", "OTEL_SDK_DISABLED": "true"}
                             ).telemetry.exporter == "none"


@pytest.mark.parametrize(("env", "field", "allowed"), [
    ({"OTEL_TRACES_EXPORTER": "zipkin"}, "OTEL_TRACES_EXPORTER", "none, console, otlp, gcp_trace"),
    ({"OTEL_TRACES_EXPORTER": "otlp,console"}, "OTEL_TRACES_EXPORTER", "(one of them)"),
    ({"OTEL_EXPORTER_OTLP_PROTOCOL": "http/json"}, "OTEL_EXPORTER_OTLP_PROTOCOL", "grpc, http/protobuf"),
    ({"GOOGLE_CLOUD_PROJECT": "Not A Project"}, "telemetry.gcp_project", "should match pattern"),
])
def test_bad_standard_variables_name_the_variable(env: dict[str, str], field: str, allowed: str) -> None:
    with pytest.raises(ConfigError) as info:
        apply_environment(load_config(), env)
    (problem,) = info.value.problems
    assert problem.field == field
    assert allowed in problem.message


def test_on_cloud_run_the_gcp_detector_is_on_and_the_project_is_taken() -> None:
    telemetry = apply_environment(load_config(), {"K_SERVICE": "phasewatch",
                                                  "GOOGLE_CLOUD_PROJECT": "nba-props-prod"}).telemetry
    assert (telemetry.gcp_resource_detector, telemetry.gcp_project) == (True, "nba-props-prod")
    assert apply_environment(load_config(), {}).telemetry.gcp_resource_detector is False
    # Off Google Cloud the detector finds no metadata server and adds nothing.
    assert "cloud.platform" not in build_resource(telemetry).attributes
