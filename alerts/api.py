"""Plain functions behind the HTTP endpoints (the service module maps them to routes).

Each takes the engine and the time, returns JSON-ready data, and raises phasewatch errors
for bad input (``InvalidSilence`` is an ``EventError``: 422 with the problems listed;
``UnknownSilence`` means 404).
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import datetime
from typing import Any

from alerts.daily_render import render_text
from alerts.engine import AlertEngine


def list_active_alerts(engine: AlertEngine, now: datetime) -> dict[str, Any]:
    """``GET /v1/alerts``: firing alerts (worst first) with suppression and routing, and the
    silences in force."""
    statuses = engine.router.statuses(now)
    return {
        "alerts": [s.as_dict() for s in statuses],
        "silences": [s.as_dict(now) for s in engine.silences.silences(now)],
    }


def silencing(engine: AlertEngine, silence_id: str, now: datetime) -> list[str]:
    """The keys of the firing alerts silence ``silence_id`` holds back now. Empty when it
    matches none of them: a typo in a matcher, or alerts that have not fired yet."""
    return [s.alert.key for s in engine.router.statuses(now) if silence_id in s.silenced_by]


def create_silence(engine: AlertEngine, body: Mapping[str, Any], now: datetime) -> dict[str, Any]:
    """``POST /v1/silences``: validate and store; returns the silence (201) with the firing
    alerts it silences now (``silencing``), so a matcher that matches nothing shows at once."""
    silence = engine.silences.create(body, now)
    return {**silence.as_dict(now), "silencing": silencing(engine, silence.id, now)}


def expire_silence(engine: AlertEngine, silence_id: str, now: datetime) -> dict[str, Any]:
    """``DELETE /v1/silences/{id}``: end a silence now; returns it."""
    return engine.silences.expire(silence_id, now).as_dict(now)


def list_silences(engine: AlertEngine, now: datetime, *, include_expired: bool = False
                  ) -> dict[str, Any]:
    return {"silences": [s.as_dict(now) for s in
                         engine.silences.silences(now, include_expired=include_expired)]}


def daily_health_check(engine: AlertEngine, now: datetime, *, send: bool = True) -> dict[str, Any]:
    """``POST /v1/jobs/daily-health-check``: judge now; send today's summary unless it went
    already (Cloud Scheduler may call twice). Returns status, the summary and its text."""
    summary = engine.run_daily_health_check(now, send=send)
    return {
        "status": summary.status, "healthy": summary.healthy,
        "summary": summary.as_dict(), "text": render_text(summary),
    }
