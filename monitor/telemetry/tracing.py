"""OpenTelemetry traces: one trace per run, a span per phase, a child span per processor run.

Events for one run arrive in separate requests, often from different processes, so the
trace id is derived from (pipeline, run_date, mode) and each phase's span id from the phase:
every event of a run joins the same trace without any shared state. The SDK has no way to
set the ids of a span it starts, so an ``IdGenerator`` hands out the derived ids when asked
through a context variable, and random ones otherwise.
"""

from __future__ import annotations

import hashlib
import logging
from collections import OrderedDict
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from contextvars import ContextVar
from datetime import datetime

from opentelemetry import trace
from opentelemetry.context import Context
from opentelemetry.sdk.trace import SpanProcessor, TracerProvider
from opentelemetry.sdk.trace.export import BatchSpanProcessor, SimpleSpanProcessor
from opentelemetry.sdk.trace.id_generator import IdGenerator, RandomIdGenerator
from opentelemetry.trace import Link, SpanContext, SpanKind, Status, StatusCode, TraceFlags
from opentelemetry.trace.propagation.tracecontext import TraceContextTextMapPropagator

from monitor.config import TelemetryConfig
from monitor.telemetry.exporters import EXPORTERS, ExporterFactory, build_resource, describe
from monitor.telemetry.metrics import Metrics
from monitor.tracker import Update

log = logging.getLogger(__name__)

_forced_ids: ContextVar[tuple[int, int] | None] = ContextVar("phasewatch_forced_ids", default=None)
_PROPAGATOR = TraceContextTextMapPropagator()
_EMITTED_PHASES_KEPT = 50_000


def _hash_id(text: str, nbytes: int) -> int:
    value = int.from_bytes(hashlib.sha256(text.encode()).digest()[:nbytes], "big")
    return value or 1  # an all-zero id is invalid in W3C trace context


def run_trace_id(pipeline: str, run_date: str, mode: str) -> int:
    """The trace id of a run: the same for every event of (pipeline, run_date, mode)."""
    return _hash_id(f"phasewatch-run|{pipeline}|{run_date}|{mode}", 16)


def phase_span_id(pipeline: str, run_date: str, mode: str, phase: str) -> int:
    """The span id of a phase in a run."""
    return _hash_id(f"phasewatch-phase|{pipeline}|{run_date}|{mode}|{phase}", 8)


class DerivedIdGenerator(IdGenerator):
    """Random ids, except while ``forced_ids`` is active."""

    def __init__(self) -> None:
        self._random = RandomIdGenerator()

    def generate_trace_id(self) -> int:
        forced = _forced_ids.get()
        return forced[0] if forced else self._random.generate_trace_id()

    def generate_span_id(self) -> int:
        forced = _forced_ids.get()
        return forced[1] if forced else self._random.generate_span_id()


@contextmanager
def forced_ids(trace_id: int, span_id: int) -> Iterator[None]:
    token = _forced_ids.set((trace_id, span_id))
    try:
        yield
    finally:
        _forced_ids.reset(token)


def build_tracer_provider(
    config: TelemetryConfig, processor: SpanProcessor | None = None,
    exporters: Mapping[str, ExporterFactory] = EXPORTERS,
) -> TracerProvider | None:
    """A provider for the configured exporter, or None when traces are off.

    ``processor`` replaces the exporter (tests); ``exporters`` the factories by name. A line
    at INFO says which exporter is active, where it sends and under which service name.
    """
    resource = build_resource(config)
    if processor is None:
        fields = describe(config, resource)
        log.info("event=telemetry.traces " + " ".join(f"{key}=%s" for key in fields), *fields.values())
        name = config.exporter or "none"
        if name == "none":
            return None
        exporter = exporters[name](config, resource)
        processor = (SimpleSpanProcessor(exporter) if name == "console"
                     else BatchSpanProcessor(exporter))
    provider = TracerProvider(id_generator=DerivedIdGenerator(), resource=resource)
    provider.add_span_processor(processor)
    return provider


def _ns(when: datetime) -> int:
    return int(when.timestamp() * 1_000_000_000)


class RunTracer:
    """Turns tracker updates into spans; never raises into the caller."""

    def __init__(self, provider: TracerProvider | None, metrics: Metrics) -> None:
        self.provider = provider
        self.metrics = metrics
        self._tracer = provider.get_tracer("phasewatch") if provider else None
        self._emitted: OrderedDict[tuple[str, str, str, str], None] = OrderedDict()
        self._logged_failure = False

    @property
    def enabled(self) -> bool:
        return self._tracer is not None

    def on_update(self, update: Update) -> None:
        if self._tracer is None:
            return
        try:
            self._emit(update)
        except Exception as exc:  # telemetry must never break ingest
            self.metrics.telemetry_errors.labels("tracing").inc()
            if not self._logged_failure:
                log.warning("event=tracing.failed error=%r (further failures only counted)", exc)
                self._logged_failure = True

    def _emit(self, update: Update) -> None:
        assert self._tracer is not None
        event, run = update.event, update.run
        pipeline, run_date, mode = run.key
        trace_id = run_trace_id(pipeline, run_date, mode)
        phase_id = phase_span_id(pipeline, run_date, mode, event.phase)
        attrs: dict[str, str | int | float] = {
            "phasewatch.pipeline": pipeline, "phasewatch.run_date": run_date,
            "phasewatch.mode": mode, "phasewatch.phase": event.phase,
        }
        if event.processor is not None and event.status in ("succeeded", "failed", "skipped"):
            parent = trace.set_span_in_context(
                trace.NonRecordingSpan(
                    SpanContext(trace_id, phase_id, is_remote=False,
                                trace_flags=TraceFlags(TraceFlags.SAMPLED))
                ),
                Context(),
            )
            end = event.timestamp
            start = update.started_at or end
            links = _links(event.traceparent)
            span = self._tracer.start_span(
                f"processor {event.processor}", context=parent, kind=SpanKind.INTERNAL,
                start_time=_ns(start), links=links,
                attributes={**attrs, "phasewatch.processor": event.processor,
                            "phasewatch.status": event.status,
                            **({"phasewatch.records": event.records}
                               if event.records is not None else {})},
            )
            if event.status == "failed":
                span.set_status(Status(StatusCode.ERROR, event.error or "processor failed"))
            span.end(end_time=_ns(end))
        if update.phase_completed or update.phase_failed:
            key = (pipeline, run_date, mode, event.phase)
            if key in self._emitted:
                return
            self._emitted[key] = None
            if len(self._emitted) > _EMITTED_PHASES_KEPT:
                self._emitted.popitem(last=False)
            phase = update.phase
            end = event.timestamp
            start = min(phase.first_start or end, end)
            with forced_ids(trace_id, phase_id):
                span = self._tracer.start_span(
                    f"phase {event.phase}", context=Context(), kind=SpanKind.INTERNAL,
                    start_time=_ns(start),
                    attributes={**attrs, "phasewatch.phase_status": phase.status,
                                "phasewatch.missing": ",".join(phase.missing)},
                )
            if update.phase_failed:
                span.set_status(Status(StatusCode.ERROR, "phase failed"))
            span.end(end_time=_ns(end))

    def shutdown(self) -> None:
        if self.provider is not None:
            self.provider.shutdown()


def _links(traceparent: str | None) -> list[Link]:
    """A link to the caller's span when the event carried a W3C ``traceparent``."""
    if not traceparent:
        return []
    ctx = trace.get_current_span(_PROPAGATOR.extract({"traceparent": traceparent})).get_span_context()
    return [Link(ctx, {"phasewatch.link": "traceparent"})] if ctx.is_valid else []
