"""Run every benchmark and print one table.

    python bench/run_all.py            # the full runs (long: tens of minutes, 1M-event stores)
    python bench/run_all.py --quick    # each bench's smoke run
    python bench/run_all.py --only cold_paths --only pooling

Each bench runs as its own child process (its whole output kept in --logs). The benches that
time a user's path report their rows here (``measure.emit``): median [min-max] of >= 5 runs,
wall and CPU time, peak RSS of a child command where there is one, and the baseline named in
"note". A bench that reports no rows gets one row: its whole run, timed once, and a pointer to
its log for its figures.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import sys
import tempfile
from datetime import UTC, datetime
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from measure import run_command, table

HERE = Path(__file__).resolve().parent
# name: (arguments of the full run, of the quick run); None: no such run
BENCHES: dict[str, tuple[list[str], list[str] | None]] = {
    "cold_paths": ([], ["--quick"]),
    "start": ([], ["--quick"]),
    "slo_eval": ([], ["--quick"]),
    "ingest": ([], ["--quick"]),
    "pooling": ([], ["--quick"]),
    "actuator": ([], ["--quick"]),
    "run_state": ([], ["--quick"]),
    "connections": ([], ["--quick"]),
    "export_volume": ([], ["--quick"]),
    "anomaly_eval": ([], ["--quick"]),
    "client_import": ([], None),
    "nab_score": ([], None),
    "fuzz": ([], ["--quick"]),
    "alert_noise": ([], ["--quick"]),
    "crash": ([], ["--quick"]),
    "mirror": ([], ["--quick"]),
    "soak": ([], ["--quick"]),
    "stores": ([], ["--quick"]),
}
COLUMNS = ("bench", "path", "runs", "wall", "cpu", "peak MB", "note")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--quick", action="store_true", help="each bench's smoke run")
    parser.add_argument("--only", action="append", choices=sorted(BENCHES), help="only these")
    parser.add_argument("--logs", type=Path, default=Path(tempfile.gettempdir()) / "phasewatch-bench-logs")
    args = parser.parse_args(argv)
    args.logs.mkdir(parents=True, exist_ok=True)
    rows_file = args.logs / "rows.jsonl"
    rows_file.unlink(missing_ok=True)
    env = {**os.environ, "PHASEWATCH_BENCH_ROWS": str(rows_file)}
    failed = []
    rows: list[dict[str, str]] = []
    for name in args.only or BENCHES:
        full, quick = BENCHES[name]
        extra = quick if args.quick else full
        if extra is None:
            rows.append({"bench": name, "path": "(no quick run)"})
            continue
        log = args.logs / f"{name}.txt"
        argv_ = [sys.executable, str(HERE / f"{name}.py"), *extra]
        print(f"running {' '.join(argv_[1:])} > {log}", file=sys.stderr, flush=True)
        before = len(read_rows(rows_file))
        try:
            sample = run_command(argv_, env=env, cwd=HERE.parent, stdout=log)
        except RuntimeError as exc:
            failed.append(name)
            last = [line for line in str(exc).splitlines() if line.strip()][-1]
            rows.append({"bench": name, "path": "FAILED", "note": f"{last[:100]} (log: {log})"})
            (args.logs / f"{name}.err").write_text(str(exc))
            continue
        emitted = read_rows(rows_file)[before:]
        rows += emitted or [{"bench": name, "path": "(whole bench, 1 run: figures in its log)",
                             "runs": "1", "wall": f"{sample.wall_s:.1f} s", "cpu": f"{sample.cpu_s:.1f} s",
                             "note": str(log)}]
    print(f"phasewatch benchmarks, {datetime.now(UTC):%Y-%m-%d %H:%M} UTC, "
          f"{'quick' if args.quick else 'full'} runs; {platform.processor() or platform.machine()}, "
          f"{os.cpu_count()} cores, Python {platform.python_version()}; median [min-max]")
    print(table([{c: r.get(c, "") for c in COLUMNS} for r in rows]))
    return 1 if failed else 0


def read_rows(path: Path) -> list[dict[str, str]]:
    if not path.exists():
        return []
    return [json.loads(line) for line in path.read_text().splitlines() if line.strip()]


if __name__ == "__main__":
    sys.exit(main())
