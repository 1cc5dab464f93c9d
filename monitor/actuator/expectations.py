"""Data expectations: "by 08:30, when games_today > 0, predictions_today must be > 0".

Each pipeline's ``expectations`` are judged on every tick (job ``expectations``) from the
latest check results (the store live, the replay's ``check`` lines). From its ``deadline``
(a time of day in the pipeline's timezone) on, on the days it applies to, an expectation
whose ``when`` conditions all hold and whose ``require`` does not raises one alert for the
day; it resolves when the requirement passes (or ``when`` stops holding), and at the end of
its day at the latest. A check value measured before the day began (or older than
``max_age_min``) counts as missing: a missing ``when`` value means "does not apply", a
missing ``require`` value means "not met". Firing days are kept in the store (component
``expectations``), so a restart neither repeats nor forgets an alert.
"""

from __future__ import annotations

import logging
import operator
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import date, datetime, time, timedelta
from typing import TYPE_CHECKING

from monitor.actuator.gates.base import CheckSource, CheckValue
from monitor.actuator.notify import Notifier
from monitor.checks.config import SqlCheckConfig
from monitor.config import WEEKDAYS, ExpectationConfig, PipelineConfig
from monitor.fields import DEFAULT_DAY_OFFSET, parse_condition
from monitor.store.base import ComponentStore, Migration, utc_text
from monitor.store.retention import Rule
from monitor.tracker import RunTracker

if TYPE_CHECKING:
    from monitor.actuator.engine import Actuator
    from monitor.host import Host

log = logging.getLogger(__name__)

KIND = "expectation"
MIGRATIONS: tuple[Migration, ...] = (
    """
    CREATE TABLE expectation_alerts (
        pipeline    TEXT NOT NULL,
        name        TEXT NOT NULL,
        day         TEXT NOT NULL,
        fired_at    TEXT NOT NULL,
        resolved_at TEXT,
        PRIMARY KEY (pipeline, name, day)
    )
    """,
)

# Past retention (monitor.store.retention): resolved alerts of days long gone.
RETENTION: tuple[Rule, ...] = (
    Rule("expectation_alerts", "audit", "resolved_at IS NOT NULL AND day < ?", ("before_date",),
         key=("pipeline", "name", "day"), serial=False, partition="pipeline"),
)

OPERATORS: dict[str, Callable[[float, float], bool]] = {
    ">": operator.gt, ">=": operator.ge, "<": operator.lt, "<=": operator.le,
    "==": operator.eq, "!=": operator.ne,
}
Firing = tuple[str, str, str]  # (pipeline, expectation, day)


@dataclass(frozen=True)
class Outcome:
    """One judgement: does it apply, is it met, and what the checks said."""

    applies: bool
    met: bool
    detail: str


def judge(exp: ExpectationConfig, checks: CheckSource, fresh_since: datetime,
          now: datetime, about: Callable[[str], date | None] = lambda name: None) -> Outcome:
    """Evaluate ``when`` and ``require`` against the checks' latest fresh values; ``about``
    names the run date each check's result must be about (None: the standing result)."""
    said: list[str] = []

    def holds(name: str, condition: str) -> bool | None:
        value = _fresh(checks.latest(name, about(name)), fresh_since, exp, now)
        if value is None:
            said.append(f"{name} has no result today")
            return None
        op, bound = parse_condition(condition)
        ok = OPERATORS[op](value.value, bound)
        said.append(f"{name} = {value.value:g}" + ("" if ok else f" (needs {condition.strip()})"))
        return ok

    for name, condition in exp.when.items():
        if not holds(name, condition):
            return Outcome(False, True, "; ".join(said))
    met = all([bool(holds(name, condition)) for name, condition in exp.require.items()])
    return Outcome(True, met, "; ".join(said))


def _fresh(value: CheckValue | None, since: datetime, exp: ExpectationConfig,
           now: datetime) -> CheckValue | None:
    if value is None or value.at < since:
        return None
    if exp.max_age_min is not None and now - value.at > timedelta(minutes=exp.max_age_min):
        return None
    return value


