"""The dashboard page as one HTML document: jinja2 with autoescape, charts as inline SVG.

The page loads nothing: no script, no font, no image, no stylesheet but its own inline
one. The Content-Security-Policy it is served with (and carries as a meta tag, for the
static copy ``phasewatch demo`` writes) allows exactly that stylesheet, by its hash, so
that even text that slipped past escaping could neither run nor fetch anything.
"""

from __future__ import annotations

import base64
import functools
import hashlib
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime
from typing import Any
from zoneinfo import ZoneInfo

import jinja2

from monitor.app.page.board import boards
from monitor.app.page.charts import charts
from monitor.app.page.lists import action_items, alert_items, anomaly_items
from monitor.app.page.slos import BAR_HEIGHT, BAR_WIDTH, DAY_WIDTH, HISTORY_HEIGHT, slo_views
from monitor.app.page.style import COLOURS
from monitor.app.page.timefmt import Clock
from monitor.config import Config

REFRESH_S = 60


@dataclass(frozen=True)
class Page:
    """The HTML and the Content-Security-Policy to serve it with."""

    html: str
    csp: str


@functools.cache
def _environment() -> jinja2.Environment:
    return jinja2.Environment(
        loader=jinja2.PackageLoader("monitor.app.page", "templates"),
        autoescape=jinja2.select_autoescape(("html",), default_for_string=True),
        undefined=jinja2.StrictUndefined, trim_blocks=True, lstrip_blocks=True,
    )


@functools.cache
def stylesheet() -> tuple[str, str]:
    """The page's CSS and its CSP source (``'sha256-…'``)."""
    css = _environment().get_template("dashboard.css").render(c=COLOURS)
    digest = base64.b64encode(hashlib.sha256(css.encode()).digest()).decode()
    return css, f"'sha256-{digest}'"


def csp(style_source: str) -> str:
    """Nothing but the inline stylesheet; no script, frame, form or fetch."""
    return (f"default-src 'none'; style-src {style_source}; img-src data:; base-uri 'none'; "
            "form-action 'none'")


def render_dashboard(data: Mapping[str, Any], config: Config, *, live: bool = True,
                     version: str = "") -> Page:
    """The page for ``data`` (``dashboard_data``); ``live``: served (refreshes itself and
    links the JSON endpoints) rather than a static snapshot."""
    css, style_source = stylesheet()
    policy = csp(style_source)
    clock = _page_clock(config)
    now = data["time"]
    html = _environment().get_template("dashboard.html").render(
        css=css, csp=policy, live=live, refresh_s=REFRESH_S, version=version,
        title=" · ".join(p.id for p in config.pipelines), now=clock.full(now),
        timezone=clock.tz.key,
        boards=boards(data["runs"], config, datetime.fromisoformat(now)),
        slos=slo_views(data["slos"]), bar_width=BAR_WIDTH, bar_height=BAR_HEIGHT,
        day_width=DAY_WIDTH, history_height=HISTORY_HEIGHT,
        charts=charts(data["runs"], data["anomalies"], config),
        alerts=alert_items(data["alerts"], clock),
        anomalies=anomaly_items(data["anomalies"], clock),
        actions=action_items(data["actions"], clock),
        tiles=_tiles(data),
    )
    return Page(html, policy + "; frame-ancestors 'none'")


def _page_clock(config: Config) -> Clock:
    """The pipelines' timezone when they share one, else UTC."""
    zones = {p.tz for p in config.pipelines}
    return Clock(zones.pop() if len(zones) == 1 else ZoneInfo("UTC"))


def _tiles(data: Mapping[str, Any]) -> list[tuple[str, str, str]]:
    """(figure, what, tone) of the header: what needs a person now."""
    firing = data["alerts"]  # silenced and inhibited ones too: they fire, untold
    critical = sum(a["severity"] == "critical" for a in firing)
    breach = sum(s["status"] == "breach" for s in data["slos"])
    warning = sum(s["status"] == "warning" for s in data["slos"])
    failed = sum(p["status"] == "failed" for r in data["runs"] for p in r["phases"])
    return [
        (str(len(firing)), f"alerts firing ({critical} critical)",
         "bad" if critical else "warn" if firing else "good"),
        (f"{breach} / {warning}", f"SLOs in breach / warning of {len(data['slos'])}",
         "bad" if breach else "warn" if warning else "good"),
        (str(failed), "failed phases in tracked runs", "bad" if failed else "good"),
        (str(len(data["anomalies"])), "recent anomalies", "warn" if data["anomalies"] else "good"),
    ]
