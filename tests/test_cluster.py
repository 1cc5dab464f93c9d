"""Three real ``phasewatch serve`` processes on one PostgreSQL database.

Every run's completions land on different instances at once, each event twice (a
redelivery to another instance); one instance (the leader) is killed with SIGKILL half-way.
Then: exactly one trigger per (pipeline, run date, mode, phase) was decided and reached the
target under one idempotency key (a call the kill interrupted is repeated under the same
key, as after any crash between a target's answer and its commit), each alert
notification reached PagerDuty once, and every event an instance acknowledged is stored. About 20 s (three interpreters start, and the leader's lease of 3 s runs out).
"""

from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import sys
import threading
import time
from collections import Counter
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
import psycopg
import yaml

from tests.actuator_support import Peer, Received, http_peer, json_answer

ROOT = Path(__file__).resolve().parent.parent
PROCESSORS = [f"p{i}" for i in range(4)]
RUNS = 16


@dataclass
class Instance:
    proc: subprocess.Popen[bytes]
    log: Path
    url: str = ""
    instance: str = ""

    def text(self) -> str:
        return self.log.read_text(errors="replace")


def cluster_config(target: str, pagerduty: str) -> dict[str, Any]:
    """One pipeline: phase s0 of four processors, then s1 triggered over HTTP (and sx)."""
    return {
        "version": 1,
        "pipelines": [{
            "id": "c", "timezone": "UTC",
            "horizon": {"run_dates": {"overnight": "any"}},  # the runs span 17 days
            "services": {"target": {"health_url": f"{target}/health"}},
            "phases": [
                {"id": "s0", "processors": [{"name": p} for p in PROCESSORS]},
                {"id": "s1", "processors": [{"name": "q"}], "services": ["target"],
                 "triggers": [{"kind": "http", "url": f"{target}/trigger", "timeout_s": 5}]},
                {"id": "sx", "processors": [{"name": "x"}]},  # where the failures go
            ],
        }],
        "server": {"tick_interval_s": 0.5},
        "actuator": {"guards": {"same_error_times": 3}},
        "store": {"lease_s": 3, "follow_interval_s": 0.2},
        "alerting": {
            "channels": [{"kind": "pagerduty", "name": "pd", "routing_key_env": "PW_TEST_PD",
                          "url": f"{pagerduty}/v2/enqueue"}],
            "routes": [{"channels": ["pd"], "group_wait_s": 0, "group_interval_s": 1}],
        },
    }


@contextmanager
def serve(config: Path, db: str, log: Path) -> Iterator[Instance]:
    with log.open("ab") as stderr:
        proc = subprocess.Popen(
            [sys.executable, "-c", "from monitor.app.cli.main import main; main()", "serve",
             "--config", str(config), "--port", "0"],
            cwd=ROOT, stdout=subprocess.DEVNULL, stderr=stderr,
            env={**os.environ, "PHASEWATCH_TOKEN": "", "PHASEWATCH_DB": db, "PW_TEST_PD": "rk"},
        )
    instance = Instance(proc, log)
    try:
        yield instance
    finally:
        if proc.poll() is None:
            proc.send_signal(signal.SIGTERM)
            try:
                proc.wait(15)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()


def wait_started(instance: Instance, deadline: float) -> None:
    while time.monotonic() < deadline:
        found = re.search(r"event=serve.started .*port=(\d+) .*instance=(\S+)", instance.text())
        if found:
            instance.url = f"http://127.0.0.1:{found.group(1)}"
            instance.instance = found.group(2)
            return
        assert instance.proc.poll() is None, instance.text()
        time.sleep(0.05)
    raise AssertionError(f"serve did not start:\n{instance.text()}")


def leader_of(instances: list[Instance], db: str, deadline: float) -> Instance:
    """The instance holding the leader's lease now."""
    while time.monotonic() < deadline:
        with psycopg.connect(db) as conn:
            row = conn.execute("SELECT holder FROM leases WHERE name = 'leader'").fetchone()
        for instance in instances:
            if row is not None and row[0] == instance.instance:
                return instance
        time.sleep(0.05)
    raise AssertionError("no instance leads")


class Poster:
    """Posts events to instances; an event counts as acknowledged once an instance said 2xx."""

    def __init__(self) -> None:
        self.acknowledged: set[str] = set()
        self.lock = threading.Lock()
        self.local = threading.local()
        self.clients: list[httpx.Client] = []

    def post(self, urls: list[str], event: dict[str, Any]) -> None:
        """Post to the first instance; on no answer (it was killed), to the next, as Pub/Sub would."""
        client = getattr(self.local, "client", None)
        if client is None:
            client = self.local.client = httpx.Client(timeout=10)
            with self.lock:
                self.clients.append(client)
        answers = []
        for url in urls:
            try:
                response = client.post(f"{url}/v1/events", json=[event])
            except httpx.TransportError as exc:
                answers.append(repr(exc))
                continue
            if response.status_code in (200, 202):
                with self.lock:
                    self.acknowledged.add(event["event_id"])
                return
            answers.append(f"{response.status_code} {response.text}")
        raise AssertionError(f"no instance took {event['event_id']}: {answers}")

    def close(self) -> None:
        for client in self.clients:
            client.close()


