"""What every bench reports: median and spread of >= 5 runs, CPU time beside wall time.

``run_command`` times a command as a user runs it (a child process): wall time, the child's
CPU time (user + system, from ``os.wait4``, the per-child form of
``resource.getrusage(RUSAGE_CHILDREN)``) and its peak RSS. ``time_call`` times an in-process
call (an HTTP request from a client, say) by wall and this process's CPU time.
"""

from __future__ import annotations

import json
import os
import statistics
import subprocess
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


def run_command(argv: Sequence[str], *, env: Mapping[str, str] | None = None,
                ok: tuple[int, ...] = (0,), cwd: str | os.PathLike[str] | None = None,
                stdout: Path | None = None) -> Sample:
    """Run ``argv`` once as a child process; its wall time, CPU time and peak RSS (the
    kernel's ru_maxrss of the child, which also counts this process's peak at the spawn:
    keep the parent small). ``stdout``: a file for its output (default: discarded)."""
    out = open(stdout, "w") if stdout is not None else subprocess.DEVNULL  # noqa: SIM115
    with tempfile.TemporaryFile() as err:  # a file, not a pipe: a chatty child cannot block
        start = time.perf_counter()
        proc = subprocess.Popen(argv, env=dict(env) if env is not None else None, cwd=cwd,
                                stdout=out, stderr=err)
        _, status, usage = os.wait4(proc.pid, 0)
        wall = time.perf_counter() - start
        proc.returncode = os.waitstatus_to_exitcode(status)
        err.seek(0)
        text = err.read().decode(errors="replace")
    if stdout is not None:
        out.close()  # type: ignore[union-attr]
    if proc.returncode not in ok:
        raise RuntimeError(f"{' '.join(argv)} exited {proc.returncode}: {text[-2000:]}")
    return Sample(wall, usage.ru_utime + usage.ru_stime, usage.ru_maxrss / 1024)


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
