"""Ingest benchmarks: prints figures, asserts nothing.

    python bench/ingest.py            # the full run (a few minutes)
    python bench/ingest.py --quick    # a smoke run (a few seconds)

(a) Collector.ingest_body on 1000-event JSON arrays, with and without what Phasewatch.build
    hangs on the collector (tracker, metrics, SLO ledgers, anomaly detectors, actuator
    rules), vs raw sqlite3 executemany of the same rows into the same schema, each into a
    fresh file with the store's pragmas.
(b) HTTP batches of 500 through uvicorn: /v1/events vs the *peer* endpoint, what a user
    would otherwise write (a Starlette endpoint validating the body with a pydantic model of
    the event and inserting it with executemany into the same table), in the same server
    process (a child process: the client has its own GIL), one after the other in each run.
    Also a *floor*: json.loads, the rows mapped straight from the parsed dicts (no
    validation, no canonical JSON, no run state) and executemany into the same table.
    Beside each rate: the server process's CPU time per event.
(c) single-event POST latency on loopback with a persistent client, ingest on the event
    loop thread (what the service does) and in a threadpool.
(d) peak RSS of a child process after ingesting N events through the collector.
(s) (only with --sections s) CPU per event of each stage of Collector.ingest_body, whole
    stack: each stage and listener timed by its thread time.

Rates are the median of the runs with their range [lowest-highest]; a ratio is taken
within each run (both sides measured in it) and its median reported.
"""

from __future__ import annotations

import argparse
import json
import logging
import multiprocessing as mp
import resource
import socket
import sqlite3
import statistics
import sys
import tempfile
import time
from collections.abc import Iterator
from dataclasses import dataclass, replace
from datetime import UTC, date, datetime, timedelta
from multiprocessing.connection import Connection
from pathlib import Path
from typing import Any, Literal

import httpx
from pydantic import AwareDatetime, BaseModel, ConfigDict, TypeAdapter

sys.path.insert(0, str(Path(__file__).resolve().parent))

from measure import emit

from monitor.app.phasewatch import Phasewatch
from monitor.clock import FakeClock
from monitor.config import load_config
from monitor.events import parse_events
from monitor.store.base import utc_text
from monitor.store.migrations import statements
from monitor.store.schema import INSERT_EVENT, MIGRATIONS, event_row

START = date(2024, 1, 1)
# One run of the NBA example: (phase, processor or None, statuses); aliases as producers send them.
RUN_SHAPE: tuple[tuple[str, str | None, tuple[str, ...]], ...] = (
    ("phase1", None, ("started", "succeeded")),
    ("phase2", "OddsApiGameLinesBatchProcessor", ("started", "succeeded")),
    ("phase2", "p2_nbacom_gamebook_pdf", ("started", "succeeded")),
    ("phase2", "NbacPlayerBoxscoreProcessor", ("started", "succeeded")),
    ("phase2", "p2_bigdataball_pbp", ("started", "failed")),
    ("phase2", "p2_odds_player_props", ("started", "succeeded")),
    ("phase3", "team_offense_game_summary", ("started", "succeeded")),
    ("phase3", "team_defense_game_summary", ("started", "succeeded")),
    ("phase3", "PlayerGameSummaryProcessor", ("started", "succeeded")),
    ("phase3", "upcoming_player_game_context", ("started", "succeeded")),
    ("phase3", "upcoming_team_game_context", ("started", "skipped")),
    ("phase4", "team_defense_zone_analysis", ("started", "succeeded")),
    ("phase4", "player_shot_zone_analysis", ("started", "succeeded")),
    ("phase4", "player_composite_factors", ("started", "succeeded")),
    ("phase4", "player_daily_cache", ("started", "succeeded")),
    ("phase4", "ml_feature_store_v2", ("started", "succeeded")),
    ("phase5", "prediction-coordinator", ("started", "succeeded")),
    ("phase5", "prediction-worker", ("started",) + ("progress",) * 8 + ("succeeded",)),
    ("grading", None, ("started", "succeeded")),
    ("phase6", None, ("started", "succeeded")),
)


