"""Two phasewatch instances in one process on one PostgreSQL database (a fake clock times
their leases): who leads, following, one trigger per key, one delivery per notification,
deliveries of a dead instance taken over. tests/test_cluster.py runs real processes."""

from __future__ import annotations

import base64
from collections.abc import Iterator
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

import pytest

from alerts.channels.memory import MemoryChannel
from alerts.model import Alert
from monitor.actuator.simulated import simulated
from monitor.actuator.sinks import MemorySink
from monitor.app.http.api import Api
from monitor.app.http.server import create_app
from monitor.app.phasewatch import Phasewatch
from monitor.app.sim.replay import SimulatedWorld
from monitor.clock import FakeClock
from monitor.events import Event, event_to_json
from tests.actuator_support import COVERAGE, PHASE3_OVERNIGHT, nba_config, race
from tests.factories import make_event
from tests.test_service import Http

RUN = ("nba", "2026-01-17", "overnight")


@dataclass
class Pair:
    a: Phasewatch
    b: Phasewatch
    clock: FakeClock
    sink: MemorySink
    channels: tuple[MemoryChannel, MemoryChannel]

    def sent(self, phase: str) -> list[object]:
        return [s for s in self.sink.sent if s.request.phase == phase]

    def completion(self, name: str) -> object:
        """A Phase 3 processor's success, with its coverage figures (the Phase 4 coverage
        gate fails closed without them)."""
        self.clock.advance(60)
        return make_event("phase3", "succeeded", self.clock.now().isoformat(), name,
                          run_date=RUN[1], mode=RUN[2], **COVERAGE.get(name, {}))


@contextmanager
def pair(url: str) -> Iterator[Pair]:
    """Instance a (built first: it leads) and instance b, sharing a sink and a clock."""
    clock = FakeClock(datetime(2026, 1, 18, 6, tzinfo=UTC))
    world = SimulatedWorld()
    probe, _, checks = simulated(world)
    sink = MemorySink()
    channels = (MemoryChannel("pager"), MemoryChannel("pager"))
    with ExitStack() as stack:
        built = []
        for channel in channels:
            pw = Phasewatch.build(nba_config(), db_path=url, clock=clock, probe=probe,
                                  sinks={"http": sink, "pubsub": sink, "log": sink}, checks=checks,
                                  channels=[channel])
            stack.callback(pw.close)
            built.append(pw)
        yield Pair(built[0], built[1], clock, sink, channels)


def test_one_instance_leads_and_the_other_follows_its_run_state(postgres_url: str) -> None:
    with pair(postgres_url) as p:
        assert p.a.cluster.leading and not p.b.cluster.leading
        assert p.b.cluster.leader == p.a.cluster.instance
        # The completions land on both instances, the last one on the follower.
        for i, name in enumerate(PHASE3_OVERNIGHT):
            (p.b if i % 2 == 0 else p.a).collector.ingest([p.completion(name)])  # type: ignore[list-item]
        assert p.sent("phase4") == []  # the follower does not act; the leader has not looked
        assert p.a.follow() == 3
        assert len(p.sent("phase4")) == 1  # decided by the leader once it saw them all
        # The follower folds in all five once the leader's mark passed them, its own too.
        assert p.b.follow() == 5
        for pw in (p.a, p.b):
            run = pw.tracker.get(RUN)
            assert run is not None and run.phases["phase3"].completed_at is not None
        p.b.collector.ingest([p.completion(PHASE3_OVERNIGHT[0])])  # a late copy: no second one
        p.a.follow()
        assert len(p.sent("phase4")) == 1
        assert p.a.actuator is not None
        rows = [r for r in p.a.actuator.store.triggers() if r.phase == "phase4"]
        assert [(r.state, r.attempts) for r in rows] == [("succeeded", 1)]


def test_a_follower_learns_no_further_than_the_leaders_judged_mark(postgres_url: str) -> None:
    """b's own events are stored, not folded in, until the leader has judged them: a
    follower that learned them first would, on taking the lead, judge nothing of them."""
    with pair(postgres_url) as p:
        name = PHASE3_OVERNIGHT[0]
        p.b.collector.ingest([p.completion(name)])  # type: ignore[list-item]
        assert p.b.follow() == 0 and p.b.tracker.get(RUN) is None  # a has not judged it
        judged = p.b.store.judged()
        assert judged is not None and judged < p.b.store.position()
        assert p.a.follow() == 1
        assert p.b.store.judged() == p.b.store.position()
        assert p.b.follow() == 1
        run = p.b.tracker.get(RUN)
        assert run is not None and run.phases["phase3"].processors[name].status == "succeeded"
        # Counted once it is folded in, by the process that stored it.
        assert p.b.metrics.registry.get_sample_value("phasewatch_events_total", {
            "pipeline": "nba", "phase": "phase3", "processor": name, "status": "succeeded"}) == 1


