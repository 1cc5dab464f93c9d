"""The SLO engine: unit ledgers kept up to date on ingest, evaluated at any ``now``.

Counts are exact integers of units (runs, attempts, probes) in whole-minute windows, never
extrapolated. The error budget is counted in the same units: ``(1 - objective) * N`` runs
you may miss, where N is the units the window holds (for a calendar window: the units the
whole period is expected to hold, from the schedule when there is one, else from the
trailing period of the same length). Ratios are computed with exact fractions.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field, replace
from datetime import date, datetime, timedelta
from fractions import Fraction
from itertools import groupby
from operator import attrgetter
from typing import TYPE_CHECKING, Any, ClassVar, Literal, Protocol
from zoneinfo import ZoneInfo

from monitor.interest import Interest
from slo.alerting import alerts_for, run_labels
from slo.ledger import UnitLedger
from slo.sli import REGISTRY, SLI, CheckReading, HealthProbe
from slo.sli.deadline import Deadline
from slo.spec import SLOSpec
from slo.windows import (
    MINUTES_PER_DAY,
    Bounds,
    at_minute,
    burn_windows,
    local_midnight,
    minute_of,
    retention_minutes,
    scaled_minutes,
    window_bounds,
)

if TYPE_CHECKING:
    from alerts.model import Alert
    from alerts.router import Router
    from monitor.config import Config, PipelineConfig
    from monitor.tracker import Update

Status = Literal["ok", "warning", "breach", "insufficient_data"]


@dataclass(frozen=True)
class WindowCount:
    """Good and total units in one burn-rate window, and the burn rate there."""

    label: str
    minutes: int
    good: int
    total: int
    burn_rate: float


@dataclass(frozen=True)
class DayCount:
    """Good and total units of one local day of an SLO window (its history)."""

    day: date
    good: int
    total: int

    def as_dict(self) -> dict[str, Any]:
        return {"date": self.day.isoformat(), "good": self.good, "total": self.total}


@dataclass(frozen=True)
class SLOStatus:
    """One SLO evaluated at one time."""

    name: str
    pipeline: str
    kind: str
    unit: str
    objective: float
    window: str
    window_start: datetime
    as_of: datetime
    good: int
    total: int
    budget_basis: int  # N: the units the budget is a share of
    budget_total: Fraction  # units that may be bad
    budget_consumed: int  # bad units
    projected_bad: Fraction | None  # bad units expected by the end of the projection horizon
    status: Status
    burn_rate: float  # over the whole SLO window
    windows: tuple[WindowCount, ...]
    bad_units: tuple[tuple[str, int], ...] = ()  # SLOs counted in runs: (key, epoch s), oldest first
    labels: dict[str, str] = field(default_factory=dict)
    streak: tuple[tuple[str, int], ...] = ()  # runs: the trailing bad runs, newest first
    days: tuple[DayCount, ...] | None = None  # per local day of the window, when asked for

    @property
    def bad(self) -> int:
        return self.total - self.good

    @property
    def sli(self) -> float | None:
        """good / total, or None when the window holds no units (nothing was due)."""
        return self.good / self.total if self.total else None

    @property
    def budget_remaining_units(self) -> Fraction:
        return self.budget_total - self.budget_consumed

    @property
    def budget_remaining(self) -> float:
        """Share of the budget left: 1 untouched, 0 exhausted, negative when breached."""
        if self.budget_total == 0:
            return 1.0
        return float(self.budget_remaining_units / self.budget_total)

    def as_dict(self) -> dict[str, Any]:
        out: dict[str, Any] = {
            "name": self.name,
            "pipeline": self.pipeline,
            "kind": self.kind,
            "unit": self.unit,
            "objective": self.objective,
            "window": self.window,
            "window_start": self.window_start.isoformat(),
            "time": self.as_of.isoformat(),
            "sli": self.sli,
            "good": self.good,
            "total": self.total,
            "bad": self.bad,
            "budget_basis": self.budget_basis,
            "budget_total": float(self.budget_total),
            "budget_consumed": self.budget_consumed,
            "budget_remaining_units": float(self.budget_remaining_units),
            "budget_remaining": self.budget_remaining,
            "projected_bad": None if self.projected_bad is None else float(self.projected_bad),
            "status": self.status,
            "burn_rate": self.burn_rate,
            "burn_rates": {w.label: w.burn_rate for w in self.windows},
            "windows": [
                {"window": w.label, "good": w.good, "total": w.total, "burn_rate": w.burn_rate}
                for w in self.windows
            ],
            "labels": dict(self.labels),
        }
        if self.days is not None:
            out["history"] = [d.as_dict() for d in self.days]
        return out


def burn_rate(good: int, total: int, allowed: Fraction) -> float:
    """(bad / total) / (1 - objective); 0 for an empty window."""
    if total == 0:
        return 0.0
    return float(Fraction(total - good, total) / allowed)


class Counter(Protocol):
    """Good/total units per range of minutes (a ``UnitLedger``, or arrays from a recompute)."""

    def counts(self, start: int, end: int) -> tuple[int, int]: ...

    def bad_units(self, start: int, end: int) -> list[tuple[str, int]]: ...

    def streak(self, start: int, end: int) -> list[tuple[str, int]]: ...


Scheduled = Callable[[int, int], "int | None"]


def judge(
    spec: SLOSpec, tz: ZoneInfo, counter: Counter, scheduled: Scheduled, now: datetime,
    labels: dict[str, str] | None = None, *, daily: bool = False,
) -> SLOStatus:
    """An SLO's status at ``now`` from its unit counts (``scheduled``: the calendar's volume);
    ``daily``: with the units of each local day of the window (``SLOStatus.days``)."""
    objective = Fraction(str(spec.objective))
    allowed = 1 - objective
    bounds = window_bounds(now, spec.window, tz)
    good, total = counter.counts(bounds.start, bounds.end)
    bad = total - good
    basis = total
    if bounds.period_end is not None:
        volume = scheduled(bounds.start, bounds.period_end)
        if volume is None:  # no calendar: the trailing period's volume
            volume = counter.counts(bounds.end - bounds.length, bounds.end)[1]
        basis = max(total, volume)
    budget = allowed * basis
    windows = tuple(
        WindowCount(w.label, w.minutes, g, t, burn_rate(g, t, allowed))
        for w in burn_windows(spec.window, spec.alerting)
        for g, t in [counter.counts(bounds.end - w.minutes, bounds.end)]
    )
    status: Status = "ok"
    low = spec.alerting.budget.low_remaining_pct
    if basis < spec.alerting.min_units:
        status = "insufficient_data"  # a cold start: too few units to judge a budget by
    elif bad > budget:
        status = "breach"
    elif (budget and low is not None and (budget - bad) < Fraction(str(low)) / 100 * budget) or (
        total and Fraction(good, total) < objective
    ):
        status = "warning"
    runs = spec.unit == "runs" and bad > 0  # per-run alerts need the bad runs' keys
    # Runs in a row are runs in a row across a calendar period's start: the new period's
    # budget is whole again, but the streak (and its page) goes on until a good run.
    trailing = bounds.end - bounds.length if bounds.period_end is not None else bounds.start
    streak = spec.unit == "runs" and (bad > 0 or trailing < bounds.start)
    return SLOStatus(
        name=spec.name, pipeline=spec.pipeline, kind=spec.sli.kind, unit=spec.unit,
        objective=spec.objective, window=spec.window.label,
        window_start=at_minute(bounds.start), as_of=now,
        good=good, total=total, budget_basis=basis, budget_total=budget,
        budget_consumed=bad, projected_bad=_projection(counter, bounds, good, total, basis),
        status=status, burn_rate=burn_rate(good, total, allowed), windows=windows,
        bad_units=tuple(counter.bad_units(bounds.start, bounds.end)) if runs else (),
        labels=labels if labels is not None else slo_labels(spec),
        streak=tuple(counter.streak(min(trailing, bounds.start), bounds.end)) if streak else (),
        days=tuple(daily_counts(counter, bounds, tz)) if daily else None,
    )


def daily_counts(counter: Counter, bounds: Bounds, tz: ZoneInfo) -> list[DayCount]:
    """Good and total units of each local day (in ``tz``) the window ``bounds`` touches, oldest
    first; the first and last days are cut at the window's edges, so the days add up to it."""
    day = at_minute(bounds.start).astimezone(tz).date()
    last = at_minute(bounds.end - 1).astimezone(tz).date()
    out: list[DayCount] = []
    while day <= last:
        after = day + timedelta(days=1)
        lo = max(bounds.start, minute_of(local_midnight(day, tz)))
        hi = min(bounds.end, minute_of(local_midnight(after, tz)))
        good, total = counter.counts(lo, hi)
        out.append(DayCount(day, good, total))
        day = after
    return out


