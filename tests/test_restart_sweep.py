"""Phasewatch restarted in the middle of an incident (a deploy of phasewatch, a Cloud Run
instance replaced) tells the on-call person what it would have told without the restart.

Each test runs a whole phasewatch on a fake clock, alerting a PagerDuty and a Slack webhook
served locally, restarts it (a new process on the same store) mid-incident, and counts what
PagerDuty accepted against the same night without the restart.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest

from monitor.actuator.simulated import simulated
from monitor.app.phasewatch import Phasewatch
from monitor.app.sim.replay import SimulatedWorld
from monitor.clock import FakeClock
from monitor.events import Event
from tests.actuator_support import nba_config, rig
from tests.factories import make_event
from tests.test_alerts_channels import PagerDutyFake
from tests.test_alerts_support import Peer
from tests.test_infra_sweep import START, Night, at, blind_night, peers, posts

__all__ = ["peers"]  # the fixture

PRECOMPUTE = "nba-phase4-precompute-processors"


def flapping_night(tmp_path: Path, peers: tuple[Peer, Peer, PagerDutyFake],
                   monkeypatch: pytest.MonkeyPatch, restart_at: float | None) -> list[str]:
    """The precompute service down 4 min, up 3 min, from 07:05 to 08:15, then up; with
    ``restart_at`` phasewatch restarts at the first recovery from that minute on. What
    PagerDuty accepted about the service: its event actions, in order."""
    hook, pd_peer, _ = peers
    tmp_path.mkdir()
    clock, world = FakeClock(START), SimulatedWorld()
    urls = f"{pd_peer.url}/v2/enqueue", f"{hook.url}/hook"
    night = Night(tmp_path / "pw.db", *urls, monkeypatch, clock=clock, world=world)
    try:
        for down in range(5, 75, 7):
            night.until(at(down))
            night.health(PRECOMPUTE, "fail")
            night.until(at(down + 4))
            night.health(PRECOMPUTE, "pass")
            if restart_at is not None and down + 4 >= restart_at:
                night.close()
                night = Night(tmp_path / "pw.db", *urls, monkeypatch, clock=clock, world=world)
                restart_at = None
        night.until(at(150))
    finally:
        night.close()
    return [e["event_action"] for e in pd_peer.accepted() if PRECOMPUTE in e["dedup_key"]]


def test_a_restart_while_a_service_flaps_pages_no_more_than_without_it(
    tmp_path: Path, peers: tuple[Peer, Peer, PagerDutyFake], monkeypatch: pytest.MonkeyPatch,
) -> None:
    """Without a restart: the first outage paged and resolved, then one "flapping" page held
    until the service has passed for the flap window. A restart at 07:41, with the flapping
    page open, must not forget that the service flaps.
    Measured before the fix: 4 pages and 4 resolves (the restarted process resolved the
    flapping page at the next recovery, paged the next outage as new, resolved it, and only
    then saw the flapping again)."""
    assert flapping_night(tmp_path / "a", peers, monkeypatch, None) == [
        "trigger", "resolve", "trigger", "resolve"]
    peers[1].requests.clear()
    peers[1].statuses.clear()
    assert flapping_night(tmp_path / "b", peers, monkeypatch, 40) == [
        "trigger", "resolve", "trigger", "resolve"]


PROC = "player_daily_cache"
ERROR = "Traceback (most recent call last):\n  ...\nKeyError: 'minutes_played'"


def test_a_failure_republished_after_a_restart_is_not_another_attempt(
    tmp_path: Path, peers: tuple[Peer, Peer, PagerDutyFake], monkeypatch: pytest.MonkeyPatch,
) -> None:
    """player_daily_cache fails 9 times with one error, each a new invocation; phasewatch
    restarts; the producer re-publishes the 9th failure (a new event id, the same
    invocation), as the redelivery storm of the first sweep did without a restart. Still 9
    attempts: nothing is paged. The real 10th attempt then pages once ("10 times in a row").
    Measured before the fix: the re-published failure counted as the 10th attempt and paged
    the deterministic failure (the restarted process had forgotten which invocation it
    counted last)."""
    hook, pd_peer, _ = peers
    urls = f"{pd_peer.url}/v2/enqueue", f"{hook.url}/hook"
    clock = FakeClock(START)

    def fail(night: Night, attempt: int) -> None:
        stamp = clock.now().isoformat()
        night.pw.collector.ingest([make_event(
            "phase4", "failed", stamp, PROC, run_date="2026-01-17", mode="overnight",
            invocation_id=f"inv-{attempt}", error=ERROR)])

    night = Night(tmp_path / "pw.db", *urls, monkeypatch, clock=clock)
    try:
        for attempt in range(1, 10):
            fail(night, attempt)
            night.until(clock.now() + timedelta(minutes=2))
        night.close()
        night = Night(tmp_path / "pw.db", *urls, monkeypatch, clock=clock)
        fail(night, 9)  # re-published
        night.until(clock.now() + timedelta(minutes=5))
        assert not [e for e in pd_peer.accepted() if "deterministic_failure" in e["dedup_key"]]
        fail(night, 10)
        night.until(clock.now() + timedelta(minutes=5))
    finally:
        night.close()
    pages = [e for e in pd_peer.accepted() if "deterministic_failure" in e["dedup_key"]]
    assert [e["event_action"] for e in pages] == ["trigger"]
    assert "10 times in a row" in pages[0]["payload"]["summary"]


@pytest.mark.parametrize("restart_at", [20, 50])
def test_a_restart_while_phasewatch_is_blind_pages_once_and_then_the_real_outage(
    tmp_path: Path, peers: tuple[Peer, Peer, PagerDutyFake], monkeypatch: pytest.MonkeyPatch,
    restart_at: float,
) -> None:
    """The blind night of the infrastructure sweep (no probe answered 07:05-07:45, the
    coordinator really down 07:30-08:30), with phasewatch restarted while blind (07:20) or
    while the coordinator's outage is open (07:50): PagerDuty gets what it gets without a
    restart, once each."""
    _, pd_peer, pd = peers
    blind_night(tmp_path, peers, monkeypatch, coordinator_down=True, restart_at=restart_at)
    assert [(e["event_action"], e["dedup_key"].split(":")[0]) for e in pd_peer.accepted()] == [
        ("trigger", "probes_unreachable"), ("resolve", "probes_unreachable"),
        ("trigger", "service_unhealthy"), ("resolve", "service_unhealthy")]
    assert pd.open == {}


def test_a_stalled_batch_recovered_before_a_restart_is_not_recovered_again_after_it(
    tmp_path: Path,
) -> None:
    """A prediction batch at 96/100 goes quiet; phasewatch asks the coordinator to check it
    (check_stalled), restarts, and an hour passes with no new progress: the recovery is not
    repeated (it waits for activity since the recovery, as without a restart)."""
    db = tmp_path / "pw.db"
    with rig(db=db) as r:
        def batch(done: int, status: str = "progress") -> None:
            r.ingest("phase5", status, "prediction-worker", run_date="2026-01-17",
                     batch_id="b1", done=done, total=100)

        batch(0, "started")
        for done in (40, 80, 96):
            r.clock.advance(120)
            batch(done)
        r.tick_for(11 * 60)
        assert [s.request.action for s in r.sent()] == ["check_stalled"]
        r.pw.close()
        probe, _, checks = simulated(r.world)
        r.pw = Phasewatch.build(nba_config(), db_path=db, clock=r.clock, probe=probe,
                                sinks={"http": r.sink, "pubsub": r.sink, "log": r.sink},
                                checks=checks)
        r.tick_for(3600)
        assert [s.request.action for s in r.sent()] == ["check_stalled"]


WORKER = "prediction-worker"


def test_a_retry_storm_straddling_a_restart_is_told_when_it_would_be_without_it(
    tmp_path: Path, peers: tuple[Peer, Peer, PagerDutyFake], monkeypatch: pytest.MonkeyPatch,
) -> None:
    """The prediction worker crash-loops, started every 30 s; phasewatch restarts after the
    8th start. Ideal: the storm is told at the 11th start, as without the restart (more than
    10 starts in 10 min). Measured before the fix: the restarted process had forgotten the
    starts it counted and told the storm only at the 19th start, 5 min later, while the
    automated re-triggers the storm should have stopped went on."""
    hook, pd_peer, _ = peers
    urls = f"{pd_peer.url}/v2/enqueue", f"{hook.url}/hook"
    clock = FakeClock(START)
    night = Night(tmp_path / "pw.db", *urls, monkeypatch, clock=clock)
    told_at: list[int] = []
    try:
        for start in range(1, 25):
            if start == 9:
                night.close()
                night = Night(tmp_path / "pw.db", *urls, monkeypatch, clock=clock)
            night.pw.collector.ingest(worker(clock, start))
            night.until(clock.now() + timedelta(seconds=30))
            if not told_at and storm_told(hook):
                told_at.append(start)
    finally:
        night.close()
    assert told_at == [11]
    assert len(storm_told(hook)) == 1


class Killed(BaseException):
    """``kill -9`` between storing a batch and judging it (no handler runs)."""


def killed(*args: object, **kwargs: object) -> Any:
    """Put in place of a step: the process dies there."""
    raise Killed


def attempt(clock: FakeClock, number: int, status: str = "failed", *,
            invocation: bool = True) -> list[Event]:
    """player_daily_cache's attempt ``number`` of tonight's run: failed with ERROR, or another
    status; with an invocation id unless ``invocation`` is False."""
    return [make_event("phase4", status, clock.now().isoformat(), PROC, run_date="2026-01-17",
                       mode="overnight", event_id=f"e-{number}-{status}",
                       **({"invocation_id": f"inv-{number}"} if invocation else {}),
                       **({"error": ERROR} if status == "failed" else {}))]


def worker(clock: FakeClock, number: int, status: str = "started") -> list[Event]:
    """The crash-looping prediction worker's start (or other status) ``number``."""
    return [make_event("phase5", status, clock.now().isoformat(), WORKER, run_date="2026-01-17",
                       mode="overnight", invocation_id=f"inv-{number}",
                       event_id=f"{status}-{number}")]


