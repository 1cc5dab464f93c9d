"""Where "data available" goes: Pub/Sub, an OpenLineage backend, or memory (users' tests).

A sender delivers one stored payload once and says how it went; it never raises for the
destination's failures and never retries itself (the publisher's outbox does). The
Google and OpenLineage clients are optional extras (``gcp``, ``lineage``), imported on
first use: this module is the only one of the component that talks to them.
"""

from __future__ import annotations

import importlib
import logging
import threading
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, Protocol

from monitor.config import resolve_secret
from monitor.publish.cloudevent import Completion, Message
from monitor.publish.config import OpenLineagePublish, PubSubPublish
from monitor.publish.lineage import run_event

log = logging.getLogger(__name__)

# gRPC status names after which publishing the same message again cannot succeed.
PERMANENT = frozenset({"NOT_FOUND", "PERMISSION_DENIED", "INVALID_ARGUMENT", "UNAUTHENTICATED"})


@dataclass(frozen=True)
class SendResult:
    """How a destination answered: ``ok``, or why not and whether trying again may help."""

    ok: bool
    detail: str = ""
    retryable: bool = True


class Sender(Protocol):
    """Delivers one stored payload to one destination, once."""

    def send(self, payload: dict[str, Any]) -> SendResult: ...

    def close(self) -> None: ...


@dataclass
class MemorySender:
    """Keeps what it is sent; queue results in ``answers`` to make the next sends answer them."""

    sent: list[dict[str, Any]] = field(default_factory=list)
    answers: list[SendResult] = field(default_factory=list)

    def send(self, payload: dict[str, Any]) -> SendResult:
        if self.answers:
            answer = self.answers.pop(0)
            if not answer.ok:
                return answer
        self.sent.append(payload)
        return SendResult(True, f"kept #{len(self.sent)}")

    def close(self) -> None:
        return None


def _default_publisher() -> Any:
    pubsub_v1: Any = importlib.import_module("google.cloud.pubsub_v1")
    types = pubsub_v1.types
    # Ordering per dataset needs ordering enabled on the client (and on the subscription);
    # one message per request: these events are few and latency-bound.
    return pubsub_v1.PublisherClient(
        publisher_options=types.PublisherOptions(enable_message_ordering=True),
        batch_settings=types.BatchSettings(max_messages=1),
    )


class PubSubSender:
    """Publishes the CloudEvent message (binary mode) with its dataset's ordering key."""

    def __init__(self, cfg: PubSubPublish, publisher_factory: Callable[[], Any] | None = None) -> None:
        self.cfg = cfg
        self._factory = publisher_factory or _default_publisher
        self._publisher: Any = None
        self._lock = threading.Lock()

    def _client(self) -> Any:
        with self._lock:
            if self._publisher is None:
                self._publisher = self._factory()
            return self._publisher

    def send(self, payload: dict[str, Any]) -> SendResult:
        project = resolve_secret(self.cfg.project_env)
        if project is None:
            return SendResult(False, f"no project: set {self.cfg.project_env}", retryable=False)
        message = Message.from_dict(payload)
        publisher = topic = None
        try:
            publisher = self._client()
            topic = publisher.topic_path(project, self.cfg.topic)
            future = publisher.publish(topic, message.data, ordering_key=message.ordering_key,
                                       **message.attributes)
            message_id = future.result(timeout=self.cfg.timeout_s)
        except Exception as exc:  # the client raises many kinds; each is a failed publish
            if publisher is not None and topic is not None:
                # A failed publish pauses its ordering key until resumed: the retry resumes it.
                try:
                    publisher.resume_publish(topic, message.ordering_key)
                except Exception:
                    log.debug("event=publish.resume_failed", exc_info=True)
            code = getattr(getattr(exc, "grpc_status_code", None), "name", None)
            return SendResult(False, f"{type(exc).__name__}: {exc}"[:300], code not in PERMANENT)
        return SendResult(True, f"message {message_id}")

    def close(self) -> None:
        with self._lock:
            publisher, self._publisher = self._publisher, None
        if publisher is not None:
            try:
                publisher.stop()
            except Exception:
                log.warning("event=publish.stop_failed", exc_info=True)


class OpenLineageSender:
    """POSTs the RunEvent with openlineage-python's HTTP transport (its own retries off)."""

    def __init__(self, cfg: OpenLineagePublish) -> None:
        self.cfg = cfg
        self._transport: Any = None
        self._lock = threading.Lock()

    def _client(self) -> Any:
        with self._lock:
            if self._transport is None:
                http: Any = importlib.import_module("openlineage.client.transport.http")
                key = resolve_secret(self.cfg.api_key_env)
                self._transport = http.HttpTransport(http.HttpConfig.from_dict({
                    "url": str(self.cfg.url), "endpoint": self.cfg.endpoint,
                    "timeout": self.cfg.timeout_s,
                    "retry": {"total": 0, "connect": 0, "read": 0, "status": 0},
                    "auth": {"type": "api_key", "apiKey": key} if key else {},
                }))
            return self._transport

    def send(self, payload: dict[str, Any]) -> SendResult:
        c = payload["completion"]
        completion = Completion(c["dataset"], c["pipeline"], c["run_date"], c["mode"], c["phase"],
                                int(c["generation"]), datetime.fromisoformat(c["completed_at"]))
        outputs = [(str(t), None if n is None else int(n)) for t, n in payload["outputs"]]
        try:
            self._client().emit(run_event(completion, outputs, self.cfg))
        except Exception as exc:
            status = getattr(getattr(exc, "response", None), "status_code", None)
            permanent = isinstance(status, int) and 400 <= status < 500 and status not in (408, 429)
            return SendResult(False, f"{type(exc).__name__}: {exc}"[:300], not permanent)
        return SendResult(True, "accepted")

    def close(self) -> None:
        with self._lock:
            transport, self._transport = self._transport, None
        if transport is not None:
            transport.close()


def default_senders(pubsub: PubSubPublish | None,
                    openlineage: OpenLineagePublish | None) -> dict[str, Sender]:
    """The real senders of the configured destinations."""
    out: dict[str, Sender] = {}
    if pubsub is not None:
        out["pubsub"] = PubSubSender(pubsub)
    if openlineage is not None:
        out["openlineage"] = OpenLineageSender(openlineage)
    return out
