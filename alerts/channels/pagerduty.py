"""PagerDuty Events API v2 over httpx: trigger and resolve with dedup_key = the alert key.

PagerDuty deduplicates on ``dedup_key``: a trigger sent twice (a retry after a lost reply,
or after a restart) updates the one open incident, and a resolve closes it.
"""

from __future__ import annotations

import hashlib
from collections.abc import Mapping
from typing import Any

import httpx

from alerts.channels.base import parse_retry_after
from alerts.errors import DeliveryError
from alerts.notification import Notification
from alerts.text import plain

MAX_DEDUP_KEY = 255
MAX_SUMMARY = 1024
MAX_DETAILS = 10_000  # custom_details text: the error as the event carried it, at most 2,000
DEFAULT_SEVERITY_MAP: Mapping[str, str] = {
    "critical": "critical", "warning": "warning", "info": "info",
}


def dedup_key(key: str) -> str:
    """The alert key, or (when longer than 255) a prefix plus a hash of the whole key."""
    if len(key) <= MAX_DEDUP_KEY:
        return key
    digest = hashlib.sha256(key.encode()).hexdigest()[:32]
    return f"{key[: MAX_DEDUP_KEY - 33]}#{digest}"


def event_body(notification: Notification, routing_key: str, source: str,
               severity_map: Mapping[str, str] = DEFAULT_SEVERITY_MAP) -> dict[str, Any]:
    """The Events API v2 body for one notification."""
    alert = notification.alert
    body: dict[str, Any] = {
        "routing_key": routing_key,
        "event_action": notification.action,
        "dedup_key": dedup_key(alert.key),
    }
    if notification.action == "resolve":
        return body
    summary = alert.summary + (f" ({alert.count} occurrences)" if alert.count > 1 else "")
    labels = {k: plain(v) for k, v in alert.labels.items()}
    details: dict[str, Any] = {"labels": labels, "count": alert.count, "key": plain(alert.key)}
    if alert.details:
        details["details"] = plain(alert.details, MAX_DETAILS)
    payload: dict[str, Any] = {
        "summary": plain(summary, MAX_SUMMARY),
        "source": labels.get("service") or labels.get("pipeline") or source,
        "severity": severity_map.get(alert.severity, "error"),
        "timestamp": notification.opened_at.isoformat(),
        "class": alert.name,
        "custom_details": details,
    }
    if "phase" in labels:
        payload["component"] = labels["phase"]
    if "pipeline" in labels:
        payload["group"] = labels["pipeline"]
    body["payload"] = payload
    body["client"] = "phasewatch"
    if alert.links:
        body["links"] = [{"href": url, "text": name} for name, url in sorted(alert.links.items())]
    return body


class PagerDutyChannel:
    """Sends each notification as one Events API v2 event (202 = accepted)."""

    def __init__(
        self, name: str, routing_key: str, *, url: str = "https://events.pagerduty.com/v2/enqueue",
        source: str = "phasewatch", severity_map: Mapping[str, str] | None = None,
        timeout_s: float = 10.0, client: httpx.Client | None = None,
    ) -> None:
        self.name = name
        self.url = url
        self.source = source
        self.severity_map = dict(severity_map or DEFAULT_SEVERITY_MAP)
        self._routing_key = routing_key
        self._client = client or httpx.Client(timeout=timeout_s)

    def send(self, notification: Notification) -> str | None:
        key = self._post(event_body(notification, self._routing_key, self.source, self.severity_map))
        if notification.notice:  # an event: recorded as an incident that is closed at once
            resolve = {"routing_key": self._routing_key, "event_action": "resolve", "dedup_key": key}
            self._post(resolve)
        return key

    def _post(self, body: dict[str, Any]) -> str:
        try:
            response = self._client.post(self.url, json=body)
        except httpx.HTTPError as exc:
            raise DeliveryError(self.name, f"cannot reach PagerDuty: {exc}", retryable=True) from exc
        if response.status_code in (200, 201, 202):
            return str(body["dedup_key"])
        retry_after = parse_retry_after(response.headers.get("Retry-After"))
        raise DeliveryError.from_status(self.name, response.status_code, response.text, retry_after)

    def close(self) -> None:
        self._client.close()
