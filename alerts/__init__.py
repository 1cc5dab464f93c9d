"""phasewatch alerts: the alert model, the router and its channels, summaries and KPIs."""

from __future__ import annotations

from typing import TYPE_CHECKING

from monitor.lazy import lazy_exports

if TYPE_CHECKING:
    from alerts.channels import (
        AlertmanagerChannel,
        Channel,
        FileChannel,
        LogChannel,
        MemoryChannel,
        PagerDutyChannel,
        ReportChannel,
        SlackBotChannel,
        SlackWebhookChannel,
    )
    from alerts.config import AlertingConfig
    from alerts.daily import DailySummary, HealthSnapshot, build_summary
    from alerts.engine import AlertEngine
    from alerts.errors import AlertsError, DeliveryError, InvalidSilence, UnknownSilence
    from alerts.flood import error_signature, failure_alert
    from alerts.kpis import WeeklyKpis, weekly_kpis
    from alerts.model import SEVERITIES, Alert, Severity, alert_key
    from alerts.notification import Delivery, Notification, Report
    from alerts.router import AlertRouter, Router
    from alerts.simple import SimpleRouter

_LAZY = {
    **dict.fromkeys(("AlertmanagerChannel", "Channel", "FileChannel", "LogChannel", "MemoryChannel",
                     "PagerDutyChannel", "ReportChannel", "SlackBotChannel", "SlackWebhookChannel"),
                    "alerts.channels"),
    **dict.fromkeys(("AlertingConfig",), "alerts.config"),
    **dict.fromkeys(("DailySummary", "HealthSnapshot", "build_summary"), "alerts.daily"),
    **dict.fromkeys(("AlertEngine",), "alerts.engine"),
    **dict.fromkeys(("AlertsError", "DeliveryError", "InvalidSilence", "UnknownSilence"),
                    "alerts.errors"),
    **dict.fromkeys(("error_signature", "failure_alert"), "alerts.flood"),
    **dict.fromkeys(("WeeklyKpis", "weekly_kpis"), "alerts.kpis"),
    **dict.fromkeys(("SEVERITIES", "Alert", "Severity", "alert_key"), "alerts.model"),
    **dict.fromkeys(("Delivery", "Notification", "Report"), "alerts.notification"),
    **dict.fromkeys(("AlertRouter", "Router"), "alerts.router"),
    **dict.fromkeys(("SimpleRouter",), "alerts.simple"),
}

__all__ = [
    "SEVERITIES",
    "Alert",
    "AlertEngine",
    "AlertRouter",
    "AlertingConfig",
    "AlertmanagerChannel",
    "AlertsError",
    "Channel",
    "DailySummary",
    "Delivery",
    "DeliveryError",
    "FileChannel",
    "HealthSnapshot",
    "InvalidSilence",
    "LogChannel",
    "MemoryChannel",
    "Notification",
    "PagerDutyChannel",
    "Report",
    "ReportChannel",
    "Router",
    "Severity",
    "SimpleRouter",
    "SlackBotChannel",
    "SlackWebhookChannel",
    "UnknownSilence",
    "WeeklyKpis",
    "alert_key",
    "build_summary",
    "error_signature",
    "failure_alert",
    "weekly_kpis",
]


__getattr__ = lazy_exports(__name__, _LAZY)
