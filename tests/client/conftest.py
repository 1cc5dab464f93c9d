"""Fixtures for the client's tests: a local phasewatch, up or down, and recorded sleeps."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from tests.client.local_phasewatch import LocalPhasewatch


@pytest.fixture
def server() -> Iterator[LocalPhasewatch]:
    local = LocalPhasewatch()
    local.start()
    yield local
    local.stop()


@pytest.fixture
def down(server: LocalPhasewatch) -> LocalPhasewatch:
    """The server with its port closed (connection refused) until ``down.start()``."""
    server.stop()
    return server


@pytest.fixture
def sleeps() -> list[float]:
    return []
