"""Fast start: the state the events build, saved in the store and restored on start.

On start the service rebuilds what its events build — the runs, the SLO ledgers, the
anomaly detectors, the correlator's failures — by replaying the events of its last 70 run
dates: about 15 s for a million events. Instead, ``serve`` saves that state into the store
(``monitor.store.snapshots``) on a periodic job and when it stops, and a start restores it
and replays only the events stored after it. Each component names the attributes that are
its state (``snapshot_fields``); the rest (config, clock, router, locks) is wiring.

A snapshot is used only if all of these hold; else it is ignored, the reason logged
(``event=snapshot.ignored``), and the state rebuilt from the events as before:

- the same snapshot format, phasewatch code (a hash of its source files), config (a hash
  of the config as loaded) and rebuild window (days);
- its body is intact (sha256) and loads;
- the events it summarises are still the store's: the count, the sum of the positions and
  the id of the last event of its window's events up to its position are what they were
  when it was taken (a restored backup, another store, deleted events all differ);
- it was not taken after now (a clock set back).

The body is a pickle of the components' state: an exact, fast copy. Config objects in the
state are saved as their path in the config, and restored as the running config's own
(through config fields, keys and indexes only, never to a callable). It is read by an
unpickler that loads only the data classes of the components' own
modules, of ``slo`` (which does no I/O) and a few standard types, never a function: a
snapshot written by someone who can write to the store is at worst wrong state (as
events they could write would be), never code.
"""

from __future__ import annotations

import functools
import hashlib
import io
import logging
import pickle
from collections.abc import Mapping
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from datetime import date, datetime
from pathlib import Path
from typing import Any, ClassVar, Protocol

from pydantic import BaseModel

from monitor.config import Config
from monitor.store.base import ComponentStore
from monitor.store.snapshots import EventsSummary, Snapshot, SnapshotStore

log = logging.getLogger(__name__)

FORMAT = 1
NAME = "state"
PACKAGES = ("monitor", "slo", "alerts", "phasewatch_client")
# The modules whose classes a snapshot may hold (classes only, never a function), and the
# standard data types it may use.
STATE_MODULES = ("slo.", "monitor.tracker", "monitor.app.anomalies", "alerts.correlation")
STANDARD = frozenset({
    ("builtins", "set"), ("builtins", "frozenset"), ("collections", "deque"),
    ("datetime", "datetime"), ("datetime", "date"), ("datetime", "time"),
    ("datetime", "timedelta"), ("datetime", "timezone"),
    ("pydantic_core._pydantic_core", "TzInfo"),  # the offset of a time pydantic parsed
    ("zoneinfo", "ZoneInfo._unpickle"), ("zoneinfo._zoneinfo", "ZoneInfo._unpickle"),
    ("fractions", "Fraction"),
    # numpy arrays, numpy 1 and 2 (never of objects: frombuffer refuses them); the SLO ledgers'
    # counts are dicts of ints (slo.ledger.DayCounts)
    ("numpy", "dtype"), ("numpy", "ndarray"),
    ("numpy.core.numeric", "_frombuffer"), ("numpy._core.numeric", "_frombuffer"),
    ("numpy.core.multiarray", "_reconstruct"), ("numpy._core.multiarray", "_reconstruct"),
    ("numpy.core.multiarray", "scalar"), ("numpy._core.multiarray", "scalar"),
})


class Snapshotted(Protocol):
    """A component whose state a snapshot keeps: the attributes named in ``snapshot_fields``.
    One that derives more from them (an index of its SLOs) defines ``snapshot_restored()``,
    called after they are put back."""

    snapshot_fields: ClassVar[tuple[str, ...]]


class Ignored(Exception):
    """Why a stored snapshot cannot be used (the state is rebuilt from the events).

    ``expected``: a snapshot of other code, config or window, or of a later time (a deploy,
    a CLI command with another config, ``--at`` in the past), logged as information; the
    others (corrupt, events changed) as warnings."""

    def __init__(self, reason: str, *, expected: bool = False) -> None:
        super().__init__(reason)
        self.expected = expected


