"""phasewatch's client: report pipeline events, and helpers for the pipeline's own services.

Installs with httpx and tenacity only; ``phasewatch_client.kit`` holds the service helpers.
"""

from phasewatch_client.client import Ack, ClientStats, PhasewatchClient, Tracking, describe_exception
from phasewatch_client.clock import Clock, FakeClock, SystemClock
from phasewatch_client.emit import EmitDeps, emit_one
from phasewatch_client.errors import DeliveryError, EventError, PhasewatchError, Problem
from phasewatch_client.event import (
    MODES,
    STATUSES,
    Event,
    Mode,
    Status,
    build_event,
    new_event_id,
    validate_event,
)

__version__ = "0.1.0"

__all__ = [
    "MODES",
    "STATUSES",
    "Ack",
    "ClientStats",
    "Clock",
    "DeliveryError",
    "EmitDeps",
    "Event",
    "EventError",
    "FakeClock",
    "Mode",
    "PhasewatchClient",
    "PhasewatchError",
    "Problem",
    "Status",
    "SystemClock",
    "Tracking",
    "__version__",
    "build_event",
    "describe_exception",
    "emit_one",
    "new_event_id",
    "validate_event",
]
