"""Channels: where notifications go. One module per kind; the registry maps config kinds."""

from __future__ import annotations

from typing import TYPE_CHECKING

from monitor.lazy import lazy_exports

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


__getattr__ = lazy_exports(__name__, _LAZY)