class Expectations:
    """Judges every pipeline's expectations on the tick; fires and resolves their alerts."""

    def __init__(self, pipelines: tuple[PipelineConfig, ...], checks: CheckSource,
                 notifier: Notifier, store: ComponentStore, tracker: RunTracker,
                 days_ago: Mapping[str, int] | None = None) -> None:
        self.pipelines = [p for p in pipelines if p.expectations]
        self.checks = checks
        # A check's result judged for a day is about that day's run date (minus the check's
        # run_date_days_ago): tomorrow's counts, yesterday's re-count are not today's.
        self.days_ago = dict(days_ago or {})
        self.notifier = notifier
        self.tracker = tracker
        self._store = store
        store.migrate_component("expectations", MIGRATIONS)
        rows = store.read(
            "SELECT pipeline, name, day FROM expectation_alerts WHERE resolved_at IS NULL"
        )
        self._firing: set[Firing] = {(r[0], r[1], r[2]) for r in rows}

    def tick(self, now: datetime) -> None:
        """The ``expectations`` job."""
        for pipeline in self.pipelines:
            local = now.astimezone(pipeline.tz)
            today = local.date()
            start = datetime.combine(today, time(0), pipeline.tz)
            for exp in pipeline.expectations:
                self._expire(pipeline, exp, today, now)
                if not self._applies_today(pipeline, exp, today):
                    continue
                deadline = datetime.combine(today, time.fromisoformat(exp.deadline), pipeline.tz)
                if now < deadline:
                    continue
                key = (pipeline.id, exp.name, today.isoformat())
                outcome = judge(exp, self.checks, start, now, self._about(today))
                if outcome.applies and not outcome.met and key not in self._firing:
                    self._fire(pipeline, exp, today, outcome, now)
                elif key in self._firing and (outcome.met or not outcome.applies):
                    self._resolve(pipeline.id, exp, today.isoformat(), now, outcome.detail)

    def _about(self, today: date) -> Callable[[str], date | None]:
        """The run date each check's result judged ``today`` is about."""
        return lambda name: today - timedelta(days=self.days_ago.get(name, 0))

    def _applies_today(self, pipeline: PipelineConfig, exp: ExpectationConfig, today: date) -> bool:
        if exp.days is not None and WEEKDAYS[today.weekday()] not in exp.days:
            return False
        if exp.modes is None:
            return True
        return any(self.tracker.get((pipeline.id, self._run_date(today, mode), mode)) is not None
                   for mode in exp.modes)

    @staticmethod
    def _run_date(today: date, mode: str) -> str:
        """The run date a mode works on ``today`` (overnight: yesterday's games)."""
        return (today - timedelta(days=DEFAULT_DAY_OFFSET[mode])).isoformat()

    def _labels(self, pipeline: str, exp: ExpectationConfig, day: str) -> dict[str, str | None]:
        return {"pipeline": pipeline, "expectation": exp.name, "day": day}

    def _fire(self, pipeline: PipelineConfig, exp: ExpectationConfig, today: date,
              outcome: Outcome, now: datetime) -> None:
        day = today.isoformat()
        title = exp.summary or exp.name
        summary = (f"{title}: {pipeline.id} {day}, by {exp.deadline} {pipeline.timezone}: "
                   f"{outcome.detail}")
        with self._store.transaction() as db:
            db.execute(
                "INSERT INTO expectation_alerts (pipeline, name, day, fired_at) VALUES (?, ?, ?, ?)"
                " ON CONFLICT (pipeline, name, day) DO UPDATE SET fired_at = excluded.fired_at,"
                " resolved_at = NULL", (pipeline.id, exp.name, day, utc_text(now)),
            )
        self._firing.add((pipeline.id, exp.name, day))
        log.warning("event=expectation.failed pipeline=%s expectation=%s day=%s detail=%r",
                    pipeline.id, exp.name, day, outcome.detail)
        self.notifier.fire(KIND, exp.severity, summary, now, self._labels(pipeline.id, exp, day),
                           annotations={"deadline": exp.deadline})

    def _resolve(self, pipeline: str, exp: ExpectationConfig, day: str, now: datetime,
                 why: str) -> None:
        with self._store.transaction() as db:
            db.execute(
                "UPDATE expectation_alerts SET resolved_at = ? WHERE pipeline = ? AND name = ?"
                " AND day = ?", (utc_text(now), pipeline, exp.name, day),
            )
        self._firing.discard((pipeline, exp.name, day))
        log.info("event=expectation.met pipeline=%s expectation=%s day=%s detail=%r",
                 pipeline, exp.name, day, why)
        self.notifier.resolve(KIND, self._labels(pipeline, exp, day), now)

    def _expire(self, pipeline: PipelineConfig, exp: ExpectationConfig, today: date,
                now: datetime) -> None:
        """Alerts of past days resolve when their day is over (today's judgement takes over)."""
        for firing in [f for f in self._firing if f[:2] == (pipeline.id, exp.name)]:
            if firing[2] < today.isoformat():
                self._resolve(pipeline.id, exp, firing[2], now, "its day is over")


def install_expectations(
    host: Host, actuator: Actuator, checks: CheckSource | None = None
) -> Expectations | None:
    """Judge the host's expectations on every tick (job ``expectations``), alerting through the
    actuator and reading its checks (or ``checks``); None when none are configured."""
    if not any(p.expectations for p in host.config.pipelines):
        return None
    ctx = actuator.ctx
    days_ago = {c.name: c.run_date_days_ago for c in host.config.checks
                if isinstance(c, SqlCheckConfig)}
    expectations = Expectations(host.config.pipelines, checks or ctx.checks, ctx.notifier,
                                ctx.store.component, host.tracker, days_ago)
    host.add_job("expectations", expectations.tick)
    return expectations

