"""Each SLO's SLI as GoogleSQL over the BigQuery mirror's tables (``phasewatch slo sql``).

For windows longer than the service keeps in memory, and for reports across pipelines and
instances. A statement per SLO; its parameters ``@start`` and ``@end`` (TIMESTAMP) bound the
window, half-open. It returns one row per day (in the pipeline's timezone) with the good
and total units whose time falls in the window: add the days up for the window. With
``@start`` the window start ``/v1/slos`` shows and ``@end`` the end of the minute it was
evaluated in, the counts are the service's.

The units are the in-process ones (``slo/sli/``), computed from the events as the run
tracker folds them, in the order this instance stored them (``received_at``):

- a processor's status is its latest started or finished event by time (ties: the later
  arrival), a progress event counting only as its first; a phase is complete on a
  phase-level success or when every critical and enough expected processors are done, and
  failed on a phase-level failure or a critical processor's failure;
- a unit keyed by a run (and processor) keeps its latest verdict by whole second, then
  arrival; attempts and probes are a unit each (a probe per service and second); a data
  check's unit is its run date, judged by its latest result (as is a deadline's
  ``due.expected_when``: the run dates whose checks' latest results meet the conditions);
- deadlines are wall-clock times in the pipeline's timezone read as Python's zoneinfo reads
  them (a time the clock skips or repeats, as ``fold=0``), for the usual one-hour changes.

Where the SQL can differ from the service, by design: the service counts deadlines from the
earlier of the pipeline's first event and its own first evaluation, the SQL from the first
event; the service keeps the run state of recent run dates only (an event for a run long
evicted starts it afresh), the SQL folds the whole history. A kind the SQL cannot express
gets a ``-- not expressible`` comment and no statement. The mirror's tables are in
``monitor.telemetry.mirror_tables`` (``phasewatch bigquery ddl``).
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING

from monitor.fields import parse_condition
from slo.spec import (
    AvailabilitySLI,
    CheckSLI,
    CoverageSLI,
    DeadlineSLI,
    DeadlineTime,
    DurationSLI,
    FreshnessSLI,
    SLOSpec,
    SuccessRatioSLI,
)

if TYPE_CHECKING:
    from monitor.config import Config, Expectation, PipelineConfig

DIALECTS = ("bigquery",)
MODES = ("overnight", "same_day", "tomorrow", "backfill")
WEEKDAY_NAMES = {"mon": "Mon", "tue": "Tue", "wed": "Wed", "thu": "Thu", "fri": "Fri", "sat": "Sat",
                 "sun": "Sun"}
ORDER = "received_at, event_id"  # the order the run state folded the events in


@dataclass(frozen=True)
class Tables:
    """The mirror's tables as full ids (``project.dataset.table``)."""

    events: str
    probes: str
    checks: str


def lit(text: str) -> str:
    """A GoogleSQL string literal."""
    return "'" + text.replace("\\", "\\\\").replace("'", "\\'") + "'"


def lits(items: Iterable[str]) -> str:
    return ", ".join(lit(i) for i in items)


class NotExpressible(Exception):
    """An SLI the SQL cannot compute faithfully (the reason is the message)."""


# --------------------------------------------------------------------------- the statement


def slo_sql(config: Config, spec: SLOSpec, tables: Tables,
            builders: Mapping[str, Builder] | None = None) -> str:
    """One SLO's statement (or its ``-- not expressible`` comment); ``builders``: the SQL of
    each SLI kind (default ``BUILDERS``)."""
    pipeline = config.pipeline_map[spec.pipeline]
    head = _header(spec, pipeline)
    builder = (BUILDERS if builders is None else builders).get(spec.sli.kind)
    try:
        if builder is None:
            raise NotExpressible(f"the SLI kind {spec.sli.kind!r} has no SQL form")
        ctes = builder(spec, pipeline, tables)
    except NotExpressible as exc:
        return f"{head}-- not expressible in SQL over the mirror: {exc}\n"
    body = ",\n".join(f"{name} AS (\n{_indent(sql)}\n)" for name, sql in ctes)
    return (
        f"{head}WITH {body}\n"
        f"SELECT {lit(spec.name)} AS slo, DATE(unit_time, {lit(pipeline.timezone)}) AS day,\n"
        "  COUNTIF(good) AS good, COUNT(*) AS total\n"
        "FROM units\n"
        "WHERE unit_time >= @start AND unit_time < @end\n"
        "GROUP BY day\n"
        "ORDER BY day;\n"
    )


