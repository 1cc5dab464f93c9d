"""A labelled duration suite: seasons of the NBA pipeline's overnight Phases 3 and 4.

Each season is a seeded world of daily runs, fed as events through ingest to the anomaly
monitor (``tests/test_anomaly_duration_suite.py``); this module builds the worlds, replays
them and scores the duration flags. ``python -m tests.duration_suite`` prints the details.

**The world** (per season, per processor of ``phase3`` and ``phase4``): a base duration
(log-uniform 90 s to 40 min), a day-of-week effect (N(0, 0.06) in log), a share of work
proportional to the night's games (10-50 %; 0 games on the off days: Thanksgiving,
Christmas Eve, the six-day All-Star break and two more, when runs only pay their fixed
cost), half the processors growing slowly all season (+10 % to +65 % over it: gradual drift,
not an anomaly), heavy-tailed noise (t with 5 degrees of freedom, scale 2-8 %), 3 % of
days with no run at all, and Phase 3 starting 01:30-02:45 in New York (01:50 on the two
daylight-saving nights, so that runs straddle the change; timestamps carry their offsets
and the tracker derives durations from them). ``player_game_summary`` waits for
``team_offense_game_summary`` and ``ml_feature_store`` for ``player_daily_cache``; Phase 4
starts 1-4 min after Phase 3 completes.

**Injected** (three per processor, at least 14 runs apart, after 4 weeks of history, on
game days): a *slow run* (x2 to x5 one run), a *stuck run* (1.5 h to 5 h more), a
*slowdown* that persists (x1.6 to x3 from then on) and a *speedup* that persists (x0.4
to x0.7: faster is no anomaly for a duration; a flag on it or after it is a false
positive).

**Labels and tolerance.** A processor's slow or stuck run must be flagged on that run; a
slowdown within 7 runs of its onset (about a week; runs without games, which are no
points of any series, do not count). A phase series is labelled by the
effect on the phase's own duration, against the same world without that injection: x1.5
or more makes it a true anomaly with the same window; x1.15 to x1.5 is "don't care" (a
flag neither counts nor costs; for a slowdown over 28 runs, as a small shift may be found
late); less is normal. Each window is one event: detected when any flag falls in it;
every flag outside windows and "don't care" runs is a false positive.
"""

from __future__ import annotations

import functools
import itertools
import json
import math
import statistics
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, time, timedelta
from zoneinfo import ZoneInfo

import numpy as np

from monitor.actuator.simulated import simulated
from monitor.actuator.sinks import MemorySink
from monitor.app.phasewatch import Phasewatch
from monitor.app.sim.replay import SimulatedWorld
from monitor.clock import FakeClock
from monitor.config import Config

ET = ZoneInfo("America/New_York")
PHASES: dict[str, tuple[tuple[str, str | None], ...]] = {  # processor, the one it waits for
    "phase3": (
        ("team_offense_game_summary", None),
        ("player_game_summary", "team_offense_game_summary"),
        ("team_defense_game_summary", None),
        ("upcoming_player_game_context", None),
        ("upcoming_team_game_context", None),
    ),
    "phase4": (
        ("team_defense_zone_analysis", None),
        ("player_shot_zone_analysis", None),
        ("player_composite_factors", None),
        ("player_daily_cache", None),
        ("ml_feature_store", "player_daily_cache"),
    ),
}
PROCESSORS = [(phase, name) for phase, procs in PHASES.items() for name, _ in procs]


@dataclass(frozen=True)
class Season:
    """A regular season's dates: first and last game day, All-Star break, Thanksgiving."""

    first: date
    last: date
    all_star_break: date  # the first of six days without games
    thanksgiving: date


