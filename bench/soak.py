"""The soak: simulated days at high volume on the injected clock; does anything keep growing?

    python bench/soak.py                   # 154 simulated days x 4 pipelines x 25 processors
    python bench/soak.py --quick           # 126 days x 2 pipelines x 10 processors
    python bench/soak.py --days 180 --pipelines 8 --retention-days 90

One phasewatch (``Phasewatch.build``: the store in an SQLite file, the actuator, SLOs, the
anomaly detectors, alerting to the log) is driven through the days on a FakeClock by the
replay machinery, ticking every ``tick_interval_s`` (300 s) of simulated time as ``serve``
would. Each day every synthetic pipeline has an overnight run (the day before, from 01:00)
and a same-day run (from 10:00): every processor starts and succeeds (2% fail first and
are retried), the actuator triggers ``publish`` and ``publish`` starts and succeeds. Every
``retention.*_days`` is ``--retention-days`` (default 70, the shortest the config allows:
the start-up replay's run dates), and so is ``runs.accept_past_days``, so the hourly
``prune`` job deletes the history older and gives the space back.

A table row every simulated week: the process's RSS, the store's size on disk (database
and WAL), runs tracked, rows the prune job deleted that week, ingest latency of that
week's events (one ``Collector.ingest`` per event, wall time: p50, p99) and the wall and
CPU seconds the week took. The verdict, per figure, over the last weeks: bounded (the last
3 weeks grew less than 5% over the 3 before, after the 10 weeks the detectors and SLO
windows take to fill), or growing, with its rate.
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
    pruned: int
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


def soak(days: int, pipelines: int, processors: int, db: Path, on_week: Any = print,
         retention_days: int = 70) -> list[Week]:
    config = parse_config(_config_text(pipelines, processors, retention_days), "soak.yaml")
    clock = FakeClock(datetime(START.year, START.month, START.day, tzinfo=UTC))
    world = SimulatedWorld()
    probe, sinks, checks = simulated(world)
    pw = Phasewatch.build(config, db_path=db, clock=clock, probe=probe, sinks=sinks, checks=checks)
    player = Replayer(pw, clock, world)
    job_cpu, job_store = _time_jobs(pw)
    rng = random.Random(16)
    weeks: list[Week] = []
    jobs_by_week.clear()
    store_by_week.clear()
    latencies: list[float] = []
    events = pruned0 = 0
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
                pruned = rows_pruned(pw)
                weeks.append(Week(
                    len(weeks) + 1, events, round(rss_mb(), 1), round(store_mb(db), 1), len(pw.tracker),
                    pruned - pruned0, round(quantile(latencies, 0.5), 2),
                    round(quantile(latencies, 0.99), 2), round(time.perf_counter() - wall0, 1),
                    round(cpu_s() - cpu0, 1)))
                pruned0 = pruned
                on_week(weeks[-1])
                jobs_by_week.append(dict(job_cpu))
                store_by_week.append(dict(job_store))
                job_cpu.clear()
                job_store.clear()
                latencies, wall0, cpu0 = [], time.perf_counter(), cpu_s()
    finally:
        pw.close()
    return weeks


jobs_by_week: list[dict[str, float]] = []  # CPU seconds of each periodic job, per week
store_by_week: list[dict[str, float]] = []  # its store work: millions of SQLite VM instructions
STEP = 1000  # VM instructions per call of the progress handler


def rows_pruned(pw: Phasewatch) -> int:
    """Rows the prune job deleted so far, all tables (phasewatch_store_rows_pruned_total)."""
    return int(sum(sample.value for metric in pw.metrics.rows_pruned.collect()
                   for sample in metric.samples if sample.name.endswith("_total")))


def _time_jobs(pw: Phasewatch) -> tuple[dict[str, float], dict[str, float]]:
    """Wrap every periodic job to add up its CPU seconds and its store work (SQLite VM
    instructions: deterministic, unlike time on a shared machine); reset each week."""
    spent: dict[str, float] = {}
    stored: dict[str, float] = {}
    steps = [0]

    def step() -> int:
        steps[0] += 1
        return 0

    pw.store._db.set_progress_handler(step, STEP)  # type: ignore[attr-defined]
    for name, job in list(pw.jobs.items()):
        def timed(now: datetime, job: Any = job, name: str = name) -> None:
            began, counted = time.process_time(), steps[0]
            try:
                job(now)
            finally:
                spent[name] = spent.get(name, 0.0) + time.process_time() - began
                stored[name] = stored.get(name, 0.0) + (steps[0] - counted) * STEP / 1e6
        pw.jobs[name] = timed
    return spent, stored


def _config_text(pipelines: int, processors: int, retention_days: int) -> str:
    import yaml

    data = synthetic_config(pipelines, processors, "http://127.0.0.1:9", tick_interval_s=300)
    data["retention"] = {f"{setting}_days": retention_days
                         for setting in ("events", "dead_letters", "audit", "alerts", "signals")}
    # As the defaults do: nothing older is accepted, so the rows that keep an action exactly
    # once (kept while their run date is accepted) go at the same age.
    data["runs"] = {"accept_past_days": retention_days}
    return yaml.safe_dump(data)


def verdict(weeks: list[Week], name: str, unit: str, floor: float = 0.0) -> str:
    """bounded, or growing at a rate, judged on the weeks after the fill-up (growth within
    5%, or within ``floor`` for a noisy figure, is bounded)."""
    values = [getattr(w, name) for w in weeks]
    if len(values) < 6:
        return f"{name}: too few weeks to judge ({len(values)})"
    before, last = values[-6:-3], values[-3:]
    base = max(before)
    growth = max(last) - base
    rate = (values[-1] - values[-6]) / 5
    settled = len(weeks) > FILL_WEEKS
    tolerance = max(0.05 * base, floor)
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
    parser.add_argument("--retention-days", type=int, default=70,
                        help="every retention.*_days (default 70, the shortest allowed)")
    args = parser.parse_args()
    days = args.days or (126 if args.quick else 154)
    pipelines = args.pipelines or (2 if args.quick else 4)
    processors = args.processors or (10 if args.quick else 25)
    logging.disable(logging.WARNING)  # the log channel's alert lines are not the point here
    print(f"soak: {days} simulated days x {pipelines} pipelines x {processors} processors, "
          f"retention {args.retention_days} days, {time.strftime('%Y-%m-%d')}, "
          f"{os.cpu_count()} CPUs")
    print(f"{'week':>4} {'events':>9} {'RSS MB':>7} {'store MB':>9} {'runs':>5} {'pruned':>7} "
          f"{'ingest p50 ms':>13} {'p99 ms':>7} {'wall s':>7} {'CPU s':>6}")

    def row(w: Week) -> None:
        print(f"{w.week:>4} {w.events:>9,} {w.rss_mb:>7} {w.store_mb:>9} {w.runs_tracked:>5} "
              f"{w.pruned:>7,} {w.ingest_p50_ms:>13} {w.ingest_p99_ms:>7} {w.wall_s:>7} "
              f"{w.cpu_s:>6}", flush=True)

    started = time.perf_counter()
    with tempfile.TemporaryDirectory() as tmp:
        weeks = soak(days, pipelines, processors, Path(tmp) / "soak.db", row, args.retention_days)
    print(f"wall {time.perf_counter() - started:.0f} s")
    for name, unit, floor in (("rss_mb", "MB", 2.0), ("store_mb", "MB", 0.0),
                              ("runs_tracked", "runs", 0.0), ("ingest_p99_ms", "ms", 0.0),
                              ("cpu_s", "s", 0.3)):
        print(verdict(weeks, name, unit, floor))
    if len(jobs_by_week) > 3:
        # Week 3: the runs tracked are full (runs.track_days), the actuator has its day's work.
        first, last = jobs_by_week[2], jobs_by_week[-1]
        print("CPU s of the periodic jobs, week 3 -> last week: " + ", ".join(
            f"{name} {first.get(name, 0):.2f} -> {last.get(name, 0):.2f}"
            for name in sorted(last, key=lambda n: -last[n])))
        first, last = store_by_week[2], store_by_week[-1]
        print("store work of the periodic jobs (millions of SQLite VM instructions), week 3 -> "
              "last week: " + ", ".join(f"{name} {first.get(name, 0):.1f} -> {last.get(name, 0):.1f}"
                                        for name in sorted(last, key=lambda n: -last[n])
                                        if last[name] or first.get(name)))
    first_pruned = next((w.week for w in weeks if w.pruned), None)
    print(f"prune: first rows deleted in week {first_pruned}; "
          f"{sum(w.pruned for w in weeks):,} rows in all")


if __name__ == "__main__":
    main()