def all_sql(config: Config, tables: Tables, names: Sequence[str] | None = None) -> str:
    """The statements of every SLO (or of ``names``), one after another."""
    specs = [s for s in config.slos if names is None or s.name in names]
    return "\n".join(slo_sql(config, spec, tables) for spec in specs)


def run_state_sql(config: Config, pipeline_id: str, tables: Tables) -> str:
    """The run tracker's verdict on each event's phase right after it, for every event of a
    pipeline: ``event_id, run_date, mode, phase, processor_status`` (the event's processor's
    status, NULL for a phase-level event), ``complete``, ``failed``, ``completed_at``,
    ``failed_at`` (when the phase last became so). What every SLI above is built on."""
    pipeline = config.pipeline_map[pipeline_id]
    ctes = [_events(pipeline, tables), *_phase_state(pipeline, [p.id for p in pipeline.phases])]
    body = ",\n".join(f"{name} AS (\n{_indent(sql)}\n)" for name, sql in ctes)
    return (
        f"WITH {body}\n"
        "SELECT s.event_id, s.run_date, s.mode, s.phase, p.holder AS processor_status, s.complete,\n"
        "  s.failed, s.completed_at, s.failed_at\n"
        "FROM phase_state s LEFT JOIN processor_state p USING (event_id)\n"
        f"ORDER BY s.{ORDER.replace(', ', ', s.')};\n"
    )


def _header(spec: SLOSpec, pipeline: PipelineConfig) -> str:
    return (
        f"-- SLO {spec.name}: {spec.sli.kind}, pipeline {pipeline.id}, objective {spec.objective:g}, "
        f"window {spec.window.label}\n"
        f"-- good and total {spec.unit} per day ({pipeline.timezone}) with their time in "
        "[@start, @end) (TIMESTAMP parameters)\n"
    )


def _indent(sql: str) -> str:
    return "\n".join(f"  {line}" if line else line for line in sql.splitlines())


CTE = tuple[str, str]
Builder = Callable[[SLOSpec, "PipelineConfig", Tables], list[CTE]]


# --------------------------------------------------------------------------- shared parts


def _events(pipeline: PipelineConfig, tables: Tables) -> CTE:
    """The pipeline's events, one copy of each event_id (the first stored)."""
    return ("events", (
        "SELECT * EXCEPT (copy_rank) FROM (\n"
        f"  SELECT *, ROW_NUMBER() OVER (PARTITION BY event_id ORDER BY {ORDER}) AS copy_rank\n"
        f"  FROM `{tables.events}` WHERE pipeline = {lit(pipeline.id)}\n"
        ") WHERE copy_rank = 1"
    ))


def _level(processors: tuple[str, ...] | None) -> str:
    if processors is None:
        return "processor IS NULL"
    if not processors:
        return "processor IS NOT NULL"
    return f"processor IN ({lits(processors)})"


def _modes(modes: Sequence[str] | None) -> str:
    """`` AND mode IN (...)``, or nothing when every mode counts."""
    return "" if modes is None else f" AND mode IN ({lits(modes)})"


def _by_phase_mode(pipeline: PipelineConfig, phases: Sequence[str],
                   value: Callable[[Expectation], str], otherwise: str) -> str:
    """A CASE giving ``value`` of the expectation of each (phase, mode)."""
    arms = []
    for phase_id in phases:
        phase = pipeline.phase_map[phase_id]
        groups: dict[str, list[str]] = {}
        for mode in MODES:
            groups.setdefault(value(phase.expectation(mode)), []).append(mode)
        if len(groups) == 1:
            [inner] = groups
        else:
            whens = " ".join(f"WHEN mode IN ({lits(modes)}) THEN {v}" for v, modes in groups.items())
            inner = f"CASE {whens} END"
        arms.append(f"WHEN phase = {lit(phase_id)} THEN {inner}")
    return f"CASE {' '.join(arms)} ELSE {otherwise} END"


def _member(names: Sequence[str]) -> str:
    return f"processor IN ({lits(names)})" if names else "FALSE"