def test_a_batch_the_dead_leader_stored_and_never_judged_is_judged_by_the_new_one(
    postgres_url: str,
) -> None:
    """player_daily_cache fails 10 times with one error; a (leading) stores the 10th and is
    killed before judging it. b takes the lead once a's lease runs out and judges it: the
    deterministic failure is paged once, by b. Measured before the fix: paged by no one (b
    learned the 10th failure in silence, as an event another process had judged)."""
    def failure(n: int) -> Event:
        p.clock.advance(60)
        return make_event("phase4", "failed", p.clock.now().isoformat(), "player_daily_cache",
                          run_date=RUN[1], mode=RUN[2], event_id=f"f-{n}",
                          invocation_id=f"inv-{n}", error="ValueError: column 'pts' is missing")

    def killed(*args: object, **kwargs: object) -> None:
        raise KeyboardInterrupt  # the process dies here (no handler runs)

    with pair(postgres_url) as p:
        for n in range(1, 10):
            p.a.collector.ingest([failure(n)])
            p.a.tick()
            p.b.tick()
        tenth = failure(10)
        p.a.tick()
        p.a.collector._dispatch = killed  # type: ignore[method-assign]
        with pytest.raises(KeyboardInterrupt):
            p.a.collector.ingest([tenth])
        p.a.cluster.close = lambda: None  # type: ignore[method-assign]  # killed: no goodbye
        p.b.tick()
        assert not p.b.cluster.leading
        p.clock.advance(11)  # a's lease runs out
        p.b.tick()
        assert p.b.cluster.leading
        for _ in range(4):  # past group_wait
            p.clock.advance(30)
            p.b.tick()
        paged = [n.alert.key for c in p.channels for n in c.sent]
        assert len([k for k in paged if "deterministic_failure" in k]) == 1, paged
        assert p.b.store.judged() == p.b.store.position()


def test_the_follower_runs_only_its_own_jobs(postgres_url: str) -> None:
    with pair(postgres_url) as p:
        p.clock.advance(5)  # within the leader's lease (lease_s 10)
        p.b.tick()
        assert p.b.job_runs["deliver-alerts"].runs == 1  # each instance flushes its router
        assert {n: r.runs for n, r in p.b.job_runs.items() if n != "deliver-alerts"} == {
            n: 0 for n in p.b.job_runs if n != "deliver-alerts"}
        assert Api(p.b).run_job_now("slo") is None  # skipped: the leader runs it
        record = Api(p.a).run_job_now("slo")
        assert record is not None and record.runs == 1


def test_a_dead_leaders_interrupted_delivery_is_taken_over_once(postgres_url: str) -> None:
    with pair(postgres_url) as p:
        assert p.a.actuator is not None
        p.a.actuator._dispatch = lambda work: None  # type: ignore[method-assign]  # dies here
        for name in PHASE3_OVERNIGHT:
            p.a.collector.ingest([p.completion(name)])  # type: ignore[list-item]
        (row,) = [r for r in p.a.actuator.store.triggers() if r.phase == "phase4"]
        assert row.state == "sending" and row.claim is not None
        assert row.claim.startswith(p.a.cluster.instance + "/")
        assert p.a.cluster.heartbeat()  # its last
        # a stops renewing: while its leases run, b neither leads nor takes its delivery
        p.clock.advance(5)
        p.b.tick()
        assert not p.b.cluster.leading and p.sent("phase4") == []
        p.clock.advance(6)  # past lease_s (10 s) since a's last heartbeat
        p.b.tick()
        assert p.b.cluster.leading
        assert p.a.cluster.instance not in p.b.cluster.alive()
        assert len(p.sent("phase4")) == 1
        for _ in range(3):
            p.clock.advance(30)
            p.b.tick()
        assert len(p.sent("phase4")) == 1
        assert p.b.actuator is not None
        (row,) = [r for r in p.b.actuator.store.triggers() if r.phase == "phase4"]
        assert (row.state, row.attempts) == ("succeeded", 1)


def test_a_live_instances_delivery_is_never_taken_over(postgres_url: str) -> None:
    with pair(postgres_url) as p:
        assert p.b.actuator is not None
        store = p.b.actuator.store
        for name in PHASE3_OVERNIGHT:
            p.a.collector.ingest([p.completion(name)])  # type: ignore[list-item]
        (row,) = [r for r in store.triggers() if r.phase == "phase4"]
        p.a.cluster.heartbeat()
        p.b.cluster.heartbeat()
        assert store.update_trigger(row.id, {"state": "pending"}, state="succeeded")
        assert store.claim_trigger(row.id, f"{p.b.cluster.instance}/x", p.clock.now()) is not None
        assert store.release_orphans(p.a.cluster.alive) == 0  # b lives: its claim stays
        assert store.release_orphans(lambda: {p.a.cluster.instance}) == 1


def test_each_notification_is_delivered_once_by_racing_instances(postgres_url: str) -> None:
    with pair(postgres_url) as p:
        for k in range(40):
            p.a.router.fire(Alert(key=f"test:{k}", severity="warning", summary=f"problem {k}",
                                  at=p.clock.now(), labels={"pipeline": "nba"}))
        p.clock.advance(120)  # past group_wait
        p.a.alerting.router.tick(p.clock.now())  # queued in the outbox, nothing sent yet
        assert all(c.sent == [] for c in p.channels)
        passes = (p.a, p.b) * 4
        assert race(len(passes), lambda i: passes[i].alerting.outbox.deliver(p.clock.now())) == []
        sent = [n.alert.key for c in p.channels for n in c.sent]
        assert sorted(sent) == sorted(f"test:{k}" for k in range(40))


