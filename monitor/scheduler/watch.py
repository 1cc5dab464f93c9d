"""Scheduler outcomes: a failed attempt or a job that did not fire raises one alert per job.

Attempts arrive as Cloud Scheduler log entries (through the Pub/Sub push endpoint, from a
log sink), as ``POST /v1/scheduler-outcomes`` or as replay ``scheduler`` lines. Each is
stored once. For a configured job, the latest attempt decides:

- a failed attempt (not 2xx, or a status code such as ``NOT_FOUND`` or
  ``DEADLINE_EXCEEDED``) fires ``scheduler_attempt_failed`` for the job at once, naming the
  job, the URL and the status; the job's next successful attempt resolves it;
- a scheduled time (the job's cron in its time zone) with no attempt by ``grace_min`` later
  fires ``scheduler_job_missed`` (judged on the ``scheduler-outcomes`` job, every minute);
  the next attempt of the job, whatever its outcome, resolves it.

A person may pause a job (Cloud Scheduler's audit log): its fires are not missed then, and
its open alerts are over. But a scheduled time passing while it is paused, on a day its
``expected_when`` checks say has work (games today), fires ``scheduler_job_left_paused``:
one warning naming who paused it and since when, resolved by the resume (which then needs
no notice of its own), by a fire after that time (the resume went unheard) or by its work
done another way. While it is paused, the pages it may cause (``EXPLAINS``) name it, and
the daily summary lists it under what people hold.

Either is over too when the work the job starts (its processor, else its phase) finishes,
in any run, after the scheduled time the failure or the missed fire was for: another path
(a push subscription, phasewatch's own trigger, a person) did the day's work, so nothing is
left at risk until the job's next time. The resolve says so ("its work was done another
way"); the next failure is told again. A failed attempt (a retry) for a scheduled time
whose work is done already is stored and opens nothing.

Every process stores the attempts it receives (a push reaches any instance); the process
that leads those sharing the store alerts, from the stored states on its ``tick`` for the
attempts another process took. Attempts of jobs that are not configured are stored,
counted and listed, never alerted:
a log sink sees every job of the project, phasewatch's own ones included. An attempt older
than its pipeline's ``horizon.max_event_age_h`` (a backlog delivered late) updates the
state but never opens an alert; an attempt older than the job's latest changes nothing.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, replace
from datetime import UTC, date, datetime, timedelta
from typing import TYPE_CHECKING, Any, cast

from prometheus_client import CollectorRegistry, Counter

from alerts.blockkit import duration_text
from alerts.daily import HealthSnapshot, HeldItem
from alerts.model import Alert, alert_key
from alerts.router import Router
from monitor.clock import Clock
from monitor.config import Config
from monitor.errors import EventError, Problem
from monitor.fields import condition_holds
from monitor.scheduler.attempt import Attempt
from monitor.scheduler.config import SchedulerJobConfig
from monitor.scheduler.logentry import (
    PauseChange,
    ScheduleChange,
    audit_change,
    parse_entry,
    scheduler_entry,
)
from monitor.scheduler.store import JobState, SchedulerStore
from monitor.store.base import ComponentStore
from monitor.tracker import DONE, RunState
from monitor.validation import render_value

if TYPE_CHECKING:
    from monitor.host import Host

log = logging.getLogger(__name__)

FAILED, MISSED = "scheduler_attempt_failed", "scheduler_job_missed"
LEFT_PAUSED = "scheduler_job_left_paused"  # paused while its work is due
CHANGED = "scheduler_job_changed"  # Cloud Scheduler's job differs from the config's
_UTC_NAMES = frozenset({"UTC", "Etc/UTC", "GMT", "Etc/GMT", "UCT", "Etc/UCT", "Universal",
                        "Etc/Universal", "Zulu", "Etc/Zulu"})
# The alerts that a phase did not run or its data is missing: a paused job starting the
# phase is named in their details (``explain``).
EXPLAINS = frozenset({"phase_overdue", "expectation"})
PAUSED, RESUMED = "scheduler_job_paused", "scheduler_job_resumed"  # notices: a person did it
EARLY = timedelta(minutes=2)  # an attempt this much before a scheduled time still counts for it
_HOUR = timedelta(hours=1)
CHECK_EVERY_S = 60.0
UNKNOWN_LABEL = "_unknown"  # the metric's job label for jobs not configured (bounded cardinality)
Action = tuple[str, SchedulerJobConfig, Attempt, JobState]  # (fired | ok | failed, ...)


@dataclass(frozen=True)
class Recorded:
    """What a batch of attempts did: ``accepted`` new ones, ``duplicates`` already stored,
    ``unknown`` of jobs not configured."""

    accepted: int
    duplicates: int
    unknown: list[str]

    def as_dict(self) -> dict[str, Any]:
        return {"accepted": self.accepted, "duplicates": self.duplicates,
                "unknown_jobs": self.unknown}


class SchedulerWatch:
    """Stores scheduler attempts and keeps one alert per job for failures and missed fires."""

    def __init__(self, config: Config, clock: Clock, db: ComponentStore, router: Router,
                 registry: CollectorRegistry | None = None,
                 acting: Callable[[], bool] = lambda: True,
                 runs: Callable[[str], Iterable[RunState]] = lambda pipeline: (),
                 check_value: Callable[[str, date], float | None] = lambda name, day: None,
                 ) -> None:
        self.config = config
        self.runs = runs  # a pipeline's tracked runs: has a job's work been done another way?
        self.check_value = check_value  # a check's latest value about a run date (expected_when)
        self.configured = config.scheduler.job_map
        # Each job as Cloud Scheduler fires it: the config's, with the schedule and time zone
        # a person changed in Cloud Scheduler while they differ from the config's (``reschedule``).
        self.jobs = dict(self.configured)
        self.clock = clock
        self.router = router
        self.acting = acting  # whether this process alerts (it leads those sharing the store)
        self.store = SchedulerStore(db)
        self.started_at = clock.now()
        self._lock = threading.Lock()
        self._logged_unknown: set[str] = set()
        self._judge_at: dict[str, datetime] = {}  # job -> when its next scheduled time is judged
        # job -> the latest scheduled time whose work was found done another way, and how
        self._done_for: dict[str, tuple[datetime, tuple[datetime, RunState]]] = {}
        # job -> the scheduled time it missed while paused, whose checks did not (yet) say
        # there was work: read again at each tick until its next time is judged (a check
        # result may arrive after the grace)
        self._unsettled: dict[str, datetime] = {}
        states = self.store.states()
        new = [JobState(name, self.started_at) for name in self.jobs if name not in states]
        # A schedule Cloud Scheduler has that the config now says too (it was made to agree):
        # no longer a difference (the open alert resolves at the first tick).
        self._agreed: dict[str, str] = {}  # job -> why it agrees again, for the resolve
        for name, state in states.items():
            job = self.configured.get(name)
            if job is not None and state.cloud_cron is not None and self._agrees(
                    job, state.cloud_cron, state.cloud_timezone or self._zone_name(job)):
                new.append(replace(state, cloud_cron=None, cloud_timezone=None))
                self._agreed[name] = "the config now says the same"
        self.store.save(new)
        states.update({s.job: s for s in new})
        self.states = {name: states[name] for name in self.jobs}
        for name in self.jobs:
            self.jobs[name] = self._effective(name)
        self.attempts = Counter(
            "phasewatch_scheduler_attempts", "Scheduler job attempts received, by job (configured "
            "names; _unknown for the others) and outcome (ok, failed, started).",
            ["job", "outcome"], registry=registry,
        )

    # --- attempts ---------------------------------------------------------------------

    def check_known(self, attempts: Sequence[Attempt], prefix: str = "") -> None:
        """Raise EventError (422) naming each attempt of a job that is not configured."""
        allowed = ", ".join(sorted(self.jobs)) or "none configured (scheduler.jobs)"
        problems = [
            Problem(f"{prefix}[{i}].job" if prefix else "job",
                    f"unknown scheduler job; allowed: {allowed}", render_value(a.job))
            for i, a in enumerate(attempts) if a.job not in self.jobs
        ]
        if problems:
            raise EventError("unknown_name", problems)

    def record(self, attempts: Sequence[Attempt]) -> Recorded:
        """Store a batch of attempts (all or nothing), then fire or resolve their jobs' alerts."""
        now = self.clock.now()
        actions: list[Action] = []
        with self._lock:
            def fold(inserted: Sequence[bool], current: dict[str, JobState]) -> list[JobState]:
                self.states.update(current)
                states, found = self._fold(attempts, inserted)
                actions.extend(found)
                return states

            inserted, states = self.store.add(attempts, set(self.jobs), now, fold)
            self.states.update({s.job: s for s in states})
        for what, job, attempt, state in actions if self.acting() else ():
            if what == "fired":
                self.router.resolve(self._key(MISSED, job), attempt.at)
            elif what == "ok":
                self.router.resolve(self._key(FAILED, job), attempt.at)
                log.info("event=scheduler.recovered job=%s at=%s", job.name, attempt.at.isoformat())
            elif self._fresh(job, attempt, now) and self._done(job, attempt.at) is None:
                self._fire_failed(job, attempt, state)
        return self._count(attempts, inserted)

    def _count(self, attempts: Sequence[Attempt], inserted: Sequence[bool]) -> Recorded:
        unknown = sorted({a.job for a, new in zip(attempts, inserted, strict=True)
                          if new and a.job not in self.jobs})
        for a, new in zip(attempts, inserted, strict=True):
            if new:
                ok = self.ok(self.jobs.get(a.job), a)
                outcome = "started" if ok is None else ("ok" if ok else "failed")
                self.attempts.labels(a.job if a.job in self.jobs else UNKNOWN_LABEL, outcome).inc()
        for job in unknown:
            if job not in self._logged_unknown:
                self._logged_unknown.add(job)
                log.info("event=scheduler.unknown_job job=%s (accepted; not in scheduler.jobs)", job)
        duplicates = list(inserted).count(False)
        return Recorded(len(attempts) - duplicates, duplicates, unknown)

    def _fold(self, attempts: Sequence[Attempt],
              inserted: Sequence[bool]) -> tuple[list[JobState], list[Action]]:
        """The new states of the jobs these attempts changed, and the alerts to fire or
        resolve once they are stored (in the storing transaction: all or nothing)."""
        changed: dict[str, JobState] = {}
        actions: list[Action] = []
        for a, new in sorted(zip(attempts, inserted, strict=True), key=lambda p: p[0].at):
            job = self.jobs.get(a.job)
            if not new or job is None:
                continue
            before = changed.get(a.job) or self.states[a.job]
            if before.last_at is not None and a.at < before.last_at:
                continue  # an older attempt delivered late: the latest one decides
            after = replace(before, last_at=a.at)
            if before.missed_at is not None and a.at >= before.missed_at - EARLY:
                after = replace(after, missed_at=None)
                actions.append(("fired", job, a, after))
            ok = self.ok(job, a)
            if ok is True:
                after = replace(after, last_ok_at=a.at, failing_since=None, failing_status=None)
                if before.failing_since is not None:
                    actions.append(("ok", job, a, after))
            elif ok is False:
                after = replace(after, failing_since=before.failing_since or a.at,
                                failing_status=a.status_text())
                actions.append(("failed", job, a, after))
            changed[a.job] = after
        return list(changed.values()), actions

    def ok(self, job: SchedulerJobConfig | None, attempt: Attempt) -> bool | None:
        """Whether the attempt succeeded (None: only started). An HTTP status that the job's
        phase declares "already running" for the same URL (a trigger's
        ``already_running_status``) is a success: the job found the phase started by another
        path (phasewatch's trigger, a manual run), which is the target's idempotency working."""
        if attempt.ok is not False or job is None or job.phase is None or attempt.http_status is None:
            return attempt.ok
        pipeline = self.config.pipeline_map.get(job.pipeline)
        phase = pipeline.phase_map.get(job.phase) if pipeline is not None else None
        url = (attempt.url or (str(job.url) if job.url else "")).rstrip("/")
        for trigger in phase.triggers if phase is not None else ():
            target = getattr(trigger, "url", None)
            if (target is not None and str(target).rstrip("/") == url
                    and attempt.http_status in getattr(trigger, "already_running_status", ())):
                return True
        return False

    # --- periodic ---------------------------------------------------------------------

    def tick(self, now: datetime) -> None:
        """The ``scheduler-outcomes`` job: a scheduled time with no attempt within its grace.

        Each job is judged once per scheduled time, at the first tick past its grace (the
        cron is read then, not on every tick).
        """
        with self._lock:
            # The stored states: attempts may have reached another process sharing the store.
            self.states.update({k: v for k, v in self.store.states().items() if k in self.jobs})
            for name in self.jobs:  # another process sharing the store may have heard a change
                job = self._effective(name)
                if job is not self.jobs[name] and (job.cron, job.timezone) != (
                        self.jobs[name].cron, self.jobs[name].timezone):
                    self.jobs[name] = job
                    self._judge_at.pop(name, None)
            for job in self.jobs.values():
                if now >= self._judge_at.get(job.name, now):
                    grace = timedelta(minutes=job.grace_min)
                    due = job.last_due(now - grace, self._tz(job))
                    moved = _clock_change(due)
                    if moved and now < due + grace + moved:
                        # The clocks change within an hour of it: Cloud Scheduler (wall-clock
                        # time) may fire it up to that change off; judged once that has passed.
                        self._judge_at[job.name] = due + grace + moved
                        continue
                    self._judge_at[job.name] = job.next_due(due, self._tz(job)) + grace
                    self._judge(job, due, grace, now, early=EARLY + moved)
            self._settle(now)
            self._reconcile(now)

    def _reconcile(self, now: datetime) -> None:
        """The alerts the stored states call for: an attempt another process took (it
        stores, only the leading process alerts), or a stop between a commit and its alert."""
        active = {a.key: a for a in self.router.active()}
        for job in self.jobs.values():
            state = self.states[job.name]
            changed = active.get(self._key(CHANGED, job))
            if state.differs and changed is None:
                self._fire_changed(job.name, now)
            elif not state.differs and changed is not None:
                self._resolve_changed(changed, job.name, now)
            failed = self._key(FAILED, job)
            done = (self._done(job, state.last_at)
                    if state.failing_since is not None and state.last_at is not None else None)
            if state.failing_since is None and failed in active:
                self.router.resolve(failed, state.last_ok_at or now)
            elif done is not None:
                if failed in active:
                    self._resolve_done(active[failed], done, now)
            elif (state.failing_since is not None and failed not in active
                    and state.last_at is not None):
                last = self.store.recent(1, job.name)
                if last and last[0]["ok"] is False:
                    attempt = Attempt(last[0]["id"], job.name, state.last_at, "finished",
                                      last[0]["http_status"], last[0]["code"], last[0]["url"],
                                      detail=last[0]["detail"])
                    if self._fresh(job, attempt, now):
                        self._fire_failed(job, attempt, state)
            left = active.get(self._key(LEFT_PAUSED, job))
            if left is not None and state.paused_since is None:  # resumed (maybe elsewhere)
                self.router.resolve(left.key, state.resumed_at or now)
            missed = self._key(MISSED, job)
            if state.missed_at is None and missed in active:
                self.router.resolve(missed, state.last_at or now)
            elif state.missed_at is not None and missed in active:
                done = self._done(job, state.missed_at)
                if done is not None:
                    self._resolve_done(active[missed], done, now)
            if left is not None and state.paused_since is not None:
                due = datetime.fromisoformat(left.labels["due"])
                done = self._done(job, due)
                if done is not None:
                    self._resolve_done(left, done, now)
                elif state.last_at is not None and state.last_at >= due:  # its resume unheard
                    self.router.resolve(left.key, state.last_at, (
                        f"{left.summary}; it fired at {state.last_at.astimezone(UTC):%H:%M} "
                        "UTC")[:1024])

    def _judge(self, job: SchedulerJobConfig, due: datetime, grace: timedelta,
               now: datetime, early: timedelta = EARLY) -> None:
        state = self.states[job.name]
        # Before it was watched, or while this process was down: not judged (a backlog of
        # attempts may still be on its way).
        if due < max(state.watch_since, self.started_at - grace, state.changed_at or state.watch_since):
            return  # (nor a time before the job was rescheduled: judged by the new schedule)
        self._unsettled.pop(job.name, None)  # a later time is judged: the earlier one is over
        if state.last_at is not None and state.last_at >= due - early:
            return  # it fired (paused or not: a resume may have gone unheard)
        if state.paused_at(due):  # not firing is what a person asked for, unless work is due
            self._judge_paused(job, due, state, now)
            return
        if state.resumed_at is not None and due < state.resumed_at:
            return  # it was paused then
        if state.missed_at == due:
            return
        state = replace(state, missed_at=due)
        self.store.save([state])
        self.states[job.name] = state
        if self._done(job, due) is None:  # else its work was done another way in the grace
            self._fire_missed(job, due, now)

    def _judge_paused(self, job: SchedulerJobConfig, due: datetime, state: JobState,
                      now: datetime) -> None:
        """A paused job's time ``due`` passed: left paused when its checks say there was
        work and it was not done another way; unsettled while they do not say so."""
        if self._done(job, due) is not None:
            return
        why = self._work_due(job, due)
        if why is not None:
            self._fire_left_paused(job, due, state, why, now)
        elif job.expected_when:
            self._unsettled[job.name] = due

    def _settle(self, now: datetime) -> None:
        """Judge again the paused times whose checks had no value that said there was work:
        a result that arrives late (after the grace) is read for the time it is about."""
        for name, due in list(self._unsettled.items()):
            del self._unsettled[name]
            state = self.states[name]
            if state.paused_at(due) and (state.last_at is None or state.last_at < due - EARLY):
                # Still paused, never fired: unsettled again while no check says there was work.
                self._judge_paused(self.jobs[name], due, state, now)

    def _work_due(self, job: SchedulerJobConfig, due: datetime) -> str | None:
        """Why the fire at ``due`` had work to do: every ``expected_when`` check's latest
        value about its run date meets its condition ("games_today = 9 for 2026-02-19");
        None when the job has no conditions or one does not hold (or has no value)."""
        if not job.expected_when:
            return None
        run_date = due.astimezone(job.zone or self._tz(job)).date() - timedelta(
            days=job.run_date_days_ago)
        shown = []
        for name, condition in job.expected_when.items():
            value = self.check_value(name, run_date)
            if value is None or not condition_holds(condition, value):
                return None
            shown.append(f"{name} = {value:g}")
        return f"{', '.join(shown)} for {run_date.isoformat()}"

    # --- the work done another way -----------------------------------------------------

    def _done(self, job: SchedulerJobConfig, at: datetime) -> tuple[datetime, RunState] | None:
        """When and in which run the work ``job`` starts (its processor, else its phase)
        finished after the scheduled time that ``at`` (an attempt or a due time) is for:
        None when it has not, or the job names no phase."""
        if job.phase is None:
            return None
        due = job.last_due(at + EARLY, self._tz(job))
        known = self._done_for.get(job.name)
        if known is not None and known[0] == due:  # done once: a re-run of it later changes nothing
            return known[1]
        since = due - EARLY
        for run in self.runs(job.pipeline):
            phase = run.phases.get(job.phase)
            if phase is None:
                continue
            if job.processor is not None:
                proc = phase.processors.get(job.processor)
                finished = proc.status_at if proc is not None and proc.status in DONE else None
            else:
                finished = phase.completion_time()
            if finished is not None and finished >= since:
                self._done_for[job.name] = due, (finished, run)
                return finished, run
        return None

    def _resolve_done(self, alert: Alert, done: tuple[datetime, RunState], now: datetime) -> None:
        finished, run = done
        job = self.jobs[alert.labels["job"]]
        what = job.processor or job.phase
        self.router.resolve(alert.key, min(max(finished, alert.at), now), (
            f"{alert.summary}; its work was done another way: {what} of {run.pipeline} "
            f"{run.run_date} ({run.mode}) finished {finished.astimezone(UTC):%H:%M} UTC. The job "
            f"itself is not fixed until an attempt succeeds")[:1024])
        log.info("event=scheduler.done_another_way job=%s run=%s", job.name, run.key)

    # --- alerts -----------------------------------------------------------------------

    def _labels(self, job: SchedulerJobConfig) -> dict[str, str]:
        labels = {"pipeline": job.pipeline, "job": job.name}
        if job.phase:
            labels["phase"] = job.phase
        if job.processor:
            labels["processor"] = job.processor
        return labels

    def _key(self, kind: str, job: SchedulerJobConfig) -> str:
        return alert_key(kind, {"pipeline": job.pipeline, "job": job.name})

    def _starts(self, job: SchedulerJobConfig) -> str:
        what = job.processor or job.phase
        return f" (starts {what} of {job.pipeline})" if what else f" ({job.pipeline})"

    def _fire_failed(self, job: SchedulerJobConfig, attempt: Attempt, state: JobState) -> None:
        url = attempt.url or (str(job.url) if job.url else "its target")
        summary = (f"scheduler job {job.name} failed: {attempt.status_text()} from {url}"
                   f"{self._starts(job)}")
        details = (f"attempt at {attempt.at.isoformat()}; failing since "
                   f"{(state.failing_since or attempt.at).isoformat()}"
                   + (f"; {attempt.detail}" if attempt.detail else ""))
        labels = {**self._labels(job), "url": url, "status": attempt.status_text()}
        self.router.fire(Alert(self._key(FAILED, job), job.severity, summary, attempt.at, details,
                               {"alertname": FAILED, **labels}))
        log.warning("event=scheduler.attempt_failed job=%s url=%s status=%r", job.name, url,
                    attempt.status_text())

    def _fire_missed(self, job: SchedulerJobConfig, due: datetime, now: datetime) -> None:
        tz = job.timezone or self.config.pipeline_map[job.pipeline].timezone
        url = str(job.url) if job.url else "its target"
        summary = (f"scheduler job {job.name} did not fire: due {due.strftime('%Y-%m-%d %H:%M')} "
                   f"{tz} ({job.cron}), no attempt within {job.grace_min:g} min{self._starts(job)}")
        details = f"calls {url}"
        state = self.states[job.name]
        if state.deleted_at is not None:
            details += (f"; deleted from Cloud Scheduler by {state.changed_by or 'someone'} at "
                        f"{state.deleted_at.astimezone(UTC):%Y-%m-%d %H:%M} UTC")
        self.router.fire(Alert(self._key(MISSED, job), job.missed_severity, summary, now,
                               details, {"alertname": MISSED, **self._labels(job)}))
        log.warning("event=scheduler.missed job=%s due=%s", job.name, due.isoformat())

    def _fire_left_paused(self, job: SchedulerJobConfig, due: datetime, state: JobState,
                          why: str, now: datetime) -> None:
        """A paused job's scheduled time passed on a day with work: one alert per pause (the
        same key while it stays paused; the router reminds of it)."""
        key = self._key(LEFT_PAUSED, job)
        if any(a.key == key for a in self.router.active()):
            return
        tz = job.timezone or self.config.pipeline_map[job.pipeline].timezone
        since = state.paused_since or due
        summary = (f"scheduler job {job.name} is still paused (by {state.paused_by or 'someone'} "
                   f"since {since.astimezone(UTC):%Y-%m-%d %H:%M} UTC) and its work is due: "
                   f"{why}; it did not fire at {due.strftime('%Y-%m-%d %H:%M')} {tz}"
                   f"{self._starts(job)}")
        self.router.fire(Alert(key, job.missed_severity, summary[:1024], now,
                               "resume it: gcloud scheduler jobs resume " + job.name,
                               {"alertname": LEFT_PAUSED, **self._labels(job),
                                "due": due.isoformat()}))
        log.warning("event=scheduler.left_paused job=%s due=%s", job.name, due.isoformat())

    def explain(self, kind: str, labels: Mapping[str, str]) -> list[str]:
        """For an alert that a phase did not run or its data is missing (``EXPLAINS``): the
        jobs of its pipeline that start its phase (any phase when it names none) and that a
        person has paused, one line each: the 3 a.m. reader sees the cause in the page."""
        if kind not in EXPLAINS:
            return []
        pipeline, phase = labels.get("pipeline"), labels.get("phase")
        lines = []
        for job in self.jobs.values():
            state = self.states[job.name]
            if job.pipeline != pipeline or (phase is not None and job.phase != phase):
                continue
            if state.paused_since is not None:
                lines.append(f"scheduler job {job.name}{self._starts(job)} is paused, by "
                             f"{state.paused_by or 'someone'} since "
                             f"{state.paused_since.astimezone(UTC):%Y-%m-%d %H:%M} UTC")
            if state.deleted_at is not None:
                lines.append(f"scheduler job {job.name}{self._starts(job)} was deleted from "
                             f"Cloud Scheduler, by {state.changed_by or 'someone'} at "
                             f"{state.deleted_at.astimezone(UTC):%Y-%m-%d %H:%M} UTC")
        return lines

    def _tz(self, job: SchedulerJobConfig) -> Any:
        return self.config.pipeline_map[job.pipeline].tz

    def _fresh(self, job: SchedulerJobConfig, attempt: Attempt, now: datetime) -> bool:
        limit = self.config.pipeline_map[job.pipeline].horizon.max_event_age_h
        return now - attempt.at <= timedelta(hours=limit)

    # --- the surfaces -----------------------------------------------------------------

    def handle_push(self, data: bytes) -> str | None:
        """A Pub/Sub push message's data: a Cloud Scheduler log entry is taken here (its
        outcome: stored or duplicate; ``ignored`` for an audit entry of another change to a
        job); anything else is left to the event path (None)."""
        entry = scheduler_entry(data)
        if entry is None:
            return None
        if "protoPayload" in entry:  # Admin Activity: a person changed a job
            change = audit_change(entry)
            if change is None:
                return "ignored"
            return self.pause(change) if isinstance(change, PauseChange) else self.reschedule(change)
        recorded = self.record([parse_entry(entry)])
        return "stored" if recorded.accepted else "duplicate"

    # --- a person pausing a job -----------------------------------------------------------

    def pause(self, change: PauseChange) -> str:
        """A person paused or resumed a job (Cloud Scheduler's audit log): while it is paused
        no fire of it is missed, and its open alerts are over (a person took it in hand);
        each pause and resume is one notice. ``stored``, or ``duplicate`` when it changes
        nothing (redelivered, older than the job's latest pause or resume), ``ignored`` for
        a job that is not configured."""
        job = self.jobs.get(change.job)
        if job is None:
            log.info("event=scheduler.unknown_job_paused job=%s paused=%s", change.job, change.paused)
            return "ignored"
        now = self.clock.now()

        def apply(state: JobState) -> JobState | None:
            latest = max((t for t in (state.paused_since, state.resumed_at) if t is not None),
                         default=None)
            if (latest is not None and change.at <= latest) or (
                    change.paused == (state.paused_since is not None)):
                return None
            if change.paused:
                return replace(state, paused_since=change.at, paused_by=change.by, missed_at=None,
                               failing_since=None, failing_status=None)
            return replace(state, paused_since=None, paused_by=None, resumed_at=change.at)

        with self._lock:
            before, after = self.store.change(self.states[job.name], apply)
            if after is None:
                return "duplicate"
            self.states[job.name] = after
        if self.acting():
            self._tell_pause(job, change, before, now)
        return "stored"

    def _tell_pause(self, job: SchedulerJobConfig, change: PauseChange, before: JobState,
                    now: datetime) -> None:
        who = change.by or "someone"
        active = {a.key: a for a in self.router.active()}
        if change.paused:
            for kind in (FAILED, MISSED):
                alert = active.get(self._key(kind, job))
                if alert is not None:  # a person took the job in hand
                    self.router.resolve(alert.key, now, f"{alert.summary}; {who} paused the job"[:1024])
            self.notice(PAUSED, job, now, (
                f"scheduler job {job.name} paused by {who} at {change.at:%Y-%m-%d %H:%M} UTC"
                f"{self._starts(job)}: no fire is judged missed until it is resumed"))
            log.info("event=scheduler.paused job=%s by=%s", job.name, who)
            return
        left = active.get(self._key(LEFT_PAUSED, job))
        if left is not None:  # the resolve says it: no notice beside it
            self.router.resolve(left.key, now, f"{left.summary}; {who} resumed the job"[:1024])
        else:
            since = before.paused_since
            held = f" after {duration_text((change.at - since).total_seconds())}" if since else ""
            self.notice(RESUMED, job, now, (
                f"scheduler job {job.name} resumed by {who}{held}{self._starts(job)}: its "
                f"fires are judged again"))
        log.info("event=scheduler.resumed job=%s by=%s", job.name, who)

    # --- a person rescheduling or deleting a job ------------------------------------------

    def reschedule(self, change: ScheduleChange) -> str:
        """A person (or a deploy) changed when a job fires, deleted it or created it again
        (Cloud Scheduler's audit log). While Cloud Scheduler's job differs from the config's,
        its fires are judged by Cloud Scheduler's schedule (no time before the change), and
        one ``scheduler_job_changed`` warning says how they differ; it resolves when they
        agree again. ``stored``, ``duplicate`` (redelivered, or older than the job's latest
        change), ``ignored`` for a job that is not configured."""
        job = self.configured.get(change.job)
        if job is None:
            log.info("event=scheduler.unknown_job_changed job=%s", change.job)
            return "ignored"
        now = self.clock.now()

        def apply(state: JobState) -> JobState | None:
            if state.changed_at is not None and change.at <= state.changed_at:
                return None
            if change.deleted or change.created:  # a job deleted or new is not paused
                state = replace(state, paused_since=None, paused_by=None)
            if change.deleted:
                return replace(state, deleted_at=change.at, changed_at=change.at,
                               changed_by=change.by)
            cron = change.cron or state.cloud_cron or job.cron
            zone = change.timezone or state.cloud_timezone or self._zone_name(job)
            agrees = self._agrees(job, cron, zone)
            return replace(state, cloud_cron=None if agrees else cron,
                           cloud_timezone=None if agrees else zone, deleted_at=None,
                           changed_at=change.at, changed_by=change.by)

        with self._lock:
            before, after = self.store.change(self.states[job.name], apply)
            if after is None:
                return "duplicate"
            self.states[job.name] = after
            self.jobs[job.name] = self._effective(job.name)
            self._judge_at.pop(job.name, None)  # its next time, by the schedule it has now
            if not after.differs:
                who = change.by or "someone"
                self._agreed[job.name] = (f"{who} created it again" if before.deleted_at
                                          else f"{who} changed it back")
        log.info("event=scheduler.changed job=%s deleted=%s cron=%r timezone=%r by=%s",
                 job.name, change.deleted, after.cloud_cron, after.cloud_timezone, change.by)
        if self.acting():
            active = {a.key: a for a in self.router.active()}
            alert = active.get(self._key(CHANGED, job))
            if after.differs and (alert is None or _difference(after) != _difference(before)):
                # A further difference while one is told is news (told now, as a reminder);
                # the same one again (a deploy writing the job as it is) tells nothing.
                self._fire_changed(job.name, now, news=alert is not None)
            elif not after.differs and alert is not None:
                self._resolve_changed(alert, job.name, now)
        return "stored"

    def _fire_changed(self, name: str, now: datetime, *, news: bool = False) -> None:
        job, configured, state = self.jobs[name], self.configured[name], self.states[name]
        who, when = state.changed_by or "someone", state.changed_at or now
        said = f"'{configured.cron}' ({self._zone_name(configured)})"
        if state.deleted_at is not None:  # its next time by the schedule it had
            due = job.next_due(now, self._tz(job))
            summary = (f"scheduler job {name}{self._starts(job)} was deleted from Cloud Scheduler "
                       f"by {who} at {when.astimezone(UTC):%Y-%m-%d %H:%M} UTC: it will not fire "
                       f"at {due:%Y-%m-%d %H:%M} {self._zone_name(job)} nor after")
            details = (f"create it again (the config says {said}), or take it out of "
                       "scheduler.jobs")
        else:
            due = job.next_due(now, self._tz(job))
            summary = (f"scheduler job {name}{self._starts(job)} was rescheduled in Cloud "
                       f"Scheduler by {who} at {when.astimezone(UTC):%Y-%m-%d %H:%M} UTC to "
                       f"'{job.cron}' ({self._zone_name(job)}); the config says {said}. Its fires "
                       f"are judged by Cloud Scheduler's schedule, next at "
                       f"{due:%Y-%m-%d %H:%M} {self._zone_name(job)}")
            details = (f"make them agree: the config's scheduler.jobs {name} cron and timezone, or "
                       f"the job: gcloud scheduler jobs update http {name} --schedule="
                       f"'{configured.cron}' --time-zone='{self._zone_name(configured)}'")
        self.router.fire(Alert(self._key(CHANGED, job), "warning", summary[:1024], now, details,
                               {"alertname": CHANGED, **self._labels(job)}), news=news)
        log.warning("event=scheduler.job_differs job=%s deleted=%s", name, state.deleted_at is not None)

    def _resolve_changed(self, alert: Alert, name: str, now: datetime) -> None:
        why = self._agreed.pop(name, None) or (
            f"{self.states[name].changed_by or 'someone'} changed it back")
        self.router.resolve(alert.key, now, f"{alert.summary}; {why}"[:1024])

    def _effective(self, name: str, state: JobState | None = None) -> SchedulerJobConfig:
        """The job as Cloud Scheduler fires it by ``state`` (default: the one held), the
        config's while they agree."""
        job, state = self.configured[name], state or self.states[name]
        if state.cloud_cron is None and state.cloud_timezone is None:
            return job
        return SchedulerJobConfig.model_validate({
            **job.model_dump(mode="json"), "cron": state.cloud_cron or job.cron,
            "timezone": state.cloud_timezone or self._zone_name(job)})

    def _zone_name(self, job: SchedulerJobConfig) -> str:
        return job.timezone or self.config.pipeline_map[job.pipeline].timezone

    def _agrees(self, job: SchedulerJobConfig, cron: str, zone: str) -> bool:
        """Whether Cloud Scheduler's ``cron`` in ``zone`` is the config's schedule."""
        mine = self._zone_name(job)
        return cron.split() == job.cron.split() and (
            zone == mine or (zone in _UTC_NAMES and mine in _UTC_NAMES))

    def notice(self, kind: str, job: SchedulerJobConfig, now: datetime, summary: str) -> None:
        """Told once: raised and cleared at the same instant."""
        key = alert_key(kind, {"pipeline": job.pipeline, "job": job.name})
        self.router.fire(Alert(key, "info", summary, now, "", {"alertname": kind, **self._labels(job)}))
        self.router.resolve(key, now)

    def held(self, snapshot: HealthSnapshot) -> HealthSnapshot:
        """The daily summary's snapshot with the jobs a person has paused (a snapshot source)."""
        with self._lock:
            paused = [(job, self.states[job.name]) for job in self.jobs.values()
                      if self.states[job.name].paused_since is not None]
        return replace(snapshot, held=(*snapshot.held, *(
            HeldItem(f"scheduler job {job.name}{self._starts(job)} paused",
                     state.paused_by or "someone", cast(datetime, state.paused_since))
            for job, state in paused)))

    def status(self, limit: int = 100, job: str | None = None) -> dict[str, Any]:
        """``GET /v1/scheduler-outcomes``: each configured job's state, recent attempts, the
        jobs heard of but not configured."""
        now = self.clock.now()
        with self._lock:
            stored = self.store.states()
            jobs = [self._job_dict(j, stored.get(j.name) or self.states[j.name], now)
                    for j in self.jobs.values()]
        return {"jobs": jobs, "attempts": self.store.recent(limit, job),
                "unknown_jobs": self.store.unknown_jobs()}

    def _job_dict(self, job: SchedulerJobConfig, state: JobState, now: datetime) -> dict[str, Any]:
        def iso(when: datetime | None) -> str | None:
            return when.isoformat() if when else None

        configured = self.configured[job.name]
        job = self._effective(job.name, state)  # as stored: another process may have heard it
        return {
            "job": job.name, "pipeline": job.pipeline, "phase": job.phase,
            "processor": job.processor, "cron": configured.cron,
            "timezone": self._zone_name(configured),
            "cloud_schedule": ({"cron": job.cron, "timezone": self._zone_name(job)}
                               if state.cloud_cron or state.cloud_timezone else None),
            "deleted_at": iso(state.deleted_at), "changed_at": iso(state.changed_at),
            "changed_by": state.changed_by,
            "url": str(job.url) if job.url else None,
            "state": ("deleted" if state.deleted_at else "paused" if state.paused_since
                      else "failing" if state.failing_since
                      else "missed" if state.missed_at else "ok"),
            "paused_since": iso(state.paused_since), "paused_by": state.paused_by,
            "watch_since": iso(state.watch_since), "last_attempt_at": iso(state.last_at),
            "last_ok_at": iso(state.last_ok_at), "failing_since": iso(state.failing_since),
            "failing_status": state.failing_status, "missed_at": iso(state.missed_at),
            "last_due": job.last_due(now, self._tz(job)).isoformat(),
        }