def _phase_state(pipeline: PipelineConfig, phases: Sequence[str]) -> list[CTE]:
    """The tracker's state after each event of ``phases``: processor statuses, then the
    phase's complete / failed verdicts and when they began (``phase_state``)."""
    proc_w = f"PARTITION BY run_date, mode, phase, processor ORDER BY {ORDER}"
    run_w = f"PARTITION BY run_date, mode, phase ORDER BY {ORDER}"
    upto = "ROWS BETWEEN UNBOUNDED PRECEDING AND CURRENT ROW"
    before = "ROWS BETWEEN UNBOUNDED PRECEDING AND 1 PRECEDING"
    expected = _by_phase_mode(pipeline, phases, lambda e: _member(e.expected), "FALSE")
    critical = _by_phase_mode(pipeline, phases, lambda e: _member(e.critical), "FALSE")
    n_expected = _by_phase_mode(pipeline, phases, lambda e: str(len(e.expected)), "0")
    n_critical = _by_phase_mode(pipeline, phases, lambda e: str(len(e.critical)), "0")
    required = _by_phase_mode(pipeline, phases, lambda e: str(e.required_count), "0")
    return [
        ("candidates", (
            "-- a processor's status comes from started and finished events; a progress event\n"
            "-- counts only as the processor's first\n"
            f"SELECT *, status != 'progress' OR ROW_NUMBER() OVER ({proc_w}) = 1 AS candidate\n"
            f"FROM events WHERE phase IN ({lits(phases)}) AND processor IS NOT NULL"
        )),
        ("accepted", (
            "-- a candidate takes over when it is not older than the one holding the status\n"
            "SELECT *, candidate AND COALESCE(`timestamp` >= MAX(IF(candidate, `timestamp`, NULL))\n"
            f"  OVER ({proc_w} {before}), TRUE) AS accepted\n"
            "FROM candidates"
        )),
        ("holders", (
            "SELECT *,\n"
            f"  LAST_VALUE(IF(accepted, status, NULL) IGNORE NULLS) OVER ({proc_w} {upto}) AS holder,\n"
            "  -- when the holder's status was set: the processor's status_at\n"
            "  LAST_VALUE(IF(accepted, `timestamp`, NULL) IGNORE NULLS)\n"
            f"    OVER ({proc_w} {upto}) AS holder_at,\n"
            "  -- the start the tracker holds: the latest accepted start, else (a backlog whose\n"
            "  -- finish came first) the first start received; before and after each event\n"
            "  COALESCE(LAST_VALUE(IF(accepted AND status = 'started', `timestamp`, NULL) IGNORE NULLS)\n"
            f"    OVER ({proc_w} {before}), FIRST_VALUE(IF(status = 'started', `timestamp`, NULL)\n"
            f"    IGNORE NULLS) OVER ({proc_w} {before})) AS started_before,\n"
            "  COALESCE(LAST_VALUE(IF(accepted AND status = 'started', `timestamp`, NULL) IGNORE NULLS)\n"
            f"    OVER ({proc_w} {upto}), FIRST_VALUE(IF(status = 'started', `timestamp`, NULL)\n"
            f"    IGNORE NULLS) OVER ({proc_w} {upto})) AS start_held\n"
            "FROM accepted"
        )),
        ("processor_state", (
            "SELECT *, CAST(COALESCE(holder IN ('succeeded', 'skipped'), FALSE) AS INT64) AS done_after,\n"
            "  CAST(COALESCE(holder = 'failed', FALSE) AS INT64) AS failed_after,\n"
            f"  {expected} AS is_expected, {critical} AS is_critical\n"
            "FROM holders"
        )),
        ("changes", (
            "-- how each event changed the counts of done expected, done critical and failed\n"
            "-- critical processors of its run's phase\n"
            f"SELECT event_id, run_date, mode, phase, processor, status, `timestamp`, received_at,\n"
            f"  IF({expected}, d_done, 0) AS d_done,\n"
            f"  IF({critical}, d_done, 0) AS d_cdone,\n"
            f"  IF({critical}, d_failed, 0) AS d_cfailed,\n"
            "  accepted, started_before, start_held\n"
            "FROM (\n"
            f"  SELECT *, done_after - COALESCE(LAG(done_after) OVER ({proc_w}), 0) AS d_done,\n"
            f"    failed_after - COALESCE(LAG(failed_after) OVER ({proc_w}), 0) AS d_failed\n"
            "  FROM processor_state\n"
            ")\n"
            "UNION ALL\n"
            "SELECT event_id, run_date, mode, phase, processor, status, `timestamp`, received_at,\n"
            "  0, 0, 0, FALSE, CAST(NULL AS TIMESTAMP), CAST(NULL AS TIMESTAMP)\n"
            f"FROM events WHERE phase IN ({lits(phases)}) AND processor IS NULL"
        )),
        ("running", (
            "SELECT *,\n"
            f"  SUM(d_done) OVER ({run_w} {upto}) AS done,\n"
            f"  SUM(d_cdone) OVER ({run_w} {upto}) AS cdone,\n"
            f"  SUM(d_cfailed) OVER ({run_w} {upto}) AS cfailed,\n"
            "  LAST_VALUE(IF(processor IS NULL AND status IN ('succeeded', 'failed', 'skipped'), status,\n"
            f"    NULL) IGNORE NULLS) OVER ({run_w} {upto}) AS phase_status,\n"
            "  LAST_VALUE(IF(processor IS NULL AND status IN ('succeeded', 'failed', 'skipped'),\n"
            f"    `timestamp`, NULL) IGNORE NULLS) OVER ({run_w} {upto}) AS phase_finished_at,\n"
            "  MIN(IF(processor IS NULL AND status = 'started', `timestamp`, NULL))\n"
            f"    OVER ({run_w} {upto}) AS phase_started\n"
            "FROM changes"
        )),
        ("judged", (
            "SELECT *, NOT complete AND (COALESCE(phase_status = 'failed', FALSE) OR cfailed > 0) AS failed\n"
            "FROM (\n"
            "  -- a phase-level success or skip closes the phase (PhaseRun.is_complete)\n"
            "  SELECT *, COALESCE(phase_status IN ('succeeded', 'skipped'), FALSE)\n"
            "    OR processors_complete AS complete\n"
            "  FROM (\n"
            f"    SELECT *, {n_expected} > 0 AND cdone = {n_critical} AND done >= {required}\n"
            f"      AS processors_complete, {required} AS n_required\n"
            "    FROM running\n"
            "  )\n"
            ")"
        )),
        ("moments", (
            "SELECT *,\n"
            f"  complete AND NOT COALESCE(LAG(complete) OVER ({run_w}), FALSE) AS completed_now,\n"
            f"  failed AND NOT COALESCE(LAG(failed) OVER ({run_w}), FALSE) AS failed_now\n"
            "FROM judged"
        )),
        ("done_then", (
            "-- at each moment a phase completed, its processors' statuses then (the latest of\n"
            "-- each processor's events that had arrived)\n"
            "SELECT m.event_id AS at_event, m.n_required, p.processor, p.holder_at, p.done_after,\n"
            "  p.is_expected, p.is_critical,\n"
            "  ROW_NUMBER() OVER (PARTITION BY m.event_id, p.processor\n"
            "    ORDER BY p.received_at DESC, p.event_id DESC) AS latest\n"
            "FROM moments m JOIN processor_state p\n"
            "  ON p.run_date = m.run_date AND p.mode = m.mode AND p.phase = m.phase\n"
            "  AND (p.received_at < m.received_at\n"
            "    OR (p.received_at = m.received_at AND p.event_id <= m.event_id))\n"
            "WHERE m.completed_now"
        )),
        ("needed_at", (
            "-- when the needed processors were done, in event time: the latest critical one and\n"
            "-- the n-th earliest expected one (n = the phase's required count)\n"
            "SELECT at_event AS event_id, MAX(IF(is_critical, holder_at, NULL)) AS critical_at,\n"
            "  MAX(IF(is_expected AND nth = n_required, holder_at, NULL)) AS required_at\n"
            "FROM (\n"
            "  SELECT *, ROW_NUMBER() OVER (PARTITION BY at_event, is_expected ORDER BY holder_at) AS nth\n"
            "  FROM done_then WHERE latest = 1 AND done_after = 1\n"
            ")\n"
            "GROUP BY at_event"
        )),
        ("completion", (
            "-- a completed phase's completion time: the latest needed event's own timestamp (the\n"
            "-- earlier of a phase-level success or skip and the processors' completion)\n"
            "SELECT m.*, IF(m.completed_now, COALESCE(CASE\n"
            "    WHEN by_phase IS NULL THEN by_processors\n"
            "    WHEN by_processors IS NULL THEN by_phase\n"
            "    ELSE LEAST(by_phase, by_processors) END, m.`timestamp`), NULL) AS completion_time\n"
            "FROM (\n"
            "  SELECT m.*, IF(COALESCE(m.phase_status IN ('succeeded', 'skipped'), FALSE),\n"
            "    m.phase_finished_at, NULL) AS by_phase,\n"
            "    IF(m.processors_complete, CASE WHEN n.critical_at IS NULL THEN n.required_at\n"
            "      WHEN n.required_at IS NULL THEN n.critical_at\n"
            "      ELSE GREATEST(n.critical_at, n.required_at) END, NULL) AS by_processors\n"
            "  FROM moments m LEFT JOIN needed_at n USING (event_id)\n"
            ") m"
        )),
        ("phase_state", (
            "SELECT *,\n"
            "  LAST_VALUE(completion_time IGNORE NULLS)\n"
            f"    OVER ({run_w} {upto}) AS completed_at,\n"
            "  LAST_VALUE(IF(failed_now, `timestamp`, NULL) IGNORE NULLS)\n"
            f"    OVER ({run_w} {upto}) AS failed_at\n"
            "FROM completion"
        )),
    ]


