"""SLO evaluation benchmarks: prints figures, asserts nothing (except that results agree).

    python bench/slo_eval.py            # 100 SLOs over 1 million events (a few minutes)
    python bench/slo_eval.py --quick    # a smoke run

(a) incremental: every event folded into the engine as the collector would (tracker update,
    then SLOEngine.on_update), then SLOEngine.evaluate(now) of all SLOs and all their
    windows (what the service's SLO job and GET /v1/slos run); also a steady-state tick
    (100 new events, then evaluate).
(b) full recompute from the store, as a user runs it: ``phasewatch slo report --json`` (a
    child process: start-up, the window read, the replay, the table), against DuckDB SQL over
    the same events (read from the same SQLite file into columns, loaded into DuckDB, one
    query for every SLO window and burn-rate window), median [min-max] of >= 5 runs each,
    with CPU time. Health probes are not in the store, so neither side sees any. The two must
    give the same good/total for every SLO window and burn-rate window.
"""

from __future__ import annotations

import argparse
import json
import random
import sqlite3
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Iterator
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from typing import Any

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))

from measure import emit, repeat, run_command, table, time_call
from slo_columns import MODES, STATUSES, EventColumns, ProbeColumns

from monitor.config import Config, parse_config
from monitor.events import Event
from monitor.store.sqlite import SQLiteStore
from monitor.tracker import RunTracker
from slo.evaluator import SLOEngine, SLOStatus
from slo.sli.base import HealthProbe
from slo.sli.deadline import ALL_MODES, Deadline
from slo.spec import DeadlineSLI, SLOSpec
from slo.windows import burn_windows, retention_minutes, window_bounds

PHASES = {"raw": 5, "analytics": 5, "features": 5, "publish": 0}
SERVICES = ("api", "worker")
EPOCH = date(1970, 1, 1)


# --------------------------------------------------------------------------- config


def build_config(pipelines: int) -> Config:
    return parse_config(config_text(pipelines), "<bench>")


def config_text(pipelines: int) -> str:
    lines = ["version: 1", "pipelines:"]
    for p in range(pipelines):
        lines += [f"  - id: p{p}", "    timezone: America/New_York", "    services:"]
        lines += [f"      {s}: {{health_url: 'http://127.0.0.1:1/health'}}" for s in SERVICES]
        lines.append("    phases:")
        for phase, n in PHASES.items():
            lines.append(f"      - id: {phase}")
            if n:
                lines.append("        processors:")
                for i in range(n):
                    prio = "optional" if i == n - 1 else "critical"
                    lines.append(f"          - {{name: {phase}_{i}, priority: {prio}}}")
    lines.append("slos:")
    for p in range(pipelines):
        for name, body in slo_bodies(f"p{p}"):
            lines.append(f"  - {{name: p{p}-{name}, pipeline: p{p}, {body}}}")
    return "\n".join(lines) + "\n"