def fail_until(night: Night, clock: FakeClock, last: int, *, invocation: bool = True) -> None:
    """Attempts 1 to ``last``, each failing, 2 min apart."""
    for number in range(1, last + 1):
        night.pw.collector.ingest(attempt(clock, number, invocation=invocation))
        night.until(clock.now() + timedelta(minutes=2))


def storm_told(hook: Peer) -> list[str]:
    """The Slack messages about a retry storm."""
    return [x for x in posts(hook) if "retry storm" in x]


def pages(pd_peer: Peer, kind: str) -> list[dict[str, Any]]:
    """PagerDuty's accepted events of alerts of ``kind``."""
    return [e for e in pd_peer.accepted() if kind in e["dedup_key"]]


def tenth_failure_killed(
    tmp_path: Path, peers: tuple[Peer, Peer, PagerDutyFake], monkeypatch: pytest.MonkeyPatch,
    kill: Callable[[Night], None], restarted: Callable[[Night], None] = lambda night: None,
    db: str | None = None,
) -> tuple[list[dict[str, Any]], list[str]]:
    """player_daily_cache fails 9 times with one error; ``kill`` puts the kill in place and
    its 10th failure kills phasewatch; ``restarted`` looks at the restarted process; the
    producer retries the 10th (a duplicate), then the processor succeeds. PagerDuty's
    deterministic_failure events, and the Slack messages about the 10th failure.
    ``db``: the store (an SQLite file in ``tmp_path`` by default)."""
    hook, pd_peer, _ = peers
    urls = f"{pd_peer.url}/v2/enqueue", f"{hook.url}/hook"
    clock = FakeClock(START)
    store: Path | str = tmp_path / "pw.db" if db is None else db
    night = Night(store, *urls, monkeypatch, clock=clock)
    try:
        fail_until(night, clock, 9)
        kill(night)
        with pytest.raises(Killed):
            night.pw.collector.ingest(attempt(clock, 10))
        # Killed: the process gives nothing back (a shared store's leader lease runs on).
        monkeypatch.setattr(night.pw.cluster, "close", lambda: None)
        night.close()
        night = Night(store, *urls, monkeypatch, clock=clock)
        restarted(night)
        assert night.pw.collector.ingest(attempt(clock, 10)).duplicates == 1  # the retry
        night.until(clock.now() + timedelta(minutes=5))
        night.pw.collector.ingest(attempt(clock, 11, "succeeded"))
        night.until(clock.now() + timedelta(minutes=5))
    finally:
        night.close()
    return (pages(pd_peer, "deterministic_failure"),
            [x for x in posts(hook) if "10 times in a row" in x])