def _latest(source: str, good: str, where: str) -> str:
    """Units keyed by run and processor, each keeping its latest verdict (whole second, then arrival)."""
    second = "TIMESTAMP_TRUNC(`timestamp`, SECOND)"
    return (
        "SELECT unit_time, good FROM (\n"
        f"  SELECT {second} AS unit_time, {good} AS good,\n"
        f"    ROW_NUMBER() OVER (PARTITION BY run_date, mode, processor ORDER BY {second} DESC,\n"
        "      received_at DESC, event_id DESC) AS latest\n"
        f"  FROM {source} WHERE {where}\n"
        ") WHERE latest = 1"
    )


# --------------------------------------------------------------------------- kinds


def success_ratio(spec: SLOSpec, pipeline: PipelineConfig, tables: Tables) -> list[CTE]:
    sli = spec.sli
    assert isinstance(sli, SuccessRatioSLI)
    where = (f"phase = {lit(sli.phase)}{_modes(sli.modes)}"
             " AND status IN ('succeeded', 'failed', 'skipped')")
    if sli.count == "attempts":
        units = ("SELECT TIMESTAMP_TRUNC(`timestamp`, SECOND) AS unit_time, status != 'failed' AS good\n"
                 f"FROM events WHERE {where} AND {_level(sli.processors)}")
        return [_events(pipeline, tables), ("units", units)]
    if sli.processors is not None:
        units = _latest("events", "status != 'failed'", f"{where} AND {_level(sli.processors)}")
        return [_events(pipeline, tables), ("units", units)]
    units = (
        "-- a phase run's verdict after its latest event that left it complete or failed\n"
        "SELECT unit_time, good FROM (\n"
        "  SELECT TIMESTAMP_TRUNC(IF(complete, completed_at, failed_at), SECOND) AS unit_time,\n"
        "    complete AS good,\n"
        f"    ROW_NUMBER() OVER (PARTITION BY run_date, mode ORDER BY {_desc(ORDER)}) AS latest\n"
        f"  FROM phase_state WHERE phase = {lit(sli.phase)}{_modes(sli.modes)}"
        " AND (complete OR failed)\n"
        ") WHERE latest = 1"
    )
    return [_events(pipeline, tables), *_phase_state(pipeline, [sli.phase]), ("units", units)]