SEASONS = (
    Season(date(2023, 10, 24), date(2024, 4, 14), date(2024, 2, 15), date(2023, 11, 23)),
    Season(date(2024, 10, 22), date(2025, 4, 13), date(2025, 2, 14), date(2024, 11, 28)),
    Season(date(2025, 10, 21), date(2026, 4, 12), date(2026, 2, 13), date(2025, 11, 27)),
)
GAMES_BY_WEEKDAY = (7.0, 6.0, 9.0, 5.0, 9.0, 7.0, 6.5)  # Monday first
MEAN_GAMES = 7.5
WARMUP_RUNS = 28
SPACING_RUNS = 14
SHIFT_WINDOW = 7
DONT_CARE_SHIFT = 28
TRUE_EFFECT = 1.5
SMALL_EFFECT = 1.15
KINDS = ("slow run", "stuck run", "slowdown", "speedup")

SeriesId = tuple[str, str]  # (phase, processor); processor "" for the phase itself


@dataclass(frozen=True)
class Injection:
    kind: str
    phase: str
    processor: str
    onset: int  # run index
    size: float  # factor; for a stuck run, seconds added


@dataclass(frozen=True)
class Window:
    kind: str
    first: int
    last: int


@dataclass
class Labels:
    """Per series: the windows to detect and the runs where a flag neither counts nor costs."""

    windows: dict[SeriesId, list[Window]] = field(default_factory=dict)
    dont_care: dict[SeriesId, set[int]] = field(default_factory=dict)


@dataclass(frozen=True)
class World:
    """One season: the run dates, the events of each run (time order) and the labels."""

    season: Season
    run_dates: list[date]
    runs: list[list[dict[str, object]]]
    labels: Labels
    injections: list[Injection]
    dst_crossings: int  # runs with a processor whose start and finish straddle a DST change


# ------------------------------------------------------------------------- the world


def _run_dates(season: Season, rng: np.random.Generator) -> tuple[list[date], list[int]]:
    """Days with a run (3 % missing) and the games of each (0 on off days)."""
    off = {season.thanksgiving, date(season.first.year, 12, 24)}
    off |= {season.all_star_break + timedelta(days=k) for k in range(6)}
    days = [season.first + timedelta(days=k) for k in range((season.last - season.first).days + 1)]
    off |= {days[int(k)] for k in rng.choice(np.arange(20, len(days) - 5), 2, replace=False)}
    dates, games = [], []
    for day in days:
        if rng.random() < 0.03:
            continue  # no run that day: the pipeline (or its events) never came
        dates.append(day)
        mean = GAMES_BY_WEEKDAY[day.weekday()]
        games.append(0 if day in off else int(np.clip(round(rng.normal(mean, 2.5)), 1, 15)))
    return dates, games


def _injections(rng: np.random.Generator, games: Sequence[int]) -> list[Injection]:
    out: list[Injection] = []
    n = len(games)
    eligible = [i for i in range(WARMUP_RUNS, n - SHIFT_WINDOW) if games[i]]
    for phase, name in PROCESSORS:
        kinds = list(rng.choice(KINDS, 3, replace=False))
        while True:
            onsets = sorted(int(i) for i in rng.choice(eligible, 3, replace=False))
            if all(b - a >= SPACING_RUNS for a, b in itertools.pairwise(onsets)):
                break
        for kind, onset in zip(rng.permutation(kinds), onsets, strict=True):
            size = {
                "slow run": math.exp(rng.uniform(math.log(2.0), math.log(5.0))),
                "stuck run": rng.uniform(1.5, 5.0) * 3600.0,
                "slowdown": rng.uniform(1.6, 3.0),
                "speedup": rng.uniform(0.4, 0.7),
            }[str(kind)]
            out.append(Injection(str(kind), phase, name, onset, size))
    return out


@dataclass(frozen=True)
class _Plan:
    """Everything random about a season except the injections (drawn once, reused)."""

    run_dates: list[date]
    games: list[int]
    clean_log: dict[str, np.ndarray]  # processor -> log seconds per run
    phase3_start: list[datetime]  # UTC
    jitter: dict[str, np.ndarray]  # processor -> seconds after its phase (or dependency)
    phase4_gap: np.ndarray  # seconds from Phase 3's completion to Phase 4's start


