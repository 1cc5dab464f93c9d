"""Helpers for the actuator tests: a phasewatch with test sinks, local HTTP peers, configs."""

from __future__ import annotations

import json
import socket
import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any

import yaml
from phasewatch_client.kit.testing import LocalServer, StubReply, StubRequest

from monitor.actuator.simulated import simulated
from monitor.actuator.sinks import MemorySink
from monitor.app.phasewatch import Phasewatch
from monitor.app.sim.replay import SimulatedWorld, _peek_start, read_lines, replay
from monitor.clock import FakeClock
from monitor.config import Config, default_config_text, parse_config
from tests.factories import make_event

SCENARIOS = Path(__file__).parent / "scenarios"
PHASE3_OVERNIGHT = ["team_offense_game_summary", "player_game_summary", "team_defense_game_summary",
                    "upcoming_player_game_context", "upcoming_team_game_context"]
PHASE4 = ["team_defense_zone_analysis", "player_shot_zone_analysis", "player_composite_factors",
          "player_daily_cache", "ml_feature_store"]


def nba_config(**actuator: Any) -> Config:
    """The bundled NBA config with ``actuator`` settings merged in (nested dicts)."""
    data = yaml.safe_load(default_config_text())
    merged = data.setdefault("actuator", {})
    for key, value in actuator.items():
        if isinstance(value, dict):
            merged.setdefault(key, {}).update(value)
        else:
            merged[key] = value
    return parse_config(yaml.safe_dump(data), "<test>")


def edit_config(edit: Callable[[dict[str, Any]], None]) -> Config:
    """The bundled NBA config changed by ``edit`` on its YAML data."""
    data = yaml.safe_load(default_config_text())
    edit(data)
    return parse_config(yaml.safe_dump(data), "<test>")


def phase_of(data: dict[str, Any], phase: str) -> dict[str, Any]:
    return next(p for p in data["pipelines"][0]["phases"] if p["id"] == phase)


@dataclass
class Rig:
    """A phasewatch on a fake clock whose sinks are one MemorySink and whose world is simulated."""

    pw: Phasewatch
    clock: FakeClock
    sink: MemorySink
    world: SimulatedWorld

    def ingest(self, phase: str, status: str, processor: str | None = None, *,
               run_date: str = "2026-01-17", **fields: Any) -> None:
        event = make_event(phase, status, self.clock.now().isoformat(), processor,
                           run_date=run_date, **fields)
        self.pw.collector.ingest([event])

    def complete(self, phase: str, processors: list[str], *, run_date: str = "2026-01-17",
                 step_s: float = 60, **fields: Any) -> None:
        for name in processors:
            self.clock.advance(step_s)
            self.ingest(phase, "succeeded", name, run_date=run_date, **fields)

    def tick_for(self, seconds: float, step: float = 30) -> None:
        elapsed = 0.0
        while elapsed < seconds:
            self.clock.advance(step)
            elapsed += step
            self.pw.tick()

    def sent(self, phase: str | None = None) -> list[Any]:
        return [s for s in self.sink.sent if phase is None or s.request.phase == phase]

    def raised(self, kind: str) -> list[Any]:
        assert self.pw.actuator is not None
        return [r for r in self.pw.actuator.ctx.notifier.raised if r.kind == kind and r.action == "fire"]


@contextmanager
def rig(config: Config | None = None, *, db: str | Path = ":memory:",
        start: datetime | None = None) -> Iterator[Rig]:
    clock = FakeClock(start or datetime.fromisoformat("2026-01-18T06:00:00+00:00"))
    world = SimulatedWorld()
    probe, _, checks = simulated(world)
    sink = MemorySink()
    pw = Phasewatch.build(config or nba_config(), db_path=db, clock=clock, probe=probe,
                          sinks={"http": sink, "pubsub": sink, "log": sink}, checks=checks)
    try:
        yield Rig(pw, clock, sink, world)
    finally:
        pw.close()


def run_scenario(name: str, config: Config | None = None) -> tuple[dict[str, Any], Phasewatch]:
    """Replay tests/scenarios/<name> through the whole stack with the simulated world."""
    path = SCENARIOS / name
    clock = FakeClock(_peek_start(path))
    world = SimulatedWorld()
    probe, sinks, _ = simulated(world)  # check lines are recorded in the check store
    pw = Phasewatch.build(config or nba_config(), db_path=":memory:", clock=clock, probe=probe,
                          sinks=sinks)
    report = replay(read_lines(path, pw), pw, clock, world)
    return report, pw


# --- local HTTP peers ----------------------------------------------------------------------

Answer = tuple[int, dict[str, str], bytes]


@dataclass
class Received:
    method: str
    path: str
    headers: dict[str, str]
    body: bytes

    def json(self) -> Any:
        return json.loads(self.body)


@dataclass
class Peer:
    """A local HTTP server whose answers a test chooses; it records every request."""

    url: str
    requests: list[Received] = field(default_factory=list)
    answer: Callable[[Received], Answer] = lambda r: (200, {}, b"{}")
    lock: threading.Lock = field(default_factory=threading.Lock)


@contextmanager
def http_peer(answer: Callable[[Received], Answer] | None = None) -> Iterator[Peer]:
    """A Peer served by the product's LocalServer (127.0.0.1, a free port)."""
    peer = Peer("")
    if answer is not None:
        peer.answer = answer

    def handle(request: StubRequest) -> StubReply:
        path = request.path + (f"?{request.query}" if request.query else "")
        received = Received(request.method, path, request.headers, request.body)
        with peer.lock:
            peer.requests.append(received)
        status, headers, payload = peer.answer(received)
        return StubReply(status, payload, tuple(headers.items()))

    with LocalServer(handle) as server:
        peer.url = server.url
        yield peer


def json_answer(status: int, body: Any, content_type: str = "application/json") -> Answer:
    return status, {"Content-Type": content_type}, json.dumps(body).encode()


@contextmanager
def silent_port() -> Iterator[str]:
    """A port that accepts connections and never answers (for timeouts)."""
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.bind(("127.0.0.1", 0))
    sock.listen(16)
    try:
        yield f"http://127.0.0.1:{sock.getsockname()[1]}"
    finally:
        sock.close()


def race(n: int, work: Callable[[int], None], timeout_s: float = 60) -> list[BaseException]:
    """Run ``work(i)`` for i < n in n threads released together; the errors they raised."""
    barrier = threading.Barrier(n)
    errors: list[BaseException] = []

    def run(i: int) -> None:
        try:
            barrier.wait()
            work(i)
        except BaseException as exc:
            errors.append(exc)

    threads = [threading.Thread(target=run, args=(i,)) for i in range(n)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout_s)
    return errors
