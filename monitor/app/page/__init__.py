"""The local dashboard page (``GET /``): runs, SLOs, durations, alerts and actions at a glance.

Built from the JSON API's own read functions (``monitor.app.reads``), rendered on the
server as HTML with inline SVG: no script, nothing fetched from anywhere.
"""

from monitor.app.page.data import dashboard_data
from monitor.app.page.render import Page, render_dashboard

__all__ = ["Page", "dashboard_data", "render_dashboard"]
