"""The two functions behind the HTTP actions endpoints (the service module wires them).

- ``list_actions(actuator, query)`` → ``GET /v1/actions``;
- ``manual_action(actuator, body, actor=...)`` → ``POST /v1/actions/trigger``.

Both raise ``ActionError`` (an ``EventError``: the service's handler answers it as JSON with
``details`` naming the field) for bad input.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from monitor.actuator.audit import query_actions
from monitor.actuator.engine import Actuator
from monitor.actuator.manual import manual_action


def list_actions(actuator: Actuator, query: Mapping[str, str]) -> dict[str, Any]:
    """The audit log, newest first: ``{"actions": [...], "count": n}``; filters in ``query``."""
    actuator.flush_notes()
    return query_actions(actuator.store, actuator.config, query)


__all__ = ["list_actions", "manual_action"]
