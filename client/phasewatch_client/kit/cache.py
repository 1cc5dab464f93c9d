"""A keyed cache of shared, expensive objects (clients): created once per key, from any thread.

``get`` answers from a dict without locking once the value exists; a miss takes the lock and
checks again before creating, so concurrent first calls create one value. A value found
stale (e.g. a client someone closed) is replaced. After ``os.fork`` the child starts empty:
the parent's clients hold the parent's sockets, which the child must neither use nor close.
"""

from __future__ import annotations

import os
import threading
import weakref
from collections.abc import Callable, Hashable
from typing import Generic, TypeVar

K = TypeVar("K", bound=Hashable)
V = TypeVar("V")


class SharedCache(Generic[K, V]):
    """Values created by ``create(key)`` on first use and shared; ``close`` closes them all."""

    def __init__(
        self,
        create: Callable[[K], V],
        *,
        close: Callable[[V], None] | None = None,
        is_stale: Callable[[V], bool] | None = None,
    ) -> None:
        self._create, self._close, self._is_stale = create, close, is_stale
        self._lock = threading.Lock()
        self._values: dict[K, V] = {}
        self.created = 0
        ref = weakref.ref(self)

        def forget_in_child() -> None:
            cache = ref()
            if cache is not None:
                cache._forget()

        os.register_at_fork(after_in_child=forget_in_child)

    def _stale(self, value: V) -> bool:
        return self._is_stale is not None and self._is_stale(value)

    def get(self, key: K) -> V:
        """The value for ``key``, created on first use."""
        value = self._values.get(key)
        if value is not None and not self._stale(value):
            return value  # the fast path takes no lock
        with self._lock:
            value = self._values.get(key)
            if value is None or self._stale(value):
                value = self._create(key)
                self._values[key] = value
                self.created += 1
            return value

    def close(self) -> None:
        """Close and drop every value; later ``get`` calls create new ones."""
        with self._lock:
            values, self._values = list(self._values.values()), {}
        if self._close is not None:
            for value in values:
                self._close(value)

    def __len__(self) -> int:
        return len(self._values)

    def _forget(self) -> None:
        self._lock = threading.Lock()
        self._values = {}
