"""Actuator benchmark: prints figures, asserts nothing.

    python bench/actuator.py              # 5 runs of each profile, interleaved (~10 min)
    python bench/actuator.py --quick      # a smoke run (one short run of each profile)
    python bench/actuator.py --runs 7 --profiles a2,a2-busy
    python bench/actuator.py --compare ../before   # also against another checkout, in turn

(a) Decision latency on loopback: events are POSTed (``--batch`` per request, default 10)
    to a real ``phasewatch serve`` (a child process) at a fixed rate (default 1,000
    events/s); 9 pipelines x 52 runs x 5 phases of 5 processors each, so about one event
    in twelve completes a phase (1,872 triggers). Each completion makes the next phase due,
    and phasewatch sends its trigger (health-gated, HTTP sink, Idempotency-Key) to a local
    target in a process of its own. Latency is from writing the completing event to the
    target receiving the trigger, on the shared monotonic clock; "decision -> accepted" is
    the same trigger's decision and success in phasewatch's audit log. Target (issue 18):
    decision -> accepted p99 <= 50 ms in a2 and a2-busy.
    Profiles, run in turn (a fresh serve, store and target each run):
    a1       completions at an even pace (~80 triggers/s);
    a2       the same events ordered so that completions come in bursts of up to ~230
             triggers in a second (a stress case); the baseline of a2-busy;
    a2-busy  a2 while another process (``python -c 'while True: pass'``) keeps one of the
             machine's cores busy, as a neighbour on a shared machine does.
    Each figure is the median of the runs with their range; CPU is the seconds the serve
    process used during the load (from /proc), beside the load's wall time; each run
    line shows the machine's load average. ``--compare DIR`` runs every profile against
    the serve of another checkout too (the before of a change), in turn with this one
    (each first in every other run: what runs first tends to use a little more CPU).
(b) The decision alone, in process: ``Collector.ingest`` of a completing event on a fake
    clock with an in-memory sink (rule evaluation, the pending row, the inline delivery).
"""


from __future__ import annotations

import argparse
import asyncio
import json
import multiprocessing as mp
import os
import random
import statistics
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from multiprocessing.connection import Connection
from pathlib import Path
from typing import Any

import yaml

sys.path.insert(0, str(Path(__file__).resolve().parent))

from measure import emit

ROOT = Path(__file__).resolve().parent.parent
MODES = ("overnight", "same_day", "tomorrow", "backfill")
PHASES = 10


def bench_config(pipelines: int, sink: str, phase_count: int = PHASES,
                 processors: int = 1) -> dict[str, Any]:
    """Pipelines of phases of ``processors`` each; every phase after the first has a trigger."""
    out = []
    for p in range(pipelines):
        phases: list[dict[str, Any]] = []
        for k in range(phase_count):
            phase: dict[str, Any] = {"id": f"s{k}", "processors": [
                {"name": f"w{k}_{j}"} for j in range(processors)]}
            if k:
                phase.update(services=["target"],
                             triggers=[{"kind": "http", "url": f"{sink}/trigger", "timeout_s": 10}])
            phases.append(phase)
        out.append({"id": f"bench{p}", "timezone": "UTC",
                    "horizon": {"run_dates": dict.fromkeys(MODES, "any")},
                    "services": {"target": {"health_url": f"{sink}/health"}}, "phases": phases})
    return {"version": 1, "pipelines": out, "server": {"tick_interval_s": 30}}


@dataclass
class Plan:
    """The events to send, in order, and which trigger each completion should cause."""

    bodies: list[bytes] = field(default_factory=list)
    causes: dict[int, tuple[str, str, str, str]] = field(default_factory=dict)


