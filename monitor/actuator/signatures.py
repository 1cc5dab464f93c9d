"""Failure signatures: what a repeated error means (its category), and durable streaks.

``classify`` puts an error text in the first configured category whose regex matches it
(``actuator.guards.categories``: service crash, schema drift, permission denied, quota...).
``StreakStore`` keeps each processor's current run of one signature, and its current run of
failures whatever the error, in the store (component ``guard_streaks``), so a restart in the
middle of a crash loop does not start counting again.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime

from monitor.actuator.config import SignatureCategory
from monitor.store.base import ComponentStore, Migration, utc_text

MIGRATIONS: tuple[Migration, ...] = (
    """
    CREATE TABLE guard_streaks (
        pipeline    TEXT    NOT NULL,
        phase       TEXT    NOT NULL,
        processor   TEXT    NOT NULL,
        signature   TEXT    NOT NULL,
        count       INTEGER NOT NULL,
        updated_at  TEXT    NOT NULL,
        PRIMARY KEY (pipeline, phase, processor)
    )
    """,
    # Consecutive failed runs of a processor (any error), across run dates; the last
    # invocation counted (``event:<id>`` for a failure without one), so a redelivered
    # failure of one invocation, or one judged again after a kill, counts once.
    """
    CREATE TABLE guard_failures (
        pipeline    TEXT    NOT NULL,
        phase       TEXT    NOT NULL,
        processor   TEXT    NOT NULL,
        count       INTEGER NOT NULL,
        invocation  TEXT,
        updated_at  TEXT    NOT NULL,
        PRIMARY KEY (pipeline, phase, processor)
    )
    """,
)

_EXCEPTION = re.compile(r"\b([A-Z][A-Za-z0-9_]*(?:Error|Exception|Exit|Interrupt))\b")
_SCAN_CHARS = 4000  # the categories look at the start of the error text only

StreakKey = tuple[str, str, str]  # (pipeline, phase, processor)


@dataclass(frozen=True)
class Category:
    """The category an error fell in, and the exception it names (if any)."""

    name: str
    title: str
    severity: str
    stops_retries: bool
    exception: str | None

    @property
    def headline(self) -> str:
        """``schema drift`` or ``service crash signature (ImportError)``."""
        return f"{self.title} ({self.exception})" if self.exception else self.title


def classify(error: str, categories: Sequence[SignatureCategory]) -> Category | None:
    """The first category with a pattern matching ``error``; None when none does."""
    text = error[:_SCAN_CHARS]
    for category in categories:
        if any(re.search(pattern, text) for pattern in category.patterns):
            named = _EXCEPTION.findall(text)
            # A traceback names the exception last; a one-line message names it first.
            exception = (named[-1] if text.lstrip().startswith("Traceback") else named[0]) if named else None
            return Category(category.name, category.title, category.severity,
                            category.stops_retries, exception)
    return None


class StreakStore:
    """Each processor's current streak of one error signature, kept in the store."""

    def __init__(self, store: ComponentStore) -> None:
        self._store = store
        store.migrate_component("guard_streaks", MIGRATIONS)

    def load(self) -> dict[StreakKey, tuple[str, int]]:
        rows = self._store.read("SELECT pipeline, phase, processor, signature, count FROM guard_streaks")
        return {(r[0], r[1], r[2]): (str(r[3]), int(r[4])) for r in rows}

    def save(self, key: StreakKey, at: datetime, *, signature: tuple[str, int] | None = None,
             failures: tuple[int, str | None] | None = None) -> None:
        """Write a processor's signature streak and/or failure streak (one transaction)."""
        with self._store.transaction() as db:
            if signature is not None:
                db.execute(
                    "INSERT INTO guard_streaks (pipeline, phase, processor, signature, count,"
                    " updated_at) VALUES (?, ?, ?, ?, ?, ?) ON CONFLICT (pipeline, phase, processor)"
                    " DO UPDATE SET signature = excluded.signature, count = excluded.count,"
                    " updated_at = excluded.updated_at", (*key, *signature, utc_text(at)),
                )
            if failures is not None:
                db.execute(
                    "INSERT INTO guard_failures (pipeline, phase, processor, count, invocation,"
                    " updated_at) VALUES (?, ?, ?, ?, ?, ?) ON CONFLICT (pipeline, phase, processor)"
                    " DO UPDATE SET count = excluded.count, invocation = excluded.invocation,"
                    " updated_at = excluded.updated_at", (*key, *failures, utc_text(at)),
                )

    def drop(self, key: StreakKey) -> None:
        """Forget both streaks of a processor (it succeeded)."""
        with self._store.transaction() as db:
            for table in ("guard_streaks", "guard_failures"):
                db.execute(
                    f"DELETE FROM {table} WHERE pipeline = ? AND phase = ? AND processor = ?", key
                )

    def load_failures(self) -> dict[StreakKey, tuple[int, str | None]]:
        """Each processor's consecutive failed runs: (count, last invocation counted)."""
        rows = self._store.read(
            "SELECT pipeline, phase, processor, count, invocation FROM guard_failures")
        return {(r[0], r[1], r[2]): (int(r[3]), r[4]) for r in rows}
