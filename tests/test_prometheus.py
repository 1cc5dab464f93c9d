"""A real Prometheus scrapes a real phasewatch server and sees exactly the events posted."""

from __future__ import annotations

import socket
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from monitor.app.http.server import create_app, serving
from monitor.app.phasewatch import Phasewatch
from tests.conftest import require_binary

SUCCEEDED = 4
STARTED = 3
DEADLINE_S = 30.0


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@pytest.fixture
def phasewatch_url(app: Phasewatch) -> Iterator[str]:
    with serving(create_app(app, None)) as url:
        yield url


@pytest.fixture
def prometheus(tmp_path: Path, phasewatch_url: str) -> Iterator[str]:
    binary = require_binary("prometheus")
    target = phasewatch_url.removeprefix("http://")
    config = tmp_path / "prometheus.yml"
    config.write_text(
        "global:\n  scrape_interval: 1s\n  evaluation_interval: 1s\n"
        "scrape_configs:\n  - job_name: phasewatch\n    metrics_path: /metrics\n"
        f"    static_configs:\n      - targets: ['{target}']\n"
    )
    port = free_port()
    log = (tmp_path / "prometheus.log").open("wb")
    proc = subprocess.Popen(
        [binary, f"--config.file={config}", f"--storage.tsdb.path={tmp_path / 'data'}",
         f"--web.listen-address=127.0.0.1:{port}"],
        stdout=log, stderr=subprocess.STDOUT,
    )
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        proc.terminate()
        try:
            proc.wait(15)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(15)
        log.close()


def query(url: str, promql: str) -> float | None:
    """The single value of an instant query, or None while Prometheus has none (or is starting)."""
    try:
        response = httpx.get(f"{url}/api/v1/query", params={"query": promql}, timeout=5)
        data: dict[str, Any] = response.json()
    except (httpx.HTTPError, ValueError):
        return None
    result = data.get("data", {}).get("result", [])
    return float(result[0]["value"][1]) if result else None


def poll(url: str, wanted: dict[str, float]) -> dict[str, float | None]:
    """Poll a real peer (short sleeps, bounded) until every query returns its wanted value."""
    deadline = time.monotonic() + DEADLINE_S
    while True:
        seen = {q: query(url, q) for q in wanted}
        if seen == wanted or time.monotonic() > deadline:
            return seen
        time.sleep(0.25)


def test_prometheus_scrapes_the_exact_counts(phasewatch_url: str, prometheus: str) -> None:
    events = [
        {"event_id": f"prom-{i}", "pipeline": "nba", "run_date": "2026-01-17", "phase": "phase2",
         "processor": "p2_odds_game_lines" if i % 2 else "p2_nbacom_boxscores",
         "status": "succeeded" if i < SUCCEEDED else "started",
         "timestamp": f"2026-01-18T06:{i:02d}:00Z"}
        for i in range(SUCCEEDED + STARTED)
    ]
    response = httpx.post(f"{phasewatch_url}/v1/events", json=events)
    assert response.json() == {"accepted": SUCCEEDED + STARTED, "duplicates": 0}
    httpx.post(f"{phasewatch_url}/v1/events", json=events[:2])  # duplicates: not counted
    wanted = {
        "sum(phasewatch_events_total)": float(SUCCEEDED + STARTED),
        'sum(phasewatch_events_total{status="succeeded"})': float(SUCCEEDED),
        'sum by (processor) (phasewatch_events_total{processor="p2_odds_game_lines"})':
            float(sum(e["processor"] == "p2_odds_game_lines" for e in events)),
        'up{job="phasewatch"}': 1.0,
    }
    assert poll(prometheus, wanted) == wanted
