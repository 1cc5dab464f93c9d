"""The Pub/Sub sink: publishes the trigger with the idempotency key as a message attribute.

The only module that imports google-cloud-pubsub (an optional dependency: ``phasewatch[gcp]``).
"""

from __future__ import annotations

import importlib
import json
import logging
import threading
from collections.abc import Callable
from typing import Any

from monitor.actuator.config import PubSubTrigger
from monitor.actuator.sinks.base import SinkResult, Target, TriggerRequest
from monitor.config import resolve_secret

log = logging.getLogger(__name__)

# gRPC status names after which retrying the same publish cannot succeed.
PERMANENT = frozenset({"NOT_FOUND", "PERMISSION_DENIED", "INVALID_ARGUMENT", "UNAUTHENTICATED"})


def _default_publisher() -> Any:
    # Imported on first use: the gcp extra is optional, and the client is slow to import.
    pubsub_v1: Any = importlib.import_module("google.cloud.pubsub_v1")
    # One message per request: a trigger is latency-bound, never throughput-bound.
    return pubsub_v1.PublisherClient(batch_settings=pubsub_v1.types.BatchSettings(max_messages=1))


class PubSubSink:
    """Publishes to ``pubsub`` targets; the publisher client is created on first use."""

    def __init__(
        self, *, project: str | None = None, timeout_s: float = 30.0,
        publisher_factory: Callable[[], Any] | None = None,
    ) -> None:
        self._project = project
        self._timeout_s = timeout_s
        self._factory = publisher_factory or _default_publisher
        self._publisher: Any = None
        self._lock = threading.Lock()

    def _client(self) -> Any:
        with self._lock:
            if self._publisher is None:
                self._publisher = self._factory()
            return self._publisher

    def send(self, target: Target, request: TriggerRequest) -> SinkResult:
        if not isinstance(target, PubSubTrigger):
            return SinkResult("failed", f"the pubsub sink cannot send to a {target.kind} target", False)
        project = self._project or resolve_secret(target.project_env)
        if project is None:
            return SinkResult("failed", f"no project: set {target.project_env}", False)
        try:
            publisher = self._client()
            topic = publisher.topic_path(project, target.topic)
            future = publisher.publish(
                topic, json.dumps(request.body()).encode(), **request.attributes()
            )
            message_id = future.result(timeout=self._timeout_s)
        except Exception as exc:  # the client raises many kinds; each is a failed publish
            code = getattr(getattr(exc, "grpc_status_code", None), "name", None)
            detail = f"{type(exc).__name__}: {exc}"[:300]
            return SinkResult("failed", detail, code not in PERMANENT)
        return SinkResult("accepted", f"message {message_id}")

    def close(self) -> None:
        with self._lock:
            publisher, self._publisher = self._publisher, None
        if publisher is not None:
            try:
                publisher.stop()
            except Exception:
                log.warning("event=pubsub.stop_failed", exc_info=True)
