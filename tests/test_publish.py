"""'Data available' events: one CloudEvent per completed phase, exactly once, through a local
Pub/Sub server (the real google-cloud-pubsub client), and OpenLineage RunEvents to a local
HTTP server."""

from __future__ import annotations

import json
import threading
from collections.abc import Iterator
from concurrent import futures
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import grpc
import pytest
import yaml
from cloudevents.core.bindings.http import HTTPMessage, from_binary
from cloudevents.core.formats.json import JSONFormat
from cloudevents.core.v1.event import CloudEvent
from google.pubsub_v1.types import PublishRequest, PublishResponse

from alerts.channels.memory import MemoryChannel
from monitor.actuator.simulated import simulated
from monitor.app.phasewatch import Phasewatch
from monitor.app.sim.replay import CheckLine, SimulatedWorld
from monitor.clock import FakeClock
from monitor.config import Config, default_config_text, parse_config
from monitor.publish.cloudevent import Completion, build_event, event_id, pubsub_message
from monitor.publish.senders import MemorySender, OpenLineageSender, PubSubSender, Sender, SendResult
from tests.factories import make_event

START = datetime(2026, 1, 17, 16, 0, tzinfo=UTC)  # 11:00 ET: the same-day run of 2026-01-17
DATASET = {"name": "nba-analytics", "pipeline": "nba", "phase": "phase3"}


def config(**publish: Any) -> Config:
    data: dict[str, Any] = yaml.safe_load(default_config_text())
    data["publish"] = {"datasets": [DATASET], "pubsub": {"topic": "nba-datasets"}, **publish}
    return parse_config(yaml.safe_dump(data), "test.yaml")


@dataclass
class Rig:
    pw: Phasewatch
    clock: FakeClock
    world: SimulatedWorld
    chat: MemoryChannel

    def complete_phase3(self, at: datetime, records: int = 470, **kw: Any) -> None:
        """The same-day Phase 3 of 2026-01-17 completes (its critical processor succeeds)."""
        self.clock.set(at)
        self.pw.ingest([make_event("phase3", "started", (at - timedelta(minutes=12)).isoformat(),
                                   "upcoming_player_game_context", **kw),
                        make_event("phase3", "succeeded", at.isoformat(),
                                   "upcoming_player_game_context", records=records,
                                   expected_records=481, **kw)])

    def check(self, name: str, value: float, at: datetime) -> None:
        self.world.apply(CheckLine(type="check", name=name, value=value, timestamp=at))

    def tick(self, minutes: float = 0.5) -> None:
        self.clock.advance(minutes * 60)
        self.pw.tick()


def build(tmp_path: Path, cfg: Config, senders: dict[str, Sender] | None,
          start: datetime = START, db: str | None = None) -> Rig:
    clock = FakeClock(start)
    world = SimulatedWorld()
    chat = MemoryChannel("chat")
    probe, sinks, checks = simulated(world)
    pw = Phasewatch.build(cfg, db_path=db or tmp_path / "pw.db", clock=clock, channels=[chat],
                          probe=probe, sinks=sinks, checks=checks, publish_senders=senders)
    return Rig(pw, clock, world, chat)


@pytest.fixture
def memory() -> MemorySender:
    return MemorySender()


@pytest.fixture
def rig(tmp_path: Path, memory: MemorySender) -> Iterator[Rig]:
    r = build(tmp_path, config(), {"pubsub": memory})
    yield r
    r.pw.close()


def decode(payload: dict[str, Any]) -> CloudEvent:
    """The stored Pub/Sub message back into a CloudEvent by the SDK's binary binding."""
    body = json.dumps(payload["data"]).encode()
    return from_binary(HTTPMessage(dict(payload["attributes"]), body), JSONFormat(), CloudEvent)


# --- the event ----------------------------------------------------------------------------------

COMPLETION = Completion("nba-analytics", "nba", "2026-01-17", "same_day", "phase3", 0,
                        datetime(2026, 1, 17, 15, 42, tzinfo=UTC))


