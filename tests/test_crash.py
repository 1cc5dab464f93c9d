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

ROOT = Path(__file__).resolve().parent.parent


def test_kill_9_rounds_under_load_lose_and_double_nothing() -> None:
    result = subprocess.run([sys.executable, str(ROOT / "bench" / "crash.py"), "--quick", "--json"],
                            capture_output=True, text=True, timeout=300, cwd=ROOT)
    assert result.stdout, result.stderr[-3000:]
    got = json.loads(result.stdout)
    assert got["rounds"] == 5
    assert got["acknowledged"] > 300 and got["via_push"] > 100
    assert (got["lost"], got["stored_twice"], got["accepted_twice"], got["stored_not_acknowledged"]) == (0, 0, 0, 0)
    triggers, alerts = got["triggers"], got["alerts"]
    assert triggers["expected"] > 10 and triggers["missing"] == 0, triggers
    assert triggers["double_sends"] == 0, triggers["details"]
    assert got["triggers_state"] == {"succeeded": triggers["expected"]}
    assert alerts["expected"] >= 8 and alerts["missing"] == 0, alerts
    assert alerts["double_sends"] == 0, alerts["details"]
    assert got["outbox"].keys() == {"delivered"}
    assert result.returncode == 0 and got["ok"]
