"""Full recompute of every SLO from event columns with numpy (backtests, large stores).

The same units and verdicts as the incremental engine (``SLOEngine.rebuild`` + ``evaluate``),
computed over whole columns: the run tracker's state machine (processor status = latest by
time then arrival; phase complete / failed) is replayed with sorts and cumulative sums
instead of one event at a time. Tests hold the two to exact agreement. Not computed here:
the per-run keys of bad units (``SLOStatus.bad_units`` and ``streak`` are empty), which
only alerts use, and SLIs of kind ``check``, which count data check results, not events
(they have no units here).
"""

from __future__ import annotations

import itertools
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import date, datetime, timedelta
from typing import TYPE_CHECKING, Any

import numpy as np
import numpy.typing as npt

from slo.evaluator import SLOStatus, judge
from slo.sli.base import HealthProbe
from slo.sli.coverage import exact_ratio
from slo.sli.deadline import ALL_MODES, FROM_DUE_START, Deadline
from slo.spec import (
    AvailabilitySLI,
    CheckSLI,
    CoverageSLI,
    DeadlineSLI,
    DurationSLI,
    FreshnessSLI,
    SLOSpec,
    SuccessRatioSLI,
)
from slo.windows import retention_minutes

if TYPE_CHECKING:
    from monitor.config import Config, PipelineConfig
    from monitor.events import Event

Ints = npt.NDArray[np.int64]
Floats = npt.NDArray[np.float64]
Bools = npt.NDArray[np.bool_]

MODES = ("overnight", "same_day", "tomorrow", "backfill")
STATUSES = ("started", "progress", "succeeded", "failed", "skipped")
STARTED, PROGRESS, SUCCEEDED, FAILED, SKIPPED = range(5)
PENDING = -1
PROBE_STATUSES = ("pass", "warn", "fail")
EPOCH = date(1970, 1, 1)


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

    @classmethod
    def from_events(cls, events: Sequence[Event]) -> EventColumns:
        """Columns of events with resolved modes (a slow path, for tests and small stores)."""
        names: dict[str, dict[str, int]] = {"pipeline": {}, "phase": {}, "processor": {}}

        def code(kind: str, value: str) -> int:
            table = names[kind]
            return table.setdefault(value, len(table))

        rows = [
            (
                code("pipeline", e.pipeline), (e.run_date - EPOCH).days, MODES.index(e.mode or ""),
                code("phase", e.phase), -1 if e.processor is None else code("processor", e.processor),
                STATUSES.index(e.status), e.timestamp.timestamp(),
                np.nan if e.duration_s is None else e.duration_s,
                -1 if e.records is None else e.records,
                -1 if e.expected_records is None else e.expected_records,
                np.nan if e.data_as_of is None else e.data_as_of.timestamp(),
            )
            for e in events
        ]
        cols = list(zip(*rows, strict=True)) if rows else [()] * 11

        def ints(i: int) -> Ints:
            return np.asarray(cols[i], np.int64)

        def floats(i: int) -> Floats:
            return np.asarray(cols[i], np.float64)

        return cls(
            list(names["pipeline"]), list(names["phase"]), list(names["processor"]),
            pipeline=ints(0), run_date=ints(1), mode=ints(2), phase=ints(3), processor=ints(4),
            status=ints(5), ts=floats(6), duration_s=floats(7), records=ints(8),
            expected_records=ints(9), data_as_of=floats(10),
        )


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