def test_the_event_is_a_valid_cloudevent_in_binary_mode() -> None:
    event = build_event(COMPLETION, {"records": 470}, event_type="dev.phasewatch.dataset.available.v1",
                        source="/phasewatch")
    message = pubsub_message(event, "nba-analytics")
    attrs = message.attributes
    assert attrs["ce-specversion"] == "1.0"
    assert attrs["ce-type"] == "dev.phasewatch.dataset.available.v1"
    assert attrs["ce-source"] == "/phasewatch/nba"
    assert attrs["ce-subject"] == "nba-analytics/2026-01-17"
    assert attrs["ce-time"] == "2026-01-17T15:42:00Z"
    assert attrs["content-type"] == "application/json"
    assert (attrs["ce-rundate"], attrs["ce-mode"], attrs["ce-generation"]) == ("2026-01-17", "same_day", "0")
    assert message.ordering_key == "nba-analytics"
    back = from_binary(HTTPMessage(attrs, message.data), JSONFormat(), CloudEvent)
    assert back.get_id() == event_id(COMPLETION) and back.get_data() == {"records": 470}


def test_the_event_id_is_derived_from_the_completion() -> None:
    again = build_event(COMPLETION, {"records": 470}, event_type="t", source="/s")
    first = build_event(COMPLETION, {"records": 470}, event_type="t", source="/s")
    assert pubsub_message(first, "k") == pubsub_message(again, "k")  # byte for byte
    ids = {event_id(COMPLETION)}
    for change in ({"generation": 1}, {"mode": "tomorrow"}, {"run_date": "2026-01-18"},
                   {"phase": "phase4"}, {"pipeline": "mlb"}):
        ids.add(event_id(Completion(**{**COMPLETION.__dict__, **change})))
    assert len(ids) == 6


# --- when it is published ------------------------------------------------------------------------

def test_a_completed_phase_publishes_one_event_with_the_run_and_row_counts(rig: Rig, memory: MemorySender) -> None:
    rig.complete_phase3(START)
    assert len(memory.sent) == 1
    event = decode(memory.sent[0])
    data = event.get_data()
    assert isinstance(data, dict)
    assert data["completion"] == {"dataset": "nba-analytics", "pipeline": "nba",
                                  "run_date": "2026-01-17", "mode": "same_day", "phase": "phase3",
                                  "generation": 0, "completed_at": START.isoformat()}
    assert data["row_counts"] == {"upcoming_player_game_context": 470}
    assert data["run"]["processors"][0]["expected_records"] == 481
    # the same completion again (a redelivered event, a tick, more events) publishes nothing
    rig.pw.ingest([make_event("phase3", "succeeded", START.isoformat(), "upcoming_team_game_context")])
    for _ in range(10):
        rig.tick()
    assert len(memory.sent) == 1
    assert rig.pw.report_section("datasets")[0]["state"] == "released"


def test_a_rerun_completes_a_new_generation(rig: Rig, memory: MemorySender) -> None:
    rig.complete_phase3(START)
    rig.complete_phase3(START + timedelta(hours=1), records=481)  # re-run after a fix
    assert [decode(p).get_attributes()["generation"] for p in memory.sent] == ["0", "1"]
    assert len({decode(p).get_id() for p in memory.sent}) == 2


def test_checks_must_pass_after_completion_before_it_publishes(tmp_path: Path, memory: MemorySender) -> None:
    cfg = config(datasets=[{**DATASET, "checks": [{"check": "player_coverage", "min": 0.95}],
                            "checks_within_h": 2}])
    rig = build(tmp_path, cfg, {"pubsub": memory})
    try:
        rig.check("player_coverage", 0.99, START - timedelta(minutes=30))  # before: not this data
        rig.complete_phase3(START)
        rig.tick(5)
        assert memory.sent == []
        rig.check("player_coverage", 0.91, rig.clock.now())
        rig.tick(5)
        assert memory.sent == []
        rig.check("player_coverage", 0.97, rig.clock.now())
        rig.tick()
        assert len(memory.sent) == 1
        checks = decode(memory.sent[0]).get_data()["checks"]  # type: ignore[index]
        assert checks["player_coverage"]["value"] == 0.97
    finally:
        rig.pw.close()


