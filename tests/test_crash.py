"""The crash suite's short profile: ``bench/crash.py --quick`` (5 ``kill -9`` rounds of a real
``phasewatch serve`` under load; the long profile is ``python bench/crash.py --rounds 20``).

Asserted: nothing acknowledged is lost, stored twice or accepted twice; every run got its
trigger and every alert its trigger and resolve notifications, on Slack and PagerDuty; no
second copy of a trigger or a notification without a kill between the two. Copies resent
after a crash mid-request are the documented at-least-once caveat: counted, not failed.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import httpx
import pytest

from alerts.channels.memory import MemoryChannel
from alerts.model import Alert
from monitor.actuator.sinks import MemorySink
from monitor.app.http.server import create_app, serving
from monitor.app.phasewatch import Phasewatch
from monitor.clock import FakeClock
from monitor.config import Config
from tests.conftest import missing_peer
from tests.postgres_server import postgres_bin

ROOT = Path(__file__).resolve().parent.parent


def test_serve_tells_a_restored_alert_before_its_first_request(
        nba_config: Config, clock: FakeClock, tmp_path: Path) -> None:
    """The suite found it: an alert fired just before a kill -9 and cleared by the first event
    after the restart was never told. serve now queues what is due before it takes a request."""
    def build(chat: MemoryChannel) -> Phasewatch:
        return Phasewatch.build(nba_config, db_path=tmp_path / "pw.db", clock=clock, channels=[chat],
                                sinks={"http": MemorySink(), "pubsub": MemorySink(), "log": MemorySink()})

    first = build(MemoryChannel("chat"))
    alert = Alert("deterministic_failure:processor=p2_odds_game_lines", "critical", "failed twice",
                  clock.now(), labels={"pipeline": "nba", "processor": "p2_odds_game_lines"})
    first.router.fire(alert)  # then killed: no tick told it
    first.close()
    clock.advance(300)
    chat = MemoryChannel("chat")
    pw = build(chat)
    try:
        with serving(create_app(pw, None)) as url:
            assert httpx.get(f"{url}/health", timeout=30).status_code == 200  # its first request
            pw.router.resolve(alert.key, clock.now())  # then the first event clears the alert
            clock.advance(600)
            pw.alerting.tick(clock.now())
        assert [n.action for n in chat.sent] == ["trigger", "resolve"]
    finally:
        pw.close()


@pytest.mark.parametrize("store", ["sqlite", "postgresql"])
def test_kill_9_rounds_under_load_lose_and_double_nothing(store: str) -> None:
    """On PostgreSQL the restarted process follows until the killed one's lease (2 s) runs
    out, then judges what it left: before the leader kept the judged mark, alarms judged in
    that window were never paged, or paged and never resolved."""
    args = [sys.executable, str(ROOT / "bench" / "crash.py"), "--quick", "--json"]
    if store == "postgresql":
        if postgres_bin() is None:
            missing_peer("PostgreSQL is not installed (apt-get install postgresql)")
        args.append("--postgresql")
    result = subprocess.run(args, capture_output=True, text=True, timeout=300, cwd=ROOT)
    assert result.stdout, result.stderr[-3000:]
    got = json.loads(result.stdout)
    assert got["rounds"] == 5
    assert got["acknowledged"] > 300 and got["via_push"] > 100
    assert (got["lost"], got["stored_twice"], got["accepted_twice"], got["stored_not_acknowledged"]) == (0, 0, 0, 0)
    triggers, alerts = got["triggers"], got["alerts"]
    assert triggers["expected"] > 10 and triggers["missing"] == 0, triggers
    assert triggers["double_sends"] == 0, triggers["details"]
    assert got["triggers_state"] == {"succeeded": triggers["expected"]}
    # The details as one text: a dict in the message is cut short, and a missing copy's
    # line ("... never received") is what a failure needs to be read.
    assert alerts["expected"] >= 8 and alerts["missing"] == 0, "; ".join(
        [f"{k}={alerts[k]}" for k in ("expected", "received", "missing")] + alerts["details"])
    assert alerts["double_sends"] == 0, alerts["details"]
    assert alerts["left_open"] == 0, alerts["details"]
    assert got["outbox"].keys() == {"delivered"}
    assert result.returncode == 0 and got["ok"]
