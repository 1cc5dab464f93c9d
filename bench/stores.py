"""Store benchmark, SQLite vs PostgreSQL: prints figures, asserts nothing.

    python bench/stores.py            # 5 runs of each figure (about 15 minutes)
    python bench/stores.py --quick    # 2 small runs of each (a smoke run)

Every run starts fresh `phasewatch serve` processes (children, each with its own GIL) on a
fresh store: an SQLite file, or a schema of a throwaway PostgreSQL server with its default
durability (fsync, synchronous_commit on; Debian's `postgresql`, tests/postgres_server.py).
Each figure is the median of the runs with their range; CPU is the seconds the phasewatch
processes and the database server's processes spent, read from /proc, beside the wall time.

(a) Ingest over HTTP, the path producers use: `POST /v1/events` with JSON arrays of 100
    events of the NBA example, 8 connections, into one `serve` on SQLite, one on
    PostgreSQL, and three on one PostgreSQL database with the requests spread over them
    (each also follows the events the others store).
(b) SLO evaluation from the store: `phasewatch slo report --json` (reads every event,
    rebuilds every SLO of the NBA example) on the same events in each store.
(c) Trigger decisions with three processes: completions of a 4-processor phase sent one
    event per POST at an even 20 events/s, each to an instance chosen in turn (so the completing event is mostly
    stored by an instance that does not lead, and the leader acts once it follows it);
    latency from sending the completing event to the trigger reaching a local target.
    Baseline in the same run: one `serve` on PostgreSQL, same load.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import logging
import multiprocessing as mp
import os
import re
import resource
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Iterator, Sequence
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
import psycopg
import yaml

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from actuator import run_target  # noqa: E402  (bench/actuator.py: the trigger target)
from ingest import batches, follow_event_time, generate  # noqa: E402  (bench/ingest.py: the NBA example's events)

from monitor.config import default_config_text  # noqa: E402
from tests.postgres_server import temporary_postgres  # noqa: E402

TICK = os.sysconf("SC_CLK_TCK")


# --- processes and their CPU -------------------------------------------------------------

def cpu_s(pids: Sequence[int]) -> float:
    """User + system seconds the processes have used so far (0 for one that is gone)."""
    total = 0.0
    for pid in pids:
        try:
            fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        total += (int(fields[11]) + int(fields[12])) / TICK
    return total


def postmaster(url: str) -> int:
    """The server's main process: the parent of a backend."""
    with psycopg.connect(url) as conn:
        backend = conn.execute("SELECT pg_backend_pid()").fetchone()[0]  # type: ignore[index]
        return int(Path(f"/proc/{backend}/stat").read_text().rsplit(")", 1)[1].split()[1])


def postgres_pids(master: int) -> list[int]:
    """The server's processes: the postmaster and its children."""
    out = [master]
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                if int((entry / "stat").read_text().rsplit(")", 1)[1].split()[1]) == master:
                    out.append(int(entry.name))
            except OSError:
                continue
    return out


def fresh_schema(server: str, name: str) -> str:
    with psycopg.connect(server, autocommit=True) as conn:
        conn.execute(f"DROP SCHEMA IF EXISTS {name} CASCADE")
        conn.execute(f"CREATE SCHEMA {name}")
    return f"{server}?options=-csearch_path%3D{name}"


@contextmanager
def serving(config: Path, db: str, log: Path, count: int = 1) -> Iterator[list[tuple[int, str]]]:
    """``count`` `phasewatch serve` processes on ``db``: (pid, URL) each, stopped at the end."""
    procs = []
    logs = [log.with_suffix(f".{i}.log") for i in range(count)]
    for path in logs:
        with path.open("wb") as stderr:  # a fresh log: an old one names an old port
            procs.append(subprocess.Popen(
                [sys.executable, "-c", "from monitor.app.cli.start import main; main()", "serve",
                 "--config", str(config), "--db", db, "--port", "0"],
                cwd=ROOT, stdout=subprocess.DEVNULL, stderr=stderr,
                env={**os.environ, "PHASEWATCH_TOKEN": ""}))
    try:
        urls = [_wait_started(proc, path) for proc, path in zip(procs, logs, strict=True)]
        if count > 1:
            _wait_leader(db)
        yield [(p.pid, u) for p, u in zip(procs, urls, strict=True)]
    except BaseException:
        for path in logs:  # what the servers said, for the failure
            text = path.read_text()
            keep = Path(tempfile.gettempdir()) / f"bench-stores-{path.name}"
            keep.write_text(text)
            print(f"--- {path.name} (all of it in {keep}):\n{text[-3000:]}", file=sys.stderr)
        raise
    finally:
        for proc in procs:
            proc.terminate()
        for proc in procs:
            proc.wait(30)