def test_a_failure_stored_just_before_a_kill_is_judged_after_the_restart(
    tmp_path: Path, peers: tuple[Peer, Peer, PagerDutyFake], monkeypatch: pytest.MonkeyPatch,
) -> None:
    """player_daily_cache fails 10 times with one error; the 10th is stored, and phasewatch is
    killed before it judges it (the crash suite's lost page: the answer never left, the
    producer retries and is told "duplicate"). After the restart the stored 10th failure is
    judged: paged once ("10 times in a row"), and resolved by the success.
    Measured before the fix: nothing paged at all (the restart replayed the failure in
    silence and the retry was a duplicate, judged by no one)."""
    paged, told = tenth_failure_killed(
        tmp_path, peers, monkeypatch,
        lambda night: monkeypatch.setattr(night.pw.collector, "_dispatch", killed))
    assert [e["event_action"] for e in paged] == ["trigger", "resolve"]
    assert "10 times in a row" in paged[0]["payload"]["summary"]
    assert len(told) == 2, told  # the page and its resolve
    assert told[0].startswith("CRITICAL") and "RESOLVED" in told[1].upper(), told


def test_a_failure_stored_just_before_a_kill_is_judged_after_the_restart_on_postgresql(
    tmp_path: Path, peers: tuple[Peer, Peer, PagerDutyFake], monkeypatch: pytest.MonkeyPatch,
    postgres_url: str,
) -> None:
    """The same on PostgreSQL, the store of the Cloud Run deploy: the killed process's leader
    lease runs on after the kill, so the new process starts as a follower, leads once the
    lease runs out, and then judges what the kill left. Measured before the fix: nothing
    paged at all (the new process learned the stored 10th failure in silence)."""
    paged, told = tenth_failure_killed(
        tmp_path, peers, monkeypatch,
        lambda night: monkeypatch.setattr(night.pw.collector, "_dispatch", killed),
        db=postgres_url)
    assert [e["event_action"] for e in paged] == ["trigger", "resolve"]
    assert "10 times in a row" in paged[0]["payload"]["summary"]
    assert len(told) == 2, told
    assert told[0].startswith("CRITICAL") and "RESOLVED" in told[1].upper(), told