def test_checks_that_never_pass_withhold_it_with_one_warning(tmp_path: Path, memory: MemorySender) -> None:
    cfg = config(datasets=[{**DATASET, "checks": [{"check": "player_coverage", "min": 0.95}],
                            "checks_within_h": 1}])
    rig = build(tmp_path, cfg, {"pubsub": memory})
    try:
        rig.complete_phase3(START)
        rig.check("player_coverage", 0.5, START + timedelta(minutes=5))
        for _ in range(8):
            rig.tick(15)
        assert memory.sent == []
        warned = [n for n in rig.chat.sent if n.alert.name == "dataset_withheld"]
        assert len(warned) == 1 and warned[0].alert.severity == "warning"
        assert "player_coverage = 0.5 (needs >= 0.95)" in warned[0].alert.summary
        assert rig.pw.report_section("datasets")[0]["state"] == "withheld"
    finally:
        rig.pw.close()


def test_backfills_and_history_never_publish(rig: Rig, memory: MemorySender) -> None:
    rig.clock.set(START)
    old = START - timedelta(days=3)
    rig.pw.ingest([make_event("phase3", "succeeded", old.isoformat(), "upcoming_player_game_context",
                              run_date="2026-01-14", mode="same_day")])
    rig.pw.collector.ingest([make_event("phase3", "succeeded", START.isoformat(),
                                        "upcoming_player_game_context", run_date="2026-01-16",
                                        mode="same_day")], backfill=True)
    for _ in range(5):
        rig.tick()
    assert memory.sent == []
    states = {(d["run_date"], d["state"], d["reason"][:12]) for d in rig.pw.report_section("datasets")}
    assert states == {("2026-01-14", "skipped", "run date 202"), ("2026-01-16", "skipped", "backfill")}


def test_exactly_one_across_a_restart(tmp_path: Path) -> None:
    first = MemorySender()
    rig = build(tmp_path, config(), {"pubsub": first})
    rig.complete_phase3(START)
    rig.pw.close()
    again = MemorySender()
    rig = build(tmp_path, config(), {"pubsub": again}, start=START + timedelta(minutes=5))
    try:
        for _ in range(10):
            rig.tick()  # the rebuilt run state shows phase 3 complete: already published
        assert (len(first.sent), again.sent) == (1, [])
    finally:
        rig.pw.close()


def test_a_send_cut_off_by_a_stop_is_sent_again_with_the_same_id(tmp_path: Path) -> None:
    rig = build(tmp_path, config(), {"pubsub": MemorySender(answers=[SendResult(False, "down")])})
    rig.complete_phase3(START)
    store = rig.pw.publisher.store  # type: ignore[union-attr]
    row = store.outbox()[0]
    assert store.claim(row.id, "crashed", rig.clock.now() + timedelta(hours=1))  # claimed, then a stop
    rig.pw.close()
    after = MemorySender()
    rig = build(tmp_path, config(), {"pubsub": after}, start=START + timedelta(hours=2))
    try:
        rig.tick()
        assert len(after.sent) == 1
        assert decode(after.sent[0]).get_id() == row.event_id
    finally:
        rig.pw.close()


def test_failures_are_retried_in_order_per_dataset(rig: Rig, memory: MemorySender) -> None:
    memory.answers = [SendResult(False, "UNAVAILABLE"), SendResult(False, "UNAVAILABLE")]
    rig.complete_phase3(START)
    rig.complete_phase3(START + timedelta(hours=1), records=481)  # generation 1 waits for 0
    assert memory.sent == []
    for _ in range(40):
        rig.tick()
    assert [decode(p).get_attributes()["generation"] for p in memory.sent] == ["0", "1"]
    metrics = rig.pw.metrics.exposition()[0].decode()
    assert 'phasewatch_dataset_events_total{dataset="nba-analytics",outcome="retry",sink="pubsub"} 2.0' in metrics


def test_a_permanent_failure_gives_up_with_one_warning(rig: Rig, memory: MemorySender) -> None:
    memory.answers = [SendResult(False, "NotFound: topic", retryable=False)]
    rig.complete_phase3(START)
    rig.tick(5)
    assert memory.sent == []
    warned = [n for n in rig.chat.sent if n.alert.name == "dataset_event_undelivered"]
    assert len(warned) == 1 and "NotFound: topic" in warned[0].alert.summary


