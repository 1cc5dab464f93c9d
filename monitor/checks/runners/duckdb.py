"""DuckDB runner: a database file opened read-only; ``$run_date`` a DATE, ``$now`` a TIMESTAMPTZ.

``duckdb`` is imported when a check first runs: it is an optional dependency
(``pip install 'phasewatch[checks]'``).
"""

from __future__ import annotations

import threading
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from monitor.checks.config import DuckDBRunnerConfig
from monitor.checks.errors import CheckRunError, RunnerUnavailable
from monitor.checks.runners.base import ParamValue, Row


class DuckDBRunner:
    """Opens the file for each query, read-only; interrupts a query past its timeout."""

    def __init__(self, config: DuckDBRunnerConfig) -> None:
        self.path = Path(config.path)

    def query(self, sql: str, params: Mapping[str, ParamValue], timeout_s: float) -> list[Row]:
        duckdb = _duckdb()
        if not self.path.is_file():
            raise CheckRunError("failed", f"no DuckDB database at {self.path}")
        try:
            db = duckdb.connect(str(self.path), read_only=True)
        except duckdb.Error as exc:
            raise CheckRunError("failed", f"cannot open {self.path}: {exc}") from None
        timer = threading.Timer(timeout_s, db.interrupt)
        timer.start()
        try:
            statements = db.extract_statements(sql)
            if len(statements) != 1:
                raise CheckRunError("failed", f"the query holds {len(statements)} statements; "
                                    "allowed: one SELECT")
            # DuckDB refuses parameters a statement does not use: bind only those it names.
            used = {k: v for k, v in params.items() if k in statements[0].named_parameters}
            return [tuple(row) for row in db.execute(sql, used).fetchall()]
        except duckdb.InterruptException:
            raise CheckRunError("timeout", f"query ran over {timeout_s:g} s") from None
        except duckdb.Error as exc:
            raise CheckRunError("failed", f"DuckDB: {exc}") from None
        finally:
            timer.cancel()
            db.close()

    def close(self) -> None:
        return None


def _duckdb() -> Any:
    try:
        import duckdb
    except ImportError:
        raise RunnerUnavailable("unavailable", "the duckdb runner needs the duckdb package: "
                                "pip install 'phasewatch[checks]'") from None
    return duckdb
