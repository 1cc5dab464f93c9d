"""The actuator in the real service: uvicorn on loopback, a local HTTP trigger target, real time.

- 30 concurrent final-completion posts plus their redeliveries: one trigger arrives;
- the target failing, then recovering: delivered once;
- ``phasewatch serve`` killed while its trigger call is in flight: after a restart on the
  same database the trigger is sent again with the same Idempotency-Key and succeeds once.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import httpx
import yaml

from monitor.app.http.server import create_app, serving
from monitor.app.phasewatch import Phasewatch
from monitor.clock import SystemClock
from monitor.config import default_config_text, parse_config
from tests.actuator_support import (
    COVERAGE,
    PHASE3_OVERNIGHT,
    Peer,
    Received,
    http_peer,
    json_answer,
    race,
)
from tests.factories import event_dict

ROOT = Path(__file__).resolve().parent.parent
# Real time: the runs must be inside the actionable horizon (overnight: yesterday, today).
_TODAY = datetime.now(ZoneInfo("America/New_York")).date()
RUN = (_TODAY - timedelta(days=1)).isoformat()
OTHER = _TODAY.isoformat()
KEY = f"nba:{RUN}:overnight:phase4"


def config_text(peer: str, **server: Any) -> str:
    """The NBA config with every service and the Phase 4 trigger pointed at ``peer``."""
    data = yaml.safe_load(default_config_text())
    pipeline = data["pipelines"][0]
    for name, service in pipeline["services"].items():
        service.clear()
        service.update(health_url=f"{peer}/health/{name}")
    for phase in pipeline["phases"]:
        if phase.get("triggers"):
            phase["triggers"] = [{"kind": "log"}]
    next(p for p in pipeline["phases"] if p["id"] == "phase4")["triggers"] = [
        {"kind": "http", "url": f"{peer}/phase4", "timeout_s": 30}]
    data["server"] = {"tick_interval_s": 0.2, **server}
    data["actuator"] = {"retry": {"initial_s": 0.2, "max_s": 0.5}}
    return yaml.safe_dump(data)


def health_or(answer: Any) -> Any:
    def respond(request: Received) -> Any:
        if request.path.startswith("/health"):
            return json_answer(200, {"status": "pass"})
        return answer(request)
    return respond


def triggers_of(peer: Peer) -> list[Received]:
    with peer.lock:
        return [r for r in peer.requests if r.path == "/phase4"]


def phase3(run_date: str = RUN, **ids: str) -> list[dict[str, Any]]:
    now = time.time()
    stamp = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(now))
    return [event_dict("phase3", "succeeded", stamp, name, run_date=run_date, mode="overnight",
                       event_id=ids.get(name, f"{name}-{run_date}"), **COVERAGE.get(name, {}))
            for name in PHASE3_OVERNIGHT]


@contextmanager
def live(tmp_path: Path, peer: Peer) -> Iterator[tuple[Phasewatch, str]]:
    config = parse_config(config_text(peer.url), "live.yaml")
    pw = Phasewatch.build(config, db_path=tmp_path / "pw.db", clock=SystemClock())
    try:
        with serving(create_app(pw, None, tick_interval_s=0.2)) as url:
            yield pw, url
    finally:
        pw.close()


def test_thirty_concurrent_final_completions_and_redeliveries_trigger_once(tmp_path: Path) -> None:
    with http_peer(health_or(lambda r: json_answer(202, {"ok": True}))) as peer, \
            live(tmp_path, peer) as (pw, url):
        events = phase3()
        with httpx.Client(base_url=url, timeout=30) as client:
            assert client.post("/v1/events", json=events[:-1]).status_code == 202
        final = events[-1]
        answers: list[int] = []

        def post(i: int) -> None:
            with httpx.Client(base_url=url, timeout=30) as client:
                body = {**final, "event_id": f"final-{i}"}
                for _ in range(2):  # the post and its redelivery
                    answers.append(client.post("/v1/events", json=body).status_code)

        assert race(30, post) == [] and answers == [202] * 60
        assert pw.actuator is not None and pw.actuator.wait_idle(30)
        pw.tick()
        assert pw.actuator.wait_idle(30)
        received = triggers_of(peer)
        assert len(received) == 1
        assert received[0].headers["idempotency-key"] == KEY
        rows = [r for r in pw.actuator.store.triggers() if r.phase == "phase4"]
        assert [(r.state, r.attempts) for r in rows] == [("succeeded", 1)]


def _trigger_once(pw: Phasewatch, url: str, peer: Peer, run_date: str) -> Received:
    with httpx.Client(base_url=url, timeout=30) as client:
        assert client.post("/v1/events", json=phase3(run_date)).status_code == 202
    assert pw.actuator is not None
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        assert pw.actuator.wait_idle(30)
        sent = [r for r in triggers_of(peer) if r.json()["run_date"] == run_date]
        if sent:
            (request,) = sent
            return request
        time.sleep(0.02)
    raise AssertionError(f"no trigger for {run_date}")


def test_a_first_attempt_goes_out_on_the_sender_thread_when_health_is_known(tmp_path: Path) -> None:
    """aiohttp sends on the sender thread, httpx on the dispatch workers: the User-Agent tells which."""
    with http_peer(health_or(lambda r: json_answer(202, {"ok": True}))) as peer, \
            live(tmp_path, peer) as (pw, url):
        _trigger_once(pw, url, peer, OTHER)  # probes health (any path)
        second = _trigger_once(pw, url, peer, RUN)
        assert "aiohttp" in second.headers["user-agent"]
        assert second.headers["idempotency-key"] == KEY
        assert pw.actuator is not None
        rows = {r.run_date: (r.state, r.attempts) for r in pw.actuator.store.triggers()
                if r.phase == "phase4"}
        assert rows == {OTHER: ("succeeded", 1), RUN: ("succeeded", 1)}


def test_a_first_attempt_that_must_probe_goes_to_a_worker_thread(tmp_path: Path) -> None:
    """With no probe recent enough, the gate would block the sender's loop: a worker sends instead."""
    with http_peer(health_or(lambda r: json_answer(202, {"ok": True}))) as peer:
        text = yaml.safe_load(config_text(peer.url))
        text["actuator"]["health"] = {"max_age_s": 0}
        config = parse_config(yaml.safe_dump(text), "live.yaml")
        pw = Phasewatch.build(config, db_path=tmp_path / "pw.db", clock=SystemClock())
        try:
            with serving(create_app(pw, None, tick_interval_s=0.2)) as url:
                for run_date in (OTHER, RUN):
                    sent = _trigger_once(pw, url, peer, run_date)
                    assert "python-httpx" in sent.headers["user-agent"]
        finally:
            pw.close()