def _plan(season: Season, rng: np.random.Generator) -> _Plan:
    run_dates, games = _run_dates(season, rng)
    n = len(run_dates)
    g = np.array(games, dtype=float)
    clean: dict[str, np.ndarray] = {}
    for _, name in PROCESSORS:
        base = rng.uniform(math.log(90.0), math.log(2400.0))
        weekly = rng.normal(0.0, 0.06, 7)
        share = rng.uniform(0.1, 0.5)
        growth = rng.uniform(0.1, 0.5) if rng.random() < 0.5 else 0.0
        sigma = rng.uniform(0.02, 0.08)
        wd = np.array([weekly[d.weekday()] for d in run_dates])
        volume = np.log(1.0 - share + share * g / MEAN_GAMES)
        clean[name] = (base + wd + volume + growth * np.arange(n) / n
                       + sigma * rng.standard_t(5, n))
    starts = [_midnight(d) + timedelta(minutes=90 + float(rng.uniform(0, 75))) for d in run_dates]
    for i, d in enumerate(run_dates):
        night = datetime.combine(d + timedelta(days=1), time(0), ET)
        if night.utcoffset() != (night + timedelta(hours=4)).utcoffset():
            starts[i] = _midnight(d) + timedelta(minutes=110)  # into the clock change at 02:00
    jitter = {name: rng.uniform(5.0, 60.0, n) for _, name in PROCESSORS}
    return _Plan(run_dates, games, clean, starts, jitter, rng.uniform(60.0, 240.0, n))


def _midnight(run_date: date) -> datetime:
    """Midnight after ``run_date`` in New York, in UTC."""
    return datetime.combine(run_date + timedelta(days=1), time(0), ET).astimezone(UTC)


def _durations(plan: _Plan, injections: Sequence[Injection]) -> dict[str, np.ndarray]:
    out = {name: log.copy() for name, log in plan.clean_log.items()}
    stuck: list[Injection] = []
    for inj in injections:
        if inj.kind == "slow run":
            out[inj.processor][inj.onset] += math.log(inj.size)
        elif inj.kind in ("slowdown", "speedup"):
            out[inj.processor][inj.onset:] += math.log(inj.size)
        else:
            stuck.append(inj)
    seconds = {name: np.exp(log) for name, log in out.items()}
    for inj in stuck:
        seconds[inj.processor][inj.onset] += inj.size
    return seconds


Timeline = dict[str, tuple[datetime, datetime]]  # processor -> (start, finish), UTC


def _timeline(plan: _Plan, seconds: dict[str, np.ndarray], i: int) -> tuple[Timeline, dict[str, float]]:
    """Starts and finishes of run ``i``, and each phase's duration (first start to completion)."""
    timeline: Timeline = {}
    phase_s: dict[str, float] = {}
    begin = plan.phase3_start[i]
    for phase, procs in PHASES.items():
        for name, after in procs:
            ready = timeline[after][1] if after else begin
            start = ready + timedelta(seconds=float(plan.jitter[name][i]))
            timeline[name] = (start, start + timedelta(seconds=float(seconds[name][i])))
        first = min(timeline[n][0] for n, _ in procs)
        done = max(timeline[n][1] for n, _ in procs)
        phase_s[phase] = (done - first).total_seconds()
        begin = done + timedelta(seconds=float(plan.phase4_gap[i]))
    return timeline, phase_s


def _phase_durations(plan: _Plan, injections: Sequence[Injection], runs: range) -> dict[str, np.ndarray]:
    """Each phase's duration in ``runs`` (indexed by run; the others are 0)."""
    seconds = _durations(plan, injections)
    out = {phase: np.zeros(len(plan.run_dates)) for phase in PHASES}
    for i in runs:
        for phase, s in _timeline(plan, seconds, i)[1].items():
            out[phase][i] = s
    return out


def _judged_run(plan: _Plan, onset: int, count: int) -> int:
    """The ``count``-th run with games from ``onset`` on (a run without games is no point of
    any series: it does not count towards a tolerance window), or the last run."""
    seen = 0
    for i in range(onset, len(plan.games)):
        seen += plan.games[i] > 0
        if seen == count:
            return i
    return len(plan.games) - 1


