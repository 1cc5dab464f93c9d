"""The alert catalogue: every alert phasewatch can emit, by its stable ``alertname``.

Each entry says which labels the alert carries (the key's labels first), how its severity
is chosen, what resolves it, how often it is reminded and what to do. ``docs/alerts.md``
is rendered from it (``render_markdown``) and the tests hold the code, the catalogue and
the page to each other. ``lifecycle`` is the resolve condition the generic lifecycle
(``alerts.lifecycle``) applies on top of the emitter's own: the phase of the alert's run
completed, or a time after the alert last fired.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

Source = Literal["slo", "actuator", "anomaly", "alerts", "checks", "scheduler", "publish", "events"]
RUN = ("pipeline", "run_date", "mode", "phase")


@dataclass(frozen=True)
class Lifecycle:
    """A resolve condition checked on every tick, besides the emitter's own."""

    phase_done: bool = False  # the run's phase completed (or the run is no longer tracked)
    expires_h: float | None = None  # this long after the alert last fired


@dataclass(frozen=True)
class AlertKind:
    """One alertname: what it means, its severity rule, what resolves it, what to do."""

    name: str
    source: Source
    labels: tuple[str, ...]
    severity: str
    resolves: str
    runbook: str
    notice: bool = False  # an event, not a condition: told once, nothing to resolve
    lifecycle: Lifecycle | None = None
    reminder_h: float | None = None  # instead of the severity's interval (a ticket: weekly)
    wait_min: float | None = None  # told only once it has fired this long (a ticket)

    @property
    def reminders(self) -> str:
        if self.notice or self.severity.startswith("info"):
            return "never"
        if self.reminder_h is not None:
            return f"every {self.reminder_h:g} h (`alerting.reminders_s`){self._wait}"
        return self._severity_reminders() + self._wait

    @property
    def _wait(self) -> str:
        if not self.wait_min:
            return ""
        return f"; a warning is told once it has fired {self.wait_min:g} min (`alerting.waits_s`)"

    def _severity_reminders(self) -> str:
        if "critical" in self.severity:
            return ("critical: every `repeat_interval_s` (4 h); warning: every "
                    "`warning_repeat_interval_s` (24 h)")
        return "every `warning_repeat_interval_s` (24 h)"


def _k(name: str, source: Source, labels: tuple[str, ...], severity: str, resolves: str,
       runbook: str, **kw: object) -> AlertKind:
    return AlertKind(name, source, labels, severity, resolves, runbook, **kw)  # type: ignore[arg-type]


_SLO = ("slo", "pipeline", "phase | service", "processor (one-processor SLOs)")
_DONE = Lifecycle(phase_done=True)
_DAY = Lifecycle(expires_h=24)

