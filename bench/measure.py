"""What every bench reports: median and spread of >= 5 runs, CPU time beside wall time.

``run_command`` times a command as a user runs it (a child process): wall time, the child's
CPU time (user + system, from ``os.wait4``, the per-child form of
``resource.getrusage(RUSAGE_CHILDREN)``) and its peak RSS, the command forked from a small
launcher so that its peak is its own, not the bench's. ``time_call`` times an in-process
call (an HTTP request from a client, say) by wall and this process's CPU time.
"""

from __future__ import annotations

import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path


@dataclass(frozen=True)
class Sample:
    wall_s: float
    cpu_s: float
    rss_mb: float = 0.0


@dataclass
class Figures:
    """Samples of one measured path, summarised as median [min-max]."""

    name: str
    samples: list[Sample] = field(default_factory=list)
    unit: str = "s"  # the unit the row shows times in: s, ms or us (per operation)

    @staticmethod
    def _spread(values: list[float], fmt: str) -> str:
        return f"{format(statistics.median(values), fmt)} [{format(min(values), fmt)}-{format(max(values), fmt)}]"

    def median(self, attr: str = "wall_s") -> float:
        return statistics.median(getattr(s, attr) for s in self.samples)

    def row(self) -> dict[str, str]:
        scale = {"s": 1.0, "ms": 1e3, "us": 1e6}[self.unit]
        wall = [s.wall_s * scale for s in self.samples]
        cpu = [s.cpu_s * scale for s in self.samples]
        rss = [s.rss_mb for s in self.samples]
        fmt = ".3f" if self.unit == "s" else ".2f"
        return {
            "path": self.name, "runs": str(len(self.samples)),
            "wall": self._spread(wall, fmt) + f" {self.unit}",
            "cpu": self._spread(cpu, fmt) + f" {self.unit}",
            "peak MB": self._spread(rss, ".0f") if any(rss) else "-",
        }


# Runs the command as its own child and writes that child's wall time, CPU time and peak RSS
# to the file named first. A child's ru_maxrss counts the memory of the process it was forked
# from (Linux keeps the high-water mark across exec), so the command is forked from this
# small launcher (about 10 MB), never from the bench, which may hold a million events.
LAUNCHER = """
import os, sys, time
start = time.perf_counter()
pid = os.posix_spawn(sys.argv[2], sys.argv[2:], os.environ)
_, status, usage = os.wait4(pid, 0)
wall = time.perf_counter() - start
with open(sys.argv[1], "w") as out:
    out.write(f"{wall} {usage.ru_utime + usage.ru_stime} {usage.ru_maxrss}")
sys.exit(os.waitstatus_to_exitcode(status))
"""


def run_command(argv: Sequence[str], *, env: Mapping[str, str] | None = None,
                ok: tuple[int, ...] = (0,), cwd: str | os.PathLike[str] | None = None,
                stdout: Path | None = None) -> Sample:
    """Run ``argv`` once as a child process of a small launcher (``LAUNCHER``); the child's
    wall time, CPU time (user + system) and peak RSS. ``stdout``: a file for its output
    (default: discarded)."""
    out = open(stdout, "w") if stdout is not None else subprocess.DEVNULL  # noqa: SIM115
    program = shutil.which(argv[0], path=(env or os.environ).get("PATH")) or argv[0]
    with tempfile.TemporaryFile() as err, tempfile.NamedTemporaryFile("r") as figures:
        # stderr to a file, not a pipe: a chatty child cannot block
        proc = subprocess.run([sys.executable, "-S", "-c", LAUNCHER, figures.name, program,
                               *argv[1:]], env=dict(env) if env is not None else None,
                              cwd=cwd, stdout=out, stderr=err, check=False)
        err.seek(0)
        text = err.read().decode(errors="replace")
        measured = figures.read().split()
    if stdout is not None:
        out.close()  # type: ignore[union-attr]
    if proc.returncode not in ok or len(measured) != 3:
        raise RuntimeError(f"{' '.join(argv)} exited {proc.returncode}: {text[-2000:]}")
    wall, cpu, maxrss_kb = (float(value) for value in measured)
    return Sample(wall, cpu, maxrss_kb / 1024)


