"""Connection bounds of ``phasewatch serve``: prints figures, asserts nothing.

    python bench/connections.py            # 1,000 stalled connections, the default timeouts
    python bench/connections.py --quick    # 200 stalled, short timeouts (a few seconds)

Runs the real command (``phasewatch serve`` in a child process, the bundled config with the
``server`` section below) and measures, from this process:

(a) ``GET /health`` latency on a fresh connection, median and spread over ``--runs`` runs of
    ``--probes`` requests, with no other client (the baseline, measured in the same run) and
    then with N connections stalled half in their headers, half in their bodies; the server's
    CPU seconds beside the wall time;
(b) how long a body trickled at 1 byte/s and headers trickled at 1 byte/s stay open
    (``server.body_timeout_s`` / ``header_timeout_s``), and what the client is told.
"""

from __future__ import annotations

import argparse
import os
import select
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Iterator
from contextlib import ExitStack, contextmanager
from pathlib import Path

import httpx
import yaml

from monitor.config import default_config_text


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@contextmanager
def phasewatch_serve(work: Path, server: dict[str, object]) -> Iterator[tuple[int, int]]:
    """``phasewatch serve`` with ``server`` settings; yields (port, pid)."""
    config = yaml.safe_load(default_config_text())
    config.setdefault("server", {}).update(server)
    (work / "pw.yaml").write_text(yaml.safe_dump(config))
    port = free_port()
    env = {**os.environ, "PHASEWATCH_TOKEN": "bench-token"}
    proc = subprocess.Popen(
        [str(Path(sys.executable).with_name("phasewatch")), "serve", "--config", str(work / "pw.yaml"),
         "--db", str(work / "pw.db"), "--port", str(port)],
        env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
    )
    try:
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            try:
                if httpx.get(f"http://127.0.0.1:{port}/health", timeout=1).status_code == 200:
                    break
            except httpx.HTTPError:
                time.sleep(0.1)
        else:
            raise RuntimeError("phasewatch serve did not come up")
        yield port, proc.pid
    finally:
        proc.terminate()
        proc.wait(30)


def cpu_s(pid: int) -> float:
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def probe_ms(port: int, probes: int) -> list[float]:
    """Latency of ``GET /health``, each on a fresh connection (as a load balancer probes)."""
    out = []
    for _ in range(probes):
        start = time.perf_counter()
        with socket.create_connection(("127.0.0.1", port), timeout=10) as sock:
            sock.sendall(b"GET /health HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
            answer = b""
            while chunk := sock.recv(65536):
                answer += chunk
        out.append((time.perf_counter() - start) * 1000)
        assert answer.startswith(b"HTTP/1.1 200 "), answer[:100]
    return out


def stall(stack: ExitStack, port: int, n: int) -> list[socket.socket]:
    socks = []
    for i in range(n):
        sock = stack.enter_context(socket.create_connection(("127.0.0.1", port), timeout=10))
        sock.sendall(b"POST /v1/events HTTP/1.1\r\nHost: x\r\n" if i % 2 else
                     b"POST /v1/events HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer bench-token\r\n"
                     b"Content-Length: 9999\r\n\r\n{")
        socks.append(sock)
    return socks


def still_open(socks: list[socket.socket]) -> int:
    readable, _, _ = select.select(socks, [], [], 0)
    closed = sum(1 for s in readable if not _peek(s))
    return len(socks) - closed


def _peek(sock: socket.socket) -> bytes:
    try:
        return sock.recv(1, socket.MSG_PEEK)
    except OSError:
        return b""


def trickle(port: int, head: bytes, data: bytes, every_s: float, limit_s: float) -> tuple[float, str]:
    """Send ``head`` then ``data`` a byte every ``every_s``; seconds until closed, first line."""
    with socket.create_connection(("127.0.0.1", port), timeout=10) as sock:
        sock.sendall(head)
        start = time.monotonic()
        answer = b""
        while time.monotonic() - start < limit_s:
            readable, _, _ = select.select([sock], [], [], every_s)
            if readable:
                chunk = sock.recv(65536)
                if not chunk:
                    break
                answer += chunk
                continue
            byte, data = data[:1] or b" ", data[1:]
            try:
                sock.send(byte)
            except OSError:
                break
        return time.monotonic() - start, answer.split(b"\r\n", 1)[0].decode() or "(closed)"


def summary(values: list[float]) -> str:
    q = statistics.quantiles(values, n=100) if len(values) > 1 else values * 99
    return f"median {statistics.median(values):6.2f}  p99 {q[98]:6.2f}  max {max(values):6.2f}"


def measure(label: str, port: int, pid: int, runs: int, probes: int,
            check: Callable[[], str] | None = None) -> None:
    medians, every, cpu0, wall0 = [], [], cpu_s(pid), time.perf_counter()
    for _ in range(runs):
        ms = probe_ms(port, probes)
        medians.append(statistics.median(ms))
        every += ms
    wall, cpu = time.perf_counter() - wall0, cpu_s(pid) - cpu0
    spread = f"{min(medians):.2f}-{max(medians):.2f}"
    extra = f"  {check()}" if check else ""
    print(f"  {label:<34} {summary(every)} ms  (run medians {spread})  "
          f"server CPU {cpu:5.2f} s / wall {wall:5.2f} s{extra}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--quick", action="store_true")
    parser.add_argument("--stalled", type=int)
    parser.add_argument("--runs", type=int, default=5)
    parser.add_argument("--probes", type=int, default=40)
    args = parser.parse_args()
    stalled = args.stalled or (200 if args.quick else 1000)
    server: dict[str, object] = {"header_timeout_s": 3, "body_timeout_s": 4} if args.quick else {}
    print(f"phasewatch serve, {time.strftime('%Y-%m-%d')}, {os.cpu_count()} CPUs, "
          f"server section {server or 'defaults'}")
    with tempfile.TemporaryDirectory() as tmp, phasewatch_serve(Path(tmp), server) as (port, pid):
        print(f"(a) GET /health on a fresh connection, {args.runs} runs x {args.probes} probes")
        measure("baseline (no other client)", port, pid, args.runs, args.probes)
        with ExitStack() as stack:
            socks = stall(stack, port, stalled)
            measure(f"{stalled} stalled connections", port, pid, args.runs, args.probes,
                    lambda: f"stalled still open {still_open(socks)}")
        print("(b) slow clients, 1 byte/s")
        limit = 20 if args.quick else 120
        took, said = trickle(port, b"POST /v1/events HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer bench-token\r\n"
                             b"Content-Length: 100000\r\n\r\n",
                             b"{" + b" " * 99_999, 1.0, limit)
        print(f"  body trickled:    closed after {took:5.1f} s, answered {said!r}")
        took, said = trickle(port, b"", b"GET /health HTTP/1.1\r\n" + b"X-Slow: y\r\n" * 100, 1.0, limit)
        print(f"  headers trickled: closed after {took:5.1f} s, answered {said!r}")


if __name__ == "__main__":
    main()
