"""A real Alertmanager (Debian package) receives phasewatch's alerts and sends the grouped
notification to a local webhook. Alertmanager runs on real time, so this test polls it
with short real waits (the one place in the alerts tests that does)."""

from __future__ import annotations

import socket
import subprocess
import time
from collections.abc import Callable, Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import httpx
import pytest

from alerts.config import AlertingConfig
from alerts.engine import AlertEngine
from monitor.clock import FakeClock
from monitor.store.sqlite import SQLiteStore
from tests.conftest import require_binary
from tests.test_alerts_support import Peer, make_alert, ok, serve

RUN = {"pipeline": "nba", "run_date": "2026-01-17", "mode": "overnight"}


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def wait_for(predicate: Callable[[], Any], timeout_s: float = 20.0) -> Any:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        value = predicate()
        if value:
            return value
        time.sleep(0.2)
    raise AssertionError("timed out waiting for Alertmanager")


@pytest.fixture
def alertmanager(tmp_path: Path) -> Iterator[tuple[str, Peer]]:
    binary = require_binary("prometheus-alertmanager")
    with serve(ok(200, "ok")) as hook:
        config = tmp_path / "alertmanager.yml"
        config.write_text(f"""
route:
  receiver: hook
  group_by: [pipeline, run_date]
  group_wait: 1s
  group_interval: 1s
  repeat_interval: 1h
receivers:
  - name: hook
    webhook_configs:
      - url: {hook.url}/am
        send_resolved: true
""")
        port = free_port()
        url = f"http://127.0.0.1:{port}"
        log = (tmp_path / "am.log").open("w")
        proc = subprocess.Popen(
            [binary, f"--config.file={config}", f"--storage.path={tmp_path / 'am-data'}",
             f"--web.listen-address=127.0.0.1:{port}", "--cluster.listen-address="],
            stdout=log, stderr=subprocess.STDOUT,
        )
        try:
            def ready() -> bool:
                try:
                    return httpx.get(f"{url}/-/ready", timeout=1).status_code == 200
                except httpx.HTTPError:
                    return False
            wait_for(ready)
            yield url, hook
        finally:
            proc.terminate()
            proc.wait(10)
            log.close()


def test_alertmanager_groups_phasewatch_alerts(alertmanager: tuple[str, Peer], tmp_path: Path) -> None:
    url, hook = alertmanager
    db = SQLiteStore(tmp_path / "pw.db")
    cfg = AlertingConfig.model_validate({
        "channels": [{"kind": "alertmanager", "name": "am", "url": url}], "group_wait_s": 0,
    })
    clock = FakeClock(datetime.now(UTC))  # Alertmanager judges endsAt by its real clock
    engine = AlertEngine.build(cfg, db=db, clock=clock, secret=lambda name: None)
    try:
        deadline = make_alert("deadline", clock.now(), "warning", phase="phase4", **RUN,
                              summary="phase4 missed its 07:00 deadline")
        fresh = make_alert("freshness", clock.now(), "critical", phase="phase5", **RUN,
                           summary="predictions are 9 h old")
        engine.router.fire(deadline)
        engine.router.fire(fresh)
        engine.tick(clock.now())
        assert [r.status for r in engine.outbox.rows()] == ["delivered", "delivered"]

        [note] = wait_for(lambda: hook.bodies("/am"))
        assert note["status"] == "firing"
        assert note["groupLabels"] == {"pipeline": "nba", "run_date": "2026-01-17"}
        by_name = {a["labels"]["alertname"]: a for a in note["alerts"]}
        assert set(by_name) == {"deadline", "freshness"}
        assert by_name["freshness"]["labels"]["severity"] == "critical"
        assert by_name["deadline"]["annotations"]["summary"] == "phase4 missed its 07:00 deadline"
        assert by_name["deadline"]["annotations"]["phasewatch_key"] == deadline.key

        engine.router.resolve(deadline.key, clock.now())
        engine.router.resolve(fresh.key, clock.now())
        clock.advance(301)  # phasewatch's group_interval; the resolves carry endsAt = now
        engine.tick(clock.now())
        resolved = wait_for(lambda: [b for b in hook.bodies("/am") if b["status"] == "resolved"])
        assert {a["labels"]["alertname"] for a in resolved[0]["alerts"]} == {"deadline", "freshness"}
        active = httpx.get(f"{url}/api/v2/alerts", params={"active": "true"}).json()
        assert active == []
    finally:
        engine.close()
        db.close()
