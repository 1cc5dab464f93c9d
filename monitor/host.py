"""What a component receives from the application that hosts it (``Host``).

The actuator, its expectations and watches, and the daily-summary sources take a ``Host``,
never the composition root (``monitor.app.phasewatch.Phasewatch``, which implements it):
they see the shared config, clock, store, run state, alert router and metrics, and hook
themselves in through listeners, jobs and report sections. As OpenTelemetry's span
processors know nothing of the ``TracerProvider``.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from datetime import datetime
from typing import TYPE_CHECKING, Any, Protocol

if TYPE_CHECKING:
    from alerts.router import Router
    from monitor.clock import Clock
    from monitor.config import Config
    from monitor.events import Event
    from monitor.store.base import EventStore
    from monitor.store.cluster import Coordinator
    from monitor.telemetry.metrics import Metrics
    from monitor.tracker import RunTracker, Update

Job = Callable[[datetime], None]
"""Periodic work: run on the ticks (and as ``POST /v1/jobs/{name}``) with the tick's time."""
ReportSection = Callable[[], list[dict[str, Any]]]
"""A list in the replay report (``triggers``, ``slos``...), built when the report is."""


PushHandler = Callable[[bytes], "str | None"]
"""Takes a Pub/Sub push message's decoded data that is of its kind (a Cloud Scheduler log
entry...) and answers its outcome (``stored`` or ``duplicate``); None leaves the message to
the next handler and, last, to the event path. EventError: of its kind but never valid
(dead-lettered); any other exception: not acknowledged, Pub/Sub redelivers."""


class Host(Protocol):
    """The narrow view of the running application that components are built on."""

    @property
    def config(self) -> Config: ...

    @property
    def clock(self) -> Clock: ...

    @property
    def store(self) -> EventStore: ...

    @property
    def tracker(self) -> RunTracker: ...

    @property
    def cluster(self) -> Coordinator:
        """How this process takes part among those sharing its store (who leads, who lives)."""
        ...

    @property
    def router(self) -> Router: ...

    @property
    def replayed(self) -> int:
        """The store position the start-up replay went up to: what a component relearns
        from the store stops there (the events after it, stored and never judged before a
        kill, are judged once built, and would otherwise count twice)."""
        ...

    @property
    def metrics(self) -> Metrics: ...

    def ingest(self, events: Sequence[Event]) -> object:
        """Store and fold in events as if a producer had sent them (manual skips)."""
        ...

    def add_listener(self, listener: Callable[[Sequence[Update]], None]) -> None:
        """Call ``listener`` with the updates of every newly stored batch of events (oldest
        first), after it is committed and in run state."""
        ...

    def add_job(self, name: str, job: Job, every_s: float | None = None, *,
                each_instance: bool = False) -> None:
        """Register periodic work under a unique name (every tick, or ``every_s`` apart).

        Jobs run on the instance that leads among those sharing the store, unless
        ``each_instance``: work on this process's own state, safe to run everywhere.
        """
        ...

    def add_push_handler(self, handler: PushHandler) -> None:
        """Offer every Pub/Sub push message to ``handler`` before it is parsed as events."""
        ...

    def add_report_section(self, name: str, section: ReportSection) -> None:
        """Contribute the list ``name`` to the replay report."""
        ...

    def report_section(self, name: str) -> list[dict[str, Any]]:
        """The current list of a registered report section (``slos``, ``anomalies``...)."""
        ...