def plan_events(pipelines: int, phases: int = PHASES, processors: int = 1,
                burst: bool = False) -> Plan:
    """Phase by phase, every run's processors start and succeed (each start before its
    success); a run's last success in a phase is the completion that makes the next phase
    due. The runs go in two halves, so a run's next phase starts (on its own) only after the
    other half's events: a trigger still in flight would otherwise be superseded by that start.

    Within a half, each run's events fall in a window of its own, the windows staggered
    evenly and the completion closing its window: completions arrive at an even pace, as
    in a real pipeline. ``burst``: the events of a half are shuffled together instead, so
    most runs complete in the last moments of the half (a stress case: up to a few hundred
    triggers in a second).
    """
    plan = Plan()
    rng = random.Random(7)
    today = datetime.now(UTC).date()
    runs = [(f"bench{p}", (today - timedelta(days=d)).isoformat(), m)
            for p in range(pipelines) for d in range(13) for m in MODES]
    stamp = datetime.now(UTC).isoformat()
    n = 0
    halves = (runs[::2], runs[1::2])
    window = 8.0  # a run's events span this many runs' worth of the half
    for k, half in ((k, h) for k in range(phases) for h in halves):
        order: list[tuple[float, tuple[str, str, str], int, str]] = []
        for i, run in enumerate(rng.sample(half, len(half))):
            begin, end = (0.0, 1.0) if burst else (float(i), i + window)
            for j in range(processors):
                first, second = sorted(rng.uniform(begin, end) for _ in range(2))
                order += [(first, run, j, "started"), (second, run, j, "succeeded")]
            if not burst:  # the completion closes the run's window
                last = max(range(len(order) - 2 * processors, len(order)),
                           key=lambda x: order[x][0] if order[x][3] == "succeeded" else -1.0)
                order[last] = (end, *order[last][1:])
        order.sort(key=lambda item: item[0])
        last_of = {run: at for at, run, _, status in order if status == "succeeded"}
        for at, (pipeline, run_date, mode), j, status in order:
            n += 1
            body = {"event_id": f"b-{n}", "pipeline": pipeline, "run_date": run_date,
                    "mode": mode, "phase": f"s{k}", "processor": f"w{k}_{j}", "status": status,
                    "timestamp": stamp}
            if status == "succeeded" and last_of[(pipeline, run_date, mode)] == at and k + 1 < phases:
                plan.causes[len(plan.bodies)] = (pipeline, run_date, mode, f"s{k + 1}")
            plan.bodies.append(json.dumps(body).encode())
    return plan


