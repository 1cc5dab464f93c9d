"""Correlated incidents: processors failing with one error signature are one problem.

When processors of one pipeline (in any phases) fail with the same error signature
(``alerts.flood.error_signature``) within ``window_min`` of each other, the shared cause is
the problem, not each processor: one ``correlated_failure`` alert names every affected
processor. It opens ``settle_min`` after the second processor failed (so the processors
failing together are named in its first notification, well within ten minutes), unless every
one of them succeeded meanwhile (a problem over before it settled is not told), takes in
processors that fail later (told again when one of them is in a phase it did not name: the
problem spread, which is news even to whoever acknowledged it), and inhibits their
per-processor alerts (``inhibits``). It
resolves when every processor it names succeeded after its last failure, or when no
failure with the signature came for ``quiet_h``.

Fed by the collector (``observe``) and by the rebuild on start (``replay``: the failures
are relearned, nothing is raised); the incidents an earlier process opened are adopted from
the router on the first ``tick``.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import TYPE_CHECKING, ClassVar

from alerts.config import CorrelationConfig
from alerts.flood import error_signature, normalise_error
from alerts.model import Alert, alert_key
from alerts.severity import SeverityPolicy

if TYPE_CHECKING:
    from alerts.router import Router
    from monitor.events import Event
    from monitor.tracker import Update

log = logging.getLogger(__name__)

KIND = "correlated_failure"
_FOLDED = frozenset({"failed", "succeeded", "skipped"})  # the statuses _fold looks at
Subject = tuple[str, str]  # (phase, processor)


@dataclass
class _Group:
    """The failures of one pipeline with one signature."""

    pipeline: str
    signature: str
    text: str
    failed: dict[Subject, datetime] = field(default_factory=dict)  # last failure of each
    recovered: set[Subject] = field(default_factory=set)
    joined_at: datetime | None = None  # when the second processor failed
    named: tuple[Subject, ...] = ()  # the processors the open incident names
    last_failure: datetime | None = None

    @property
    def key(self) -> str:
        return alert_key(KIND, {"pipeline": self.pipeline, "signature": self.signature})

    @property
    def open(self) -> bool:
        return bool(self.named)


class Correlator:
    """One incident per shared error signature across processors and phases."""

    # What a snapshot keeps (monitor.app.snapshot): the failures; the incidents' alerts are
    # the router's, adopted on the first tick after a start.
    snapshot_fields: ClassVar[tuple[str, ...]] = ("_groups",)

    def __init__(self, cfg: CorrelationConfig, router: Router, severity: SeverityPolicy) -> None:
        self.cfg = cfg
        self.router = router
        self.severity = severity
        self._groups: dict[tuple[str, str], _Group] = {}
        self._lock = threading.Lock()
        self._adopted = False

    # --- inputs ------------------------------------------------------------------------

    def observe(self, update: Update) -> None:
        """Fold in a processor's failure or success."""
        self.on_updates((update,))

    def on_updates(self, updates: Sequence[Update]) -> None:
        """Collector listener: fold in the processors' failures and successes of a stored
        batch, oldest first, under one lock; then resolve the incidents they ended."""
        if not self.cfg.enabled:
            return
        ended: list[tuple[_Group, datetime]] = []
        try:
            with self._lock:
                for update in updates:
                    _, _, processor, status = update.key
                    if processor is None or status not in _FOLDED:
                        continue
                    event = update.event
                    for group in self._fold(event, live=True):
                        del self._groups[(group.pipeline, group.signature)]
                        ended.append((group, event.timestamp))
        finally:  # an incident taken out is resolved, whatever a later event of the batch did
            for group, at in ended:
                self._resolved(group, at)

    def replay(self, update: Update) -> None:
        """Rebuild on start: relearn the failures, raise and resolve nothing."""
        event = update.event
        if not self.cfg.enabled or event.processor is None:
            return
        with self._lock:
            self._fold(event, live=False)

    def _fold(self, event: Event, live: bool) -> list[_Group]:
        """Fold in a processor's event (the caller holds the lock); the open incidents whose
        processors all recovered with it (``live``)."""
        assert event.processor is not None
        subject = (event.phase, event.processor)
        if event.status == "failed" and event.error:
            self._failed(event.pipeline, subject, event.error, event.timestamp)
            return []
        if event.status not in ("succeeded", "skipped"):
            return []
        done = []
        for group in self._groups.values():
            last = group.failed.get(subject)
            if group.pipeline == event.pipeline and last is not None and event.timestamp >= last:
                group.recovered.add(subject)
                if live and group.open and set(group.named) <= group.recovered:
                    done.append(group)
        return done

    def _failed(self, pipeline: str, subject: Subject, error: str, at: datetime) -> None:
        signature = error_signature(error)
        group = self._groups.get((pipeline, signature))
        if group is None:
            group = self._groups[(pipeline, signature)] = _Group(
                pipeline, signature, normalise_error(error))
        window = timedelta(minutes=self.cfg.window_min)
        if not group.open:  # failures too far apart are not one problem
            for other, when in list(group.failed.items()):
                if at - when > window:
                    del group.failed[other]
        group.failed[subject] = max(at, group.failed.get(subject, at))
        group.recovered.discard(subject)
        group.last_failure = max(at, group.last_failure or at)
        if len(group.failed) >= 2 and group.joined_at is None:
            group.joined_at = at

    # --- the job -----------------------------------------------------------------------

    def tick(self, now: datetime) -> None:
        """Open incidents that have settled, name processors that joined, resolve quiet ones."""
        if not self.cfg.enabled:
            return
        if not self._adopted:
            self._adopt()
        settle = timedelta(minutes=self.cfg.settle_min)
        quiet = timedelta(hours=self.cfg.quiet_h)
        window = timedelta(minutes=self.cfg.window_min)
        to_fire: list[_Group] = []
        to_resolve: list[_Group] = []
        with self._lock:
            for key, group in list(self._groups.items()):
                last = group.last_failure
                if group.open:
                    if last is not None and now - last >= quiet:
                        to_resolve.append(group)
                    elif tuple(sorted(group.failed)) != group.named:
                        to_fire.append(group)  # more processors joined: name them too
                elif last is not None and now - last > max(window, quiet):
                    del self._groups[key]
                elif set(group.failed) <= group.recovered:
                    del self._groups[key]  # every processor recovered before it settled: over
                elif group.joined_at is not None and len(group.failed) >= 2 and (
                        now - group.joined_at >= settle):
                    to_fire.append(group)
            spread: set[tuple[str, str]] = set()
            for group in to_fire:
                # An open incident reaching a phase it did not name has spread (another
                # service to fix): news, told even to whoever acknowledged it.
                if group.open and {p for p, _ in group.failed} - {p for p, _ in group.named}:
                    spread.add((group.pipeline, group.signature))
                group.named = tuple(sorted(group.failed))
        for group in to_fire:
            self.router.fire(self._alert(group, now),
                             news=(group.pipeline, group.signature) in spread)
        for group in to_resolve:
            self._resolve(group, now)

    def _alert(self, group: _Group, now: datetime) -> Alert:
        named = group.named
        processors = [f"{phase}/{proc}" for phase, proc in named]
        phases = sorted({phase for phase, _ in named})
        critical = any(self.severity.is_critical(group.pipeline, phase, proc) for phase, proc in named)
        summary = (f"correlated failure: {len(named)} processors of {group.pipeline} in "
                   f"{', '.join(phases)} fail with one error: {group.text} "
                   f"({', '.join(proc for _, proc in named)})")
        details = "\n".join(f"{phase}/{proc} last failed {group.failed[(phase, proc)].isoformat()}"
                            for phase, proc in named if (phase, proc) in group.failed)
        return Alert(
            key=group.key, severity="critical" if critical else "warning", summary=summary[:1024],
            at=now, details=f"error signature {group.signature}: {group.text}\n{details}",
            labels={"alertname": KIND, "pipeline": group.pipeline, "signature": group.signature,
                    "processors": ",".join(processors), "phases": ",".join(phases)},
        )

    def _resolve(self, group: _Group, at: datetime) -> None:
        with self._lock:
            self._groups.pop((group.pipeline, group.signature), None)
        self._resolved(group, at)

    def _resolved(self, group: _Group, at: datetime) -> None:
        """Resolve the incident of a group taken out of the failures."""
        self.router.resolve(group.key, at)
        log.info("event=correlation.resolved pipeline=%s signature=%s", group.pipeline,
                 group.signature)

    def _adopt(self) -> None:
        """Take over the incidents an earlier process opened (the router's are durable); one
        whose processors all recovered meanwhile resolves now."""
        self._adopted = True
        over: list[tuple[_Group, datetime]] = []
        for alert in self.router.active():
            if alert.name != KIND:
                continue
            pipeline, signature = alert.labels.get("pipeline", ""), alert.labels.get("signature", "")
            named = tuple(sorted(
                tuple(item.split("/", 1)) for item in alert.labels.get("processors", "").split(",")
                 if "/" in item))
            with self._lock:
                group = self._groups.get((pipeline, signature))
                if group is None:
                    group = self._groups[(pipeline, signature)] = _Group(pipeline, signature, "")
                    group.failed = {s: alert.at for s in named}  # type: ignore[misc]
                    group.last_failure = alert.at
                group.named = named  # type: ignore[assignment]
                if set(named) <= group.recovered:
                    over.append((group, alert.at))
        for group, at in over:
            self._resolve(group, at)
