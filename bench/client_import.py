"""What the client costs a pipeline service: install footprint and import time. Prints figures.

    .venv/bin/python bench/client_import.py [--runs 7] [--no-install] [--python PATH]

1. Install: a fresh venv, ``pip install ./client``; the packages it brought and their size on
   disk (the fresh venv's own pip / setuptools subtracted). ``--no-install`` skips this part.
2. Import: ``python -X importtime -I`` of ``import phasewatch_client`` and of
   ``import phasewatch_client.kit``, each run in a new interpreter, runs interleaved with the
   baseline ``import httpx, tenacity`` (what the client cannot do without). For each: the
   median and the spread (min-max) of importtime's cumulative µs for the top-level import,
   and the CPU time (process_time) beside the wall time (perf_counter) of the import
   statement. Measured with the fresh venv's Python when there is one (what a service
   gets), else with ``--python`` (default: this interpreter).
"""

from __future__ import annotations

import argparse
import json
import statistics
import subprocess
import sys
import tempfile
import venv
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
TARGET_S = 0.25
BASELINE = ("httpx", "tenacity")
TARGETS = {"baseline: import httpx, tenacity": BASELINE,
           "import phasewatch_client": ("phasewatch_client",),
           "import phasewatch_client.kit": ("phasewatch_client.kit",)}


@dataclass
class Samples:
    cumulative_us: list[int] = field(default_factory=list)
    cpu_s: list[float] = field(default_factory=list)
    wall_s: list[float] = field(default_factory=list)


def import_once(python: str, modules: tuple[str, ...]) -> tuple[int, float, float]:
    """importtime's cumulative µs of the top-level imports, and the statement's CPU and wall seconds."""
    code = ("import time\nc, w = time.process_time(), time.perf_counter()\n"
            f"import {', '.join(modules)}\n"
            "print(time.process_time() - c, time.perf_counter() - w)")
    out = subprocess.run([python, "-I", "-X", "importtime", "-c", code],
                         capture_output=True, text=True, check=True)
    # ``import a.b`` imports ``a`` then ``a.b``, both at the top level of importtime's tree
    tops = {".".join(m.split(".")[:n]) for m in modules for n in range(1, m.count(".") + 2)}
    cumulative = 0
    for line in out.stderr.splitlines():
        if not line.startswith("import time:") or "|" not in line:
            continue
        _, cum, name = (part for part in line.removeprefix("import time:").split("|"))
        if name.startswith(" ") and name[1:] in tops:  # a nested entry has more leading spaces
            cumulative += int(cum)
    cpu, wall = (float(x) for x in out.stdout.split())
    return cumulative, cpu, wall


def measure(python: str, runs: int) -> dict[str, Samples]:
    results = {label: Samples() for label in TARGETS}
    import_once(python, ("phasewatch_client.kit",))  # warm the bytecode cache; not counted
    for _ in range(runs):
        for label, modules in TARGETS.items():  # interleaved: a noisy moment hits all alike
            cumulative, cpu, wall = import_once(python, modules)
            results[label].cumulative_us.append(cumulative)
            results[label].cpu_s.append(cpu)
            results[label].wall_s.append(wall)
    return results


def site_packages(env: Path) -> Path:
    return next((env / "lib").glob("python3*/site-packages"))


def installed(env: Path) -> dict[str, str]:
    out = subprocess.run([str(env / "bin" / "python"), "-m", "pip", "list", "--format=json"],
                         capture_output=True, text=True, check=True)
    return {p["name"].lower(): p["version"] for p in json.loads(out.stdout)}


def size_bytes(path: Path) -> int:
    return sum(f.stat().st_size for f in path.rglob("*") if f.is_file() and not f.is_symlink())


def fresh_install(env: Path) -> tuple[dict[str, str], int]:
    """The packages ``pip install ./client`` added to a fresh venv, and the bytes they take."""
    venv.EnvBuilder(with_pip=True).create(env)
    before, size_before = installed(env), size_bytes(site_packages(env))
    subprocess.run([str(env / "bin" / "python"), "-m", "pip", "install", "-q", "--no-cache-dir",
                    str(ROOT / "client")], check=True)
    after = installed(env)
    added = {name: version for name, version in after.items() if name not in before}
    return added, size_bytes(site_packages(env)) - size_before


def report(results: dict[str, Samples]) -> bool:
    baseline = statistics.median(results[next(iter(TARGETS))].cumulative_us)
    print(f"{'':34} {'importtime median':>17} {'spread':>17} {'CPU':>8} {'wall':>8} {'over baseline':>14}")
    ok = True
    for label, s in results.items():
        median = statistics.median(s.cumulative_us)
        spread = f"{min(s.cumulative_us) / 1e3:.1f}-{max(s.cumulative_us) / 1e3:.1f} ms"
        over = "" if label.startswith("baseline") else f"{(median - baseline) / 1e3:+.1f} ms"
        print(f"{label:34} {median / 1e3:14.1f} ms {spread:>17} {statistics.median(s.cpu_s) * 1e3:5.1f} ms "
              f"{statistics.median(s.wall_s) * 1e3:5.1f} ms {over:>14}")
        if not label.startswith("baseline"):
            ok &= median / 1e6 <= TARGET_S
    print(f"target: each client import <= {TARGET_S} s (median importtime): {'met' if ok else 'MISSED'}")
    return ok


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--runs", type=int, default=7)
    parser.add_argument("--no-install", action="store_true",
                        help="skip the fresh-venv install (needs PyPI); measure imports with --python")
    parser.add_argument("--python", default=sys.executable)
    args = parser.parse_args(argv)
    print(f"bench/client_import.py, {datetime.now(UTC):%Y-%m-%d %H:%M} UTC, {args.runs} runs each")
    with tempfile.TemporaryDirectory(prefix="pw-client-bench-") as tmp:
        python = args.python
        if args.no_install:
            print("install: skipped (--no-install); imports measured with", python)
        else:
            env = Path(tmp) / "venv"
            added, size = fresh_install(env)
            python = str(env / "bin" / "python")
            names = ", ".join(f"{n} {v}" for n, v in sorted(added.items()))
            print(f"install: pip install ./client into a fresh venv added {len(added)} packages, "
                  f"{size / 1e6:.1f} MB: {names}")
            print("imports measured with the fresh venv's Python")
        ok = report(measure(python, args.runs))
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