def run_events(day: int, prefix: str) -> list[dict[str, Any]]:
    """Every event of one overnight run of the NBA example (run date START + day)."""
    run_date = START + timedelta(days=day)
    at = datetime.combine(run_date + timedelta(days=1), datetime.min.time(), UTC)
    at += timedelta(hours=6)
    out: list[dict[str, Any]] = []
    for slot, (phase, processor, statuses) in enumerate(RUN_SHAPE):
        for step, status in enumerate(statuses):
            at += timedelta(seconds=37)
            event: dict[str, Any] = {
                "event_id": f"{prefix}-{day}-{slot}-{step}", "pipeline": "nba",
                "run_date": run_date.isoformat(), "phase": phase, "status": status,
                "timestamp": at.isoformat().replace("+00:00", "Z"),
            }
            if slot % 3 == 0:
                event["mode"] = "overnight"
            if processor is not None:
                event["processor"] = processor
            if status == "succeeded":
                event.update(duration_s=12.5 + slot, records=400 + slot * 7,
                             expected_records=450, data_as_of=at.isoformat())
            if status == "failed":
                event["error"] = "upstream file missing: play-by-play not published yet"
            if status == "progress":
                event.update(batch_id=f"batch-{run_date}", done=step * 50, total=450)
            if slot % 4 == 0:
                event["attributes"] = {"workflow": "post_game_window_2", "region": "us-west2"}
            out.append(event)
    return out


def generate(n: int, prefix: str = "ev") -> Iterator[dict[str, Any]]:
    """``n`` valid events, run after run, with unique ids."""
    emitted, day = 0, 0
    while emitted < n:
        for event in run_events(day, prefix):
            if emitted == n:
                return
            yield event
            emitted += 1
        day += 1


def batches(events: list[dict[str, Any]], size: int) -> list[bytes]:
    """JSON arrays of ``size`` events."""
    return [json.dumps(events[i : i + size]).encode() for i in range(0, len(events), size)]


def fresh_phasewatch(db: Path, listeners: bool = True) -> Phasewatch:
    """A Phasewatch on a fresh store, as ``serve`` builds it (with a fixed clock).

    ``listeners=False`` drops what Phasewatch.build hangs on the collector (anomaly
    detection, actuator...) to show the collector's own share.
    """
    # The generated runs cross a DST change, and the anomaly detector rightly logs "late"
    # alerts for the runs after it: keep them off the figures.
    logging.disable(logging.WARNING)
    clock = FakeClock(datetime.combine(START, datetime.min.time(), UTC))
    pw = Phasewatch.build(load_config(), db_path=db, clock=clock)
    if not listeners:
        pw.collector.listeners.clear()
    follow_event_time(pw, clock)
    return pw


def follow_event_time(pw: Phasewatch, clock: FakeClock) -> None:
    """Years of runs go through in seconds: the clock is the events' time, as in a replay
    (accepted run dates and the runs kept in memory are relative to the clock)."""
    resolve = pw.collector.resolve  # ingest resolves first: the one way in

    def resolve_at_event_time(events: Any, *args: Any, **kwargs: Any) -> Any:
        latest = max((e.timestamp for e in events), default=clock.now())
        if latest > clock.now():
            clock.set(latest)
        return resolve(events, *args, **kwargs)

    pw.collector.resolve = resolve_at_event_time  # type: ignore[method-assign]


# --- (a) collector vs raw sqlite -------------------------------------------------------------

def bench_collector(bodies: list[bytes], db: Path, listeners: bool = True) -> float:
    """Events per second through Collector.ingest_body into a fresh store."""
    pw = fresh_phasewatch(db, listeners)
    start = time.perf_counter()
    total = sum(pw.collector.ingest_body(b, "application/json").accepted for b in bodies)
    elapsed = time.perf_counter() - start
    assert total == pw.store.count()
    pw.close()
    return total / elapsed


def bench_raw(bodies: list[bytes], db: Path) -> float:
    """Events per second for executemany of pre-built rows (same schema and pragmas)."""
    received = utc_text(datetime(2026, 1, 18, 12, tzinfo=UTC))
    pw = fresh_phasewatch(db.with_suffix(".resolve.db"))  # only to resolve modes and aliases
    row_batches = [[event_row(e, received) for e in pw.collector.resolve(parse_events(b))]
                   for b in bodies]
    pw.close()
    conn = sqlite3.connect(db, isolation_level=None)
    conn.execute("PRAGMA journal_mode=WAL")
    conn.execute("PRAGMA synchronous=NORMAL")
    for migration in MIGRATIONS:  # the same table, indexes and columns as the store's
        for statement in statements(migration, "sqlite"):
            conn.execute(statement)
    start = time.perf_counter()
    for rows in row_batches:
        conn.execute("BEGIN IMMEDIATE")
        conn.executemany(INSERT_EVENT, rows)
        conn.execute("COMMIT")
    elapsed = time.perf_counter() - start
    conn.close()
    return sum(len(r) for r in row_batches) / elapsed


