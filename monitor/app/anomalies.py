"""Feeds finished runs to the streaming anomaly detectors; keeps recent outliers and timeouts.

The detectors (``slo.anomaly``) are pure; this module decides what a series point is:
the duration of every finished processor run and phase, the lateness of each completion
(when its data arrived: seconds from the run date's midnight in the pipeline's timezone),
and the rows of each finished processor run (volume): per expected row when the event
reports ``expected_records``, so a day with fewer games is judged on its own count. Only
succeeded runs are points, and a run expecting no rows (a night without games) is none:
its quick, empty run would teach the baselines a normal that ends with the break.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from operator import itemgetter
from typing import Any, ClassVar

from alerts.model import Alert, alert_key
from alerts.router import Router
from monitor import horizon
from monitor.clock import Clock
from monitor.config import Config
from monitor.telemetry.metrics import Metrics
from monitor.tracker import PhaseRun, RunState, Update
from slo.anomaly import SeriesDetectors, adaptive_timeout
from slo.anomaly.detector import Decision, Point, RobustDetector
from slo.anomaly.registry import SERIES_KINDS, SeriesKey, SeriesKind, midnight_utc
from slo.anomaly.scan import REASONS
from slo.anomaly.timeouts import TimeoutDecision

RECENT_KEPT = 500
ANNOUNCED_KEPT = timedelta(days=3)  # how long a run's notice keeps its later outliers quiet
TOLD_WINDOW = timedelta(hours=12)  # a run told about this recently needs no anomaly notice
DURATIONS_KEPT = 90


@dataclass(frozen=True)
class Anomaly:
    """One flagged point, with the range that was expected."""

    time: datetime
    pipeline: str
    run_date: str
    mode: str
    phase: str
    processor: str
    kind: SeriesKind
    value: float
    expected: float | None
    lower: float | None
    upper: float | None
    score: float
    pattern: str | None
    rows: int | None = None  # records series: the rows and the rows expected by the event
    expected_rows: int | None = None

    @property
    def reason(self) -> str | None:
        """The pattern in words: spike, level shift, drift, seasonal deviation."""
        return REASONS.get(self.pattern or "")

    def as_dict(self) -> dict[str, Any]:
        return {
            "time": self.time.isoformat(), "pipeline": self.pipeline, "run_date": self.run_date,
            "mode": self.mode, "phase": self.phase, "processor": self.processor or None,
            "kind": self.kind, "value": round(self.value, 3),
            "expected": None if self.expected is None else round(self.expected, 3),
            "lower": None if self.lower is None else round(self.lower, 3),
            "upper": None if self.upper is None else round(self.upper, 3),
            "score": round(self.score, 3), "pattern": self.pattern, "reason": self.reason,
            "rows": self.rows, "expected_rows": self.expected_rows,
        }


class AnomalyMonitor:
    """Collector listener: one detector per series, recent anomalies, adaptive timeouts."""

    # What a snapshot keeps (monitor.app.snapshot); the other attributes are wiring.
    snapshot_fields: ClassVar[tuple[str, ...]] = ("detectors", "recent", "_durations", "_announced")

    def __init__(self, config: Config, metrics: Metrics, router: Router,
                 clock: Clock | None = None) -> None:
        self.config = config
        self.clock = clock
        self.metrics = metrics
        self.router = router
        self.detectors = SeriesDetectors(config.anomaly)
        self.recent: deque[Anomaly] = deque(maxlen=RECENT_KEPT)
        self._durations: dict[tuple[str, str, str, str], deque[float]] = {}
        self._announced: dict[tuple[str, str, str], datetime] = {}  # runs told about
        # (pipeline, phase, processor, mode) -> its durations and detectors, found once
        self._runs: dict[tuple[str, str, str, str], _RunSeries] = {}

    def snapshot_restored(self) -> None:
        """After a snapshot put the detectors and durations back: forget the ones found."""
        self._runs.clear()

    def on_update(self, update: Update) -> None:
        """Live path for one update (``on_updates``)."""
        self.on_updates((update,))

    def on_updates(self, updates: Sequence[Update]) -> None:
        """Live path, a stored batch: judge the points, count and alert on outliers.

        Only successes are points (``_observe``): the other events are passed by. History
        (a backfill, or an event outside the actionable horizon) is learned from in
        silence, as on a restart: no alert about a run that is long over.
        """
        now = self.clock.now() if self.clock is not None else None
        outside = horizon.Horizon(self.config, now) if now is not None else None
        points = _Points()
        run: RunState | None = None
        run_outside: str | None = None
        for number, update in enumerate(updates):
            if update.key[3] != "succeeded":
                continue
            event = update.event
            live = not update.backfill
            if live and outside is not None:
                # A batch brings a run's events together, all of its pipeline and run date
                # (the tracker's run): its bounds are looked up once, each event's age each time.
                if update.run is not run:
                    run = update.run
                    run_outside = outside.run(event.pipeline, event.run_date, run.mode)
                live = not (run_outside or outside.stale(event))
            self._observe(update, points, number if live else None)
        for anomaly in points.judge(updates):
            self.recent.append(anomaly)
            self.metrics.anomalies.labels(anomaly.pipeline, anomaly.phase, anomaly.kind).inc()
            self._announce(anomaly)

    def _announce(self, anomaly: Anomaly) -> None:
        """One info notice per run (its first outlier), and none about a run phasewatch told
        about already (it is in trouble, and known to be): a night late by hours is one
        notice, not one per processor; the rest is in the report, the API and the summary."""
        run = (anomaly.pipeline, anomaly.run_date, anomaly.mode)
        if run in self._announced:
            return
        told = getattr(self.router, "told_about_run", None)
        if told is not None and told(*run, since=anomaly.time - TOLD_WINDOW):
            self._announced[run] = anomaly.time
            return
        for old in [k for k, at in self._announced.items() if anomaly.time - at > ANNOUNCED_KEPT]:
            del self._announced[old]
        self._announced[run] = anomaly.time
        alert = self._alert(anomaly)
        self.router.fire(alert)
        self.router.resolve(alert.key, alert.at)

    def replay(self, update: Update) -> None:
        """Rebuild path (restart): learn from the point, say nothing."""
        points = _Points()
        self._observe(update, points, None)
        points.judge((update,))

    def _observe(self, update: Update, points: _Points, told: int | None) -> None:
        """Add the points of ``update`` to ``points``; ``told``: its number in the batch if
        its outliers are told about, None if it is learnt from in silence."""
        event = update.event
        if event.processor is not None and event.status == "succeeded" and event.expected_records != 0:
            self._points(update, event.processor, update.duration_s, event.timestamp,
                         event.expected_records, points, told)
        # The phase's point when this event completes it, whether a processor's event or a
        # phase-level one does (processors that report are the common case).
        # A run expecting no rows (a night without games): its processors that report
        # ``expected_records`` all expect 0. It teaches the series nothing and is not judged.
        if update.phase_completed and (rows := _expected_rows(update.phase)) != 0:
            done = update.phase.completed_at or event.timestamp
            start = update.phase.first_start
            seconds = max((done - start).total_seconds(), 0.0) if start else None
            self._points(update, "", seconds, done, rows, points, told)

    def _points(
        self, update: Update, processor: str, duration: float | None, finished: datetime,
        size: int | None, points: _Points, told: int | None,
    ) -> None:
        """The points of one finished processor (or phase) run: duration, lateness, rows."""
        run, event = update.run, update.event
        if run is not points.run:  # its season and midnight, once for its events in a batch
            points.run = run
            points.season = run.run_date.weekday()
            points.midnight = midnight_utc(run.run_date, self.config.pipeline_map[run.pipeline].tz)
        season = points.season
        key = (run.pipeline, event.phase, processor, run.mode)
        found = self._runs.get(key)
        if found is None:
            found = self._runs[key] = _RunSeries()
        if duration is not None:
            if found.durations is None:
                found.durations = self._durations.setdefault(key, deque(maxlen=DURATIONS_KEPT))
            found.durations.append(duration)
            if found.duration is None:
                found.duration = self.detectors.series(*key, "duration")
            # A run's size (the rows it expects) explains much of its duration: a 14-game
            # night takes longer than a 3-game one, and a slow 3-game night can hide among them.
            points.add(found.duration, processor, "duration", (finished, duration, season, size),
                       told)
        # Seconds from the run date's midnight (``lateness_s``), the midnight found per run.
        late = (finished - points.midnight).total_seconds()
        if found.late is None:
            found.late = self.detectors.series(*key, "late")
        points.add(found.late, processor, "late", (finished, late, season, None), told)
        rows, expected = event.records, event.expected_records
        if processor and rows is not None and expected != 0:  # 0 expected: nothing to judge
            volume = rows / expected if expected else float(rows)
            if found.records is None:
                found.records = self.detectors.series(*key, "records")
            points.add(found.records, processor, "records", (finished, volume, season, None),
                       told)

    def _alert(self, anomaly: Anomaly) -> Alert:
        run = {"pipeline": anomaly.pipeline, "run_date": anomaly.run_date, "mode": anomaly.mode}
        labels = {**run, "phase": anomaly.phase, "kind": anomaly.kind}
        if anomaly.processor:
            labels["processor"] = anomaly.processor
        return Alert(
            key=alert_key("anomaly", run), severity="info", summary=summary(anomaly),
            at=anomaly.time, labels={"alertname": "anomaly", **labels},
            details=f"{anomaly.reason or 'outlier'}; score {anomaly.score:.1f}; "
                    f"expected range {expected_range(anomaly)}",
        )

    def as_report(self) -> list[dict[str, Any]]:
        return [a.as_dict() for a in self.recent]

    def timeout(self, pipeline: str, phase: str, processor: str | None, mode: str,
                static_s: float) -> TimeoutDecision:
        """Adaptive timeout of a processor (or phase) in a mode, or ``static_s`` without history."""
        history = self._durations.get((pipeline, phase, processor or "", mode), ())
        return adaptive_timeout(list(history), static_s, self.config.anomaly.timeouts)

    def learned_timeout(self, pipeline: str, phase: str, processor: str | None,
                        mode: str) -> float | None:
        """The actuator's timeouts hook: adaptive seconds, or None to use the static value."""
        decision = self.timeout(pipeline, phase, processor, mode, static_s=0.0)
        return decision.seconds if decision.source == "adaptive" else None

    def series(self) -> list[SeriesKey]:
        return list(self.detectors)


