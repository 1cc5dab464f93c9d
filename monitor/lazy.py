"""A value built the first time it is used: the network clients of the senders.

The service builds its senders (the actuator's HTTP sink, the health probe) when it starts,
and so do the CLI commands that only read its state (``health-check``, ``report --weekly``).
A sender's module imports its client library (httpx, aiohttp, google-auth) in the function
that builds the client, and holds the client in a ``Lazy``: a command that never sends
imports none of them and opens no TLS context (issue 18: each cold command <= 1 s).
``lazy_exports`` does the same for a package's re-exported names.
"""

from __future__ import annotations

import importlib
import sys
import threading
from collections.abc import Callable, Mapping
from typing import Any, Generic, TypeVar

T = TypeVar("T")


class Lazy(Generic[T]):
    """``build()`` called once, on the first ``get`` (thread-safe: callers wait for it)."""

    def __init__(self, build: Callable[[], T]) -> None:
        self._build = build
        self._value: T | None = None
        self._lock = threading.Lock()

    @classmethod
    def given(cls, value: T) -> Lazy[T]:
        """One built already (a client a caller passes in)."""
        lazy = cls(lambda: value)
        lazy._value = value
        return lazy

    def get(self) -> T:
        value = self._value
        if value is not None:
            return value
        with self._lock:
            if self._value is None:
                self._value = self._build()
            return self._value

    @property
    def built(self) -> T | None:
        """The value if it was built, else None (never builds: ``close`` uses it)."""
        return self._value


def lazy_exports(package: str, modules: Mapping[str, str]) -> Callable[[str], Any]:
    """A package's ``__getattr__`` (PEP 562) for its re-exported names: ``name`` is imported
    from ``modules[name]`` on first use and kept in the package, so importing one module of
    the package does not import them all (the CLI's cold paths load only what they use).
    Usage: ``__getattr__ = lazy_exports(__name__, {"Name": "package.module"})``."""
    namespace = sys.modules[package].__dict__

    def __getattr__(name: str) -> Any:
        module = modules.get(name)
        if module is None:
            raise AttributeError(f"module {package!r} has no attribute {name!r}")
        value = getattr(importlib.import_module(module), name)
        namespace[name] = value
        return value

    return __getattr__


__all__ = ["Lazy", "lazy_exports"]
