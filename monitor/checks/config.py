"""The ``checks:`` config section: data checks, their runners, schedules and thresholds.

A check is a named number about the data (a coverage ratio, the age of the newest row, a
row count, the count of missing entities). Results reach phasewatch two ways:

- ``kind: sql``: phasewatch runs ``query`` with a runner (sqlite, duckdb, bigquery) on a
  cron ``schedule`` in the pipeline's timezone;
- ``kind: pushed``: something else measures it and sends ``POST /v1/checks`` or
  ``phasewatch check record``.

Either way ``warn_when`` / ``critical_when`` raise one alert per check while they hold.
This module imports nothing of the checks runtime (``monitor.config`` composes it).
"""

from __future__ import annotations

from typing import Annotated, Literal

from croniter import croniter
from pydantic import AfterValidator, Field, HttpUrl

from monitor.fields import Condition, Frozen, Name

QUERY_PARAMETERS = ("run_date", "now")
"""What a query may use: the run date it checks (a date) and the time it runs (UTC)."""


def _cron(text: str) -> str:
    if not croniter.is_valid(text) or len(text.split()) != 5:
        raise ValueError(
            f"schedule {text!r}: not a cron expression; allowed: five fields "
            "(minute hour day-of-month month day-of-week), e.g. '0 6 * * *'"
        )
    return text


Cron = Annotated[str, AfterValidator(_cron)]
Query = Annotated[str, Field(min_length=1, max_length=100_000)]


class SQLiteRunnerConfig(Frozen):
    """An SQLite database file, opened read-only (``:run_date`` / ``:now`` as ISO text)."""

    kind: Literal["sqlite"]
    path: Annotated[str, Field(min_length=1, description="the database file")]


class DuckDBRunnerConfig(Frozen):
    """A DuckDB database file, opened read-only (``$run_date`` a DATE, ``$now`` a TIMESTAMPTZ)."""

    kind: Literal["duckdb"]
    path: Annotated[str, Field(min_length=1, description="the database file")]


class BigQueryRunnerConfig(Frozen):
    """BigQuery through google-cloud-bigquery (``@run_date`` a DATE, ``@now`` a TIMESTAMP).

    Credentials are Application Default Credentials unless ``api_endpoint`` points at a
    local emulator (then anonymous).
    """

    kind: Literal["bigquery"]
    project: Name = Field(description="the project the query job runs (and is billed) in")
    location: Annotated[str, Field(min_length=1, max_length=64)] | None = Field(
        default=None, description="the datasets' location, e.g. US"
    )
    maximum_bytes_billed: int = Field(
        default=10_000_000_000, gt=0,
        description="a query that would bill more fails without running (and costs nothing)",
    )
    api_endpoint: HttpUrl | None = Field(
        default=None, description="a local BigQuery emulator's URL (tests, local runs)"
    )


RunnerConfig = Annotated[
    SQLiteRunnerConfig | DuckDBRunnerConfig | BigQueryRunnerConfig, Field(discriminator="kind")
]


class _Check(Frozen):
    name: Name
    pipeline: Name = Field(description="the pipeline whose data it measures (and timezone)")
    title: Annotated[str, Field(min_length=1, max_length=200)] | None = Field(
        default=None, description="shown in alerts (default: the name)"
    )
    warn_when: Condition | None = Field(
        default=None, description="a warning alert while the latest value meets this, e.g. '< 0.9'"
    )
    critical_when: Condition | None = Field(
        default=None, description="a critical alert while the latest value meets this, e.g. '< 0.7'"
    )
    flap_window_min: float = Field(
        default=60.0, ge=0, le=24 * 60,
        description="breached again within this long of its alert's resolve is flapping: the "
        "alert says so and resolves only once its results have passed this long, or after a day "
        "without a breach when they stop (0: never)",
    )


class SqlCheckConfig(_Check):
    """A query phasewatch runs on a schedule; its answer is recorded like a pushed result."""

    kind: Literal["sql"]
    runner: RunnerConfig
    query: Query = Field(description="one SELECT returning one number, or one column of entity ids")
    returns: Literal["value", "missing"] = Field(
        default="value",
        description="value: one row, one number; missing: the ids of missing entities (the value "
        "recorded is how many)",
    )
    empty_value: float | None = Field(
        default=None,
        description="the value recorded when a `value` query returns no row or NULL (e.g. 1.0 "
        "for a coverage ratio on a day without games); unset: that run is an error",
    )
    schedule: Cron = Field(description="cron expression, in the pipeline's timezone")
    run_date_days_ago: int = Field(
        default=0, ge=0, le=366,
        description="the run date it checks: the day it runs minus this (1: yesterday's games)",
    )
    timeout_s: float = Field(default=60.0, gt=0, le=3600)
    enabled: bool = Field(default=True, description="false: declared, but never run")


class PushedCheckConfig(_Check):
    """A check measured elsewhere (``POST /v1/checks``, ``phasewatch check record``)."""

    kind: Literal["pushed"]


CheckConfig = Annotated[SqlCheckConfig | PushedCheckConfig, Field(discriminator="kind")]


def check_problems(checks: tuple[SqlCheckConfig | PushedCheckConfig, ...],
                   pipelines: set[str]) -> list[str]:
    """Cross-field problems of the ``checks:`` section: unique names, known pipelines."""
    problems: list[str] = []
    names = [c.name for c in checks]
    dup = sorted({n for n in names if names.count(n) > 1})
    if dup:
        problems.append(f"checks: names must be unique; repeated: {dup}")
    for i, check in enumerate(checks):
        if check.pipeline not in pipelines:
            problems.append(f"checks[{i}:{check.name}].pipeline {check.pipeline!r} is unknown; "
                            f"allowed: {sorted(pipelines)}")
    return problems