KINDS: tuple[AlertKind, ...] = (
    # --- SLOs (slo/alerting.py) -------------------------------------------------------
    _k("slo_bad_runs_in_a_row", "slo", (*_SLO, "run_date, mode (the latest bad run; not in the key)"),
       "critical for a deadline SLO, else warning: `budget.consecutive_bad` (2) bad runs in a row; "
       "once per streak, as soon as the second is counted (at its deadline)",
       "a good run ends the streak (or the bad runs leave the window)",
       "The runs named failed their objective back to back: `phasewatch status --run-date D` "
       "shows which phase is late or failed; fix it and re-run the day.", reminder_h=24),
    _k("slo_bad_run", "slo", (*_SLO, "run_date", "mode, processor (run units)"),
       "info: one bad run that used at least `budget.single_bad_unit_pct` (50%) of the budget "
       "while budget is left (SLOs counted in runs)",
       "the run leaves the window or its verdict is repaired (the resolve is not sent)",
       "Nothing to do now: the summary says how much budget is left. Look at the run when "
       "convenient."),
    _k("slo_budget_exhausted", "slo", _SLO,
       "warning (a ticket, told once it has held an hour): no error budget left",
       "the budget recovers (bad units leave the window, or late events repair verdicts)",
       "The SLO is spent for its window: plan reliability work before features; "
       "`phasewatch slo report` shows the bad units.", reminder_h=168, wait_min=60),
    _k("slo_budget_low", "slo", _SLO,
       "warning: less than `budget.low_remaining_pct` (25%) of the budget left (SLOs counted "
       "in events or probes)", "more budget is left again, or it is exhausted (that alert "
       "takes over)", "Find what burns it (`slo report`, the SLO's phase in `status`).",
       reminder_h=168, wait_min=60),
    _k("slo_budget_projected", "slo", _SLO,
       "warning: at the window's pace the budget runs out before the window ends (SLOs "
       "counted in events or probes; not while the budget is low)",
       "the projection falls under the budget, or the budget is low or exhausted",
       "A slow burn: look at the trend before it becomes a ticket.", reminder_h=168, wait_min=60),
    _k("slo_burn_rate", "slo", (*_SLO, "tier"),
       "as `alerting.burn_rates` says per pair: critical (page) or warning (ticket); judged only "
       "where a pair's long window holds `min_events` (10) units",
       "either window of the pair burns under its factor",
       "Errors are burning the budget fast: find the failing processor or service now.", wait_min=60),
    # --- the actuator (monitor/actuator/) ---------------------------------------------
    _k("service_unhealthy", "actuator", ("service", "cause, deploy_version, deployed_at (annotations)"),
       "critical: a service a phase runs on failed `unhealthy_after` (3) probes in a row; "
       "`cause: deploy_regression` when that began within 60 min of a deploy",
       "`recovered_after` (3) passing probes in a row: one alert per outage; unhealthy again "
       "within `flap_window_min` (30) of that resolve is flapping (said in the summary), "
       "resolved once it has passed that long",
       "Check the service's logs and last deploy; phase triggers wait for it and go out when "
       "it recovers."),
    _k("probes_unreachable", "actuator", ("none: one for the whole phasewatch",),
       "critical: a whole round of health probes (two services or more) got no HTTP answer "
       "at all (connection errors, timeouts, no ID token) `unhealthy_after` (3) rounds in a "
       "row; the alerts about one service (`service_unhealthy`, an availability SLO's, a "
       "trigger held for it) are its consequences (not told)",
       "the first round in which any service answers",
       "Look at phasewatch's own egress first (VPC connector, DNS, firewall, its service "
       "account's ID tokens), then at the services."),
    _k("deterministic_failure", "actuator", ("pipeline", "phase", "processor", "category (annotation)"),
       "the category's (critical; quota: warning), at most warning for a processor optional in "
       "its phase: the same error signature `same_error_times` (10) times in a row",
       "the processor succeeds (also by a new name that keeps the old as an alias), a service "
       "of its phase passes its probe again after failing, or a manual retry",
       "Retrying will not help: fix the cause the category names (import, schema, permission), "
       "then retry by hand (`POST /v1/actions/trigger`)."),
    _k("failed_runs", "actuator", ("pipeline", "phase", "processor"),
       "warning: the processor failed in `failed_runs` (3) consecutive runs (each failed "
       "invocation is a run, across run dates; a redelivered `invocation_id` counts once; a "
       "failure delivered after a later success of its run counts not)",
       "the processor succeeds or skips (also by a new name that keeps the old as an alias)",
       "A chronic failure: look at its errors across runs.",
       wait_min=15),
    _k("retry_storm", "actuator", (*RUN, "processor"),
       "warning: more than `retry_storm_starts` (10) starts of one processor in "
       "`retry_storm_window_min` (10 min); automated re-triggers of the run's phase stop",
       "the processor succeeds, a service of the phase recovers, or the run's phase completes",
       "Something redelivers the work in a loop (Pub/Sub, a scheduler): find the caller.",
       lifecycle=_DONE),
    _k("correlated_failure", "alerts", ("pipeline", "signature", "processors, phases"),
       "critical when any processor it names is critical in its phase, else warning: processors "
       "failing with one error signature within `correlation.window_min` (60)",
       "every processor it names succeeded again, or no failure with the signature for "
       "`correlation.quiet_h` (24 h)",
       "One cause behind several failures (a dependency, a permission, a shared library): fix "
       "it once; the per-processor alerts are inhibited under this one. Told again at once "
       "when it reaches a phase it did not name (it spread: another service to fix), even if "
       "acknowledged."),
    _k("trigger_no_effect", "actuator", RUN,
       "warning while phasewatch re-triggers, critical once `max_retriggers` are spent",
       "the triggered phase shows activity (its effect), by any path",
       "The phase did not start after its trigger: check its subscription / endpoint and "
       "that the service received the message."),
    _k("trigger_undelivered", "actuator", RUN,
       "critical: the trigger was not accepted after `escalate_after_attempts` or "
       "`escalate_after_min`, or failed for good",
       "the trigger is delivered, or the phase started by another path",
       "The trigger target rejects or times out: check the target and its auth."),
    _k("trigger_deferred", "actuator", (*RUN, "service"),
       "critical: a gate held the trigger `alert_after` (3) times (held by data, e.g. the coverage "
       "of a processor that failed: inhibited while that failure's alert fires, as a consequence "
       "downstream of it; held for a service's health: inhibited while the service's own "
       "`service_unhealthy` fires)",
       "the trigger goes out, or the phase started by another path",
       "The phase waits for an unhealthy service: see `service_unhealthy`."),
    _k("phase_overdue", "actuator", (*RUN, "known_gap (annotation)"),
       "warning: due but not started within `start_within_min`, or running past its (adaptive) "
       "timeout. Running past it missing the same processors as the run before it in its mode "
       "(within 7 days) is a known gap: held back like a silenced alert (`known_gap`), still "
       "a cause of what it inhibits, so a processor that stopped reporting is told the first "
       "night, then by `expected_list_drift`",
       "the phase starts or finishes, or its run is no longer recent",
       "Look at the missing processors the summary names."),
    _k("phase_stuck", "actuator", (*RUN, "target", "missing (annotation)"),
       "warning: upstream incomplete, not due by any rule, idle for `stuck_after_min`",
       "the transition becomes due or upstream moves again",
       "Upstream processors never reported: re-run them or trigger the next phase by hand."),
    _k("backstop_trigger", "actuator", RUN,
       "info, once: a backstop time triggered the phase with upstream incomplete (not when the "
       "trigger decided before it in the mode, within 7 days, was a backstop missing the same "
       "processors: a known gap is told when it begins)",
       "(a notice)", "Degraded input went downstream: check the missing upstream processors "
       "(their own alerts say why).", notice=True),
    _k("degraded_trigger", "actuator", RUN,
       "info, once: the phase was triggered by a degraded rule (not when the trigger decided "
       "before it in the mode, within 7 days, went degraded missing the same processors: a "
       "processor that never reports is one notice, then `expected_list_drift`)",
       "(a notice)", "Nothing to do unless the degradation recurs.", notice=True),
    _k("batch_stalled", "actuator", (*RUN, "batch_id"),
       "warning: a batch matched a stall rule",
       "the batch moves again or finishes, or a newer batch of the run finishes",
       "phasewatch runs the rule's recovery; act if `recovery_failed` follows."),
    _k("processor_stalled", "actuator", (*RUN, "processor"),
       "warning: running past its timeout or no heartbeat", "the processor reports or finishes",
       "Check the processor's job; the configured recovery runs."),
    _k("invocations_hung", "actuator", (*RUN, "processor"),
       "warning, once per processor and run: invocations (`invocation_id`) started and not "
       "finished past the processor's adaptive timeout; the ids in its details",
       "every hung invocation has finished",
       "The executions the details name never reported a finish: look them up in the "
       "producer's logs (Cloud Run executions); a killed one may need a re-run."),
    _k("recovery_failed", "actuator", (*RUN, "batch_id | processor"),
       "warning: a recovery step failed for good", "the run's phase completes",
       "Run the recovery by hand (`phasewatch` audit log has the step and its error).",
       lifecycle=_DONE),
    _k("recovery_deferred", "actuator", (*RUN, "service", "batch_id"),
       "warning: a health gate held a recovery `alert_after` (3) times (inhibited while the "
       "service's own `service_unhealthy` fires)",
       "the recovery runs, or the run's phase completes", "See `service_unhealthy`.",
       lifecycle=_DONE),
    _k("stalled_recovered", "actuator", (*RUN, "batch_id | processor"),
       "info, once: stalled work was recovered automatically", "(a notice)",
       "Nothing to do; `recovery_recurring` says when it keeps happening.", notice=True),
    _k("recovery_recurring", "actuator", ("pipeline", "phase"),
       "warning: `recurring_per_day` (3) automated recoveries of the phase in 24 h",
       "24 h after it last fired (the count is per day)",
       "The phase keeps stalling: find the cause instead of relying on recovery.",
       lifecycle=_DAY),
    _k("action_budget_exhausted", "actuator", ("pipeline", "phase"),
       "warning: the per-run or per-day budget of automated actions is spent",
       "24 h after it last fired (budgets are per run and per day)",
       "Automated recovery stopped for the phase: take over by hand.", lifecycle=_DAY),
    _k("subscriber_not_invoked", "actuator", ("pipeline", "phase", "subscription", "topic"),
       "warning: the upstream topic had traffic and the phase did not start within "
       "`invoked_within_min`", "a later run is invoked on time",
       "Check that the subscription can invoke its push endpoint (roles/run.invoker)."),
    _k("expected_list_drift", "actuator", ("pipeline", "phase", "mode", "processor"),
       "info: an expected processor never reported in `drift.window_days` while its phase did",
       "the processor reports again (or leaves the expected list)",
       "Remove it from `modes.<mode>.expected` or find why it stopped."),
    _k("entity_coverage_drop", "actuator", (*RUN, "processor"),
       "warning: a finish covered fewer entities than `coverage.min_ratio`",
       "a later finish covers enough, or the run is no longer recent",
       "Look at the failure categories in the summary; re-run after the fix."),
    _k("mass_lockout", "actuator", (*RUN, "processor"),
       "warning: more than `coverage.lockouts_over` entities locked out by circuit breakers",
       "with its coverage drop", "Clear the lockouts before re-running."),
    _k("cascade_stalled", "actuator", (*RUN, "cascade"),
       "warning: a cascade re-run step did not finish again in time",
       "the step finishes or the cascade ends", "Check the phase the summary names."),
    _k("cascade_finished", "actuator", ("pipeline", "run_date", "mode", "cascade"),
       "info, once: a cascade re-run finished every step", "(a notice)", "Nothing to do.",
       notice=True),
    _k("cascade_failed", "actuator", ("pipeline", "run_date", "mode", "cascade"),
       "warning: a cascade re-run stopped", "24 h after it fired (a ticket for the day)",
       "Re-run the remaining phases by hand, in order.", lifecycle=_DAY),
    _k("run_date_mismatch", "actuator", ("pipeline", "run_date", "mode", "phase, processor (annotations)"),
       "warning, once per run: with `mode_window.on_mismatch: alert`, an event's run date does "
       "not fit its explicit mode on the event's own day (± `grace_h`), such as a `same_day` "
       "event for yesterday (never for backfills or runs outside the actionable horizon)",
       "no mismatched event of the run for `mode_window.resolve_after_min` (60)",
       "A job resolved the wrong day (a 'today' job that ran after midnight, a UTC date): fix "
       "its date, and re-run the run it meant."),
    _k("playbook", "actuator", (*RUN, "playbook", "processor"),
       "info, once: a remediation playbook acted (a re-run for missing entities, a quarantine "
       "placed or released, a deferral until a reset time, a cascade) or gave up",
       "(a notice)", "Nothing to do unless it gave up: the summary says why and what is left.",
       notice=True),
    _k("expectation", "actuator", ("pipeline", "expectation", "day", "deadline (annotation)"),
       "as configured per expectation (`severity`, critical by default)",
       "its checks hold again, or its day is over",
       "The data expectation the summary names failed at its deadline (e.g. a prediction gap)."),
    # --- data checks (monitor/checks/) -------------------------------------------------
    _k("unknown_processor", "events", ("pipeline", "phase", "name"),
       "warning: Pub/Sub messages name a processor the phase does not configure, so they "
       "are dead-lettered; one per name, however many messages (a POST gets a 422 naming "
       "the field)",
       "phasewatch restarts with a config that knows the name (a processor, or an alias of "
       "one), or a day after the last such message",
       "A processor renamed or added in a deploy: add the new name to the phase (a rename: "
       "the new name, the old one as its alias) and restart; then `POST "
       "/v1/dead-letters/replay` stores the refused messages' events (`GET /v1/dead-letters` "
       "lists them), instead of re-running what ran meanwhile.",
       lifecycle=_DAY),
    _k("check", "checks", ("check", "pipeline"),
       "as the check's thresholds say: critical when `critical_when` holds, warning when "
       "`warn_when` does (results older than the actionable horizon never alert)",
       "a later result passes both thresholds; breached again within `flap_window_min` (60) "
       "of that resolve is flapping (said in the summary), resolved once its results have "
       "passed that long (or after a day without a breach when they stop)",
       "The data check the summary names is out of bounds (the entities missing are listed): "
       "look at the table it queries before the next phase uses it."),
    _k("check_error", "checks", ("check", "pipeline"),
       "warning: a scheduled check's query could not run (timeout, auth, SQL error)",
       "the check's next run succeeds",
       "Fix the check's runner or query (`phasewatch check run NAME` runs it now)."),
    # --- scheduler outcomes (monitor/scheduler/watch.py) --------------------------------
    _k("scheduler_attempt_failed", "scheduler", ("pipeline", "job", "phase, processor, url, status"),
       "as `scheduler.jobs[].severity` says (critical by default): a Cloud Scheduler attempt "
       "of a watched job finished with an error (HTTP status or gRPC code)",
       "an attempt of the same job succeeds, or the work it starts finishes another way "
       "after the scheduled time the failure was for (the resolve says the job is not fixed)",
       "The job's target refused or failed the call (the status and URL are in the alert): "
       "check the target service's logs and health, then run the job again "
       "(`gcloud scheduler jobs run JOB`)."),
    _k("scheduler_job_missed", "scheduler", ("pipeline", "job", "phase, processor"),
       "as `scheduler.jobs[].missed_severity` says: no attempt of a watched job within "
       "`grace_min` of its cron time",
       "the job's next attempt is seen (whatever its outcome), or the work it starts "
       "finishes another way after the missed time",
       "The job did not fire: check it is not paused (`gcloud scheduler jobs describe JOB`) "
       "and that the scheduler log sink still reaches phasewatch."),
    _k("scheduler_job_left_paused", "scheduler", ("pipeline", "job", "phase, processor", "due"),
       "as `scheduler.jobs[].missed_severity` says: a paused job's scheduled time passed on a "
       "day its `expected_when` checks say has work (e.g. games today); once per pause",
       "the job is resumed (the resolve says who resumed it; no resume notice beside it), "
       "fires after that time (its resume unheard), or the work it starts finishes another "
       "way after that time",
       "Resume the job (`gcloud scheduler jobs resume JOB`) and run it now if the day's work "
       "is still due (`gcloud scheduler jobs run JOB`)."),
    _k("scheduler_job_paused", "scheduler", ("pipeline", "job", "phase, processor"),
       "info, once: a person paused a watched job (Cloud Scheduler's Admin Activity audit "
       "log, through the scheduler log sink); until it is resumed no fire is judged missed, "
       "and its open alerts are resolved",
       "(a notice)", "Nothing to do if the pause was planned (a break in the schedule); "
       "resume the job (`gcloud scheduler jobs resume JOB`) when its work is due again.",
       notice=True),
    _k("scheduler_job_resumed", "scheduler", ("pipeline", "job", "phase, processor"),
       "info, once: a person resumed a paused job; its next fire is judged again",
       "(a notice)", "Nothing to do.", notice=True),
    _k("scheduler_job_changed", "scheduler", ("pipeline", "job", "phase, processor"),
       "warning, once per difference: Cloud Scheduler's job no longer fires as the config "
       "says (Admin Activity audit log): a person or a deploy rescheduled it (`UpdateJob`, "
       "`CreateJob`: another cron or time zone; its fires are then judged by Cloud "
       "Scheduler's schedule) or deleted it (`DeleteJob`; the missed fires name the deletion)",
       "the job fires as the config says again: changed back or created again (the resolve "
       "says who), or the config made to say the same (at the restart that loads it)",
       "Make them agree: fix the config's `scheduler.jobs` cron and timezone if the change was "
       "meant, else change the job back (`gcloud scheduler jobs update http JOB --schedule=... "
       "--time-zone=...`) or create it again."),
    # --- publishing (monitor/publish/publisher.py) ------------------------------------
    _k("dataset_withheld", "publish", ("dataset", "pipeline", "run_date", "mode", "phase"),
       "warning: a dataset's phase completed but its checks did not pass within "
       "`publish.datasets[].checks_within_h`, so no \"data available\" event was sent",
       "the run's dataset is released (its checks pass), or a day after it last fired",
       "Consumers are waiting on this dataset: look at the failing checks the alert names, "
       "fix the data and re-run the phase.", lifecycle=_DAY),
    _k("dataset_event_undelivered", "publish", ("dataset", "sink"),
       "warning: a \"data available\" event could not be delivered to its sink (Pub/Sub, "
       "OpenLineage) after the publisher's retries",
       "a later event of the dataset is delivered to that sink, or a day after it last fired",
       "The sink refused or was unreachable (the error is in the alert): check the topic or "
       "lineage backend and its permissions.", lifecycle=_DAY),
    # --- the alert channels (alerts/channel_watch.py) ---------------------------------
    _k("alert_channel_failing", "alerts", ("channel",),
       "critical when the channel pages, else warning: the channel refused a notification (a "
       "4xx, or retries given up), or its oldest waiting notification first failed "
       "`delivery.failing_after_s` (1 h) ago; told by the other channels, never through itself "
       "(a paging channel's failure to all of them, another's to those that do not page, or "
       "when there are none to those that page)",
       "the channel takes a notification again (any alert, or the daily summary) with none "
       "waiting that long; one refusal followed by a notification taken is a notice",
       "The alert says what the channel answered: a 404 from a Slack webhook (deleted: make a "
       "new one and update its secret), a 400 from PagerDuty (the routing key changed), a "
       "401/403 (a token revoked), or the provider down. Until it is fixed, what is routed only "
       "to it reaches nobody: `GET /v1/alerts` still lists every open alert."),
    # --- anomalies (monitor/app/anomalies.py) -----------------------------------------
    _k("anomaly", "anomaly", ("pipeline", "run_date", "mode", "phase, kind, processor"),
       "info, once per run: the first processor or phase of the run that was unusually slow or "
       "late for its series (the run's later outliers are in the report and the summary)",
       "(a notice)", "Nothing to do unless deadlines follow (their alerts page).", notice=True),
)