def test_delivery_on_real_time_never_blocks_ingest(tmp_path: Path) -> None:
    release = threading.Event()
    sent: list[dict[str, Any]] = []

    class Slow:
        def send(self, payload: dict[str, Any]) -> SendResult:
            release.wait(10)
            sent.append(payload)
            return SendResult(True, "late")

        def close(self) -> None:
            return None

    rig = build(tmp_path, config(), {"pubsub": Slow()})
    rig.pw.publisher.background = True  # type: ignore[union-attr]
    try:
        rig.complete_phase3(START)  # returns while the send waits
        assert sent == []
        release.set()
        rig.pw.publisher.wait_idle()  # type: ignore[union-attr]
        assert len(sent) == 1
    finally:
        release.set()
        rig.pw.close()


# --- a local Pub/Sub server, the real client ---------------------------------------------------

@dataclass
class PubSubServer:
    """A local google.pubsub.v1.Publisher that records what it is sent."""

    address: str = ""
    messages: list[tuple[str, bytes, dict[str, str], str]] = field(default_factory=list)
    fail: list[grpc.StatusCode] = field(default_factory=list)
    lock: threading.Lock = field(default_factory=threading.Lock)


@pytest.fixture
def pubsub(monkeypatch: pytest.MonkeyPatch) -> Iterator[PubSubServer]:
    state = PubSubServer()

    def publish(request: Any, context: grpc.ServicerContext) -> Any:
        with state.lock:
            if state.fail:
                context.abort(state.fail.pop(0), "refused by the test")
            ids = []
            for m in request.messages:
                state.messages.append((request.topic, m.data, dict(m.attributes), m.ordering_key))
                ids.append(f"m-{len(state.messages)}")
        return PublishResponse.pb()(message_ids=ids)

    handler = grpc.method_handlers_generic_handler("google.pubsub.v1.Publisher", {
        "Publish": grpc.unary_unary_rpc_method_handler(
            publish, request_deserializer=PublishRequest.pb().FromString,
            response_serializer=PublishResponse.pb().SerializeToString)})
    server = grpc.server(futures.ThreadPoolExecutor(max_workers=2))
    server.add_generic_rpc_handlers((handler,))
    port = server.add_insecure_port("127.0.0.1:0")
    server.start()
    state.address = f"127.0.0.1:{port}"
    monkeypatch.setenv("PUBSUB_EMULATOR_HOST", state.address)
    monkeypatch.setenv("GOOGLE_CLOUD_PROJECT", "nba-props-platform")
    try:
        yield state
    finally:
        server.stop(grace=None)


def test_published_through_pubsub_with_ce_attributes_and_the_ordering_key(
        tmp_path: Path, pubsub: PubSubServer) -> None:
    cfg = config()
    assert cfg.publish.pubsub is not None
    pubsub.fail = [grpc.StatusCode.UNAVAILABLE]  # the first publish fails: retried, key resumed
    rig = build(tmp_path, cfg, {"pubsub": PubSubSender(cfg.publish.pubsub)})
    try:
        rig.complete_phase3(START)
        for _ in range(20):
            rig.tick()
        rig.complete_phase3(START + timedelta(hours=1), records=481)
    finally:
        rig.pw.close()
    assert len(pubsub.messages) == 2
    topic, data, attributes, ordering_key = pubsub.messages[0]
    assert topic == "projects/nba-props-platform/topics/nba-datasets"
    assert ordering_key == "nba-analytics"
    event = from_binary(HTTPMessage(attributes, data), JSONFormat(), CloudEvent)
    assert event.get_type() == "dev.phasewatch.dataset.available.v1"
    assert event.get_subject() == "nba-analytics/2026-01-17"
    assert json.loads(data)["row_counts"] == {"upcoming_player_game_context": 470}
    assert [m[2]["ce-generation"] for m in pubsub.messages] == ["0", "1"]


# --- OpenLineage -----------------------------------------------------------------------------------