def _wait_started(proc: subprocess.Popen[bytes], log: Path) -> str:
    deadline = time.monotonic() + 90
    while time.monotonic() < deadline:
        found = re.search(r"event=serve.started .*port=(\d+)", log.read_text())
        if found:
            return f"http://127.0.0.1:{found.group(1)}"
        if proc.poll() is not None:
            break
        time.sleep(0.05)
    raise SystemExit(f"serve did not start:\n{log.read_text()}")


def _wait_leader(db: str) -> None:
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        with psycopg.connect(db) as conn:
            if conn.execute("SELECT 1 FROM leases WHERE name = 'leader'").fetchone():
                return
        time.sleep(0.05)


# --- figures -----------------------------------------------------------------------------

@dataclass
class Sample:
    value: float  # the figure (events/s, seconds, ms)
    wall_s: float
    app_cpu_s: float
    db_cpu_s: float


def summary(samples: list[Sample], unit: str, fmt: str = ",.0f") -> str:
    values = [s.value for s in samples]
    walls = [s.wall_s for s in samples]
    app = [s.app_cpu_s for s in samples]
    db = [s.db_cpu_s for s in samples]
    return (f"{statistics.median(values):{fmt}} {unit} [{min(values):{fmt}}-{max(values):{fmt}}]"
            f"  wall {statistics.median(walls):.2f} s, CPU phasewatch {statistics.median(app):.2f} s"
            f" + database {statistics.median(db):.2f} s  (median of {len(samples)})")


def ingest_config(tmp: Path) -> Path:
    data = yaml.safe_load(default_config_text())
    data.setdefault("server", {})["tick_interval_s"] = 3600  # no periodic jobs in the way
    # The generated runs start on 2024-01-01 (bench/ingest.py): serve, on the real clock,
    # accepts them all (by default only the last 400 days: a 422 for each batch).
    data.setdefault("runs", {})["accept_past_days"] = 36_500
    path = tmp / "ingest.yaml"
    path.write_text(yaml.safe_dump(data))
    return path


async def post_bodies(urls: list[str], bodies: list[bytes], connections: int = 8) -> None:
    queue: asyncio.Queue[tuple[int, bytes]] = asyncio.Queue()
    for i, body in enumerate(bodies):
        queue.put_nowait((i, body))
    clients = [httpx.AsyncClient(timeout=60) for _ in urls]

    async def worker() -> None:
        while not queue.empty():
            i, body = queue.get_nowait()
            try:
                response = await clients[i % len(urls)].post(
                    f"{urls[i % len(urls)]}/v1/events", content=body,
                    headers={"Content-Type": "application/json"})
            except httpx.HTTPError as exc:
                raise SystemExit(f"POST {i} to {urls[i % len(urls)]}: {exc!r} {exc.__cause__!r}") from exc
            assert response.status_code in (200, 202), response.text

    try:
        await asyncio.gather(*(worker() for _ in range(connections)))
    finally:
        for client in clients:
            await client.aclose()


def ingest_run(config: Path, db: str, tmp: Path, bodies: list[bytes], count: int,
               db_pids: Callable[[], list[int]]) -> Sample:
    with serving(config, db, tmp / "serve", count) as servers:
        pids = [pid for pid, _ in servers]
        dbp = db_pids()
        app0, db0 = cpu_s(pids), cpu_s(dbp)
        start = time.perf_counter()
        asyncio.run(post_bodies([url for _, url in servers], bodies))
        wall = time.perf_counter() - start
        app1, db1 = cpu_s(pids), cpu_s(dbp)
    events = sum(len(json.loads(b)) for b in bodies)
    return Sample(events / wall, wall, app1 - app0, db1 - db0)


def slo_run(db: str, config: Path) -> Sample:
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    start = time.perf_counter()
    result = subprocess.run(
        [sys.executable, "-c", "from monitor.app.cli.start import main; main()", "slo", "report",
         "--json", "--config", str(config), "--db", db, "--at", "2024-06-01T00:00:00Z"],
        cwd=ROOT, capture_output=True)
    wall = time.perf_counter() - start
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    assert result.returncode in (0, 1), result.stderr.decode()[-2000:]
    cpu = (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)
    return Sample(wall, wall, cpu, 0.0)