@dataclass(frozen=True)
class Restored:
    """A snapshot restored into the components: the position of the last event it summarises."""

    position: int
    taken_at: datetime


@functools.cache
def code_fingerprint() -> str:
    """A hash of phasewatch's source files: a snapshot is read only by the code that wrote it."""
    digest = hashlib.sha256()
    for package in PACKAGES:
        module = __import__(package)
        for root in getattr(module, "__path__", ()):
            for path in sorted(Path(root).rglob("*.py")):
                digest.update(str(path.relative_to(root)).encode())
                digest.update(path.read_bytes())
    return digest.hexdigest()


# Config sections that do not change what the events build (the HTTP server, telemetry and
# export, where the store is): a snapshot serves whatever they are.
NOT_STATE = frozenset({"server", "telemetry", "store", "export", "mirror"})


def config_fingerprint(config: Config) -> str:
    """A hash of the config's sections that shape the state (pipelines, runs, SLOs, anomaly,
    alerting, actuator, checks...)."""
    return hashlib.sha256(config.model_dump_json(exclude=set(NOT_STATE)).encode()).hexdigest()


def _config_paths(config: Config) -> dict[int, tuple[tuple[str, Any], ...]]:
    """Every object reachable from the config (models, their cached values, containers) by
    its path: ("a", attribute), ("k", key) or ("i", index) steps."""
    paths: dict[int, tuple[tuple[str, Any], ...]] = {}
    keep: list[object] = []  # ids are only stable while the objects live
    stack: list[tuple[object, tuple[tuple[str, Any], ...]]] = [(config, ())]
    while stack:
        obj, path = stack.pop()
        if obj is None or isinstance(obj, str | int | float | bool | bytes) or id(obj) in paths:
            continue
        paths[id(obj)] = path
        keep.append(obj)
        if isinstance(obj, BaseModel):
            stack.extend((v, (*path, ("a", k))) for k, v in vars(obj).items())
        elif isinstance(obj, dict):
            stack.extend((v, (*path, ("k", k))) for k, v in obj.items()
                         if isinstance(k, str | int))
        elif isinstance(obj, list | tuple):
            stack.extend((v, (*path, ("i", i))) for i, v in enumerate(obj))
    return paths


def _resolve(config: Config, path: object) -> object:
    """The config object at ``path``. A path is data from the store: each step must be a
    field or cached value of a config model, a key of a dict or an index of a sequence, and
    the object a config object, never a callable (a method's ``__globals__`` reaches
    ``eval``)."""
    obj: Any = config
    try:
        for kind, step in path:  # type: ignore[attr-defined]
            obj = _step(obj, kind, step)
    except (LookupError, TypeError, ValueError):
        obj = None
    if obj is None or callable(obj) or isinstance(obj, type):
        raise pickle.UnpicklingError(f"{path!r} is not a config object")
    return obj


def _step(obj: Any, kind: object, step: object) -> Any:
    if kind == "a" and isinstance(obj, BaseModel) and isinstance(step, str) and (
            step in type(obj).model_fields
            or isinstance(getattr(type(obj), step, None), functools.cached_property)):
        return getattr(obj, step)
    if kind == "k" and isinstance(obj, dict):
        return obj[step]
    if kind == "i" and isinstance(obj, list | tuple) and isinstance(step, int):
        return obj[step]
    raise LookupError(step)


class _Pickler(pickle.Pickler):
    """Saves config objects as references to their path in the config."""

    def __init__(self, file: io.BytesIO, config: Config) -> None:
        super().__init__(file, protocol=5)
        self._paths = _config_paths(config)

    def reducer_override(self, obj: Any) -> Any:
        path = self._paths.get(id(obj))
        if path is None:
            return NotImplemented
        return config_object, (path,)


