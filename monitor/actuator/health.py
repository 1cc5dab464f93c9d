"""Service health over time: periodic probes, the gate's cache, the gauge, the alerts.

A service whose probes fail ``unhealthy_after`` times in a row raises a critical
"service unhealthy" alert, resolved after ``recovered_after`` passing probes in a row (one
alert per outage, however the service flaps inside it). One that is unhealthy again within
``flap_window_min`` of that resolve is flapping: its alert says so and resolves only once
the service has passed for ``flap_window_min`` (a probe flapping up and down every few
minutes pages twice, not once per cycle). A service that passes
again after failing calls ``on_recovered``: deferred triggers waiting on it go out at once
("retry after health recovers") instead of at their next scheduled retry.

When a whole periodic round of probes (two services or more) gets no HTTP answer at all
(connection errors, timeouts, ID tokens that cannot be minted) ``unhealthy_after`` rounds
in a row, the problem is phasewatch's own reach (its network, DNS, credentials), or every
service down at once: one critical ``probes_unreachable`` alert says so, and the services'
own "service unhealthy" alerts are its consequences (``alerts.inhibition``), not one page
each. It resolves with the first round in which any service answers; the outages
concluded while blind are then withdrawn and each service judged again from that round (one
still down is told as itself ``unhealthy_after`` probes later).

Probes also feed ``deploys`` (a new ``version`` in the body is a deploy). When the unhealthy
streak began within ``deploy_regression_min`` of the service's last deploy, the alert says
"deploy regression (deployed <version> at <time>)" and carries ``cause: deploy_regression``.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable, Iterable, Sequence
from concurrent.futures import ThreadPoolExecutor
from datetime import datetime, timedelta
from typing import TYPE_CHECKING
from zoneinfo import ZoneInfo

from monitor.actuator.config import HealthProbeConfig, ServiceConfig
from monitor.actuator.deploys import Deploy, Deploys
from monitor.actuator.gates.base import Endpoint, HealthProbe, HealthResult
from monitor.actuator.notify import Notifier
from monitor.actuator.store import ActuatorStore
from monitor.config import Config
from monitor.telemetry.metrics import Metrics

if TYPE_CHECKING:
    from alerts.model import Alert
    from alerts.store import Episode

log = logging.getLogger(__name__)

GAUGE = {"pass": 1.0, "warn": 0.5, "fail": 0.0}
PERIODIC: tuple[Endpoint, ...] = ("health", "ready")
REACH = "probes_unreachable"
UNHEALTHY = "service_unhealthy"
FLAPPING = "flapping"  # an annotation of a service_unhealthy told as flapping


class HealthMonitor:
    """Probes services, keeps the latest result per (service, endpoints), alerts on failure."""

    def __init__(
        self, config: Config, probe: HealthProbe, store: ActuatorStore, metrics: Metrics,
        notifier: Notifier, on_recovered: Callable[[str, datetime], None] | None = None,
    ) -> None:
        self.cfg: HealthProbeConfig = config.actuator.health
        self.probe = probe
        self.store = store
        self.metrics = metrics
        self.notifier = notifier
        self.on_recovered = on_recovered
        self.listeners: list[Callable[[HealthResult], None]] = []  # e.g. availability SLOs
        self.services: dict[str, ServiceConfig] = {}
        self._tz: dict[str, ZoneInfo] = {}
        for pipeline in config.pipelines:
            for name, service in pipeline.services.items():
                self.services.setdefault(name, service)
                self._tz.setdefault(name, pipeline.tz)
        self.deploys = Deploys(store.component, self.services, metrics.deploys)
        self._latest: dict[tuple[str, tuple[Endpoint, ...]], HealthResult] = {}
        self._failures: dict[str, int] = {}
        self._passes: dict[str, int] = {}
        self._since: dict[str, datetime] = {}  # when each service's failing streak began
        self._passing_since: dict[str, datetime] = {}  # when its passing streak began
        self._resolved_at: dict[str, datetime] = {}  # when its last outage alert resolved
        self._open: set[str] = set()  # services whose outage alert this process fired
        self._flapping: set[str] = set()  # outages open as "flapping" (their resolve waits)
        self._next_round: datetime | None = None
        self._silent_rounds = 0  # periodic rounds in a row in which no service answered
        self._reach_known = False  # a round was judged (the first one resolves a stale alert)
        self._lock = threading.Lock()
        self._pool: ThreadPoolExecutor | None = None

    def current(self, service: str, endpoints: Sequence[Endpoint], now: datetime) -> HealthResult:
        """A probe at most ``max_age_s`` old; probes now when there is none."""
        key = (service, tuple(endpoints))
        cached = self._recent(key, now)
        return cached if cached is not None else self.check(service, key[1], now)

    def fresh(self, service: str, endpoints: Sequence[Endpoint], now: datetime) -> bool:
        return self._recent((service, tuple(endpoints)), now) is not None

    def _recent(self, key: tuple[str, tuple[Endpoint, ...]], now: datetime) -> HealthResult | None:
        with self._lock:
            cached = self._latest.get(key)
        if cached is not None and now - cached.checked_at <= timedelta(seconds=self.cfg.max_age_s):
            return cached
        return None

    def check(self, service: str, endpoints: tuple[Endpoint, ...], now: datetime) -> HealthResult:
        """Probe one service now and record the result."""
        result = self._probe(service, endpoints, now)
        self.record(result, endpoints)
        return result

    def _probe(self, service: str, endpoints: tuple[Endpoint, ...], now: datetime) -> HealthResult:
        config = self.services.get(service)
        if config is None:
            return HealthResult(service, "fail", "not a configured service", now)
        try:
            return self.probe.probe(service, config, endpoints, now)
        except Exception as exc:  # a probe must not break the actuator
            log.exception("event=health.probe_failed service=%s", service)
            return HealthResult(service, "fail", f"probe error: {type(exc).__name__}", now)

    def probe_due(self, now: datetime) -> list[HealthResult]:
        """The periodic round: every configured service, once per ``interval_s``."""
        if self._next_round is not None and now < self._next_round:
            return []
        self._next_round = now + timedelta(seconds=self.cfg.interval_s)
        names = sorted(self.services)
        if getattr(self.probe, "parallel", False) and len(names) > 1:
            if self._pool is None:
                self._pool = ThreadPoolExecutor(max_workers=8, thread_name_prefix="health-probe")
            results = list(self._pool.map(lambda s: self._probe(s, PERIODIC, now), names))
        else:
            results = [self._probe(s, PERIODIC, now) for s in names]
        # A round no service answered says nothing of the services (phasewatch's network,
        # most likely): judged for their outages as always, but not counted as their
        # availability (listeners: the SLOs, the probe log, the mirror).
        silent = len(results) > 1 and all(r.status == "fail" and r.http_status is None
                                          for r in results)
        for result in results:
            self.record(result, PERIODIC, counted=not silent)
        self._judge_reach(silent, results, now)
        return results

    def _judge_reach(self, silent: bool, results: Sequence[HealthResult], now: datetime) -> None:
        """``probes_unreachable`` when no service answered ``unhealthy_after`` rounds in a row."""
        if len(results) < 2:
            return
        with self._lock:
            before, first = self._silent_rounds, not self._reach_known
            self._silent_rounds = before + 1 if silent else 0
            self._reach_known = True
            rounds = self._silent_rounds
        if silent and rounds == self.cfg.unhealthy_after:
            causes = sorted({r.detail for r in results})
            shown = "; ".join(causes[:3]) + (f"; +{len(causes) - 3} more" if len(causes) > 3 else "")
            log.warning("event=probes.unreachable services=%d detail=%r", len(results), shown)
            self.notifier.fire(
                REACH, "critical",
                f"no service answers phasewatch's health probes: all {len(results)} got no HTTP "
                f"answer {rounds} rounds in a row ({shown}); phasewatch's own network, DNS or "
                "credentials, or every service down at once",
                now, {},
            )
        elif not silent and (first or before >= self.cfg.unhealthy_after):
            self.notifier.resolve(REACH, {}, now)  # also after a restart (a no-op when not firing)
            if before >= self.cfg.unhealthy_after:
                self._rejudge(results, now)

    def _rejudge(self, results: Sequence[HealthResult], now: datetime) -> None:
        """Phasewatch sees again: the outages it concluded while blind are withdrawn, and each
        service is judged again from this round on; one still failing opens a new outage
        after ``unhealthy_after`` probes, told as itself (not a consequence of the blindness
        it outlived)."""
        with self._lock:
            withdrawn = sorted(self._open)
            self._open.clear()
            for result in results:
                failed = result.status == "fail"
                self._failures[result.service] = 1 if failed else 0
                if failed:
                    self._since[result.service] = result.checked_at
        for service in withdrawn:
            self.notifier.resolve(UNHEALTHY, {"service": service}, now)

    def record(self, result: HealthResult, endpoints: tuple[Endpoint, ...], *,
               counted: bool = True) -> None:
        """Keep a result: cache, gauge, store, consecutive failures, alert and recovery;
        ``counted``: also tell the listeners (a round nobody answered is not)."""
        service = result.service
        with self._lock:
            self._latest[(service, endpoints)] = result
            before = self._failures.get(service, 0)
            failures = before + 1 if result.status == "fail" else 0
            self._failures[service] = failures
            passes = 0 if failures else self._passes.get(service, 0) + 1
            self._passes[service] = passes
            if failures == 1:
                self._since[service] = result.checked_at
            if passes == 1:
                self._passing_since[service] = result.checked_at
            began = self._since.get(service, result.checked_at)
            flap = timedelta(minutes=self.cfg.flap_window_min)
            last_resolve = self._resolved_at.get(service)
            if failures == self.cfg.unhealthy_after:
                self._open.add(service)
                if last_resolve is not None and began - last_resolve <= flap:
                    self._flapping.add(service)  # unhealthy again soon after recovering
            flapping = service in self._flapping
            resolve = self._resolves(service, passes, result.checked_at, flap)
        if service in self.services:
            self.metrics.service_health.labels(service).set(GAUGE[result.status])
            self.deploys.observe_version(service, result.version, result.checked_at)
        self.store.save_health(service, result.status, result.detail, result.checked_at,
                               result.http_status, failures)
        for listener in self.listeners if counted else ():
            try:
                listener(result)
            except Exception:
                log.exception("event=health.listener_failed service=%s", service)
        labels = {"service": service}
        if failures == self.cfg.unhealthy_after:
            log.warning("event=service.unhealthy service=%s detail=%r", service, result.detail)
            summary = (f"service unhealthy: {service} failed {failures} consecutive probes "
                       f"({result.detail})")
            if flapping:
                assert last_resolve is not None
                summary += (f"; flapping: unhealthy again {_minutes(began - last_resolve)} after "
                            f"recovering, resolved once it passes for "
                            f"{self.cfg.flap_window_min:g} min")
            annotations: dict[str, str] = {FLAPPING: "true"} if flapping else {}
            window = timedelta(minutes=self.cfg.deploy_regression_min)
            deploy = self.deploys.regression(service, began, result.checked_at, window)
            if deploy is not None:
                summary += f"; {self._regression(deploy)}"
                annotations |= {"cause": "deploy_regression",
                               "deploy_version": deploy.version or "unknown",
                               "deployed_at": deploy.at.isoformat()}
            self.notifier.fire(UNHEALTHY, "critical", summary, result.checked_at,
                               labels, annotations=annotations)
        if resolve:  # also after a restart (a no-op when not firing)
            self.notifier.resolve(UNHEALTHY, labels, result.checked_at)
        if failures == 0 and before > 0:
            log.info("event=service.recovered service=%s after_failures=%d", service, before)
            if self.on_recovered is not None:
                self.on_recovered(service, result.checked_at)

    def restore(self, firing: Iterable[Alert], resolved: Iterable[Episode]) -> None:
        """Take up the outages an earlier process told (a restart, a new leader): the
        services whose ``service_unhealthy`` is still firing (flapping when it said so), and
        when each one's last outage resolved, so that a service flapping across a restart
        is still told as flapping and its flapping outage still waits out the flap window."""
        with self._lock:
            for alert in firing:
                service = alert.labels.get("service")
                if alert.name == UNHEALTHY and service in self.services:
                    self._open.add(service)
                    if alert.labels.get(FLAPPING) == "true":
                        self._flapping.add(service)
            for episode in resolved:
                service = episode.alert.labels.get("service")
                if (episode.alert.name == UNHEALTHY and service in self.services
                        and episode.resolved_at is not None and service not in self._open):
                    last = self._resolved_at.get(service)
                    self._resolved_at[service] = max(last or episode.resolved_at,
                                                     episode.resolved_at)

    def _resolves(self, service: str, passes: int, now: datetime, window: timedelta) -> bool:
        """Whether this pass ends the outage: the ``recovered_after``-th in a row, or for a
        flapping service the first once it has passed for the flap window (lock held)."""
        if service in self._flapping:
            if passes < self.cfg.recovered_after or now - self._passing_since[service] < window:
                return False
            self._flapping.discard(service)
        elif passes != self.cfg.recovered_after:
            return False
        if service in self._open:
            self._open.discard(service)
            self._resolved_at[service] = now
        return True

    def _regression(self, deploy: Deploy) -> str:
        """``deploy regression (deployed v42 at 2026-01-21 00:40 EST)``, in the pipeline's time."""
        tz = self._tz.get(deploy.service)
        when = deploy.at.astimezone(tz) if tz else deploy.at
        version = deploy.version or "a new version"
        return f"deploy regression (deployed {version} at {when:%Y-%m-%d %H:%M %Z})"

    def failures(self, service: str) -> int:
        with self._lock:
            return self._failures.get(service, 0)

    def close(self) -> None:
        if self._pool is not None:
            self._pool.shutdown(wait=True)
            self._pool = None


def _minutes(span: timedelta) -> str:
    return f"{span.total_seconds() / 60:.0f} min"
