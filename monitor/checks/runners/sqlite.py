"""SQLite runner: a database file opened read-only; ``:run_date`` and ``:now`` as ISO text."""

from __future__ import annotations

import sqlite3
import time
from collections.abc import Mapping
from datetime import date, datetime
from pathlib import Path

from monitor.checks.config import SQLiteRunnerConfig
from monitor.checks.errors import CheckRunError
from monitor.checks.runners.base import ParamValue, Row

PROGRESS_EVERY = 1000  # SQLite virtual-machine steps between two looks at the clock


class SQLiteRunner:
    """Opens the file for each query (read-only), so a writer elsewhere is never blocked."""

    def __init__(self, config: SQLiteRunnerConfig) -> None:
        self.path = Path(config.path)

    def query(self, sql: str, params: Mapping[str, ParamValue], timeout_s: float) -> list[Row]:
        if not self.path.is_file():
            raise CheckRunError("failed", f"no SQLite database at {self.path}")
        deadline = time.monotonic() + timeout_s
        try:
            db = sqlite3.connect(f"{self.path.resolve().as_uri()}?mode=ro", uri=True,
                                 timeout=timeout_s)
        except sqlite3.Error as exc:
            raise CheckRunError("failed", f"cannot open {self.path}: {exc}") from None
        # A non-zero answer interrupts the statement: the per-check timeout.
        db.set_progress_handler(lambda: int(time.monotonic() > deadline), PROGRESS_EVERY)
        try:
            return [tuple(row) for row in db.execute(sql, {k: _text(v) for k, v in params.items()})]
        except sqlite3.OperationalError as exc:
            if time.monotonic() > deadline:
                raise CheckRunError("timeout", f"query ran over {timeout_s:g} s") from None
            raise CheckRunError("failed", f"SQLite: {exc}") from None
        except sqlite3.Error as exc:
            raise CheckRunError("failed", f"SQLite: {exc}") from None
        finally:
            db.close()

    def close(self) -> None:
        return None


def _text(value: ParamValue) -> str:
    if isinstance(value, datetime):
        return value.isoformat()
    assert isinstance(value, date)
    return value.isoformat()
