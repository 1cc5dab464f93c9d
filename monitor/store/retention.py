"""Retention: the rows past their time, deleted a bounded batch at a time.

Each component that keeps history declares, beside its tables, the ``Rule``s that say
which of its rows are past retention (``RETENTION`` in its store module): SQL both stores
run, and the ``retention.<setting>_days`` that applies. A rule never selects what is still
in use (an open alert, an undelivered message, a run still tracked); that is the rule's
own SQL. ``Pruner`` runs the rules in the order given (a table whose rows others refer to
after those others): each batch is one ``DELETE`` of at most ``batch_rows`` rows in a
transaction of its own, so ingest waits for one batch at most; the rows are chosen in the
statement itself, so a row that came back into use since cannot be deleted. Then the store
gives the space back (``reclaim``: SQLite's incremental vacuum; PostgreSQL's autovacuum
does it by itself).
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import date, datetime, timedelta
from typing import Literal, Protocol, runtime_checkable

from monitor.store.base import ComponentStore, utc_text

Param = Literal["before", "before_date", "accepted_date", "seen_since", "expired"]
EXPIRED_KEPT = timedelta(days=1)  # leases of processes gone: kept a day for the curious


@dataclass(frozen=True)
class Rule:
    """Which rows of one table are past retention.

    ``where``: the condition (SQL, ``?`` parameters filled from ``params`` in order).
    ``key``: the columns naming a row. ``serial``: the key is one increasing integer, and
    the newest row is never deleted (readers follow ids past it; SQLite would give a
    deleted newest id to the next row). ``partition``: the leading column of an index the
    condition can use; the rule then runs once per value (found one index seek each), so
    each batch reads that index instead of the table. ``setting``: the
    ``retention.<setting>_days`` that applies; None for housekeeping on a fixed delay.
    """

    table: str
    setting: str | None
    where: str
    params: tuple[Param, ...] = ("before",)
    key: tuple[str, ...] = ("id",)
    serial: bool = True
    partition: str | None = None


@dataclass(frozen=True)
class Cutoffs:
    """The values of the rules' parameters at ``now``.

    ``today``: the earliest date it is in the pipelines' timezones. A row is past
    retention when its time is before ``now`` minus the setting's days (``before``), or its
    run date before ``today`` minus them (``before_date``); rows that keep an action exactly
    once stay while their run date is accepted (``accepted_date``: ``runs.accept_past_days``
    too); ``seen_since``: a run that received an event since is still tracked.
    """

    now: datetime
    today: date
    days: Mapping[str, int]
    accept_past_days: int
    track_days: int

    def values(self, rule: Rule) -> list[object]:
        days = self.days[rule.setting] if rule.setting is not None else 0
        known: dict[Param, object] = {
            "before": utc_text(self.now - timedelta(days=days)),
            "before_date": (self.today - timedelta(days=days)).isoformat(),
            "accepted_date": (self.today - timedelta(days=max(days, self.accept_past_days))
                              ).isoformat(),
            "seen_since": utc_text(self.now - timedelta(days=self.track_days)),
            "expired": utc_text(self.now - EXPIRED_KEPT),
        }
        return [known[p] for p in rule.params]


@runtime_checkable
class PrunableStore(ComponentStore, Protocol):
    """What pruning needs of a store (both stores are one)."""

    def table_names(self) -> set[str]:
        """The tables this database has."""
        ...

    def reclaim(self) -> int:
        """Give the space of deleted rows back to the file system; the bytes given back."""
        ...


@dataclass
class Pruned:
    """What one pass deleted (or, counted, would delete) per table."""

    rows: dict[str, int] = field(default_factory=dict)
    complete: bool = True  # False: ``max_rows`` stopped it, the next pass goes on
    reclaimed_bytes: int = 0

    @property
    def total(self) -> int:
        return sum(self.rows.values())


class Pruner:
    """Runs retention rules against one store."""

    def __init__(self, store: PrunableStore, rules: Sequence[Rule], *, batch_rows: int = 1000,
                 on_pruned: Callable[[str, int], None] | None = None) -> None:
        self.store = store
        self.rules = tuple(rules)
        self.batch_rows = batch_rows
        self._on_pruned = on_pruned  # (table, rows): after each batch is committed

    def count(self, cutoffs: Cutoffs) -> Pruned:
        """How many rows each rule would delete now (a dry run: nothing is deleted)."""
        out = Pruned()
        for rule in self._present():
            values = cutoffs.values(rule)
            total = 0
            for part in self._partitions(rule):
                where, params = _condition(rule, part, values)
                rows = self.store.read(f"SELECT COUNT(*) FROM {rule.table} WHERE {where}", params)
                total += int(rows[0][0])
            out.rows[rule.table] = out.rows.get(rule.table, 0) + total
        return out

    def prune(self, cutoffs: Cutoffs, *, max_rows: int | None = None) -> Pruned:
        """Delete what the rules select, batch by batch (at most ``max_rows`` in all)."""
        out = Pruned()
        budget = max_rows
        for rule in self._present():
            values = cutoffs.values(rule)
            out.rows.setdefault(rule.table, 0)
            for part in self._partitions(rule):
                while budget is None or budget > 0:
                    limit = self.batch_rows if budget is None else min(self.batch_rows, budget)
                    deleted = self._batch(rule, part, values, limit)
                    out.rows[rule.table] += deleted
                    if budget is not None:
                        budget -= deleted
                    if deleted and self._on_pruned is not None:
                        self._on_pruned(rule.table, deleted)
                    if deleted < limit:
                        break
                if budget is not None and budget <= 0:
                    out.complete = False
                    return out
        return out

    def _batch(self, rule: Rule, part: str | None, values: list[object], limit: int) -> int:
        where, params = _condition(rule, part, values)
        keys = rule.key[0] if len(rule.key) == 1 else f"({', '.join(rule.key)})"
        with self.store.transaction() as db:
            return int(db.execute(
                f"DELETE FROM {rule.table} WHERE {keys} IN (SELECT {', '.join(rule.key)}"
                f" FROM {rule.table} WHERE {where} LIMIT {int(limit)})", params,
            ).rowcount)

    def _present(self) -> Iterator[Rule]:
        tables = self.store.table_names()
        return (rule for rule in self.rules if rule.table in tables)

    def _partitions(self, rule: Rule) -> Iterator[str | None]:
        """Each value of the rule's partition column (one index seek each), or just None."""
        if rule.partition is None:
            yield None
            return
        last: str | None = None
        while True:
            query = f"SELECT MIN({rule.partition}) FROM {rule.table}"
            rows = self.store.read(query if last is None else f"{query} WHERE {rule.partition} > ?",
                                   () if last is None else (last,))
            if not rows or rows[0][0] is None:
                return
            last = str(rows[0][0])
            yield last


def _condition(rule: Rule, part: str | None, values: list[object]) -> tuple[str, list[object]]:
    where, params = f"({rule.where})", list(values)
    if part is not None:
        where, params = f"{rule.partition} = ? AND {where}", [part, *params]
    if rule.serial:
        (key,) = rule.key
        where += f" AND {key} < (SELECT MAX({key}) FROM {rule.table})"
    return where, params
