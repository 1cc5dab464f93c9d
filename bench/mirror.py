"""The BigQuery mirror's cost on ingest: prints figures, asserts nothing.

    python bench/mirror.py            # 5 runs of 20,000 events each way (about a minute)
    python bench/mirror.py --quick    # a smoke run

Collector.ingest_body on 500-event JSON arrays into a fresh store, as ``serve`` builds it,
without the mirror (the baseline) and with it on: the real google-cloud-bigquery client
streaming every event to a local insertAll server in a child process (so its work is not
counted here), the mirror's thread encoding and sending while ingest runs, and a final
flush inside the timing (every row written). Runs alternate, baseline first; the median and
spread of wall time and of this process's CPU time (both threads) per configuration.
"""

from __future__ import annotations

import argparse
import multiprocessing as mp
import statistics
import sys
import tempfile
import time
from multiprocessing.connection import Connection
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench.ingest import batches, fresh_phasewatch, generate
from monitor.telemetry.mirror_config import BigQueryMirrorConfig, MirrorConfig


def serve_insert_all(conn: Connection) -> None:
    """A child process answering every insertAll with ``{}`` (all rows taken)."""
    from phasewatch_client.kit.testing import LocalServer, StubReply, StubRequest

    def handler(request: StubRequest) -> StubReply:
        return StubReply.of_json({"kind": "bigquery#tableDataInsertAllResponse"})

    with LocalServer(handler) as server:
        conn.send(server.url)
        conn.recv()  # until the parent is done


def run(bodies: list[bytes], db: Path, url: str | None) -> tuple[float, float, int]:
    """(wall s, CPU s, rows mirrored) of ingesting ``bodies``; mirrored to ``url`` when given."""
    pw = fresh_phasewatch(db)
    if url is not None:
        from google.auth.credentials import AnonymousCredentials
        from google.cloud import bigquery

        from monitor.telemetry.bigquery import BigQuerySink

        config = BigQueryMirrorConfig(project="bench-project", batch=500, interval_s=1.0)
        pw.config = pw.config.model_copy(update={"mirror": MirrorConfig(bigquery=config)})  # as if configured
        client = bigquery.Client(project="bench-project", credentials=AnonymousCredentials(),  # type: ignore[no-untyped-call]
                                 client_options={"api_endpoint": url})
        pw.start_mirror(BigQuerySink(client, config))
    wall, cpu = time.perf_counter(), time.process_time()
    for body in bodies:
        pw.collector.ingest_body(body, "application/json")
    if pw.mirror is not None:
        pw.mirror.flush()
    wall, cpu = time.perf_counter() - wall, time.process_time() - cpu
    written = int(pw.metrics.registry.get_sample_value(
        "phasewatch_mirror_rows_total", {"mirror": "bigquery", "table": "events"}) or 0)
    pw.close()
    return wall, cpu, written


def spread(values: list[float]) -> str:
    return f"{statistics.median(values):.3f} ({min(values):.3f}-{max(values):.3f})"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="a fast smoke run")
    args = parser.parse_args()
    n, runs = (2000, 2) if args.quick else (20_000, 5)
    bodies = batches(list(generate(n)), 500)
    parent, child = mp.Pipe()
    server = mp.get_context("spawn").Process(target=serve_insert_all, args=(child,), daemon=True)
    server.start()
    url = parent.recv()
    results: dict[str, list[tuple[float, float, int]]] = {"baseline": [], "mirror": []}
    with tempfile.TemporaryDirectory() as tmp:
        for i in range(runs):
            for name in results:
                db = Path(tmp) / f"{name}-{i}.db"
                results[name].append(run(bodies, db, url if name == "mirror" else None))
    parent.send("done")
    server.join(5)
    print(f"bench/mirror.py: {n} events in 500-event arrays, {runs} runs each, Python "
          f"{sys.version.split()[0]}")
    print(f"{'configuration':<14} {'events/s (median)':>18} {'wall s (min-max)':>24} {'CPU s (min-max)':>24}"
          "  mirrored")
    for name, rows in results.items():
        walls, cpus = [r[0] for r in rows], [r[1] for r in rows]
        print(f"{name:<14} {n / statistics.median(walls):>18,.0f} {spread(walls):>24} "
              f"{spread(cpus):>24}  {rows[-1][2]}")
    base = statistics.median(r[0] for r in results["baseline"])
    mirrored = statistics.median(r[0] for r in results["mirror"])
    print(f"mirror on / off, wall: {mirrored / base:.2f}x")


if __name__ == "__main__":
    main()
