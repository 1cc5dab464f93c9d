"""Spans: one trace per run across separate posts, phase/processor nesting and real timings."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path

import pytest
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from opentelemetry.trace import StatusCode
from phasewatch_client.kit.testing import LocalServer, StubReply

from monitor.actuator.sinks import MemorySink
from monitor.app.phasewatch import Phasewatch
from monitor.clock import FakeClock
from monitor.config import apply_environment, load_config
from monitor.errors import ConfigError
from monitor.telemetry.tracing import phase_span_id, run_trace_id
from tests.factories import body, event_dict


def _ns(text: str) -> int:
    return int(datetime.fromisoformat(text).astimezone(UTC).timestamp() * 1e9)


def _post_phase3_same_day(app: Phasewatch) -> None:
    for event in (
        event_dict("phase3", "started", "2026-01-18T15:30:00Z", "upcoming_player_game_context",
                   run_date="2026-01-18"),
        event_dict("phase3", "started", "2026-01-18T15:31:00Z", "upcoming_team_game_context",
                   run_date="2026-01-18"),
        event_dict("phase3", "failed", "2026-01-18T15:36:00Z", "upcoming_team_game_context",
                   run_date="2026-01-18", error="quota exceeded"),
        event_dict("phase3", "succeeded", "2026-01-18T15:42:00Z", "upcoming_player_game_context",
                   run_date="2026-01-18", records=431),
    ):
        app.collector.ingest_body(body(event))  # one request each


def test_separate_posts_share_one_trace(app: Phasewatch, spans: InMemorySpanExporter) -> None:
    _post_phase3_same_day(app)
    finished = spans.get_finished_spans()
    names = sorted(s.name for s in finished)
    assert names == ["phase phase3", "processor upcoming_player_game_context",
                     "processor upcoming_team_game_context"]
    expected_trace = run_trace_id("nba", "2026-01-18", "same_day")
    assert {s.context.trace_id for s in finished} == {expected_trace}


def test_parent_child_and_timings(app: Phasewatch, spans: InMemorySpanExporter) -> None:
    _post_phase3_same_day(app)
    by_name = {s.name: s for s in spans.get_finished_spans()}
    phase = by_name["phase phase3"]
    upgc = by_name["processor upcoming_player_game_context"]
    utgc = by_name["processor upcoming_team_game_context"]
    assert phase.context.span_id == phase_span_id("nba", "2026-01-18", "same_day", "phase3")
    assert phase.parent is None
    assert upgc.parent is not None and upgc.parent.span_id == phase.context.span_id
    assert utgc.parent is not None and utgc.parent.span_id == phase.context.span_id
    assert (upgc.start_time, upgc.end_time) == (_ns("2026-01-18T15:30:00Z"), _ns("2026-01-18T15:42:00Z"))
    assert (phase.start_time, phase.end_time) == (_ns("2026-01-18T15:30:00Z"), _ns("2026-01-18T15:42:00Z"))
    assert utgc.status.status_code is StatusCode.ERROR
    assert utgc.status.description == "quota exceeded"
    assert upgc.attributes is not None and upgc.attributes["phasewatch.records"] == 431


def test_traceparent_becomes_a_link(app: Phasewatch, spans: InMemorySpanExporter) -> None:
    caller_trace = "4bf92f3577b34da6a3ce929d0e0e4736"
    app.collector.ingest_body(body(event_dict(
        "phase2", "succeeded", "2026-01-18T06:00:00Z", "p2_odds_game_lines", duration_s=120,
        traceparent=f"00-{caller_trace}-00f067aa0ba902b7-01")))
    (span,) = spans.get_finished_spans()
    assert span.context.trace_id == run_trace_id("nba", "2026-01-17", "overnight")
    assert [format(link.context.trace_id, "032x") for link in span.links] == [caller_trace]
    assert span.start_time == _ns("2026-01-18T05:58:00Z")  # derived from duration_s


def test_tracing_failure_never_breaks_ingest(app: Phasewatch) -> None:
    class Broken:
        def start_span(self, *args: object, **kwargs: object) -> None:
            raise RuntimeError("exporter down")

    app.tracer._tracer = Broken()  # type: ignore[assignment]
    result = app.collector.ingest_body(body(event_dict(
        "phase2", "succeeded", "2026-01-18T06:00:00Z", "p2_odds_game_lines")))
    assert result.accepted == 1
    assert 'phasewatch_telemetry_errors_total{component="tracing"} 1.0' in app.metrics.exposition()[0].decode()


def test_otlp_http_exporter_chosen_by_environment_posts_protobuf(tmp_path: Path) -> None:
    from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import (
        ExportTraceServiceRequest,
    )

    with LocalServer(lambda request: StubReply(200)) as collector:
        config = apply_environment(load_config(), {
            "PHASEWATCH_TRACES_EXPORTER": "otlp_http",
            "OTEL_EXPORTER_OTLP_ENDPOINT": collector.url,
        })
        assert config.telemetry.exporter == "otlp_http"
        sink = MemorySink()
        pw = Phasewatch.build(config, db_path=tmp_path / "pw.db",
                              clock=FakeClock(datetime(2026, 1, 18, 12, tzinfo=UTC)),
                              sinks={"http": sink, "pubsub": sink, "log": sink})
        pw.collector.ingest_body(body(event_dict(
            "phase2", "succeeded", "2026-01-18T06:00:00Z", "p2_odds_game_lines", duration_s=60)))
        assert pw.tracer.provider is not None and pw.tracer.provider.force_flush(10_000)
        pw.close()
        received = [(r.path, r.body) for r in collector.requests]
    (path, payload), *_ = received
    assert path == "/v1/traces"
    request = ExportTraceServiceRequest.FromString(payload)
    spans = [s for rs in request.resource_spans for ss in rs.scope_spans for s in ss.spans]
    assert [s.name for s in spans] == ["processor p2_odds_game_lines"]
    assert spans[0].trace_id.hex() == format(run_trace_id("nba", "2026-01-17", "overnight"), "032x")


def test_bad_exporter_in_environment_names_the_field() -> None:
    with pytest.raises(ConfigError) as info:
        apply_environment(load_config(), {"PHASEWATCH_TRACES_EXPORTER": "zipkin"})
    assert info.value.problems[0].field == "telemetry.exporter"
    assert "'none', 'console', 'otlp', 'otlp_http', 'otlp_grpc' or 'gcp_trace'" in str(info.value)
