"""phasewatch monitor: collect, track, act and serve."""

from monitor.clock import Clock, FakeClock, SystemClock
from monitor.config import Config, load_config, parse_config
from monitor.errors import ConfigError, EventError, PhasewatchError, StoreError
from monitor.events import Event, parse_events

__all__ = [
    "Clock",
    "Config",
    "ConfigError",
    "Event",
    "EventError",
    "FakeClock",
    "PhasewatchError",
    "StoreError",
    "SystemClock",
    "load_config",
    "parse_config",
    "parse_events",
]
