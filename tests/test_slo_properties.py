"""The SLO engine against a brute-force reference on random histories and evaluation times.

The reference recomputes every unit from the whole event list at the evaluation time, with
windows computed from wall-clock dates directly; the engine keeps ledgers up to date on
ingest. Both must agree exactly, for every SLI kind and window type.
"""

from __future__ import annotations

import itertools
from dataclasses import dataclass, replace
from datetime import UTC, date, datetime, timedelta
from datetime import time as TimeOfDay
from fractions import Fraction
from typing import Any
from zoneinfo import ZoneInfo

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from monitor.config import Config, parse_config
from monitor.events import Event
from monitor.tracker import RunTracker
from slo.evaluator import SLOEngine, SLOStatus
from slo.sli.base import HealthProbe
from slo.spec import (
    WEEKDAYS,
    CalendarWindow,
    DeadlineSLI,
    RollingWindow,
    SLOSpec,
)
from slo.windows import burn_windows

TZ = ZoneInfo("America/New_York")
MODES = ("overnight", "same_day", "tomorrow", "backfill")
PHASES: dict[str, tuple[str, ...]] = {"a": ("x", "y"), "b": ("z",), "c": ()}

CONFIG_TEXT = """
version: 1
pipelines:
  - id: p
    timezone: America/New_York
    services:
      svc: {health_url: "http://127.0.0.1:1/health"}
    phases:
      - id: a
        processors:
          - {name: x, priority: critical}
          - {name: y, priority: optional}
      - id: b
        processors:
          - {name: z, priority: critical}
      - id: c
"""


def base_config() -> Config:
    return parse_config(CONFIG_TEXT, "<test>")


# --------------------------------------------------------------------------- strategies

_ids = itertools.count()


@st.composite
def histories(draw: st.DrawFn) -> tuple[date, list[Event], list[HealthProbe], datetime]:
    """A base date, events in arrival order, probes, and an evaluation time."""
    base = draw(st.dates(date(2026, 2, 20), date(2026, 10, 25)))
    now = datetime.combine(base, TimeOfDay(0), tzinfo=UTC) + timedelta(
        minutes=draw(st.integers(10 * 1440, 40 * 1440)), seconds=draw(st.integers(0, 59))
    )
    today = now.astimezone(TZ).date()
    n = draw(st.integers(0, 150))
    events = []
    for _ in range(n):
        run_date = today - timedelta(days=draw(st.integers(-1, 12)))
        phase = draw(st.sampled_from(sorted(PHASES)))
        procs = PHASES[phase]
        processor = draw(st.sampled_from((None, *procs))) if procs else None
        status = draw(st.sampled_from(
            ("started", "progress", "succeeded", "succeeded", "failed", "skipped")
        ))
        offset = draw(st.integers(-24 * 60, 48 * 60))
        ts = datetime.combine(run_date, TimeOfDay(0), tzinfo=TZ) + timedelta(
            minutes=offset, seconds=draw(st.integers(0, 59))
        )
        fields: dict[str, Any] = {}
        if draw(st.booleans()):
            fields["duration_s"] = float(draw(st.integers(0, 7200)))
        if draw(st.booleans()):
            fields["records"] = draw(st.integers(0, 100))
        if draw(st.booleans()):
            fields["expected_records"] = draw(st.integers(0, 100))
        if draw(st.booleans()):
            fields["data_as_of"] = ts - timedelta(hours=draw(st.integers(0, 12)))
        events.append(Event(
            event_id=f"e{next(_ids)}", pipeline="p", run_date=run_date,
            mode=draw(st.sampled_from(MODES[:3])), phase=phase, processor=processor,
            status=status, timestamp=ts.astimezone(UTC), **fields,
        ))
    # Some orderly runs: every processor (or the phase itself) started, then finished.
    for _ in range(draw(st.integers(0, 12))):
        run_date = today - timedelta(days=draw(st.integers(-1, 12)))
        phase = draw(st.sampled_from(sorted(PHASES)))
        mode = draw(st.sampled_from(MODES[:3]))
        t0 = datetime.combine(run_date, TimeOfDay(0), tzinfo=TZ) + timedelta(
            minutes=draw(st.integers(-12 * 60, 30 * 60))
        )
        for processor in PHASES[phase] or (None,):
            finish = t0 + timedelta(minutes=draw(st.integers(1, 180)))
            for status, at in (("started", t0), (draw(st.sampled_from(("succeeded", "failed"))), finish)):
                events.append(Event(
                    event_id=f"e{next(_ids)}", pipeline="p", run_date=run_date, mode=mode,
                    phase=phase, processor=processor, status=status, timestamp=at.astimezone(UTC),
                ))
    # Arrival: mostly in time order, some events late by up to two hours.
    jitter = [draw(st.integers(0, 120)) for _ in events]
    order = sorted(range(len(events)), key=lambda i: events[i].timestamp + timedelta(minutes=jitter[i]))
    events = [events[i] for i in order]
    probes = [
        HealthProbe(
            "svc", now - timedelta(minutes=draw(st.integers(-60, 12 * 1440))),
            draw(st.sampled_from(("pass", "warn", "fail"))),
        )
        for _ in range(draw(st.integers(0, 30)))
    ]
    return base, events, probes, now


