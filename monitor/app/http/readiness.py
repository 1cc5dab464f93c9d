"""Readiness: the checks behind ``GET /ready`` in the health+json shape."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

from monitor.app.phasewatch import Phasewatch


def _check(status: str, output: str | None = None, **extra: Any) -> list[dict[str, Any]]:
    item: dict[str, Any] = {"status": status, **extra}
    if output:
        item["output"] = output
    return [item]


def readiness_checks(pw: Phasewatch) -> dict[str, list[dict[str, Any]]]:
    """Checks in the health+json ``checks`` shape; ``required`` marks those that gate readiness."""
    now = pw.clock.now().isoformat()
    checks: dict[str, list[dict[str, Any]]] = {}
    try:
        # Not count(): it scans the events (10 ms per million) under the store's lock.
        pw.store.dead_letters(limit=1)
        checks["store:readable"] = _check("pass", None, time=now, required=True)
    except Exception as exc:
        checks["store:readable"] = _check("fail", f"{type(exc).__name__}: {exc}", time=now,
                                          required=True)
    writable, why = store_writable(pw.store)
    checks["store:writable"] = _check("pass" if writable else "fail", why, time=now, required=True)
    if pw.store.shared:
        cluster = pw.cluster
        checks["store:cluster"] = _check(
            "pass", None, time=now, required=False,
            observedValue={"instance": cluster.instance, "leading": cluster.leading,
                           "leader": cluster.leader},
        )
    checks["config:loaded"] = _check(
        "pass", None, observedValue=[p.id for p in pw.config.pipelines], time=now, required=True
    )
    for name, record in pw.job_runs.items():
        checks[f"job:{name}"] = _check(
            "warn" if record.last_error else "pass", record.last_error, required=False,
            time=record.last_run.isoformat() if record.last_run else None, observedValue=record.runs,
        )
    return checks


def store_writable(store: object) -> tuple[bool, str | None]:
    """Can the store's file (and its directory, for the WAL) be written? Stores that are no
    file (PostgreSQL) pass: ``store:readable`` reaches them."""
    path = getattr(store, "path", None)
    if not isinstance(path, str) or path == ":memory:":
        return True, None
    db = Path(path)
    targets = [db.parent] + [p for p in (db, Path(f"{path}-wal")) if p.exists()]
    for target in targets:
        if not os.access(target, os.W_OK):
            return False, f"not writable: {target}"
    return True, None


def overall_status(checks: dict[str, list[dict[str, Any]]]) -> str:
    """fail if a required check fails; warn if any check is not pass; else pass."""
    items = [item for values in checks.values() for item in values]
    if any(i["status"] == "fail" and i.get("required") for i in items):
        return "fail"
    return "warn" if any(i["status"] != "pass" for i in items) else "pass"