def load_store(db: str, events: list[dict[str, Any]]) -> None:
    """The events into ``db`` through the store itself (as serve would have stored them)."""
    from monitor.app.phasewatch import Phasewatch
    from monitor.clock import FakeClock
    from monitor.config import load_config

    logging.disable(logging.WARNING)  # the example's failures trip a guard: not a figure
    clock = FakeClock(datetime(2024, 6, 1, tzinfo=UTC))
    pw = Phasewatch.build(load_config(), db_path=db, clock=clock)
    follow_event_time(pw, clock)  # years of runs in seconds: each accepted at its own time
    try:
        for body in batches(events, 1000):
            pw.collector.ingest_body(body, "application/json")
    finally:
        pw.close()


# --- (c) trigger decisions ---------------------------------------------------------------

PROCESSORS = [f"p{i}" for i in range(4)]


def trigger_config(target: str) -> dict[str, Any]:
    return {
        "version": 1,
        "pipelines": [{
            "id": "b", "timezone": "UTC",
            "horizon": {"run_dates": {m: "any" for m in ("overnight", "same_day", "tomorrow")}},
            "services": {"target": {"health_url": f"{target}/health"}},
            "phases": [
                {"id": "s0", "processors": [{"name": p} for p in PROCESSORS]},
                {"id": "s1", "processors": [{"name": "q"}], "services": ["target"],
                 "triggers": [{"kind": "http", "url": f"{target}/trigger", "timeout_s": 10}]},
            ],
        }],
        "server": {"tick_interval_s": 5},
        "store": {"follow_interval_s": 1.0},
    }


