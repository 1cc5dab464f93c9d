"""Error answers: every one is JSON ``{"error", "reason", "details"}`` naming the fields."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from starlette.responses import JSONResponse

from monitor.errors import EventError, Problem


def error_body(
    error: str, problems: Sequence[Problem] = (), reason: str | None = None
) -> dict[str, Any]:
    """The JSON body of every error answer: ``{"error", "reason", "details"}``."""
    body: dict[str, Any] = {"error": error, "details": [p.as_dict() for p in problems]}
    if reason is not None:
        body["reason"] = reason
    return body


def event_error_response(exc: EventError) -> JSONResponse:
    """An EventError as its 4xx JSON answer (the problems name the fields)."""
    headers = {"WWW-Authenticate": 'Bearer realm="phasewatch"'} if exc.status_code == 401 else None
    return JSONResponse(error_body(str(exc), exc.problems, exc.reason), exc.status_code, headers)