def _opt_procs(draw: st.DrawFn, phase: str) -> list[str] | None:
    choice = draw(st.sampled_from(("phase", "all", "some")))
    if choice == "phase" or not PHASES[phase]:
        return None if choice == "phase" else []
    return [] if choice == "all" else [PHASES[phase][0]]


@st.composite
def slo_specs(draw: st.DrawFn) -> SLOSpec:
    kind = draw(st.sampled_from(
        ("success_ratio", "deadline", "duration", "freshness", "coverage", "availability")
    ))
    phase = draw(st.sampled_from(sorted(PHASES)))
    modes = draw(st.sampled_from((None, None, ["overnight", "same_day"], ["tomorrow"])))
    sli: dict[str, Any] = {"kind": kind}
    if kind == "success_ratio":
        sli |= {"phase": phase, "processors": _opt_procs(draw, phase), "modes": modes,
                "count": draw(st.sampled_from(("runs", "attempts")))}
    elif kind == "deadline":
        sli |= {
            "phase": draw(st.sampled_from((None, "a", "b", "c"))),
            "modes": modes,
            "by": {"day_offset": draw(st.integers(-1, 2)),
                   "time": f"{draw(st.integers(0, 23)):02d}:{draw(st.sampled_from((0, 30, 59))):02d}"},
            "due": {
                "days": draw(st.sampled_from((list(WEEKDAYS), ["mon", "wed", "sat"]))),
                "only_seen": draw(st.booleans()),
                "seen_phases": draw(st.sampled_from(([], ["a"]))),
                "skip_dates": draw(st.lists(st.dates(date(2026, 2, 20), date(2026, 12, 5)), max_size=3)),
                "start": draw(st.one_of(st.none(), st.dates(date(2026, 2, 20), date(2026, 12, 5)))),
            },
        }
        if modes and draw(st.booleans()):
            sli["by_mode"] = {modes[0]: {"day_offset": 1, "time": "02:30"}}
    elif kind == "duration":
        sli |= {"phase": phase, "processors": _opt_procs(draw, phase), "modes": modes,
                "max_s": float(draw(st.integers(1, 5000)))}
    elif kind == "freshness":
        sli |= {"phase": phase, "processors": _opt_procs(draw, phase), "modes": modes,
                "max_age_h": draw(st.sampled_from((1, 4.5, 6))),
                "missing": draw(st.sampled_from(("bad", "ignore")))}
    elif kind == "coverage":
        sli |= {"phase": phase, "processors": _opt_procs(draw, phase), "modes": modes,
                "min_ratio": draw(st.sampled_from((0.5, 0.55, 0.8, 1.0))),
                "missing": draw(st.sampled_from(("bad", "ignore")))}
    else:
        sli |= {"service": "svc", "good": draw(st.sampled_from((["pass"], ["pass", "warn"])))}
    window = draw(st.sampled_from((
        {"kind": "rolling", "days": draw(st.integers(1, 10))},
        {"kind": "calendar", "unit": "week"},
        {"kind": "calendar", "unit": "month"},
    )))
    return SLOSpec.model_validate({
        "name": "s", "pipeline": "p", "sli": sli, "window": window,
        "objective": draw(st.sampled_from((0.5, 0.75, 0.9, 0.95))),
    })


