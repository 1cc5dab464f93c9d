"""Dashboards as code: Cloud Monitoring and Grafana JSON generated from the config.

``render`` gives every file of the ``dashboards/`` folder; ``push`` (in
``monitor.dashboards.push``, which needs google-cloud-monitoring-dashboards) sends the
Cloud Monitoring ones to a project.
"""

from monitor.dashboards.cloud_monitoring import DEFAULT_METRIC_PREFIX, QueryMode, exported_type
from monitor.dashboards.content import boards
from monitor.dashboards.files import DuplicatePipeline, differences, render, write
from monitor.dashboards.model import Board, Match, Metric, Panel, Query, Section, Threshold

__all__ = [
    "DEFAULT_METRIC_PREFIX",
    "Board",
    "DuplicatePipeline",
    "Match",
    "Metric",
    "Panel",
    "Query",
    "QueryMode",
    "Section",
    "Threshold",
    "boards",
    "differences",
    "exported_type",
    "render",
    "write",
]