class ArrayCounter:
    """Exact good/total per range of minutes over unit arrays (sorted once)."""

    def __init__(self, ts: Ints, good: Bools) -> None:
        order = np.argsort(ts // 60, kind="stable")
        self.minutes = (ts // 60)[order]
        self.cum_good = np.concatenate(([0], np.cumsum(good[order], dtype=np.int64)))

    def counts(self, start: int, end: int) -> tuple[int, int]:
        if end <= start:
            return 0, 0
        i, j = np.searchsorted(self.minutes, (start, end), side="left")
        return int(self.cum_good[j] - self.cum_good[i]), int(j - i)

    def bad_units(self, start: int, end: int) -> list[tuple[str, int]]:
        return []

    def streak(self, start: int, end: int) -> list[tuple[str, int]]:
        return []


def _shift(values: npt.NDArray[Any], first: Bools, fill: Any) -> npt.NDArray[Any]:
    """values[k-1] within each group (``first`` marks group starts), ``fill`` at a start."""
    out = np.empty_like(values)
    if len(values):
        out[0] = fill
        out[1:] = values[:-1]
        out[first] = fill
    return out


def _ffill_index(mark: Bools, first: Bools) -> Ints:
    """Position of the latest marked row at or before each row of its group, or -1."""
    n = len(mark)
    pos = np.where(mark, np.arange(n), -1)
    latest = np.maximum.accumulate(pos) if n else pos
    group_start = np.maximum.accumulate(np.where(first, np.arange(n), 0)) if n else pos
    return np.where(latest >= group_start, latest, -1)


def _grouped(key: Ints) -> tuple[Ints, Bools]:
    """A stable order that groups equal keys (arrival order inside), and group starts."""
    order = np.argsort(key, kind="stable")
    k = key[order]
    first = np.ones(len(k), bool)
    if len(k):
        first[1:] = k[1:] != k[:-1]
    return order, first


@dataclass
class ProcessorState:
    """Per processor row (in the slice's order): the processor's status before and after it."""

    done_after: Bools
    done_before: Bools
    failed_after: Bools
    failed_before: Bools
    started_before: Floats  # ts of the run's accepted start before this row (NaN: none)
    accepted_start: Bools
    status_at: Floats  # ts of the event holding the processor's status after this row


@dataclass
class PhaseState:
    """Per row of a (pipeline, phase) slice in arrival order: the phase after that row."""

    rows: Ints
    complete: Bools
    failed: Bools
    completed_now: Bools
    completed_at: Floats
    failed_at: Floats
    first_start: Floats  # only where completed_now


@dataclass
class Recompute:
    """Shared work for one recompute: slices by (pipeline, phase) and their state machines."""

    config: Config
    cols: EventColumns
    slices: dict[tuple[int, int], Ints] = field(default_factory=dict)
    processor_states: dict[tuple[int, int], ProcessorState] = field(default_factory=dict)
    phase_states: dict[tuple[str, str], PhaseState] = field(default_factory=dict)

    def __post_init__(self) -> None:
        c = self.cols
        key = c.pipeline * (len(c.phases) + 1) + c.phase
        order, first = _grouped(key)
        bounds = [*np.flatnonzero(first).tolist(), len(order)]
        for lo, hi in itertools.pairwise(bounds):
            row = int(order[lo])
            self.slices[(int(c.pipeline[row]), int(c.phase[row]))] = order[lo:hi]

    def slice(self, pipeline: str, phase: str) -> Ints:
        c = self.cols
        if pipeline not in c.pipelines or phase not in c.phases:
            return np.zeros(0, np.int64)
        return self.slices.get((c.pipelines.index(pipeline), c.phases.index(phase)), np.zeros(0, np.int64))

    def processor_state(self, pipeline: str, phase: str) -> tuple[Ints, ProcessorState]:
        """Processor rows of the slice and their state (the tracker's status rules)."""
        rows = self.slice(pipeline, phase)
        rows = rows[self.cols.processor[rows] >= 0]
        ck = (self.cols.pipelines.index(pipeline), self.cols.phases.index(phase)) if len(rows) else (-1, -1)
        if ck in self.processor_states:
            return rows, self.processor_states[ck]
        c = self.cols
        m = len(rows)
        run_key = (c.run_date[rows] * 4 + c.mode[rows]) * (len(c.processors) + 1) + c.processor[rows]
        order, first = _grouped(run_key)
        st, t = c.status[rows][order], c.ts[rows][order]
        # status holder: the latest candidate by (time, arrival); progress counts only first
        candidate = (st != PROGRESS) | first
        by_time = np.lexsort((np.arange(m), t))
        rank = np.empty(m, np.int64)
        rank[by_time] = np.arange(m)
        group = np.cumsum(first) - 1
        offset = group * (m + 1)
        held = np.maximum.accumulate(np.where(candidate, rank, -1) + offset) - offset if m else rank
        holder = np.where(held >= 0, by_time[np.maximum(held, 0)], -1)
        status = np.where(holder >= 0, st[np.maximum(holder, 0)], PENDING)
        status_at = np.where(holder >= 0, t[np.maximum(holder, 0)], np.nan)
        done = (status == SUCCEEDED) | (status == SKIPPED)
        failed = status == FAILED
        accepted = (st == STARTED) & (held == rank)
        prior = _shift(_ffill_index(accepted, first), first, -1)
        started = np.where(prior >= 0, t[np.maximum(prior, 0)], np.nan)
        back = np.empty(m, np.int64)
        back[order] = np.arange(m)
        state = ProcessorState(
            done[back], _shift(done, first, False)[back], failed[back],
            _shift(failed, first, False)[back], started[back], accepted[back], status_at[back],
        )
        self.processor_states[ck] = state
        return rows, state

    def phase_state(self, pipeline_cfg: PipelineConfig, phase: str) -> PhaseState:
        """The tracker's phase verdicts after each row of the slice."""
        c = self.cols
        rows = self.slice(pipeline_cfg.id, phase)
        cached = self.phase_states.get((pipeline_cfg.id, phase))
        if cached is not None:
            return cached
        n_proc = len(c.processors) + 1
        expected = np.zeros((4, n_proc), bool)
        critical = np.zeros((4, n_proc), bool)
        n_expected = np.zeros(4, np.int64)
        n_critical = np.zeros(4, np.int64)
        required = np.zeros(4, np.int64)
        phase_cfg = pipeline_cfg.phase_map[phase]
        for mi, mode_name in enumerate(MODES):
            exp = phase_cfg.expectation(mode_name)
            n_expected[mi], n_critical[mi] = len(exp.expected), len(exp.critical)
            required[mi] = exp.required_count
            for name in exp.expected:
                if name in c.processors:
                    expected[mi, c.processors.index(name)] = True
            for name in exp.critical:
                if name in c.processors:
                    critical[mi, c.processors.index(name)] = True
        m = len(rows)
        proc = c.processor[rows]
        mode = c.mode[rows]
        d_done = np.zeros(m, np.int64)
        d_cdone = np.zeros(m, np.int64)
        d_cfail = np.zeros(m, np.int64)
        proc_rows, ps = self.processor_state(pipeline_cfg.id, phase)
        idx = np.searchsorted(rows, proc_rows)  # both in arrival order
        if len(idx):
            pm, pp = mode[idx], proc[idx]
            exp_mask, crit_mask = expected[pm, pp], critical[pm, pp]
            change = ps.done_after.astype(np.int64) - ps.done_before
            d_done[idx] = np.where(exp_mask, change, 0)
            d_cdone[idx] = np.where(crit_mask, change, 0)
            d_cfail[idx] = np.where(crit_mask, ps.failed_after.astype(np.int64) - ps.failed_before, 0)
        order, first = _grouped(c.run_date[rows] * 4 + mode)
        t = c.ts[rows][order]
        st = c.status[rows][order]
        phase_level = proc[order] < 0

        def cum(delta: Ints) -> Ints:
            total = np.cumsum(delta[order])
            start = np.maximum.accumulate(np.where(first, np.arange(m), 0)) if m else total
            before = np.where(start > 0, total[np.maximum(start - 1, 0)], 0)
            return total - before

        done, cdone, cfail = cum(d_done), cum(d_cdone), cum(d_cfail)
        terminal = phase_level & ((st == SUCCEEDED) | (st == FAILED) | (st == SKIPPED))
        holder = _ffill_index(terminal, first)
        phase_status = np.where(holder >= 0, st[np.maximum(holder, 0)], PENDING)
        md = mode[order]
        # A phase-level success or skip closes the phase (monitor.tracker.PhaseRun.is_complete).
        complete = (phase_status == SUCCEEDED) | (phase_status == SKIPPED) | (
            (n_expected[md] > 0) & (cdone == n_critical[md]) & (done >= required[md])
        )
        failed = ~complete & ((phase_status == FAILED) | (cfail > 0))
        completed_now = complete & ~_shift(complete, first, False)
        failed_now = failed & ~_shift(failed, first, False)
        c_at = _ffill_index(completed_now, first)
        f_at = _ffill_index(failed_now, first)
        when = self._completion_times(
            rows[order], completed_now, np.where(holder >= 0, t[np.maximum(holder, 0)], np.nan),
            (phase_status == SUCCEEDED) | (phase_status == SKIPPED), proc_rows, ps,
            (expected, critical, required, n_expected, n_critical))
        completed_at = np.where(c_at >= 0, when[np.maximum(c_at, 0)], np.nan)
        failed_at = np.where(f_at >= 0, t[np.maximum(f_at, 0)], np.nan)
        first_start = self._first_starts(rows[order], first, completed_now, phase_level, st, t, proc_rows, ps)
        state = PhaseState(rows[order], complete, failed, completed_now, completed_at, failed_at, first_start)
        self.phase_states[(pipeline_cfg.id, phase)] = state
        return state

    def _completion_times(
        self, rows: Ints, completed_now: Bools, phase_finished: Floats, phase_done: Bools,
        proc_rows: Ints, ps: ProcessorState,
        expectation: tuple[Bools, Bools, Ints, Ints, Ints],
    ) -> Floats:
        """PhaseRun.completion_time() at each completing row (NaN elsewhere): the latest needed
        event's own time (critical processors and the ``required_count``-th done expected one),
        or the phase-level success or skip, the earlier of the two."""
        out = np.full(len(rows), np.nan)
        spots = np.flatnonzero(completed_now)
        if not len(spots):
            return out
        c = self.cols
        expected, critical, required, n_expected, n_critical = expectation
        by_run: dict[tuple[int, int], list[int]] = {}
        for k in range(len(proc_rows)):
            r = int(proc_rows[k])
            by_run.setdefault((int(c.run_date[r]), int(c.mode[r])), []).append(k)
        for k in spots.tolist():
            row = int(rows[k])
            mode = int(c.mode[row])
            latest: dict[int, int] = {}  # processor -> its last row (index into proc_rows) so far
            for i in by_run.get((int(c.run_date[row]), mode), ()):
                if int(proc_rows[i]) > row:
                    break
                latest[int(c.processor[proc_rows[i]])] = i
            done = {p: float(ps.status_at[i]) for p, i in latest.items()
                    if ps.done_after[i] and expected[mode, p]}
            found = [float(phase_finished[k])] if phase_done[k] else []
            need = int(required[mode])
            crit = np.flatnonzero(critical[mode]).tolist()
            if (n_expected[mode] and len(done) >= need and len(crit) == n_critical[mode]
                    and all(p in done for p in crit)):
                needed = [done[p] for p in crit]
                if need:
                    needed.append(sorted(done.values())[need - 1])
                if needed:
                    found.append(max(needed))
            out[k] = min(found) if found else c.ts[row]
        return out

    def _first_starts(
        self, rows: Ints, first: Bools, completed_now: Bools, phase_level: Bools, st: Ints,
        t: Floats, proc_rows: Ints, ps: ProcessorState,
    ) -> Floats:
        """PhaseRun.first_start at each completing row: earliest current processor start or
        phase-level start."""
        out = np.full(len(rows), np.nan)
        spots = np.flatnonzero(completed_now)
        if not len(spots):
            return out
        c = self.cols
        phase_started = np.where(phase_level & (st == STARTED), t, np.inf)
        starts_by_run: dict[tuple[int, int], list[tuple[int, int, float]]] = {}
        accepted_rows = proc_rows[ps.accepted_start]
        for r in accepted_rows.tolist():
            starts_by_run.setdefault((int(c.run_date[r]), int(c.mode[r])), []).append(
                (r, int(c.processor[r]), float(c.ts[r]))
            )
        group_start = np.maximum.accumulate(np.where(first, np.arange(len(rows)), 0))
        for k in spots.tolist():
            row = int(rows[k])
            earliest = float(np.min(phase_started[group_start[k]: k + 1]))
            latest: dict[int, float] = {}
            for r, p, ts in starts_by_run.get((int(c.run_date[row]), int(c.mode[row])), ()):
                if r <= row:
                    latest[p] = ts
            if latest:
                earliest = min(earliest, min(latest.values()))
            out[k] = earliest if earliest != np.inf else np.nan
        return out



# --------------------------------------------------------------------------- units per kind


def _latest(key: Ints, ts: Floats, good: Bools, seq: Ints) -> tuple[Ints, Bools]:
    """Per key, the verdict with the latest (whole-second time, arrival)."""
    if not len(key):
        return np.zeros(0, np.int64), np.zeros(0, bool)
    secs = np.floor(ts).astype(np.int64)
    pick = _last_per_key(key, seq, secs)
    return secs[pick], good[pick]


def _last_per_key(key: Ints, *minor: Ints) -> Ints:
    """Indices of each key's last row, rows ordered within a key by ``minor`` (the last of
    them first, as ``np.lexsort`` takes them)."""
    order = np.lexsort((*minor, key))
    k = key[order]
    last = np.ones(len(k), bool)
    last[:-1] = k[1:] != k[:-1]
    return order[last]


class _Units:
    """Unit arrays (epoch seconds, good) of one SLO."""

    def __init__(self, work: Recompute, spec: SLOSpec, pipeline: PipelineConfig,
                 probes: ProbeColumns | None, now: datetime) -> None:
        self.work, self.spec, self.pipeline, self.probes, self.now = work, spec, pipeline, probes, now
        self.cols = work.cols

    def rows(self, phase: str, statuses: tuple[int, ...]) -> Ints:
        """Rows of the SLO's phase, modes and level with one of ``statuses``."""
        sli: Any = self.spec.sli
        c = self.cols
        rows = self.work.slice(self.spec.pipeline, phase)
        keep = np.isin(c.status[rows], statuses)
        if sli.modes is not None:
            keep &= np.isin(c.mode[rows], [MODES.index(m) for m in sli.modes])
        proc = c.processor[rows]
        if sli.processors is None:
            keep &= proc < 0
        elif sli.processors:
            keep &= np.isin(proc, [c.processors.index(p) for p in sli.processors if p in c.processors])
        else:
            keep &= proc >= 0
        return rows[keep]

    def run_key(self, rows: Ints) -> Ints:
        c = self.cols
        return (c.run_date[rows] * 4 + c.mode[rows]) * (len(c.processors) + 1) + c.processor[rows] + 1

    def compute(self) -> tuple[Ints, Bools]:
        sli = self.spec.sli
        c = self.cols
        if isinstance(sli, AvailabilitySLI):
            return self.availability(sli)
        if isinstance(sli, DeadlineSLI):
            return self.deadline(sli)
        if isinstance(sli, CheckSLI):  # check results are not event columns
            return np.zeros(0, np.int64), np.zeros(0, np.bool_)
        assert not isinstance(sli, AvailabilitySLI | DeadlineSLI)
        if isinstance(sli, SuccessRatioSLI) and (sli.count == "attempts" or sli.processors is not None):
            rows = self.rows(sli.phase, (SUCCEEDED, FAILED, SKIPPED))
            good = c.status[rows] != FAILED
            if sli.count == "attempts":
                return np.floor(c.ts[rows]).astype(np.int64), good
            return _latest(self.run_key(rows), c.ts[rows], good, rows)
        if isinstance(sli, SuccessRatioSLI):
            return self.phase_runs(sli.phase, sli.modes)
        if isinstance(sli, DurationSLI):
            return self.duration(sli)
        rows = self.rows(sli.phase, (SUCCEEDED,))
        if isinstance(sli, FreshnessSLI):
            known = ~np.isnan(c.data_as_of[rows])
            good = (c.ts[rows] - np.nan_to_num(c.data_as_of[rows])) <= sli.max_age_h * 3600
        else:
            assert isinstance(sli, CoverageSLI)
            known = (c.records[rows] >= 0) & (c.expected_records[rows] >= 0)
            ratio = exact_ratio(sli.min_ratio)  # integers only, as the engine compares
            good = c.records[rows] * ratio.denominator >= ratio.numerator * c.expected_records[rows]
        good &= known
        if sli.missing == "ignore":
            rows, good = rows[known], good[known]
        return _latest(self.run_key(rows), c.ts[rows], good, rows)

    def phase_runs(self, phase: str, modes: tuple[str, ...] | None) -> tuple[Ints, Bools]:
        c = self.cols
        state = self.work.phase_state(self.pipeline, phase)
        judged = state.complete | state.failed
        if modes is not None:
            judged &= np.isin(c.mode[state.rows], [MODES.index(m) for m in modes])
        rows = state.rows[judged]
        when = np.where(state.complete[judged], state.completed_at[judged], state.failed_at[judged])
        pick = _last_per_key(c.run_date[rows] * 4 + c.mode[rows], rows)
        return np.floor(when[pick]).astype(np.int64), state.complete[judged][pick]

    def duration(self, sli: DurationSLI) -> tuple[Ints, Bools]:
        c = self.cols
        if sli.processors is not None:
            proc_rows, ps = self.work.processor_state(self.spec.pipeline, sli.phase)
            rows = self.rows(sli.phase, (SUCCEEDED,))
            at = np.searchsorted(proc_rows, rows)
            started = ps.started_before[at] if len(rows) else np.zeros(0)
            derived = np.where(started <= c.ts[rows], np.maximum(c.ts[rows] - started, 0.0), np.nan)
            seconds = np.where(np.isnan(c.duration_s[rows]), derived, c.duration_s[rows])
            known = ~np.isnan(seconds)
            rows, seconds = rows[known], seconds[known]
            return _latest(self.run_key(rows), c.ts[rows], seconds <= sli.max_s, rows)
        state = self.work.phase_state(self.pipeline, sli.phase)
        spots = state.completed_now & ~np.isnan(state.first_start)
        if sli.modes is not None:
            spots &= np.isin(c.mode[state.rows], [MODES.index(m) for m in sli.modes])
        rows = state.rows[spots]
        done = state.completed_at[spots]
        good = np.maximum(done - state.first_start[spots], 0.0) <= sli.max_s
        pick = _last_per_key(c.run_date[rows] * 4 + c.mode[rows], rows)
        return np.floor(done[pick]).astype(np.int64), good[pick]

    def availability(self, sli: AvailabilitySLI) -> tuple[Ints, Bools]:
        p = self.probes
        if p is None or sli.service not in p.services:
            return np.zeros(0, np.int64), np.zeros(0, bool)
        keep = p.service == p.services.index(sli.service)
        if self.spec.pipeline in p.pipelines:
            keep &= (p.pipeline < 0) | (p.pipeline == p.pipelines.index(self.spec.pipeline))
        else:
            keep &= p.pipeline < 0
        rows = np.flatnonzero(keep)
        good = np.isin(p.status[rows], [PROBE_STATUSES.index(s) for s in sli.good])
        secs = np.floor(p.ts[rows]).astype(np.int64)
        return _latest(secs, p.ts[rows], good, rows)

    def deadline(self, sli: DeadlineSLI) -> tuple[Ints, Bools]:
        c = self.cols
        pipeline = self.pipeline
        modes = sli.modes or ALL_MODES
        mode_codes = [MODES.index(m) for m in modes]
        pid = c.pipelines.index(pipeline.id) if pipeline.id in c.pipelines else -1
        mine = np.flatnonzero(c.pipeline == pid)
        now_s = int(self.now.timestamp())
        since = counting_since(sli, c.ts[mine])
        if since is None:
            return np.zeros(0, np.int64), np.zeros(0, bool)
        first_done: dict[tuple[int, int], int] = {}
        for run_day, mode, done in self._completions(sli, mode_codes):
            key = (run_day, mode)
            first_done[key] = min(first_done.get(key, done), done)
        seen: set[int] = set()
        if sli.due.only_seen:
            rows = mine
            if sli.due.seen_phases:
                codes = [c.phases.index(p) for p in sli.due.seen_phases if p in c.phases]
                rows = rows[np.isin(c.phase[rows], codes)]
            seen = set(np.unique(c.run_date[rows]).tolist())
        helper = Deadline(self.spec, pipeline)
        oldest = max(since, now_s - retention_minutes(self.spec.window) * 60)
        day = datetime.fromtimestamp(oldest, pipeline.tz).date() - timedelta(days=8)
        times: list[int] = []
        goods: list[bool] = []
        while True:
            final, per_mode = helper.deadlines(day)
            if final > now_s:
                break
            ordinal = (day - EPOCH).days
            due = sli.due.is_due(day) and (not sli.due.only_seen or ordinal in seen)
            if due and final >= since:
                times.append(final)
                goods.append(any(
                    (finished := first_done.get((ordinal, MODES.index(m)))) is not None
                    and finished <= per_mode[m]
                    for m in modes
                ))
            day += timedelta(days=1)
        return np.asarray(times, np.int64), np.asarray(goods, bool)

    def _completions(self, sli: DeadlineSLI, mode_codes: list[int]) -> list[tuple[int, int, int]]:
        """(run day, mode, epoch s) of each moment the phase (or the whole run) became complete."""
        c = self.cols
        if sli.phase is not None:
            state = self.work.phase_state(self.pipeline, sli.phase)
            spots = state.completed_now & np.isin(c.mode[state.rows], mode_codes)
            rows = state.rows[spots]
            return list(zip(
                c.run_date[rows].tolist(), c.mode[rows].tolist(),
                np.floor(state.completed_at[spots]).astype(np.int64).tolist(), strict=True,
            ))
        # The whole run: every phase complete. Count complete phases per run over arrival.
        parts = [self.work.phase_state(self.pipeline, p.id) for p in self.pipeline.phases]
        rows = np.concatenate([s.rows for s in parts])
        change = np.concatenate([
            s.complete.astype(np.int64) - _shift(s.complete, _starts(c, s.rows), False) for s in parts
        ])
        became = np.concatenate([s.completed_now for s in parts])
        by_arrival = np.argsort(rows, kind="stable")
        rows, change, became = rows[by_arrival], change[by_arrival], became[by_arrival]
        order, first = _grouped(c.run_date[rows] * 4 + c.mode[rows])
        total = np.cumsum(change[order])
        start = np.maximum.accumulate(np.where(first, np.arange(len(order)), 0)) if len(order) else total
        count = total - np.where(start > 0, total[np.maximum(start - 1, 0)], 0)
        hit = became[order] & (count == len(self.pipeline.phases))
        hit_rows = rows[order][hit]
        hit_rows = hit_rows[np.isin(c.mode[hit_rows], mode_codes)]
        by_run = [_completions_by_run(c, state) for state in parts]
        out = []
        for r in hit_rows.tolist():
            run = (int(c.run_date[r]), int(c.mode[r]))
            # The run completed when its last phase did, in event time: each phase's latest
            # completion time as of this row.
            latest = [at[np.searchsorted(rows_of, r, side="right") - 1]
                      for rows_of, at in (index[run] for index in by_run)]
            out.append((*run, int(np.floor(max(latest)))))
        return out


def _completions_by_run(cols: EventColumns, state: PhaseState) -> dict[tuple[int, int], tuple[Ints, Floats]]:
    """A phase state's rows (arrival order) and completion times, per run."""
    first = _starts(cols, state.rows)
    bounds = [*np.flatnonzero(first).tolist(), len(state.rows)]
    out = {}
    for lo, hi in itertools.pairwise(bounds):
        row = int(state.rows[lo])
        out[(int(cols.run_date[row]), int(cols.mode[row]))] = (state.rows[lo:hi], state.completed_at[lo:hi])
    return out


def _starts(cols: EventColumns, rows: Ints) -> Bools:
    """Group starts of a phase state's rows (grouped by run, arrival order inside)."""
    key = cols.run_date[rows] * 4 + cols.mode[rows]
    first = np.ones(len(key), bool)
    if len(key):
        first[1:] = key[1:] != key[:-1]
    return first


def recompute(
    config: Config, cols: EventColumns, now: datetime, probes: ProbeColumns | None = None,
    slos: Sequence[SLOSpec] | None = None,
) -> list[SLOStatus]:
    """Every SLO at ``now`` from all events at once (as ``SLOEngine.rebuild`` + ``evaluate``)."""
    work = Recompute(config, cols)
    out = []
    for spec in (config.slos if slos is None else slos):
        pipeline = config.pipeline_map[spec.pipeline]
        ts, good = _Units(work, spec, pipeline, probes, now).compute()
        scheduled = _scheduled(spec, pipeline, cols, now)
        out.append(judge(spec, pipeline.tz, ArrayCounter(ts, good), scheduled, now))
    return out


def _scheduled(spec: SLOSpec, pipeline: PipelineConfig, cols: EventColumns, now: datetime) -> Any:
    if not isinstance(spec.sli, DeadlineSLI):
        return lambda start, end: None
    helper = Deadline(spec, pipeline)
    pid = cols.pipelines.index(pipeline.id) if pipeline.id in cols.pipelines else -1
    helper.since = counting_since(spec.sli, cols.ts[cols.pipeline == pid])
    return helper.expected_units


def counting_since(sli: DeadlineSLI, ts: Floats) -> int | None:
    """Where a deadline SLO starts counting (as ``Deadline.since``): due.start, else the
    pipeline's first event, else not yet."""
    if sli.due.start is not None:
        return FROM_DUE_START
    return int(np.floor(ts.min())) if len(ts) else None
