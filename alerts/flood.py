"""Flood control: many failures with one error signature become one alert with a count.

Error messages differ in their particulars (ids, numbers, quoted values, addresses) even
when they are the same bug. ``error_signature`` strips the particulars; ``failure_alert``
keys the alert on the signature, so the router folds every repeat into one alert and adds
up the count: 500 workers failing with the same ImportError are one notification that says
"500 occurrences", not 500 pages.
"""

from __future__ import annotations

import hashlib
import re
from collections.abc import Mapping
from datetime import datetime
from functools import lru_cache

from alerts.model import Alert, Severity, alert_key

_RULES: tuple[tuple[re.Pattern[str], str], ...] = (
    (re.compile(r"[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}", re.I), "<uuid>"),
    (re.compile(r"\b\d{4}-\d{2}-\d{2}[T ]\d{2}:\d{2}(:\d{2}(\.\d+)?)?(Z|[+-]\d{2}:?\d{2})?\b"), "<time>"),
    (re.compile(r"\b\d{4}-\d{2}-\d{2}\b"), "<date>"),
    (re.compile(r"\b0x[0-9a-f]+\b", re.I), "<hex>"),
    (re.compile(r"\b[0-9a-f]{12,}\b", re.I), "<hex>"),
    (re.compile(r"\b\d+(\.\d+)?\.\d+\.\d+(:\d+)?\b"), "<addr>"),
    (re.compile(r"'[^']*'"), "'<v>'"),
    (re.compile(r'"[^"]*"'), '"<v>"'),
    (re.compile(r"\d+(\.\d+)?"), "<n>"),
    (re.compile(r"\s+"), " "),
)
MAX_SIGNATURE_TEXT = 300


def normalise_error(error: str) -> str:
    """The error message without its particulars (ids, numbers, quoted values, times)."""
    return _normalised(error)[0]


def error_signature(error: str) -> str:
    """A short stable id of the normalised error (12 hex characters)."""
    return _normalised(error)[1]


# A failing processor sends the same message again and again (each retry, each night): the
# ten patterns and the hash (about 25 µs) run once per distinct message.
@lru_cache(maxsize=256)
def _normalised(error: str) -> tuple[str, str]:
    """(normalised text, signature) of an error message."""
    text = error.strip().splitlines()[-1] if error.strip() else ""  # a traceback's last line
    for pattern, replacement in _RULES:
        text = pattern.sub(replacement, text)
    text = text.strip()[:MAX_SIGNATURE_TEXT]
    return text, hashlib.sha256(text.encode()).hexdigest()[:12]


def failure_alert(
    kind: str, labels: Mapping[str, str], error: str, at: datetime, *,
    severity: Severity = "critical", summary: str | None = None,
    links: Mapping[str, str] | None = None, count: int = 1,
) -> Alert:
    """An alert for one failure, keyed by ``kind``, ``labels`` and the error's signature.

    Fire it for every failure: repeats of the same signature fold into one alert whose
    ``count`` is the number of failures. Keep per-entity labels (a player, a batch) out of
    ``labels``, or every entity gets an alert of its own.
    """
    signature = error_signature(error)
    keyed = {**labels, "signature": signature}
    normalised = normalise_error(error)
    return Alert(
        key=alert_key(kind, keyed), severity=severity,
        summary=summary or f"{kind}: {normalised}"[:1024], at=at,
        details=f"error signature {signature}: {normalised}\nlast error: {error[:1500]}",
        labels={**keyed, "alertname": kind}, links=dict(links or {}), count=count,
    )
