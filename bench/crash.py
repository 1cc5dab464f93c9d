"""The crash suite: ``kill -9`` rounds of ``phasewatch serve`` under concurrent load.

    python bench/crash.py --rounds 20      # the long profile
    python bench/crash.py --quick          # the short profile the test command runs
    python bench/crash.py --quick --json   # the result as one JSON object
    python bench/crash.py --postgresql     # on a PostgreSQL store (a local server)

A real ``phasewatch serve`` (a child process, one SQLite file, or with ``--postgresql`` a
database of a local PostgreSQL server, which stays up) is killed with SIGKILL at a random
moment of each round and started again on the same store, while:

- producer threads send events, half through ``POST /v1/events`` and half through
  ``POST /v1/pubsub/push``, each retried until phasewatch acknowledges it (202; 200 with
  outcome ``stored`` or ``duplicate``), as a producer or Pub/Sub would;
- every completed run makes phasewatch trigger its next phase at a local HTTP target;
- processors of an ``alarms`` pipeline fail twice with one error (an alert) and then
  succeed (its resolve), each alert delivered to a local Slack webhook and a local
  PagerDuty Events API.

The peers hold every request 10-200 ms, so some kills land while a trigger or an alert is
being delivered. After the last round phasewatch runs until every decision is delivered,
then stops, and the suite counts, from the store and the peers:

- acknowledged events missing from the store (lost), stored twice, or accepted twice;
- restarts that judged events a kill left stored and not yet judged (the judged mark;
  on PostgreSQL the restarted process leads once the killed one's lease, ``store.lease_s``
  = 2 s here, has run out, and judges them then);
- triggers: runs that got none, and every second copy of an ``Idempotency-Key``;
- alerts: notifications that never came, and every second copy of a (channel, key, action).

A second copy that came after a kill, the first copy having reached the peer before that
kill (or at most 1 s after it: in flight), is "resent after a crash mid-request": at-least-once delivery, documented in
docs/reliability.md. Any other second copy is a double send, and a failure.
"""

from __future__ import annotations

import argparse
import base64
import contextlib
import json
import os
import random
import re
import signal
import sqlite3
import subprocess
import sys
import tempfile
import threading
import time
from collections import Counter
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime, timedelta
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import httpx
import psycopg
import yaml

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from monitor.app.load.config import pipeline_id, processor_name, synthetic_config  # noqa: E402
from tests.postgres_server import temporary_postgres  # noqa: E402

ALARMS, CHECKS = "alarms", "checks"
PAGE_WAIT_S = 15.0  # how long an alarm's success waits for its page
ALERT_ERROR = "ValueError: row 17 of batch 4 has no game_id"
IN_FLIGHT_S = 1.0
RUN_DAYS = 120  # past the 70 run dates a restart once replayed: older runs must survive it


# --- the peers ------------------------------------------------------------------------------

@dataclass(frozen=True)
class Received:
    """One request a peer took: when it arrived and when its answer went out."""

    at: float
    answered: float
    path: str
    key: str  # Idempotency-Key, dedup_key or the Slack message's processor
    action: str  # trigger / resolve for alerts, the attempt for triggers
    body: dict[str, Any]


class Peer:
    """A local HTTP server that holds each request 10-200 ms, answers ``status``, records it."""

    def __init__(self, name: str, status: int, hold: tuple[float, float], seed: int) -> None:
        self.name, self.status, self.hold = name, status, hold
        self.rng = random.Random(seed)
        self.lock = threading.Lock()
        self.received: list[Received] = []
        peer = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, format: str, *args: Any) -> None:
                pass

            def do_POST(self) -> None:
                at = time.time()
                body = json.loads(self.rfile.read(int(self.headers.get("Content-Length") or 0)) or b"{}")
                with peer.lock:
                    hold = peer.rng.uniform(*peer.hold)
                time.sleep(hold)
                data = b'{"ok": true}' if peer.name != "slack" else b"ok"
                try:
                    self.send_response(peer.status)
                    self.send_header("Content-Length", str(len(data)))
                    self.end_headers()
                    self.wfile.write(data)
                except OSError:
                    pass  # phasewatch was killed while we held its request
                key, action = peer.identify(self.headers, body)
                with peer.lock:
                    peer.received.append(Received(at, time.time(), self.path, key, action, body))

            def do_GET(self) -> None:
                self.send_response(200)
                self.send_header("Content-Length", "2")
                self.end_headers()
                self.wfile.write(b"{}")

        class Server(ThreadingHTTPServer):
            daemon_threads = True

            def handle_error(self, request: Any, client_address: Any) -> None:
                pass

        self.server = Server(("127.0.0.1", 0), Handler)
        threading.Thread(target=self.server.serve_forever, daemon=True).start()
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}"

    def identify(self, headers: Any, body: dict[str, Any]) -> tuple[str, str]:
        if self.name == "target":
            return headers.get("Idempotency-Key", ""), str(body.get("attempt"))
        if self.name == "pagerduty":
            return str(body.get("dedup_key")), str(body.get("event_action"))
        text = json.dumps(body.get("blocks", []))  # slack: the labels block names the processor
        found = re.search(r"processor=(c\d{3})", text)
        action = "resolve" if str(body.get("text", "")).startswith("RESOLVED") else "trigger"
        return (found.group(1) if found else "?"), action

    def copies(self) -> list[Received]:
        with self.lock:
            return sorted(self.received, key=lambda r: r.at)

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()


