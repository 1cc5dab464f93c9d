"""Start-up: ``phasewatch serve`` on a store with N events in its 70-day window, timed from
the process's start to the first 200 of ``GET /ready``, as a user (or Cloud Run) starts it.

    python bench/start.py            # 1M events (building the store: minutes, once), 5 runs each
    python bench/start.py --quick    # 20k events, 5 runs each (seconds)

Two paths, interleaved run by run so that both see the same machine load:
- *snapshot*: the service restores the state its last stop saved (``monitor.app.snapshot``)
  and replays only the events stored after it (none here);
- *baseline, no snapshot*: the same store and config with ``server.snapshot: false``, which
  rebuilds the state from every event of the window (what every start did before).

Each row: wall time to ``/ready``, the child's CPU time (user + system, from /proc) at that
moment and its peak RSS; median [min-max] of ``--runs``. Also timed: the stop (SIGTERM to
exit, which saves the snapshot) and, in process, one snapshot save (what the periodic
``snapshot`` job holds the ingest thread for). The store is built once into --cache with
the store's own rows (the cold-paths bench's runs: 3 a day of the NBA example). Target
(issue 18): ``/ready`` <= 3 s with 1M events in the window.
"""

from __future__ import annotations

import argparse
import os
import shutil
import signal
import socket
import sqlite3
import subprocess
import sys
import tempfile
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

import httpx
import yaml

sys.path.insert(0, str(Path(__file__).resolve().parent))

from cold_paths import MODES, SHAPE, run_events
from measure import Figures, Sample, cached_store, emit, table

from monitor.config import default_config_text
from monitor.store.base import utc_text
from monitor.store.schema import INSERT_EVENT, event_row
from monitor.store.sqlite import SQLiteStore

DAYS = 63  # run dates of events, all inside the service's 70-day start-up window
TICK = os.sysconf("SC_CLK_TCK")