def test_a_guard_stored_just_before_a_kill_still_pages_after_the_restart(
    tmp_path: Path, peers: tuple[Peer, Peer, PagerDutyFake], monkeypatch: pytest.MonkeyPatch,
) -> None:
    """player_daily_cache fails 10 times with one error; the 10th trips the deterministic
    failure guard, which is stored, and phasewatch is killed before its alert is fired.
    After the restart the guard is active (it blocks the retries) and it is paged once, then
    resolved by the success. Measured before the fix: no page at all (the stored batch was
    judged again after the restart, and the guard, active already, fired nothing)."""
    def kill(night: Night) -> None:
        assert night.pw.actuator is not None
        notifier = night.pw.actuator.ctx.notifier
        fire = notifier.fire

        def fire_killed(kind: str, *args: object, **kwargs: object) -> str:
            if kind == "deterministic_failure":
                raise Killed
            return fire(kind, *args, **kwargs)  # type: ignore[arg-type]

        monkeypatch.setattr(notifier, "fire", fire_killed)

    def restarted(night: Night) -> None:
        assert night.pw.actuator is not None
        assert [g.kind for g in night.pw.actuator.ctx.guards.active()] == ["deterministic_failure"]

    paged, told = tenth_failure_killed(tmp_path, peers, monkeypatch, kill, restarted)
    assert [e["event_action"] for e in paged] == ["trigger", "resolve"]
    assert "10 times in a row" in paged[0]["payload"]["summary"]
    assert len(told) == 2, told  # the page and its resolve


