"""Transition policy: is a phase due in a run, by which rule, and what is still missing.

Pure functions of config, run state and time. Rules are tried in order and the first one
satisfied gives the reason: ``all_complete``, ``critical_plus_fraction``, ``tier``; a
backstop time of day gives ``backstop`` (degraded: whatever exists).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import date, datetime, time, timedelta

from monitor.actuator.config import (
    AllCompleteRule,
    BackstopConfig,
    CriticalPlusFractionRule,
    TiersRule,
    TransitionRule,
)
from monitor.config import PhaseConfig, PipelineConfig
from monitor.tracker import PhaseRun, RunState


@dataclass(frozen=True)
class Verdict:
    """The policy's answer for one target phase in one run."""

    due: bool
    reason: str | None = None  # all_complete | critical_plus_fraction | tier | backstop
    rule: str | None = None
    upstream: tuple[str, ...] = ()
    done: tuple[str, ...] = ()
    missing: tuple[str, ...] = ()
    critical_missing: tuple[str, ...] = ()
    expected: int = 0
    first_completion: datetime | None = None
    last_completion: datetime | None = None

    @property
    def degraded(self) -> bool:
        """Due by a rule that accepts less than a complete upstream, with work missing."""
        return self.due and self.reason != "all_complete" and bool(self.missing)

    def detail(self) -> dict[str, object]:
        return {"rule": self.rule, "upstream": list(self.upstream), "done": list(self.done),
                "missing": list(self.missing), "critical_missing": list(self.critical_missing),
                "expected": self.expected}


def evaluate(pipeline: PipelineConfig, phase: PhaseConfig, run: RunState, now: datetime) -> Verdict:
    """Whether ``phase`` is due in ``run`` at ``now`` by its rules (backstops not included)."""
    upstream = pipeline.upstream_of(phase.id)
    if not upstream:
        return Verdict(False)
    parts = [_one(phase.policy.rules, run.phases[up], now) for up in upstream]
    done = tuple(n for p in parts for n in p.done)
    missing = tuple(n for p in parts for n in p.missing)
    critical_missing = tuple(n for p in parts for n in p.critical_missing)
    firsts = [p.first_completion for p in parts if p.first_completion]
    lasts = [p.last_completion for p in parts if p.last_completion]
    # Every upstream must be due; the reason is the weakest (a degraded one, if any).
    weakest = next((p for p in parts if not p.due), None) or next(
        (p for p in parts if p.reason != "all_complete"), parts[0]
    )
    return Verdict(
        all(p.due for p in parts), weakest.reason if weakest.due else None,
        weakest.rule if weakest.due else None, upstream, done, missing, critical_missing,
        sum(p.expected for p in parts), min(firsts) if firsts else None,
        max(lasts) if lasts else None,
    )


def _one(rules: tuple[TransitionRule, ...], up: PhaseRun, now: datetime) -> Verdict:
    expected = up.expectation.expected
    done = tuple(up.done)
    missing = tuple(up.missing)
    critical_missing = tuple(up.critical_missing)

    def make(due: bool, reason: str | None = None, rule: str | None = None) -> Verdict:
        return Verdict(due, reason, rule, (), done, missing, critical_missing, len(expected),
                       up.first_completion, up.last_completion)

    if up.is_complete():
        first = next((r for r in rules if isinstance(r, AllCompleteRule)), None)
        return make(True, "all_complete", first.name if first else "all_complete")
    if not expected:
        return make(False)
    for rule in rules:
        if isinstance(rule, CriticalPlusFractionRule):
            if not critical_missing and len(done) / len(expected) >= rule.min_fraction - 1e-9:
                return make(True, "critical_plus_fraction", rule.name)
        elif isinstance(rule, TiersRule):
            tier = _tier(rule, up, done, critical_missing, len(expected), now)
            if tier is not None:
                return make(True, "tier", tier)
    return make(False)


def _tier(rule: TiersRule, up: PhaseRun, done: tuple[str, ...],
          critical_missing: tuple[str, ...], expected: int, now: datetime) -> str | None:
    if any(name not in done for name in rule.require):
        return None
    for tier in rule.tiers:
        since = up.first_completion if tier.since == "first_completion" else up.last_completion
        if since is None or now - since < timedelta(minutes=tier.after_min):
            continue
        if tier.min_done is not None and len(done) < min(tier.min_done, expected):
            continue
        if tier.min_fraction is not None and len(done) / expected < tier.min_fraction - 1e-9:
            continue
        if tier.require_critical and critical_missing:
            continue
        return tier.name
    return None


def backstop_at(pipeline: PipelineConfig, backstop: BackstopConfig, run_date: date) -> datetime:
    """When a backstop fires for a run date (its time of day in the pipeline's timezone)."""
    hour, minute = (int(x) for x in backstop.at.split(":"))
    day = run_date + timedelta(days=backstop.offset_days)
    return datetime.combine(day, time(hour, minute), pipeline.tz)


def due_backstop(pipeline: PipelineConfig, phase: PhaseConfig, run: RunState,
                 now: datetime) -> BackstopConfig | None:
    """The backstop of this run's mode whose time has come (and not long gone), if any."""
    for backstop in phase.policy.backstops:
        if backstop.mode != run.mode:
            continue
        at = backstop_at(pipeline, backstop, run.run_date)
        if at <= now < at + timedelta(minutes=backstop.within_min):
            return backstop
    return None


def phase_started(phase_run: PhaseRun) -> bool:
    """Any sign of life of a phase in a run: a processor event, or a phase-level one."""
    return bool(phase_run.processors) or phase_run.phase_status is not None or bool(phase_run.batches)


def taken_over(phase_run: PhaseRun) -> bool:
    """The phase runs, or ran, by another path: a start, progress or finish of it that is
    not a failure. A phase whose only signs of life are failures (the orchestrator's
    phase-level ``failed``, a push that reached a crashing service) did not run: a trigger
    phasewatch holds for it still has to go."""
    if phase_run.phase_status not in (None, "failed"):
        return True
    return any(proc.status != "failed" for proc in list(phase_run.processors.values()))


def active_since(phase_run: PhaseRun, since: datetime) -> bool:
    """Did the phase show any activity at or after ``since``?"""
    for proc in list(phase_run.processors.values()):
        for when in (proc.status_at, proc.started_at, proc.last_heartbeat):
            if when is not None and when >= since:
                return True
    for batch in list(phase_run.batches.values()):
        if batch.updated_at >= since:
            return True
    return any(
        when is not None and when >= since
        for when in (phase_run.phase_started_at, phase_run.phase_finished_at)
    )


# A trigger missing what the one decided before it in its mode (this recent) missed too has
# a known gap: told when it began (and by the expected-list drift alert), not at every run.
RECURRING_WITHIN = timedelta(days=7)


def same_gap(missing: Sequence[str], before: Sequence[str] | None) -> bool:
    """Whether ``missing`` is not empty and exactly what ``before`` missed."""
    return bool(missing) and before is not None and sorted(before) == sorted(missing)


def phase_finished(phase_run: PhaseRun) -> bool:
    """Complete now or once before (a re-run is not late), or degraded (critical work done)."""
    return (phase_run.completed_at is not None or phase_run.is_complete()
            or phase_run.is_degraded())