@pytest.fixture
def lineage_server() -> Iterator[tuple[str, list[tuple[str, dict[str, str], Any]]]]:
    received: list[tuple[str, dict[str, str], Any]] = []
    answers: list[int] = []

    class Handler(BaseHTTPRequestHandler):
        def do_POST(self) -> None:
            body = self.rfile.read(int(self.headers["Content-Length"]))
            received.append((self.path, dict(self.headers), json.loads(body)))
            self.send_response(answers.pop(0) if answers else 201)
            self.end_headers()

        def log_message(self, *args: Any) -> None:
            return None

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}", received
    finally:
        server.shutdown()
        server.server_close()


def test_an_openlineage_run_event_per_published_phase(
        tmp_path: Path, lineage_server: tuple[str, list[Any]], monkeypatch: pytest.MonkeyPatch) -> None:
    url, received = lineage_server
    monkeypatch.setenv("MARQUEZ_API_KEY", "k-123")
    cfg = config(pubsub=None, openlineage={"url": url, "api_key_env": "MARQUEZ_API_KEY"})
    assert cfg.publish.openlineage is not None
    rig = build(tmp_path, cfg, {"openlineage": OpenLineageSender(cfg.publish.openlineage)})
    try:
        rig.complete_phase3(START)
    finally:
        rig.pw.close()
    assert len(received) == 1
    path, headers, body = received[0]
    assert path == "/api/v1/lineage" and headers["Authorization"] == "Bearer k-123"
    assert body["eventType"] == "COMPLETE"
    assert body["schemaURL"].startswith("https://openlineage.io/spec/")
    assert body["job"] == {"namespace": "phasewatch", "name": "nba.phase3", "facets": {}}
    assert body["eventTime"] == START.isoformat()
    outputs = {o["name"]: o for o in body["outputs"]}
    assert set(outputs) >= {"nba_analytics.upcoming_player_game_context", "nba_analytics.player_game_summary"}
    stats = outputs["nba_analytics.upcoming_player_game_context"]["outputFacets"]["outputStatistics"]
    assert stats["rowCount"] == 470


def test_config_rejects_datasets_with_nowhere_to_go_and_unknown_phases() -> None:
    from monitor.errors import ConfigError
    with pytest.raises(ConfigError, match="somewhere to publish"):
        config(pubsub=None)
    with pytest.raises(ConfigError, match="phase 'phase9' is unknown"):
        config(datasets=[{**DATASET, "phase": "phase9"}])
    with pytest.raises(ConfigError, match="one dataset per phase"):
        config(datasets=[DATASET, {**DATASET, "name": "other"}])


# --- Google's Pub/Sub emulator, when this machine has it --------------------------------------------

EMULATOR = Path("/usr/lib/google-cloud-sdk/platform/pubsub-emulator/bin/cloud-pubsub-emulator")


