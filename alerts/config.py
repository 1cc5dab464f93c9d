"""Alerting configuration (the ``alerting:`` section): channels, routes, timing, inhibition.

Frozen pydantic models with ``extra="forbid"``; secrets are environment-variable *names*.
This module imports nothing from ``monitor`` (``monitor.config`` imports it).
"""

from __future__ import annotations

import re
from typing import Annotated, Literal

from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    HttpUrl,
    ValidationInfo,
    field_validator,
    model_validator,
)

from alerts.catalogue import CATALOGUE, reminder_intervals, wait_intervals
from alerts.errors import InvalidMatcher
from alerts.matchers import LABEL_NAME, parse_matcher
from monitor.validation import Timezone

Severity = Literal["critical", "warning", "info"]
Name = Annotated[str, Field(pattern=r"^[A-Za-z0-9][A-Za-z0-9_.:-]{0,63}$")]
EnvName = Annotated[str, Field(pattern=r"^[A-Z_][A-Z0-9_]*$")]
LabelName = Annotated[str, Field(pattern=LABEL_NAME.pattern)]
Weekday = Literal["monday", "tuesday", "wednesday", "thursday", "friday", "saturday", "sunday"]
WEEKDAYS: tuple[Weekday, ...] = (
    "monday", "tuesday", "wednesday", "thursday", "friday", "saturday", "sunday",
)
# Channel kinds that can carry the daily summary (PagerDuty and Alertmanager take alerts only).
REPORT_KINDS = frozenset({"log", "file", "slack", "slack_bot", "memory"})


