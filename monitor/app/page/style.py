"""The page's colours: one tone per state, shared by the board, the SLO bars and the charts.

The stylesheet is rendered from these, and the screenshot test looks for them.
"""

from __future__ import annotations

COLOURS = {
    "good": "#2e9e44",  # complete, ok
    "warn": "#e8a200",  # degraded, warning
    "bad": "#d93025",  # failed, breach, critical
    "busy": "#3b7dd8",  # running, info
    "idle": "#e3e6ea",  # pending, no data
    "ink": "#1f2328",
    "muted": "#6b7280",
    "line": "#d0d7de",
    "paper": "#ffffff",
    "page": "#f3f4f6",
}

# Processors in a duration chart: none of them a state's tone.
SERIES = ("#4e79a7", "#9c755f", "#76b7b2", "#b07aa1", "#59a14f", "#7f7f7f", "#edc948", "#ff9da7")

_TONES = {
    # runs and phases, SLOs, alerts' severities
    "complete": "good", "degraded": "warn", "failed": "bad", "running": "busy", "pending": "idle",
    "ok": "good", "warning": "warn", "breach": "bad",
    "critical": "bad", "info": "busy",
    # the actuator's outcomes
    "succeeded": "good", "accepted": "good", "effect_seen": "good", "already_running": "good",
    "deferred": "warn", "blocked": "warn", "skipped": "idle",
    "no_effect": "bad", "gave_up": "bad", "abandoned": "bad",
}


def tone(state: str | None) -> str:
    """The tone (a key of ``COLOURS``) of a run, phase, SLO, alert or action state."""
    return _TONES.get(state or "", "idle")