# --------------------------------------------------------------------------- reference


@dataclass
class Step:
    """What the tracker knew right after one event."""

    event: Event
    index: int
    mode: str
    complete: bool
    failed: bool
    completed_at: datetime | None
    failed_at: datetime | None
    first_start: datetime | None
    duration_s: float | None
    phase_completed: bool
    run_complete: bool
    run_completed_at: datetime | None  # the latest of its phases' completion times


def replay(config: Config, events: list[Event]) -> list[Step]:
    tracker = RunTracker(config, retention_days=400)
    steps = []
    for i, e in enumerate(events):
        u = tracker.apply(e)
        steps.append(Step(
            e, i, u.run.mode, u.phase.is_complete(), u.phase.is_failed(), u.phase.completed_at,
            u.phase.failed_at, u.phase.first_start, u.duration_s, u.phase_completed,
            all(p.is_complete() for p in u.run.phases.values()),
            max((p.completed_at for p in u.run.phases.values() if p.completed_at), default=None),
        ))
    return steps


def _sec(when: datetime) -> int:
    return int(when.timestamp())


def reference_units(
    spec: SLOSpec, steps: list[Step], probes: list[HealthProbe], now: datetime
) -> dict[str, tuple[int, bool]]:
    """Every unit's (time, good) as of ``now``, recomputed from scratch."""
    sli: Any = spec.sli
    if sli.kind == "availability":
        out = {}
        for p in probes:
            if p.service == sli.service:
                out[f"{_sec(p.time)}"] = (_sec(p.time), p.status in sli.good)
        return out
    if sli.kind == "deadline":
        return deadline_units(spec, steps, now)
    sel = [
        s for s in steps
        if (s.event.phase == sli.phase) and (sli.modes is None or s.mode in sli.modes)
    ]

    def at_level(e: Event) -> bool:
        if sli.processors is None:
            return e.processor is None
        return e.processor is not None and (not sli.processors or e.processor in sli.processors)

    def latest(cands: list[tuple[Step, bool]]) -> dict[str, tuple[int, bool]]:
        best: dict[str, tuple[tuple[int, int], bool]] = {}
        for s, good in cands:
            e = s.event
            key = f"{e.run_date}/{s.mode}/{e.processor}"
            rank = (_sec(e.timestamp), s.index)
            if key not in best or rank >= best[key][0]:
                best[key] = (rank, good)
        return {k: (r[0], g) for k, (r, g) in best.items()}

    if sli.kind == "success_ratio":
        if sli.count == "attempts":
            return {
                s.event.event_id: (_sec(s.event.timestamp), s.event.status != "failed")
                for s in sel if s.event.status in ("succeeded", "skipped", "failed")
                and at_level(s.event)
            }
        if sli.processors is not None:
            return latest([
                (s, s.event.status != "failed") for s in sel
                if s.event.status in ("succeeded", "skipped", "failed") and at_level(s.event)
            ])
        out = {}
        for s in sel:
            key = f"{s.event.run_date}/{s.mode}"
            if s.complete:
                out[key] = (_sec(s.completed_at or s.event.timestamp), True)
            elif s.failed:
                out[key] = (_sec(s.failed_at or s.event.timestamp), False)
        return out
    if sli.kind == "duration":
        if sli.processors is not None:
            return latest([
                (s, s.duration_s <= sli.max_s) for s in sel
                if s.event.status == "succeeded" and at_level(s.event) and s.duration_s is not None
            ])
        out = {}
        for s in sel:
            if s.phase_completed and s.first_start is not None:
                done = s.completed_at or s.event.timestamp
                ok = (done - s.first_start).total_seconds() <= sli.max_s
                out[f"{s.event.run_date}/{s.mode}"] = (_sec(done), ok)
        return out
    cands = []
    for s in sel:
        e = s.event
        if e.status != "succeeded" or not at_level(e):
            continue
        if sli.kind == "freshness":
            if e.data_as_of is None:
                if sli.missing == "ignore":
                    continue
                good = False
            else:
                good = (e.timestamp - e.data_as_of).total_seconds() <= sli.max_age_h * 3600
        else:
            if e.records is None or e.expected_records is None:
                if sli.missing == "ignore":
                    continue
                good = False
            else:
                good = e.records >= Fraction(str(sli.min_ratio)) * e.expected_records
        cands.append((s, good))
    return latest(cands)


