"""The soak: simulated days at high volume on the injected clock; does anything keep growing?

    python bench/soak.py                   # 90 simulated days x 4 pipelines x 25 processors
    python bench/soak.py --quick           # 84 days x 2 pipelines x 10 processors
    python bench/soak.py --days 180 --pipelines 8

One phasewatch (``Phasewatch.build``: the store in an SQLite file, the actuator, SLOs, the
anomaly detectors, alerting to the log) is driven through the days on a FakeClock by the
replay machinery, ticking every ``tick_interval_s`` (300 s) of simulated time as ``serve``
would. Each day every synthetic pipeline has an overnight run (the day before, from 01:00)
and a same-day run (from 10:00): every processor starts and succeeds (2% fail first and
are retried), the actuator triggers ``publish`` and ``publish`` starts and succeeds.

A table row every simulated week: the process's RSS, the store's size on disk (database
and WAL), runs tracked, ingest latency of that week's events (one ``Collector.ingest`` per
event, wall time: p50, p99) and the wall and CPU seconds the week took. The verdict, per
figure, over the last weeks: bounded (the last 3 weeks grew less than 5% over the 3 before,
after the 10 weeks the detectors and SLO windows take to fill), or growing, with its rate.
"""

from __future__ import annotations

import argparse
import gc
import json
import logging
import os
import random
import resource
import sys
import tempfile
import time
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from monitor.actuator.simulated import simulated  # noqa: E402
from monitor.app.load.config import PUBLISH, WORK, pipeline_id, processor_name, synthetic_config  # noqa: E402
from monitor.app.phasewatch import Phasewatch  # noqa: E402
from monitor.app.sim.replay import Replayer, SimulatedWorld  # noqa: E402
from monitor.clock import FakeClock  # noqa: E402
from monitor.config import parse_config  # noqa: E402
from monitor.events import Event  # noqa: E402

START = date(2026, 1, 5)  # a Monday: weeks are calendar weeks
FILL_WEEKS = 10  # anomaly history (8 weeks of seasonality) and 28-day SLO windows


@dataclass(frozen=True)
class Week:
    week: int
    events: int
    rss_mb: float
    store_mb: float
    runs_tracked: int
    ingest_p50_ms: float
    ingest_p99_ms: float
    wall_s: float
    cpu_s: float


def day_events(day: date, pipelines: int, processors: int, rng: random.Random) -> list[dict[str, Any]]:
    """One simulated day's events of every pipeline, in time order."""
    out: list[dict[str, Any]] = []
    for p in range(pipelines):
        pid = pipeline_id(p)
        for run_date, mode, begins in ((day - timedelta(days=1), "overnight", 1), (day, "same_day", 10)):
            start = datetime(day.year, day.month, day.day, begins, tzinfo=UTC)
            last = start
            for j in range(processors):
                name = processor_name(j)
                at = start + timedelta(minutes=rng.uniform(0, 30))
                out.append(_event(pid, run_date, mode, WORK, name, "started", at))
                at += timedelta(minutes=rng.lognormvariate(2.0, 0.3))
                if rng.random() < 0.02:
                    out.append(_event(pid, run_date, mode, WORK, name, "failed", at,
                                      error="TimeoutError: upstream read timed out"))
                    at += timedelta(minutes=5)
                    out.append(_event(pid, run_date, mode, WORK, name, "started", at, retry=True))
                    at += timedelta(minutes=rng.lognormvariate(2.0, 0.3))
                out.append(_event(pid, run_date, mode, WORK, name, "succeeded", at, records=1000,
                                  expected_records=1000))
                last = max(last, at)
            begin = last + timedelta(minutes=6)  # publish starts once triggered (ticks: 5 min)
            out.append(_event(pid, run_date, mode, PUBLISH, None, "started", begin))
            out.append(_event(pid, run_date, mode, PUBLISH, None, "succeeded", begin + timedelta(minutes=4)))
    out.sort(key=lambda e: e["timestamp"])
    return out


def _event(pipeline: str, run_date: date, mode: str, phase: str, processor: str | None, status: str,
           at: datetime, retry: bool = False, **extra: Any) -> dict[str, Any]:
    suffix = f"{processor}-{status}" + ("-retry" if retry else "")
    body = {"event_id": f"{pipeline}-{run_date}-{mode}-{phase}-{suffix}", "pipeline": pipeline,
            "run_date": run_date.isoformat(), "mode": mode, "phase": phase, "status": status,
            "timestamp": at.isoformat(), **extra}
    if processor:
        body["processor"] = processor
    return body


def rss_mb() -> float:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return float("nan")


def store_mb(db: Path) -> float:
    return sum(p.stat().st_size for p in db.parent.glob(db.name + "*")) / 1e6


def cpu_s() -> float:
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


def quantile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))] if ordered else float("nan")


