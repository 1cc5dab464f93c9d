"""Retention on an SQLite store: what a prune pass costs, and how long ingest may wait for it.

    python bench/retention.py            # 5 repeats, 200,000 events over 500 run dates
    python bench/retention.py --quick    # 2 repeats, 20,000 over 50

Each repeat builds a fresh store: the events of one run a day for ``--days`` days (the
example pipeline's phases, 400 events a day), a fifth of them past the 400-day retention.
Then, on copies of that file:

(a) the prune pass of ``phasewatch prune`` (``Pruner.prune``, batches of 1,000): wall and
    CPU, rows deleted, and the longest single batch, which is the longest ingest waits for
    the store's lock; against the baseline of one unbatched ``DELETE`` of the same rows
    (what holding the lock for the whole pass would cost);
(b) ``reclaim`` after it: bytes given back and its time;
(c) the one-time rewrite of a file made before ``auto_vacuum=INCREMENTAL`` (``VACUUM`` when
    the store is opened), per 100 MB.
Median and spread of the repeats.
"""

from __future__ import annotations

import argparse
import json
import logging
import shutil
import sqlite3
import statistics
import sys
import tempfile
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from monitor.app.retention import cutoffs, pruner  # noqa: E402
from monitor.config import load_config  # noqa: E402
from monitor.events import Event  # noqa: E402
from monitor.store.sqlite import SQLiteStore  # noqa: E402

NOW = datetime(2026, 1, 18, 12, tzinfo=UTC)


def build(path: Path, days: int, per_day: int) -> int:
    """A store with ``per_day`` events of one run a day for ``days`` days before NOW."""
    store = SQLiteStore(path)
    count = 0
    for day in range(days, 0, -1):
        at = NOW - timedelta(days=day)
        run_date = (at - timedelta(days=1)).date().isoformat()
        events = [Event.model_validate_json(json.dumps({
            "event_id": f"{run_date}-{i}", "pipeline": "nba", "run_date": run_date,
            "mode": "overnight", "phase": "phase3", "processor": f"p{i % 40}",
            "status": "succeeded" if i % 2 else "started", "records": 1000,
            "timestamp": (at + timedelta(seconds=i)).isoformat()})) for i in range(per_day)]
        store.append(events, at)
        count += len(events)
    store.reclaim()
    store.close()
    return count


def prune_at(days: int) -> datetime:
    """When the oldest fifth of ``days`` run dates are past the 400 days of retention."""
    return NOW + timedelta(days=400 - days + days // 5)


def prune_pass(path: Path, at: datetime) -> dict[str, float]:
    config = load_config()
    store = SQLiteStore(path)
    batches: list[float] = []
    job = pruner(store, config)
    real_batch = job._batch

    def timed(*args: object) -> int:
        began = time.perf_counter()
        try:
            return real_batch(*args)  # type: ignore[arg-type]
        finally:
            batches.append(time.perf_counter() - began)

    job._batch = timed  # type: ignore[method-assign]
    wall, cpu = time.perf_counter(), time.process_time()
    result = job.prune(cutoffs(config, at))
    wall, cpu = time.perf_counter() - wall, time.process_time() - cpu
    before = store.file_bytes()
    began = time.perf_counter()
    freed = store.reclaim()
    reclaim_s = time.perf_counter() - began
    store.close()
    return {"rows": result.total, "wall_s": wall, "cpu_s": cpu, "max_batch_ms": max(batches) * 1e3,
            "reclaim_s": reclaim_s, "freed_mb": freed / 1e6, "file_mb": before / 1e6}


def one_delete(path: Path, at: datetime) -> dict[str, float]:
    """The baseline: the same events deleted by one statement (the lock held throughout)."""
    config = load_config()
    cut = cutoffs(config, at)
    rule = next(r for r in pruner(SQLiteStore(":memory:"), config).rules if r.table == "events")
    first_kept, seen_since = cut.values(rule)
    db = sqlite3.connect(path, isolation_level=None)
    wall, cpu = time.perf_counter(), time.process_time()
    rows = db.execute(
        "DELETE FROM events WHERE run_date < ? AND NOT EXISTS (SELECT 1 FROM events AS r WHERE"
        " r.pipeline = events.pipeline AND r.run_date = events.run_date AND r.mode = events.mode"
        " AND r.received_at >= ?)", (first_kept, seen_since)).rowcount
    wall, cpu = time.perf_counter() - wall, time.process_time() - cpu
    db.close()
    return {"rows": rows, "wall_s": wall, "cpu_s": cpu}


def conversion(path: Path, at: datetime) -> dict[str, float]:
    """The one-time VACUUM of a file made before auto_vacuum=INCREMENTAL, per 100 MB."""
    db = sqlite3.connect(path, isolation_level=None)
    db.execute("PRAGMA auto_vacuum = NONE")
    db.execute("VACUUM")
    db.close()
    size = path.stat().st_size
    wall, cpu = time.perf_counter(), time.process_time()
    SQLiteStore(path).close()
    wall, cpu = time.perf_counter() - wall, time.process_time() - cpu
    return {"wall_s_per_100mb": wall * 1e8 / size, "cpu_s_per_100mb": cpu * 1e8 / size,
            "file_mb": size / 1e6}


def spread(values: list[float]) -> str:
    return f"{statistics.median(values):.3g} ({min(values):.3g}-{max(values):.3g})"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--quick", action="store_true")
    args = parser.parse_args()
    logging.disable(logging.WARNING)  # the rewrite's log lines
    repeats, days, per_day = (2, 50, 400) if args.quick else (5, 500, 400)
    at = prune_at(days)
    runs: dict[str, list[dict[str, float]]] = {"prune": [], "baseline": [], "convert": []}
    for _ in range(repeats):
        with tempfile.TemporaryDirectory() as tmp:
            built = Path(tmp) / "built.db"
            events = build(built, days, per_day)
            for name, measure in (("prune", prune_pass), ("baseline", one_delete),
                                  ("convert", conversion)):
                copy = Path(tmp) / f"{name}.db"
                shutil.copy(built, copy)
                runs[name].append(measure(copy, at))
    prune, base, convert = runs["prune"], runs["baseline"], runs["convert"]
    print(f"retention, {time.strftime('%Y-%m-%d')}, {repeats} repeats, {events:,} events over "
          f"{days} run dates, file {prune[0]['file_mb']:.0f} MB")
    print(f"(a) prune pass: {int(prune[0]['rows']):,} rows, wall {spread([r['wall_s'] for r in prune])} s, "
          f"CPU {spread([r['cpu_s'] for r in prune])} s; longest batch (ingest waits at most) "
          f"{spread([r['max_batch_ms'] for r in prune])} ms")
    print(f"    baseline, one DELETE: {int(base[0]['rows']):,} rows, wall {spread([r['wall_s'] for r in base])} s, "
          f"CPU {spread([r['cpu_s'] for r in base])} s, the lock held throughout")
    print(f"(b) reclaim: {spread([r['freed_mb'] for r in prune])} MB given back in "
          f"{spread([r['reclaim_s'] for r in prune])} s")
    print(f"(c) one-time rewrite of an older file: wall {spread([r['wall_s_per_100mb'] for r in convert])} s "
          f"per 100 MB, CPU {spread([r['cpu_s_per_100mb'] for r in convert])} s")


if __name__ == "__main__":
    main()
