"""One load test: the traffic (locust, in a child process), the target peer, the checks.

1. The plan goes to ``python -m monitor.app.load.worker``, whose locust users send it and
   log what each request got (locust writes its stats CSV and HTML report).
2. Meanwhile the peer takes phasewatch's triggers and, given ``pid``, a thread samples
   the RSS of the phasewatch process.
3. Then the checks: every acknowledged event is posted again, in batches: phasewatch must
   answer each one a duplicate (it is stored); one it accepts anew was lost. The decision
   lag of each trigger decided on an event (``all_complete``, ``critical_plus_fraction``)
   is its arrival at the peer minus when the last event of its upstream phases of that run
   was sent. For the synthetic profile, every run whose events were all acknowledged must
   get its trigger, once.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import threading
import time
from collections import defaultdict
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx

from monitor.app.load import worker
from monitor.app.load.peer import Arrival, TargetPeer
from monitor.app.load.plan import Planned
from monitor.app.load.thresholds import Breach, Thresholds, judge
from monitor.app.load.worker import TOKEN_ENV, stamp

EVENT_DRIVEN = frozenset({"all_complete", "critical_plus_fraction"})
VERIFY_BATCH = 500
_WORKER_GRACE_S = 120.0


@dataclass(frozen=True)
class LoadTest:
    """What to send where, and what to expect."""

    url: str
    plan: list[Planned]
    duration_s: float
    out_dir: Path
    upstream: Mapping[tuple[str, str], frozenset[str]]  # (pipeline, phase) -> upstream phases
    token: str | None = None
    users: int = 20
    push_share: float = 0.0
    expected: frozenset[tuple[str, str, str]] | None = None  # synthetic: (pipeline, run_date, phase)
    pid: int | None = None
    settle_s: float = 15.0


@dataclass
class LoadResult:
    figures: dict[str, Any]
    breaches: list[Breach]
    files: list[Path] = field(default_factory=list)


class RssSampler:
    """Samples a process's resident set size (``/proc/PID/status``) on a thread."""

    def __init__(self, pid: int, every_s: float = 0.5) -> None:
        self.pid, self.every_s = pid, every_s
        self.samples: list[float] = []
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="loadtest-rss", daemon=True)

    def start(self) -> RssSampler:
        self.samples.append(rss_mb(self.pid))
        self._thread.start()
        return self

    def _run(self) -> None:
        while not self._stop.wait(self.every_s):
            try:
                self.samples.append(rss_mb(self.pid))
            except OSError:
                return  # the process ended: the figure so far stands

    def stop(self) -> None:
        self._stop.set()
        self._thread.join(5)


def rss_mb(pid: int) -> float:
    """VmRSS of ``pid`` in MB (OSError when there is no such process)."""
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    raise OSError(f"no VmRSS for process {pid}")


def run_load(test: LoadTest, peer: TargetPeer, limits: Thresholds,
             echo: Callable[[str], None] = lambda _: None) -> LoadResult:
    """Send the plan, wait for the decisions, check, and judge against ``limits``."""
    out = test.out_dir
    out.mkdir(parents=True, exist_ok=True)
    files = _worker_files(out)
    (out / "plan.json").write_text(json.dumps([p.as_json() for p in test.plan]), "utf-8")
    spec = {"url": test.url, "plan": str(out / "plan.json"), "push_share": test.push_share,
            "users": test.users, "duration_s": test.duration_s, "acks": str(files["acks"]),
            "csv_prefix": str(out / "locust"), "html": str(files["html"]),
            "summary": str(files["worker"])}
    (out / "spec.json").write_text(json.dumps(spec, indent=2), "utf-8")
    sampler = RssSampler(test.pid).start() if test.pid is not None else None
    echo(f"sending {len(test.plan):,} events to {test.url} for up to {test.duration_s:g} s "
         f"({test.users} users)")
    try:
        _run_worker(out, test)
        acks = [json.loads(line) for line in files["acks"].read_text("utf-8").splitlines()]
        arrivals = _settle(peer, test, acks)
        echo(f"checking {sum(1 for a in acks if a['acked']):,} acknowledged events")
        lost, unverified = verify_stored(test, acks)
    finally:
        if sampler is not None:
            sampler.stop()
    worker = json.loads(files["worker"].read_text("utf-8"))
    figures = measure(test, acks, arrivals, worker)
    figures.update(lost=lost, unverified=unverified)
    if sampler is not None and sampler.samples:
        figures.update(peak_rss_mb=round(max(sampler.samples), 1),
                       rss_start_mb=round(sampler.samples[0], 1),
                       rss_end_mb=round(sampler.samples[-1], 1))
    breaches = judge(figures, limits)
    if unverified:
        breaches.append(Breach("unverified", unverified, 0))
    result = LoadResult(figures, breaches, [p for p in files.values() if p.exists()])
    summary = out / "summary.json"
    summary.write_text(json.dumps({"figures": figures, "thresholds": limits.model_dump(),
                                   "breaches": [str(b) for b in breaches],
                                   "passed": not breaches}, indent=2), "utf-8")
    result.files.append(summary)
    return result