CATALOGUE: dict[str, AlertKind] = {k.name: k for k in KINDS}


def reminder_intervals() -> dict[str, float]:
    """Seconds between reminders of the alertnames that do not use their severity's."""
    return {k.name: k.reminder_h * 3600 for k in KINDS if k.reminder_h is not None}


def wait_intervals() -> dict[str, float]:
    """Seconds an alertname must have fired before it is first told (tickets only)."""
    return {k.name: k.wait_min * 60 for k in KINDS if k.wait_min is not None}


def lifecycle_rules() -> dict[str, Lifecycle]:
    """The alertnames the generic lifecycle resolves, and how."""
    return {k.name: k.lifecycle for k in KINDS if k.lifecycle is not None}


def render_markdown() -> str:
    """The catalogue as the table in ``docs/alerts.md`` (between its generated markers)."""
    lines = ["| alertname | from | labels | severity | resolves when | reminders | runbook |",
             "|---|---|---|---|---|---|---|"]
    for k in sorted(KINDS, key=lambda k: (k.source, k.name)):
        cells = [f"`{k.name}`", k.source, ", ".join(f"`{x}`" if " " not in x else x for x in k.labels),
                 k.severity, k.resolves, k.reminders, k.runbook]
        lines.append("| " + " | ".join(c.replace("|", "\\|") for c in cells) + " |")
    return "\n".join(lines) + "\n"
