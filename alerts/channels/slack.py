"""Slack through slack-sdk: an incoming webhook, or a bot token that keeps one message per alert.

The only module that imports slack_sdk. The SDK's own retry handlers are switched off
(they sleep for real); the outbox retries instead, on the injected clock.
"""

from __future__ import annotations

import logging
import math
from collections.abc import Mapping, Sequence
from typing import Any

from slack_sdk.errors import SlackApiError
from slack_sdk.web import WebClient
from slack_sdk.webhook import WebhookClient

from alerts.blockkit import fallback_text, notification_blocks, report_text
from alerts.channels.base import parse_retry_after
from alerts.errors import DeliveryError
from alerts.notification import Notification, Report

log = logging.getLogger(__name__)

# Slack API errors (HTTP 200, ok: false) that a later retry can fix.
RETRYABLE_API_ERRORS = frozenset({
    "ratelimited", "rate_limited", "internal_error", "fatal_error", "service_unavailable",
    "request_timeout",
})


def _header(headers: Mapping[str, Any] | None, name: str) -> str | None:
    for key, value in (headers or {}).items():
        if key.lower() == name.lower():
            if isinstance(value, list | tuple):
                return str(value[0]) if value else None
            return str(value)
    return None


class SlackWebhookChannel:
    """Posts each notification (and the daily summary) to an incoming webhook as Block Kit."""

    def __init__(self, name: str, url: str, *, timeout_s: float = 10.0,
                 client: WebhookClient | None = None) -> None:
        self.name = name
        self._client = client or WebhookClient(
            url=url, timeout=max(math.ceil(timeout_s), 1), retry_handlers=[]
        )

    def _post(self, text: str, blocks: Sequence[Mapping[str, Any]]) -> None:
        try:
            response = self._client.send(text=text, blocks=[dict(b) for b in blocks])
        except OSError as exc:  # URLError, timeouts, refused connections
            raise DeliveryError(self.name, f"cannot reach the webhook: {exc}", retryable=True) from exc
        if response.status_code == 200:
            return
        retry_after = parse_retry_after(_header(response.headers, "Retry-After"))
        raise DeliveryError.from_status(self.name, response.status_code, response.body, retry_after)

    def send(self, notification: Notification) -> str | None:
        self._post(fallback_text(notification), notification_blocks(notification))
        return None

    def send_report(self, report: Report) -> None:
        self._post(report_text(report.title), report.blocks)


class SlackBotChannel:
    """With a bot token: chat.postMessage on the first trigger, chat.update afterwards, so
    each alert is one message that turns to resolved; repeats also reply in its thread."""

    def __init__(self, name: str, token: str, channel: str, *, base_url: str = "https://slack.com/api/",
                 timeout_s: float = 10.0, client: WebClient | None = None) -> None:
        self.name = name
        self.channel = channel
        self._client = client or WebClient(
            token=token, base_url=base_url, timeout=max(math.ceil(timeout_s), 1),
            retry_handlers=[],
        )

    def send(self, notification: Notification) -> str | None:
        text, blocks = fallback_text(notification), notification_blocks(notification)
        ref = _parse_ref(notification.ref)
        if ref is not None:
            channel, ts = ref
            try:
                self._call("chat.update", channel=channel, ts=ts, text=text, blocks=blocks)
            except DeliveryError as exc:
                if exc.message != "message_not_found":
                    raise
                ref = None  # deleted by someone: post a fresh message below
            else:
                if notification.repeat:
                    self._call("chat.postMessage", channel=channel, thread_ts=ts, text=text)
                return notification.ref
        reply = self._call("chat.postMessage", channel=self.channel, text=text, blocks=blocks)
        return f"{reply.get('channel', self.channel)}:{reply['ts']}"

    def send_report(self, report: Report) -> None:
        self._call("chat.postMessage", channel=self.channel, text=report_text(report.title),
                   blocks=[dict(b) for b in report.blocks])

    def _call(self, method: str, **params: Any) -> dict[str, Any]:
        try:
            if method == "chat.update":
                response = self._client.chat_update(**params)
            else:
                response = self._client.chat_postMessage(**params)
        except SlackApiError as exc:
            raise self._error(exc) from exc
        except OSError as exc:
            raise DeliveryError(self.name, f"cannot reach Slack: {exc}", retryable=True) from exc
        data = response.data
        return dict(data) if isinstance(data, dict) else {}

    def _error(self, exc: SlackApiError) -> DeliveryError:
        response = exc.response
        status = int(getattr(response, "status_code", 0) or 0)
        retry_after = parse_retry_after(_header(getattr(response, "headers", None), "Retry-After"))
        data = getattr(response, "data", None)
        code = str(data.get("error", "")) if isinstance(data, dict) else ""
        if status == 200:
            return DeliveryError(self.name, code or "ok: false", status=status,
                                 retryable=code in RETRYABLE_API_ERRORS, retry_after_s=retry_after)
        return DeliveryError.from_status(self.name, status, code, retry_after)


def _parse_ref(ref: str | None) -> tuple[str, str] | None:
    if not ref or ":" not in ref:
        return None
    channel, ts = ref.rsplit(":", 1)
    return channel, ts