def _worker_files(out: Path) -> dict[str, Path]:
    return {"acks": out / "acks.jsonl", "html": out / "report.html", "worker": out / "worker.json",
            "stats": out / "locust_stats.csv", "history": out / "locust_stats_history.csv",
            "failures": out / "locust_failures.csv", "log": out / "worker.log"}


def _run_worker(out: Path, test: LoadTest) -> None:
    env = {k: v for k, v in os.environ.items() if k != TOKEN_ENV}
    if test.token:
        env[TOKEN_ENV] = test.token
    with (out / "worker.log").open("wb") as log:
        # By path, not ``-m``: no package of phasewatch is imported before locust patches.
        limit = test.duration_s + _WORKER_GRACE_S
        try:
            code = subprocess.call([sys.executable, worker.__file__, str(out / "spec.json")],
                                   env=env, stdout=log, stderr=subprocess.STDOUT, timeout=limit)
        except subprocess.TimeoutExpired:
            raise RuntimeError(f"the load worker did not finish within {limit:g} s (killed; "
                               f"its log: {out / 'worker.log'})") from None
    if code != 0:
        tail = (out / "worker.log").read_text("utf-8", "replace")[-2000:]
        raise RuntimeError(f"the load worker exited {code}:\n{tail}")


def _settle(peer: TargetPeer, test: LoadTest, acks: list[dict[str, Any]]) -> list[Arrival]:
    """The triggers, once every expected one came (synthetic) or none came for 2 s."""
    deadline = time.monotonic() + test.settle_s
    expect = _complete_runs(test, acks) if test.expected is not None else None
    seen, quiet_since = -1, time.monotonic()
    while time.monotonic() < deadline:
        arrivals = peer.triggers()
        if expect is not None and expect <= {(a.pipeline, a.run_date, a.phase) for a in arrivals}:
            break
        if len(arrivals) != seen:
            seen, quiet_since = len(arrivals), time.monotonic()
        elif expect is None and time.monotonic() - quiet_since >= 2.0:
            break
        time.sleep(0.1)
    return peer.triggers()


def _complete_runs(test: LoadTest, acks: list[dict[str, Any]]) -> set[tuple[str, str, str]]:
    """The expected triggers of the runs whose every planned event was acknowledged."""
    assert test.expected is not None
    planned: dict[tuple[str, str], int] = defaultdict(int)
    for p in test.plan:
        planned[(p.event["pipeline"], p.event["run_date"])] += 1
    acked: dict[tuple[str, str], int] = defaultdict(int)
    for a in acks:
        if a["acked"]:
            acked[(a["pipeline"], a["run_date"])] += 1
    return {key for key in test.expected if acked[key[:2]] >= planned[key[:2]] > 0}


