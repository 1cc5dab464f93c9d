"""A ``Board`` as a Cloud Monitoring dashboard (the ``projects.dashboards`` JSON).

A mosaic layout of 48 columns: a section header across the width, then the section's
charts ``per_row`` to a row. Queries are PromQL (``prometheusQuery``: Managed Service for
Prometheus scrapes phasewatch's ``/metrics``), or with ``query="filter"`` Cloud Monitoring
filters over the custom metrics phasewatch exports (``export_config.metric_type``). Never MQL.

Fields that hold their default value (0, "", false) are left out, as the API itself
writes them, so a file reads back from ``Dashboard.from_json`` unchanged.
"""

from __future__ import annotations

from typing import Any, Literal

from monitor.dashboards.model import (
    PIPELINE,
    Board,
    Match,
    Metric,
    Panel,
    Query,
    Section,
    Threshold,
    Unit,
)
from monitor.dashboards.promql import promql, quote
from monitor.telemetry.export_config import metric_type

COLUMNS = 48
HEADER_HEIGHT = 4
CHART_HEIGHT = 16
ALIGNMENT = "60s"
RATE_WINDOW = "${__interval}"  # Cloud Monitoring's PromQL: the chart's own interval
DEFAULT_METRIC_PREFIX = "workload.googleapis.com/phasewatch"
QueryMode = Literal["promql", "filter"]

UNITS: dict[Unit, str] = {"seconds": "s", "ratio": "10^2.%", "per_second": "1/s", "count": "1"}
AXIS_LABELS: dict[Unit, str] = {
    "seconds": "seconds", "ratio": "share", "per_second": "per second", "count": "count",
}
PERCENTILE_REDUCERS = {0.5: "REDUCE_PERCENTILE_50", 0.95: "REDUCE_PERCENTILE_95",
                       0.99: "REDUCE_PERCENTILE_99"}


def exported_type(prefix: str, metric: Metric) -> str:
    """The custom metric type the exporter writes ``metric`` as (``metric_type``: the name
    on ``/metrics``, counters with ``_total``)."""
    return metric_type(prefix, metric.name + ("_total" if metric.type == "counter" else ""))


def dashboard(board: Board, pipeline: str, *, query: QueryMode = "promql",
              metric_prefix: str = DEFAULT_METRIC_PREFIX) -> dict[str, Any]:
    """The dashboard as the API's JSON (no ``name`` or ``etag``: the API assigns them)."""
    tiles: list[dict[str, Any]] = []
    y = 0
    for section in board.sections:
        tiles.append(_tile(0, y, COLUMNS, HEADER_HEIGHT, _header(section)))
        y += HEADER_HEIGHT
        width = COLUMNS // section.per_row
        for i, panel in enumerate(section.panels):
            column, row = i % section.per_row, i // section.per_row
            chart = _chart(panel, pipeline, query, metric_prefix)
            tiles.append(_tile(column * width, y + row * CHART_HEIGHT, width, CHART_HEIGHT, chart))
        rows = -(-len(section.panels) // section.per_row)
        y += rows * CHART_HEIGHT
    return {"displayName": board.title, "mosaicLayout": {"columns": COLUMNS, "tiles": tiles}}


def _tile(x: int, y: int, width: int, height: int, widget: dict[str, Any]) -> dict[str, Any]:
    tile: dict[str, Any] = {"xPos": x, "yPos": y, "width": width, "height": height, "widget": widget}
    return {k: v for k, v in tile.items() if v}  # 0 is the default, which the API leaves out


def _header(section: Section) -> dict[str, Any]:
    header: dict[str, Any] = {"dividerBelow": True}
    if section.subtitle:
        header["subtitle"] = section.subtitle
    return {"title": section.title, "sectionHeader": header}


def _chart(panel: Panel, pipeline: str, query: QueryMode, prefix: str) -> dict[str, Any]:
    data_sets = [_data_set(q, panel, pipeline, query, prefix) for q in panel.queries]
    chart: dict[str, Any] = {
        "dataSets": data_sets,
        "yAxis": {"label": AXIS_LABELS[panel.unit], "scale": "LINEAR"},
    }
    if panel.thresholds:
        chart["thresholds"] = [_threshold(t) for t in panel.thresholds]
    return {"title": panel.title, "xyChart": chart}


def _data_set(q: Query, panel: Panel, pipeline: str, query: QueryMode, prefix: str) -> dict[str, Any]:
    tsq: dict[str, Any]
    if query == "promql":
        tsq = {"prometheusQuery": promql(q, window=RATE_WINDOW, pipeline=pipeline)}
    else:
        tsq = {"timeSeriesFilter": _filter(q, pipeline, prefix)}
    tsq["unitOverride"] = UNITS[panel.unit]
    data_set: dict[str, Any] = {
        "timeSeriesQuery": tsq,
        "plotType": "STACKED_AREA" if panel.stacked else "LINE",
        "minAlignmentPeriod": ALIGNMENT,
    }
    if query == "filter":
        data_set["legendTemplate"] = " ".join(
            ([q.legend] if q.legend else []) + ["${metric.labels." + b + "}" for b in q.by]
        ) or q.metric.name
    return data_set


def _filter(q: Query, pipeline: str, prefix: str) -> dict[str, Any]:
    clauses = [f"metric.type = {quote(exported_type(prefix, q.metric))}"]
    clauses += [_clause(m, pipeline) for m in q.matches]
    if q.op == "rate":
        aligner, reducer = "ALIGN_RATE", "REDUCE_SUM"
    elif q.op == "value":
        aligner, reducer = "ALIGN_MEAN", "REDUCE_MAX"
    else:
        assert q.quantile is not None
        reducer = PERCENTILE_REDUCERS.get(q.quantile, "")
        if not reducer:
            raise ValueError(f"Cloud Monitoring has no reducer for the quantile {q.quantile}; "
                             f"allowed: {', '.join(str(k) for k in PERCENTILE_REDUCERS)}")
        aligner = "ALIGN_DELTA"
    aggregation: dict[str, Any] = {
        "alignmentPeriod": ALIGNMENT, "perSeriesAligner": aligner, "crossSeriesReducer": reducer,
    }
    if q.by:
        aggregation["groupByFields"] = [f'metric.label."{label}"' for label in q.by]
    return {"filter": " AND ".join(clauses), "aggregation": aggregation}


def _clause(m: Match, pipeline: str) -> str:
    value = pipeline if m.value == PIPELINE else m.value
    field = f"metric.labels.{m.label}"
    if m.op == "=~":
        return f"{field} = monitoring.regex.full_match({quote(value)})"
    return f"{field} {m.op} {quote(value)}"


def _threshold(t: Threshold) -> dict[str, Any]:
    out: dict[str, Any] = {"label": t.label, "color": "RED",
                           "direction": "BELOW" if t.bad == "below" else "ABOVE"}
    if t.value:
        out["value"] = t.value
    return out
