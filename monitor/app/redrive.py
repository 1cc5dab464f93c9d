"""Redrive dead letters: Pub/Sub messages refused on arrival, put through the push path again.

A processor renamed in a deploy has its messages dead-lettered (``unknown_processor``);
once the config knows the name (a restart), ``POST /v1/dead-letters/replay`` stores
their events. Selection: ``ids``, or the oldest letters (of ``reason``, past id ``after``)
up to ``limit`` (docs/events.md, "Redriving dead letters").
"""

from __future__ import annotations

from typing import Annotated, Any

from pydantic import BaseModel, ConfigDict, Field, StrictInt, ValidationError

from monitor.collector import Collector
from monitor.errors import EventError
from monitor.store.base import EventStore
from monitor.validation import body_rejection

MAX_LIMIT = 1000
DEFAULT_LIMIT = 100
MAX_ID = 2**63 - 1  # the stores' integer ids


class ReplayRequest(BaseModel):
    """Which dead letters to redrive (every field optional)."""

    model_config = ConfigDict(extra="forbid")

    ids: Annotated[list[Annotated[StrictInt, Field(ge=1, le=MAX_ID)]] | None,
                   Field(min_length=1, max_length=MAX_LIMIT)] = None
    reason: Annotated[str | None, Field(min_length=1, max_length=100)] = None
    limit: Annotated[StrictInt | None, Field(ge=1, le=MAX_LIMIT)] = None
    after: Annotated[StrictInt, Field(ge=0, le=MAX_ID)] = 0


def parse_request(raw: bytes) -> ReplayRequest:
    """The request body (empty: ``{}``); EventError 400 when not JSON, 422 naming the field."""
    try:
        return ReplayRequest.model_validate_json(raw if raw.strip() else b"{}")
    except ValidationError as exc:
        raise body_rejection(exc, ReplayRequest) from None


def replay(collector: Collector, store: EventStore, request: ReplayRequest) -> dict[str, Any]:
    """Redrive the selected letters (oldest first); the endpoint's answer.

    ``remaining``: the letters the same selection still finds past the last one looked at
    (``next_after``: pass it as ``after`` to go on past the letters still invalid)."""
    limit = request.limit or (len(request.ids) if request.ids else DEFAULT_LIMIT)
    letters = store.oldest_dead_letters(ids=request.ids, reason=request.reason,
                                        after=request.after, limit=limit)
    done = collector.redrive(letters)
    last = letters[-1].id if letters else request.after
    remaining = store.count_dead_letters(ids=request.ids, reason=request.reason, after=last)
    return {
        "replayed": done.replayed,
        "duplicates": done.duplicates,
        "still_invalid": [invalid_dict(letter.id, exc) for letter, exc in done.still_invalid],
        "remaining": remaining,
        "next_after": last,
    }


def invalid_dict(letter_id: int, exc: EventError) -> dict[str, Any]:
    return {"id": letter_id, "reason": exc.reason, "detail": str(exc)}