async def paced(urls: list[str], runs: int, rate: float) -> dict[tuple[str, str, str, str], float]:
    """Each run's four completions at ``rate`` events/s, to the instances in turn; returns
    when each run's completing event was sent (perf_counter)."""
    stamp = datetime.now(UTC).isoformat()
    today = datetime.now(UTC).date()
    clients = [httpx.AsyncClient(timeout=30) for _ in urls]
    sent: dict[tuple[str, str, str, str], float] = {}
    tasks = []
    start = time.perf_counter()
    n = 0
    try:
        for r in range(runs):
            run_date = (today - timedelta(days=r // 4)).isoformat()
            mode = ("overnight", "same_day", "tomorrow", "backfill")[r % 4]
            for k, p in enumerate(PROCESSORS):
                body = [{"event_id": f"t{r}-{p}", "pipeline": "b", "run_date": run_date, "mode": mode,
                         "phase": "s0", "processor": p, "status": "succeeded", "timestamp": stamp}]
                delay = start + n / rate - time.perf_counter()
                if delay > 0:
                    await asyncio.sleep(delay)
                i = n % len(urls)
                if k == len(PROCESSORS) - 1:
                    sent[("b", run_date, mode, "s1")] = time.perf_counter()
                tasks.append(asyncio.create_task(clients[i].post(f"{urls[i]}/v1/events", json=body)))
                n += 1
        for response in await asyncio.gather(*tasks):
            assert response.status_code in (200, 202), response.text
    finally:
        for client in clients:
            await client.aclose()
    return sent


def trigger_run(db: str, tmp: Path, count: int, runs: int, rate: float,
                db_pids: Callable[[], list[int]]) -> tuple[list[float], int, Sample]:
    ours, theirs = mp.Pipe()
    target = mp.get_context("spawn").Process(target=run_target, args=(theirs,), daemon=True)
    target.start()
    sink = ours.recv()
    config = tmp / "trigger.yaml"
    config.write_text(yaml.safe_dump(trigger_config(sink)))
    try:
        with serving(config, db, tmp / "trig", count) as servers:
            pids = [pid for pid, _ in servers]
            dbp = db_pids()
            app0, db0 = cpu_s(pids), cpu_s(dbp)
            start = time.perf_counter()
            sent = asyncio.run(paced([u for _, u in servers], runs, rate))
            time.sleep(2.0)  # the last triggers
            wall = time.perf_counter() - start
            app1, db1 = cpu_s(pids), cpu_s(dbp)
    finally:
        ours.send("stop")
        arrivals: dict[tuple[str, str, str, str], list[float]] = ours.recv()
        target.join(30)
    latencies = [arrivals[key][0] - at for key, at in sent.items() if key in arrivals]
    duplicates = sum(len(v) - 1 for v in arrivals.values())
    missing = len(sent) - len(latencies)
    assert missing == 0 and duplicates == 0, (missing, duplicates)
    return latencies, duplicates, Sample(0.0, wall, app1 - app0, db1 - db0)


def quantile_ms(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return 1000 * ordered[min(len(ordered) - 1, int(q * len(ordered)))]


# --- main --------------------------------------------------------------------------------

def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true", help="2 small runs of each figure")
    parser.add_argument("--runs", type=int, default=5)
    args = parser.parse_args()
    runs = 2 if args.quick else args.runs
    n_ingest = 2_000 if args.quick else 20_000
    n_slo = 5_000 if args.quick else 100_000
    # 20 events/s (5 completions a second) is far above a daily pipeline's pace and below
    # what one process on this machine's disk sustains with a commit (fsync) per event.
    trigger_runs, rate = (20, 20.0) if args.quick else (100, 20.0)
    print(f"bench/stores.py, {datetime.now(UTC):%Y-%m-%d}, {os.cpu_count()} cores, "
          f"load average {os.getloadavg()[0]:.1f}; {runs} runs each")

    with ExitStack() as stack, tempfile.TemporaryDirectory() as tmpdir:
        tmp = Path(tmpdir)
        server = stack.enter_context(temporary_postgres(durable=True))
        print(f"PostgreSQL: {psycopg.connect(server).execute('SHOW server_version').fetchone()[0]}"  # type: ignore[index]
              " (fsync on, synchronous_commit on)")
        master = postmaster(server)
        pg_pids = lambda: postgres_pids(master)  # noqa: E731
        config = ingest_config(tmp)
        bodies = batches(list(generate(n_ingest, "ing")), 100)

        print(f"\n(a) ingest: POST /v1/events, {n_ingest:,} events in arrays of 100, 8 connections")
        results: dict[str, list[Sample]] = {"sqlite": [], "postgresql": [], "postgresql x3": []}
        for r in range(runs):  # interleaved, so that a busy moment of the machine hits all three
            results["sqlite"].append(ingest_run(config, str(tmp / f"ing{r}.db"), tmp, bodies, 1,
                                                lambda: []))
            results["postgresql"].append(ingest_run(config, fresh_schema(server, f"ing{r}"), tmp,
                                                    bodies, 1, pg_pids))
            results["postgresql x3"].append(ingest_run(config, fresh_schema(server, f"ing3_{r}"),
                                                       tmp, bodies, 3, pg_pids))
        for name, samples in results.items():
            label = {"sqlite": "one serve, SQLite", "postgresql": "one serve, PostgreSQL",
                     "postgresql x3": "three serve, one PostgreSQL"}[name]
            print(f"    {label:<28} {summary(samples, 'events/s')}")
        base = statistics.median(s.value for s in results["sqlite"])
        for name in ("postgresql", "postgresql x3"):
            print(f"    ratio {name} / sqlite: {statistics.median(s.value for s in results[name]) / base:.2f}")

        print(f"\n(b) SLO evaluation: phasewatch slo report --json over {n_slo:,} stored events")
        events = list(generate(n_slo, "slo"))
        lite, pg = str(tmp / "slo.db"), fresh_schema(server, "slo")
        for db in (lite, pg):
            load_store(db, events)
        slo: dict[str, list[Sample]] = {"sqlite": [], "postgresql": []}
        for _ in range(runs):
            slo["sqlite"].append(slo_run(lite, config))
            slo["postgresql"].append(slo_run(pg, config))
        for name, samples in slo.items():
            print(f"    {name:<28} {summary(samples, 's', '.2f')}")

        print(f"\n(c) trigger decisions: {trigger_runs} runs' completions ({len(PROCESSORS)} each) at "
              f"{rate:.0f} events/s, the instances in turn")
        decided: dict[str, list[tuple[list[float], Sample]]] = {"one serve": [], "three serve": []}
        for r in range(runs):
            for name, count in (("one serve", 1), ("three serve", 3)):
                latencies, _, sample = trigger_run(fresh_schema(server, f"trig{count}_{r}"), tmp,
                                                   count, trigger_runs, rate, pg_pids)
                decided[name].append((latencies, sample))
        for name, items in decided.items():
            p50 = [quantile_ms(lat, 0.50) for lat, _ in items]
            p99 = [quantile_ms(lat, 0.99) for lat, _ in items]
            samples = [s for _, s in items]
            print(f"    {name + ', PostgreSQL':<28} p50 {statistics.median(p50):.1f} ms "
                  f"[{min(p50):.1f}-{max(p50):.1f}], p99 {statistics.median(p99):.1f} ms "
                  f"[{min(p99):.1f}-{max(p99):.1f}]; every trigger once; wall "
                  f"{statistics.median(s.wall_s for s in samples):.1f} s, CPU phasewatch "
                  f"{statistics.median(s.app_cpu_s for s in samples):.2f} s + database "
                  f"{statistics.median(s.db_cpu_s for s in samples):.2f} s")


if __name__ == "__main__":
    main()
