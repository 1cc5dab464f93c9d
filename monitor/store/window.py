"""The one read path of every window: the service's start-up rebuild and the cold CLI paths
(``slo report``, ``status``, ``health-check``, ``report --weekly``) read the store through it,
so each reads only the run dates its window needs, never all of history."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import date, datetime, timedelta

from monitor.events import Event
from monitor.store.base import EventStore, ProgressRead


def window_start(today: date, days: int) -> date:
    """The first run date of a window of ``days`` run dates before ``today``."""
    return today - timedelta(days=days)


def window_events(
    store: EventStore, since_run_date: date, *, pipeline: str | None = None,
    until: datetime | None = None, position: int | None = None, progress: ProgressRead = "all",
) -> Iterator[Event]:
    """Stored events of run dates from ``since_run_date`` on, in arrival order; with ``until``,
    only those whose own time is not after it (a report "as of" a past time); with
    ``position``, only those stored up to that position (later ones come through ``tail``);
    ``progress="first"``: without the progress events that repeat the event before them
    (``EventStore.events``): for the SLO ledgers alone, not for the state the anomaly
    detectors or the actuator read (stalls and progress come from every heartbeat)."""
    return store.events(pipeline=pipeline, since_run_date=since_run_date, until=position,
                        at=until, progress=progress)