def config_object(path: object) -> object:
    """Stands for a config object in a snapshot; its unpickler resolves the path instead."""
    raise RuntimeError("resolved by the snapshot's unpickler")


class _Unpickler(pickle.Unpickler):
    """Loads only state classes and standard data types; config references resolve to the
    running config's objects."""

    def __init__(self, file: io.BytesIO, config: Config) -> None:
        super().__init__(file)
        self._config = config

    def find_class(self, module: str, name: str) -> Any:
        if module == __name__ and name == config_object.__name__:
            return functools.partial(_resolve, self._config)
        if (module, name) in STANDARD:
            return super().find_class(module, name)
        if module.startswith(STATE_MODULES) or module in {m.rstrip(".") for m in STATE_MODULES}:
            found = super().find_class(module, name)
            if isinstance(found, type) and found.__module__ == module:
                return found
        raise pickle.UnpicklingError(f"{module}.{name} is not allowed in a snapshot")


def dump_state(components: Mapping[str, Snapshotted], config: Config) -> bytes:
    """The state of ``components`` as bytes (their ``snapshot_fields``)."""
    state = {name: {f: getattr(c, f) for f in c.snapshot_fields} for name, c in components.items()}
    out = io.BytesIO()
    _Pickler(out, config).dump(state)
    return out.getvalue()


def read_state(body: bytes, config: Config) -> Any:
    """What ``dump_state`` saved, its config objects ``config``'s own."""
    return _Unpickler(io.BytesIO(body), config).load()


def load_state(body: bytes, components: Mapping[str, Snapshotted], config: Config) -> None:
    """Put the state ``dump_state`` saved back into ``components`` (a CLI command may restore
    some of them): all of it, or nothing when it does not load or does not fit them."""
    state = read_state(body, config)
    if not isinstance(state, dict) or not set(components) <= set(state):
        raise Ignored("its components are not this process's")
    for name, component in components.items():
        fields = state[name]
        if not isinstance(fields, dict) or set(fields) != set(component.snapshot_fields):
            raise Ignored(f"the fields of {name} differ")
    for name, component in components.items():
        for field_name, value in state[name].items():
            setattr(component, field_name, value)
        rebuild = getattr(component, "snapshot_restored", None)
        if rebuild is not None:  # what the component derives from its state (an index)
            rebuild()


