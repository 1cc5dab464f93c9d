"""Span exporters by name, and the resource that describes this process.

The names are OpenTelemetry's (``OTEL_TRACES_EXPORTER``): ``otlp`` (over HTTP or gRPC, by
``otlp_protocol``), ``console``, ``gcp_trace`` (Cloud Trace), ``none``. Each exporter's
package is imported only when it is chosen: the gRPC one comes with
``pip install 'phasewatch[gcp]'``, and a missing one is a config error that says so.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from importlib import metadata
from typing import Any

from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace.export import ConsoleSpanExporter, SpanExporter

from monitor.config import TelemetryConfig
from monitor.errors import ConfigError, Problem

log = logging.getLogger(__name__)

DEFAULT_SERVICE_NAME = "phasewatch"
CLOUD_TRACE_ENDPOINT = "https://telemetry.googleapis.com/v1/traces"
TRACE_SCOPE = "https://www.googleapis.com/auth/trace.append"
SDK_DEFAULT_ENDPOINTS = {"http/protobuf": "http://localhost:4318/v1/traces", "grpc": "http://localhost:4317"}
ExporterFactory = Callable[[TelemetryConfig, Resource], SpanExporter]


def _missing(package: str, exporter: str) -> ConfigError:
    return ConfigError("telemetry", [Problem(
        "exporter", f"{exporter} needs the package {package}; install it with "
        "pip install 'phasewatch[gcp]'", repr(exporter))])


def otlp_exporter(config: TelemetryConfig, resource: Resource) -> SpanExporter:
    """OTLP over HTTP (protobuf) or gRPC; headers, timeout, compression and certificates come
    from the SDK's own ``OTEL_EXPORTER_OTLP_*`` variables."""
    endpoint = str(config.otlp_endpoint) if config.otlp_endpoint else None
    if otlp_protocol(config) == "grpc":
        try:
            from opentelemetry.exporter.otlp.proto.grpc.trace_exporter import (
                OTLPSpanExporter as GrpcExporter,
            )
        except ImportError:
            raise _missing("opentelemetry-exporter-otlp-proto-grpc", "otlp (grpc)") from None
        return GrpcExporter(endpoint=endpoint)
    from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter

    return OTLPSpanExporter(endpoint=endpoint)


def cloud_trace_exporter(
    config: TelemetryConfig, resource: Resource, credentials: Any = None,
) -> SpanExporter:
    """Cloud Trace through Google's OTLP endpoint (the Telemetry API), with the application
    default credentials (``credentials``: your own google-auth credentials).

    Google deprecated its Cloud Trace exporter package for this endpoint. The spans carry the
    project as the resource attribute ``gcp.project_id`` (see ``build_resource``).
    """
    import google.auth
    from google.auth.transport.requests import AuthorizedSession
    from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter

    if credentials is None:
        credentials, _ = google.auth.default(scopes=[TRACE_SCOPE])
    endpoint = str(config.otlp_endpoint) if config.otlp_endpoint else CLOUD_TRACE_ENDPOINT
    session = AuthorizedSession(credentials)  # type: ignore[no-untyped-call]
    return OTLPSpanExporter(endpoint=endpoint, session=session)


EXPORTERS: dict[str, ExporterFactory] = {
    "otlp": otlp_exporter,
    "otlp_http": otlp_exporter,
    "otlp_grpc": otlp_exporter,
    "console": lambda config, resource: ConsoleSpanExporter(),
    "gcp_trace": cloud_trace_exporter,
}


def otlp_protocol(config: TelemetryConfig) -> str:
    if config.exporter in ("otlp_http", "otlp_grpc"):
        return "http/protobuf" if config.exporter == "otlp_http" else "grpc"
    return config.otlp_protocol or "http/protobuf"


def build_resource(config: TelemetryConfig) -> Resource:
    """This process as OpenTelemetry describes it.

    The SDK reads ``OTEL_RESOURCE_ATTRIBUTES``, ``OTEL_SERVICE_NAME`` and
    ``OTEL_EXPERIMENTAL_RESOURCE_DETECTORS``; the GCP detector (when on) adds the Cloud Run
    service, revision, region and project from the metadata server. ``service.name`` is
    ``telemetry.service_name`` when set, else the environment's, else ``phasewatch``.
    """
    detected = gcp_resource() if config.gcp_resource_detector else Resource.get_empty()
    resource = detected.merge(Resource.create())
    name = config.service_name or str(resource.attributes.get("service.name") or "")
    if not name or name.startswith("unknown_service"):  # the SDK's placeholder: none was given
        name = DEFAULT_SERVICE_NAME
    extra: dict[str, str] = {"service.name": name}
    if "service.version" not in resource.attributes:
        extra["service.version"] = _version()
    project = gcp_project(config, resource)
    if project and "gcp.project_id" not in resource.attributes:
        extra["gcp.project_id"] = project  # where Cloud Trace's OTLP endpoint files the spans
    return resource.merge(Resource(extra))


def gcp_resource() -> Resource:
    """The GCP detector's resource; empty off Google Cloud or when the package is missing."""
    try:
        from opentelemetry.resourcedetector.gcp_resource_detector import (
            GoogleCloudResourceDetector,
        )
    except ImportError:
        log.warning("event=telemetry.no_gcp_detector package=opentelemetry-resourcedetector-gcp "
                    "hint=%s", "pip install 'phasewatch[gcp]'")
        return Resource.get_empty()
    detected: Resource = GoogleCloudResourceDetector(raise_on_error=False).detect()
    return detected


def gcp_project(config: TelemetryConfig, resource: Resource) -> str | None:
    """The Google Cloud project: configured, else the one the resource detector found."""
    found = resource.attributes.get("gcp.project_id") or resource.attributes.get("cloud.account.id")
    return config.gcp_project or (str(found) if found else None)


def describe(config: TelemetryConfig, resource: Resource) -> dict[str, str]:
    """Where spans go, as the fields of the log line that says so."""
    exporter = config.exporter or "none"
    fields: dict[str, str] = {"exporter": exporter}
    if exporter.startswith("otlp"):
        protocol = otlp_protocol(config)
        fields["protocol"] = protocol
        fields["endpoint"] = str(config.otlp_endpoint or SDK_DEFAULT_ENDPOINTS[protocol])
    if exporter == "gcp_trace":
        fields["endpoint"] = str(config.otlp_endpoint or CLOUD_TRACE_ENDPOINT)
        fields["project"] = str(gcp_project(config, resource))
    fields["service_name"] = str(resource.attributes.get("service.name"))
    if exporter == "none":
        fields["hint"] = "set OTEL_TRACES_EXPORTER to otlp, gcp_trace or console to export spans"
    return fields


def _version() -> str:
    try:
        return metadata.version("phasewatch")
    except metadata.PackageNotFoundError:
        return "unknown"