def _clock_change(due: datetime) -> timedelta:
    """How far the clocks move within an hour of ``due`` (aware, in its job's zone): an hour
    on the days they spring forward or fall back near it, else nothing."""
    instant = due.astimezone(UTC)
    before = (instant - _HOUR).astimezone(due.tzinfo).utcoffset()
    after = (instant + _HOUR).astimezone(due.tzinfo).utcoffset()
    return abs(after - before) if before is not None and after is not None else timedelta(0)


def _difference(state: JobState) -> tuple[str | None, str | None, bool]:
    """How Cloud Scheduler's job differs from the config's: its schedule, or deleted."""
    return state.cloud_cron, state.cloud_timezone, state.deleted_at is not None


def install_scheduler(
    host: Host, check_value: Callable[[str, date], float | None] = lambda name, day: None,
) -> SchedulerWatch:
    """Watch the host's scheduler jobs: the push handler, the ``scheduler-outcomes`` job;
    ``check_value`` reads a check's latest value about a run date (``expected_when``)."""
    db = host.store
    for name in ("migrate_component", "transaction", "read"):
        if not callable(getattr(db, name, None)):
            raise TypeError(f"scheduler outcomes need a store with {name}(); got "
                            f"{type(db).__name__}")
    watch = SchedulerWatch(host.config, host.clock, cast(ComponentStore, db), host.router,
                           host.metrics.registry, acting=lambda: host.cluster.leading,
                           runs=lambda pipeline: host.tracker.runs(pipeline=pipeline),
                           check_value=check_value)
    host.add_push_handler(watch.handle_push)
    host.add_job("scheduler-outcomes", watch.tick, every_s=CHECK_EVERY_S)
    return watch

