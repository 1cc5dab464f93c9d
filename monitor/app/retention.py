"""The ``prune`` job and ``phasewatch prune``: every component's retention rules, one pass.

The rules live beside each component's tables (``RETENTION`` in its store module); this
module lists them in the order they run (rows others refer to last) and runs them with the
``retention`` section of the config (``monitor.store.retention``). Tables not listed grow
with the configuration only (one row per check, job, service, processor or component).
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from datetime import datetime

from alerts.store import RETENTION as ALERTS
from monitor.actuator.cascade import RETENTION as CASCADES
from monitor.actuator.deploys import RETENTION as DEPLOYS
from monitor.actuator.expectations import RETENTION as EXPECTATIONS
from monitor.actuator.playbooks.base import RETENTION as PLAYBOOKS
from monitor.actuator.store import RETENTION as ACTUATOR
from monitor.checks.store import RETENTION as CHECKS
from monitor.config import Config
from monitor.host import Host
from monitor.publish.store import RETENTION as PUBLISH
from monitor.scheduler.store import RETENTION as SCHEDULER
from monitor.store.config import RETENTION_SETTINGS
from monitor.store.leases import RETENTION as LEASES
from monitor.store.probes import RETENTION as PROBES
from monitor.store.retention import Cutoffs, PrunableStore, Pruned, Pruner, Rule
from monitor.store.schema import RETENTION as EVENTS

log = logging.getLogger(__name__)

JOB = "prune"
JOB_EVERY_S = 3600.0  # each pass deletes what aged out since the last: small batches
# Cascades and playbook actions before the triggers they point at; the outbox before the
# completions it refers to.
RULES: tuple[Rule, ...] = (
    *EVENTS, *CASCADES, *PLAYBOOKS, *ACTUATOR, *EXPECTATIONS, *DEPLOYS, *PUBLISH, *ALERTS, *CHECKS,
    *PROBES, *SCHEDULER, *LEASES,
)
BOUNDED_TABLES = (
    "component_versions", "check_state", "scheduler_jobs", "actuator_health", "actuator_checks",
    "actuator_cascade_checks", "guard_streaks", "guard_failures", "deploy_versions", "judged",
)  # one row per component, check, job, service or processor, and the judged mark: never pruned


def cutoffs(config: Config, now: datetime) -> Cutoffs:
    """The rules' parameters at ``now`` from the ``retention`` and ``runs`` sections."""
    today = min(now.astimezone(p.tz).date() for p in config.pipelines)
    days = {setting: config.retention.days(setting) for setting in RETENTION_SETTINGS}
    return Cutoffs(now, today, days, config.runs.accept_past_days, config.runs.track_days)


def pruner(store: PrunableStore, config: Config, host: Host | None = None) -> Pruner:
    """A pruner of every rule on ``store`` (counting rows in ``host``'s metrics if given)."""
    counted = None
    if host is not None:
        metric = host.metrics.rows_pruned
        counted = lambda table, rows: metric.labels(table).inc(rows)  # noqa: E731
    return Pruner(store, RULES, batch_rows=config.retention.batch_rows, on_pruned=counted)


@dataclass
class PruneJob:
    """The ``prune`` job: one bounded pass, then the space given back."""

    host: Host
    pruner: Pruner
    last: Pruned | None = None

    def __call__(self, now: datetime) -> None:
        config = self.host.config
        result = self.pruner.prune(cutoffs(config, now), max_rows=config.retention.max_rows_per_run)
        if result.total:
            result.reclaimed_bytes = self.pruner.store.reclaim()
            log.info("event=store.pruned rows=%d complete=%s reclaimed_bytes=%d %s", result.total,
                     result.complete, result.reclaimed_bytes,
                     " ".join(f"{t}={n}" for t, n in result.rows.items() if n))
        self.last = result


def install_retention(host: Host) -> PruneJob | None:
    """Register the ``prune`` job (hourly on the ticks, and ``POST /v1/jobs/prune``) when the
    store has components' tables (both stores do)."""
    store = host.store
    if not isinstance(store, PrunableStore):
        return None
    job = PruneJob(host, pruner(store, host.config, host))
    host.add_job(JOB, job, every_s=JOB_EVERY_S)
    return job
