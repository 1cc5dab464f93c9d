"""The page's lists: firing alerts, recent anomalies and what the actuator did.

From ``GET /v1/alerts``, ``GET /v1/anomalies`` and ``GET /v1/actions`` items.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from monitor.app.page.charts import anomaly_text
from monitor.app.page.style import tone
from monitor.app.page.timefmt import Clock

ACTIONS_SHOWN = 12
ANOMALIES_SHOWN = 10


@dataclass(frozen=True)
class Item:
    """One line of a list: when, a coloured tag, what, and a muted detail."""

    when: str
    tag: str
    tone: str
    text: str
    detail: str


def alert_items(alerts: Sequence[Mapping[str, Any]], clock: Clock) -> list[Item]:
    """Firing alerts, worst first (as the API orders them)."""
    out = []
    for a in alerts:
        told = ", ".join(a["notified"]) or "nobody yet"
        state = "suppressed" if a["status"] == "suppressed" else f"notified: {told}"
        if (acked := a.get("acknowledged")) is not None:
            state += f"; acknowledged by {acked['by']}"
        out.append(Item(clock.short(a["opened_at"]), a["severity"], tone(a["severity"]),
                        a["summary"], state))
    return out


def anomaly_items(anomalies: Sequence[Mapping[str, Any]], clock: Clock) -> list[Item]:
    """The most recent anomalies, newest first."""
    return [Item(clock.short(a["time"]), a["kind"], "bad" if a["kind"] == "duration" else "warn",
                 anomaly_text(a), a.get("pattern") or "")
            for a in anomalies[:ANOMALIES_SHOWN]]


def action_items(actions: Sequence[Mapping[str, Any]], clock: Clock) -> list[Item]:
    """What the actuator did, newest first: its decisions, and verifications that saw their
    effect, are left out (``GET /v1/actions`` has every line)."""
    out = []
    for a in actions:
        if a["kind"] == "decision" or (a["kind"] == "verification"
                                       and a["outcome"] == "effect_seen"):
            continue
        run = f"{a['phase'] or ''} of {a['run_date']} {a['mode'] or ''}".strip()
        what = f"{a['action']} {run}" + (f" · {a['batch_id']}" if a.get("batch_id") else "")
        why = list(dict.fromkeys(str(a[k]) for k in ("reason", "rule", "service") if a.get(k)))
        if a.get("attempt"):
            why.append(f"attempt {a['attempt']}")
        if a.get("manual"):
            why.append(f"manual by {a.get('actor') or 'api'}")
        out.append(Item(clock.short(a["time"]), a["outcome"] or a["kind"], tone(a["outcome"]),
                        what, ", ".join(why)))
        if len(out) == ACTIONS_SHOWN:
            break
    return out
