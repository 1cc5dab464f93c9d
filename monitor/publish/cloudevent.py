"""The "data available" CloudEvent (1.0) and its Pub/Sub binary-mode message.

The event is built with the CloudEvents SDK (which validates the attributes) and encoded by
its binary binding: each attribute becomes a ``ce-`` message attribute, the data's media
type ``content-type``, and the data (JSON) the message body, as the Pub/Sub protocol
binding for CloudEvents has it. Everything is derived from the completion, so the same
completion always gives the same event, byte for byte: a re-emit after a crash is a
duplicate that consumers drop by ``ce-id``. The SDK is imported by the first event built: a
process that publishes nothing (the CLI commands that read) never loads it.
"""

from __future__ import annotations

import json
import uuid
from dataclasses import dataclass
from datetime import datetime
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from cloudevents.core.v1.event import CloudEvent

# Fixed: event ids must not change between versions (they are how consumers deduplicate).
ID_NAMESPACE = uuid.UUID("6f1c3f55-3a43-4c5e-9d0e-7d1b4c2a9e10")


@dataclass(frozen=True)
class Completion:
    """One completed phase of one run, generation ``generation`` (0 first, 1 after a re-run)."""

    dataset: str
    pipeline: str
    run_date: str
    mode: str
    phase: str
    generation: int
    completed_at: datetime

    @property
    def key(self) -> str:
        return f"{self.pipeline}/{self.run_date}/{self.mode}/{self.phase}/{self.generation}"


def event_id(completion: Completion) -> str:
    """The event's id: the same for the same (pipeline, run date, mode, phase, generation)."""
    return str(uuid.uuid5(ID_NAMESPACE, completion.key))


@dataclass(frozen=True)
class Message:
    """A Pub/Sub message: data, attributes and ordering key."""

    data: bytes
    attributes: dict[str, str]
    ordering_key: str

    def as_dict(self) -> dict[str, Any]:
        return {"data": json.loads(self.data), "attributes": self.attributes,
                "ordering_key": self.ordering_key}

    @classmethod
    def from_dict(cls, stored: dict[str, Any]) -> Message:
        return cls(_dumps(stored["data"]), dict(stored["attributes"]), str(stored["ordering_key"]))


def build_event(completion: Completion, data: dict[str, Any], *, event_type: str,
                source: str) -> CloudEvent:
    """The CloudEvent for a completion (the SDK raises if an attribute is not valid)."""
    from cloudevents.core.v1.event import CloudEvent

    attributes: dict[str, Any] = {
        "specversion": "1.0", "id": event_id(completion), "type": event_type,
        "source": f"{source.rstrip('/')}/{completion.pipeline}",
        "subject": f"{completion.dataset}/{completion.run_date}",
        "time": completion.completed_at, "datacontenttype": "application/json",
        # extensions (lower-case letters and digits): what subscriptions filter on
        "pipeline": completion.pipeline, "phase": completion.phase,
        "rundate": completion.run_date, "mode": completion.mode,
        "generation": str(completion.generation),
    }
    return CloudEvent(attributes, data)


def pubsub_message(event: CloudEvent, ordering_key: str) -> Message:
    """The event in Pub/Sub binary mode: ``ce-`` attributes, ``content-type``, JSON data."""
    from cloudevents.core.bindings.http import to_binary
    from cloudevents.core.formats.json import JSONFormat

    encoded = to_binary(event, JSONFormat())
    return Message(_dumps(json.loads(encoded.body)), dict(encoded.headers), ordering_key)


def _dumps(data: Any) -> bytes:
    return json.dumps(data, sort_keys=True, separators=(",", ":")).encode()
