"""What every bench reports: median and spread of >= 5 runs, CPU time beside wall time.

``run_command`` times a command as a user runs it (a child process): wall time, the child's
CPU time (user + system, from ``os.wait4``, the per-child form of
``resource.getrusage(RUSAGE_CHILDREN)``) and its peak RSS. ``time_call`` times an in-process
call (an HTTP request from a client, say) by wall and this process's CPU time.
"""

from __future__ import annotations

import os
import statistics
import subprocess
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field


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

    @staticmethod
    def _spread(values: list[float], fmt: str) -> str:
        return f"{format(statistics.median(values), fmt)} [{format(min(values), fmt)}-{format(max(values), fmt)}]"

    def median(self, attr: str = "wall_s") -> float:
        return statistics.median(getattr(s, attr) for s in self.samples)

    def row(self) -> dict[str, str]:
        wall = [s.wall_s for s in self.samples]
        cpu = [s.cpu_s for s in self.samples]
        rss = [s.rss_mb for s in self.samples]
        return {
            "path": self.name, "runs": str(len(self.samples)),
            "wall s": self._spread(wall, ".3f"), "cpu s": self._spread(cpu, ".3f"),
            "peak MB": self._spread(rss, ".0f") if any(rss) else "-",
        }


def run_command(argv: Sequence[str], *, env: Mapping[str, str] | None = None,
                ok: tuple[int, ...] = (0,), cwd: str | os.PathLike[str] | None = None) -> Sample:
    """Run ``argv`` once as a child process; its wall time, CPU time and peak RSS."""
    start = time.perf_counter()
    proc = subprocess.Popen(argv, env=dict(env) if env is not None else None, cwd=cwd,
                            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    _, status, usage = os.wait4(proc.pid, 0)
    wall = time.perf_counter() - start
    proc.returncode = os.waitstatus_to_exitcode(status)
    err = proc.stderr.read().decode() if proc.stderr else ""
    if proc.stderr:
        proc.stderr.close()
    if proc.returncode not in ok:
        raise RuntimeError(f"{' '.join(argv)} exited {proc.returncode}: {err[-2000:]}")
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
