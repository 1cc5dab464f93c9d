"""Run state in memory: bytes per tracked run, and what a flood of distinct runs can hold.

    python bench/run_state.py            # 5 repeats, 40,000 distinct runs attempted
    python bench/run_state.py --quick    # 2 repeats, 4,000

(a) bytes per tracked run (tracemalloc, RunTracker alone): a run with one event, and a whole
    run of the NBA example (every phase, 45 events), median and spread of the repeats;
(b) the flood of issue 16: events for N distinct (run date, mode) pairs, one event each,
    posted to one phasewatch (Collector.ingest_body, batches of 500, the serve path minus
    HTTP): how many are accepted (inside runs.accept_past_days / accept_future_days), how
    many runs stay tracked, the process's peak RSS and the wall and CPU time; the baseline is
    the same number of events into 14 runs, in the same process order;
(c) the restart after (b): Phasewatch.build on that store (the rebuild).
"""

from __future__ import annotations

import argparse
import json
import multiprocessing as mp
import resource
import statistics
import sys
import tempfile
import time
import tracemalloc
from datetime import UTC, date, datetime, timedelta
from multiprocessing.connection import Connection
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))
from ingest import RUN_SHAPE  # the whole-run shape of the ingest bench

from monitor.app.phasewatch import Phasewatch
from monitor.clock import FakeClock
from monitor.config import load_config
from monitor.events import Event, parse_events
from monitor.tracker import RunTracker

NOW = datetime(2026, 1, 18, 12, tzinfo=UTC)
MODES = ("overnight", "same_day", "tomorrow", "backfill")


def one_event(i: int, run_date: date, mode: str, at: datetime = NOW) -> dict[str, Any]:
    return {"event_id": f"e-{i}", "pipeline": "nba", "run_date": run_date.isoformat(), "mode": mode,
            "phase": "phase1", "status": "started", "timestamp": at.isoformat()}


def whole_run(i: int, run_date: date) -> list[dict[str, Any]]:
    at = datetime.combine(run_date + timedelta(days=1), datetime.min.time(), UTC) + timedelta(hours=6)
    out = []
    for slot, (phase, processor, statuses) in enumerate(RUN_SHAPE):
        for step, status in enumerate(statuses):
            at += timedelta(seconds=37)
            event: dict[str, Any] = {"event_id": f"r{i}-{slot}-{step}", "pipeline": "nba",
                                     "run_date": run_date.isoformat(), "mode": "overnight",
                                     "phase": phase, "status": status, "timestamp": at.isoformat()}
            if processor:
                event["processor"] = processor
            if status == "progress":
                event.update(batch_id="b", done=step * 50, total=450)
            out.append(event)
    return out


def bytes_per_run(runs: int, whole: bool) -> float:
    config = load_config()
    pw = Phasewatch.build(config, db_path=":memory:", clock=FakeClock(NOW))
    events: list[Event] = []
    for i in range(runs):  # resolved (aliases, modes) as ingest would, before measuring
        day = NOW.date() - timedelta(days=1 + (i if whole else i // len(MODES)))
        raw = whole_run(i, day) if whole else [one_event(i, day, MODES[i % len(MODES)])]
        at = datetime.combine(day, datetime.min.time(), UTC) + timedelta(days=1, hours=12)
        events += pw.collector.resolve(parse_events(json.dumps(raw).encode()), now=at)
    pw.close()
    tracker = RunTracker(config, retention_days=36_500)
    tracemalloc.start()
    before = tracemalloc.take_snapshot()
    for event in events:
        tracker.apply(event)
    after = tracemalloc.take_snapshot()
    tracemalloc.stop()
    grown = sum(s.size_diff for s in after.compare_to(before, "filename"))
    assert len(tracker) == runs
    return grown / runs


def flood_child(db: str, n: int, distinct: bool, conn: Connection) -> None:
    """Child process: post ``n`` one-event runs (distinct run dates and modes, or 14 runs)."""
    clock = FakeClock(NOW)
    pw = Phasewatch.build(load_config(), db_path=db, clock=clock)
    rss0 = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    accepted = rejected = 0
    cpu0, wall0 = time.process_time(), time.perf_counter()
    for start in range(0, n, 500):
        batch = []
        for i in range(start, min(start + 500, n)):
            if distinct:  # run dates from 1,000 days back to 100 ahead, every mode
                day = NOW.date() + timedelta(days=100 - (i // len(MODES)) % 1100)
                batch.append(one_event(i, day, MODES[i % len(MODES)]))
            else:
                batch.append(one_event(i, NOW.date() - timedelta(days=i % 14), "backfill"))
        for event in batch:  # one request per event: one bad run date refuses only itself
            try:
                pw.collector.ingest_body(json.dumps(event).encode())
                accepted += 1
            except Exception:
                rejected += 1
    wall, cpu = time.perf_counter() - wall0, time.process_time() - cpu0
    rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    conn.send({"accepted": accepted, "rejected": rejected, "tracked": len(pw.tracker),
               "rss_mb": rss / 1024, "rss_growth_mb": (rss - rss0) / 1024, "wall": wall, "cpu": cpu})
    pw.close()


def rebuild_child(db: str, conn: Connection) -> None:
    cpu0, wall0 = time.process_time(), time.perf_counter()
    pw = Phasewatch.build(load_config(), db_path=db, clock=FakeClock(NOW))
    conn.send({"wall": time.perf_counter() - wall0, "cpu": time.process_time() - cpu0,
               "tracked": len(pw.tracker)})
    pw.close()


def in_child(target: Any, *args: Any) -> dict[str, Any]:
    ctx = mp.get_context("spawn")
    parent, child = ctx.Pipe()
    proc = ctx.Process(target=target, args=(*args, child))
    proc.start()
    result: dict[str, Any] = parent.recv()
    proc.join()
    return result


def spread(values: list[float], unit: str = "") -> str:
    return f"median {statistics.median(values):,.0f}{unit} (spread {min(values):,.0f}-{max(values):,.0f})"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--quick", action="store_true")
    args = parser.parse_args()
    repeats, n = (2, 4000) if args.quick else (5, 40_000)
    print(f"run state, {time.strftime('%Y-%m-%d')}, {repeats} repeats")
    single = [bytes_per_run(2000, whole=False) for _ in range(repeats)]
    whole = [bytes_per_run(200, whole=True) for _ in range(repeats)]
    print(f"(a) bytes per tracked run, one event:            {spread(single, ' B')}")
    print(f"    bytes per tracked run, whole run (45 events): {spread(whole, ' B')}")
    with tempfile.TemporaryDirectory() as tmp:
        for label, distinct in (("baseline: 14 runs", False), ("flood: distinct runs", True)):
            db = str(Path(tmp) / f"{distinct}.db")
            r = in_child(flood_child, db, n, distinct)
            print(f"(b) {label:<22} {n:,} events: accepted {r['accepted']:,}, refused "
                  f"{r['rejected']:,}, runs tracked {r['tracked']:,}, peak RSS {r['rss_mb']:.0f} MB "
                  f"(+{r['rss_growth_mb']:.0f} MB while posting), {r['wall']:.1f} s wall / "
                  f"{r['cpu']:.1f} s CPU")
            b = in_child(rebuild_child, db)
            print(f"(c)   restart on that store: {b['wall']:.2f} s wall / {b['cpu']:.2f} s CPU, "
                  f"runs tracked {b['tracked']:,}")


if __name__ == "__main__":
    main()
