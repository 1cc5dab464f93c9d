"""phasewatch's client: report pipeline events, and helpers for the pipeline's own services.

Installs with httpx and tenacity only; ``phasewatch_client.kit`` holds the service helpers.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from phasewatch_client.client import (
        Ack,
        ClientStats,
        PhasewatchClient,
        Tracking,
        describe_exception,
    )
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

_LAZY = {
    **dict.fromkeys(("Ack", "ClientStats", "PhasewatchClient", "Tracking", "describe_exception"),
                    "phasewatch_client.client"),
    **dict.fromkeys(("Clock", "FakeClock", "SystemClock"), "phasewatch_client.clock"),
    **dict.fromkeys(("EmitDeps", "emit_one"), "phasewatch_client.emit"),
    **dict.fromkeys(("DeliveryError", "EventError", "PhasewatchError", "Problem"),
                    "phasewatch_client.errors"),
    **dict.fromkeys(("MODES", "STATUSES", "Event", "Mode", "Status", "build_event", "new_event_id",
                     "validate_event"), "phasewatch_client.event"),
}

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


def __getattr__(name: str) -> Any:
    """Import a re-exported name on first use: a module of this package (the clock, the
    event) does not import the HTTP client and its dependencies."""
    module = _LAZY.get(name)
    if module is None:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    value = getattr(importlib.import_module(module), name)
    globals()[name] = value
    return value