def test_target_failing_then_recovering_gets_the_trigger_once(tmp_path: Path) -> None:
    done = threading.Event()
    answers = iter([json_answer(503, {"error": "warming up"})] * 2)

    def answer(request: Received) -> Any:
        reply = next(answers, None)
        if reply is None:
            done.set()
            return json_answer(202, {"ok": True})
        return reply

    with http_peer(health_or(answer)) as peer, live(tmp_path, peer) as (pw, url):
        with httpx.Client(base_url=url, timeout=30) as client:
            assert client.post("/v1/events", json=phase3()).status_code == 202
        assert done.wait(30)
        assert pw.actuator is not None and pw.actuator.wait_idle(30)
        for _ in range(3):
            pw.tick()
        assert pw.actuator.wait_idle(30)
        received = triggers_of(peer)
        assert len(received) == 3
        assert {r.headers["idempotency-key"] for r in received} == {KEY}
        assert [r.json()["attempt"] for r in received] == [1, 2, 3]
        (row,) = [r for r in pw.actuator.store.triggers() if r.phase == "phase4"]
        assert (row.state, row.attempts) == ("succeeded", 3)


def _start_serve(config: Path, db: Path, log: Path) -> tuple[subprocess.Popen[bytes], str]:
    env = {**os.environ, "PHASEWATCH_TOKEN": ""}
    seen = len(log.read_text().splitlines()) if log.exists() else 0
    with log.open("ab") as stderr:  # the child keeps its own copy of the descriptor
        proc = subprocess.Popen(
            [sys.executable, "-c", "from monitor.app.cli.main import main; main()", "serve", "--config",
             str(config), "--db", str(db), "--host", "127.0.0.1", "--port", "0"],
            cwd=ROOT, env=env, stdout=subprocess.DEVNULL, stderr=stderr,
        )
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:  # polling a real external process
        for line in log.read_text().splitlines()[seen:]:
            if "event=serve.started" in line and f"db={db}" in line:
                port = line.split(" port=")[1].split()[0]
                return proc, f"http://127.0.0.1:{port}"
        if proc.poll() is not None:
            break
        time.sleep(0.05)
    proc.kill()
    raise AssertionError(f"serve did not start:\n{log.read_text()}")


