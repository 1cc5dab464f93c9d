"""The fuzz suite's figures: requests sent, 5xx answers and other failures, per test.

    python bench/fuzz.py            # the long profile (PHASEWATCH_FUZZ=long), a few minutes
    python bench/fuzz.py --quick    # the short profile the test command runs

Runs ``tests/test_fuzz.py`` under pytest with ``PHASEWATCH_FUZZ_REPORT`` set and prints
what each test did. Exit status: pytest's (non-zero when any answer broke a rule).
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--quick", action="store_true", help="the short profile")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        report = Path(tmp) / "fuzz.jsonl"
        env = {**os.environ, "PHASEWATCH_FUZZ_REPORT": str(report),
               "PHASEWATCH_FUZZ": "short" if args.quick else "long"}
        start = time.perf_counter()
        code = subprocess.call([sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider",
                                str(ROOT / "tests" / "test_fuzz.py")], cwd=ROOT, env=env,
                               stdout=subprocess.DEVNULL)
        wall = time.perf_counter() - start
        rows = [json.loads(line) for line in report.read_text().splitlines()] if report.exists() else []
    profile = "short" if args.quick else "long"
    print(f"fuzz suite, {profile} profile, {time.strftime('%Y-%m-%d')}, {wall:.0f} s wall")
    print(f"{'test':<72} {'requests':>9} {'5xx':>5} {'failed':>7}")
    for row in rows:
        print(f"{row['test'][:72]:<72} {row['requests']:>9,} {row['server_errors']:>5} {row['failures']:>7}")
    total = sum(r["requests"] for r in rows)
    errors = sum(r["server_errors"] for r in rows)
    failed = sum(r["failures"] for r in rows)
    print(f"{'total':<72} {total:>9,} {errors:>5} {failed:>7}")
    statuses: dict[str, int] = {}
    for row in rows:
        for status, n in row["by_status"].items():
            statuses[status] = statuses.get(status, 0) + n
    print("answers by status:", ", ".join(f"{s}: {n:,}" for s, n in sorted(statuses.items())))
    return code


if __name__ == "__main__":
    sys.exit(main())