def installed_env(env: Mapping[str, str], pycache: Path) -> dict[str, str]:
    """``env`` as an installed package runs in: its modules' bytecode written once and read
    after. pip compiles a wheel's modules when it installs it (the Dockerfile's ``pip install
    /wheels/*.whl``) and an editable install writes them on its first run; under
    ``PYTHONDONTWRITEBYTECODE=1`` (set in this project's environments) every run would compile
    every module from source (0.25-0.33 s of a cold command). The bytecode goes into
    ``pycache`` (``PYTHONPYCACHEPREFIX``, one file per source path: the trees compared stay
    untouched and apart), written by an untimed first run of each command (``interleaved``)."""
    out = {k: v for k, v in env.items() if k != "PYTHONDONTWRITEBYTECODE"}
    out["PYTHONPYCACHEPREFIX"] = str(pycache)
    return out


def interleaved(paths: Sequence[tuple[str, Callable[[], Sample], int]]) -> list[Figures]:
    """Paths (name, one run, runs) measured round by round: each run once untimed first (it
    writes the bytecode of what it imports and reads the store's pages into the OS cache, as
    a user's earlier runs did), then every path once a round. A load that changes while the
    bench runs (a shared machine) falls on every path alike, not on those measured last."""
    figures = [Figures(name) for name, _, _ in paths]
    for _, once, _ in paths:
        once()
    for round_ in range(max((runs for _, _, runs in paths), default=0)):
        for (_, once, runs), figure in zip(paths, figures, strict=True):
            if round_ < runs:
                figure.samples.append(once())
    return figures


def time_call(fn: Callable[[], object]) -> Sample:
    """One in-process call: wall time and this process's CPU time."""
    cpu0, start = time.process_time(), time.perf_counter()
    fn()
    return Sample(time.perf_counter() - start, time.process_time() - cpu0)


def repeat(name: str, once: Callable[[], Sample], runs: int) -> Figures:
    figures = Figures(name)
    for _ in range(runs):
        figures.samples.append(once())
    return figures


def table(rows: Sequence[Mapping[str, str]]) -> str:
    """Rows of equal keys as a Markdown table."""
    if not rows:
        return ""
    keys = list(rows[0])
    lines = ["| " + " | ".join(keys) + " |", "|" + "|".join("---" for _ in keys) + "|"]
    lines += ["| " + " | ".join(str(r.get(k, "")) for k in keys) + " |" for r in rows]
    return "\n".join(lines)


def emit(bench: str, rows: Sequence[Mapping[str, str]]) -> None:
    """Hand rows to ``bench/run_all.py`` (which sets ``PHASEWATCH_BENCH_ROWS``) for its table."""
    path = os.environ.get("PHASEWATCH_BENCH_ROWS")
    if path:
        with open(path, "a") as out:
            for row in rows:
                out.write(json.dumps({"bench": bench, **row}) + "\n")


def schema_key() -> str:
    """A short hash of the store's schema: a bench's cached store is rebuilt when it changes
    (a store of another schema version fails to open, or is migrated inside the timings)."""
    import hashlib

    from monitor.store.schema import MIGRATIONS

    return hashlib.sha256(repr(MIGRATIONS).encode()).hexdigest()[:8]


def cached_store(cache: Path, stem: str, total: int, build: Callable[[Path, int], None],
                 what: str) -> Path:
    """A bench's store of ``total`` events, built by ``build`` once a day and schema into
    ``cache`` (a 1M-event store takes minutes); written to a temporary name and renamed, so
    an interrupted build is never taken for a store."""
    from datetime import UTC, datetime

    cache.mkdir(parents=True, exist_ok=True)
    path = cache / f"{stem}-{total}-{datetime.now(UTC).date()}-{schema_key()}.db"
    if not path.exists():
        print(f"building {path} ({total:,} events over {what})...", file=sys.stderr)
        tmp = path.with_suffix(".tmp")
        tmp.unlink(missing_ok=True)
        build(tmp, total)
        tmp.rename(path)
    return path