def floor_rows(body: bytes, received: str) -> list[tuple[object, ...]]:
    """The least any ingest must do: parse the JSON and map each object onto the table's
    columns, with no validation, no canonical JSON and no run state (a floor, not a design)."""
    return [(e["event_id"], e["pipeline"], e["run_date"], e.get("mode") or "", e["phase"],
             e.get("processor"), e["status"], e["timestamp"], received, json.dumps(e),
             e.get("duration_s"), e.get("records"), e.get("expected_records"), None, None, 0)
            for e in json.loads(body)]


class PeerEvent(BaseModel):
    """The event as a user would model it for the peer endpoint: the contract's fields and
    types, pydantic's own checks, no run state."""

    model_config = ConfigDict(extra="forbid")

    event_id: str
    pipeline: str
    run_date: date
    mode: Literal["overnight", "same_day", "tomorrow", "backfill"] | None = None
    phase: str
    processor: str | None = None
    status: Literal["started", "progress", "succeeded", "failed", "skipped"]
    timestamp: AwareDatetime
    duration_s: float | None = None
    records: int | None = None
    expected_records: int | None = None
    data_as_of: AwareDatetime | None = None
    batch_id: str | None = None
    total: int | None = None
    done: int | None = None
    error: str | None = None
    attributes: dict[str, str] | None = None
    traceparent: str | None = None


PEER_EVENTS = TypeAdapter(list[PeerEvent])


def peer_rows(body: bytes, received: str) -> list[tuple[object, ...]]:
    """The peer endpoint's rows: the body validated by the pydantic model, each event's
    columns and its JSON."""
    return [(e.event_id, e.pipeline, e.run_date.isoformat(), e.mode or "", e.phase,
             e.processor, e.status, e.timestamp.isoformat(), received,
             e.model_dump_json(exclude_none=True), e.duration_s, e.records,
             e.expected_records, e.data_as_of.timestamp() if e.data_as_of else None, None, 0)
            for e in PEER_EVENTS.validate_json(body)]


def open_floor_db(db: Path) -> sqlite3.Connection:
    """The events table as the store creates it (same pragmas, indexes and columns)."""
    conn = sqlite3.connect(db, isolation_level=None, check_same_thread=False)
    conn.execute("PRAGMA journal_mode=WAL")
    conn.execute("PRAGMA synchronous=NORMAL")
    for migration in MIGRATIONS:
        for statement in statements(migration, "sqlite"):
            conn.execute(statement)
    return conn


# --- (b), (c) HTTP ------------------------------------------------------------------------

def serve_child(db: str, offload: bool, conn: Connection) -> None:
    """Child process: the service's app plus a bare endpoint, on the server ``serve`` runs."""
    from starlette.requests import Request
    from starlette.responses import JSONResponse
    from starlette.routing import Route

    from monitor.app.http.server import bind_socket, create_app, make_server, tune_gc

    floor_db = open_floor_db(Path(db).with_suffix(".floor.db"))
    peer_db = open_floor_db(Path(db).with_suffix(".peer.db"))
    received = utc_text(datetime(2026, 1, 18, 12, tzinfo=UTC))

    async def peer(request: Request) -> JSONResponse:
        rows = peer_rows(await request.body(), received)
        peer_db.execute("BEGIN IMMEDIATE")
        peer_db.executemany(INSERT_EVENT, rows)
        peer_db.execute("COMMIT")
        return JSONResponse({"accepted": len(rows), "duplicates": 0}, 202)

    async def cpu(request: Request) -> JSONResponse:
        return JSONResponse({"cpu_s": time.process_time()})

    async def floor(request: Request) -> JSONResponse:
        rows = floor_rows(await request.body(), received)
        floor_db.execute("BEGIN IMMEDIATE")
        floor_db.executemany(INSERT_EVENT, rows)
        floor_db.execute("COMMIT")
        return JSONResponse({"accepted": len(rows), "duplicates": 0}, 202)

    pw = fresh_phasewatch(Path(db))
    app = create_app(pw, None, offload_ingest=offload)
    app.router.routes.append(Route("/bench/peer", peer, methods=["POST"]))
    app.router.routes.append(Route("/bench/floor", floor, methods=["POST"]))
    app.router.routes.append(Route("/bench/cpu", cpu, methods=["GET"]))
    tune_gc()  # as ``serve`` does once built (all three endpoints share this process)
    sock = bind_socket("127.0.0.1", 0)
    conn.send(sock.getsockname()[1])
    make_server(app).run(sockets=[sock])