def slo_bodies(pipe: str) -> list[tuple[str, str]]:
    """25 SLOs per pipeline, every kind and window type."""
    r28, r7 = "window: {kind: rolling, days: 28}", "window: {kind: rolling, days: 7}"
    week, month = "window: {kind: calendar, unit: week}", "window: {kind: calendar, unit: month}"
    return [
        ("raw-runs", f"sli: {{kind: success_ratio, phase: raw, processors: []}}, objective: 0.98, {r28}"),
        ("analytics-runs", f"sli: {{kind: success_ratio, phase: analytics, processors: []}}, objective: 0.98, {week}"),
        ("features-runs", f"sli: {{kind: success_ratio, phase: features, processors: [features_0]}}, objective: 0.99, {r7}"),
        ("raw-attempts", f"sli: {{kind: success_ratio, phase: raw, processors: [], count: attempts}}, objective: 0.95, {r28}"),
        ("analytics-attempts", f"sli: {{kind: success_ratio, phase: analytics, processors: [], count: attempts}}, objective: 0.95, {month}"),
        ("analytics-phase", f"sli: {{kind: success_ratio, phase: analytics}}, objective: 0.95, {r28}"),
        ("features-phase", f"sli: {{kind: success_ratio, phase: features}}, objective: 0.95, {month}"),
        ("raw-overnight", f"sli: {{kind: success_ratio, phase: raw, processors: [], modes: [overnight]}}, objective: 0.97, {r7}"),
        ("publish-by-8", f"sli: {{kind: deadline, phase: publish, by: {{time: '08:00'}}}}, objective: 0.95, {r28}"),
        ("analytics-by-6", f"sli: {{kind: deadline, phase: analytics, modes: [overnight], by: {{day_offset: 1, time: '06:00'}}, due: {{only_seen: true}}}}, objective: 0.9, {month}"),
        ("run-by-noon", f"sli: {{kind: deadline, by: {{day_offset: 1, time: '12:00'}}}}, objective: 0.9, {r28}"),
        ("features-by-10", f"sli: {{kind: deadline, phase: features, modes: [same_day, tomorrow], by: {{time: '10:00'}}, by_mode: {{tomorrow: {{day_offset: -1, time: '23:00'}}}}}}, objective: 0.9, {week}"),
        ("publish-weekdays", f"sli: {{kind: deadline, phase: publish, by: {{time: '09:00'}}, due: {{days: [mon, tue, wed, thu, fri]}}}}, objective: 0.95, {month}"),
        ("raw-fast", f"sli: {{kind: duration, phase: raw, processors: [], max_s: 600}}, objective: 0.9, {r28}"),
        ("analytics-fast", f"sli: {{kind: duration, phase: analytics, processors: [analytics_1], max_s: 900}}, objective: 0.9, {r7}"),
        ("features-phase-fast", f"sli: {{kind: duration, phase: features, max_s: 3600}}, objective: 0.9, {week}"),
        ("publish-fast", f"sli: {{kind: duration, phase: publish, max_s: 1800}}, objective: 0.9, {r28}"),
        ("features-fresh", f"sli: {{kind: freshness, phase: features, processors: [], max_age_h: 6}}, objective: 0.95, {week}"),
        ("analytics-fresh", f"sli: {{kind: freshness, phase: analytics, processors: [analytics_0], max_age_h: 12}}, objective: 0.95, {r28}"),
        ("raw-fresh", f"sli: {{kind: freshness, phase: raw, processors: [], max_age_h: 24, missing: ignore}}, objective: 0.95, {month}"),
        ("analytics-coverage", f"sli: {{kind: coverage, phase: analytics, processors: [analytics_2], min_ratio: 0.8}}, objective: 0.95, {r28}"),
        ("features-coverage", f"sli: {{kind: coverage, phase: features, processors: [], min_ratio: 0.9}}, objective: 0.9, {week}"),
        ("raw-coverage", f"sli: {{kind: coverage, phase: raw, processors: [], min_ratio: 0.5, missing: ignore}}, objective: 0.9, {r7}"),
        ("api-up", f"sli: {{kind: availability, service: api}}, objective: 0.99, {r7}"),
        ("worker-up", f"sli: {{kind: availability, service: worker, good: [pass, warn]}}, objective: 0.99, {r28}"),
    ]


# --------------------------------------------------------------------------- data


Row = tuple[Any, ...]  # event_id, pipeline, run_date, mode, phase, processor, status, ts, dur, rec, exp, asof


