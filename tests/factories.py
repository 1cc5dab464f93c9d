"""Tiny builders for events in tests."""

from __future__ import annotations

import itertools
import json
from datetime import datetime
from typing import Any

from monitor.events import Event

_ids = itertools.count(1)


def event_dict(phase: str, status: str, at: str, processor: str | None = None, *,
               run_date: str = "2026-01-17", pipeline: str = "nba", **fields: Any) -> dict[str, Any]:
    """A valid event as a dict (fresh event_id unless given)."""
    body: dict[str, Any] = {
        "event_id": fields.pop("event_id", f"t-{next(_ids)}"), "pipeline": pipeline,
        "run_date": run_date, "phase": phase, "status": status, "timestamp": at,
    }
    if processor is not None:
        body["processor"] = processor
    body.update(fields)
    return body


def make_event(*args: Any, **kwargs: Any) -> Event:
    return Event.model_validate_json(json.dumps(event_dict(*args, **kwargs)))


def body(*events: dict[str, Any]) -> bytes:
    return json.dumps(list(events)).encode()


def ts(text: str) -> datetime:
    return datetime.fromisoformat(text)