class Target:
    """A minimal HTTP/1.1 keep-alive server: /health passes, /trigger records arrival times."""

    def __init__(self) -> None:
        self.arrivals: dict[tuple[str, str, str, str], list[float]] = {}
        self.server: asyncio.Server | None = None

    async def start(self) -> str:
        self.server = await asyncio.start_server(self._client, "127.0.0.1", 0)
        return f"http://127.0.0.1:{self.server.sockets[0].getsockname()[1]}"

    async def _client(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            while True:
                line = await reader.readline()
                if not line:
                    return
                length = 0
                while (header := await reader.readline()) not in (b"\r\n", b""):
                    name, _, value = header.decode().partition(":")
                    if name.lower() == "content-length":
                        length = int(value)
                body = await reader.readexactly(length) if length else b""
                if line.startswith(b"POST /trigger"):
                    at = time.perf_counter()
                    data = json.loads(body)
                    key = (data["pipeline"], data["run_date"], data["mode"], data["phase"])
                    self.arrivals.setdefault(key, []).append(at)
                    answer = b'{"accepted": true}'
                    status = b"202 Accepted"
                else:
                    answer, status = b'{"status": "pass"}', b"200 OK"
                writer.write(b"HTTP/1.1 " + status + b"\r\nContent-Type: application/json\r\n"
                             b"Content-Length: " + str(len(answer)).encode() + b"\r\n\r\n" + answer)
                await writer.drain()
        except (ConnectionError, asyncio.IncompleteReadError, asyncio.CancelledError):
            return  # the client went away, or the benchmark is over
        finally:
            writer.close()


async def post_all(url: str, plan: Plan, rate: float, connections: int,
                   batch: int) -> tuple[dict[int, float], dict[int, float], float]:
    """Send the bodies at ``rate`` events per second, ``batch`` per POST; returns send times."""
    host, port = url.removeprefix("http://").split(":")
    queue: asyncio.Queue[int | None] = asyncio.Queue()
    sent: dict[int, float] = {}
    answered: dict[int, float] = {}

    async def worker() -> None:
        reader, writer = await asyncio.open_connection(host, int(port))
        try:
            while (first := await queue.get()) is not None:
                span = range(first, min(first + batch, len(plan.bodies)))
                body = b"[" + b",".join(plan.bodies[i] for i in span) + b"]"
                writer.write(b"POST /v1/events HTTP/1.1\r\nHost: bench\r\nContent-Type: "
                             b"application/json\r\nContent-Length: " + str(len(body)).encode()
                             + b"\r\n\r\n" + body)
                now = time.perf_counter()
                for i in span:
                    sent[i] = now
                await writer.drain()
                status = await reader.readline()
                length = 0
                while (header := await reader.readline()) not in (b"\r\n", b""):
                    name, _, value = header.decode().partition(":")
                    if name.lower() == "content-length":
                        length = int(value)
                await reader.readexactly(length)
                now = time.perf_counter()
                for i in span:
                    answered[i] = now
                if b" 202 " not in status:
                    raise RuntimeError(f"phasewatch answered {status!r}")
        finally:
            writer.close()

    workers = [asyncio.create_task(worker()) for _ in range(connections)]
    start = time.perf_counter()
    for i in range(0, len(plan.bodies), batch):
        due = start + i / rate
        delay = due - time.perf_counter()
        if delay > 0:
            await asyncio.sleep(delay)
        queue.put_nowait(i)
    for _ in workers:
        queue.put_nowait(None)
    await asyncio.gather(*workers)
    return sent, answered, time.perf_counter() - start


def start_serve(config: Path, db: Path, log: Path,
                root: Path = ROOT) -> tuple[subprocess.Popen[bytes], str]:
    """``phasewatch serve`` of the checkout at ``root`` (``python -c`` imports from its cwd)."""
    with log.open("ab") as stderr:
        proc = subprocess.Popen(
            [sys.executable, "-c", "from monitor.app.cli.start import main; main()", "serve", "--config",
             str(config), "--db", str(db), "--port", "0"],
            cwd=root, stdout=subprocess.DEVNULL, stderr=stderr,
            env={**os.environ, "PHASEWATCH_TOKEN": ""},
        )
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        for line in log.read_text().splitlines():
            if "event=serve.started" in line:
                return proc, f"http://127.0.0.1:{line.split(' port=')[1].split()[0]}"
        if proc.poll() is not None:
            break
        time.sleep(0.05)
    proc.kill()
    raise SystemExit(f"serve did not start:\n{log.read_text()}")


def server_side_count(db: Path) -> int:
    import sqlite3

    try:
        con = sqlite3.connect(db, timeout=5)
        try:
            return int(con.execute("SELECT COUNT(*) FROM actuator_triggers WHERE state IN"
                                   " ('succeeded', 'failed')").fetchone()[0])
        finally:
            con.close()
    except sqlite3.Error:
        return 0


def server_side(db: Path) -> list[float]:
    """Seconds from each trigger's decision to the target's acceptance, from the audit log."""
    import sqlite3

    con = sqlite3.connect(db)
    try:
        rows = con.execute(
            "SELECT d.at, t.at FROM actuator_audit d JOIN actuator_audit t ON"
            " d.pipeline = t.pipeline AND d.run_date = t.run_date AND d.mode = t.mode AND"
            " d.phase = t.phase WHERE d.kind = 'decision' AND d.outcome = 'taken' AND"
            " t.kind = 'trigger' AND t.outcome = 'succeeded'").fetchall()
    finally:
        con.close()
    return [(datetime.fromisoformat(b) - datetime.fromisoformat(a)).total_seconds() for a, b in rows]


def ms(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return 1000 * ordered[min(len(ordered) - 1, int(q * len(ordered)))]


TICK = os.sysconf("SC_CLK_TCK")


def cpu_s(pid: int) -> float:
    """User + system seconds a process has used so far (0 once it is gone)."""
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except OSError:
        return 0.0
    return (int(fields[11]) + int(fields[12])) / TICK


def run_target(conn: Connection) -> None:
    """The target in a process of its own (its own GIL); arrival times on the shared
    monotonic clock (perf_counter is CLOCK_MONOTONIC on Linux, the same in every process)."""

    async def serve() -> None:
        target = Target()
        conn.send(await target.start())
        while not conn.poll():
            await asyncio.sleep(0.05)
        conn.recv()
        conn.send(target.arrivals)

    asyncio.run(serve())


@dataclass(frozen=True)
class Profile:
    name: str
    burst: bool
    busy: bool
    what: str


PROFILES = {p.name: p for p in (
    Profile("a1", False, False, "even pace"),
    Profile("a2", True, False, "bursts"),
    Profile("a2-busy", True, True, "bursts, one core kept busy by another process"),
)}


@dataclass
class Result:
    """The figures of one run of a profile."""

    profile: str
    events: int
    expected: int
    received: int
    duplicates: int
    wall_s: float
    serve_cpu_s: float
    busy_cpu_s: float
    load: float
    latencies: list[float]
    inside: list[float]
    acks: list[float]

    def line(self) -> str:
        lat, inside = self.latencies or [0.0], self.inside or [0.0]
        return (f"    {self.profile:<16} triggers {self.received}/{self.expected}, duplicates "
                f"{self.duplicates}; event -> target p50 {ms(lat, 0.5):.1f} ms, p99 "
                f"{ms(lat, 0.99):.1f} ms, max {1000 * max(lat):.1f} ms; decision -> accepted p99 "
                f"{ms(inside, 0.99):.1f} ms; POST p99 {ms(self.acks, 0.99):.1f} ms; serve CPU "
                f"{self.serve_cpu_s:.1f} s in {self.wall_s:.1f} s"
                + (f" (busy process {self.busy_cpu_s:.1f} s)" if self.busy_cpu_s else "")
                + f"; load {self.load:.1f}")


async def loopback(pipelines: int, phases: int, processors: int, rate: float, batch: int,
                   workdir: Path, profile: Profile, root: Path = ROOT, label: str = "") -> Result:
    ours, theirs = mp.Pipe()
    target_proc = mp.get_context("spawn").Process(target=run_target, args=(theirs,), daemon=True)
    target_proc.start()
    sink = ours.recv()
    config = workdir / "bench.yaml"
    config.write_text(yaml.safe_dump(bench_config(pipelines, sink, phases, processors)))
    plan = plan_events(pipelines, phases, processors, profile.burst)
    proc, url = start_serve(config, workdir / "bench.db", workdir / "serve.log", root)
    busy = (subprocess.Popen([sys.executable, "-c", "while True: pass"])
            if profile.busy else None)
    load = os.getloadavg()[0]
    try:
        cpu_before = cpu_s(proc.pid)
        sent, answered, elapsed = await post_all(url, plan, rate, connections=8, batch=batch)
        deadline = time.perf_counter() + 30
        while time.perf_counter() < deadline and server_side_count(workdir / "bench.db") < len(plan.causes):
            await asyncio.sleep(0.1)
        serve_cpu = cpu_s(proc.pid) - cpu_before
        busy_cpu = cpu_s(busy.pid) if busy is not None else 0.0
    finally:
        if busy is not None:
            busy.kill()
            busy.wait(30)
        proc.terminate()
        proc.wait(30)
        ours.send("stop")
        arrivals: dict[tuple[str, str, str, str], list[float]] = ours.recv()
        target_proc.join(30)
    return Result(
        profile.name + label, len(plan.bodies), len(plan.causes),
        sum(1 for key in plan.causes.values() if key in arrivals),
        sum(len(v) - 1 for v in arrivals.values()), elapsed, serve_cpu, busy_cpu, load,
        [arrivals[key][0] - sent[i] for i, key in plan.causes.items() if key in arrivals],
        server_side(workdir / "bench.db"),
        [answered[i] - sent[i] for i in range(0, len(plan.bodies), batch) if i in answered],
    )


def spread(values: list[float], fmt: str = ".1f") -> str:
    """The median of the runs' values with their range."""
    return f"{statistics.median(values):{fmt}} [{min(values):{fmt}}-{max(values):{fmt}}]"


def summarise(results: list[Result], profiles: list[Profile], labels: list[str]) -> None:
    print("\nper profile: median [range] of the runs")
    print(f"  {'profile':<16}{'runs':>4}  {'event -> target p50 ms':<22}  {'p99 ms':<20}  "
          f"{'decision -> accepted p99 ms':<27}  {'POST p99 ms':<18}  {'serve CPU s / wall s':<26}"
          "  CPU ms per trigger")
    p99s: dict[str, float] = {}
    rows: list[dict[str, str]] = []
    for name in (p.name + label for label in labels for p in profiles):
        mine = [r for r in results if r.profile == name]
        if not mine:
            continue
        p99 = [ms(r.latencies or [0.0], 0.99) for r in mine]
        inside = [ms(r.inside or [0.0], 0.99) for r in mine]
        p99s[name] = statistics.median(inside)
        p99s[name + " event"] = statistics.median(p99)
        cpu = f"{spread([r.serve_cpu_s for r in mine])} / {statistics.median(r.wall_s for r in mine):.1f}"
        print(f"  {name:<16}{len(mine):>4}  "
              f"{spread([ms(r.latencies or [0.0], 0.5) for r in mine]):<22}  {spread(p99):<20}  "
              f"{spread(inside):<27}  {spread([ms(r.acks, 0.99) for r in mine]):<18}  {cpu:<26}  "
              f"{spread([1000 * r.serve_cpu_s / max(1, r.received) for r in mine], '.2f')}")
        rows.append({
            "path": f"{name}: decision -> trigger accepted, p99", "runs": str(len(mine)),
            "wall": spread(inside) + " ms",
            "cpu": spread([1000 * r.serve_cpu_s / max(1, r.received) for r in mine], ".2f")
            + " ms/trigger",
            "note": "target <= 50 ms" if name in ("a2", "a2-busy") else "",
        })
    emit("actuator", rows)
    missing = sum(r.expected - r.received for r in results)
    duplicates = sum(r.duplicates for r in results)
    print(f"  every run: triggers missing {missing}, duplicates {duplicates}")
    for name in ("a2", "a2-busy"):
        if name in p99s:
            met = "met" if p99s[name] <= 50 else "NOT met"
            print(f"  {name}: p99 decision -> accepted {p99s[name]:.1f} ms [target <= 50 ms: {met}];"
                  f" event -> target {p99s[name + ' event']:.1f} ms (with the wait in ingest)")
    if "a2" in p99s and "a2-busy" in p99s and p99s["a2"]:
        print(f"  a2-busy against its baseline a2 (same run): p99 decision -> accepted "
              f"{p99s['a2-busy'] / p99s['a2']:.2f}x")
    for label in labels[1:]:
        for p in profiles:
            if p99s.get(p.name + label) and p.name in p99s:
                print(f"  {p.name} against {p.name}{label} (same run): p99 decision -> accepted "
                      f"{p99s[p.name] / p99s[p.name + label]:.2f}x, event -> target "
                      f"{p99s[p.name + ' event'] / p99s[p.name + label + ' event']:.2f}x")


def machine() -> str:
    model = next((line.split(":", 1)[1].strip() for line in
                  Path("/proc/cpuinfo").read_text().splitlines() if line.startswith("model name")),
                 "unknown CPU")
    return f"{os.cpu_count()} cores ({model}), Python {sys.version.split()[0]}"


def in_process(runs: int) -> None:
    from monitor.actuator.sinks import MemorySink
    from monitor.app.phasewatch import Phasewatch
    from monitor.clock import FakeClock
    from monitor.config import parse_config
    from monitor.events import Event

    sink = MemorySink()
    config = parse_config(yaml.safe_dump(bench_config(1, "http://127.0.0.1:9", 2)), "bench.yaml")
    clock = FakeClock(datetime(2026, 1, 18, tzinfo=UTC))

    class Healthy:
        def probe(self, service: str, cfg: Any, endpoints: Any, at: datetime) -> Any:
            from monitor.actuator.gates import HealthResult
            return HealthResult(service, "pass", "bench", at)

    with tempfile.TemporaryDirectory() as tmp:
        pw = Phasewatch.build(config, db_path=Path(tmp) / "b.db", clock=clock, probe=Healthy(),
                              sinks={"http": sink})
        times: list[float] = []
        try:
            for n in range(runs):
                run_date = (clock.now().date() - timedelta(days=1 + n % 13)).isoformat()
                event = Event.model_validate_json(json.dumps({
                    "event_id": f"ip-{n}", "pipeline": "bench0", "run_date": run_date,
                    "mode": MODES[(n // 13) % 4], "phase": "s0", "processor": "w0_0",
                    "status": "succeeded", "timestamp": clock.now().isoformat()}))
                if (n // 52) and n % 52 == 0:
                    clock.advance(13 * 86400)  # fresh runs: thirteen new run dates
                start = time.perf_counter()
                pw.collector.ingest([event])
                times.append(time.perf_counter() - start)
                clock.advance(0.01)
        finally:
            pw.close()
    decided = sum(1 for s in sink.sent)
    print(f"(b) in process: ingest of a completing event incl. decision, pending row and "
          f"inline delivery ({decided} triggers): p50 {ms(times, 0.5):.2f} ms, "
          f"p99 {ms(times, 0.99):.2f} ms, mean {1000 * statistics.fmean(times):.2f} ms")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="one short run of each profile")
    parser.add_argument("--runs", type=int, default=5, help="runs of each profile (default 5)")
    parser.add_argument("--profiles", default="a1,a2,a2-busy",
                        help=f"comma-separated, of {', '.join(PROFILES)}")
    parser.add_argument("--compare", type=Path, metavar="DIR",
                        help="also run each profile against the checkout in DIR (e.g. a git "
                             "worktree of an earlier commit), labelled @<DIR's name>")
    parser.add_argument("--rate", type=float, default=1000.0, help="events per second")
    parser.add_argument("--batch", type=int, default=10, help="events per POST")
    parser.add_argument("--processors", type=int, default=5,
                        help="processors a phase (1: every success completes a phase)")
    args = parser.parse_args()
    unknown = [p for p in args.profiles.split(",") if p not in PROFILES]
    if unknown:
        parser.error(f"unknown profiles {unknown}; allowed: {', '.join(PROFILES)}")
    profiles = [PROFILES[p] for p in args.profiles.split(",")]
    pipelines, phases = (2, 2) if args.quick else (9, 5)
    runs = 1 if args.quick else args.runs
    print(f"bench/actuator.py on {machine()}, {datetime.now(UTC):%Y-%m-%d %H:%M} UTC; "
          f"{runs} run(s) of {', '.join(p.name for p in profiles)}, in turn")
    trees = [(ROOT, "")]
    if args.compare is not None:
        if not (args.compare / "monitor" / "app").is_dir():
            parser.error(f"--compare: {args.compare} is not a phasewatch checkout (no monitor/app)")
        trees.append((args.compare.resolve(), f"@{args.compare.resolve().name}"))
    results: list[Result] = []
    for n in range(runs):
        print(f"run {n + 1}:")
        for profile in profiles:
            for root, label in trees if n % 2 == 0 else trees[::-1]:  # neither always first
                with tempfile.TemporaryDirectory() as tmp:
                    result = asyncio.run(loopback(pipelines, phases, args.processors, args.rate,
                                                  args.batch, Path(tmp), profile, root, label))
                print(result.line(), flush=True)
                results.append(result)
    summarise(results, profiles, [label for _, label in trees])
    in_process(300 if args.quick else 2000)


if __name__ == "__main__":
    main()