def _desc(order: str) -> str:
    return ", ".join(f"{column.strip()} DESC" for column in order.split(","))


def duration(spec: SLOSpec, pipeline: PipelineConfig, tables: Tables) -> list[CTE]:
    sli = spec.sli
    assert isinstance(sli, DurationSLI)
    state = _phase_state(pipeline, [sli.phase])
    if sli.processors is not None:
        seconds = (
            "SELECT *, COALESCE(duration_s, IF(started_before <= `timestamp`,\n"
            "  GREATEST(TIMESTAMP_DIFF(`timestamp`, started_before, MICROSECOND) / 1000000, 0), NULL))"
            " AS seconds\n"
            "FROM processor_state\n"
            f"WHERE status = 'succeeded'{_modes(sli.modes)} AND {_level(sli.processors)}"
        )
        units = _latest("measured", f"seconds <= {sli.max_s!r}", "seconds IS NOT NULL")
        return [_events(pipeline, tables), *state, ("measured", seconds), ("units", units)]
    at_or_before = ("(s.received_at < d.received_at OR (s.received_at = d.received_at"
                    " AND s.event_id <= d.event_id))")
    return [
        _events(pipeline, tables), *state,
        ("completions", (
            "SELECT * FROM phase_state\n"
            f"WHERE completed_now AND phase = {lit(sli.phase)}{_modes(sli.modes)}"
        )),
        ("processor_starts", (
            "-- each processor's start as the tracker held it when the phase completed\n"
            "SELECT d.event_id, s.processor, MAX_BY(s.start_held, s.received_at) AS started_at\n"
            "FROM completions d JOIN phase_state s ON s.run_date = d.run_date AND s.mode = d.mode\n"
            f"  AND s.phase = d.phase AND s.start_held IS NOT NULL AND {at_or_before}\n"
            "GROUP BY d.event_id, s.processor"
        )),
        ("first_starts", (
            "SELECT d.*, CASE WHEN p.started_at IS NULL THEN d.phase_started\n"
            "  WHEN d.phase_started IS NULL THEN p.started_at\n"
            "  ELSE LEAST(d.phase_started, p.started_at) END AS first_start\n"
            "FROM completions d LEFT JOIN (\n"
            "  SELECT event_id, MIN(started_at) AS started_at FROM processor_starts GROUP BY event_id\n"
            ") p USING (event_id)"
        )),
        ("units", (
            "-- a phase run's duration, first start to complete, at its latest completion\n"
            "SELECT unit_time, good FROM (\n"
            "  SELECT TIMESTAMP_TRUNC(completed_at, SECOND) AS unit_time,\n"
            "    GREATEST(TIMESTAMP_DIFF(completed_at, first_start, MICROSECOND) / 1000000, 0)"
            f" <= {sli.max_s!r} AS good,\n"
            f"    ROW_NUMBER() OVER (PARTITION BY run_date, mode ORDER BY {_desc(ORDER)}) AS latest\n"
            "  FROM first_starts WHERE first_start IS NOT NULL\n"
            ") WHERE latest = 1"
        )),
    ]


