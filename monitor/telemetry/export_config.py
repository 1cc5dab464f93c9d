"""The ``export:`` section: where phasewatch writes its metrics besides ``/metrics`` (off by default).

Owned by the exporters in ``monitor.telemetry``; the root ``monitor.config.Config`` composes it.
This module imports nothing of phasewatch's runtime (the root config loads it).
"""

from __future__ import annotations

import re
from typing import Annotated

from pydantic import Field, field_validator

from monitor.fields import Frozen

MIN_INTERVAL_S = 10.0  # Cloud Monitoring takes one point per series per 10 s at most
METRIC_DOMAINS = ("workload.googleapis.com/", "custom.googleapis.com/")
_PREFIX_PATH = re.compile(r"^[A-Za-z0-9_./-]*$")

ProjectId = Annotated[str, Field(pattern=r"^[a-z][a-z0-9-]{4,28}[a-z0-9]$")]
ResourceLabel = Annotated[str, Field(min_length=1, max_length=128, pattern=r"^[A-Za-z0-9_.:/-]+$")]


class CloudMonitoringExportConfig(Frozen):
    """Write the metrics to Cloud Monitoring as custom metrics on a ``generic_task`` resource."""

    project: ProjectId | None = Field(
        default=None, description="the Google Cloud project written to (default: the "
        "credentials' project, e.g. $GOOGLE_CLOUD_PROJECT or the metadata server's)",
    )
    prefix: Annotated[str, Field(max_length=100)] = Field(
        default="workload.googleapis.com/phasewatch/",
        description="put before each metric's /metrics name to make its metric type; it starts "
        "with workload.googleapis.com/ or custom.googleapis.com/",
    )
    interval_s: float = Field(
        default=60.0, description="seconds between writes (at least 10: Cloud Monitoring takes "
        "one point per series per 10 s)",
        json_schema_extra={"minimum": MIN_INTERVAL_S},  # for editors; the validator says why
    )
    timeout_s: float = Field(default=10.0, gt=0, le=60, description="deadline of one request")
    location: ResourceLabel = Field(
        default="global", description="generic_task location: the region, e.g. us-east1",
    )
    namespace: ResourceLabel = Field(default="phasewatch", description="generic_task namespace")
    job: ResourceLabel = Field(default="phasewatch", description="generic_task job")

    @field_validator("prefix")
    @classmethod
    def _metric_domain(cls, prefix: str) -> str:
        if not prefix.startswith(METRIC_DOMAINS) or not _PREFIX_PATH.match(prefix):
            raise ValueError(
                f"must start with {' or '.join(METRIC_DOMAINS)} followed by letters, digits, "
                "'_', '.', '-' or '/'"
            )
        return prefix

    @field_validator("interval_s")
    @classmethod
    def _not_too_often(cls, interval_s: float) -> float:
        if not interval_s >= MIN_INTERVAL_S:  # also refuses NaN
            raise ValueError(
                f"must be at least {MIN_INTERVAL_S:g} seconds (Cloud Monitoring accepts one point "
                f"per series every {MIN_INTERVAL_S:g} s)"
            )
        return interval_s


class ExportConfig(Frozen):
    """Metric exporters; each is off unless its section is present."""

    cloud_monitoring: CloudMonitoringExportConfig | None = Field(
        default=None, description="write the metrics to Google Cloud Monitoring",
    )


def metric_type(prefix: str, name: str) -> str:
    """The custom metric type of a metric named ``name`` on ``/metrics`` (counters with
    ``_total``): ``workload.googleapis.com/phasewatch/events_total`` for
    ``phasewatch_events_total``. The exporter writes it; the dashboards' filters read it."""
    return f"{prefix.rstrip('/')}/{name.removeprefix('phasewatch_')}"