class Server:
    """A service child process for the duration of a ``with`` block."""

    def __init__(self, db: Path, offload: bool = False) -> None:
        ctx = mp.get_context("spawn")
        self._parent, child = ctx.Pipe()
        self._proc = ctx.Process(target=serve_child, args=(str(db), offload, child), daemon=True)

    def __enter__(self) -> str:
        self._proc.start()
        port = self._parent.recv()
        return f"http://127.0.0.1:{port}"

    def __exit__(self, *exc: object) -> None:
        self._proc.terminate()
        self._proc.join(10)


def client(url: str) -> httpx.Client:
    """A persistent client with Nagle off: httpx writes headers and body separately, and
    Nagle plus the peer's delayed ACK would add 40 ms to every small POST."""
    nodelay = [(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)]
    return httpx.Client(base_url=url, timeout=60, transport=httpx.HTTPTransport(socket_options=nodelay))


@dataclass(frozen=True)
class Posted:
    """One endpoint in one run: events per second (wall) and server CPU µs per event."""

    rate: float
    cpu_us: float


def server_cpu(http: httpx.Client) -> float:
    response = http.get("/bench/cpu")
    response.raise_for_status()
    return float(response.json()["cpu_s"])


def post_all(http: httpx.Client, path: str, bodies: list[bytes]) -> Posted:
    """Post ``bodies`` one after another: the rate, and the server's CPU time per event."""
    headers = {"Content-Type": "application/json"}
    count = 0
    cpu = server_cpu(http)
    start = time.perf_counter()
    for body in bodies:
        response = http.post(path, content=body, headers=headers)
        response.raise_for_status()
        count += response.json()["accepted"]
    wall = time.perf_counter() - start
    cpu = server_cpu(http) - cpu
    return Posted(count / wall, cpu / count * 1e6)


HTTP_PATHS = {"real": "/v1/events", "peer": "/bench/peer", "floor": "/bench/floor"}


def bench_http(bodies: list[bytes], db: Path, run: int) -> dict[str, Posted]:
    """One run on a fresh server and stores: /v1/events, the peer and the floor endpoints
    (the order turns from run to run, so that neither side always goes first)."""
    names = list(HTTP_PATHS)
    names = names[run % len(names):] + names[:run % len(names)]
    with Server(db) as url, client(url) as http:
        server_cpu(http)  # warm up the connection
        return {name: post_all(http, HTTP_PATHS[name], bodies) for name in names}


def bench_latency(events: list[dict[str, Any]], db: Path, offload: bool) -> tuple[float, float]:
    """p50 and p99 in milliseconds of single-event POSTs."""
    bodies = [json.dumps(e).encode() for e in events]
    samples: list[float] = []
    with Server(db, offload) as url, client(url) as http:
        for i, body in enumerate(bodies):
            start = time.perf_counter()
            response = http.post("/v1/events", content=body)
            elapsed = time.perf_counter() - start
            response.raise_for_status()
            if i >= 50:  # warm-up
                samples.append(elapsed * 1000)
    cuts = statistics.quantiles(samples, n=100)
    return cuts[49], cuts[98]


# --- (d) memory -------------------------------------------------------------------------------

def rss_child(n: int, db: str, listeners: bool, conn: Connection) -> None:
    """Child process: ingest ``n`` events in batches of 1000, send back peak RSS in MB."""
    pw = fresh_phasewatch(Path(db), listeners)
    batch: list[dict[str, Any]] = []
    for event in generate(n, "rss"):
        batch.append(event)
        if len(batch) == 1000:
            pw.collector.ingest_body(json.dumps(batch).encode())
            batch = []
    if batch:
        pw.collector.ingest_body(json.dumps(batch).encode())
    count = pw.store.count()
    pw.close()
    conn.send((count, peak_rss_mb()))


