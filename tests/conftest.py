"""Shared fixtures: a fake clock, an in-process phasewatch, and real-peer lookup."""

from __future__ import annotations

import os
import shutil
from collections.abc import Iterator
from datetime import UTC, datetime

import pytest
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

from monitor.actuator import MemorySink
from monitor.app.phasewatch import Phasewatch
from monitor.clock import FakeClock
from monitor.config import Config, load_config

REQUIRE_PEERS = os.environ.get("PHASEWATCH_REQUIRE_PEERS") == "1"


def require_binary(name: str) -> str:
    """Path of a real peer binary; skip when missing, but fail in CI (PHASEWATCH_REQUIRE_PEERS=1)."""
    path = shutil.which(name) or (f"/usr/bin/{name}" if os.path.exists(f"/usr/bin/{name}") else None)
    if path is None:
        message = f"{name} is not installed (apt-get install prometheus prometheus-alertmanager)"
        if REQUIRE_PEERS:
            pytest.fail(message + " and PHASEWATCH_REQUIRE_PEERS=1")
        pytest.skip(message)
    return path


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock(datetime(2026, 1, 18, 12, 0, tzinfo=UTC))


@pytest.fixture(scope="session")
def nba_config() -> Config:
    return load_config()


@pytest.fixture
def spans() -> InMemorySpanExporter:
    return InMemorySpanExporter()


@pytest.fixture
def app(nba_config: Config, clock: FakeClock, spans: InMemorySpanExporter, tmp_path) -> Iterator[Phasewatch]:  # type: ignore[no-untyped-def]
    sink = MemorySink()  # no test reaches a real trigger target by accident
    pw = Phasewatch.build(
        nba_config, db_path=tmp_path / "pw.db", clock=clock,
        span_processor=SimpleSpanProcessor(spans),
        sinks={"http": sink, "pubsub": sink, "log": sink},
    )
    yield pw
    pw.close()