# --- phasewatch serve, killed and restarted ---------------------------------------------------

class Service:
    """``phasewatch serve`` on a port of its choosing; ``url`` is None while it is down."""

    def __init__(self, config: Path, db: Path | str, log: Path, env: dict[str, str]) -> None:
        self.config, self.db, self.log, self.env = config, db, log, env
        self.url: str | None = None
        self.proc: subprocess.Popen[bytes] | None = None
        self.kills: list[float] = []
        self.restarts_s: list[float] = []

    def start(self) -> None:
        seen = len(self.log.read_text().splitlines()) if self.log.exists() else 0
        began = time.monotonic()
        with self.log.open("ab") as stderr:
            self.proc = subprocess.Popen(
                [sys.executable, "-c", "from monitor.app.cli.start import main; main()", "serve",
                 "--config", str(self.config), "--db", str(self.db), "--port", "0"],
                cwd=ROOT, env=self.env, stdout=subprocess.DEVNULL, stderr=stderr)
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            for line in self.log.read_text().splitlines()[seen:]:
                if "event=serve.started" in line:
                    port = line.split(" port=")[1].split()[0]
                    self.restarts_s.append(time.monotonic() - began)
                    self.url = f"http://127.0.0.1:{port}"
                    return
            if self.proc.poll() is not None:
                break
            time.sleep(0.02)
        raise RuntimeError(f"phasewatch serve did not start:\n{self.log.read_text()[-3000:]}")

    def kill(self) -> None:
        assert self.proc is not None
        self.url = None
        self.proc.send_signal(signal.SIGKILL)
        self.kills.append(time.time())
        self.proc.wait(30)

    def stop(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.url = None
            self.proc.send_signal(signal.SIGTERM)
            self.proc.wait(30)


# --- the load ---------------------------------------------------------------------------------

@dataclass
class Tally:
    """What the producers sent and what phasewatch answered (shared by the threads)."""

    lock: threading.Lock = field(default_factory=threading.Lock)
    acked: set[str] = field(default_factory=set)
    accepted: Counter[str] = field(default_factory=Counter)  # answered "stored" (not duplicate)
    answered_duplicate: int = 0  # a retry of an event stored before its answer was lost
    requests: int = 0
    retries: int = 0
    by_path: Counter[str] = field(default_factory=Counter)
    runs_done: list[tuple[str, str, str]] = field(default_factory=list)
    alarms_done: list[str] = field(default_factory=list)


class Load:
    """Producer threads: runs of the synthetic pipelines, and alarm streaks now and then."""

    def __init__(self, service: Service, pipelines: int, processors: int, threads: int,
                 alarm_every: int, alarms: int, seed: int,
                 paged: Callable[[str], bool] = lambda processor: True) -> None:
        self.service, self.pipelines, self.processors = service, pipelines, processors
        self.paged = paged  # whether PagerDuty got the page about a processor
        self.threads, self.alarm_every, self.alarms = threads, alarm_every, alarms
        self.rng = random.Random(seed)
        self.tally = Tally()
        self.stop = threading.Event()
        self._next = 0
        self._next_lock = threading.Lock()
        self.today = datetime.now(UTC).date()
        self._workers = [threading.Thread(target=self._work, args=(i,), daemon=True)
                         for i in range(threads)]

    def start(self) -> None:
        for worker in self._workers:
            worker.start()

    def join(self, timeout_s: float) -> None:
        deadline = time.monotonic() + timeout_s
        for worker in self._workers:
            worker.join(max(0.0, deadline - time.monotonic()))

    def _take(self) -> int | None:
        with self._next_lock:
            if self.stop.is_set():
                return None
            n, self._next = self._next, self._next + 1
            return n

    def _work(self, i: int) -> None:
        with httpx.Client(timeout=10) as client:
            while (n := self._take()) is not None:
                if n % self.alarm_every == self.alarm_every - 1 and n // self.alarm_every < self.alarms:
                    self._alarm(client, processor=f"c{n // self.alarm_every + 1:03d}")
                else:
                    self._run(client, n)

    def _run(self, client: httpx.Client, n: int) -> None:
        """Run ``n``: every processor starts and succeeds. Run dates go back ``RUN_DAYS``
        days, past the 70 the start-up replays by run date (a restart must rebuild the
        older runs too: docs/reliability.md); past them the same dates come again as
        backfill runs."""
        pid = pipeline_id(n % self.pipelines)
        lap, day = divmod(n // self.pipelines, RUN_DAYS)
        run_date = (self.today - timedelta(days=day)).isoformat()
        mode = ("same_day" if day == 0 else "overnight") if lap == 0 else f"backfill{lap}"
        extra = {"mode": "backfill"} if lap else {}
        for j in range(self.processors):
            for status in ("started", "succeeded"):
                self.send(client, [_event(f"{pid}-{run_date}-{mode}-{j}-{status}", pid, run_date, "work",
                                          processor_name(j), status, **extra)], n + j)
        with self.tally.lock:
            self.tally.runs_done.append((pid, run_date, "backfill" if lap else mode))

    def _alarm(self, client: httpx.Client, processor: str) -> None:
        """Two failures with one error in one batch (an alert), then the success that
        resolves it, once the page reached PagerDuty (a processor put right after its page;
        at least 1 s, at most ``PAGE_WAIT_S`` later). An alert that began and ended before
        phasewatch could tell it is told to no one, by design: a kill's failover delays the
        judgment by up to the lease, and a success sent after a fixed second would often
        arrive before the page could."""
        day = self.today.isoformat()
        self.send(client, [_event(f"alarm-{processor}-started", ALARMS, day, CHECKS, processor, "started")], 0)
        self.send(client, [_event(f"alarm-{processor}-failed-{k}", ALARMS, day, CHECKS, processor, "failed",
                                  error=ALERT_ERROR) for k in (1, 2)], 0, batch=True)
        time.sleep(1.0)
        waited = time.monotonic() + PAGE_WAIT_S
        while not self.paged(processor) and time.monotonic() < waited and not self.stop.is_set():
            time.sleep(0.1)
        self.send(client, [_event(f"alarm-{processor}-ok", ALARMS, day, CHECKS, processor, "succeeded")], 0)
        with self.tally.lock:
            self.tally.alarms_done.append(processor)

    def send(self, client: httpx.Client, events: list[dict[str, Any]], n: int, batch: bool = False) -> None:
        """Post until acknowledged; half the single events go through the push path."""
        push = not batch and n % 2 == 1
        for event in events:
            event["timestamp"] = datetime.now(UTC).isoformat()
        while True:
            url = self.service.url
            if url is None:
                time.sleep(0.05)
                continue
            with self.tally.lock:
                self.tally.requests += 1
            try:
                if push:
                    answer = client.post(f"{url}/v1/pubsub/push", json=_envelope(events[0]))
                    ok = answer.status_code == 200 and answer.json()["outcome"] in ("stored", "duplicate")
                    fresh = [events[0]["event_id"]] if ok and answer.json()["outcome"] == "stored" else []
                else:
                    answer = client.post(f"{url}/v1/events", json=events if batch else events[0])
                    ok = answer.status_code == 202
                    fresh = [e["event_id"] for e in events] if ok and answer.json()["accepted"] else []
            except (httpx.HTTPError, ValueError):
                ok, fresh = False, []
            if ok:
                with self.tally.lock:
                    self.tally.acked.update(e["event_id"] for e in events)
                    self.tally.accepted.update(fresh)
                    self.tally.answered_duplicate += len(events) - len(fresh)
                    self.tally.by_path["push" if push else "events"] += len(events)
                return
            with self.tally.lock:
                self.tally.retries += 1
            time.sleep(0.05)


def _event(event_id: str, pipeline: str, run_date: str, phase: str, processor: str, status: str,
           **extra: Any) -> dict[str, Any]:
    return {"event_id": event_id, "pipeline": pipeline, "run_date": run_date, "phase": phase,
            "processor": processor, "status": status, **extra}


def _envelope(event: dict[str, Any]) -> dict[str, Any]:
    return {"message": {"data": base64.b64encode(json.dumps(event).encode()).decode(),
                        "messageId": event["event_id"], "attributes": {}},
            "subscription": "projects/crash/subscriptions/phasewatch"}


# --- the config -------------------------------------------------------------------------------

def crash_config(target: str, pagerduty: str, pipelines: int, processors: int, alarms: int) -> dict[str, Any]:
    """The synthetic config, an ``alarms`` pipeline, and alerts to Slack and PagerDuty."""
    data = synthetic_config(pipelines, processors, target, tick_interval_s=0.2, slos=False)
    data["pipelines"].append({
        "id": ALARMS, "timezone": "UTC", "phases": [{"id": CHECKS, "processors": [
            {"name": f"c{k + 1:03d}", "priority": "optional"} for k in range(alarms)]}]})
    data["actuator"] = {"retry": {"initial_s": 0.2, "max_s": 1}, "guards": {"same_error_times": 2}}
    data["alerting"] = {
        "channels": [
            {"name": "log", "kind": "log"},
            {"name": "slack", "kind": "slack", "webhook_url_env": "CRASH_SLACK_URL", "rate_per_s": 100,
             "burst": 100},
            {"name": "pagerduty", "kind": "pagerduty", "routing_key_env": "CRASH_PD_KEY",
             "url": f"{pagerduty}/v2/enqueue", "rate_per_s": 100, "burst": 100},
        ],
        "routes": [{"match": ["alertname=deterministic_failure"], "channels": ["slack", "pagerduty"]}],
        "default_channels": ["log"],
        "group_by": ["pipeline", "processor"],
        "group_wait_s": 0, "group_interval_s": 0.2,
    }
    return data


# --- the counts -------------------------------------------------------------------------------

@dataclass
class Copies:
    """Deliveries of one kind: expected, missing, and each second copy by its cause."""

    expected: int = 0
    received: int = 0
    missing: int = 0
    resent_after_crash_mid_request: int = 0
    double_sends: int = 0  # a second copy with no kill between: a bug
    left_open: int = 0  # expected alerts triggered and never resolved (a page left open)
    details: list[str] = field(default_factory=list)


def count_copies(copies: list[Received], expected: set[tuple[str, str]], kills: list[float],
                 key_of: Any) -> Copies:
    """Group the peer's copies by ``key_of``; a second copy is resent after a crash when a
    kill fell between the previous copy's arrival (less ``IN_FLIGHT_S``: a request written
    just before the kill can reach the peer's handler later on a loaded machine) and its own."""
    out = Copies(expected=len(expected), received=len(copies))
    seen: dict[tuple[str, str], Received] = {}
    for copy in copies:
        key = key_of(copy)
        previous = seen.get(key)
        seen[key] = copy
        if previous is None:
            continue
        if any(previous.at - IN_FLIGHT_S <= k <= copy.at for k in kills):
            out.resent_after_crash_mid_request += 1
            kill = max(k for k in kills if previous.at - IN_FLIGHT_S <= k <= copy.at)
            when = ("in flight" if kill < previous.at else "while held" if kill <= previous.answered
                    else f"{kill - previous.answered:.2f} s after its answer")
            out.details.append(f"{key}: resent after a kill ({when})")
        else:
            out.double_sends += 1
            out.details.append(f"{key}: sent twice with no kill between")
    missing = sorted(expected - set(seen))
    out.missing = len(missing)
    left_open = sorted(key for key, action in seen if action == "trigger"
                       and (key, "resolve") in expected and (key, "resolve") not in seen)
    out.left_open = len(left_open)
    out.details += [f"{key} trigger: never resolved" for key in left_open[:10]]
    out.details += [f"{key[0]} {key[1]}: never received" for key in missing[:10]]
    return out


@dataclass
class Result:
    rounds: int
    wall_s: float
    restart_s_median: float
    restart_s_max: float
    requests: int
    retries: int
    acknowledged: int
    via_push: int
    stored: int
    lost: int
    stored_twice: int
    accepted_twice: int
    stored_not_acknowledged: int
    answered_duplicate_on_retry: int
    # Restarts that judged events stored before the kill and never judged (the serve log's
    # ``event=state.judged_after_restart``, on PostgreSQL ``judged_after_takeover``), and how
    # many events those were.
    judged_after_restart: int
    judged_after_restart_events: int
    runs: int
    triggers_state: dict[str, int]
    outbox: dict[str, int]
    triggers: Copies
    alerts: Copies
    store: str = "SQLite"

    @property
    def ok(self) -> bool:
        return (self.lost == 0 and self.stored_twice == 0 and self.accepted_twice == 0
                and self.stored_not_acknowledged == 0 and self.triggers.missing == 0
                and self.triggers.double_sends == 0 and self.alerts.missing == 0
                and self.alerts.double_sends == 0 and self.alerts.left_open == 0)


def settle(service: Service, load: Load, target: Peer, slack: Peer, pagerduty: Peer, timeout_s: float) -> None:
    """Wait until every run's trigger and every alarm's notifications reached the peers."""
    deadline = time.monotonic() + timeout_s
    runs, alarms = len(load.tally.runs_done), len(load.tally.alarms_done)
    while time.monotonic() < deadline:
        keys = {r.key for r in target.copies()}
        pd = {(r.key, r.action) for r in pagerduty.copies()}
        sl = {(r.key, r.action) for r in slack.copies()}
        if len(keys) >= runs and len(pd) >= 2 * alarms and len(sl) >= 2 * alarms:
            time.sleep(1.0)  # a last stray copy would show up now
            return
        time.sleep(0.2)


def run(rounds: int, round_s: tuple[float, float], *, pipelines: int = 3, processors: int = 8,
        threads: int = 4, alarm_every: int = 6, seed: int = 16, settle_s: float = 90.0,
        keep: Path | None = None, postgresql: bool = False) -> Result:
    rng = random.Random(seed)
    started = time.perf_counter()
    hold = (0.01, 0.2)
    target, slack, pagerduty = (Peer("target", 202, hold, seed), Peer("slack", 200, hold, seed + 1),
                                Peer("pagerduty", 202, hold, seed + 2))
    alarms = rounds * 3
    with tempfile.TemporaryDirectory() as tmp, contextlib.ExitStack() as stack:
        work = keep or Path(tmp)
        work.mkdir(parents=True, exist_ok=True)
        config = crash_config(target.url, pagerduty.url, pipelines, processors, alarms)
        db: Path | str = work / "pw.db"
        if postgresql:
            db = stack.enter_context(temporary_postgres(durable=True))
            config["store"] = {"lease_s": 2.0}
        (work / "crash.yaml").write_text(yaml.safe_dump(config))
        env = {**os.environ, "PHASEWATCH_TOKEN": "", "CRASH_SLACK_URL": f"{slack.url}/hook",
               "CRASH_PD_KEY": "crash-routing-key"}
        service = Service(work / "crash.yaml", db, work / "serve.log", env)
        load = Load(service, pipelines, processors, threads, alarm_every, alarms, seed,
                    paged=lambda processor: any(_processor(r.key) == processor and r.action == "trigger"
                                                for r in pagerduty.copies()))
        try:
            service.start()
            load.start()
            for _ in range(rounds):
                time.sleep(rng.uniform(*round_s))
                service.kill()
                service.start()
            load.stop.set()
            load.join(120)
            settle(service, load, target, slack, pagerduty, settle_s)
        finally:
            service.stop()
            for peer in (target, slack, pagerduty):
                peer.close()
        return _count(rounds, time.perf_counter() - started, service, load, target, slack, pagerduty)


def _count(rounds: int, wall: float, service: Service, load: Load, target: Peer, slack: Peer,
           pagerduty: Peer) -> Result:
    db: Any = (psycopg.connect(service.db) if isinstance(service.db, str)
               else sqlite3.connect(service.db))
    try:
        rows = [r[0] for r in db.execute("SELECT event_id FROM events")]
        state = dict(db.execute("SELECT state, COUNT(*) FROM actuator_triggers WHERE phase = 'publish'"
                                " GROUP BY state").fetchall())
        outbox = dict(db.execute("SELECT status, COUNT(*) FROM alert_outbox GROUP BY status")
                      .fetchall())
    finally:
        db.close()
    stored = set(rows)
    tally = load.tally
    runs = {f"{pid}:{day}:{mode}:publish" for pid, day, mode in tally.runs_done}
    triggers = count_copies(target.copies(), {(k, "") for k in runs}, service.kills,
                            lambda r: (r.key, ""))
    expected_alerts = {(f"{channel}:{c}", action) for c in tally.alarms_done
                       for channel in ("slack", "pagerduty") for action in ("trigger", "resolve")}
    both = ([Received(r.at, r.answered, r.path, f"slack:{r.key}", r.action, {}) for r in slack.copies()]
            + [Received(r.at, r.answered, r.path, f"pagerduty:{_processor(r.key)}", r.action, {})
               for r in pagerduty.copies()])
    alerts = count_copies(sorted(both, key=lambda r: r.at), expected_alerts, service.kills,
                          lambda r: (r.key, r.action))
    restarts = sorted(service.restarts_s)
    judged = [int(m.group(1)) for m in re.finditer(
        r"event=state\.judged_after_(?:restart|takeover) events=(\d+)", service.log.read_text())]
    return Result(
        rounds=rounds, wall_s=round(wall, 1), restart_s_median=round(restarts[len(restarts) // 2], 2),
        restart_s_max=round(restarts[-1], 2), requests=tally.requests, retries=tally.retries,
        acknowledged=len(tally.acked), via_push=tally.by_path["push"], stored=len(stored),
        lost=len(tally.acked - stored), stored_twice=len(rows) - len(stored),
        accepted_twice=sum(1 for n in tally.accepted.values() if n > 1),
        stored_not_acknowledged=len(stored - tally.acked),
        answered_duplicate_on_retry=tally.answered_duplicate,
        judged_after_restart=len(judged), judged_after_restart_events=sum(judged), runs=len(runs),
        triggers_state=state, outbox=outbox, triggers=triggers, alerts=alerts,
        store="PostgreSQL" if isinstance(service.db, str) else "SQLite",
    )


def _processor(dedup_key: str) -> str:
    found = re.search(r"processor=(c\d{3})", dedup_key)
    return found.group(1) if found else "?"


def render(result: Result) -> str:
    t, a = result.triggers, result.alerts
    return "\n".join([
        f"crash suite: {result.rounds} kill -9 rounds, {result.store}, {result.wall_s:.0f} s wall, "
        f"{time.strftime('%Y-%m-%d')}, {os.cpu_count()} CPUs",
        f"  restarts: median {result.restart_s_median} s, max {result.restart_s_max} s (start to serving)",
        f"  events: {result.acknowledged:,} acknowledged ({result.via_push:,} by push) in "
        f"{result.requests:,} requests ({result.retries:,} retried while down)",
        f"    lost {result.lost}, stored twice {result.stored_twice}, accepted twice "
        f"{result.accepted_twice}, stored but never acknowledged {result.stored_not_acknowledged}; "
        f"{result.answered_duplicate_on_retry} retries found their event already stored; "
        f"{result.judged_after_restart} restarts judged {result.judged_after_restart_events} "
        + ("events stored and never judged before the kill" if result.store == "SQLite" else
           "events past the killed leader's judged mark (those stored while its lease ran too)"),
        f"  triggers: {t.expected} runs, {t.received} received, missing {t.missing}, "
        f"double sends {t.double_sends}, resent after a crash mid-request "
        f"{t.resent_after_crash_mid_request}; store: {result.triggers_state}",
        f"  alerts: {a.expected} notifications (Slack + PagerDuty, trigger + resolve), "
        f"{a.received} received, missing {a.missing}, left open {a.left_open}, "
        f"double sends {a.double_sends}, "
        f"resent after a crash mid-request {a.resent_after_crash_mid_request}; outbox: {result.outbox}",
        *[f"    {line}" for line in t.details + a.details],
        "OK" if result.ok else "FAILED",
    ])


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--rounds", type=int, default=20)
    parser.add_argument("--quick", action="store_true", help="the short profile: 5 rounds of 0.5-2 s")
    parser.add_argument("--seed", type=int, default=16)
    parser.add_argument("--json", action="store_true")
    parser.add_argument("--keep", type=Path, help="keep the config, store and serve log here")
    parser.add_argument("--postgresql", action="store_true",
                        help="a PostgreSQL store on a local server (postgresql installed)")
    args = parser.parse_args()
    rounds, round_s = (5, (0.5, 2.0)) if args.quick else (args.rounds, (2.0, 6.0))
    result = run(rounds, round_s, seed=args.seed, keep=args.keep, postgresql=args.postgresql)
    print(json.dumps({**asdict(result), "ok": result.ok}) if args.json else render(result))
    return 0 if result.ok else 1


if __name__ == "__main__":
    sys.exit(main())
