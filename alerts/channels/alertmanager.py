"""Prometheus Alertmanager over httpx: POST /api/v2/alerts, for teams already on it.

Alertmanager identifies an alert by its label set, so a repeat or a retried post of the
same alert updates it rather than adding one. A firing alert carries
``endsAt = now + alert_ttl_s`` (each repeat extends it), so it stays firing between
phasewatch's repeats and still clears if phasewatch goes away; the resolve sets ``endsAt``
to the moment the alert cleared.
"""

from __future__ import annotations

import re
from datetime import timedelta
from typing import Any

import httpx

from alerts.channels.base import parse_retry_after
from alerts.errors import DeliveryError
from alerts.notification import Notification
from alerts.text import inert, plain

_BAD_LABEL_CHARS = re.compile(r"[^A-Za-z0-9_]")
NOTICE_TTL = timedelta(minutes=5)
MAX_ANNOTATION = 4096  # a receiver's message, not a log: long text is cut


def label_name(name: str) -> str:
    """A valid Prometheus label name for ``name`` (bad characters become ``_``)."""
    clean = _BAD_LABEL_CHARS.sub("_", name) or "_"
    return f"_{clean}" if clean[0].isdigit() else clean


def alert_body(notification: Notification, alert_ttl_s: float) -> dict[str, Any]:
    """One item of the POST /api/v2/alerts list."""
    alert = notification.alert
    labels = {label_name(k): plain(v) for k, v in alert.match_labels().items() if plain(v)}
    annotations = {"summary": inert(alert.summary, MAX_ANNOTATION),
                   "phasewatch_key": inert(alert.key, MAX_ANNOTATION)}
    if alert.details:
        annotations["description"] = inert(alert.details, MAX_ANNOTATION)
    if alert.count > 1:
        annotations["count"] = str(alert.count)
    for name, url in alert.links.items():
        annotations[f"{label_name(name)}_url"] = inert(url, MAX_ANNOTATION)
    if notification.action == "resolve":
        ends = alert.at  # when it cleared
    elif notification.notice:
        ends = notification.at + NOTICE_TTL  # an event: shown briefly, then resolved by itself
    else:
        ends = notification.at + timedelta(seconds=alert_ttl_s)
    body: dict[str, Any] = {
        "labels": labels, "annotations": annotations,
        "startsAt": notification.opened_at.isoformat(), "endsAt": ends.isoformat(),
    }
    run = alert.links.get("run")
    if run and run.startswith(("http://", "https://")):
        body["generatorURL"] = run
    return body


class AlertmanagerChannel:
    """Posts each notification as a one-alert list to Alertmanager's v2 API."""

    def __init__(self, name: str, url: str, *, token: str | None = None,
                 alert_ttl_s: float = 86400.0, timeout_s: float = 10.0,
                 client: httpx.Client | None = None) -> None:
        self.name = name
        self.url = url.rstrip("/") + "/api/v2/alerts"
        self.alert_ttl_s = alert_ttl_s
        headers = {"Authorization": f"Bearer {token}"} if token else {}
        self._client = client or httpx.Client(timeout=timeout_s, headers=headers)

    def send(self, notification: Notification) -> str | None:
        body = [alert_body(notification, self.alert_ttl_s)]
        try:
            response = self._client.post(self.url, json=body)
        except httpx.HTTPError as exc:
            raise DeliveryError(self.name, f"cannot reach Alertmanager: {exc}", retryable=True) from exc
        if 200 <= response.status_code < 300:
            return None
        retry_after = parse_retry_after(response.headers.get("Retry-After"))
        raise DeliveryError.from_status(self.name, response.status_code, response.text, retry_after)

    def close(self) -> None:
        self._client.close()