def peak_rss_mb() -> float:
    """Peak RSS of this process in MB.

    Linux carries ru_maxrss over execve, so a child spawned from a big parent reports the
    parent's peak: VmHWM (this image's own high-water mark) is used where there is one.
    """
    try:
        with open("/proc/self/status") as status:
            for line in status:
                if line.startswith("VmHWM:"):
                    return int(line.split()[1]) / 1024
    except OSError:
        pass
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def bench_rss(n: int, db: Path, listeners: bool = True) -> tuple[int, float]:
    ctx = mp.get_context("spawn")
    parent, child = ctx.Pipe()
    proc = ctx.Process(target=rss_child, args=(n, str(db), listeners, child))
    proc.start()
    count, rss = parent.recv()
    proc.join()
    return int(count), float(rss)


# --- report --------------------------------------------------------------------------------

Row = tuple[str, str, str]


@dataclass(frozen=True)
class Sizes:
    collector: int
    http: int
    latency: int
    rss: int
    runs: int  # each figure is the median of this many runs, shown with its range


QUICK = Sizes(5_000, 2_000, 300, 20_000, 1)
FULL = Sizes(200_000, 100_000, 3_000, 1_000_000, 5)


def spread(values: list[float], fmt: str = ",.0f", unit: str = "") -> str:
    """The median and the range of ``values``: ``12,300 [11,900-12,800] ev/s``."""
    middle = statistics.median(values)
    if len(values) == 1:
        return f"{middle:{fmt}}{unit}"
    return f"{middle:{fmt}} [{min(values):{fmt}}-{max(values):{fmt}}]{unit}"


def section_a(sizes: Sizes, d: Path) -> list[Row]:
    bodies = batches(list(generate(sizes.collector, "a")), 1000)
    whole, core, raw = [], [], []
    for i in range(sizes.runs):
        whole.append(bench_collector(bodies, d / f"a-whole-{i}.db", True))
        core.append(bench_collector(bodies, d / f"a-core-{i}.db", False))
        raw.append(bench_raw(bodies, d / f"a-raw-{i}.db"))
    return [("(a) Collector.ingest_body, 1000/batch", spread(whole, unit=" ev/s"), ""),
            ("    same, without build's listeners", spread(core, unit=" ev/s"), ""),
            ("    raw sqlite3 executemany", spread(raw, unit=" ev/s"), ""),
            ("    ratio whole stack / raw", spread([w / r for w, r in zip(whole, raw, strict=True)],
                                                  ".2f"), ""),
            ("    ratio without listeners / raw",
             spread([c / r for c, r in zip(core, raw, strict=True)], ".2f"), "")]


def section_b(sizes: Sizes, d: Path) -> list[Row]:
    bodies = batches(list(generate(sizes.http, "b")), 500)
    runs = [bench_http(bodies, d / f"b-{i}.db", i) for i in range(sizes.runs)]

    def rates(name: str) -> str:
        return spread([r[name].rate for r in runs], unit=" ev/s")

    def cpu(name: str) -> str:
        return "CPU " + spread([r[name].cpu_us for r in runs], ".1f", " µs/ev")

    ratio = [r["real"].rate / r["peer"].rate for r in runs]
    cpu_ratio = [r["peer"].cpu_us / r["real"].cpu_us for r in runs]
    emit("ingest", [
        {"path": "POST /v1/events, 500/batch", "runs": str(len(runs)), "wall": rates("real"),
         "cpu": cpu("real")[4:], "note": f"{spread(ratio, '.2f')} of the peer (target >= 0.6)"},
        {"path": "peer: Starlette + pydantic + executemany", "runs": str(len(runs)),
         "wall": rates("peer"), "cpu": cpu("peer")[4:], "note": "baseline"},
    ])
    return [("(b) HTTP POST /v1/events, 500/batch", rates("real"), cpu("real")),
            ("    peer: Starlette + pydantic model + executemany", rates("peer"), cpu("peer")),
            ("    ratio /v1/events / peer (wall)", spread(ratio, ".2f"), ">= 0.6"),
            ("    ratio by CPU time (peer / /v1/events)", spread(cpu_ratio, ".2f"), ""),
            ("    floor: json.loads + executemany, no checks", rates("floor"), cpu("floor"))]


def section_c(sizes: Sizes, d: Path) -> list[Row]:
    rows = []
    for offload in (False, True):
        events = list(generate(sizes.latency, f"c{int(offload)}"))
        p50, p99 = bench_latency(events, d / f"c{int(offload)}.db", offload)
        where = "threadpool" if offload else "event loop"
        rows.append((f"(c) single POST ({where}) p50 / p99", f"{p50:.2f} / {p99:.2f} ms",
                     "p99 <= 10 ms"))
    return rows


