"""Shared fixtures: a fake clock, an in-process phasewatch, and real-peer lookup."""

from __future__ import annotations

import itertools
import os
import shutil
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

import pytest
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

from monitor.actuator.sinks import MemorySink
from monitor.app.phasewatch import Phasewatch
from monitor.clock import FakeClock
from monitor.config import Config, load_config
from tests.postgres_server import postgres_bin, temporary_postgres

REQUIRE_PEERS = os.environ.get("PHASEWATCH_REQUIRE_PEERS") == "1"
_schemas = itertools.count(1)


def require_binary(name: str, packages: str = "prometheus prometheus-alertmanager") -> str:
    """Path of a real peer binary; skip when missing, but fail in CI (PHASEWATCH_REQUIRE_PEERS=1)."""
    path = shutil.which(name) or (f"/usr/bin/{name}" if os.path.exists(f"/usr/bin/{name}") else None)
    if path is None:
        missing_peer(f"{name} is not installed (apt-get install {packages})")
    assert path is not None
    return path


def missing_peer(message: str) -> None:
    """Skip the test for a missing real peer, but fail in CI (PHASEWATCH_REQUIRE_PEERS=1)."""
    if REQUIRE_PEERS:
        pytest.fail(message + " and PHASEWATCH_REQUIRE_PEERS=1")
    pytest.skip(message)


@pytest.fixture(scope="session")
def postgres_server() -> Iterator[str]:
    """A real PostgreSQL server for the session (Debian's postgresql; about 2 s to start)."""
    if postgres_bin() is None:
        missing_peer("PostgreSQL is not installed (apt-get install postgresql)")
    with temporary_postgres() as url:
        yield url


@pytest.fixture
def postgres_url(postgres_server: str) -> str:
    """A URL on the session's server whose tables go to a schema of this test's own."""
    import psycopg

    schema = f"t{next(_schemas)}"
    with psycopg.connect(postgres_server, autocommit=True) as conn:
        conn.execute(f"DROP SCHEMA IF EXISTS {schema} CASCADE")
        conn.execute(f"CREATE SCHEMA {schema}")
    return f"{postgres_server}?options=-csearch_path%3D{schema}"


@pytest.fixture(params=["sqlite", "postgresql"])
def db(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    """``--db`` for a fresh store of each kind: an SQLite file, a PostgreSQL URL."""
    if request.param == "sqlite":
        return str(tmp_path / "pw.db")
    return str(request.getfixturevalue("postgres_url"))


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


@dataclass(frozen=True)
class DemoRun:
    """What one real ``phasewatch demo`` printed, and where it wrote its files."""

    output: str
    out_dir: Path


@pytest.fixture(scope="session")
def demo_run(tmp_path_factory: pytest.TempPathFactory) -> DemoRun:
    """One run of ``phasewatch demo`` with its defaults (12 days, about 25 s), shared by
    the demo's tests and the docs' demo-output check so the suite runs it once.

    COLUMNS is pinned so that output fitted to the terminal is the same everywhere."""
    from click.testing import CliRunner

    from monitor.app.cli.main import main

    out = tmp_path_factory.mktemp("demo") / "phasewatch-demo"
    result = CliRunner().invoke(main, ["demo", "--out", str(out)], env={"COLUMNS": "120"})
    assert result.exit_code == 0, result.output or repr(result.exception)
    return DemoRun(result.output, out)
