"""The checks component: keeps results, runs scheduled checks, alerts on their thresholds.

Every result, whatever sent it, is written to the store first (``record``); ``process``
then hands each newly stored row, in the order it was stored, to the observers (the SLIs)
and judges the configured checks' thresholds. ``process`` runs after every in-process
record and on every tick, so a result another process wrote into the same store
(``phasewatch check record --db``) is handled within a tick too.

Scheduled (``kind: sql``) checks run on the ``checks`` job when their cron time (in the
pipeline's timezone) has passed since they last ran: a cron time missed while phasewatch
was down runs once at the next tick. On real time a query runs on a worker thread (a slow
warehouse must not hold ticks or ingest) and its result is recorded at the next tick; on
simulated time (replay, demo, tests) it runs inline.
"""

from __future__ import annotations

import logging
import math
from collections.abc import Callable, Mapping, Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, replace
from datetime import date, datetime, timedelta
from decimal import Decimal
from typing import TYPE_CHECKING, Any
from zoneinfo import ZoneInfo

from alerts.model import Alert, Severity, alert_key
from monitor.checks.config import PushedCheckConfig, SqlCheckConfig
from monitor.checks.errors import CheckRunError
from monitor.checks.result import MAX_ENTITIES, CheckResult
from monitor.checks.runners import Row, Runner, RunnerFactory
from monitor.checks.schedule import next_fire, previous_fire
from monitor.checks.store import CheckState, CheckStore
from monitor.clock import SystemClock
from monitor.fields import condition_holds

if TYPE_CHECKING:
    from monitor.host import Host

log = logging.getLogger(__name__)

CheckConfig = SqlCheckConfig | PushedCheckConfig
Observer = Callable[[CheckResult], None]
RETENTION = timedelta(days=120)  # results older than this are pruned (each check keeps its latest)
PRUNE_EVERY = timedelta(hours=24)
RUN_LOG = 1000  # runs kept for the report
WORKERS = 2
THRESHOLD_KIND = "check"
ERROR_KIND = "check_error"
SHOWN_ENTITIES = 10
# A flapping check whose results stopped while it passed (a check measured only in the morning)
# is settled after a day without a breach: until then its next breach is the same problem.
FLAP_QUIET = timedelta(days=1)


@dataclass(frozen=True)
class Run:
    """One scheduled run of a check: the result it recorded, or the error it met."""

    check: str
    scheduled: datetime
    started: datetime
    result: CheckResult | None = None
    error: CheckRunError | None = None

    def as_dict(self) -> dict[str, Any]:
        out: dict[str, Any] = {"time": self.started.isoformat(), "check": self.check,
                               "scheduled": self.scheduled.isoformat(),
                               "outcome": "recorded" if self.result else "error"}
        if self.result is not None:
            run_date = self.result.run_date
            out.update(value=self.result.value, entities=list(self.result.entities or ()),
                       run_date=run_date.isoformat() if run_date else None)
        if self.error is not None:
            out.update(reason=self.error.reason, detail=self.error.detail)
        return out


def level_of(check: CheckConfig, value: float) -> str:
    """``critical``, ``warning`` or ``ok`` by the check's conditions."""
    if check.critical_when is not None and condition_holds(check.critical_when, value):
        return "critical"
    if check.warn_when is not None and condition_holds(check.warn_when, value):
        return "warning"
    return "ok"


def interpret(check: SqlCheckConfig, rows: Sequence[Row]) -> tuple[float, tuple[str, ...] | None]:
    """(value, missing entities) from a query's rows, as ``returns`` says; CheckRunError if not."""
    if any(len(row) != 1 for row in rows):
        width = max(len(row) for row in rows)
        raise CheckRunError("bad_answer", f"the query returned {width} columns; allowed: one")
    if check.returns == "missing":
        ids = list(dict.fromkeys(str(row[0]) for row in rows if row[0] is not None))
        return float(len(ids)), tuple(ids[:MAX_ENTITIES])
    if len(rows) > 1:
        raise CheckRunError("bad_answer", f"the query returned {len(rows)} rows; allowed: one "
                            "row with one number (returns: value)")
    raw = rows[0][0] if rows else None
    if raw is None:
        if check.empty_value is not None:
            return check.empty_value, None
        raise CheckRunError("bad_answer", "the query returned no value (no row or NULL); set "
                            "empty_value for days without data")
    if isinstance(raw, bool) or not isinstance(raw, int | float | Decimal):
        raise CheckRunError("bad_answer", f"the query returned {type(raw).__name__} {raw!r}; "
                            "allowed: a number")
    value = float(raw)
    if not math.isfinite(value):
        raise CheckRunError("bad_answer", f"the query returned {value}; allowed: a finite number")
    return value, None