def generate(pipelines: int, target: int, end: datetime, seed: int = 7) -> list[Row]:
    """Daily runs in three modes; processors report start, progress, and an outcome (a failure
    is retried); about one run in 40 is late and one day in 60 never runs."""
    rng = random.Random(seed)
    per_day = pipelines * 3 * (15 * (2 + 40) + 2)
    days = max(-(-target * 21 // 20 // per_day), 3)  # a day in 60 does not run
    first = (end - timedelta(days=days)).date()
    rows: list[Row] = []
    n = 0
    for d in range(days):
        run_date = first + timedelta(days=d)
        for p in range(pipelines):
            if rng.random() < 1 / 60:
                continue
            for mode, shift in (("tomorrow", -1), ("same_day", 0), ("overnight", 1)):
                base = datetime(run_date.year, run_date.month, run_date.day, 5, tzinfo=UTC)
                base += timedelta(days=shift, minutes=rng.randrange(0, 180))
                if rng.random() < 1 / 40:
                    base += timedelta(hours=6)
                t = base
                for phase, count in PHASES.items():
                    phase_start = t
                    for i in range(count):
                        proc = f"{phase}_{i}"
                        start = phase_start + timedelta(seconds=rng.randrange(0, 600))
                        rows.append((f"e{n}", f"p{p}", run_date, mode, phase, proc, "started", start,
                                     None, None, None, None))
                        n += 1
                        stamp = start
                        for _ in range(40):
                            stamp += timedelta(seconds=rng.randrange(5, 30))
                            rows.append((f"e{n}", f"p{p}", run_date, mode, phase, proc, "progress",
                                         stamp, None, None, None, None))
                            n += 1
                        stamp += timedelta(seconds=rng.randrange(5, 60))
                        status = "failed" if rng.random() < 0.03 else "succeeded"
                        expected = 400
                        rows.append((
                            f"e{n}", f"p{p}", run_date, mode, phase, proc, status, stamp,
                            float((stamp - start).seconds) if rng.random() < 0.5 else None,
                            rng.randrange(250, 401), expected,
                            stamp - timedelta(hours=rng.randrange(0, 10)),
                        ))
                        n += 1
                        t = max(t, stamp)
                    t += timedelta(seconds=rng.randrange(30, 300))
                if count == 0:
                    rows.append((f"e{n}", f"p{p}", run_date, mode, "publish", None, "started", t,
                                 None, None, None, None))
                    n += 1
                    t += timedelta(seconds=rng.randrange(60, 2400))
                    rows.append((f"e{n}", f"p{p}", run_date, mode, "publish", None, "succeeded",
                                 t, None, None, None, None))
                    n += 1
    rows = [r for r in rows if r[7] <= end]
    rows.sort(key=lambda r: (r[7], r[0]))
    return rows


def to_event(row: Row) -> Event:
    eid, pipe, run_date, mode, phase, proc, status, ts, dur, rec, exp, asof = row
    return Event.model_construct(
        event_id=eid, pipeline=pipe, run_date=run_date, mode=mode, phase=phase, processor=proc,
        status=status, timestamp=ts, duration_s=dur, records=rec, expected_records=exp,
        data_as_of=asof,
    )


def probes_for(pipelines: int, end: datetime, days: int) -> list[HealthProbe]:
    rng = random.Random(11)
    out = []
    for p in range(pipelines):
        for s in SERVICES:
            t = end - timedelta(days=days)
            while t < end:
                r = rng.random()
                out.append(HealthProbe(s, t, "fail" if r < 0.005 else "warn" if r < 0.01 else "pass", f"p{p}"))
                t += timedelta(minutes=5)
    return out


# --------------------------------------------------------------------------- store → columns


def read_columns(db: Path) -> EventColumns:
    """The store's events as columns: names turned into codes by SQLite and the numeric
    fields read from their own columns, so Python only sees numbers."""
    con = sqlite3.connect(db)

    def names(column: str) -> list[str]:
        return [r[0] for r in con.execute(f"SELECT DISTINCT {column} FROM events WHERE {column} IS NOT NULL")]

    def case(column: str, values: list[str] | tuple[str, ...]) -> str:
        arms = " ".join(f"WHEN '{v}' THEN {i}" for i, v in enumerate(values))
        return f"CASE {column} {arms} ELSE -1 END"

    pipelines, phases, processors = names("pipeline"), names("phase"), names("processor")
    missing = -1e300
    rows = con.execute(
        f"SELECT {case('pipeline', pipelines)}, CAST(julianday(run_date) - 2440587.5 AS INTEGER),"
        f" {case('mode', MODES)}, {case('phase', phases)}, {case('processor', processors)},"
        f" {case('status', STATUSES)},"
        " unixepoch(substr(ts, 1, 19)) + CAST(substr(ts, 20, 7) AS REAL),"
        f" coalesce(duration_s, {missing}), coalesce(records, -1),"
        " coalesce(expected_records, -1), coalesce(data_as_of, 'nan')"
        " FROM events ORDER BY seq"
    ).fetchall()
    con.close()
    table = np.array(rows, dtype=np.float64).reshape(len(rows), 11)
    ints = table[:, :6].astype(np.int64)
    asof = table[:, 10].copy()
    duration = table[:, 7]
    return EventColumns(
        pipelines, phases, processors, ints[:, 0], ints[:, 1], ints[:, 2], ints[:, 3], ints[:, 4],
        ints[:, 5], table[:, 6].copy(), np.where(duration == missing, np.nan, duration),
        table[:, 8].astype(np.int64), table[:, 9].astype(np.int64), asof,
    )


# --------------------------------------------------------------------------- DuckDB


def duckdb_tables(con: Any, config: Config, cols: EventColumns, probes: ProbeColumns) -> None:
    con.register("ev_in", {
        "seq": np.arange(len(cols), dtype=np.int64), "pipeline": cols.pipeline,
        "run_date": cols.run_date, "mode": cols.mode, "phase": cols.phase,
        "processor": cols.processor, "status": cols.status, "ts": cols.ts,
        "duration_s": cols.duration_s, "records": cols.records,
        "expected_records": cols.expected_records, "data_as_of": cols.data_as_of,
    })
    con.execute("CREATE OR REPLACE TABLE ev AS SELECT * FROM ev_in")
    con.register("pr_in", {
        "seq": np.arange(len(probes.ts), dtype=np.int64), "service": probes.service,
        "pipeline": probes.pipeline, "ts": probes.ts, "status": probes.status,
    })
    con.execute("CREATE OR REPLACE TABLE pr AS SELECT * FROM pr_in")
    # The expectations of each (pipeline, phase, mode): configuration, not data.
    expect, counts = [], []
    for pipe in config.pipelines:
        if pipe.id not in cols.pipelines:
            continue
        for phase in pipe.phases:
            if phase.id not in cols.phases:
                continue
            for mi, mode in enumerate(MODES):
                exp = phase.expectation(mode)
                key = (cols.pipelines.index(pipe.id), cols.phases.index(phase.id), mi)
                counts.append((*key, len(exp.expected), len(exp.critical), exp.required_count))
                for name in exp.expected:
                    if name in cols.processors:
                        expect.append((*key, cols.processors.index(name), name in exp.critical))
    con.execute("CREATE OR REPLACE TABLE expect (pipeline BIGINT, phase BIGINT, mode BIGINT,"
                " processor BIGINT, critical BOOLEAN)")
    if expect:
        con.executemany("INSERT INTO expect VALUES (?, ?, ?, ?, ?)", expect)
    con.execute("CREATE OR REPLACE TABLE expect_n (pipeline BIGINT, phase BIGINT, mode BIGINT,"
                " n_expected BIGINT, n_critical BIGINT, required BIGINT)")
    con.executemany("INSERT INTO expect_n VALUES (?, ?, ?, ?, ?, ?)", counts)


STATE_SQL = """
CREATE OR REPLACE TEMP TABLE ps AS
WITH c AS (
  SELECT *, CAST(floor(ts) AS BIGINT) * 100000000 + seq AS k,
    status <> 1 OR row_number() OVER (PARTITION BY pipeline, phase, run_date, mode, processor
                                      ORDER BY seq) = 1 AS cand
  FROM ev WHERE processor >= 0
), h AS (
  SELECT *,
    arg_max(status, CASE WHEN cand THEN k END) OVER w AS status_after,
    max(CASE WHEN cand THEN k END) OVER w AS held
  FROM c
  WINDOW w AS (PARTITION BY pipeline, phase, run_date, mode, processor ORDER BY seq
               ROWS UNBOUNDED PRECEDING)
), d AS (
  SELECT *, coalesce(status_after IN (2, 4), false)::INT AS done_after,
    coalesce(status_after = 3, false)::INT AS failed_after,
    status = 0 AND k = held AS accepted
  FROM h
)
SELECT *,
  coalesce(lag(done_after) OVER p, 0) AS done_before,
  coalesce(lag(failed_after) OVER p, 0) AS failed_before,
  last_value(CASE WHEN accepted THEN ts END IGNORE NULLS) OVER (
    PARTITION BY pipeline, phase, run_date, mode, processor ORDER BY seq
    ROWS BETWEEN UNBOUNDED PRECEDING AND 1 PRECEDING) AS started_before
FROM d
WINDOW p AS (PARTITION BY pipeline, phase, run_date, mode, processor ORDER BY seq);

CREATE OR REPLACE TEMP TABLE phs AS
WITH deltas AS (
  SELECT e.seq, e.pipeline, e.phase, e.run_date, e.mode, e.processor, e.status, e.ts,
    coalesce(CASE WHEN x.processor IS NOT NULL THEN p.done_after - p.done_before END, 0) AS d_done,
    coalesce(CASE WHEN x.critical THEN p.done_after - p.done_before END, 0) AS d_cdone,
    coalesce(CASE WHEN x.critical THEN p.failed_after - p.failed_before END, 0) AS d_cfail
  FROM ev e LEFT JOIN ps p ON p.seq = e.seq
  LEFT JOIN expect x ON x.pipeline = e.pipeline AND x.phase = e.phase AND x.mode = e.mode
    AND x.processor = e.processor
), running AS (
  SELECT *, sum(d_done) OVER r AS done, sum(d_cdone) OVER r AS cdone, sum(d_cfail) OVER r AS cfail,
    last_value(CASE WHEN processor < 0 AND status IN (2, 3, 4) THEN status END IGNORE NULLS)
      OVER r AS phase_status,
    min(CASE WHEN processor < 0 AND status = 0 THEN ts END) OVER r AS phase_started
  FROM deltas
  WINDOW r AS (PARTITION BY pipeline, phase, run_date, mode ORDER BY seq ROWS UNBOUNDED PRECEDING)
), judged AS (
  SELECT r.*, coalesce(r.phase_status = 2, false)
      OR (n.n_expected > 0 AND r.cdone = n.n_critical AND r.done >= n.required) AS complete
  FROM running r JOIN expect_n n USING (pipeline, phase, mode)
), judged2 AS (
  SELECT *, NOT complete AND (coalesce(phase_status = 3, false) OR cfail > 0) AS failed FROM judged
), moments AS (
  SELECT *,
    complete AND NOT coalesce(lag(complete) OVER g, false) AS completed_now,
    failed AND NOT coalesce(lag(failed) OVER g, false) AS failed_now
  FROM judged2 WINDOW g AS (PARTITION BY pipeline, phase, run_date, mode ORDER BY seq)
)
SELECT *,
  last_value(CASE WHEN completed_now THEN ts END IGNORE NULLS) OVER g AS completed_at,
  last_value(CASE WHEN failed_now THEN ts END IGNORE NULLS) OVER g AS failed_at
FROM moments
WINDOW g AS (PARTITION BY pipeline, phase, run_date, mode ORDER BY seq ROWS UNBOUNDED PRECEDING);
"""


class SQLBuilder:
    """The units of each SLO as SQL over ev / ps / phs / pr (codes resolved here)."""

    def __init__(self, config: Config, cols: EventColumns, probes: ProbeColumns, now: datetime) -> None:
        self.config, self.cols, self.probes, self.now = config, cols, probes, now

    def where(self, spec: SLOSpec, alias: str = "", level: bool = True) -> str:
        """Pipeline, phase and modes; and the level (processors or phase-level) if ``level``."""
        sli: Any = spec.sli
        c, a = self.cols, alias
        parts = [f"{a}pipeline = {c.pipelines.index(spec.pipeline)}", f"{a}phase = {c.phases.index(sli.phase)}"]
        if sli.modes is not None:
            parts.append(f"{a}mode IN ({', '.join(str(MODES.index(m)) for m in sli.modes)})")
        if not level:
            pass
        elif sli.processors is None:
            parts.append(f"{a}processor < 0")
        elif sli.processors:
            parts.append(f"{a}processor IN ({', '.join(str(c.processors.index(p)) for p in sli.processors)})")
        else:
            parts.append(f"{a}processor >= 0")
        return " AND ".join(parts)

    @staticmethod
    def latest(inner: str) -> str:
        return (
            "SELECT t, good FROM (SELECT floor(ts) AS t, good, row_number() OVER (PARTITION BY"
            f" run_date, mode, processor ORDER BY floor(ts) DESC, seq DESC) AS rn FROM ({inner}))"
            " WHERE rn = 1"
        )

    def units(self, spec: SLOSpec) -> str:
        sli: Any = spec.sli
        kind = sli.kind
        if kind == "availability":
            p = self.probes
            pipe = p.pipelines.index(spec.pipeline) if spec.pipeline in p.pipelines else -2
            service = p.services.index(sli.service) if sli.service in p.services else -2
            good = ", ".join(str(("pass", "warn", "fail").index(s)) for s in sli.good)
            return (
                "SELECT t, good FROM (SELECT floor(ts) AS t, status IN (" + good + ") AS good,"
                " row_number() OVER (PARTITION BY floor(ts) ORDER BY seq DESC) AS rn FROM pr"
                f" WHERE service = {service} AND (pipeline < 0 OR pipeline = {pipe}))"
                " WHERE rn = 1"
            )
        if kind == "deadline":
            return self.deadline(spec)
        if kind == "success_ratio" and (sli.count == "attempts" or sli.processors is not None):
            inner = f"SELECT *, status <> 3 AS good FROM ev WHERE {self.where(spec)} AND status IN (2, 3, 4)"
            if sli.count == "attempts":
                return f"SELECT floor(ts) AS t, good FROM ({inner})"
            return self.latest(inner)
        if kind == "success_ratio":
            return (
                "SELECT floor(CASE WHEN complete THEN completed_at ELSE failed_at END) AS t, complete AS good"
                " FROM (SELECT *, row_number() OVER (PARTITION BY run_date, mode ORDER BY seq DESC) AS rn"
                f" FROM phs WHERE {self.where(spec, level=False)} AND (complete OR failed)) WHERE rn = 1"
            )
        if kind == "duration" and sli.processors is not None:
            inner = (
                "SELECT *, coalesce(duration_s, CASE WHEN started_before <= ts THEN"
                " greatest(ts - started_before, 0) END) AS seconds FROM ps"
                f" WHERE {self.where(spec)} AND status = 2"
            )
            return self.latest(
                f"SELECT *, seconds <= {sli.max_s} AS good FROM ({inner}) WHERE seconds IS NOT NULL"
            )
        if kind == "duration":
            t = self.where(spec, "t.", level=False)
            return (
                "SELECT floor(t) AS t, good FROM (SELECT x.completed_at AS t,"
                f" greatest(x.completed_at - x.first_start, 0) <= {sli.max_s} AS good,"
                " row_number() OVER (PARTITION BY x.run_date, x.mode ORDER BY x.seq DESC) AS rn FROM ("
                "  SELECT t.seq, t.run_date, t.mode, t.completed_at,"
                "   least(min(t.phase_started), min(s.started)) AS first_start FROM phs t"
                "  LEFT JOIN (SELECT a.seq AS at_seq, b.processor, arg_max(b.ts, b.seq) AS started"
                "   FROM phs a JOIN ps b ON b.pipeline = a.pipeline AND b.phase = a.phase"
                "    AND b.run_date = a.run_date AND b.mode = a.mode AND b.accepted AND b.seq <= a.seq"
                f"   WHERE a.completed_now AND {self.where(spec, 'a.', level=False)}"
                "   GROUP BY a.seq, b.processor) s ON s.at_seq = t.seq"
                f"  WHERE t.completed_now AND {t}"
                "  GROUP BY t.seq, t.run_date, t.mode, t.completed_at) x"
                " WHERE x.first_start IS NOT NULL) WHERE rn = 1"
            )
        if kind == "freshness":
            known = "data_as_of IS NOT NULL"
            good = f"{known} AND ts - data_as_of <= {sli.max_age_h * 3600}"
        else:
            known = "records >= 0 AND expected_records >= 0"
            good = f"{known} AND records >= {sli.min_ratio} * expected_records"
        extra = f" AND {known}" if sli.missing == "ignore" else ""
        inner = f"SELECT *, coalesce({good}, false) AS good FROM ev WHERE {self.where(spec)} AND status = 2{extra}"
        return self.latest(inner)

    def deadline(self, spec: SLOSpec) -> str:
        sli = spec.sli
        assert isinstance(sli, DeadlineSLI)
        c = self.cols
        pipeline = self.config.pipeline_map[spec.pipeline]
        pid = c.pipelines.index(spec.pipeline)
        modes = sli.modes or ALL_MODES
        helper = Deadline(spec, pipeline)
        now_s = int(self.now.timestamp())
        oldest = now_s - retention_minutes(spec.window) * 60
        day = datetime.fromtimestamp(oldest, pipeline.tz).date() - timedelta(days=8)
        cal = []
        while (final := helper.deadlines(day)[0]) <= now_s:
            if sli.due.is_due(day):
                for m in modes:
                    cal.append(f"({(day - EPOCH).days}, {MODES.index(m)}, {final}, {helper.deadlines(day)[1][m]})")
            day += timedelta(days=1)
        if not cal:
            return "SELECT 0::DOUBLE AS t, true AS good WHERE false"
        calendar = f"(VALUES {', '.join(cal)}) AS d(run_date, mode, final, due_at)"
        if sli.phase is not None:
            done = (
                "SELECT run_date, mode, min(floor(completed_at)) AS done FROM phs"
                f" WHERE pipeline = {pid} AND phase = {c.phases.index(sli.phase)} AND completed_now"
                " GROUP BY run_date, mode"
            )
        else:
            n = len(pipeline.phases)
            done = (
                "SELECT run_date, mode, min(floor(ts)) AS done FROM (SELECT *, sum(change) OVER ("
                " PARTITION BY run_date, mode ORDER BY seq ROWS UNBOUNDED PRECEDING) AS complete_phases"
                " FROM (SELECT *, complete::INT - coalesce(lag(complete::INT) OVER (PARTITION BY"
                " phase, run_date, mode ORDER BY seq), 0) AS change FROM phs"
                f" WHERE pipeline = {pid})) WHERE completed_now AND complete_phases = {n}"
                " GROUP BY run_date, mode"
            )
        seen = ""
        if sli.due.only_seen:
            phases = ""
            if sli.due.seen_phases:
                phases = f" AND phase IN ({', '.join(str(c.phases.index(p)) for p in sli.due.seen_phases)})"
            seen = f" AND d.run_date IN (SELECT DISTINCT run_date FROM ev WHERE pipeline = {pid}{phases})"
        return (
            "SELECT d.final AS t, bool_or(coalesce(f.done <= d.due_at, false)) AS good"
            f" FROM {calendar} LEFT JOIN ({done}) f ON f.run_date = d.run_date AND f.mode = d.mode"
            f" WHERE d.final >= least((SELECT min(floor(ts)) FROM ev WHERE pipeline = {pid}), {now_s}){seen}"
            " GROUP BY d.run_date, d.final"
        )


def duckdb_counts(con: Any, builder: SQLBuilder, specs: list[SLOSpec], now: datetime) -> dict[str, dict[str, tuple[int, int]]]:
    """good/total per SLO window and burn-rate window, all SLOs in one query."""
    con.execute(STATE_SQL)
    units, windows = [], []
    for i, spec in enumerate(specs):
        tz = builder.config.pipeline_map[spec.pipeline].tz
        bounds = window_bounds(now, spec.window, tz)
        units.append(f"SELECT {i} AS slo, t, good FROM ({builder.units(spec)})")
        windows.append(f"({i}, 'window', {bounds.start}, {bounds.end})")
        for w in burn_windows(spec.window, spec.alerting):
            windows.append(f"({i}, '{w.label}', {bounds.end - w.minutes}, {bounds.end})")
    sql = (
        f"WITH u AS ({' UNION ALL '.join(units)}),"
        f" w(slo, name, lo, hi) AS (VALUES {', '.join(windows)})"
        " SELECT w.slo, w.name, coalesce(sum(u.good::INT), 0), count(u.t) FROM w"
        " LEFT JOIN u ON u.slo = w.slo AND floor(u.t / 60) >= w.lo AND floor(u.t / 60) < w.hi"
        " GROUP BY w.slo, w.name"
    )
    out: dict[str, dict[str, tuple[int, int]]] = {}
    for slo, name, good, total in con.execute(sql).fetchall():
        out.setdefault(specs[slo].name, {})[name] = (int(good), int(total))
    return out


def our_counts(statuses: list[SLOStatus]) -> dict[str, dict[str, tuple[int, int]]]:
    return {
        s.name: {"window": (s.good, s.total), **{w.label: (w.good, w.total) for w in s.windows}}
        for s in statuses
    }


# --------------------------------------------------------------------------- timing


def timed(fn: Callable[[], Any], repeat: int = 1) -> tuple[float, Any]:
    """(median seconds, last result)."""
    times, result = [], None
    for _ in range(repeat):
        start = time.perf_counter()
        result = fn()
        times.append(time.perf_counter() - start)
    return statistics.median(times), result


def chunks(items: list[Event], size: int) -> Iterator[list[Event]]:
    for i in range(0, len(items), size):
        yield items[i:i + size]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--quick", action="store_true", help="a smoke run: 20,000 events")
    parser.add_argument("--events", type=int, default=None)
    parser.add_argument("--runs", type=int, default=5)
    args = parser.parse_args(argv)
    import duckdb

    target = args.events or (20_000 if args.quick else 1_000_000)
    pipelines = 4
    now = datetime(2026, 3, 20, 17, 0, tzinfo=UTC)
    config = build_config(pipelines)
    specs = list(config.slos)
    print(f"{len(specs)} SLOs over {pipelines} pipelines; generating ~{target:,} events ...", flush=True)
    rows = generate(pipelines, target, now)
    events = [to_event(r) for r in rows]
    probes = probes_for(pipelines, now, 30)
    print(f"  {len(events):,} events, {len(probes):,} health probes", flush=True)

    # (a) incremental
    engine = SLOEngine(config)
    tracker = RunTracker(config, retention_days=70)
    live, tail = events[:-1000], events[-1000:]
    start = time.perf_counter()
    for event in live:
        engine.on_update(tracker.apply(event))
    for probe in probes:
        engine.observe_probe(probe)
    ingest_s = time.perf_counter() - start
    first_s, _ = timed(lambda: engine.evaluate(now))
    eval_s, _ = timed(lambda: engine.evaluate(now), repeat=20)
    ticks = []
    for i, batch in enumerate(chunks(tail, 100)):
        for event in batch:
            engine.on_update(tracker.apply(event))
        ticks.append(timed(lambda i=i: engine.evaluate(now + timedelta(seconds=30 * (i + 1))))[0])
    statuses = engine.evaluate(now)
    windows = sum(1 + len(s.windows) for s in statuses)
    print("\n(a) incremental (ledgers kept up to date on ingest)")
    print(f"  ingest into tracker + engine: {len(events) / ingest_s:,.0f} events/s")
    print(f"  evaluate all {len(specs)} SLOs ({windows} windows): {eval_s * 1000:.1f} ms"
          f" (median of 20; first after ingest {first_s * 1000:.1f} ms)  target <= 50 ms")
    print(f"  steady tick (100 new events, then evaluate): {statistics.median(ticks) * 1000:.1f} ms")

    # (b) full recompute from the store, as a user runs it, vs DuckDB SQL over the same rows
    with tempfile.TemporaryDirectory() as tmp:
        db, cfg = Path(tmp) / "bench.db", Path(tmp) / "bench.yaml"
        cfg.write_text(config_text(pipelines))
        store = SQLiteStore(db)
        for batch in chunks(events, 20_000):
            store.append(batch, now)
        store.close()
        argv = [str(Path(sys.executable).parent / "phasewatch"), "slo", "report", "--json",
                "--config", str(cfg), "--db", str(db), "--at", now.isoformat()]
        ours_fig = repeat("phasewatch slo report --json", lambda: run_command(argv, ok=(0, 1), cwd=tmp),
                          args.runs)
        printed = subprocess.run(argv, capture_output=True, text=True, cwd=tmp, check=False)
        ours = report_counts(json.loads(printed.stdout))

        no_probes = ProbeColumns.from_probes([])
        duck: dict[str, dict[str, tuple[int, int]]] = {}

        def duckdb_recompute() -> None:
            cols = read_columns(db)
            con = duckdb.connect()
            duckdb_tables(con, config, cols, no_probes)
            duck.update(duckdb_counts(con, SQLBuilder(config, cols, no_probes, now), specs, now))
            con.close()

        duck_fig = repeat(f"DuckDB {duckdb.__version__} SQL (read + load + query)",
                          lambda: time_call(duckdb_recompute), args.runs)
    same = ours == duck
    print(f"\n(b) full recompute from the store ({len(events):,} events), median [min-max] of {args.runs}")
    print(table([ours_fig.row(), duck_fig.row()]))
    print(f"  ratio phasewatch / DuckDB (median wall): {ours_fig.median() / duck_fig.median():.2f}x")
    print(f"  same good/total for every SLO and window: {'yes' if same else 'NO'}")
    if not same:
        for name, counts in ours.items():
            if counts != duck.get(name):
                print(f"    {name}: ours {counts} duckdb {duck.get(name)}", file=sys.stderr)
    emit("slo_eval", [{**ours_fig.row(), "note": f"{ours_fig.median() / duck_fig.median():.2f}x DuckDB"},
                      duck_fig.row()])
    return 0 if same else 1


def report_counts(report: dict[str, Any]) -> dict[str, dict[str, tuple[int, int]]]:
    """good/total per SLO window and burn-rate window from ``slo report --json``."""
    return {
        s["name"]: {"window": (s["good"], s["total"]),
                    **{w["window"]: (w["good"], w["total"]) for w in s["windows"]}}
        for s in report["slos"]
    }


if __name__ == "__main__":
    sys.exit(main())
