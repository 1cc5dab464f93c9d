"""The audit log as the replay report lists and as ``GET /v1/actions``."""

from __future__ import annotations

from collections.abc import Mapping
from datetime import date
from typing import Any

from monitor.actuator.errors import ActionError
from monitor.actuator.store import ActuatorStore
from monitor.config import Config
from monitor.errors import Problem
from monitor.validation import query_instant, query_int, render_value

KINDS = ("decision", "trigger", "deferral", "verification", "recovery", "guard", "manual",
         "cascade", "playbook")
FILTERS = ("pipeline", "run_date", "phase", "processor", "service", "outcome", "kind", "since",
           "limit", "manual")
MAX_LIMIT = 1000

_REPORT_KINDS = {"triggers": "trigger", "deferrals": "deferral", "recoveries": "recovery"}


def _trigger(item: dict[str, Any]) -> dict[str, Any]:
    return {k: item.get(k) for k in (
        "time", "pipeline", "run_date", "mode", "phase", "reason", "attempt", "outcome", "rule",
        "decision_reason", "note", "error", "generation", "manual", "targets")}


def _deferral(item: dict[str, Any]) -> dict[str, Any]:
    return {
        "time": item["time"], "pipeline": item["pipeline"], "run_date": item["run_date"],
        "mode": item["mode"], "phase": item["phase"], "reason": item["reason"],
        "service": item["service"], "retry_at": item.get("retry_at"), "action": item["action"],
        "batch_id": item["batch_id"], "deferral": item.get("deferral"),
        "detail": item.get("gate_detail"), "outcome": item["outcome"],
    }


def _recovery(item: dict[str, Any]) -> dict[str, Any]:
    return {
        "time": item["time"], "pipeline": item["pipeline"], "run_date": item["run_date"],
        "mode": item["mode"], "phase": item["phase"], "batch_id": item["batch_id"],
        "processor": item["processor"], "action": item["action"], "outcome": item["outcome"],
        "rule": item.get("rule"), "reason": item["reason"], "attempt": item["attempt"],
        "detail": item.get("detail"), "manual": item["manual"],
    }


_SHAPES = {"trigger": _trigger, "deferral": _deferral, "recovery": _recovery}


def report_items(store: ActuatorStore, name: str) -> list[dict[str, Any]]:
    """The replay report list ``name`` (triggers, deferrals, recoveries), oldest first."""
    kind = _REPORT_KINDS[name]
    return [_SHAPES[kind](item) for item in store.audit_rows(kinds=(kind,))]


def query_actions(store: ActuatorStore, config: Config, query: Mapping[str, str]) -> dict[str, Any]:
    """``GET /v1/actions``: the audit log, newest first, filtered.

    Query parameters: ``pipeline``, ``run_date`` (YYYY-MM-DD), ``phase``, ``processor``,
    ``service``, ``outcome``, ``kind`` (one of KINDS), ``manual`` (true/false), ``since``
    (RFC 3339), ``limit`` (1-1000, default 100). Raises ActionError (400) naming the field.
    """
    problems: list[Problem] = []
    unknown = sorted(set(query) - set(FILTERS))
    for name in unknown:
        problems.append(Problem(name, f"unknown filter; allowed: {', '.join(FILTERS)}"))
    filters: dict[str, str] = {}
    pipeline = query.get("pipeline")
    if pipeline is not None:
        if pipeline not in config.pipeline_map:
            problems.append(Problem("pipeline", "unknown pipeline; allowed: "
                                    f"{', '.join(sorted(config.pipeline_map))}", render_value(pipeline)))
        filters["pipeline"] = pipeline
    run_date = query.get("run_date")
    if run_date is not None:
        try:
            filters["run_date"] = date.fromisoformat(run_date).isoformat()
        except ValueError:
            problems.append(Problem("run_date", "not a date; expected YYYY-MM-DD", render_value(run_date)))
    for name in ("phase", "processor", "service", "outcome"):
        value = query.get(name)
        if value is not None:
            filters[name] = value
    kinds: tuple[str, ...] = ()
    kind = query.get("kind")
    if kind is not None:
        if kind not in KINDS:
            problems.append(Problem("kind", f"unknown kind; allowed: {', '.join(KINDS)}", render_value(kind)))
        kinds = (kind,)
    since = query_instant(query, "since", problems)
    limit = query_int(query, "limit", problems, default=100, low=1, high=MAX_LIMIT)
    manual = query.get("manual")
    if manual is not None and manual not in ("true", "false"):
        problems.append(Problem("manual", "allowed: true, false", render_value(manual)))
    if problems:
        raise ActionError("bad_query", problems, status_code=400)
    items = store.audit_rows(kinds=kinds, filters=filters, since=since,
                             limit=None if manual else limit, newest_first=True)
    if manual is not None:
        items = [i for i in items if i["manual"] == (manual == "true")][:limit]
    return {"actions": items, "count": len(items)}
