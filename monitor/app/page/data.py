"""What the dashboard page shows: the JSON API's bodies, read together at one instant."""

from __future__ import annotations

from typing import Any

from monitor.actuator.api import list_actions
from monitor.app.phasewatch import Phasewatch
from monitor.app.reads import alerts_body, anomalies_body, runs_body, slos_body

ACTIONS_READ = 100  # the page lists the latest notable ones (decisions left out)


def dashboard_data(pw: Phasewatch) -> dict[str, Any]:
    """``GET /v1/runs``, ``/v1/slos?history=true``, ``/v1/anomalies``, ``/v1/alerts`` and
    ``/v1/actions?limit=100`` in one object, with the ``time`` they were read at.

    Call it holding the state lock, as the API reads them (``Api._read``).
    """
    actions: list[dict[str, Any]] = []
    if pw.actuator is not None:
        actions = list_actions(pw.actuator, {"limit": str(ACTIONS_READ)})["actions"]
    return {
        "time": pw.clock.now().isoformat(),
        **runs_body(pw),
        **slos_body(pw, history=True),
        **anomalies_body(pw),
        "alerts": alerts_body(pw)["alerts"],
        "actions": actions,
    }