def test_a_start_stored_just_before_a_kill_counts_once_in_the_retry_storm(
    tmp_path: Path, peers: tuple[Peer, Peer, PagerDutyFake], monkeypatch: pytest.MonkeyPatch,
) -> None:
    """The crash-looping worker of the test above, phasewatch killed after storing its 9th
    start and before judging it. The storm is still told at the 11th start: the 9th counts
    once. Measured before the fix: at the 10th (the restart relearned the stored 9th start
    into the storm window, then judged it again)."""
    hook, pd_peer, _ = peers
    urls = f"{pd_peer.url}/v2/enqueue", f"{hook.url}/hook"
    clock = FakeClock(START)
    night = Night(tmp_path / "pw.db", *urls, monkeypatch, clock=clock)
    told_at: list[int] = []


    try:
        for number in range(1, 25):
            if number == 9:
                monkeypatch.setattr(night.pw.collector, "_dispatch", killed)
                with pytest.raises(Killed):
                    night.pw.collector.ingest(worker(clock, number))
                night.close()
                night = Night(tmp_path / "pw.db", *urls, monkeypatch, clock=clock)
                assert night.pw.collector.ingest(worker(clock, number)).duplicates == 1  # the retry
            else:
                night.pw.collector.ingest(worker(clock, number))
            night.until(clock.now() + timedelta(seconds=30))
            if not told_at and storm_told(hook):
                told_at.append(number)
    finally:
        night.close()
    assert told_at == [11]
    assert len(storm_told(hook)) == 1


def test_a_failure_judged_just_before_a_kill_counts_once_without_an_invocation_id(
    tmp_path: Path, peers: tuple[Peer, Peer, PagerDutyFake], monkeypatch: pytest.MonkeyPatch,
) -> None:
    """player_daily_cache fails with one error, its events carrying no invocation id;
    phasewatch is killed after judging the 9th failure and before marking it judged, so the
    restart judges it again. Still 9 attempts: nothing is paged until the real 10th, once.
    Measured before the fix: the 9th counted twice and paged "10 times in a row" at once."""
    hook, pd_peer, _ = peers
    urls = f"{pd_peer.url}/v2/enqueue", f"{hook.url}/hook"
    clock = FakeClock(START)
    night = Night(tmp_path / "pw.db", *urls, monkeypatch, clock=clock)
    try:
        fail_until(night, clock, 8, invocation=False)
        monkeypatch.setattr(night.pw.store, "mark_judged", killed)
        with pytest.raises(Killed):
            night.pw.collector.ingest(attempt(clock, 9, invocation=False))
        night.close()
        night = Night(tmp_path / "pw.db", *urls, monkeypatch, clock=clock)
        assert night.pw.collector.ingest(attempt(clock, 9, invocation=False)).duplicates == 1  # the retry
        night.until(clock.now() + timedelta(minutes=5))
        assert not pages(pd_peer, "deterministic_failure")
        night.pw.collector.ingest(attempt(clock, 10, invocation=False))
        night.until(clock.now() + timedelta(minutes=5))
    finally:
        night.close()
    paged = pages(pd_peer, "deterministic_failure")
    assert [e["event_action"] for e in paged] == ["trigger"]
    assert "10 times in a row" in paged[0]["payload"]["summary"]


def test_a_guard_cleared_just_before_a_kill_still_resolves_its_alert(
    tmp_path: Path, peers: tuple[Peer, Peer, PagerDutyFake], monkeypatch: pytest.MonkeyPatch,
) -> None:
    """The prediction worker storms (told once); it then succeeds, which clears the storm
    guard, and phasewatch is killed after the guard is cleared in the store and before its
    alert is resolved. After the restart the success is judged again: the storm's alert
    resolves, once. Measured before the fix: the restart found no guard to clear, and the
    storm's alert stayed open (reminded) for good."""
    hook, pd_peer, _ = peers
    urls = f"{pd_peer.url}/v2/enqueue", f"{hook.url}/hook"
    clock = FakeClock(START)


    night = Night(tmp_path / "pw.db", *urls, monkeypatch, clock=clock)
    try:
        for number in range(1, 13):
            night.pw.collector.ingest(worker(clock, number))
            night.until(clock.now() + timedelta(seconds=30))
        assert len(storm_told(hook)) == 1
        assert night.pw.actuator is not None
        monkeypatch.setattr(night.pw.actuator.ctx.store, "audit", killed)
        with pytest.raises(Killed):
            night.pw.collector.ingest(worker(clock, 12, "succeeded"))
        night.close()
        night = Night(tmp_path / "pw.db", *urls, monkeypatch, clock=clock)
        night.until(clock.now() + timedelta(minutes=30))
        assert night.pw.actuator is not None and night.pw.actuator.ctx.guards.active() == []
    finally:
        night.close()
    storm = storm_told(hook)
    assert len(storm) == 2 and "RESOLVED" in storm[1].upper(), storm
