"""Trigger sinks: the protocol, one module per kind, and the registry keyed by config ``kind``."""

from monitor.actuator.sinks.base import SinkResult, Target, TriggerRequest, TriggerSink
from monitor.actuator.sinks.http import HttpSink
from monitor.actuator.sinks.log import LogSink
from monitor.actuator.sinks.memory import MemorySink, SentRequest
from monitor.actuator.sinks.pubsub import PubSubSink
from monitor.actuator.sinks.registry import SINK_KINDS, default_sinks

__all__ = [
    "SINK_KINDS",
    "HttpSink",
    "LogSink",
    "MemorySink",
    "PubSubSink",
    "SentRequest",
    "SinkResult",
    "Target",
    "TriggerRequest",
    "TriggerSink",
    "default_sinks",
]