class _RunSeries:
    """The series of one processor's (or phase's) runs in one mode: the durations kept for
    its timeouts and its detector of each kind, each taken (created) at its first point."""

    __slots__ = ("duration", "durations", "late", "records")

    def __init__(self) -> None:
        self.durations: deque[float] | None = None
        self.duration: RobustDetector | None = None
        self.late: RobustDetector | None = None
        self.records: RobustDetector | None = None


class _Series:
    """The points of one series in a batch, and for each the number of its update in the
    batch when it is told about (None: learnt in silence)."""

    __slots__ = ("kind", "order", "points", "processor", "told")

    def __init__(self, processor: str, kind: SeriesKind) -> None:
        self.processor = processor
        self.kind = kind
        # Within one update, the order its points are added in (``_observe``): its
        # processor's duration, lateness and rows, then its phase's duration and lateness.
        self.order = SERIES_KINDS.index(kind) + (0 if processor else len(SERIES_KINDS))
        self.points: list[Point] = []
        self.told: list[int | None] = []


class _Points:
    """The points of a batch, grouped by series: each series' detector then judges its own
    points one after the other (while its state is in the processor's caches), in their
    order; the outliers of live points come back in the batch's order. Also the run whose
    season and midnight were last worked out (a batch brings a run's events together)."""

    __slots__ = ("midnight", "run", "season", "series")

    def __init__(self) -> None:
        self.series: dict[RobustDetector, _Series] = {}
        self.run: RunState | None = None
        self.season = 0
        self.midnight = datetime.min

    def add(self, detector: RobustDetector, processor: str, kind: SeriesKind, point: Point,
            told: int | None) -> None:
        """A point of ``detector``'s series; ``told``: its update's number in the batch if
        its outlier is told about, None if it is learnt from in silence."""
        series = self.series.get(detector)
        if series is None:
            series = self.series[detector] = _Series(processor, kind)
        series.points.append(point)
        series.told.append(told)

    def judge(self, updates: Sequence[Update]) -> list[Anomaly]:
        """Judge the points, series by series; the outliers among the live ones, in the
        order of ``updates`` (the batch whose numbers ``told`` holds) and, within one, of
        ``_observe``. Only a flagged point's update and value are looked up: a point told
        about costs its number only."""
        flagged: list[tuple[int, int, Anomaly]] = []
        for detector, series in self.series.items():
            for i, decision in detector.flagged_many(series.points):
                number = series.told[i]
                if number is not None:
                    flagged.append((number, series.order,
                                    _anomaly(updates[number], series, series.points[i][1], decision)))
        flagged.sort(key=_ORDER)
        return [anomaly for _, _, anomaly in flagged]