def freshness(spec: SLOSpec, pipeline: PipelineConfig, tables: Tables) -> list[CTE]:
    sli = spec.sli
    assert isinstance(sli, FreshnessSLI)
    known = "data_as_of IS NOT NULL"
    good = (f"COALESCE(TIMESTAMP_DIFF(`timestamp`, data_as_of, MICROSECOND) / 1000000"
            f" <= {sli.max_age_h * 3600!r}, FALSE)")
    return _success_units(spec, pipeline, tables, sli.phase, sli.processors, sli.counted_modes,
                          known, good, sli.missing)


def coverage(spec: SLOSpec, pipeline: PipelineConfig, tables: Tables) -> list[CTE]:
    sli = spec.sli
    assert isinstance(sli, CoverageSLI)
    known = "records IS NOT NULL AND expected_records IS NOT NULL"
    good = f"COALESCE(records >= {sli.min_ratio!r} * expected_records, FALSE)"
    return _success_units(spec, pipeline, tables, sli.phase, sli.processors, sli.modes, known, good,
                          sli.missing)


def _success_units(spec: SLOSpec, pipeline: PipelineConfig, tables: Tables, phase: str,
                   processors: tuple[str, ...] | None, modes: Sequence[str] | None, known: str,
                   good: str, missing: str) -> list[CTE]:
    where = f"phase = {lit(phase)} AND status = 'succeeded'{_modes(modes)} AND {_level(processors)}"
    if missing == "ignore":
        where += f" AND {known}"
    return [_events(pipeline, tables), ("units", _latest("events", good, where))]


def availability(spec: SLOSpec, pipeline: PipelineConfig, tables: Tables) -> list[CTE]:
    sli = spec.sli
    assert isinstance(sli, AvailabilitySLI)
    second = "TIMESTAMP_TRUNC(checked_at, SECOND)"
    return [("units", (
        "-- a probe per service and second (the latest recorded)\n"
        "SELECT unit_time, good FROM (\n"
        f"  SELECT {second} AS unit_time, status IN ({lits(sli.good)}) AS good,\n"
        f"    ROW_NUMBER() OVER (PARTITION BY {second} ORDER BY received_at DESC, id DESC) AS latest\n"
        f"  FROM `{tables.probes}` WHERE service = {lit(sli.service)}\n"
        ") WHERE latest = 1"
    ))]