@pytest.fixture
def emulator(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[str]:
    """Google's Pub/Sub emulator on a free loopback port. It comes with the gcloud packages
    (and Java), which no registry reachable here serves: where it is missing this skips, in
    CI too, and the local Publisher above stands in."""
    import socket
    import subprocess
    import time

    if not EMULATOR.exists():
        pytest.skip(f"the Pub/Sub emulator is not installed ({EMULATOR})")
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    log = (tmp_path / "emulator.log").open("w")
    process = subprocess.Popen([str(EMULATOR), "--host=127.0.0.1", f"--port={port}"],
                               stdout=log, stderr=subprocess.STDOUT, cwd=tmp_path)
    try:
        deadline = time.monotonic() + 60
        while "Server started" not in (tmp_path / "emulator.log").read_text():
            if process.poll() is not None or time.monotonic() > deadline:
                pytest.fail("the Pub/Sub emulator did not start: "
                            + (tmp_path / "emulator.log").read_text()[-500:])
            time.sleep(0.2)
        monkeypatch.setenv("PUBSUB_EMULATOR_HOST", f"127.0.0.1:{port}")
        monkeypatch.setenv("GOOGLE_CLOUD_PROJECT", "nba-props-platform")
        yield f"127.0.0.1:{port}"
    finally:
        process.terminate()
        process.wait(timeout=30)
        log.close()


def test_through_the_pubsub_emulator_in_order_with_ce_attributes(tmp_path: Path, emulator: str) -> None:
    from google.cloud import pubsub_v1

    publisher = pubsub_v1.PublisherClient()
    subscriber = pubsub_v1.SubscriberClient()
    topic = publisher.topic_path("nba-props-platform", "nba-datasets")
    subscription = subscriber.subscription_path("nba-props-platform", "nba-datasets-consumer")
    publisher.create_topic(name=topic)
    subscriber.create_subscription(request={"name": subscription, "topic": topic,
                                            "enable_message_ordering": True})
    cfg = config()
    assert cfg.publish.pubsub is not None
    rig = build(tmp_path, cfg, {"pubsub": PubSubSender(cfg.publish.pubsub)})
    try:
        rig.complete_phase3(START)
        rig.complete_phase3(START + timedelta(hours=1), records=481)
        pulled = subscriber.pull(subscription=subscription, max_messages=10, timeout=30)
    finally:
        rig.pw.close()
        publisher.stop()
        subscriber.close()
    messages = [m.message for m in pulled.received_messages]
    assert [m.attributes["ce-generation"] for m in messages] == ["0", "1"]
    assert {m.ordering_key for m in messages} == {"nba-analytics"}
    events = [from_binary(HTTPMessage(dict(m.attributes), m.data), JSONFormat(), CloudEvent)
              for m in messages]
    assert events[0].get_subject() == "nba-analytics/2026-01-17"
    assert [e.get_data()["records"] for e in events] == [470, 481]  # type: ignore[index]


def test_a_destination_without_its_client_library_is_a_config_error(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from monitor.errors import ConfigError
    from monitor.publish import lineage

    monkeypatch.setattr(lineage, "installed", lambda module: module != "openlineage.client")
    cfg = config(openlineage={"url": "http://127.0.0.1:9/"})
    with pytest.raises(ConfigError) as caught:
        build(tmp_path, cfg, None)
    assert "publish.openlineage" in str(caught.value)
    assert "pip install 'phasewatch[lineage]'" in str(caught.value)


def test_a_check_result_of_another_run_date_does_not_count(tmp_path: Path, memory: MemorySender) -> None:
    from datetime import date

    from monitor.checks.result import CheckResult

    cfg = config(datasets=[{**DATASET, "checks": [{"check": "player_coverage", "min": 0.95}]}])
    clock = FakeClock(START)
    probe, sinks, _ = simulated(SimulatedWorld())
    pw = Phasewatch.build(cfg, db_path=tmp_path / "pw.db", clock=clock, probe=probe, sinks=sinks,
                          publish_senders={"pubsub": memory})  # checks: the checks store
    rig = Rig(pw, clock, SimulatedWorld(), MemoryChannel())
    try:
        rig.complete_phase3(START)
        later = START + timedelta(minutes=5)
        pw.checks.record([CheckResult("player_coverage", 0.99, later, run_date=date(2026, 1, 16))])
        rig.tick(5)
        assert memory.sent == []
        pw.checks.record([CheckResult("player_coverage", 0.98, later + timedelta(minutes=1),
                                      run_date=date(2026, 1, 17))])
        rig.tick()
        assert len(memory.sent) == 1
    finally:
        pw.close()


def test_exactly_one_on_sqlite_and_postgresql(tmp_path: Path, db: str) -> None:
    first = MemorySender(answers=[SendResult(False, "UNAVAILABLE")])
    rig = build(tmp_path, config(), {"pubsub": first}, db=db)
    rig.complete_phase3(START)
    rig.complete_phase3(START + timedelta(hours=1), records=481)
    for _ in range(20):
        rig.tick()
    rig.pw.close()
    again = MemorySender()
    rig = build(tmp_path, config(), {"pubsub": again}, start=START + timedelta(hours=1, minutes=20), db=db)
    try:
        for _ in range(5):
            rig.tick()
        assert [decode(p).get_attributes()["generation"] for p in first.sent] == ["0", "1"]
        assert again.sent == []
        assert [d["state"] for d in rig.pw.report_section("datasets")] == ["released", "released"]
    finally:
        rig.pw.close()
