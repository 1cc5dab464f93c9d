"""Channels: where notifications go. One module per kind; the registry maps config kinds."""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from alerts.channels.alertmanager import AlertmanagerChannel
    from alerts.channels.base import Channel, ReportChannel, UnavailableChannel
    from alerts.channels.file import FileChannel
    from alerts.channels.log import LogChannel
    from alerts.channels.memory import MemoryChannel
    from alerts.channels.pagerduty import PagerDutyChannel
    from alerts.channels.registry import CHANNEL_FACTORIES, build_channel, build_channels
    from alerts.channels.slack import SlackBotChannel, SlackWebhookChannel

_LAZY = {
    **dict.fromkeys(("AlertmanagerChannel",), "alerts.channels.alertmanager"),
    **dict.fromkeys(("Channel", "ReportChannel", "UnavailableChannel"), "alerts.channels.base"),
    **dict.fromkeys(("FileChannel",), "alerts.channels.file"),
    **dict.fromkeys(("LogChannel",), "alerts.channels.log"),
    **dict.fromkeys(("MemoryChannel",), "alerts.channels.memory"),
    **dict.fromkeys(("PagerDutyChannel",), "alerts.channels.pagerduty"),
    **dict.fromkeys(("CHANNEL_FACTORIES", "build_channel", "build_channels"),
                    "alerts.channels.registry"),
    **dict.fromkeys(("SlackBotChannel", "SlackWebhookChannel"), "alerts.channels.slack"),
}

__all__ = [
    "CHANNEL_FACTORIES",
    "AlertmanagerChannel",
    "Channel",
    "FileChannel",
    "LogChannel",
    "MemoryChannel",
    "PagerDutyChannel",
    "ReportChannel",
    "SlackBotChannel",
    "SlackWebhookChannel",
    "UnavailableChannel",
    "build_channel",
    "build_channels",
]


def __getattr__(name: str) -> Any:
    """Import a re-exported name on first use: importing a module of this package does not
    import the whole package (the CLI's cold paths load only what they use)."""
    module = _LAZY.get(name)
    if module is None:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    value = getattr(importlib.import_module(module), name)
    globals()[name] = value
    return value