def execute(check: SqlCheckConfig, runner: Runner, tz: ZoneInfo, scheduled: datetime,
            now: datetime) -> CheckResult:
    """Run a check's query for the cron time ``scheduled`` (its run date in ``tz``) at ``now``."""
    run_date = scheduled.astimezone(tz).date() - timedelta(days=check.run_date_days_ago)
    rows = runner.query(check.query, {"run_date": run_date, "now": now}, check.timeout_s)
    value, entities = interpret(check, rows)
    return CheckResult(check.name, value, now, entities, run_date, check.pipeline, "runner")


class Checks:
    """Check results, scheduled check runs and threshold alerts of one phasewatch instance."""

    def __init__(self, host: Host, runners: Mapping[str, RunnerFactory], *,
                 background: bool | None = None) -> None:
        self.config = host.config
        self.clock = host.clock
        self.router = host.router
        self.metrics = host.metrics
        self.store = CheckStore(host.store)  # type: ignore[arg-type]
        self.configured: dict[str, CheckConfig] = {c.name: c for c in host.config.checks}
        self.observers: list[Observer] = []
        self.background = isinstance(host.clock, SystemClock) if background is None else background
        self.runners: dict[str, Runner] = {}
        self.not_run: dict[str, str] = {}  # check -> why it is not scheduled here
        for check in host.config.checks:
            if not isinstance(check, SqlCheckConfig):
                continue
            factory = runners.get(check.runner.kind)
            if not check.enabled:
                self.not_run[check.name] = "enabled: false"
            elif factory is None:
                self.not_run[check.name] = f"the {check.runner.kind} runner does not run here"
            else:
                self.runners[check.name] = factory(check.runner)
        if self.not_run:
            log.info("event=checks.not_scheduled checks=%s", self.not_run)
        self._states = self.store.states()
        cursor = self.store.cursor()
        if cursor is None:  # a new store: results from now on
            cursor = self.store.last_id()
            self.store.set_cursor(cursor)
        self._cursor = cursor
        self._pool: ThreadPoolExecutor | None = None
        self._pending: dict[str, tuple[datetime, datetime, Future[CheckResult]]] = {}
        self._pruned_at: datetime | None = None
        self._next: dict[str, datetime] = {}  # check -> its next cron time after the last look
        self.runs: list[Run] = []

    # --- the CheckSource of gates, expectations and watches ----------------------------

    def latest(self, name: str, run_date: date | None = None) -> CheckResult | None:
        """The result of check ``name`` that stands, with its missing entities, or None
        (``CheckStore.latest``; with ``run_date``, the newest about that run date)."""
        return self.store.latest(name, run_date)

    # --- recording ---------------------------------------------------------------------

    def record(self, results: Sequence[CheckResult], now: datetime | None = None) -> tuple[int, int]:
        """Store results (idempotent by name and time), then handle them; (accepted, duplicates)."""
        when = now or self.clock.now()
        counts = self.store.record(results, when)
        self.process(when)
        return counts

    def process(self, now: datetime) -> int:
        """Hand every result stored since the last call to the observers and thresholds."""
        self._settle_flapping(now)
        handled = 0
        while True:
            batch = self.store.after(self._cursor)
            if not batch:
                return handled
            touched: dict[str, None] = {}
            for _, result in batch:
                for observer in self.observers:
                    try:
                        observer(result)
                    except Exception:  # one observer must not stop the others
                        log.exception("event=checks.observer_failed check=%s", result.name)
                if result.name in self.configured:
                    touched[result.name] = None
            # Each check is judged by the result that stands (``CheckStore.latest``): a late
            # result, or one about a run date older than another's, changes no level.
            for name in touched:
                standing = self.store.latest(name)
                if standing is not None:
                    self._judge(self.configured[name], standing, now)
            self._cursor = batch[-1][0]
            self.store.set_cursor(self._cursor)
            handled += len(batch)

    # --- thresholds --------------------------------------------------------------------

    def _judge(self, check: CheckConfig, result: CheckResult, now: datetime) -> None:
        state = self._state(check.name)
        if math.isfinite(result.value):
            self.metrics.check_value.labels(check.name).set(result.value)
        horizon = timedelta(hours=self.config.pipeline_map[check.pipeline].horizon.max_event_age_h)
        if now - result.at > horizon:
            return  # history (an import, a late replay of old results) never pages anyone
        level = level_of(check, result.value)
        key = alert_key(THRESHOLD_KIND, self._labels(check))
        window = timedelta(minutes=check.flap_window_min)
        if level != state.level:
            if level == "ok":
                if state.level in ("warning", "critical"):
                    if state.flapping:  # resolved once its results have passed for the flap window
                        state = replace(state, passed_at=state.passed_at or result.at)
                    else:
                        self.router.resolve(key, now)
                        state = replace(state, resolved_at=result.at)
                    log.info("event=check.passed check=%s value=%g", check.name, result.value)
            else:
                severity: Severity = "critical" if level == "critical" else "warning"
                summary = self._summary(check, result, level)
                # Breached again soon after its alert resolved: flapping. Told once more (the
                # first resolve could not be told from a real recovery), then kept open.
                again = state.resolved_at is not None and state.level in ("ok", None) and (
                    result.at - state.resolved_at <= window) and window > timedelta(0)
                if state.flapping or again:
                    since = (state.passed_at if state.passed_at is not None else state.resolved_at)
                    if since is not None:
                        minutes = (result.at - since).total_seconds() / 60
                        summary += f"; flapping: breached again {minutes:.0f} min after it passed"
                    state = replace(state, flapping=True, passed_at=None)
                self.router.fire(Alert(key, severity, summary, now,
                                       _entities_detail(result), self._alert_labels(check, THRESHOLD_KIND)))
                log.warning("event=check.breached check=%s value=%g level=%s", check.name,
                            result.value, level)
        state = replace(state, level=level, judged_at=result.at)
        if level == "ok" and state.flapping and state.passed_at is not None and (
                result.at - state.passed_at >= window):
            self._flapping_over(check, state, now)
        else:
            self._save(state)

    def _settle_flapping(self, now: datetime) -> None:
        """Resolve each flapping check's alert whose results stopped while it passed, once it
        has gone ``FLAP_QUIET`` without a breach.

        Passing for the flap window is shown by the results themselves (``_judge``): one
        passing result followed by silence is not a check that stopped flapping. A check
        measured every half hour each morning, sitting on its threshold, is one problem
        night after night, not a resolve each morning and a warning the next.
        """
        for name, state in list(self._states.items()):
            check = self.configured.get(name)
            if check is None or not state.flapping or state.passed_at is None:
                continue
            if now - state.passed_at < FLAP_QUIET:  # at least the flap window (at most a day)
                continue
            self._flapping_over(check, state, now)

    def _flapping_over(self, check: CheckConfig, state: CheckState, now: datetime) -> None:
        self.router.resolve(alert_key(THRESHOLD_KIND, self._labels(check)), now)
        self._save(replace(state, flapping=False, passed_at=None, resolved_at=now))
        log.info("event=check.flapping_over check=%s", check.name)

    def _summary(self, check: CheckConfig, result: CheckResult, level: str) -> str:
        condition = check.critical_when if level == "critical" else check.warn_when
        about = f" for {check.pipeline} {result.run_date.isoformat()}" if result.run_date else ""
        text = f"{check.title or check.name} is {result.value:g}{about} ({level} when {condition})"
        if result.entities:
            shown = ", ".join(result.entities[:SHOWN_ENTITIES])
            more = len(result.entities) - SHOWN_ENTITIES
            text += f"; missing {shown}" + (f" (+{more})" if more > 0 else "")
        return text

    @staticmethod
    def _labels(check: CheckConfig) -> dict[str, str]:
        return {"check": check.name, "pipeline": check.pipeline}

    def _alert_labels(self, check: CheckConfig, kind: str) -> dict[str, str]:
        return {"alertname": kind, **self._labels(check)}

    # --- scheduled runs ----------------------------------------------------------------

    def tick(self, now: datetime) -> None:
        """The ``checks`` job: record finished runs, start due ones, handle new results."""
        self._collect(now)
        for name, runner in self.runners.items():
            check = self.configured[name]
            assert isinstance(check, SqlCheckConfig)
            if name in self._pending:
                continue
            scheduled = self._due(check, now)
            if scheduled is not None:
                self._start(check, runner, scheduled, now)
        self.process(now)
        self._prune(now)

    def _due(self, check: SqlCheckConfig, now: datetime) -> datetime | None:
        """The cron time to run for now, or None (a new check starts with the next one)."""
        upcoming = self._next.get(check.name)
        if upcoming is not None and now < upcoming:
            return None  # the common case on a tick: no cron arithmetic
        tz = self.config.pipeline_map[check.pipeline].tz
        fire = previous_fire(check.schedule, tz, now)
        state = self._state(check.name)
        self._next[check.name] = next_fire(check.schedule, tz, now)
        if state.last_scheduled is None:
            self._save(replace(state, last_scheduled=fire))
            return None
        return fire if fire > state.last_scheduled else None

    def _start(self, check: SqlCheckConfig, runner: Runner, scheduled: datetime,
               now: datetime) -> None:
        self._save(replace(self._state(check.name), last_scheduled=scheduled))
        if not self.background:
            self._finish(check, scheduled, now, now,
                         lambda: self.execute(check, runner, scheduled, now))
            return
        if self._pool is None:
            self._pool = ThreadPoolExecutor(WORKERS, thread_name_prefix="phasewatch-check")
        future = self._pool.submit(self.execute, check, runner, scheduled, now)
        self._pending[check.name] = (scheduled, now, future)

    def _collect(self, now: datetime) -> None:
        for name, (scheduled, started, future) in list(self._pending.items()):
            if future.done():
                del self._pending[name]
                check = self.configured[name]
                assert isinstance(check, SqlCheckConfig)
                self._finish(check, scheduled, started, now, future.result)

    def _finish(self, check: SqlCheckConfig, scheduled: datetime, started: datetime,
                now: datetime, outcome: Callable[[], CheckResult]) -> None:
        try:
            result = outcome()
        except CheckRunError as error:
            self._failed(check, Run(check.name, scheduled, started, error=error))
            return
        except Exception as exc:  # a runner's own bug: said once here, alerted like a failure
            log.exception("event=check.run_crashed check=%s", check.name)
            self._failed(check, Run(check.name, scheduled, started,
                                    error=CheckRunError("failed", repr(exc))))
            return
        self._log(Run(check.name, scheduled, started, result=result))
        self.metrics.check_runs.labels(check.name, "recorded").inc()
        state = self._state(check.name)
        if state.error is not None:
            self.router.resolve(alert_key(ERROR_KIND, self._labels(check)), now)
            self._save(replace(state, error=None))
        self.record([result], now)

    def _failed(self, check: SqlCheckConfig, run: Run) -> None:
        assert run.error is not None
        self._log(run)
        self.metrics.check_runs.labels(check.name, run.error.reason).inc()
        log.warning("event=check.run_failed check=%s reason=%s detail=%r", check.name,
                    run.error.reason, run.error.detail[:500])
        state = self._state(check.name)
        if state.error is None:
            summary = f"check {check.name} could not run ({run.error.reason}): {run.error.detail}"
            self.router.fire(Alert(alert_key(ERROR_KIND, self._labels(check)), "warning",
                                   summary[:1000], run.started, run.error.detail,
                                   self._alert_labels(check, ERROR_KIND)))
        self._save(replace(state, error=f"{run.error.reason}: {run.error.detail}"[:2000]))

    def execute(self, check: SqlCheckConfig, runner: Runner, scheduled: datetime,
                now: datetime) -> CheckResult:
        """Run ``check``'s query for the cron time ``scheduled``; raises CheckRunError."""
        return execute(check, runner, self.config.pipeline_map[check.pipeline].tz, scheduled, now)

    def run_now(self, name: str, now: datetime | None = None, *, record: bool = True) -> Run:
        """Run a configured check at once (``phasewatch check run``), recording its result."""
        check = self.configured[name]
        if not isinstance(check, SqlCheckConfig):
            raise KeyError(f"check {name!r} is pushed, not run by phasewatch")
        runner = self.runners.get(name)
        if runner is None:
            raise KeyError(f"check {name!r} does not run here: {self.not_run.get(name)}")
        when = now or self.clock.now()
        try:
            result = self.execute(check, runner, when, when)
        except CheckRunError as error:
            return Run(name, when, when, error=error)
        if record:
            self.record([result], when)
        return Run(name, when, when, result=result)

    # --- state, report, shutdown ---------------------------------------------------------

    def _state(self, name: str) -> CheckState:
        return self._states.get(name) or CheckState(name)

    def _save(self, state: CheckState) -> None:
        self._states[state.name] = state
        self.store.save_state(state)

    def _log(self, run: Run) -> None:
        self.runs.append(run)
        if len(self.runs) > RUN_LOG:
            del self.runs[: len(self.runs) - RUN_LOG]

    def _prune(self, now: datetime) -> None:
        if self._pruned_at is not None and now - self._pruned_at < PRUNE_EVERY:
            return
        self._pruned_at = now
        self.store.prune(now - RETENTION)

    def levels(self) -> dict[str, str | None]:
        """Each configured check's alert level (None: never judged)."""
        return {name: self._state(name).level for name in self.configured}

    def report(self) -> list[dict[str, Any]]:
        """The ``checks`` report list: every scheduled run, in time order."""
        return [run.as_dict() for run in self.runs]

    def close(self) -> None:
        pool, self._pool = self._pool, None
        if pool is not None:
            pool.shutdown(wait=True, cancel_futures=True)
        for runner in self.runners.values():
            try:
                runner.close()
            except Exception:
                log.warning("event=check_runner.close_failed", exc_info=True)


def _entities_detail(result: CheckResult) -> str:
    if not result.entities:
        return ""
    return "missing: " + ", ".join(result.entities[:200])


def install_checks(host: Host, runners: Mapping[str, RunnerFactory]) -> Checks:
    """Build the checks component on ``host``: the ``checks`` job and report list."""
    checks = Checks(host, runners)
    host.add_job("checks", checks.tick)
    host.add_report_section("checks", checks.report)
    return checks
