"""The SLI plug-in protocol, the health-probe input, and helpers the kinds share.

An SLI turns what the pipeline reports into *units* with a verdict (good or bad) at a
time, written to the SLO's ``UnitLedger`` under a stable key. Kinds are registered by
their config ``kind`` in ``slo.sli.REGISTRY``.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import date, datetime
from typing import TYPE_CHECKING, Protocol

from monitor.interest import EventKey
from slo.ledger import UnitLedger
from slo.spec import ProbeStatus, SLOSpec

if TYPE_CHECKING:  # monitor imports slo.spec: only names for the type checker here
    from monitor.config import PipelineConfig
    from monitor.events import Event
    from monitor.tracker import RunState, Update

DONE = frozenset({"succeeded", "skipped"})
TERMINAL = frozenset({"succeeded", "skipped", "failed"})
SUCCEEDED = frozenset({"succeeded"})


@dataclass(frozen=True)
class HealthProbe:
    """One health check of a service: when, and whether it passed (application/health+json)."""

    service: str
    time: datetime
    status: ProbeStatus
    pipeline: str | None = None  # None: the service of whichever pipeline names it

    def __post_init__(self) -> None:
        if self.time.tzinfo is None:
            raise ValueError("HealthProbe.time must be timezone-aware")
        if self.status not in ("pass", "warn", "fail"):
            raise ValueError(f"HealthProbe.status {self.status!r}; allowed: pass, warn, fail")


@dataclass(frozen=True)
class CheckReading:
    """One data check result: its value at a time, for a run date (and pipeline) if known."""

    name: str
    value: float
    time: datetime
    run_date: date | None = None
    pipeline: str | None = None  # None: whichever pipeline's SLO names the check

    def __post_init__(self) -> None:
        if self.time.tzinfo is None:
            raise ValueError("CheckReading.time must be timezone-aware")


class SLI(Protocol):
    """Turns updates and probes into unit verdicts in a ledger."""

    def wants(self, key: EventKey) -> bool:
        """Whether events of this (pipeline, phase, processor, status) can change a verdict:
        asked once per key (``monitor.interest``); only those events reach ``on_update``.
        True for any event ``on_update`` might use; False only where it surely ignores it."""
        ...

    def on_update(self, update: Update, ledger: UnitLedger) -> None:
        """Fold one newly stored event (with the run state after it) into the ledger."""
        ...

    def on_updates(self, updates: Sequence[Update], ledger: UnitLedger) -> None:
        """``on_update`` of each update in turn (the engine's way in: one call a batch).
        The engine sends only updates of the keys the SLI ``wants``: what ``on_update``
        checks of an event's key may be taken as known here."""
        ...

    def on_probe(self, probe: HealthProbe, ledger: UnitLedger) -> None:
        """Fold one health probe into the ledger."""
        ...

    def on_check(self, reading: CheckReading, ledger: UnitLedger) -> None:
        """Fold one data check result into the ledger."""
        ...

    def advance(self, now: datetime, ledger: UnitLedger) -> None:
        """Count what became due by ``now`` (runs past their deadline)."""
        ...

    def expected_units(self, start: int, end: int) -> int | None:
        """Units a schedule says the minutes ``[start, end)`` hold, or None if unknown."""
        ...


SLIFactory = Callable[[SLOSpec, "PipelineConfig"], SLI]


class EventSLI:
    """Shared behaviour of the kinds computed from pipeline events."""

    def __init__(self, spec: SLOSpec, pipeline: PipelineConfig) -> None:
        self.spec = spec
        self.pipeline = pipeline
        sli = spec.sli
        self.phase: str | None = getattr(sli, "phase", None)
        modes = getattr(sli, "modes", None)
        self.modes: frozenset[str] | None = frozenset(modes) if modes is not None else None
        procs: tuple[str, ...] | None = getattr(sli, "processors", None)
        self.processor_level = procs is not None
        self.processors: frozenset[str] | None = frozenset(procs) if procs else None

    def wants(self, key: EventKey) -> bool:
        return self.wants_phase(key)

    def on_updates(self, updates: Sequence[Update], ledger: UnitLedger) -> None:
        fold = self.on_update
        for update in updates:
            fold(update, ledger)

    def on_update(self, update: Update, ledger: UnitLedger) -> None:
        raise NotImplementedError

    def wants_phase(self, key: EventKey) -> bool:
        """The event is this SLO's pipeline and phase (the mode is known only from the run)."""
        pipeline, phase, _, _ = key
        return pipeline == self.spec.pipeline and (self.phase is None or phase == self.phase)

    def wants_at_level(self, key: EventKey, statuses: frozenset[str]) -> bool:
        """``wants_phase``, at the SLO's level (``at_level``), with one of ``statuses``."""
        return key[3] in statuses and self.wants_phase(key) and self.processor_at_level(key[2])

    def selects(self, update: Update) -> bool:
        """The event is this SLO's pipeline, phase and mode."""
        event = update.event
        return (
            event.pipeline == self.spec.pipeline
            and (self.phase is None or event.phase == self.phase)
            and (self.modes is None or update.run.mode in self.modes)
        )

    def at_level(self, event: Event) -> bool:
        """The event is at the SLO's level: a selected processor, or phase-level."""
        return self.processor_at_level(event.processor)

    def processor_at_level(self, processor: str | None) -> bool:
        """``at_level`` of an event of ``processor`` (None: a phase-level event)."""
        if not self.processor_level:
            return processor is None
        return processor is not None and (self.processors is None or processor in self.processors)

    def on_probe(self, probe: HealthProbe, ledger: UnitLedger) -> None:
        return None

    def on_check(self, reading: CheckReading, ledger: UnitLedger) -> None:
        return None

    def advance(self, now: datetime, ledger: UnitLedger) -> None:
        return None

    def expected_units(self, start: int, end: int) -> int | None:
        return None


def run_unit(update: Update, event: Event | None = None) -> str:
    """Key of a run (and processor, when ``event`` has one): ``2026-01-17/overnight[/name]``."""
    key = run_key_text(update.run)
    if event is not None and event.processor is not None:
        key += f"/{event.processor}"
    return key


def run_key_text(run: RunState) -> str:
    """Key of a run as a unit: ``2026-01-17/overnight``."""
    return f"{run.run_date.isoformat()}/{run.mode}"


def epoch(when: datetime) -> int:
    """Epoch seconds of an aware datetime."""
    return int(when.timestamp())
