"""The health gate against local servers: every body shape, status codes, timeouts, identity."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from alerts.router import MemoryChannel, SimpleRouter
from monitor.actuator.config import ServiceConfig
from monitor.actuator.gates.health import HttpHealthProbe, interpret
from monitor.actuator.health import HealthMonitor
from monitor.actuator.notify import Notifier
from monitor.actuator.store import ActuatorStore
from monitor.store.sqlite import SQLiteStore
from monitor.telemetry.metrics import Metrics
from tests.actuator_support import http_peer, json_answer, nba_config, silent_port

NOW = datetime(2026, 1, 21, 6, 0, tzinfo=UTC)
HEALTH_JSON = "application/health+json"


def service(url: str, **kw: Any) -> ServiceConfig:
    return ServiceConfig(health_url=f"{url}/health", **kw)  # type: ignore[arg-type]


@pytest.mark.parametrize(("status", "body", "expected"), [
    (200, {"status": "pass"}, "pass"),
    (200, {"status": "warn", "output": "cache cold"}, "warn"),
    (200, {"status": "fail"}, "fail"),
    (200, {"status": "healthy", "service": "analytics-processor"}, "pass"),
    (200, {"status": "ready"}, "pass"),
    (200, {"status": "degraded"}, "warn"),
    (200, {"status": "not ready", "reason": ["bigquery"]}, "fail"),
    (503, {"status": "not ready", "reason": ["bigquery"]}, "fail"),
    (503, {"status": "healthy"}, "fail"),  # the status code wins over a hopeful body
    (200, {"status": "healthy", "checks_failed": ["output_schema"], "checks_passed": 4}, "fail"),
    (200, {"status": "pass", "checks": {"db:connection": [{"status": "fail"}]}}, "fail"),
    (200, {"status": "busy"}, "warn"),
    (200, None, "pass"),
    (500, None, "fail"),
])
def test_interpret_reads_every_body_shape(status: int, body: Any, expected: str) -> None:
    raw = b"" if body is None else __import__("json").dumps(body).encode()
    got, detail = interpret(status, raw, ServiceConfig(health_url="http://x/health"))  # type: ignore[arg-type]
    assert got == expected, detail


def test_a_body_naming_another_service_is_unhealthy() -> None:
    cfg = ServiceConfig(health_url="http://x/health", identity="analytics-processor")  # type: ignore[arg-type]
    status, detail = interpret(200, b'{"status": "healthy", "service": "precompute-processor"}', cfg)
    assert status == "fail" and "wrong identity" in detail and "precompute-processor" in detail
    assert interpret(200, b'{"status": "healthy", "service": "analytics-processor"}', cfg)[0] == "pass"
    custom = ServiceConfig(health_url="http://x/health", identity="w", identity_field="serviceId")  # type: ignore[arg-type]
    assert interpret(200, b'{"status": "pass", "serviceId": "v"}', custom)[0] == "fail"


@pytest.mark.parametrize(("answer", "expected", "words"), [
    (json_answer(200, {"status": "pass", "version": "1"}, HEALTH_JSON), "pass", ["HTTP 200"]),
    (json_answer(200, {"status": "warn"}, HEALTH_JSON), "warn", ["warn"]),
    (json_answer(200, {"status": "healthy", "service": "worker"}), "pass", []),
    (json_answer(200, {"status": "degraded"}), "warn", ["degraded"]),
    (json_answer(503, {"status": "not ready", "reason": ["firestore"]}), "fail", ["503", "firestore"]),
    ((503, {}, b"Service Unavailable"), "fail", ["503"]),
    (json_answer(200, {"status": "healthy", "service": "precompute-processor"}), "fail",
     ["wrong identity"]),
])
def test_probe_against_a_local_server(answer: Any, expected: str, words: list[str]) -> None:
    with http_peer(lambda r: answer) as peer:
        probe = HttpHealthProbe(timeout_s=5)
        try:
            result = probe.probe("worker", service(peer.url, identity="worker"), ("health",), NOW)
        finally:
            probe.close()
        assert result.status == expected, result.detail
        for word in words:
            assert word in result.detail
        (request,) = peer.requests
        assert request.path == "/health"
        assert "application/health+json" in request.headers["accept"]


def test_ready_failing_fails_the_probe_even_when_health_passes() -> None:
    def answer(request: Any) -> Any:
        if request.path == "/health/ready":
            return json_answer(503, {"status": "not ready", "reason": ["bigquery client"]})
        return json_answer(200, {"status": "healthy"})

    with http_peer(answer) as peer:
        probe = HttpHealthProbe()
        cfg = ServiceConfig(health_url=f"{peer.url}/health", ready_url=f"{peer.url}/health/ready")  # type: ignore[arg-type]
        try:
            result = probe.probe("svc", cfg, ("health", "ready"), NOW)
        finally:
            probe.close()
    assert result.status == "fail" and "ready" in result.detail and "bigquery client" in result.detail


def test_timeout_and_refused_connection_are_failures() -> None:
    probe = HttpHealthProbe(timeout_s=0.3)
    try:
        with silent_port() as url:
            slow = probe.probe("svc", service(url), ("health",), NOW)
        with silent_port() as url:
            pass  # closed again: nothing listens there now
        refused = probe.probe("svc", service(url), ("health",), NOW)
    finally:
        probe.close()
    assert slow.status == "fail" and "timeout after 0.3 s" in slow.detail
    assert refused.status == "fail" and "unreachable" in refused.detail


def test_monitor_alerts_after_consecutive_failures_and_calls_back_on_recovery() -> None:
    config = nba_config(health={"unhealthy_after": 3})
    store = SQLiteStore(":memory:")
    channel = MemoryChannel()
    recovered: list[str] = []
    answers = iter([json_answer(503, {"status": "fail"})] * 3 + [json_answer(200, {"status": "pass"})] * 5)
    metrics = Metrics()
    try:
        with http_peer(lambda r: next(answers)) as peer:
            actuator_store = ActuatorStore(store)
            actuator_store.migrate()
            probe = HttpHealthProbe()
            monitor = HealthMonitor(config, probe, actuator_store, metrics,
                                    Notifier(SimpleRouter([channel])),
                                    lambda name, at: recovered.append(name))
            cfg = service(peer.url)
            monitor.services = {"svc": cfg}
            for minute in range(4):
                monitor.check("svc", ("health",), NOW.replace(minute=minute))
            # Held triggers go at the first pass; the outage ends after recovered_after (3).
            assert recovered == ["svc"] and len(channel.sent) == 1
            for minute in range(4, 6):
                monitor.check("svc", ("health",), NOW.replace(minute=minute))
            probe.close()
        actions = [(n.action, n.alert.severity) for n in channel.sent]
        assert actions == [("trigger", "critical"), ("resolve", "critical")]
        assert channel.sent[1].at == NOW.replace(minute=5)
        assert "3 consecutive probes" in channel.sent[0].alert.summary
        assert recovered == ["svc"]
        (row,) = actuator_store.health()
        assert (row["service"], row["status"], row["consecutive_failures"]) == ("svc", "pass", 0)
        text = metrics.exposition()[0].decode()
        assert 'phasewatch_service_health{service="svc"} 1.0' in text
    finally:
        store.close()


class Scripted:
    """A probe answering a script of statuses, one per call."""

    def __init__(self, statuses: str) -> None:
        self.statuses = iter(statuses)

    def probe(self, name: str, config: ServiceConfig, endpoints: Any, now: datetime) -> Any:
        from monitor.actuator.gates.base import HealthResult

        status = {"F": "fail", "P": "pass"}[next(self.statuses)]
        return HealthResult(name, status, f"HTTP {503 if status == 'fail' else 200}", now)


def test_a_flapping_service_is_told_once_more_then_resolves_only_once_it_is_steady() -> None:
    """Down 4 probes, up 3, for an hour (one probe a minute): the first outage resolves at
    its 3rd pass as any outage does; failing again 2 min later is flapping, one more alert
    that resolves once the service has passed for the flap window (10 min here)."""
    config = nba_config(health={"unhealthy_after": 3, "recovered_after": 3, "flap_window_min": 10})
    store = SQLiteStore(":memory:")
    channel = MemoryChannel()
    try:
        actuator_store = ActuatorStore(store)
        actuator_store.migrate()
        script = "FFFFPPP" * 9 + "P" * 12
        monitor = HealthMonitor(config, Scripted(script), actuator_store, Metrics(),
                                Notifier(SimpleRouter([channel])))
        monitor.services = {"svc": service("http://127.0.0.1:9")}
        for minute in range(len(script)):
            monitor.check("svc", ("health",), NOW + timedelta(minutes=minute))
        sent = [(n.action, n.at - NOW) for n in channel.sent]
        assert sent == [("trigger", timedelta(minutes=2)), ("resolve", timedelta(minutes=6)),
                        ("trigger", timedelta(minutes=9)),
                        # the last up-phase begins at minute 60 and holds: 10 min later
                        ("resolve", timedelta(minutes=70))]
        assert "flapping: unhealthy again 1 min after recovering" in channel.sent[2].alert.summary
    finally:
        store.close()
