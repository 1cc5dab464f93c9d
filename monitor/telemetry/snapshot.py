"""The current values of a Prometheus registry, read as series for an exporter.

Counters, gauges and histograms are read; other kinds (summary, info, stateset) are
listed as unsupported. Histogram buckets become per-bucket counts (Prometheus exposes
them cumulative), with the finite ``le`` bounds as the explicit bucket bounds.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Literal

from prometheus_client import CollectorRegistry
from prometheus_client.metrics_core import Metric

Kind = Literal["counter", "gauge", "histogram"]
LabelSet = tuple[tuple[str, str], ...]


@dataclass(frozen=True)
class Family:
    """One metric: its name on ``/metrics`` (counters with ``_total``), kind, help and label names."""

    name: str
    kind: Kind
    documentation: str
    labels: tuple[str, ...]


@dataclass(frozen=True)
class Buckets:
    """A histogram's state: ``counts[i]`` observations in bucket i of ``len(bounds) + 1``."""

    bounds: tuple[float, ...]
    counts: tuple[int, ...]
    total: float

    @property
    def count(self) -> int:
        return sum(self.counts)


@dataclass(frozen=True)
class Reading:
    """One series of a family: its label values and current value."""

    family: Family
    labels: LabelSet
    value: float | Buckets


@dataclass(frozen=True)
class Snapshot:
    readings: list[Reading]
    unsupported: list[str]  # families of a kind that is not exported


def read(registry: CollectorRegistry) -> Snapshot:
    """Every series of ``registry`` as it is now."""
    readings: list[Reading] = []
    unsupported: list[str] = []
    for metric in registry.collect():
        if metric.type == "counter":
            readings += _scalars(metric, "counter", metric.name + "_total")
        elif metric.type == "gauge":
            readings += _scalars(metric, "gauge", metric.name)
        elif metric.type == "histogram":
            readings += _histograms(metric)
        else:
            unsupported.append(metric.name)
    return Snapshot(readings, unsupported)


def _scalars(metric: Metric, kind: Kind, name: str) -> list[Reading]:
    samples = [s for s in metric.samples if s.name == name]
    if not samples:
        return []
    family = Family(name, kind, metric.documentation, tuple(samples[0].labels))
    return [Reading(family, tuple(s.labels.items()), float(s.value)) for s in samples]


def _histograms(metric: Metric) -> list[Reading]:
    cumulative: dict[LabelSet, list[tuple[float, float]]] = {}
    sums: dict[LabelSet, float] = {}
    label_names: tuple[str, ...] = ()
    for s in metric.samples:
        labels = {k: v for k, v in s.labels.items() if k != "le"}
        key = tuple(labels.items())
        if s.name == metric.name + "_bucket":
            cumulative.setdefault(key, []).append((float(s.labels["le"]), float(s.value)))
            label_names = tuple(labels)
        elif s.name == metric.name + "_sum":
            sums[key] = float(s.value)
    family = Family(metric.name, "histogram", metric.documentation, label_names)
    return [Reading(family, key, _buckets(sorted(pairs), sums.get(key, 0.0)))
            for key, pairs in cumulative.items()]


def _buckets(cumulative: list[tuple[float, float]], total: float) -> Buckets:
    """Per-bucket counts from Prometheus' cumulative ``le`` counts (the last bound is +Inf)."""
    bounds = tuple(le for le, _ in cumulative if not math.isinf(le))
    counts: list[int] = []
    below = 0.0
    for _, seen in cumulative:
        counts.append(round(seen - below))
        below = seen
    if not cumulative or not math.isinf(cumulative[-1][0]):
        counts.append(0)  # no +Inf bucket exposed: nothing above the last bound
    return Buckets(bounds, tuple(counts), total)