class Frozen(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")


def _check_matchers(values: tuple[str, ...]) -> tuple[str, ...]:
    for text in values:
        try:
            parse_matcher(text)
        except InvalidMatcher as exc:
            raise ValueError(str(exc)) from None
    return values


class _Channel(Frozen):
    name: Name
    send_resolved: bool = Field(default=True, description="also notify when the alert clears")
    paging: bool = Field(
        default=False,
        description="a channel that wakes someone up: without a route that says otherwise it "
        "gets only `paging_severities` (critical), and info never",
    )
    rate_per_s: float | None = Field(
        default=None, gt=0, description="sustained messages per second (default: per kind)"
    )
    burst: int = Field(default=5, ge=1, le=1000, description="messages allowed back to back")


class LogChannelConfig(_Channel):
    """One structured log line per notification (the embedded default)."""

    kind: Literal["log"]


class FileChannelConfig(_Channel):
    """One JSON line per notification appended to a file."""

    kind: Literal["file"]
    path: str = Field(min_length=1)


class MemoryChannelConfig(_Channel):
    """Keeps notifications in memory (for tests and demos)."""

    kind: Literal["memory"]


class SlackWebhookChannelConfig(_Channel):
    """Slack incoming webhook: one Block Kit message per notification."""

    kind: Literal["slack"]
    webhook_url_env: EnvName
    timeout_s: float = Field(default=10.0, gt=0, le=120)


class SlackBotChannelConfig(_Channel):
    """Slack bot token: chat.postMessage once per alert, then chat.update as it changes."""

    kind: Literal["slack_bot"]
    token_env: EnvName
    channel: str = Field(min_length=1, description="channel id or #name")
    base_url: HttpUrl = HttpUrl("https://slack.com/api/")
    timeout_s: float = Field(default=10.0, gt=0, le=120)


PagerDutySeverity = Literal["critical", "error", "warning", "info"]


def _pd_severities() -> dict[Severity, PagerDutySeverity]:
    return {"critical": "critical", "warning": "warning", "info": "info"}


class PagerDutyChannelConfig(_Channel):
    """PagerDuty Events API v2: trigger / resolve with dedup_key = the alert key."""

    kind: Literal["pagerduty"]
    paging: bool = True
    routing_key_env: EnvName
    url: HttpUrl = HttpUrl("https://events.pagerduty.com/v2/enqueue")
    source: str = Field(default="phasewatch", min_length=1, max_length=255)
    severity_map: dict[Severity, PagerDutySeverity] = Field(default_factory=_pd_severities)
    timeout_s: float = Field(default=10.0, gt=0, le=120)
    webhook_secret_env: EnvName | None = Field(
        default=None,
        description="holds the signing secret of a PagerDuty V3 webhook subscription that sends "
        "to POST /v1/pagerduty/webhook: an acknowledged page is reminded no more",
    )


class AlertmanagerChannelConfig(_Channel):
    """Prometheus Alertmanager: POST /api/v2/alerts (it groups and routes on its side)."""

    kind: Literal["alertmanager"]
    url: HttpUrl = Field(description="base URL, e.g. http://alertmanager:9093")
    token_env: EnvName | None = None
    alert_ttl_s: float = Field(
        default=86400.0, gt=0,
        description="endsAt of a firing alert = now + this; each repeat extends it",
    )
    timeout_s: float = Field(default=10.0, gt=0, le=120)


ChannelConfig = Annotated[
    LogChannelConfig | FileChannelConfig | MemoryChannelConfig | SlackWebhookChannelConfig
    | SlackBotChannelConfig | PagerDutyChannelConfig | AlertmanagerChannelConfig,
    Field(discriminator="kind"),
]
CHANNEL_KINDS = ("log", "file", "memory", "slack", "slack_bot", "pagerduty", "alertmanager")


class RouteConfig(Frozen):
    """Alerts whose labels match go to ``channels``; the first matching route wins unless
    it says ``continue: true``. Unset timings and ``group_by`` come from the top level."""

    model_config = ConfigDict(frozen=True, extra="forbid", populate_by_name=True)

    match: tuple[str, ...] = Field(default=(), description="matchers, all must match")
    severities: tuple[Severity, ...] = Field(default=(), description="empty: any severity")
    channels: tuple[Name, ...] = Field(min_length=1)
    group_by: tuple[LabelName, ...] | None = None
    group_wait_s: float | None = Field(default=None, ge=0)
    group_interval_s: float | None = Field(default=None, gt=0)
    repeat_interval_s: float | None = Field(default=None, gt=0)
    warning_repeat_interval_s: float | None = Field(default=None, gt=0)
    continue_: bool = Field(default=False, alias="continue")

    @field_validator("match")
    @classmethod
    def _matchers(cls, value: tuple[str, ...]) -> tuple[str, ...]:
        return _check_matchers(value)


class InhibitRuleConfig(Frozen):
    """While an alert matching ``source`` fires, alerts matching ``target`` that carry the
    same values of the ``equal`` labels are not notified."""

    source: tuple[str, ...] = Field(min_length=1)
    target: tuple[str, ...] = Field(min_length=1)
    equal: tuple[LabelName, ...] = ()

    @field_validator("source", "target")
    @classmethod
    def _matchers(cls, value: tuple[str, ...]) -> tuple[str, ...]:
        return _check_matchers(value)


class GraphInhibitionConfig(Frozen):
    """Inhibition derived from the pipeline graph.

    A firing failure alert (alertname in ``source_alertnames``) on a phase inhibits the
    target alerts (alertname in ``target_alertnames``) of the phases downstream of it
    (transitively; and of the phase itself when ``same_phase``) in the same run: the same
    ``pipeline`` and ``run_date``, and the same ``mode`` when both alerts carry one. A
    source without a ``run_date`` (a processor failing over and over, an unhealthy service)
    is a failure now, so it covers every run (and the SLOs of those phases) but not a
    downstream phase that already began in its run (the tracker says); a ``service``
    source stands for the phases that use the service, a ``correlated_failure`` for the
    phases it names. An unhealthy service also covers the processor failures of its phases
    (``service_targets``): they crash because it does, and a scheduler job that starts one
    of those phases fails on it. A failure alert about a processor also covers the
    "phase stuck" of its phase and run when that processor is the only one missing, and a
    deterministic failure covers the failed runs and retry storm of its own processor (one
    failing processor, one notification). A trigger or recovery held by a gate on data (the
    coverage of the failing processor, a check) is a consequence of that failure too; one
    held for a service's health (its ``service`` label) only of that service's outage (the
    default inhibit rule). Two alerts that would hide each other
    (a phase overdue and the processor stalled in it) are settled by time: the earlier one
    is the cause.
    """

    enabled: bool = True
    source_alertnames: tuple[str, ...] = (
        "deterministic_failure", "failed_runs", "retry_storm", "correlated_failure",
        "service_unhealthy", "phase_stuck", "phase_overdue", "processor_stalled",
        "batch_stalled", "trigger_undelivered", "trigger_deferred", "recovery_failed",
    )
    target_alertnames: tuple[str, ...] = (
        "phase_overdue", "processor_stalled", "batch_stalled", "trigger_no_effect",
        "subscriber_not_invoked", "slo_bad_run", "slo_bad_runs_in_a_row", "slo_burn_rate",
        "slo_budget_exhausted", "slo_budget_low", "slo_budget_projected", "anomaly",
        "trigger_deferred", "recovery_deferred",
    )
    same_phase: bool = True
    service_targets: tuple[str, ...] = Field(
        default=("deterministic_failure", "failed_runs", "retry_storm", "correlated_failure",
                 "phase_stuck", "processor_stalled", "batch_stalled", "scheduler_attempt_failed"),
        description="while a service's `service_unhealthy` fires, these failure alerts of the "
        "phases that run on it are its consequences (a scheduler job's attempt names the "
        "phase it starts)",
    )


class SeverityConfig(Frozen):
    """Severity by blast radius: what the emitters propose, capped where the impact is small."""

    optional_processor: Literal["warning", "info"] = Field(
        default="warning",
        description="the highest severity of an alert about one processor that is optional "
        "(not critical) in its phase: nothing downstream waits for it",
    )
    overrides: dict[Name, Severity] = Field(
        default_factory=dict, description="alertname -> severity, applied last (see the catalogue)",
    )

    @field_validator("overrides")
    @classmethod
    def _known(cls, value: dict[str, Severity]) -> dict[str, Severity]:
        unknown = sorted(set(value) - set(CATALOGUE))
        if unknown:
            raise ValueError(f"names {unknown}; allowed: the catalogue's alertnames {sorted(CATALOGUE)}")
        return value


class CorrelationConfig(Frozen):
    """Failures of several processors with one error signature are one incident."""

    enabled: bool = True
    window_min: float = Field(
        default=60.0, gt=0, description="failures this close together are correlated",
    )
    settle_min: float = Field(
        default=5.0, ge=0, le=9,
        description="after the second processor fails, wait this long for others before "
        "opening the incident (it names every processor that failed by then)",
    )
    quiet_h: float = Field(
        default=24.0, gt=0,
        description="the incident also resolves when no failure with its signature came for "
        "this long (a processor that is never retried)",
    )
    inhibits: tuple[Name, ...] = Field(
        default=("deterministic_failure", "failed_runs", "retry_storm"),
        description="per-processor alerts not notified while an incident names their processor",
    )


# One outage, one notification: while a service's own alert fires, what it causes waits.
DEFAULT_INHIBIT_RULES: tuple[InhibitRuleConfig, ...] = (
    InhibitRuleConfig(
        source=("alertname=service_unhealthy",),
        target=('alertname=~"slo_burn_rate|slo_budget_exhausted|slo_budget_low|'
                'slo_budget_projected|trigger_deferred|recovery_deferred"',),
        equal=("service",),
    ),
)


class DeliveryConfig(Frozen):
    """Outbox retries: capped full-jitter backoff; ``Retry-After`` wins when it is longer."""

    initial_backoff_s: float = Field(default=1.0, gt=0)
    max_backoff_s: float = Field(default=300.0, gt=0)
    give_up_after_s: float = Field(default=86400.0, gt=0)
    max_attempts: int | None = Field(default=None, ge=1)
    retry_after_cap_s: float = Field(default=3600.0, gt=0)
    batch_limit: int = Field(default=500, ge=1, le=100_000)
    failing_after_s: float = Field(
        default=3600.0, gt=0,
        description="a channel whose oldest notification still waits, retried, this long after"
                    " its first failed attempt raises alert_channel_failing (a refused one"
                    " raises it at once)")

    @model_validator(mode="after")
    def _ordered(self) -> DeliveryConfig:
        if self.max_backoff_s < self.initial_backoff_s:
            raise ValueError("max_backoff_s must be at least initial_backoff_s")
        return self


class NoticeDigestConfig(Frozen):
    """Notices (info, told once: a degraded trigger, a batch recovered) in bulk: the first of
    a kind is told at once; more of that kind within ``quiet_s`` of the last one told wait,
    and go out as one message when none came for ``quiet_s``, or after ``max_wait_s``."""

    quiet_s: float = Field(
        default=300.0, ge=0,
        description="a channel told a notice of a kind less than this ago gets the next ones "
                    "of that kind as one digest, once they stop this long (0: each on its own)")
    max_wait_s: float = Field(
        default=3600.0, gt=0, description="the longest a notice waits for its digest")


class CheckThreshold(Frozen):
    """How the daily summary grades a check result (e.g. grading completeness)."""

    name: Name
    title: str | None = None
    ok_at_least: float
    warning_at_least: float
    higher_is_better: bool = True
    percent: bool = Field(default=True, description="show a 0..1 value as a percentage")

    @model_validator(mode="after")
    def _ordered(self) -> CheckThreshold:
        if self.higher_is_better and self.ok_at_least < self.warning_at_least:
            raise ValueError("ok_at_least must be at least warning_at_least")
        if not self.higher_is_better and self.ok_at_least > self.warning_at_least:
            raise ValueError("with higher_is_better: false, ok_at_least must be at most "
                             "warning_at_least")
        return self


class DailySummaryConfig(Frozen):
    """The daily health summary: when, where to, and how to grade check results."""

    enabled: bool = True
    at: str = Field(default="08:00", description="local time HH:MM")
    timezone: Timezone = "America/New_York"
    channels: tuple[Name, ...] = Field(
        default=(), description="empty: every channel that can carry a report"
    )
    weekly_on: Weekday = Field(default="monday", description="the summary that adds weekly KPIs")
    checks: tuple[CheckThreshold, ...] = ()

    @field_validator("at")
    @classmethod
    def _time(cls, value: str) -> str:
        found = re.fullmatch(r"(\d{2}):(\d{2})", value)
        if not found or int(found[1]) > 23 or int(found[2]) > 59:
            raise ValueError(f"{value!r}; allowed: a 24-hour time HH:MM such as 08:00")
        return value

    @property
    def hour_minute(self) -> tuple[int, int]:
        hour, minute = self.at.split(":")
        return int(hour), int(minute)


class SilenceLimits(Frozen):
    max_duration_h: float = Field(default=24 * 30, gt=0)


class AlertingConfig(Frozen):
    """Where alerts go and how calmly (the ``alerting:`` section; all fields optional)."""

    channels: tuple[ChannelConfig, ...] = (LogChannelConfig(kind="log", name="log"),)
    default_channels: tuple[Name, ...] | None = Field(
        default=None, description="channels for alerts no route matches (default: all)"
    )
    routes: tuple[RouteConfig, ...] = ()
    group_by: tuple[LabelName, ...] = ("pipeline", "run_date")
    group_wait_s: float = Field(default=30.0, ge=0)
    group_interval_s: float = Field(default=300.0, gt=0)
    repeat_interval_s: float = Field(
        default=14400.0, gt=0, description="reminders of a firing critical alert"
    )
    warning_repeat_interval_s: float = Field(
        default=86400.0, gt=0, description="reminders of a firing warning (info: never reminded)"
    )
    reminders_s: dict[Name, float] = Field(
        default_factory=reminder_intervals,
        description="alertname -> seconds between its reminders, instead of its severity's "
        "(default: the catalogue's, e.g. an SLO budget ticket weekly)",
    )
    waits_s: dict[Name, float] = Field(
        default_factory=wait_intervals,
        description="alertname -> seconds it must have fired before it is first told (default: "
        "the catalogue's: an SLO budget ticket waits an hour, so one that clears by itself, "
        "or turns out to be the consequence of an incident, is never news)",
    )
    paging_severities: tuple[Literal["critical", "warning"], ...] = Field(
        default=("critical",),
        description="what default routes (and routes without `severities`) send to paging "
        "channels; info never",
    )
    severity: SeverityConfig = SeverityConfig()
    correlation: CorrelationConfig = CorrelationConfig()
    inhibit_rules: tuple[InhibitRuleConfig, ...] = Field(
        default=DEFAULT_INHIBIT_RULES,
        description="configured rules replace the default one (an unhealthy service hides its "
        "availability SLO's alerts and the triggers and recoveries it holds)",
    )
    graph_inhibition: GraphInhibitionConfig = GraphInhibitionConfig()
    delivery: DeliveryConfig = DeliveryConfig()
    notice_digest: NoticeDigestConfig = NoticeDigestConfig()
    daily_summary: DailySummaryConfig = DailySummaryConfig()
    silences: SilenceLimits = SilenceLimits()
    history_limit: int = Field(default=10_000, ge=1)

    @field_validator("reminders_s", "waits_s")
    @classmethod
    def _by_alertname(cls, value: dict[str, float], info: ValidationInfo) -> dict[str, float]:
        unknown = sorted(set(value) - set(CATALOGUE))
        if unknown:
            raise ValueError(f"names {unknown}; allowed: the catalogue's alertnames {sorted(CATALOGUE)}")
        floor = 0.0 if info.field_name == "waits_s" else 1.0
        bad = sorted(k for k, v in value.items() if v < floor)
        if bad:
            raise ValueError(f"{bad}: allowed: a number of seconds, at least {floor:g}")
        return value

    @model_validator(mode="after")
    def _check_names(self) -> AlertingConfig:
        names = [c.name for c in self.channels]
        dup = sorted({n for n in names if names.count(n) > 1})
        if dup:
            raise ValueError(f"channel names must be unique; repeated: {dup}")
        known = set(names)

        def check(where: str, used: tuple[str, ...]) -> None:
            bad = [n for n in used if n not in known]
            if bad:
                raise ValueError(f"{where} names channels {bad}; allowed: {sorted(known)}")

        for i, route in enumerate(self.routes):
            check(f"routes[{i}]", route.channels)
        check("default_channels", self.default_channels or ())
        check("daily_summary.channels", self.daily_summary.channels)
        kinds = {c.name: c.kind for c in self.channels}
        unfit = [n for n in self.daily_summary.channels if kinds[n] not in REPORT_KINDS]
        if unfit:
            raise ValueError(
                f"daily_summary.channels {unfit} cannot carry a report; allowed kinds: "
                f"{sorted(REPORT_KINDS)}"
            )
        return self

    def channel(self, name: str) -> ChannelConfig:
        for c in self.channels:
            if c.name == name:
                return c
        raise KeyError(name)

    def summary_channels(self) -> tuple[str, ...]:
        """The channels the daily summary goes to."""
        if self.daily_summary.channels:
            return self.daily_summary.channels
        return tuple(c.name for c in self.channels if c.kind in REPORT_KINDS)
