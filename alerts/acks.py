"""Acknowledgements from PagerDuty: its V3 webhooks, verified, applied to the router.

A person who acknowledges a page in PagerDuty has taken the problem on: phasewatch stops
reminding every channel of it (PagerDuty's own escalation does the rest) until it resolves,
its severity rises, or the acknowledgement lapses. A person who resolves the incident in
PagerDuty while the condition still holds has closed the page: a reminder would open a new
incident and page again, so that counts as an acknowledgement too; phasewatch's own resolve
still goes out when the condition ends.

PagerDuty signs each delivery with the subscription's secret: ``X-PagerDuty-Signature:
v1=<hex HMAC-SHA256 of the body>`` (several, comma-separated, while a secret is rotated).
The incident's ``incident_key`` is the dedup key phasewatch sent: the alert's key.
"""

from __future__ import annotations

import hashlib
import hmac
import logging
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Literal

from pydantic import AwareDatetime, BaseModel, ConfigDict, Field, TypeAdapter, ValidationError

from alerts.channels.registry import SecretResolver
from alerts.config import ChannelConfig, PagerDutyChannelConfig
from alerts.router import AlertRouter
from monitor.validation import body_rejection

log = logging.getLogger(__name__)

SIGNATURE_HEADER = "x-pagerduty-signature"
ACKNOWLEDGING = ("incident.acknowledged", "incident.resolved")
UNACKNOWLEDGING = ("incident.unacknowledged",)

Outcome = Literal["acknowledged", "unacknowledged", "ignored"]


class _Open(BaseModel):
    model_config = ConfigDict(extra="ignore", frozen=True)


class _Agent(_Open):
    summary: str | None = Field(default=None, max_length=1000)


class _Incident(_Open):
    incident_key: str | None = Field(default=None, max_length=1000)


class _Event(_Open):
    event_type: str = Field(min_length=1, max_length=200)
    occurred_at: AwareDatetime
    agent: _Agent | None = None
    data: _Incident | None = None


class WebhookPayload(_Open):
    """What phasewatch reads of a PagerDuty V3 webhook delivery (the rest is ignored)."""

    event: _Event


_PAYLOAD = TypeAdapter(WebhookPayload)


def webhook_secrets(channels: Sequence[ChannelConfig], secret: SecretResolver,
                    ) -> tuple[tuple[bytes, ...], tuple[str, ...]]:
    """The signing secrets of the PagerDuty channels' webhook subscriptions, and the
    variables named for one that are not set (their deliveries are refused)."""
    found: list[bytes] = []
    unset: list[str] = []
    for cfg in channels:
        if isinstance(cfg, PagerDutyChannelConfig) and cfg.webhook_secret_env is not None:
            value = secret(cfg.webhook_secret_env)
            if value is None:
                unset.append(cfg.webhook_secret_env)
            else:
                found.append(value.encode())
    return tuple(found), tuple(unset)


def verify(body: bytes, header: str | None, secrets: Sequence[bytes]) -> bool:
    """Whether one of the header's ``v1=`` signatures is the body's HMAC-SHA256 under one
    of ``secrets`` (constant-time comparisons)."""
    if not header or not secrets:
        return False
    given = [part.strip().removeprefix("v1=") for part in header.split(",")
             if part.strip().startswith("v1=")]
    expected = [hmac.new(secret, body, hashlib.sha256).hexdigest() for secret in secrets]
    return any(hmac.compare_digest(g, e) for g in given for e in expected)


def parse(body: bytes) -> WebhookPayload:
    """The delivery's event; EventError (400 not JSON, 422 a field wrong) naming the field."""
    try:
        return _PAYLOAD.validate_json(body)
    except ValidationError as exc:
        raise body_rejection(exc, WebhookPayload) from None


@dataclass(frozen=True)
class Applied:
    """What a delivery did: the outcome, and the alert key it was about (if any)."""

    outcome: Outcome
    key: str | None = None
    reason: str | None = None

    def as_dict(self) -> dict[str, str | None]:
        return {"outcome": self.outcome, "key": self.key, "reason": self.reason}


def apply(router: AlertRouter, payload: WebhookPayload) -> Applied:
    """Acknowledge or unacknowledge the alert the incident is about; anything else (other
    event types, pings, incidents phasewatch did not open or that are over) is ignored."""
    event = payload.event
    key = event.data.incident_key if event.data is not None else None
    if event.event_type not in ACKNOWLEDGING + UNACKNOWLEDGING:
        return Applied("ignored", key, f"event type {event.event_type}")
    if not key:
        return Applied("ignored", None, "the incident has no incident_key")
    if event.event_type in UNACKNOWLEDGING:
        if router.unacknowledge(key):
            return Applied("unacknowledged", key)
        return Applied("ignored", key, "no firing alert has this key")
    who = (event.agent.summary if event.agent is not None else None) or "someone in PagerDuty"
    if event.event_type == "incident.resolved":
        who = f"{who} (resolved in PagerDuty)"
    if router.acknowledge(key, event.occurred_at, who):
        return Applied("acknowledged", key)
    # Phasewatch's own resolve comes back as incident.resolved once the alert is over.
    return Applied("ignored", key, "no firing alert has this key")
