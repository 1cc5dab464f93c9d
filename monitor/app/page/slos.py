"""SLOs on the page: a budget bar each, and the window's units day by day.

Built from ``GET /v1/slos?history=true`` items.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from monitor.app.page.style import tone

BAR_WIDTH = 220
BAR_HEIGHT = 14
DAY_WIDTH = 7  # a day's column in the history strip, with a 2 px gap
DAY_GAP = 2
HISTORY_HEIGHT = 28


@dataclass(frozen=True)
class Day:
    """One day of an SLO's window: a column whose height is its units, bad ones on top."""

    x: int
    good_y: float
    good_h: float
    bad_y: float
    bad_h: float
    title: str


@dataclass(frozen=True)
class SloView:
    """One SLO as the page draws it."""

    name: str
    pipeline: str
    status: str
    tone: str
    window: str
    sli: str
    objective: str
    counts: str
    budget: str
    fill: int  # width of the budget bar's filled part, in px
    burn: str
    days: tuple[Day, ...]
    history_width: int


def slo_views(slos: Sequence[Mapping[str, Any]]) -> list[SloView]:
    return [_view(s) for s in slos]


def _number(value: float) -> str:
    return f"{value:.2f}".rstrip("0").rstrip(".")


def _view(slo: Mapping[str, Any]) -> SloView:
    sli = "no data" if slo["sli"] is None else f"{slo['sli']:.2%}"
    days = tuple(_days(slo.get("history") or ()))
    width = len(days) * (DAY_WIDTH + DAY_GAP)
    return SloView(
        name=slo["name"], pipeline=slo["pipeline"], status=slo["status"], tone=tone(slo["status"]),
        window=slo["window"], sli=sli, objective=f"{slo['objective']:.1%}",
        counts=f"{slo['good']} good of {slo['total']} {slo['unit']}",
        budget=_budget_text(slo), fill=_fill(slo), burn=f"{slo['burn_rate']:.2f}x",
        days=days, history_width=width,
    )


def _fill(slo: Mapping[str, Any]) -> int:
    """The budget bar's filled width: what is left (ok, warning), all of it when overspent."""
    if slo["budget_total"] <= 0:
        return 0
    if slo["status"] == "breach":
        return BAR_WIDTH
    left = min(max(float(slo["budget_remaining"]), 0.0), 1.0)
    return round(left * BAR_WIDTH)


def _budget_text(slo: Mapping[str, Any]) -> str:
    unit, total = slo["unit"], slo["budget_total"]
    if total <= 0:
        return f"no budget yet (no {unit} in the window)"
    if slo["budget_remaining_units"] < 0:
        return (f"overspent: {slo['budget_consumed']} bad of {_number(total)} {unit} allowed "
                f"({slo['budget_remaining']:.0%} left)")
    return (f"{_number(slo['budget_remaining_units'])} of {_number(total)} {unit} left "
            f"({slo['budget_remaining']:.0%})")


def _days(history: Sequence[Mapping[str, Any]]) -> list[Day]:
    """Columns scaled to the busiest day; a day without units is a 2 px stub."""
    most = max((d["total"] for d in history), default=0) or 1
    out = []
    for i, day in enumerate(history):
        total, good = day["total"], day["good"]
        height = max(HISTORY_HEIGHT * total / most, 3.0) if total else 2.0
        good_h = height * good / total if total else 0.0
        bad_h = height - good_h if total else 0.0
        title = (f"{day['date']}: {good} good of {total}" if total
                 else f"{day['date']}: nothing due")
        out.append(Day(i * (DAY_WIDTH + DAY_GAP), HISTORY_HEIGHT - good_h, good_h,
                       HISTORY_HEIGHT - height, bad_h, title))
    return out