def deadline(spec: SLOSpec, pipeline: PipelineConfig, tables: Tables) -> list[CTE]:
    sli = spec.sli
    assert isinstance(sli, DeadlineSLI)
    tz = lit(pipeline.timezone)
    modes = list(sli.modes or MODES)
    phases = [sli.phase] if sli.phase is not None else [p.id for p in pipeline.phases]
    expected: list[CTE] = []
    if sli.due.expected_when:
        expected = [_check_results("expected_results", tuple(sli.due.expected_when), pipeline,
                                   tables),
                    ("expected", _expected_days(sli, tz))]
    return [
        _events(pipeline, tables), *_phase_state(pipeline, phases), *expected,
        ("counting", (
            "-- due.start set: every due run date from it on counts (the days are filtered)\n"
            "SELECT TIMESTAMP '0001-01-01 00:00:00+00' AS since"
        ) if sli.due.start is not None else (
            "-- deadlines are counted from the pipeline's first event on\n"
            "SELECT TIMESTAMP_TRUNC(MIN(`timestamp`), SECOND) AS since FROM events"
        )),
        ("days", _due_days(sli, tz)),
        ("local_deadlines", (
            f"SELECT day, mode, {_local_deadline(sli, modes)} AS local_due\n"
            f"FROM days CROSS JOIN UNNEST([{lits(modes)}]) AS mode"
        )),
        ("deadlines", (
            "-- the wall time in the timezone, read as Python's zoneinfo does (fold=0): a time the\n"
            "-- clock repeats is its first occurrence, one it skips is read with the earlier offset\n"
            "SELECT day, mode, COALESCE(\n"
            f"  MIN(IF(DATETIME(c, {tz}) = local_due, c, NULL)),\n"
            f"  MIN(IF(DATETIME(c, {tz}) > local_due, c, NULL))) AS due_at\n"
            "FROM local_deadlines CROSS JOIN UNNEST([\n"
            f"  TIMESTAMP_SUB(TIMESTAMP(local_due, {tz}), INTERVAL 1 HOUR), TIMESTAMP(local_due, {tz}),\n"
            f"  TIMESTAMP_ADD(TIMESTAMP(local_due, {tz}), INTERVAL 1 HOUR)]) AS c\n"
            "GROUP BY day, mode"
        )),
        ("completions", _completions(sli, len(phases))),
        ("units", (
            "-- a due run date at its last deadline: good when a counted mode completed by its own\n"
            "SELECT f.final AS unit_time, LOGICAL_OR(COALESCE(c.done <= d.due_at, FALSE)) AS good\n"
            "FROM (SELECT day, MAX(due_at) AS final FROM deadlines GROUP BY day) f\n"
            "JOIN deadlines d USING (day)\n"
            "LEFT JOIN completions c ON c.run_date = d.day AND c.mode = d.mode\n"
            "WHERE f.final >= (SELECT since FROM counting)\n"
            "GROUP BY f.day, f.final"
        )),
    ]


def _due_days(sli: DeadlineSLI, tz: str) -> str:
    due = sli.due
    where = [f"FORMAT_DATE('%a', day) IN ({lits(WEEKDAY_NAMES[d] for d in due.days)})"]
    if due.start is not None:
        where.append(f"day >= DATE '{due.start.isoformat()}'")
    if due.end is not None:
        where.append(f"day <= DATE '{due.end.isoformat()}'")
    if due.skip_dates:
        where.append(f"day NOT IN ({', '.join(f'DATE {lit(d.isoformat())}' for d in due.skip_dates)})")
    if due.only_seen:
        seen = f" WHERE phase IN ({lits(due.seen_phases)})" if due.seen_phases else ""
        seen_days = f"day IN (SELECT run_date FROM events{seen})"
        if due.expected_when:
            seen_days = f"({seen_days} OR day IN (SELECT day FROM expected))"
        where.append(seen_days)
    return (
        "-- run dates due by the calendar (deadlines lie within 7 days of their run date)\n"
        "SELECT day FROM UNNEST(GENERATE_DATE_ARRAY(\n"
        f"  DATE_SUB(DATE(@start, {tz}), INTERVAL 8 DAY),\n"
        f"  DATE_ADD(DATE(@end, {tz}), INTERVAL 8 DAY))) AS day\n"
        f"WHERE {' AND '.join(where)}"
    )


SQL_OPERATORS = {">": ">", ">=": ">=", "<": "<", "<=": "<=", "==": "=", "!=": "!="}


def _expected_days(sli: DeadlineSLI, tz: str) -> str:
    """Run dates on which every ``due.expected_when`` check's latest result meets its condition."""
    when = sli.due.expected_when
    arms = []
    for name, text in when.items():
        op, bound = parse_condition(text)
        arms.append(f"(name = {lit(name)} AND value {SQL_OPERATORS[op]} {bound!r})")
    day = f"COALESCE(run_date, DATE(measured_at, {tz}))"
    return (
        "-- run dates on which work was expected (due.expected_when): each check's latest result\n"
        "-- for the run date (its own run_date, else the day it was measured) meets its condition\n"
        "SELECT day FROM (\n"
        f"  SELECT name, value, {day} AS day,\n"
        f"    ROW_NUMBER() OVER (PARTITION BY name, {day}\n"
        "      ORDER BY TIMESTAMP_TRUNC(measured_at, SECOND) DESC, received_at DESC, id DESC) AS latest\n"
        "  FROM expected_results\n"
        ") WHERE latest = 1\n"
        "GROUP BY day\n"
        f"HAVING COUNTIF({' OR '.join(arms)}) = {len(when)}"
    )


def _local_deadline(sli: DeadlineSLI, modes: Sequence[str]) -> str:
    def wall(when: DeadlineTime) -> str:
        return (f"DATETIME(DATE_ADD(day, INTERVAL {when.day_offset} DAY), "
                f"TIME({when.time.hour}, {when.time.minute}, 0))")

    special = [(m, sli.deadline_for(m)) for m in modes if sli.deadline_for(m) != sli.by]
    if not special:
        return wall(sli.by)
    whens = " ".join(f"WHEN {lit(m)} THEN {wall(t)}" for m, t in special)
    return f"CASE mode {whens} ELSE {wall(sli.by)} END"


