"""phasewatch monitor: collect, track, act and serve.

Only the foundation's small names are re-exported here. The configuration is
``monitor.config``: it composes the sections of ``alerts``, ``slo`` and the actuator, so
loading it from this file would make every import of a ``monitor`` module load them too
(and ``alerts`` imports ``monitor.errors``: a circle).
"""

from monitor.clock import Clock, FakeClock, SystemClock
from monitor.errors import ConfigError, EventError, PhasewatchError, StoreError
from monitor.events import Event, parse_events

__all__ = [
    "Clock",
    "ConfigError",
    "Event",
    "EventError",
    "FakeClock",
    "PhasewatchError",
    "StoreError",
    "SystemClock",
    "parse_events",
]