def events_of_run(day: int, stamp: str) -> list[dict[str, Any]]:
    run_date = (datetime.now(UTC).date() - timedelta(days=day)).isoformat()
    return [{"event_id": f"r{day}-{p}", "pipeline": "c", "run_date": run_date, "mode": "overnight",
             "phase": "s0", "processor": p, "status": "succeeded", "timestamp": stamp}
            for p in PROCESSORS]


def failures(stamp: str) -> list[dict[str, Any]]:
    """Three failures with the same error: the deterministic-failure alert (critical)."""
    run_date = (datetime.now(UTC).date() - timedelta(days=RUNS + 1)).isoformat()
    return [{"event_id": f"fail-{i}", "pipeline": "c", "run_date": run_date, "mode": "overnight",
             "phase": "sx", "processor": "x", "status": "failed", "timestamp": stamp,
             "error": "ValueError: column 'pts' is missing"} for i in range(3)]


def test_three_processes_share_a_database_exactly_once(postgres_url: str, tmp_path: Path) -> None:
    triggers: Counter[tuple[str, str, str, str]] = Counter()
    keys: dict[tuple[str, str, str, str], set[str]] = {}

    def target(request: Received) -> tuple[int, dict[str, str], bytes]:
        if request.path.startswith("/trigger"):
            data = request.json()
            run = (data["pipeline"], data["run_date"], data["mode"], data["phase"])
            triggers[run] += 1
            keys.setdefault(run, set()).add(request.headers.get("idempotency-key", ""))
            return json_answer(202, {"accepted": True})
        return json_answer(200, {"status": "pass"})

    with ExitStack() as stack:
        sink: Peer = stack.enter_context(http_peer(target))
        pagerduty: Peer = stack.enter_context(
            http_peer(lambda r: json_answer(202, {"status": "success"})))
        config = tmp_path / "cluster.yaml"
        config.write_text(yaml.safe_dump(cluster_config(sink.url, pagerduty.url)))
        instances = [stack.enter_context(serve(config, postgres_url, tmp_path / f"serve{i}.log"))
                     for i in range(3)]
        deadline = time.monotonic() + 60
        for instance in instances:
            wait_started(instance, deadline)

        stamp = datetime.now(UTC).isoformat()
        poster = Poster()
        stack.callback(poster.close)
        with ThreadPoolExecutor(12) as pool:
            alive = instances
            for k, event in enumerate(failures(stamp)):  # on three instances
                pool.submit(poster.post, [alive[k].url], event).result()
            for day in range(RUNS):
                if day == RUNS // 2:  # mid-way, while events arrive
                    paged = time.monotonic() + 30
                    while not pagerduty.requests and time.monotonic() < paged:
                        time.sleep(0.05)  # the page is out (a new leader takes up an untold one)
                    assert pagerduty.requests, "the deterministic failure was never paged"
                    leader = leader_of(instances, postgres_url, time.monotonic() + 30)
                    leader.proc.send_signal(signal.SIGKILL)
                    leader.proc.wait()
                    alive = [i for i in instances if i is not leader]
                # the run's completions at once on different instances, each redelivered
                futures = []
                for k, event in enumerate(events_of_run(day, stamp)):
                    for copy in range(2):
                        first = (k + copy + day) % len(alive)
                        order = [alive[(first + j) % len(alive)].url for j in range(len(alive))]
                        futures.append(pool.submit(poster.post, order, event))
                for future in futures:
                    future.result()

        expected = {("c", e[0]["run_date"], "overnight", "s1")
                    for e in (events_of_run(d, stamp) for d in range(RUNS))}
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline and set(triggers) != expected:
            time.sleep(0.1)
        time.sleep(2.5)  # past another lease and a few ticks: any repeat would show now
        pages = [r.json() for r in pagerduty.requests]

        assert set(triggers) == expected, f"missing {expected - set(triggers)}"
        assert all(len(k) == 1 for k in keys.values()), keys  # one trigger per key
        repeats = {k: n for k, n in triggers.items() if n > 1}
        assert sum(triggers.values()) - len(triggers) <= 2, repeats  # only calls the kill cut
        triggered = Counter((p["dedup_key"], p["event_action"]) for p in pages)
        assert triggered and set(triggered.values()) == {1}, triggered
        assert any("deterministic_failure" in key for key, _ in triggered), triggered

        with psycopg.connect(postgres_url) as conn:
            stored = {r[0] for r in conn.execute("SELECT event_id FROM events")}
            rows = conn.execute("SELECT state, count(*) FROM actuator_triggers GROUP BY state").fetchall()
        assert poster.acknowledged <= stored
        assert len(poster.acknowledged) == RUNS * len(PROCESSORS) + 3
        assert dict(rows) == {"succeeded": RUNS}
        dead = [json.dumps(i.text()[-2000:]) for i in alive if i.proc.poll() is not None]
        assert dead == [], dead
