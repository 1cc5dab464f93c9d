"""Check runners, registered by their config ``kind`` (``RUNNERS``)."""

from monitor.checks.runners.base import ParamValue, Row, Runner, RunnerFactory
from monitor.checks.runners.bigquery import BigQueryRunner
from monitor.checks.runners.duckdb import DuckDBRunner
from monitor.checks.runners.memory import MemoryRunner
from monitor.checks.runners.sqlite import SQLiteRunner

RUNNERS: dict[str, RunnerFactory] = {
    "sqlite": SQLiteRunner,
    "duckdb": DuckDBRunner,
    "bigquery": BigQueryRunner,
}
LOCAL_RUNNERS = ("sqlite", "duckdb")
"""The runners that read local files: the only ones that run on simulated time (replay,
demo), where a replay's ``check`` lines stand in for the others."""


def local_runners() -> dict[str, RunnerFactory]:
    return {name: RUNNERS[name] for name in LOCAL_RUNNERS}


__all__ = [
    "LOCAL_RUNNERS", "RUNNERS", "BigQueryRunner", "DuckDBRunner", "MemoryRunner", "ParamValue",
    "Row", "Runner", "RunnerFactory", "SQLiteRunner", "local_runners",
]