_ORDER = itemgetter(0, 1)


def _anomaly(update: Update, series: _Series, value: float, decision: Decision) -> Anomaly:
    run, event = update.run, update.event
    rows, expected_rows = ((event.records, event.expected_records) if series.kind == "records"
                           else (None, None))
    return Anomaly(
        event.timestamp, run.pipeline, run.run_date.isoformat(), run.mode, event.phase,
        series.processor, series.kind, value, decision.expected, decision.lower,
        decision.upper, decision.score, decision.kind, rows, expected_rows,
    )


def _expected_rows(phase: PhaseRun) -> int | None:
    """Rows the phase's processors expect, summed over those that say (None if none does)."""
    expected = [p.expected_records for p in phase.processors.values() if p.expected_records is not None]
    return sum(expected) if expected else None


def summary(a: Anomaly) -> str:
    """One line for the person paged: the series, the value, the expected range, the run."""
    what = a.processor or f"phase {a.phase}"
    run = f"({a.run_date} {a.mode})"
    if a.kind == "duration":
        return f"{what} took {human_duration(a.value)}, usually {expected_range(a)} {run}"
    if a.kind == "late":
        return (f"{what} finished later than usual: {clock_offset(a.value)}, usually "
                f"{expected_range(a)} {run}")
    moved = "fewer" if a.expected is not None and a.value < a.expected else "more"
    return f"{what} wrote {moved} rows than usual: {rows_text(a)}, usually {expected_range(a)} {run}"