def _deadline(run_date: date, day_offset: int, at: TimeOfDay) -> int:
    day = run_date + timedelta(days=day_offset)
    return _sec(datetime(day.year, day.month, day.day, at.hour, at.minute, tzinfo=TZ))


def deadline_context(spec: SLOSpec, steps: list[Step], now: datetime) -> tuple[int, Any]:
    sli = spec.sli
    assert isinstance(sli, DeadlineSLI)
    # Counting starts at due.start, else at the pipeline's first event, else not at all.
    if sli.due.start is not None:
        since = -(2**62)
    else:
        since = min([_sec(s.event.timestamp) for s in steps], default=2**62)
    modes = sli.modes or MODES

    def deadlines(d: date) -> dict[str, int]:
        return {m: _deadline(d, sli.deadline_for(m).day_offset, sli.deadline_for(m).time) for m in modes}

    return since, deadlines


def deadline_units(spec: SLOSpec, steps: list[Step], now: datetime) -> dict[str, tuple[int, bool]]:
    sli = spec.sli
    assert isinstance(sli, DeadlineSLI)
    since, deadlines = deadline_context(spec, steps, now)
    modes = sli.modes or MODES
    seen = {
        s.event.run_date for s in steps
        if not sli.due.seen_phases or s.event.phase in sli.due.seen_phases
    }
    first: dict[tuple[date, str], int] = {}
    for s in steps:
        if not s.phase_completed or s.mode not in modes:
            continue
        if sli.phase is not None:
            if s.event.phase != sli.phase:
                continue
            done = _sec(s.completed_at or s.event.timestamp)
        else:
            if not s.run_complete:
                continue
            done = _sec(s.run_completed_at or s.event.timestamp)
        key = (s.event.run_date, s.mode)
        first[key] = min(first.get(key, done), done)
    out: dict[str, tuple[int, bool]] = {}
    today = now.astimezone(TZ).date()
    # Every run date a window (or a calendar window's trailing period) can reach.
    day = today - timedelta(days=80)
    if abs(since) < 2**61:
        day = max(day, datetime.fromtimestamp(since, TZ).date() - timedelta(days=10))
    while day <= today + timedelta(days=10):
        per_mode = deadlines(day)
        final = max(per_mode.values())
        due = sli.due.is_due(day) and (not sli.due.only_seen or day in seen)
        if due and since <= final <= _sec(now):
            good = any(first.get((day, m), 2**62) <= per_mode[m] for m in modes)
            out[day.isoformat()] = (final, good)
        day += timedelta(days=1)
    return out


