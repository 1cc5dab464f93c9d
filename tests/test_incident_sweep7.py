"""A seventh sweep of incidents phasewatch never saw, of the classes in ../shared/incidents.md.

(draft)
"""

from __future__ import annotations

from datetime import datetime, timedelta
from itertools import pairwise
from pathlib import Path
from typing import Any

import pytest

from monitor.events import Event
from tests.factories import make_event
from tests.test_alerts_channels import PagerDutyFake
from tests.test_alerts_support import Peer
from tests.test_incident_sweep3 import channels, feed
from tests.test_incident_sweep4 import Peers
from tests.test_infra_sweep import Night, at, pages, phase4_done, posts

__all__ = ["channels"]
from tests.test_incident_sweep5 import triggers

# --------------------------------------------------------------------------- quota


def phase5_ran(m: float) -> list[Event]:
    """The overnight run's Phases 5 and 6 run from ``m`` minutes past the infra sweep's START."""
    run = {"run_date": "2026-01-17", "mode": "overnight"}
    return [make_event(phase, status, at(m + dm).isoformat(), processor, **run)
            for phase, status, dm, processor in (
                ("phase5", "started", 0, "prediction-coordinator"),
                ("phase5", "succeeded", 1, "prediction-coordinator"),
                ("phase5", "started", 1, "prediction-worker"),
                ("phase5", "succeeded", 12, "prediction-worker"),
                ("phase6", "started", 14, None), ("phase6", "succeeded", 17, None))]


@pytest.mark.parametrize("status", [429, 503])
def test_a_target_over_quota_saying_when_to_come_back_is_triggered_once_and_pages_nobody(
    tmp_path: Path, channels: Peers, monkeypatch: pytest.MonkeyPatch, status: int,
) -> None:
    """02:10 ET the overnight run's Phase 4 completes and phasewatch calls the coordinator's
    /start, which is over its quota (Cloud Run's per-minute request quota, used up by the
    morning's retries of another service; or its instances all busy): it answers 429 (503)
    with `Retry-After: 300` until 02:22, then accepts. Ideal: phasewatch waits as long as
    the target asks between calls (at most 4 calls, 5 min apart, all with the first call's
    Idempotency-Key), Phase 5 is triggered once, nobody paged and nothing told: the target
    said when to come back and took the trigger 15 min after it was decided, within the
    escalation's 15 min. Measured before the fix: the Retry-After was not read; the
    retries followed the backoff from 5 s: 11 calls in 13 min, and the 5th refusal (02:10:40)
    paged "trigger not delivered" (critical; resolved 12 min later when the 11th call was
    accepted): a page for a target that had said when to come back."""
    hook, pd_peer, pd = channels
    quota = [True]

    def answer(request: Any) -> tuple[int, dict[str, str], Any]:
        if quota[0]:
            return status, {"Retry-After": "300"}, "Quota exceeded for quota metric 'Requests'"
        return 200, {}, {"status": "started"}

    with phase4_done(tmp_path, channels, monkeypatch, answer) as (night, target):
        night.until(at(22), step_s=5)
        quota[0] = False
        night.until(at(26), step_s=5)
        feed(night, phase5_ran(27))
        night.until(at(120), step_s=30)
        audit = night.pw.actuator.store.audit_rows(kinds=("trigger",))  # type: ignore[union-attr]
    calls = [a for a in audit if a["phase"] == "phase5"]
    assert [a["outcome"] for a in calls] == ["failed"] * 3 + ["succeeded"]
    assert target.statuses == [status] * 3 + [200]
    assert {r.headers["Idempotency-Key"] for r in target.requests} == {"nba:2026-01-17:overnight:phase5"}
    times = [datetime.fromisoformat(a["time"]) for a in calls]
    assert all(b - a >= timedelta(seconds=300) for a, b in pairwise(times))
    assert pages(pd_peer) == [] and pd.opened == {}
    assert posts(hook) == []
