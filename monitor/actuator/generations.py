"""A re-run of a phase as a new *generation* of its trigger row.

One row per (pipeline, run_date, mode, phase) is what makes "exactly one trigger" hold; a
re-run (a cascade step, a playbook's action) reuses that row at the next generation with
an idempotency key of its own, so pending → succeeded → verified holds per generation and
the sink sees a new key (and the same key again on a retry of that generation).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from datetime import datetime
from typing import Any

from monitor.actuator.context import Context
from monitor.actuator.store import TriggerRow


def rerun_generation(
    ctx: Context, run: tuple[str, str, str], phase: str, *, key: str, reason: str, rule: str,
    now: datetime, detail: Mapping[str, Any], processors: Sequence[str] = (),
    manual: bool = False, force: bool = False,
) -> TriggerRow | None:
    """Write the next generation of ``phase``'s trigger in ``run`` as pending (or the first
    row, when phasewatch never triggered the phase); None when a delivery is in flight or
    another writer changed the row first (try again later). ``detail["payload"]`` is added
    to the request; effect verification counts only activity after this generation."""
    existing = ctx.store.find_trigger(run, phase)
    first = 1 if existing is None else existing.generation + 1
    detail = {**detail, "first_generation": first, "rerun": True}
    if existing is None:
        return ctx.store.decide(
            run, phase, reason=reason, rule=rule, now=now, detail=detail, manual=manual,
            force=force, idem_key=key, generation=first, processors=processors,
        )
    if existing.state == "sending":
        return None  # a delivery is in flight: the caller tries again on its next tick
    changed = ctx.store.update_trigger(existing.id, {
        "state": "pending", "generation": first, "idem_key": key,
        "reason": reason, "send_reason": reason, "rule": rule,
        "manual": manual, "force": force, "decided_at": now, "next_attempt_at": now,
        "attempts": 0, "delivered": frozenset(), "outcome": None, "succeeded_at": None,
        "verified_at": None, "deferrals": 0, "deferred_since": None, "blocked_by": None,
        "escalated": False, "last_error": None, "processors": tuple(processors),
        "detail": {**existing.detail, **detail},
    }, state=existing.state)
    return ctx.store.trigger(existing.id) if changed else None