def _completions(sli: DeadlineSLI, n_phases: int) -> str:
    if sli.phase is not None:
        return (
            "-- when each run's phase first completed, in event time (its completion time)\n"
            "SELECT run_date, mode, MIN(TIMESTAMP_TRUNC(completion_time, SECOND)) AS done\n"
            f"FROM phase_state WHERE completed_now AND phase = {lit(sli.phase)}\n"
            "GROUP BY run_date, mode"
        )
    return (
        "-- the first moment a phase's completion left every phase of the run complete; the\n"
        "-- run completed when its last phase did, in event time (the phases' completion times\n"
        "-- as they stood at that moment)\n"
        "SELECT run_date, mode, MIN(done) AS done FROM (\n"
        "  SELECT run_date, mode, at_event, MAX(TIMESTAMP_TRUNC(completed_at, SECOND)) AS done\n"
        "  FROM (\n"
        "    SELECT r.run_date, r.mode, r.event_id AS at_event, s.completed_at,\n"
        "      ROW_NUMBER() OVER (PARTITION BY r.event_id, s.phase\n"
        "        ORDER BY s.received_at DESC, s.event_id DESC) AS latest\n"
        "    FROM (\n"
        "    SELECT * FROM (\n"
        f"      SELECT *, SUM(change) OVER (PARTITION BY run_date, mode ORDER BY {ORDER}\n"
        "        ROWS BETWEEN UNBOUNDED PRECEDING AND CURRENT ROW) AS complete_phases\n"
        "      FROM (\n"
        "        SELECT *, CAST(complete AS INT64) - COALESCE(CAST(LAG(complete) OVER (\n"
        f"          PARTITION BY run_date, mode, phase ORDER BY {ORDER}) AS INT64), 0) AS change\n"
        "        FROM phase_state\n"
        "      )\n"
        f"    ) WHERE completed_now AND complete_phases = {n_phases}\n"
        "    ) r JOIN phase_state s ON s.run_date = r.run_date AND s.mode = r.mode\n"
        "      AND (s.received_at < r.received_at\n"
        "        OR (s.received_at = r.received_at AND s.event_id <= r.event_id))\n"
        "  ) WHERE latest = 1\n"
        "  GROUP BY run_date, mode, at_event\n"
        ") GROUP BY run_date, mode"
    )


def check(spec: SLOSpec, pipeline: PipelineConfig, tables: Tables) -> list[CTE]:
    sli = spec.sli
    assert isinstance(sli, CheckSLI)
    tz = lit(pipeline.timezone)
    bounds = [f"value >= {sli.min!r}" if sli.min is not None else "",
              f"value <= {sli.max!r}" if sli.max is not None else ""]
    second = "TIMESTAMP_TRUNC(measured_at, SECOND)"
    return [
        _check_results("results", (sli.check,), pipeline, tables),
        ("units", (
            "-- a run date's latest result (its own run_date, else the day it was measured)\n"
            "SELECT unit_time, good FROM (\n"
            f"  SELECT {second} AS unit_time, {' AND '.join(b for b in bounds if b)} AS good,\n"
            f"    ROW_NUMBER() OVER (PARTITION BY COALESCE(run_date, DATE(measured_at, {tz}))\n"
            f"      ORDER BY {second} DESC, received_at DESC, id DESC) AS latest\n"
            "  FROM results\n"
            ") WHERE latest = 1"
        )),
    ]


def _check_results(name: str, checks: Sequence[str], pipeline: PipelineConfig,
                   tables: Tables) -> CTE:
    """The results of ``checks`` for the pipeline (or none named), one copy of each."""
    return (name, (
        "-- one copy of each result (the first recorded)\n"
        "SELECT * EXCEPT (copy_rank) FROM (\n"
        "  SELECT *, ROW_NUMBER() OVER (PARTITION BY id ORDER BY received_at) AS copy_rank\n"
        f"  FROM `{tables.checks}` WHERE name IN ({lits(checks)})\n"
        f"    AND (pipeline IS NULL OR pipeline = {lit(pipeline.id)})\n"
        ") WHERE copy_rank = 1"
    ))


BUILDERS: dict[str, Builder] = {
    "success_ratio": success_ratio,
    "deadline": deadline,
    "duration": duration,
    "freshness": freshness,
    "coverage": coverage,
    "availability": availability,
    "check": check,
}
