"""The bodies of the JSON read endpoints, shared by the API and the dashboard page.

Each returns what its ``GET`` answers, JSON-ready (``GET /v1/actions`` is
``monitor.actuator.api.list_actions``). Call them holding the state lock (the
API's ``_read``), so that ingest does not change run state under them.
"""

from __future__ import annotations

from datetime import date
from typing import Any

from alerts.api import list_active_alerts
from monitor.app.phasewatch import Phasewatch
from monitor.app.runnotes import note_list


def runs_body(pw: Phasewatch, pipeline: str | None = None,
              run_date: date | None = None) -> dict[str, Any]:
    """``GET /v1/runs``: tracked runs, newest run date first, with their notes (as
    ``status --json`` prints them)."""
    runs = pw.tracker.runs(pipeline=pipeline, run_date=run_date)
    return {"runs": [{**r.as_dict(), "notes": note_list(r, pw.config)} for r in runs]}


def slos_body(pw: Phasewatch, history: bool = False) -> dict[str, Any]:
    """``GET /v1/slos``: every SLO's status (``history``: with its units per local day)."""
    return {"slos": pw.slo_report(history)}


def anomalies_body(pw: Phasewatch) -> dict[str, Any]:
    """``GET /v1/anomalies``: recent outliers, newest first."""
    return {"anomalies": list(reversed(pw.anomalies.as_report()))}


def alerts_body(pw: Phasewatch) -> dict[str, Any]:
    """``GET /v1/alerts``: firing alerts (worst first) and the silences in force."""
    return list_active_alerts(pw.alerting, pw.clock.now())

