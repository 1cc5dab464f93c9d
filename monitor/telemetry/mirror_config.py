"""The ``mirror:`` section: copies of what phasewatch records, kept elsewhere (off by default).

Owned by the mirror in ``monitor.telemetry.mirror``; the root ``monitor.config.Config``
composes it. This module imports nothing of phasewatch's runtime (the root config loads it).
"""

from __future__ import annotations

from typing import Annotated

from pydantic import Field, model_validator

from monitor.fields import Frozen

ProjectId = Annotated[str, Field(pattern=r"^[a-z][a-z0-9-]{4,28}[a-z0-9]$")]
# BigQuery: letters, digits and underscores; a table name is the prefix and a fixed suffix.
DatasetId = Annotated[str, Field(pattern=r"^[A-Za-z0-9_]{1,1024}$")]
TablePrefix = Annotated[str, Field(pattern=r"^[A-Za-z0-9_]{0,64}$")]
MAX_BATCH = 10_000  # BigQuery's insertAll takes up to 50,000 rows; it recommends about 500


class BigQueryMirrorConfig(Frozen):
    """Write events, check results, health probes, alert notifications and daily SLO results
    to BigQuery tables (``phasewatch bigquery ddl`` prints them)."""

    project: ProjectId | None = Field(
        default=None, description="the Google Cloud project of the dataset (default: the "
        "credentials' project, e.g. $GOOGLE_CLOUD_PROJECT or the metadata server's)",
    )
    dataset: DatasetId = Field(default="phasewatch", description="the dataset holding the tables")
    table_prefix: TablePrefix = Field(
        default="", description="put before each table's name (events, checks, probes, alerts, "
        "slo_days), e.g. phasewatch_ in a shared dataset",
    )
    batch: int = Field(default=500, ge=1, le=MAX_BATCH, description="rows per insert request at most")
    interval_s: float = Field(default=5.0, gt=0, le=3600, description="seconds between writes")
    queue_max: int = Field(
        default=20_000, ge=1, le=10_000_000,
        description="rows waiting to be written at most; when full, new rows are dropped and "
        "counted (phasewatch_mirror_rows_dropped_total, reason queue_full): ingest never waits",
    )
    timeout_s: float = Field(default=30.0, gt=0, le=600, description="deadline of one request")

    @model_validator(mode="after")
    def _queue_holds_a_batch(self) -> BigQueryMirrorConfig:
        if self.queue_max < self.batch:
            raise ValueError(f"queue_max {self.queue_max} is less than batch {self.batch}; allowed: "
                             "queue_max >= batch")
        return self

    def table_id(self, project: str, table: str) -> str:
        """The full id of one of the mirror's tables: ``project.dataset.prefix+table``."""
        return f"{project}.{self.dataset}.{self.table_prefix}{table}"


class MirrorConfig(Frozen):
    """Mirrors; each is off unless its section is present. Only ``phasewatch serve`` mirrors."""

    bigquery: BigQueryMirrorConfig | None = Field(
        default=None, description="copy events, checks, probes, alerts and daily SLO results to BigQuery",
    )