def section_d(sizes: Sizes, d: Path) -> list[Row]:
    count, rss = bench_rss(sizes.rss, d / "d.db")
    _, core = bench_rss(sizes.rss, d / "d-core.db", listeners=False)
    return [(f"(d) peak RSS after {count:,} events", f"{rss:,.0f} MB", "<= 200 MB"),
            ("    same, without build's listeners", f"{core:,.0f} MB", "<= 200 MB")]


def stage_times(bodies: list[bytes], db: Path) -> dict[str, float]:
    """CPU µs an event of each stage of ``Collector.ingest_body``, whole stack, the heap as
    ``serve`` tunes it: each stage and each listener wrapped in a thread-time clock."""
    import gc

    import monitor.collector as collector_module

    pw = fresh_phasewatch(db)
    col = pw.collector
    spent: dict[str, float] = {}

    def timed(name: str, fn: Any) -> Any:
        def wrapper(*args: Any, **kwargs: Any) -> Any:
            start = time.thread_time()
            try:
                return fn(*args, **kwargs)
            finally:
                spent[name] = spent.get(name, 0.0) + time.thread_time() - start
        return wrapper

    parse = collector_module.parse_events  # type: ignore[attr-defined]
    setattr(collector_module, "parse_events", timed("JSON + validation", parse))  # noqa: B010
    try:
        col.resolve = timed("names, aliases, modes", col.resolve)  # type: ignore[method-assign]
        col.store.append = timed("rows, canonical JSON, SQLite", col.store.append)  # type: ignore[method-assign]
        col.tracker.apply = timed("run state (tracker)", col.tracker.apply)  # type: ignore[method-assign]
        col._observe = timed("metrics, spans", col._observe)  # type: ignore[method-assign]
        col.listeners[:] = [timed(getattr(f, "__qualname__", repr(f)), f) for f in col.listeners]
        for body in bodies[:10]:  # warm up: series and runs created
            col.ingest_body(body, "application/json")
        spent.clear()
        gc.collect()
        gc.freeze()
        gc.set_threshold(20_000, 10, 10)  # tune_gc, as serve does
        start = time.thread_time()
        count = sum(col.ingest_body(b, "application/json").accepted for b in bodies[10:])
        total = time.thread_time() - start
    finally:
        setattr(collector_module, "parse_events", parse)  # noqa: B010
    pw.close()
    out = {name: seconds / count * 1e6 for name, seconds in spent.items()}
    out["the rest"] = (total - sum(spent.values())) / count * 1e6
    out["total"] = total / count * 1e6
    return out


def section_s(sizes: Sizes, d: Path) -> list[Row]:
    """(s) CPU per event by stage, median of the runs (batches of 500)."""
    bodies = batches(list(generate(sizes.collector // 2, "s")), 500)
    runs = [stage_times(bodies, d / f"s-{i}.db") for i in range(sizes.runs)]
    names = sorted(runs[0], key=lambda n: (n == "total", n == "the rest", -runs[0][n]))
    return [(f"(s) {name}", spread([r[name] for r in runs], ".1f", " µs/ev"), "CPU")
            for name in names]


SECTIONS = {"a": section_a, "b": section_b, "c": section_c, "d": section_d, "s": section_s}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="a fast smoke run")
    parser.add_argument("--sections", default="abcd",
                        help="which of (a) to (d) to run; s: CPU per event by stage")
    parser.add_argument("--runs", type=int, help="runs of each figure (default: 5, 1 quick)")
    args = parser.parse_args()
    sizes = QUICK if args.quick else FULL
    if args.runs:
        sizes = replace(sizes, runs=args.runs)
    chosen = [name for name in "dabcs" if name in args.sections]  # (d) first, while small
    with tempfile.TemporaryDirectory(prefix="pw-bench-") as tmp:
        by_section = {name: SECTIONS[name](sizes, Path(tmp)) for name in chosen}
    rows = [row for name in sorted(by_section) for row in by_section[name]]
    width = max(len(r[0]) for r in rows)
    print(f"{'figure':<{width}}  {'measured':>32}  target or CPU")
    for name, value, target in rows:
        print(f"{name:<{width}}  {value:>32}  {target}")
    sys.stdout.flush()


if __name__ == "__main__":
    main()
