"""The metrics the dashboards chart beyond DESIGN §6's first list: applied timeouts, the
actuator's audit log as a counter, deploys, the alert outbox's backlog, SLO budget left in
its unit."""

from __future__ import annotations

from datetime import datetime, timedelta

from prometheus_client import CollectorRegistry, Counter, Gauge

from alerts.channels.memory import MemoryChannel
from alerts.errors import DeliveryError
from monitor.actuator.deploys import Deploys
from monitor.actuator.store import AuditEntry
from monitor.app.phasewatch import Phasewatch
from monitor.clock import FakeClock
from monitor.store.sqlite import SQLiteStore
from slo import HealthProbe, SLOEngine, SLOGauges
from tests.test_alerts_support import make_alert, make_engine
from tests.test_slo_engine import AVAIL_SLO, config

T0 = datetime.fromisoformat("2026-01-21T05:00:00+00:00")


def sample(registry: CollectorRegistry, name: str, **labels: str) -> float | None:
    return registry.get_sample_value(name, labels)


def test_the_timeout_applied_is_exposed_adaptive_or_static(app: Phasewatch) -> None:
    assert app.actuator is not None
    ctx = app.actuator.ctx
    labels = {"pipeline": "nba", "phase": "phase3", "processor": "player_game_summary",
              "mode": "overnight"}
    ctx.timeouts = lambda *key: None  # no history: the configured timeout applies
    assert ctx.timeout_s("nba", "phase3", "player_game_summary", "overnight", 600.0) == 600.0
    assert sample(app.metrics.registry, "phasewatch_timeout_seconds", **labels) == 600.0
    ctx.timeouts = lambda *key: 42.0  # learned
    assert ctx.timeout_s("nba", "phase3", "player_game_summary", "overnight", 600.0) == 42.0
    assert sample(app.metrics.registry, "phasewatch_timeout_seconds", **labels) == 42.0
    ctx.timeouts = None
    ctx.timeout_s("nba", "phase4", None, "same_day", 3600.0)  # a whole phase: no processor
    assert sample(app.metrics.registry, "phasewatch_timeout_seconds", pipeline="nba", phase="phase4",
                  processor="", mode="same_day") == 3600.0


def test_audit_lines_are_counted_once_committed_and_only_then(app: Phasewatch, clock: FakeClock) -> None:
    assert app.actuator is not None
    store = app.actuator.ctx.store
    run = ("nba", "2026-01-17", "overnight")
    taken = AuditEntry(clock.now(), "decision", "recovery", "taken", *run, "phase5")
    labels = {"pipeline": "nba", "phase": "phase5", "kind": "decision", "action": "recovery",
              "outcome": "taken"}
    plan = store.create_plan(run, "phase5", subject="batch:b1", rule="too_old", steps=("reset",),
                             now=clock.now(), audit=[taken])
    assert plan is not None
    assert sample(app.metrics.registry, "phasewatch_actions_total", **labels) == 1.0
    # the same plan again is refused by the store: its audit line is not written, nor counted
    assert store.create_plan(run, "phase5", subject="batch:b1", rule="too_old", steps=("reset",),
                             now=clock.now(), audit=[taken]) is None
    step = AuditEntry(clock.now(), "recovery", "reset", "accepted", *run, "phase5")
    assert not store.update_plan(plan.id, {"step": 1}, [step], claim="not-the-claim")
    assert sample(app.metrics.registry, "phasewatch_actions_total", **labels) == 1.0
    assert sample(app.metrics.registry, "phasewatch_actions_total", pipeline="nba", phase="phase5",
                  kind="recovery", action="reset", outcome="accepted") is None
    store.audit([AuditEntry(clock.now(), "guard", "retry_storm", "tripped", "nba")])
    assert sample(app.metrics.registry, "phasewatch_actions_total", pipeline="nba", phase="",
                  kind="guard", action="retry_storm", outcome="tripped") == 1.0


def test_each_new_deploy_is_counted_by_source_and_repeats_are_not() -> None:
    registry = CollectorRegistry()
    counter = Counter("phasewatch_deploys", "d", ["service", "source"], registry=registry)
    deploys = Deploys(SQLiteStore(":memory:"), ["svc"], counter)
    deploys.record("svc", "v1", T0, "api")
    deploys.record("svc", "v1", T0, "api")  # the same notice twice is one deploy
    assert sample(registry, "phasewatch_deploys_total", service="svc", source="api") == 1.0
    assert deploys.observe_version("svc", "v1", T0 + timedelta(minutes=1)) is None  # already known
    assert deploys.observe_version("svc", "v2", T0 + timedelta(minutes=2)) is not None
    assert sample(registry, "phasewatch_deploys_total", service="svc", source="probe") == 1.0


def test_the_outbox_backlog_follows_pending_rows_per_channel(tmp_path, clock: FakeClock) -> None:  # type: ignore[no-untyped-def]
    registry = CollectorRegistry()
    backlog = Gauge("phasewatch_alert_outbox_pending", "b", ["channel"], registry=registry)
    chat, log = MemoryChannel("chat"), MemoryChannel("log")
    db = SQLiteStore(tmp_path / "pw.db")
    try:
        engine = make_engine(db, clock, [chat, log], {"group_wait_s": 0}, backlog=backlog)
        chat.failures = [DeliveryError.from_status("chat", 503, "down") for _ in range(2)]
        run = {"pipeline": "nba", "run_date": "2026-01-17", "mode": "overnight"}
        engine.router.fire(make_alert("deadline", clock.now(), phase="phase4", **run))
        engine.tick(clock.now())
        assert sample(registry, "phasewatch_alert_outbox_pending", channel="chat") == 1.0
        assert sample(registry, "phasewatch_alert_outbox_pending", channel="log") == 0.0
        for _ in range(20):
            clock.advance(30)
            engine.tick(clock.now())
        assert len(chat.sent) == 1
        assert sample(registry, "phasewatch_alert_outbox_pending", channel="chat") == 0.0
    finally:
        db.close()


def test_budget_left_is_also_exposed_in_the_slos_unit() -> None:
    engine = SLOEngine(config(AVAIL_SLO))
    for m in range(4):
        engine.observe_probe(HealthProbe("svc", T0 + timedelta(minutes=m), "fail" if m == 0 else "pass"))
    registry = CollectorRegistry()
    SLOGauges(registry).update(engine.evaluate(T0 + timedelta(minutes=4)))
    # 4 probes at 0.99: 0.04 may fail, 1 did
    left = sample(registry, "phasewatch_slo_error_budget_remaining", slo="svc-up", unit="probes")
    assert left is not None and abs(left - (0.04 - 1)) < 1e-9
