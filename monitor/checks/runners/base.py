"""The runner protocol: run one SQL query with named parameters, within a timeout."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from datetime import date, datetime
from typing import Any, Protocol

ParamValue = date | datetime
Row = tuple[Any, ...]


class Runner(Protocol):
    """Runs a check's query against one database (``sqlite``, ``duckdb``, ``bigquery``...)."""

    def query(self, sql: str, params: Mapping[str, ParamValue], timeout_s: float) -> list[Row]:
        """The rows the query returns; raises ``CheckRunError`` (timeout, failure)."""
        ...

    def close(self) -> None:
        """Release connections and clients."""
        ...


RunnerFactory = Callable[[Any], Runner]
"""Builds a runner from its config section (``SQLiteRunnerConfig``...)."""
