"""Errors of the actuator.

Hierarchy (see ``monitor/errors.py`` for the rest)::

    PhasewatchError
    └── EventError
        └── ActionError      a manual action or an actions query that cannot be accepted:
                             422 bad body, 400 bad query, 404 unknown name, 409 nothing to do
"""

from __future__ import annotations

from monitor.errors import EventError


class ActionError(EventError):
    """A manual action or an actions query was refused; ``problems`` name the fields."""
