"""Incidents of the things around the pipeline, as the person on call meets them at 3 a.m.

The first sweep (tests/test_incident_sweep.py) covered the pipeline's own failures; these
cover its surroundings: the alert channels themselves down or rate limiting, a trigger
target refusing phasewatch's identity, a target that says 200 and starts nothing, the event
store unavailable, forged Pub/Sub pushes, and phasewatch killed in the middle of an open
incident. Each drives the whole stack on a fake clock and counts what each channel was told
(the real channel clients against local servers that speak Slack's and PagerDuty's wire
protocols).
"""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
import yaml

from monitor.actuator.simulated import simulated
from monitor.app.phasewatch import Phasewatch
from monitor.app.sim.replay import HealthLine, SimulatedWorld
from monitor.clock import FakeClock
from monitor.config import Config, default_config_text
from tests.test_alerts_channels import SECRETS, PagerDutyFake
from tests.test_alerts_support import Peer, ok, serve

START = datetime(2026, 1, 18, 7, 0, tzinfo=UTC)  # 02:00 ET: nothing of the run is due


def at(minutes: float) -> datetime:
    return START + timedelta(minutes=minutes)


class Night:
    """A whole phasewatch on a fake clock with a simulated world, alerting a PagerDuty and a
    Slack webhook served locally."""

    def __init__(self, db: Path, pd_url: str, hook_url: str, monkeypatch: pytest.MonkeyPatch,
                 start: datetime = START, world: SimulatedWorld | None = None,
                 clock: FakeClock | None = None) -> None:
        monkeypatch.setenv("PD_ROUTING_KEY", SECRETS["PD_ROUTING_KEY"])
        monkeypatch.setenv("SLACK_WEBHOOK_URL", hook_url)
        data = yaml.safe_load(default_config_text())
        data["alerting"] = {**data.get("alerting", {}), "channels": [
            {"kind": "pagerduty", "name": "pagerduty", "routing_key_env": "PD_ROUTING_KEY",
             "url": pd_url},
            {"kind": "slack", "name": "slack", "webhook_url_env": "SLACK_WEBHOOK_URL"}]}
        self.config = Config.model_validate(data)
        self.clock = clock or FakeClock(start)
        self.world = world or SimulatedWorld()
        probe, sinks, checks = simulated(self.world)
        self.pw = Phasewatch.build(self.config, db_path=db, clock=self.clock, probe=probe,
                                   sinks=sinks, checks=checks)

    def health(self, service: str, status: str) -> None:
        self.world.apply(HealthLine.model_validate(
            {"type": "health", "service": service, "status": status,
             "timestamp": self.clock.now().isoformat()}, strict=False))

    def until(self, when: datetime, step_s: float = 30.0) -> None:
        while self.clock.now() + timedelta(seconds=step_s) <= when:
            self.clock.advance(step_s)
            self.pw.tick(self.clock.now())
        self.clock.set(when)

    def close(self) -> None:
        self.pw.close()


@pytest.fixture
def peers() -> Iterator[tuple[Peer, Peer, PagerDutyFake]]:
    pd = PagerDutyFake()
    with serve(ok(200, "ok")) as hook, serve(pd) as pd_peer:
        yield hook, pd_peer, pd


def pages(pd_peer: Peer) -> list[tuple[str, str]]:
    """(event_action, alert name) of every event PagerDuty accepted."""
    return [(e["event_action"], e["dedup_key"].split(":")[0]) for e in pd_peer.accepted()]


def posts(hook: Peer) -> list[str]:
    """The text of every Slack message accepted."""
    return [b["text"] for b in hook.accepted("/hook")]


# --------------------------------------------------------------------------- channels down


def test_channels_down_for_thirty_minutes_tell_each_problem_once_and_nothing_stale(
    tmp_path: Path, peers: tuple[Peer, Peer, PagerDutyFake], monkeypatch: pytest.MonkeyPatch,
) -> None:
    """PagerDuty answers 503 and Slack 429 (Retry-After 60) from 07:00 to 07:35 UTC. The
    coordinator is down 07:05-07:20 (over while nobody could be told); the worker goes down
    at 07:25 and stays down until 08:00 (still down when the channels come back).
    Ideal: the worker is paged once after the channels recover and resolved once at 08:00,
    in that order; the coordinator's outage, over before anybody could be told, does not
    page as if it were live: Slack gets it once, as resolved, and PagerDuty opens no
    incident for it (its resolve of a dedup key never triggered is a no-op there).
    Measured before the fix: at 07:35 both channels got the coordinator's CRITICAL trigger
    (PagerDuty opened an incident for an outage over 15 min earlier), then its resolve."""
    hook, pd_peer, pd = peers
    down = (503, {}, "unavailable")
    pd_peer.default = lambda request: down
    hook.default = lambda request: (429, {"Retry-After": "60"}, "rate_limited")
    night = Night(tmp_path / "pw.db", f"{pd_peer.url}/v2/enqueue", f"{hook.url}/hook", monkeypatch)
    try:
        night.until(at(5))
        night.health("prediction-coordinator", "fail")
        night.until(at(20))
        night.health("prediction-coordinator", "pass")
        night.until(at(25))
        night.health("prediction-worker", "fail")
        night.until(at(35))
        assert pd_peer.accepted() == [] and hook.accepted() == []
        assert 503 in pd_peer.statuses and 429 in hook.statuses
        pd_peer.default, hook.default = pd, ok(200, "ok")
        night.until(at(60))
        night.health("prediction-worker", "pass")
        night.until(at(90))
    finally:
        night.close()
    worker_key = "service_unhealthy:service=prediction-worker"
    assert [e["event_action"] for e in pd_peer.accepted() if e["dedup_key"] == worker_key] == [
        "trigger", "resolve"]
    assert [e["event_action"] for e in pd_peer.accepted() if e["dedup_key"] != worker_key] == [
        "resolve"]
    assert dict(pd.opened) == {worker_key: 1} and dict(pd.closed) == {worker_key: 1}
    assert pd.open == {}
    texts = posts(hook)
    coordinator = [x for x in texts if "prediction-coordinator" in x]
    worker = [x for x in texts if "prediction-worker" in x]
    assert len(coordinator) == 1 and coordinator[0].startswith("RESOLVED")
    assert len(worker) == 2 and worker[0].startswith("CRITICAL") and worker[1].startswith("RESOLVED")
