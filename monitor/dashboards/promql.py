"""A ``Query`` as PromQL (Prometheus 2.44 functions only: Managed Service for Prometheus)."""

from __future__ import annotations

from monitor.dashboards.model import PIPELINE, Match, Query


def quote(value: str) -> str:
    return '"' + value.replace("\\", "\\\\").replace('"', '\\"') + '"'


def selector(query: Query, pipeline: str) -> str:
    """``name{label="value",...}``; the pipeline placeholder becomes ``pipeline``."""
    parts = [f"{m.label}{m.op}{quote(_value(m, pipeline))}" for m in query.matches]
    return f"{query.metric.sample}{{{','.join(parts)}}}"


def _value(match: Match, pipeline: str) -> str:
    return pipeline if match.value == PIPELINE else match.value


def promql(query: Query, *, window: str, pipeline: str) -> str:
    """The expression; ``window`` is the range of rates (``$__rate_interval``, ``${__interval}``)."""
    sel = selector(query, pipeline)
    if query.op == "value":
        return f"max by ({', '.join(query.by)}) ({sel})" if query.by else f"max({sel})"
    by = ", ".join(query.by)
    if query.op == "rate":
        return f"sum by ({by}) (rate({sel}[{window}]))" if by else f"sum(rate({sel}[{window}]))"
    buckets = ", ".join(("le", *query.by))
    return f"histogram_quantile({query.quantile:g}, sum by ({buckets}) (rate({sel}[{window}])))"


def legend(query: Query) -> str:
    """Grafana's legend format: the prefix, then each ``by`` label's value."""
    parts = [query.legend] if query.legend else []
    parts += ["{{" + label + "}}" for label in query.by]
    return " ".join(parts) or query.metric.name