def build_store(path: Path, total: int) -> None:
    """``total`` events over ``DAYS`` run dates ending today, in run-date order, written as
    the store's own rows in large transactions (the store creates the tables)."""
    SQLiteStore(path).close()
    today = datetime.now(UTC).date()
    per_run = max(total // (DAYS * len(MODES)), 2 * len(SHAPE))
    db = sqlite3.connect(path, isolation_level=None)
    try:
        for d in range(DAYS - 1, -1, -1):
            run_date = today - timedelta(days=d)
            rows = []
            for m, mode in enumerate(MODES):
                events = run_events(run_date, mode, per_run, d * 3 + m)
                received = utc_text(events[-1].timestamp)
                rows += [event_row(e, received, "bench") for e in events]
            db.execute("BEGIN")
            db.executemany(INSERT_EVENT, rows)
            db.execute("COMMIT")
    finally:
        db.close()


def write_config(path: Path, snapshot: bool) -> Path:
    """The bundled example with ``server.snapshot`` on or off."""
    data = yaml.safe_load(default_config_text())
    data.setdefault("server", {})["snapshot"] = snapshot
    path.write_text(yaml.safe_dump(data, sort_keys=False))
    return path


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def cpu_and_peak(pid: int) -> tuple[float, float]:
    """CPU seconds (user + system) and peak RSS (MB) of a running process, from /proc."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    cpu = (int(fields[11]) + int(fields[12])) / TICK  # utime, stime
    peak = 0.0
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            peak = int(line.split()[1]) / 1024
    return cpu, peak


def serve_env() -> dict[str, str]:
    """The environment ``serve`` runs in: no telemetry or phasewatch settings of this shell."""
    return {k: v for k, v in os.environ.items() if not k.startswith(("OTEL_", "PHASEWATCH_"))}


def start_once(db: Path, config: Path, log: Path) -> tuple[Sample, Sample]:
    """Start ``phasewatch serve``; (its start to the first 200 of /ready, its stop by SIGTERM)."""
    port = free_port()
    argv = [str(Path(sys.executable).parent / "phasewatch"), "serve", "--db", str(db),
            "--config", str(config), "--port", str(port), "--log-format", "text"]
    env = serve_env()
    url = f"http://127.0.0.1:{port}/ready"
    with open(log, "a") as out:
        start = time.perf_counter()
        proc = subprocess.Popen(argv, stdout=out, stderr=out, env=env, cwd=db.parent)
        try:
            with httpx.Client(timeout=2.0) as client:
                while True:
                    if proc.poll() is not None:
                        raise RuntimeError(f"serve exited {proc.returncode}: see {log}")
                    try:
                        if client.get(url).status_code == 200:
                            break
                    except httpx.TransportError:
                        pass
                    time.sleep(0.01)
            ready = time.perf_counter() - start
            cpu, peak = cpu_and_peak(proc.pid)
            stop_at = time.perf_counter()
            stop_cpu = cpu
            proc.send_signal(signal.SIGTERM)
            _, status, usage = os.wait4(proc.pid, 0)
            proc.returncode = os.waitstatus_to_exitcode(status)
            stopped = time.perf_counter() - stop_at
        finally:
            if proc.poll() is None:
                proc.kill()
                proc.wait()
    total_cpu = usage.ru_utime + usage.ru_stime
    return Sample(ready, cpu, peak), Sample(stopped, max(total_cpu - stop_cpu, 0.0))


def save_once(db: Path, config_path: Path) -> tuple[Sample, Sample]:
    """One snapshot save in process as the periodic job runs it (the state restored first):
    (what it holds the state for, on the ingest thread's lock; the whole save, its summary
    and write on the writer thread included)."""
    from monitor.app.phasewatch import Phasewatch
    from monitor.clock import SystemClock
    from monitor.config import apply_environment, load_config

    copy = db.with_name(db.stem + "-save.db")
    shutil.copy(db, copy)
    config = apply_environment(load_config(config_path), environ=serve_env())
    pw = Phasewatch.build(config, db_path=copy, clock=SystemClock(), dry_run_alerts=True,
                          snapshots=True)
    try:
        cpu0, start = time.process_time(), time.perf_counter()
        pw.save_snapshot()
        held = Sample(time.perf_counter() - start, time.process_time() - cpu0)
        assert pw.snapshots is not None
        pw.snapshots.close()  # waits for the write
        return held, Sample(time.perf_counter() - start, time.process_time() - cpu0)
    finally:
        pw.close()
        copy.unlink(missing_ok=True)


def main(argv: list[str] | None = None) -> list[dict[str, str]]:
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--quick", action="store_true")
    parser.add_argument("--events", type=int, default=None)
    parser.add_argument("--runs", type=int, default=5)
    parser.add_argument("--cache", type=Path, default=Path("/tmp/phasewatch-bench"))
    parser.add_argument("--keep", action="store_true", help="keep the store copy and the log")
    args = parser.parse_args(argv)
    total = args.events or (20_000 if args.quick else 1_000_000)
    cached = cached_store(args.cache, "start", total, build_store, f"{DAYS} run dates")
    work = Path(tempfile.mkdtemp(prefix="pw-start-"))
    db = work / "phasewatch.db"
    shutil.copy(cached, db)  # the service writes to its store (snapshot, alerts, probes)
    log = work / "serve.log"
    with_snapshot = write_config(work / "snapshot.yaml", True)
    without = write_config(work / "no-snapshot.yaml", False)
    start_once(db, with_snapshot, log)  # the first stop saves the snapshot the runs restore
    ready = {"snapshot": Figures(f"serve to /ready, {total:,} events, snapshot"),
             "baseline": Figures(f"serve to /ready, {total:,} events, baseline: no snapshot")}
    stops = Figures("stop (SIGTERM to exit, saving the snapshot)")
    for _ in range(args.runs):
        up, down = start_once(db, with_snapshot, log)
        ready["snapshot"].samples.append(up)
        stops.samples.append(down)
        ready["baseline"].samples.append(start_once(db, without, log)[0])
    held = Figures("periodic snapshot save: state held (the ingest thread waits)", unit="ms")
    whole = Figures("periodic snapshot save: in all (summary, write on its own thread)", unit="ms")
    for _ in range(args.runs):
        one, total_save = save_once(db, with_snapshot)
        held.samples.append(one)
        whole.samples.append(total_save)
    rows = [f.row() for f in (ready["snapshot"], ready["baseline"], stops, held, whole)]
    ratio = ready["baseline"].median() / ready["snapshot"].median()
    rows[0]["note"] = f"{ratio:.1f}x faster than the baseline (median wall)"
    text = log.read_text()
    restores, rebuilds = text.count("event=snapshot.restored"), text.count("snapshot=none")
    print(f"serve start-up, {total:,} events over {DAYS} run dates ({db.stat().st_size >> 20} MB "
          f"store), median [min-max]; the snapshot restored in {restores} starts, the state "
          f"rebuilt from every event in {rebuilds}; logs in {log}")
    if restores != args.runs or rebuilds != args.runs + 1:
        raise SystemExit(f"expected {args.runs} restores and {args.runs + 1} rebuilds: see {log}")
    print(table(rows))
    emit("start", rows)
    if not args.keep:
        shutil.rmtree(work, ignore_errors=True)
    return rows


if __name__ == "__main__":
    main()
