"""The store's events as numpy columns: the input bench/slo_eval.py loads into DuckDB."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import numpy.typing as npt

from slo.sli.base import HealthProbe

Ints = npt.NDArray[np.int64]
Floats = npt.NDArray[np.float64]

MODES = ("overnight", "same_day", "tomorrow", "backfill")
STATUSES = ("started", "progress", "succeeded", "failed", "skipped")
PROBE_STATUSES = ("pass", "warn", "fail")


@dataclass
class EventColumns:
    """Events in arrival order as parallel arrays; names as codes into the lists."""

    pipelines: list[str]
    phases: list[str]
    processors: list[str]
    pipeline: Ints
    run_date: Ints  # days since 1970-01-01
    mode: Ints  # index into MODES
    phase: Ints
    processor: Ints  # -1: a phase-level event
    status: Ints  # index into STATUSES
    ts: Floats  # epoch seconds
    duration_s: Floats  # NaN: not reported
    records: Ints  # -1: not reported
    expected_records: Ints  # -1: not reported
    data_as_of: Floats  # NaN: not reported

    def __len__(self) -> int:
        return len(self.ts)


@dataclass
class ProbeColumns:
    """Health probes in arrival order."""

    services: list[str]
    service: Ints
    pipelines: list[str]
    pipeline: Ints  # -1: any pipeline
    ts: Floats
    status: Ints  # index into PROBE_STATUSES

    @classmethod
    def from_probes(cls, probes: Sequence[HealthProbe]) -> ProbeColumns:
        services: dict[str, int] = {}
        pipelines: dict[str, int] = {}
        service = [services.setdefault(p.service, len(services)) for p in probes]
        pipeline = [-1 if p.pipeline is None else pipelines.setdefault(p.pipeline, len(pipelines))
                    for p in probes]
        return cls(
            list(services), np.asarray(service, np.int64), list(pipelines),
            np.asarray(pipeline, np.int64), np.asarray([p.time.timestamp() for p in probes], np.float64),
            np.asarray([PROBE_STATUSES.index(p.status) for p in probes], np.int64),
        )