def _labels(plan: _Plan, injections: Sequence[Injection]) -> Labels:
    labels = Labels()
    full = _phase_durations(plan, injections, range(len(plan.run_dates)))
    for inj in injections:
        if inj.kind == "speedup":
            continue  # not an anomaly: its runs are normal ones
        last = _judged_run(plan, inj.onset, SHIFT_WINDOW if inj.kind == "slowdown" else 1)
        labels.windows.setdefault((inj.phase, inj.processor), []).append(
            Window(inj.kind, inj.onset, last))
        without = _phase_durations(plan, [j for j in injections if j is not inj],
                                   range(inj.onset, last + 1))
        ratio = statistics.median(
            float(full[inj.phase][k] / without[inj.phase][k]) for k in range(inj.onset, last + 1))
        key = (inj.phase, "")
        if ratio >= TRUE_EFFECT:
            labels.windows.setdefault(key, []).append(Window(inj.kind, inj.onset, last))
        elif ratio >= SMALL_EFFECT:
            end = _judged_run(plan, inj.onset, DONT_CARE_SHIFT if inj.kind == "slowdown" else 1)
            labels.dont_care.setdefault(key, set()).update(range(inj.onset, end + 1))
    return labels


def _iso(at: datetime) -> str:
    return at.astimezone(ET).isoformat()


def _events(plan: _Plan, seconds: dict[str, np.ndarray], i: int,
            rows: dict[str, int]) -> tuple[list[dict[str, object]], bool]:
    """The run's events in time order, and whether a processor run straddles a DST change."""
    timeline, _ = _timeline(plan, seconds, i)
    run_date = plan.run_dates[i].isoformat()
    games = plan.games[i]
    events: list[tuple[datetime, dict[str, object]]] = []
    crosses = False
    for phase, procs in PHASES.items():
        for name, _ in procs:
            start, finish = timeline[name]
            crosses |= start.astimezone(ET).utcoffset() != finish.astimezone(ET).utcoffset()
            common = {"pipeline": "nba", "run_date": run_date, "phase": phase, "processor": name}
            events.append((start, {**common, "event_id": f"{run_date}-{name}-s",
                                   "status": "started", "timestamp": _iso(start)}))
            expected = games * rows[name]
            events.append((finish, {**common, "event_id": f"{run_date}-{name}-ok",
                                    "status": "succeeded", "timestamp": _iso(finish),
                                    "records": expected, "expected_records": expected}))
    events.sort(key=lambda item: item[0])
    return [e for _, e in events], crosses


@functools.cache
def build_world(seed: int) -> World:
    """The season ``SEASONS[seed % 3]`` with the world drawn from ``seed``."""
    season = SEASONS[seed % len(SEASONS)]
    rng = np.random.default_rng(seed)
    plan = _plan(season, rng)
    injections = _injections(rng, plan.games)
    rows = {name: int(rng.integers(20, 600)) for _, name in PROCESSORS}
    seconds = _durations(plan, injections)
    runs, crossings = [], 0
    for i in range(len(plan.run_dates)):
        events, crosses = _events(plan, seconds, i, rows)
        runs.append(events)
        crossings += crosses
    return World(season, plan.run_dates, runs, _labels(plan, injections), injections, crossings)


# --------------------------------------------------------------------- replay and score