def reference_status(
    spec: SLOSpec, steps: list[Step], probes: list[HealthProbe], now: datetime
) -> dict[str, Any]:
    units = reference_units(spec, steps, probes, now)
    end = _sec(now) // 60 + 1

    def count(lo: int, hi: int) -> tuple[int, int]:
        inside = [g for t, g in units.values() if lo <= t // 60 < hi]
        return sum(inside), len(inside)

    local = now.astimezone(TZ)
    window = spec.window
    if isinstance(window, RollingWindow):
        # N local days: the same wall-clock time N days back (DST changes make it N x 24 h ± 1 h)
        end_local = datetime.fromtimestamp(end * 60, TZ)
        back = datetime.combine(end_local.date() - timedelta(days=window.days), end_local.time(),
                                tzinfo=TZ)
        start = _sec(back) // 60
        good, total = count(start, end)
        basis = total
    else:
        assert isinstance(window, CalendarWindow)
        if window.unit == "week":
            first = local.date() - timedelta(days=local.weekday())
            after = first + timedelta(days=7)
        else:
            first = local.date().replace(day=1)
            after = date(first.year + first.month // 12, first.month % 12 + 1, 1)
        start = _sec(datetime(first.year, first.month, first.day, tzinfo=TZ)) // 60
        period_end = _sec(datetime(after.year, after.month, after.day, tzinfo=TZ)) // 60
        good, total = count(start, end)
        sli = spec.sli
        if isinstance(sli, DeadlineSLI) and not sli.due.only_seen:
            since, deadlines = deadline_context(spec, steps, now)
            expected = 0
            day = first - timedelta(days=10)
            while day < after + timedelta(days=10):
                final = max(deadlines(day).values())
                if sli.due.is_due(day) and start * 60 <= final < period_end * 60 and final >= since:
                    expected += 1
                day += timedelta(days=1)
        else:
            expected = count(end - (period_end - start), end)[1]
        basis = max(total, expected)
    objective = Fraction(str(spec.objective))
    return {
        "good": good, "total": total, "basis": basis,
        "budget": (1 - objective) * basis,
        "windows": {
            w.label: count(end - w.minutes, end) for w in burn_windows(spec.window, spec.alerting)
        },
        "start": start,
    }


def engine_view(status: SLOStatus) -> dict[str, Any]:
    return {
        "good": status.good, "total": status.total, "basis": status.budget_basis,
        "budget": status.budget_total,
        "windows": {w.label: (w.good, w.total) for w in status.windows},
        "start": int(status.window_start.timestamp()) // 60,
    }


# --------------------------------------------------------------------------- properties


@settings(max_examples=200, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(history=histories(), spec=slo_specs())
def test_engine_matches_brute_force(history: Any, spec: SLOSpec) -> None:
    _, events, probes, now = history
    events = [e for e in events if e.timestamp <= now]
    probes = [p for p in probes if p.time <= now]
    config = base_config()
    engine = SLOEngine(config, [spec])
    tracker = RunTracker(config, retention_days=engine.history_days)
    engine.rebuild((tracker.apply(e) for e in events), probes)
    (status,) = engine.evaluate(now)
    expected = reference_status(spec, replay(config, events), probes, now)
    assert engine_view(status) == expected


@settings(max_examples=100, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(history=histories(), spec=slo_specs(), cuts=st.lists(st.integers(0, 200), max_size=4))
def test_incremental_with_evaluations_on_the_way_matches(
    history: Any, spec: SLOSpec, cuts: list[int]
) -> None:
    """Evaluating along the way (deadlines materialize, late events revise them) changes nothing."""
    _, events, probes, now = history
    events = [e for e in events if e.timestamp <= now]
    probes = [p for p in probes if p.time <= now]
    config = base_config()
    engine = SLOEngine(config, [spec])
    tracker = RunTracker(config, retention_days=400)
    stops = sorted({c for c in cuts if 0 < c < len(events)})
    first_ts = min((e.timestamp for e in events), default=now)
    for i, event in enumerate(events):
        engine.on_update(tracker.apply(event))
        if i + 1 in stops:
            seen = max(e.timestamp for e in events[: i + 1])
            engine.evaluate(max(seen, first_ts))
    for probe in probes:
        engine.observe_probe(probe)
    (status,) = engine.evaluate(now)
    expected = reference_status(spec, replay(config, events), probes, now)
    assert engine_view(status) == expected


@settings(max_examples=100, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(history=histories(), spec=slo_specs())
def test_an_sli_is_sent_every_event_it_can_use(history: Any, spec: SLOSpec) -> None:
    """The engine sends an event only to the SLIs that want its key (``SLI.wants``): an SLI
    fed every event ends with the same units, so what it is not sent it would ignore."""
    _, events, _, _ = history
    config = base_config()
    indexed, everything = SLOEngine(config, [spec]), SLOEngine(config, [spec])
    (fed,) = everything._slos
    tracker = RunTracker(config, retention_days=400)
    for event in events:
        update = tracker.apply(event)
        indexed.on_update(update)
        fed.sli.on_update(update, fed.ledger)
    (kept,) = indexed._slos
    assert kept.ledger.units(-(2**40), 2**40) == fed.ledger.units(-(2**40), 2**40)
    assert kept.ledger.bad_units(-(2**40), 2**40) == fed.ledger.bad_units(-(2**40), 2**40)


@settings(max_examples=50, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(history=histories(), specs=st.lists(slo_specs(), min_size=1, max_size=4),
       sizes=st.lists(st.integers(1, 40), max_size=10), backfill=st.lists(st.booleans()))
def test_a_batch_folded_slo_after_slo_is_each_event_in_turn(
    history: Any, specs: list[SLOSpec], sizes: list[int], backfill: list[bool]
) -> None:
    """``on_updates`` sorts a batch by SLO and hands each SLO its updates at once
    (``SLI.on_updates``): the same units, verdicts and quiet units as each SLO's SLI fed
    each update in turn, with the batch's updates applied first as the collector does."""
    _, events, _, _ = history
    config = base_config()
    specs = [s.model_copy(update={"name": f"s{i}"}) for i, s in enumerate(specs)]
    batched, plain = SLOEngine(config, specs), SLOEngine(config, specs)
    tracker = RunTracker(config, retention_days=400)
    flags = itertools.chain(backfill, itertools.repeat(False))
    start = 0
    for size in [*sizes, len(events)]:
        updates = [replace(tracker.apply(e), backfill=next(flags))
                   for e in events[start:start + size]]
        start += size
        batched.on_updates(updates)
        for update in updates:
            for tracked in plain._slos:
                tracked.ledger.quiet = update.backfill
                tracked.sli.on_update(update, tracked.ledger)
                tracked.ledger.quiet = False
    everything = (-(2**40), 2**40)
    for kept, fed in zip(batched._slos, plain._slos, strict=True):
        assert kept.ledger.units(*everything) == fed.ledger.units(*everything)
        bad = fed.ledger.bad_units(*everything)
        assert kept.ledger.bad_units(*everything) == bad
        assert [kept.ledger.is_quiet(k) for k, _ in bad] == [fed.ledger.is_quiet(k) for k, _ in bad]


@settings(max_examples=100, deadline=None)
@given(offsets=st.lists(st.integers(0, 4_000_000), min_size=1, max_size=12))
def test_a_deadline_counts_from_the_epoch_second_of_the_earliest_event(
    offsets: list[int],
) -> None:
    """``Deadline.since`` is the earliest event's epoch second (truncated, as ``epoch``),
    whatever the microseconds: its check by time (``since_at``) skips only later events."""
    spec = SLOSpec.model_validate({
        "name": "s", "pipeline": "p", "window": {"kind": "rolling", "days": 7},
        "sli": {"kind": "deadline", "by": {"time": "10:00"}}, "objective": 0.9,
    })
    config = base_config()
    engine = SLOEngine(config, [spec])
    tracker = RunTracker(config, retention_days=400)
    # within a few seconds: later events of an earlier second, or of the same one
    times = [datetime(2026, 3, 2, 9, tzinfo=UTC) + timedelta(microseconds=us) for us in offsets]
    for i, at in enumerate(times):
        engine.on_updates([tracker.apply(Event(
            event_id=f"t{i}", pipeline="p", run_date=date(2026, 3, 2), mode="overnight",
            phase="a", processor="y", status="started", timestamp=at,
        ))])
    (tracked,) = engine._slos
    assert tracked.sli.since == min(int(at.timestamp()) for at in times)  # type: ignore[attr-defined]
