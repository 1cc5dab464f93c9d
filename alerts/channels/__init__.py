"""Channels: where notifications go. One module per kind; the registry maps config kinds."""

from alerts.channels.alertmanager import AlertmanagerChannel
from alerts.channels.base import Channel, ReportChannel, UnavailableChannel
from alerts.channels.file import FileChannel
from alerts.channels.log import LogChannel
from alerts.channels.memory import MemoryChannel
from alerts.channels.pagerduty import PagerDutyChannel
from alerts.channels.registry import CHANNEL_FACTORIES, build_channel, build_channels
from alerts.channels.slack import SlackBotChannel, SlackWebhookChannel

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
