"""monitor.lazy: the senders' clients are built once, on first use, whoever asks first."""

from __future__ import annotations

import threading
import time
from concurrent.futures import ThreadPoolExecutor

import pytest

from monitor.lazy import Lazy, lazy_exports


def test_built_once_on_first_get_however_many_threads_ask() -> None:
    builds: list[int] = []
    started = threading.Event()

    def build() -> object:
        started.set()
        time.sleep(0.05)  # the others ask while the first build runs
        builds.append(1)
        return object()

    lazy = Lazy(build)
    assert lazy.built is None and not builds  # nothing built until asked
    with ThreadPoolExecutor(8) as pool:
        values = list(pool.map(lambda _: lazy.get(), range(8)))
    assert started.is_set() and len(builds) == 1
    assert all(v is values[0] for v in values) and lazy.built is values[0]


def test_a_given_value_is_never_built() -> None:
    value = object()
    lazy = Lazy.given(value)
    assert lazy.built is value and lazy.get() is value


def test_a_failed_build_is_tried_again_by_the_next_get() -> None:
    calls: list[int] = []

    def build() -> str:
        calls.append(1)
        if len(calls) == 1:
            raise OSError("no TLS context")
        return "client"

    lazy = Lazy(build)
    with pytest.raises(OSError, match="no TLS context"):
        lazy.get()
    assert lazy.built is None
    assert lazy.get() == "client" and len(calls) == 2



def test_a_packages_lazy_names_are_imported_on_first_use_and_kept(
        monkeypatch: pytest.MonkeyPatch) -> None:
    import json
    import sys
    import types

    package = types.ModuleType("pw_lazy_probe")
    monkeypatch.setitem(sys.modules, "pw_lazy_probe", package)
    package.__getattr__ = lazy_exports("pw_lazy_probe", {"dumps": "json"})  # type: ignore[attr-defined]
    assert "dumps" not in package.__dict__
    assert package.dumps is json.dumps
    assert package.__dict__["dumps"] is json.dumps  # kept: the next use is a plain lookup
    with pytest.raises(AttributeError, match=r"module 'pw_lazy_probe' has no attribute 'loads'"):
        _ = package.loads