def expected_range(a: Anomaly) -> str:
    """The expected range in the series' own units (a one-sided series: "by" its upper end)."""
    if a.lower is None or a.upper is None:
        return "?"
    if a.kind == "duration":
        return f"{human_duration(a.lower)} to {human_duration(a.upper)}"
    if a.kind == "late":
        return f"{clock_offset(a.lower)} to {clock_offset(a.upper)}"
    if a.expected_rows:
        return f"{a.lower:.0%} to {a.upper:.0%}"
    return f"{a.lower:,.0f} to {a.upper:,.0f} rows"


def rows_text(a: Anomaly) -> str:
    if a.expected_rows:
        return f"{a.rows:,} of {a.expected_rows:,} expected ({a.value:.0%})"
    return f"{a.rows if a.rows is not None else a.value:,.0f} rows"


def human_duration(seconds: float | None) -> str:
    if seconds is None:
        return "?"
    minutes = seconds / 60
    return f"{minutes / 60:.1f} h" if minutes >= 90 else f"{minutes:.0f} min"


def clock_offset(seconds: float | None) -> str:
    """Seconds after the run date's midnight as ``+1d 04:50``-style wall time."""
    if seconds is None:
        return "?"
    days, rest = divmod(int(seconds), 86400)  # before midnight: -1d and the time of day
    hours, rest = divmod(rest, 3600)
    prefix = f"{days:+d}d " if days else ""  # -1d: the evening before the run date
    return f"{prefix}{hours:02d}:{rest // 60:02d}"
