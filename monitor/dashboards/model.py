"""What a dashboard shows, said once: boards of sections of panels of queries.

A ``Query`` names a metric of phasewatch's ``/metrics`` and what to do with it (a rate, a
percentile, a value), not a query language: the renderers write it as PromQL (Grafana, and
Cloud Monitoring through Managed Service for Prometheus) or as a Cloud Monitoring filter
over the exported custom metrics.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

MetricType = Literal["counter", "gauge", "histogram"]
Op = Literal["rate", "value", "quantile"]
Unit = Literal["seconds", "ratio", "per_second", "count"]

# Stands for "the dashboard's pipeline" in a matcher: Grafana writes its ``$pipeline``
# variable, Cloud Monitoring (one dashboard per pipeline) the pipeline's id.
PIPELINE = "$pipeline"


@dataclass(frozen=True)
class Metric:
    """A metric family as phasewatch's registry names it (``Counter("phasewatch_events")``)."""

    name: str
    type: MetricType

    @property
    def sample(self) -> str:
        """The series name a query selects: ``_total`` of a counter, ``_bucket`` of a histogram."""
        suffix = {"counter": "_total", "gauge": "", "histogram": "_bucket"}[self.type]
        return self.name + suffix


@dataclass(frozen=True)
class Match:
    """One label matcher: ``=``, ``!=`` or ``=~`` (a full-match regular expression)."""

    label: str
    value: str
    op: Literal["=", "!=", "=~"] = "="


@dataclass(frozen=True)
class Query:
    """One series set of a panel: a rate of a counter, a value of a gauge, or a percentile
    of a histogram, summed (rates, percentiles) or maxed (values) by ``by``."""

    metric: Metric
    op: Op
    by: tuple[str, ...] = ()
    matches: tuple[Match, ...] = ()
    quantile: float | None = None
    legend: str = ""  # a prefix before the ``by`` label values in the legend

    def __post_init__(self) -> None:
        expected = {"rate": "counter", "value": "gauge", "quantile": "histogram"}[self.op]
        if self.metric.type != expected:
            raise ValueError(f"{self.op} needs a {expected}; {self.metric.name} is a {self.metric.type}")
        if (self.op == "quantile") != (self.quantile is not None):
            raise ValueError("a quantile query, and only one, gives its quantile")


@dataclass(frozen=True)
class Threshold:
    """A line on a chart: an objective (bad below) or a limit (bad above)."""

    value: float
    label: str
    bad: Literal["above", "below"]


@dataclass(frozen=True)
class Panel:
    """One chart."""

    title: str
    unit: Unit
    queries: tuple[Query, ...]
    description: str = ""
    thresholds: tuple[Threshold, ...] = ()
    stacked: bool = False


@dataclass(frozen=True)
class Section:
    """A titled group of panels laid out ``per_row`` to a row."""

    title: str
    panels: tuple[Panel, ...]
    subtitle: str = ""
    per_row: int = 3


@dataclass(frozen=True)
class Board:
    """One dashboard of one pipeline."""

    slug: str  # the file name's stem: ``nba-overview``
    title: str
    sections: tuple[Section, ...]

    def queries(self) -> list[Query]:
        return [q for s in self.sections for p in s.panels for q in p.queries]