def _projection(counter: Counter, bounds: Bounds, good: int, total: int, basis: int) -> Fraction | None:
    """Bad units expected at the end of the horizon, at the window's bad-unit pace.

    Calendar: the rest of the period, at the pace of the trailing period, over the units
    still expected. Rolling: the next quarter window, at the window's pace, over as many
    units as the last quarter held, minus the bad units that leave the window meanwhile.
    """
    bad = total - good
    if bounds.period_end is not None:
        g, t = counter.counts(bounds.end - bounds.length, bounds.end)
        if t == 0:
            return None
        return bad + Fraction(t - g, t) * max(basis - total, 0)
    if total == 0:
        return None
    horizon = max(bounds.length // 4, 1)
    coming = counter.counts(bounds.end - horizon, bounds.end)[1]
    g, t = counter.counts(bounds.start, bounds.start + horizon)
    return bad - (t - g) + Fraction(bad, total) * coming


class TrackedSLO:
    """One SLO's spec, SLI plug-in and ledger."""

    def __init__(self, spec: SLOSpec, pipeline: PipelineConfig) -> None:
        factory = REGISTRY.get(spec.sli.kind)
        if factory is None:
            raise KeyError(f"unknown SLI kind {spec.sli.kind!r}; allowed: {', '.join(REGISTRY)}")
        self.spec = spec
        self.pipeline = pipeline
        self.sli: SLI = factory(spec, pipeline)
        self.retention = retention_minutes(spec.window)
        self.ledger = UnitLedger(self.retention)
        self.labels = slo_labels(spec)

    def evaluate(self, now: datetime, *, daily: bool = False) -> SLOStatus:
        self.sli.advance(now, self.ledger)
        self.ledger.prune(minute_of(now) - self.retention)
        return judge(
            self.spec, self.pipeline.tz, self.ledger, self.sli.expected_units, now, self.labels,
            daily=daily,
        )


def slo_labels(spec: SLOSpec) -> dict[str, str]:
    """Alert labels: the SLO and its pipeline, and the phase, processor or service it is about."""
    labels = {"slo": spec.name, "pipeline": spec.pipeline}
    sli = spec.sli
    phase = getattr(sli, "phase", None)
    if phase:
        labels["phase"] = phase
    processors = getattr(sli, "processors", None)
    if processors and len(processors) == 1:
        labels["processor"] = processors[0]
    service = getattr(sli, "service", None)
    if service:
        labels["service"] = service
    return labels


def _fold(tracked: TrackedSLO, updates: Sequence[Update], *, quiet: bool) -> None:
    """Fold updates into one SLO; ``quiet``: imported history, counted, but its bad units open
    no alert."""
    ledger = tracked.ledger
    ledger.quiet = quiet
    try:
        tracked.sli.on_updates(updates, ledger)
    finally:
        ledger.quiet = False


class SLOEngine:
    """Every configured SLO: fed on ingest (``on_update``) and probes, evaluated at any time."""

    # What a snapshot keeps (monitor.app.snapshot): the ledgers and the SLIs' state. Not the
    # alerts firing (the router's, adopted on the first tick after a start) nor the caches.
    snapshot_fields: ClassVar[tuple[str, ...]] = ("_slos", "_by_pipeline", "_probe_status")

    def __init__(self, config: Config, slos: Sequence[SLOSpec] | None = None) -> None:
        self.config = config
        specs = tuple(config.slos) if slos is None else tuple(slos)
        self._lock = threading.RLock()
        self._specs = specs
        self._slos: list[TrackedSLO] = []
        self._by_pipeline: dict[str, list[TrackedSLO]] = {}
        self._firing: set[str] = set()
        self._adopted = False
        self._probe_status: dict[str, str] = {}
        self._changed = False
        self._next_deadline: int | None = None
        self._reset()

    def _reset(self) -> None:
        self._slos = [
            TrackedSLO(spec, self.config.pipeline_map[spec.pipeline]) for spec in self._specs
        ]
        self._by_pipeline = {}
        for tracked in self._slos:
            self._by_pipeline.setdefault(tracked.spec.pipeline, []).append(tracked)
        self._index()

    def _index(self) -> None:
        slos = self._slos  # by position: a batch's updates are sorted by SLO into a list each
        self._interest = Interest(range(len(slos)), lambda i, key: slos[i].sli.wants(key))
        self._next_deadline = None

    def snapshot_restored(self) -> None:
        """After a snapshot put ``_slos`` back: index the restored SLOs, not the ones built."""
        with self._lock:
            self._index()

    @property
    def specs(self) -> tuple[SLOSpec, ...]:
        return self._specs

    def reset(self) -> None:
        """Forget every unit (before replaying the store through ``on_update``)."""
        with self._lock:
            self._reset()

    def on_update(self, update: Update) -> None:
        """Fold one newly stored event in (on a restart's rebuild)."""
        self.on_updates((update,))

    def on_updates(self, updates: Sequence[Update]) -> None:
        """Fold a batch of newly stored events in, oldest first (a ``Collector.listeners``
        entry): each event reaches only the SLOs whose SLI wants its key.

        SLO after SLO, each with the batch's updates it wants in their order (``on_updates``):
        an SLO's state is its own, so the order of the SLOs between them changes nothing."""
        with self._lock:
            interest, slos = self._interest, self._slos
            for quiet, alike in groupby(updates, attrgetter("backfill")):
                wanted: list[list[Update]] = [[] for _ in slos]
                for update in alike:
                    for i in interest[update.key]:
                        wanted[i].append(update)
                for tracked, some in zip(slos, wanted, strict=True):
                    if some:
                        _fold(tracked, some, quiet=quiet)

    def observe_probe(self, probe: HealthProbe) -> None:
        """Fold one health probe in."""
        with self._lock:
            for tracked in self._slos:
                tracked.sli.on_probe(probe, tracked.ledger)
            if self._probe_status.get(probe.service) != probe.status:
                self._probe_status[probe.service] = probe.status
                self._changed = True

    def wake(self, last: datetime, now: datetime) -> bool:
        """Whether an evaluation is due before its interval: a deadline passed since ``last``
        (a run turned bad: the page for two in a row goes out at the deadline, not minutes
        later) or a service's probe status changed (an outage began or ended)."""
        with self._lock:
            if self._changed:
                return True
            last_s = int(last.timestamp())
            if self._next_deadline is None or self._next_deadline <= last_s:
                found = [t.sli.next_deadline(last_s) for t in self._slos
                         if isinstance(t.sli, Deadline)]
                self._next_deadline = min(found, default=None)
            return self._next_deadline is not None and int(now.timestamp()) >= self._next_deadline

    def observe_check(self, reading: CheckReading) -> None:
        """Fold one data check result in."""
        with self._lock:
            slos = self._by_pipeline.get(reading.pipeline, []) if reading.pipeline else self._slos
            for tracked in slos:
                tracked.sli.on_check(reading, tracked.ledger)

    def evaluate(self, now: datetime, *, daily: bool = False) -> list[SLOStatus]:
        """Every SLO at ``now`` (windows end at the minute containing ``now``); ``daily``: with
        each one's units per local day of its window."""
        if now.tzinfo is None:
            raise ValueError("evaluate(now) needs a timezone-aware time")
        with self._lock:
            self._changed = False
            return [tracked.evaluate(now, daily=daily) for tracked in self._slos]

    def run_verdicts(self, start: datetime, end: datetime) -> list[tuple[str, date, bool]]:
        """(pipeline, run date, good) of every run unit of the SLOs counted in runs whose
        time is in ``[start, end)`` (deadlines up to ``end`` counted first): what "the runs
        met their SLOs" is measured by."""
        out: list[tuple[str, date, bool]] = []
        with self._lock:
            for tracked in self._slos:
                if tracked.spec.unit != "runs":
                    continue
                tracked.sli.advance(end, tracked.ledger)
                for key, _ts, good in tracked.ledger.units(minute_of(start), minute_of(end)):
                    about = run_labels(key).get("run_date")
                    if about is not None:
                        out.append((tracked.spec.pipeline, date.fromisoformat(about), good))
        return out

    @property
    def probe_retention_minutes(self) -> int:
        """How far back availability SLOs need health probes (0: none is configured)."""
        return max((t.retention for t in self._slos if t.spec.sli.kind == "availability"),
                   default=0)

    @property
    def history_days(self) -> int:
        """Run dates the longest SLO window reaches back: what a rebuild's tracker must keep."""
        return max((t.retention for t in self._slos), default=0) // MINUTES_PER_DAY + 2

    def rebuild(self, updates: Iterable[Update], probes: Iterable[HealthProbe] = ()) -> int:
        """Replace all state by folding in replayed updates and probes; returns updates folded.

        The updates are stored events applied in order to a fresh ``RunTracker`` that keeps
        ``history_days`` run dates (modes resolved, runs complete as they were live).
        """
        count = 0
        with self._lock:
            self._reset()
            for update in updates:
                self.on_update(update)
                count += 1
            for probe in probes:
                self.observe_probe(probe)
        return count

    # -- alerting

    def alerts(self, statuses: Iterable[SLOStatus], *, recent_only: bool = False) -> list[Alert]:
        """The alerts the statuses call for (firing now); ``recent_only``: only those about
        bad units inside the actionable horizon (``recent_units``), which may open."""
        specs = {t.spec.name: t for t in self._slos}
        out: list[Alert] = []
        with self._lock:
            firing = set(self._firing)
        for status in statuses:
            tracked = specs[status.name]
            if recent_only:
                oldest = int(status.as_of.timestamp() - tracked.pipeline.horizon.max_event_age_h * 3600)
                if not tracked.ledger.live_bad_since(oldest):
                    continue  # nothing bad happened live lately: history alone pages no one
                status = recent_units(status, oldest, tracked.ledger)
            out.extend(alerts_for(tracked.spec, status, scaled(tracked), firing))
        return out

    def tick(self, now: datetime, router: Router) -> list[SLOStatus]:
        """Evaluate at ``now``; fire what holds and resolve what no longer does."""
        if not self._adopted:
            # The router's alerts outlive a restart: take over the SLO alerts an earlier
            # process raised, or those whose condition cleared meanwhile would never resolve.
            names = {t.spec.name for t in self._slos}
            adopted = {a.key for a in router.active() if a.labels.get("slo") in names}
            with self._lock:
                self._firing |= adopted
                self._adopted = True
        statuses = self.evaluate(now)
        wanted = self.alerts(statuses)
        may_open = {a.key for a in self.alerts(statuses, recent_only=True)}
        with self._lock:
            # A firing alert stays until its condition clears; a new one opens only about
            # the present (history counts in the budget, but pages no one).
            wanted = [a for a in wanted if a.key in self._firing or a.key in may_open]
            for alert in wanted:
                if alert.key not in self._firing:
                    router.fire(alert)  # once per episode: the router counts repeats
            keys = {a.key for a in wanted}
            for key in sorted(self._firing - keys):
                router.resolve(key, now)
            self._firing = keys
        return statuses

    def alert_job(self, router: Router) -> Callable[[datetime], None]:
        """A periodic job for ``Phasewatch.add_job``: ``tick(now, router)``."""

        def job(now: datetime) -> None:
            self.tick(now, router)

        return job


def recent_units(status: SLOStatus, oldest: int, ledger: UnitLedger) -> SLOStatus:
    """``status`` keeping only the bad units that may open an alert (``monitor.horizon``):
    recorded live, at or after epoch second ``oldest``. History counts in the budget."""
    units = tuple(unit for unit in status.bad_units
                  if unit[1] >= oldest and not ledger.is_quiet(unit[0]))
    return status if len(units) == len(status.bad_units) else replace(status, bad_units=units)


def scaled(tracked: TrackedSLO) -> list[tuple[str, float, int, int]]:
    """(severity, factor, long minutes, short minutes) of each burn-rate pair of an SLO."""
    spec = tracked.spec
    return [
        (
            pair.severity,
            pair.factor,
            scaled_minutes(pair.long_min, spec.window, spec.alerting),
            scaled_minutes(pair.short_min, spec.window, spec.alerting),
        )
        for pair in spec.alerting.burn_rates
    ]
