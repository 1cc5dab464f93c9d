"""Entity coverage of a processor's finish: "entity coverage drop" and "mass circuit-breaker lockout".

A processor configured with ``coverage:`` that finishes with ``records / expected_records``
below ``min_ratio`` raises "entity coverage drop" (warning, the P1 of incident 13) on the
first tick after its finish, naming the failure categories its finishing event reports.
While the drop persists, more than ``lockouts_over`` entity lockouts (circuit breakers) raise
"mass circuit-breaker lockout". Both resolve when a later finish covers enough.

Event attribute convention (DESIGN §3 ``attributes``, string values):
- ``failures.<category>``: how many entities failed for that reason
  (``failures.dependency_missing: "281"``);
- ``failure_categories``: the categories without counts, comma-separated;
- ``lockouts``: entities the processor's circuit breaker has locked out (``"474"``).
"""

from __future__ import annotations

import json
import math
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime

from monitor.actuator.config import EntityCoverageConfig
from monitor.actuator.context import Context
from monitor.actuator.notify import run_labels
from monitor.store.base import ComponentStore

Slot = tuple[tuple[str, str, str], str, str]  # (run key, phase, processor)
FAILURE_PREFIX = "failures."


@dataclass
class _Drop:
    finished_at: datetime
    labels: dict[str, str | None]
    attributes: dict[str, str]
    locked: bool = False


def failure_categories(attributes: Mapping[str, str]) -> dict[str, int | None]:
    """Failure categories an event's attributes report, with counts where given, largest first."""
    out: dict[str, int | None] = {}
    for key, value in attributes.items():
        if key.startswith(FAILURE_PREFIX) and len(key) > len(FAILURE_PREFIX):
            out[key[len(FAILURE_PREFIX):]] = _count(value)
    for name in (attributes.get("failure_categories") or "").split(","):
        if name.strip():
            out.setdefault(name.strip(), None)
    return dict(sorted(out.items(), key=lambda kv: (-(kv[1] or 0), kv[0])))


def describe_categories(categories: Mapping[str, int | None]) -> str:
    return ", ".join(k if v is None else f"{k}={v}" for k, v in categories.items())


def _count(value: str | None) -> int | None:
    try:
        return int(value) if value is not None else None
    except ValueError:
        return None


def finishing_attributes(store: ComponentStore, run: tuple[str, str, str], phase: str,
                         processor: str) -> dict[str, str]:
    """The attributes of the processor's latest finishing event in the run (from the store)."""
    rows = store.read(
        "SELECT body FROM events WHERE pipeline = ? AND run_date = ? AND mode = ? AND phase = ?"
        " AND processor = ? AND status IN ('succeeded', 'failed', 'skipped')"
        " ORDER BY ts DESC, seq DESC LIMIT 1", (*run, phase, processor),
    )
    if not rows:
        return {}
    attributes = json.loads(rows[0][0]).get("attributes") or {}
    return {str(k): str(v) for k, v in attributes.items()}


class EntityCoverage:
    """Watches configured processors' finishes (run on every actuator tick)."""

    def __init__(self, ctx: Context, events: ComponentStore) -> None:
        self.ctx = ctx
        self.events = events
        self._drops: dict[Slot, _Drop] = {}
        # Alerts are durable: those fired before a restart are settled by the first check.
        self._restored = [(kind, labels) for kind in ("entity_coverage_drop", "mass_lockout")
                          for labels in ctx.notifier.active(kind)]

    def active(self) -> list[Slot]:
        """The (run, phase, processor) whose coverage drop is firing."""
        return list(self._drops)

    def check(self, now: datetime) -> None:
        seen: set[Slot] = set()
        for run in self.ctx.recent_runs(now):
            pipeline = self.ctx.pipeline(run.pipeline)
            if pipeline is None:
                continue
            for phase in pipeline.phases:
                for proc in phase.processors:
                    if proc.coverage is None:
                        continue
                    found = run.phases[phase.id].processors.get(proc.name)
                    if (found is None or found.finished_at is None or found.records is None
                            or not found.expected_records):
                        continue
                    slot = (run.key, phase.id, proc.name)
                    if found.records / found.expected_records < proc.coverage.min_ratio:
                        seen.add(slot)
                        self._drop(slot, proc.coverage, found.records, found.expected_records,
                                   found.finished_at, now)
        for slot in [s for s in self._drops if s not in seen]:
            drop = self._drops.pop(slot)
            self.ctx.notifier.resolve("entity_coverage_drop", drop.labels, now)
            if drop.locked:
                self.ctx.notifier.resolve("mass_lockout", drop.labels, now)
        if self._restored:
            self._settle_restored(now)

    def _settle_restored(self, now: datetime) -> None:
        """Resolve the restored alerts whose drop is over; a lockout alert of a drop that
        still fires resolves with it (the drop itself re-fired under the same key)."""
        restored, self._restored = self._restored, []
        for kind, labels in restored:
            names = ("pipeline", "run_date", "mode", "phase", "processor")
            if not set(names) <= labels.keys():
                continue
            pipeline, rd, mode, phase, processor = (labels[n] for n in names)
            drop = self._drops.get(((pipeline, rd, mode), phase, processor))
            if drop is None:
                self.ctx.notifier.resolve(kind, labels, now)
            elif kind == "mass_lockout":
                drop.locked = True

    def _drop(self, slot: Slot, cfg: EntityCoverageConfig, records: int, expected: int,
              finished_at: datetime, now: datetime) -> None:
        (pipeline, rd, mode), phase, processor = slot
        drop = self._drops.get(slot)
        where = f"{processor} in {phase} of {pipeline} {rd} ({mode})"
        covered = f"{records}/{expected} ({records / expected:.0%})"
        if drop is None or drop.finished_at != finished_at:
            attributes = finishing_attributes(self.events, slot[0], phase, processor)
            drop = self._drops[slot] = _Drop(
                finished_at, run_labels(pipeline, rd, mode, phase, processor=processor),
                attributes, drop.locked if drop else False)
            categories = describe_categories(failure_categories(attributes))
            self.ctx.notifier.fire(
                "entity_coverage_drop", "warning",
                f"entity coverage drop: {where} covered {covered}, below "
                f"{cfg.min_ratio:.0%}; failure categories: {categories or 'none reported'}",
                now, drop.labels, details=categories,
            )
        lockouts = self._lockouts(cfg, drop.attributes)
        if lockouts is not None and lockouts > cfg.lockouts_over and not drop.locked:
            drop.locked = True
            self.ctx.notifier.fire(
                "mass_lockout", "warning",
                f"mass circuit-breaker lockout: {where} has {lockouts} entities locked out "
                f"(over {cfg.lockouts_over}) while its coverage stays at {covered}; clear the "
                "lockouts before re-running", now, drop.labels,
            )

    def _lockouts(self, cfg: EntityCoverageConfig, attributes: Mapping[str, str]) -> int | None:
        if cfg.lockouts_check is not None:
            value = self.ctx.checks.latest(cfg.lockouts_check)
            if value is not None and math.isfinite(value.value):  # int(inf) raises
                return int(value.value)
        return _count(attributes.get("lockouts"))