def soak(days: int, pipelines: int, processors: int, db: Path, on_week: Any = print) -> list[Week]:
    config = parse_config(_config_text(pipelines, processors), "soak.yaml")
    clock = FakeClock(datetime(START.year, START.month, START.day, tzinfo=UTC))
    world = SimulatedWorld()
    probe, sinks, checks = simulated(world)
    pw = Phasewatch.build(config, db_path=db, clock=clock, probe=probe, sinks=sinks, checks=checks)
    player = Replayer(pw, clock, world)
    job_cpu = _time_jobs(pw)
    rng = random.Random(16)
    weeks: list[Week] = []
    jobs_by_week.clear()
    latencies: list[float] = []
    events = 0
    wall0, cpu0 = time.perf_counter(), cpu_s()
    try:
        for d in range(days):
            day = START + timedelta(days=d)
            for body in day_events(day, pipelines, processors, rng):
                event = Event.model_validate_json(json.dumps(body))
                player.advance_to(event.timestamp)
                began = time.perf_counter()
                pw.collector.ingest([event])
                latencies.append((time.perf_counter() - began) * 1000)
                events += 1
            player.advance_to(datetime.combine(day + timedelta(days=1), datetime.min.time(), UTC))
            if (d + 1) % 7 == 0 or d == days - 1:
                gc.collect()
                weeks.append(Week(
                    len(weeks) + 1, events, round(rss_mb(), 1), round(store_mb(db), 1), len(pw.tracker),
                    round(quantile(latencies, 0.5), 2), round(quantile(latencies, 0.99), 2),
                    round(time.perf_counter() - wall0, 1), round(cpu_s() - cpu0, 1)))
                on_week(weeks[-1])
                jobs_by_week.append(dict(job_cpu))
                job_cpu.clear()
                latencies, wall0, cpu0 = [], time.perf_counter(), cpu_s()
    finally:
        pw.close()
    return weeks


jobs_by_week: list[dict[str, float]] = []  # CPU seconds of each periodic job, per week


def _time_jobs(pw: Phasewatch) -> dict[str, float]:
    """Wrap every periodic job to add up its CPU seconds (reset each week by the caller)."""
    spent: dict[str, float] = {}
    for name, job in list(pw.jobs.items()):
        def timed(now: datetime, job: Any = job, name: str = name) -> None:
            began = time.process_time()
            try:
                job(now)
            finally:
                spent[name] = spent.get(name, 0.0) + time.process_time() - began
        pw.jobs[name] = timed
    return spent


def _config_text(pipelines: int, processors: int) -> str:
    import yaml

    data = synthetic_config(pipelines, processors, "http://127.0.0.1:9", tick_interval_s=300)
    return yaml.safe_dump(data)


def verdict(weeks: list[Week], name: str, unit: str) -> str:
    """bounded, or growing at a rate, judged on the weeks after the fill-up."""
    values = [getattr(w, name) for w in weeks]
    if len(values) < 6:
        return f"{name}: too few weeks to judge ({len(values)})"
    before, last = values[-6:-3], values[-3:]
    base = max(before)
    growth = max(last) - base
    rate = (values[-1] - values[-6]) / 5
    settled = len(weeks) > FILL_WEEKS
    tolerance = max(0.05 * base, 2.0 if unit == "MB" else 0.0)
    trend = f"{rate:+.2g} {unit}/week over the last 5 weeks"
    if growth <= tolerance:
        word = "bounded" if settled else "flat so far (the detectors' history fills for 10 weeks)"
        return f"{name}: {word} (last 3 weeks max {max(last):g} {unit} vs {base:g} before; {trend})"
    return f"{name}: GROWING ({trend})"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--quick", action="store_true")
    parser.add_argument("--days", type=int)
    parser.add_argument("--pipelines", type=int)
    parser.add_argument("--processors", type=int)
    args = parser.parse_args()
    days = args.days or (84 if args.quick else 90)
    pipelines = args.pipelines or (2 if args.quick else 4)
    processors = args.processors or (10 if args.quick else 25)
    logging.disable(logging.WARNING)  # the log channel's alert lines are not the point here
    print(f"soak: {days} simulated days x {pipelines} pipelines x {processors} processors, "
          f"{time.strftime('%Y-%m-%d')}, {os.cpu_count()} CPUs")
    print(f"{'week':>4} {'events':>9} {'RSS MB':>7} {'store MB':>9} {'runs':>5} "
          f"{'ingest p50 ms':>13} {'p99 ms':>7} {'wall s':>7} {'CPU s':>6}")

    def row(w: Week) -> None:
        print(f"{w.week:>4} {w.events:>9,} {w.rss_mb:>7} {w.store_mb:>9} {w.runs_tracked:>5} "
              f"{w.ingest_p50_ms:>13} {w.ingest_p99_ms:>7} {w.wall_s:>7} {w.cpu_s:>6}", flush=True)

    started = time.perf_counter()
    with tempfile.TemporaryDirectory() as tmp:
        weeks = soak(days, pipelines, processors, Path(tmp) / "soak.db", row)
    per_event = (weeks[-1].store_mb - weeks[0].store_mb) * 1e6 / max(1, weeks[-1].events - weeks[0].events)
    print(f"wall {time.perf_counter() - started:.0f} s")
    for name, unit in (("rss_mb", "MB"), ("runs_tracked", "runs"), ("ingest_p99_ms", "ms")):
        print(verdict(weeks, name, unit))
    if len(jobs_by_week) > 1:
        first, last = jobs_by_week[0], jobs_by_week[-1]
        print("CPU s of the periodic jobs, first week -> last week: " + ", ".join(
            f"{name} {first.get(name, 0):.2f} -> {last.get(name, 0):.2f}"
            for name in sorted(last, key=lambda n: -last[n])))
    print(f"store_mb: grows with every event (about {per_event:.0f} bytes an event, "
          f"{(weeks[-1].store_mb - weeks[0].store_mb) / max(1, len(weeks) - 1):.1f} MB a week here): "
          "nothing is deleted until retention exists (issue 16, point 4)")


if __name__ == "__main__":
    main()