def verify_stored(test: LoadTest, acks: list[dict[str, Any]]) -> tuple[int, int]:
    """(lost, unverified): acknowledged events phasewatch accepts anew when posted again
    (it had not stored them), and those it would not answer for."""
    planned = {p.event["event_id"]: p for p in test.plan}
    bodies = [stamp(planned[a["event_id"]].as_json(), a["sent"]) for a in acks if a["acked"]]
    headers = {"Authorization": f"Bearer {test.token}"} if test.token else {}
    lost = unverified = 0
    with httpx.Client(base_url=test.url, timeout=120, headers=headers) as client:
        for i in range(0, len(bodies), VERIFY_BATCH):
            batch = bodies[i:i + VERIFY_BATCH]
            try:
                answer = client.post("/v1/events", json=batch)
            except httpx.HTTPError:
                unverified += len(batch)
                continue
            if answer.status_code != 202:
                unverified += len(batch)
                continue
            lost += int(answer.json().get("accepted", 0))
    return lost, unverified


def percentile(values: list[float], q: float) -> float | None:
    """The nearest-rank ``q`` quantile (0 < q <= 1), None for no values."""
    if not values:
        return None
    ordered = sorted(values)
    rank = max(1, min(len(ordered), int(-(-q * len(ordered) // 1))))
    return ordered[rank - 1]


def measure(test: LoadTest, acks: list[dict[str, Any]], arrivals: list[Arrival],
            worker: dict[str, Any]) -> dict[str, Any]:
    """The figures of a run (before the stored check and the RSS)."""
    acked = [a for a in acks if a["acked"]]
    latency = [(a["answered"] - a["sent"]) * 1000 for a in acks if a["http"]]
    span = (max(a["answered"] for a in acks) - min(a["sent"] for a in acks)) if acks else 0.0
    figures: dict[str, Any] = {
        "planned": worker["planned"], "sent": len(acks), "unsent": worker["unsent"],
        "acknowledged": len(acked), "failed": len(acks) - len(acked),
        "via_push": sum(1 for a in acked if a["path"] == "push"),
        "events_per_s": round(len(acked) / span, 1) if span > 0 else None,
        "ingest_p50_ms": _round(percentile(latency, 0.5)),
        "ingest_p99_ms": _round(percentile(latency, 0.99)),
        "ingest_max_ms": _round(max(latency) if latency else None),
    }
    figures.update(_triggers(test, acks, arrivals))
    return figures


def _triggers(test: LoadTest, acks: list[dict[str, Any]], arrivals: list[Arrival]) -> dict[str, Any]:
    sent: dict[tuple[str, str], list[tuple[float, str]]] = defaultdict(list)
    for a in acks:
        sent[(a["pipeline"], a["run_date"])].append((a["sent"], a["phase"]))
    lags, timed = [], 0
    keys: dict[str, int] = defaultdict(int)
    for arrival in arrivals:
        keys[arrival.key] += 1
        if arrival.attempt != 1 or arrival.reason not in EVENT_DRIVEN:
            timed += 1
            continue
        upstream = test.upstream.get((arrival.pipeline, arrival.phase), frozenset())
        before = [t for t, phase in sent[(arrival.pipeline, arrival.run_date)]
                  if phase in upstream and t <= arrival.at]
        if before:
            lags.append(arrival.at - max(before))
    out: dict[str, Any] = {
        "triggers": len(arrivals), "triggers_not_on_an_event": timed,
        "duplicate_triggers": sum(n - 1 for n in keys.values() if n > 1),
        "decision_lag_p50_s": _round(percentile(lags, 0.5), 3),
        "decision_lag_p99_s": _round(percentile(lags, 0.99), 3),
        "decision_lag_max_s": _round(max(lags) if lags else None, 3),
    }
    if test.expected is not None:
        complete = _complete_runs(test, acks)
        got = {(a.pipeline, a.run_date, a.phase) for a in arrivals}
        out["runs_complete"] = len(complete)
        out["missing_triggers"] = len(complete - got)
    return out


def _round(value: float | None, digits: int = 1) -> float | None:
    return None if value is None else round(value, digits)
