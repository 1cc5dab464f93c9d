"""Several phasewatch processes on one store: who leads, who is alive, who may do a thing now.

- One instance *leads*: it runs the periodic jobs and acts on events (decides triggers,
  raises alerts); the others store events and keep their run state up with the store.
  Leading is a lease (``monitor.store.leases``) renewed by the heartbeat; when the leader
  dies, another instance takes the lease once it runs out.
- Each instance keeps an ``instance:<id>`` lease while it lives: a delivery claimed by an
  instance whose lease ran out was interrupted, and may be taken over.
- ``exclusive(name)`` holds a lease for one piece of work (the alert outbox's delivery
  pass), renewed as the work goes on and given back at its end.

``SoleInstance`` is the coordinator of a store no other process uses (SQLite): it always
leads and is the only one alive. ``LeasedCluster`` is the one of a shared store.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Iterator
from contextlib import AbstractContextManager, contextmanager
from datetime import timedelta
from typing import Protocol

from monitor.clock import Clock, SystemClock
from monitor.store.base import ComponentStore
from monitor.store.leases import Leases

log = logging.getLogger(__name__)

LEADER = "leader"
INSTANCE = "instance:"


class Hold(Protocol):
    """An exclusive lease being held: renew it as the work goes on."""

    def renew(self) -> bool:
        """Extend the lease; False when it was lost (stop the work)."""
        ...


class Coordinator(Protocol):
    """How one process takes part among those sharing its store."""

    @property
    def instance(self) -> str:
        """This process's id."""
        ...

    @property
    def leading(self) -> bool:
        """Whether this process led at its last heartbeat."""
        ...

    @property
    def leader(self) -> str | None:
        """The instance that led at the last heartbeat (None when unknown)."""
        ...

    def join(self) -> None:
        """Take or renew this process's ``instance:`` lease only (it is alive, not leading)."""
        ...

    def heartbeat(self) -> bool:
        """Renew this process's leases and take the lead if it is free; True while leading."""
        ...

    def alive(self) -> frozenset[str]:
        """The instances whose lease runs now, and this one (it knows it lives)."""
        ...

    def exclusive(self, name: str) -> AbstractContextManager[Hold | None]:
        """Hold lease ``name`` for a ``with`` block: None when another instance holds it."""
        ...

    def close(self) -> None:
        """Give back this process's leases (a clean stop hands the lead over at once)."""
        ...


class _Always:
    def renew(self) -> bool:
        return True


class SoleInstance:
    """The coordinator of a store that only this process uses: it always leads."""

    def __init__(self, instance: str) -> None:
        self._instance = instance
        self._locks: dict[str, threading.Lock] = {}
        self._guard = threading.Lock()

    @property
    def instance(self) -> str:
        return self._instance

    @property
    def leading(self) -> bool:
        return True

    @property
    def leader(self) -> str | None:
        return self._instance

    def join(self) -> None:
        pass

    def heartbeat(self) -> bool:
        return True

    def alive(self) -> frozenset[str]:
        return frozenset({self._instance})

    @contextmanager
    def exclusive(self, name: str) -> Iterator[Hold | None]:
        with self._guard:
            lock = self._locks.setdefault(name, threading.Lock())
        if not lock.acquire(blocking=False):
            yield None
            return
        try:
            yield _Always()
        finally:
            lock.release()

    def close(self) -> None:
        pass


class _Lease:
    """A held lease, renewed when a third of its time has passed since it was last taken."""

    def __init__(self, cluster: LeasedCluster, name: str) -> None:
        self.cluster = cluster
        self.name = name
        self.taken = time.monotonic()

    def renew(self) -> bool:
        if time.monotonic() - self.taken < self.cluster.ttl.total_seconds() / 3:
            return True
        self.taken = time.monotonic()
        return self.cluster.take(self.name)


class LeasedCluster:
    """The coordinator of a shared store: leases with ``lease_s`` to live, on ``clock``.

    The instances' clocks must agree to well within ``lease_s`` (NTP does this).
    """

    def __init__(self, store: ComponentStore, instance: str, *, lease_s: float = 10.0,
                 clock: Clock | None = None) -> None:
        self._instance = instance
        self.ttl = timedelta(seconds=lease_s)
        self.clock = clock or SystemClock()
        self.leases = Leases(store, instance)
        self._leading = False
        self._leader: str | None = None
        self._beat = threading.Lock()  # the heartbeat thread and the ticks both beat

    @property
    def instance(self) -> str:
        return self._instance

    @property
    def leading(self) -> bool:
        return self._leading

    @property
    def leader(self) -> str | None:
        return self._leader

    def take(self, name: str) -> bool:
        return self.leases.acquire(name, self.clock.now(), self.ttl)

    def join(self) -> None:
        self.take(INSTANCE + self._instance)

    def heartbeat(self) -> bool:
        with self._beat:
            return self._heartbeat()

    def _heartbeat(self) -> bool:
        try:
            self.join()
            leading = self.take(LEADER)
        except Exception:  # the store is out of reach: lead no more (its lease runs out)
            self._leading = False
            raise
        if leading != self._leading:
            log.info("event=cluster.%s instance=%s", "leading" if leading else "following",
                     self._instance)
        self._leading = leading
        if leading:
            self._leader = self._instance
        else:
            self._leader = self.leases.holders(LEADER, self.clock.now()).get(LEADER)
        return leading

    def alive(self) -> frozenset[str]:
        return frozenset({*self.leases.holders(INSTANCE, self.clock.now()).values(), self._instance})

    @contextmanager
    def exclusive(self, name: str) -> Iterator[Hold | None]:
        if not self.take(name):
            yield None
            return
        try:
            yield _Lease(self, name)
        finally:
            self.leases.release(name)

    def close(self) -> None:
        self._leading = False
        for name in (LEADER, INSTANCE + self._instance):
            try:
                self.leases.release(name)
            except Exception:  # a store already unreachable: the leases run out by themselves
                log.warning("event=cluster.release_failed lease=%s", name, exc_info=True)
