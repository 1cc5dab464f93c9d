"""Which consumers can use an event: an index by (pipeline, phase, processor, status).

Judgment runs per batch, and each event reaches only the SLOs, detectors and rules that
can use it. A consumer says once, from its config, which events it wants (``wants``);
the index asks each consumer once per distinct key and remembers the answer. The keys are
bounded by the config (names are checked against it before an event is stored, and there
are five statuses), so the index stays small and every later event costs one dict lookup.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Generic, Protocol, TypeVar

T = TypeVar("T")

EventKey = tuple[str, str, "str | None", str]
"""(pipeline, phase, processor or None for a phase-level event, status)."""

Wants = Callable[[T, EventKey], bool]


class Keyed(Protocol):
    """What an event's key is made of (``monitor.events.Event`` has it)."""

    @property
    def pipeline(self) -> str: ...

    @property
    def phase(self) -> str: ...

    @property
    def processor(self) -> str | None: ...

    @property
    def status(self) -> str: ...


def key_of(event: Keyed) -> EventKey:
    """The index key of an event."""
    return (event.pipeline, event.phase, event.processor, event.status)


class Interest(dict[EventKey, tuple[T, ...]], Generic[T]):
    """The consumers (in their given order) that want events of each key: ``interest[key]``
    (a dict of the keys seen so far, filled on a miss; a hit runs no Python code)."""

    def __init__(self, consumers: Sequence[T], wants: Wants[T]) -> None:
        super().__init__()
        self._consumers = tuple(consumers)
        self._wants = wants

    def __missing__(self, key: EventKey) -> tuple[T, ...]:
        found = self[key] = tuple(c for c in self._consumers if self._wants(c, key))
        return found
