"""The sink registry: trigger ``kind`` → the sink that sends it."""

from __future__ import annotations

from monitor.actuator.sinks.base import TriggerSink
from monitor.actuator.sinks.http import HttpSink
from monitor.actuator.sinks.log import LogSink
from monitor.actuator.sinks.pubsub import PubSubSink

SINK_KINDS = ("http", "pubsub", "log")


def default_sinks() -> dict[str, TriggerSink]:
    """The real sinks ``serve`` uses, keyed by trigger kind."""
    return {"http": HttpSink(), "pubsub": PubSubSink(), "log": LogSink()}