class StateSnapshots:
    """Saves the components' state into the store and restores it on start.

    A save copies the state (a pickle: ~10 ms for a 70-day window of a million events) in
    the caller, who holds the state still; with ``background`` (real time), the summary of
    the events and the write then run on a thread of their own, off the ingest thread.
    """

    def __init__(self, store: ComponentStore, config: Config,
                 components: Mapping[str, Snapshotted], history_days: int, *,
                 background: bool = False, saves: bool = True) -> None:
        self.table = SnapshotStore(store)
        self.config = config
        self.components = components
        self.history_days = history_days
        self.saves = saves  # False: restore only (a CLI command's state is not the service's)
        self._writer = (ThreadPoolExecutor(1, thread_name_prefix="phasewatch-snapshot")
                        if background else None)

    def header(self, since: date, summary: EventsSummary, body: bytes) -> dict[str, Any]:
        return {
            "format": FORMAT, "code": code_fingerprint(), "config": config_fingerprint(self.config),
            "history_days": self.history_days, "since": since.isoformat(),
            "events": summary.as_dict(), "sha256": hashlib.sha256(body).hexdigest(),
            "components": sorted(self.components),
        }

    def save(self, position: int, since: date, now: datetime, instance: str, *,
             wait: bool = False) -> None:
        """Save the state, which has applied every event up to ``position`` and no later one
        (``since``: the first run date of the events its summary counts). Unless ``wait``,
        the write happens on the writer thread (if there is one)."""
        if not self.saves:
            return
        body = dump_state(self.components, self.config)
        if self._writer is None or wait:
            self._write(position, since, now, instance, body)
        else:
            self._writer.submit(self._write, position, since, now, instance, body)

    def _write(self, position: int, since: date, now: datetime, instance: str,
               body: bytes) -> None:
        try:
            summary = self.table.summary(since, position)
            header = {**self.header(since, summary, body), "instance": instance}
            saved = self.table.save(Snapshot(NAME, position, now, header, body))
        except Exception:  # the stored snapshot stays, or a start rebuilds: never raised
            log.exception("event=snapshot.save_failed position=%d", position)
            return
        log.info("event=snapshot.saved position=%d events=%d bytes=%d replaced=%s", position,
                 summary.count, len(body), saved)

    def close(self) -> None:
        """Wait for the save in flight (if any)."""
        if self._writer is not None:
            self._writer.shutdown(wait=True)

    def restore(self, now: datetime, position: int, judged: int | None = None) -> Restored | None:
        """Restore the stored snapshot into the components if it is valid at ``now`` with the
        store at ``position`` and, if given, judged up to ``judged`` (``EventStore.judged``);
        None (logged) when there is none or it cannot be used."""
        try:
            snapshot = self.table.load(NAME)
        except ValueError as exc:
            log.warning("event=snapshot.ignored reason=%r", f"unreadable header: {exc}")
            return None
        if snapshot is None:
            log.info("event=snapshot.none")
            return None
        try:
            self._check(snapshot, now, position, judged)
            load_state(snapshot.body, self.components, self.config)
        except Exception as exc:  # any reason: the events rebuild the state
            level = logging.INFO if isinstance(exc, Ignored) and exc.expected else logging.WARNING
            log.log(level, "event=snapshot.ignored position=%d taken_at=%s reason=%r",
                    snapshot.position, snapshot.taken_at.isoformat(), _reason(exc))
            return None
        log.info("event=snapshot.restored position=%d taken_at=%s events=%d", snapshot.position,
                 snapshot.taken_at.isoformat(), snapshot.header["events"]["count"])
        return Restored(snapshot.position, snapshot.taken_at)

    def _check(self, snapshot: Snapshot, now: datetime, position: int,
               judged: int | None = None) -> None:
        header = snapshot.header
        expected = {"format": FORMAT, "code": code_fingerprint(),
                    "config": config_fingerprint(self.config)}
        for key, value in expected.items():
            if header.get(key) != value:
                raise Ignored(f"another {key}" + (f" ({header.get(key)!r}, this process: "
                              f"{value!r})" if key == "format" else ""), expected=True)
        days = header.get("history_days")
        if not isinstance(days, int) or days < self.history_days:  # a longer window serves
            raise Ignored(f"another history_days ({days!r}, this process: {self.history_days})",
                          expected=True)
        if not set(self.components) <= set(header.get("components", ())):
            raise Ignored("its components are not this process's")
        if hashlib.sha256(snapshot.body).hexdigest() != header.get("sha256"):
            raise Ignored("its body is corrupt (sha256)")
        if snapshot.taken_at > now:
            raise Ignored(f"taken after now ({snapshot.taken_at.isoformat()})", expected=True)
        if snapshot.position > position:
            raise Ignored(f"it summarises events up to {snapshot.position}, the store has "
                          f"{position}")
        if judged is not None and snapshot.position > judged:
            # Taken while a batch was stored and not yet judged, then a kill: that batch is
            # judged after the start, so the state must not hold it already.
            raise Ignored(f"it summarises events up to {snapshot.position}, past the judged "
                          f"mark {judged} (events stored and never judged)")
        summary = self.table.summary(date.fromisoformat(header["since"]), snapshot.position)
        if summary.as_dict() != header.get("events"):
            raise Ignored(f"its events changed: {header.get('events')} when taken, "
                          f"{summary.as_dict()} now")


def _reason(exc: Exception) -> str:
    if isinstance(exc, Ignored):
        return str(exc)
    return f"does not load: {type(exc).__name__}: {exc}"[:300]