def test_serve_killed_while_calling_the_target_triggers_once_after_restart(tmp_path: Path) -> None:
    in_flight, release = threading.Event(), threading.Event()
    delivered = threading.Event()
    calls = iter(range(1000))

    def answer(request: Received) -> Any:
        if next(calls) == 0:
            in_flight.set()
            release.wait(60)  # never answered: the process is killed meanwhile
            return json_answer(500, {"error": "too late"})
        delivered.set()
        return json_answer(202, {"ok": True})

    with http_peer(health_or(answer)) as peer:
        config = tmp_path / "live.yaml"
        config.write_text(config_text(peer.url))
        db, log = tmp_path / "pw.db", tmp_path / "serve.log"
        proc, url = _start_serve(config, db, log)
        try:
            with httpx.Client(base_url=url, timeout=30) as client:
                assert client.post("/v1/events", json=phase3()).status_code == 202
            assert in_flight.wait(30), log.read_text()
            proc.send_signal(signal.SIGKILL)
            proc.wait(30)
        finally:
            if proc.poll() is None:
                proc.kill()
                proc.wait(30)
        release.set()
        proc, url = _start_serve(config, db, log)
        try:
            assert delivered.wait(30), log.read_text()
            with httpx.Client(base_url=url, timeout=30) as client:
                actions = client.get("/health").status_code
            assert actions == 200
        finally:
            proc.send_signal(signal.SIGTERM)
            proc.wait(30)
        received = triggers_of(peer)
        assert len(received) == 2  # the interrupted call and the resumed one
        assert {r.headers["idempotency-key"] for r in received} == {KEY}
        assert "event=actuator.resumed deliveries=" in log.read_text(), log.read_text()[-2000:]
        pw = Phasewatch.build(parse_config(config.read_text(), "live.yaml"), db_path=db,
                              clock=SystemClock(), sinks={})
        try:
            assert pw.actuator is not None
            rows = [r for r in pw.actuator.store.triggers() if r.phase == "phase4"]
            assert [(r.state, r.attempts) for r in rows] == [("succeeded", 1)]
            sent = [i for i in pw.report_sections()["triggers"] if i["phase"] == "phase4"]
            assert [i["outcome"] for i in sent] == ["succeeded"]
        finally:
            pw.close()



def test_bench_actuator_quick_runs() -> None:
    result = subprocess.run(
        [sys.executable, str(ROOT / "bench" / "actuator.py"), "--quick"],
        capture_output=True, text=True, timeout=600, cwd=ROOT,
    )
    assert result.returncode == 0, result.stderr
    runs = [line.split()[0] for line in result.stdout.splitlines() if line.startswith("    ")]
    assert runs == ["a1", "a2", "a2-busy"], result.stdout
    assert "(b) in process" in result.stdout
    assert "every run: triggers missing 0, duplicates 0" in result.stdout, result.stdout