def flagged_runs(world: World, config: Config) -> dict[SeriesId, set[int]]:
    """Replay the season through ingest, as live (the clock at each event), and collect the
    run indices of the duration series' flags."""
    clock = FakeClock(datetime.combine(world.run_dates[0], time(12), UTC))
    probe, _, checks = simulated(SimulatedWorld())
    sink = MemorySink()
    pw = Phasewatch.build(config, db_path=":memory:", clock=clock, probe=probe, checks=checks,
                          sinks={"http": sink, "pubsub": sink, "log": sink})
    # Ingest as the service does (parse, resolve the mode, store, track), with the anomaly
    # monitor as the only listener: the actuator, SLOs and correlation would only slow it.
    pw.collector.listeners[:] = [pw.anomalies.on_updates]
    index = {d.isoformat(): i for i, d in enumerate(world.run_dates)}
    flags: dict[SeriesId, set[int]] = {}
    try:
        for events in world.runs:
            for event in events:
                at = datetime.fromisoformat(str(event["timestamp"]))
                clock.set(max(clock.now(), at + timedelta(seconds=1)))
                pw.collector.ingest_body(json.dumps(event).encode())
            for anomaly in pw.anomalies.recent:
                if anomaly.kind == "duration":
                    key = (anomaly.phase, anomaly.processor)
                    flags.setdefault(key, set()).add(index[anomaly.run_date])
            pw.anomalies.recent.clear()
    finally:
        pw.close()
    return flags


@dataclass
class Score:
    """Event-level counts over the suite; ``by_kind`` holds (detected, events) per kind."""

    detected: int = 0
    missed: int = 0
    false_positives: int = 0
    normal_runs: int = 0
    by_kind: dict[str, list[int]] = field(default_factory=dict)
    misses: list[str] = field(default_factory=list)
    false_alarms: list[str] = field(default_factory=list)

    @property
    def precision(self) -> float:
        flagged = self.detected + self.false_positives
        return self.detected / flagged if flagged else 0.0

    @property
    def recall(self) -> float:
        events = self.detected + self.missed
        return self.detected / events if events else 0.0

    @property
    def f1(self) -> float:
        p, r = self.precision, self.recall
        return 2 * p * r / (p + r) if p + r else 0.0

    @property
    def fp_per_100_runs(self) -> float:
        return 100.0 * self.false_positives / self.normal_runs if self.normal_runs else 0.0


def score(world: World, flags: dict[SeriesId, set[int]], into: Score) -> Score:
    """Add one season's detections, misses and false positives to ``into``."""
    n = len(world.run_dates)
    series = [*PROCESSORS, *((phase, "") for phase in PHASES)]
    for key in series:
        found = flags.get(key, set())
        windows = world.labels.windows.get(key, [])
        ignored = set(world.labels.dont_care.get(key, set()))
        for w in windows:
            hit = any(w.first <= i <= w.last for i in found)
            counts = into.by_kind.setdefault(w.kind, [0, 0])
            counts[0] += hit
            counts[1] += 1
            if hit:
                into.detected += 1
            else:
                into.missed += 1
                into.misses.append(f"{world.season.first.year} {key[0]}/{key[1] or '-'} "
                                   f"{w.kind} at run {w.first} ({world.run_dates[w.first]})")
            ignored.update(range(w.first, w.last + 1))
        into.normal_runs += n - len(ignored)
        for i in sorted(found - ignored):
            into.false_positives += 1
            into.false_alarms.append(f"{world.season.first.year} {key[0]}/{key[1] or '-'} "
                                     f"run {i} ({world.run_dates[i]})")
    return into


def run_suite(config: Config, seeds: Sequence[int] = (0, 1, 2)) -> Score:
    """Build, replay and score every season."""
    total = Score()
    for seed in seeds:
        world = build_world(seed)
        score(world, flagged_runs(world, config), total)
    return total


def describe(total: Score) -> Iterator[str]:
    yield (f"F1 {total.f1:.3f}  precision {total.precision:.3f}  recall {total.recall:.3f}  "
           f"({total.detected} of {total.detected + total.missed} events, "
           f"{total.false_positives} false positives, "
           f"{total.fp_per_100_runs:.2f} per 100 normal runs)")
    for kind, (hit, events) in sorted(total.by_kind.items()):
        yield f"  {kind:10s} {hit} of {events}"
    yield from (f"  missed: {m}" for m in total.misses)
    yield from (f"  false positive: {f}" for f in total.false_alarms)


def main() -> None:
    from monitor.config import load_config

    for line in describe(run_suite(load_config())):
        print(line)


if __name__ == "__main__":
    main()
