"""phasewatch alerts: the alert model, the router and its channels."""

from alerts.model import SEVERITIES, Alert, Severity, alert_key
from alerts.router import (
    Channel,
    Delivery,
    LogChannel,
    MemoryChannel,
    Notification,
    Router,
    SimpleRouter,
)

__all__ = [
    "SEVERITIES",
    "Alert",
    "Channel",
    "Delivery",
    "LogChannel",
    "MemoryChannel",
    "Notification",
    "Router",
    "Severity",
    "SimpleRouter",
    "alert_key",
]