def test_an_alert_raised_by_both_instances_is_one_episode(postgres_url: str) -> None:
    with pair(postgres_url) as p:
        alert = Alert(key="test:same", severity="critical", summary="same", at=p.clock.now())
        p.a.router.fire(alert)
        p.b.router.fire(alert)
        episodes = p.a.alerting.store.episodes(p.clock.now() - timedelta(hours=1),
                                               p.clock.now() + timedelta(hours=1))
        assert [e.alert.key for e in episodes] == ["test:same"]


def test_a_new_leader_tells_what_the_dead_one_raised_and_nothing_it_told(postgres_url: str) -> None:
    with pair(postgres_url) as p:
        told = Alert(key="test:told", severity="critical", summary="told", at=p.clock.now())
        p.a.router.fire(told)
        p.clock.advance(31)  # past group_wait (30 s)
        p.a.tick()
        assert [n.alert.key for n in p.channels[0].sent] == ["test:told"]
        untold = Alert(key="test:untold", severity="critical", summary="untold", at=p.clock.now())
        p.a.router.fire(untold)  # raised; a dies before its group is due
        p.clock.advance(11)  # a's leases run out
        p.b.tick()
        assert p.b.cluster.leading
        for _ in range(12):  # past the group's interval (300 s) since a told it
            p.clock.advance(30)
            p.b.tick()
        assert [n.alert.key for n in p.channels[1].sent] == ["test:untold"]
        assert [n.alert.key for n in p.channels[0].sent] == ["test:told"]


def test_ready_passes_on_postgresql_and_names_the_leader(postgres_url: str) -> None:
    with pair(postgres_url) as p:
        client = Http(create_app(p.b, None))
        try:
            response = client.get("/ready")
        finally:
            client.close()
        body = response.json()
        assert (response.status_code, body["status"]) == (200, "pass"), body
        (cluster,) = body["checks"]["store:cluster"]
        assert cluster["observedValue"] == {"instance": p.b.cluster.instance, "leading": False,
                                            "leader": p.a.cluster.instance}


def test_a_backfill_stored_by_a_follower_is_not_acted_on_by_the_leader(postgres_url: str) -> None:
    with pair(postgres_url) as p:
        events = [p.completion(name) for name in PHASE3_OVERNIGHT]
        p.b.collector.ingest(events, backfill=True)  # type: ignore[arg-type]
        assert p.a.follow() == len(PHASE3_OVERNIGHT)
        run = p.a.tracker.get(RUN)
        assert run is not None and run.phases["phase3"].completed_at is not None  # learned
        assert p.sent("phase4") == []  # never acted on


def test_dead_letters_redriven_on_a_follower_are_acted_on_once_by_the_leader(
    postgres_url: str,
) -> None:
    """Phase 3's completions were dead-lettered (a processor renamed before the config
    knew it). The on-call's replay reaches the follower, and a second replay of the same
    page races it on the leader. Ideal: the events are stored once, the letters are gone,
    the follower acts on nothing, and the leader, once it has followed, triggers Phase 4
    once; both instances then hold Phase 3 complete."""
    with pair(postgres_url) as p:
        events = [p.completion(name) for name in PHASE3_OVERNIGHT]
        for i, event in enumerate(events):
            p.b.store.add_dead_letter(
                received_at=p.clock.now(), source="pubsub:phasewatch-events",
                message_id=f"m-{i}", reason="unknown_name", detail="unknown processor",
                payload=base64.b64encode(event_to_json(event).encode()).decode(),
            )
        letters = p.b.store.oldest_dead_letters(limit=100)
        on_follower = p.b.collector.redrive(letters)
        on_leader = p.a.collector.redrive(letters)  # the same page, a moment later
        before_follow = list(p.sent("phase4"))
        followed = p.a.follow()
        p.b.follow()
        assert (on_follower.replayed, on_follower.duplicates) == (len(events), 0)
        assert (on_leader.replayed, on_leader.duplicates) == (0, len(events))
        assert on_follower.still_invalid == on_leader.still_invalid == ()
        assert p.a.store.count_dead_letters() == 0
        assert before_follow == []  # the follower stored them and acted on nothing
        assert followed == len(events)
        assert len(p.sent("phase4")) == 1
        assert p.a.actuator is not None
        rows = [r for r in p.a.actuator.store.triggers() if r.phase == "phase4"]
        assert [(r.state, r.attempts) for r in rows] == [("succeeded", 1)]
        for pw in (p.a, p.b):
            pw.tick()
            run = pw.tracker.get(RUN)
            assert run is not None and run.phases["phase3"].completed_at is not None
        assert [n.alert.key for c in p.channels for n in c.sent] == []  # nothing to tell
