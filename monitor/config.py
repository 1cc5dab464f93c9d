"""Pipeline configuration: YAML validated once into frozen pydantic models.

The only module that reads the environment (``resolve_secret``) and config files.
"""

from __future__ import annotations

import os
from collections.abc import Mapping, Sequence
from datetime import UTC, date, datetime, time, timedelta
from functools import cached_property
from graphlib import CycleError, TopologicalSorter
from importlib import resources
from pathlib import Path
from typing import Annotated, Literal
from zoneinfo import ZoneInfo

import yaml
from pydantic import (
    AfterValidator,
    Field,
    HttpUrl,
    ValidationError,
    ValidationInfo,
    field_validator,
    model_validator,
)

from alerts.config import AlertingConfig
from monitor.actuator.config import (
    DEFAULT_TRANSITION,
    ActuatorConfig,
    CoverageGateConfig,
    EntityCoverageConfig,
    HealthGateConfig,
    PlaybookConfig,
    RerunConfig,
    ServiceConfig,
    SubscriptionConfig,
    TiersRule,
    TransitionConfig,
    TriggerConfig,
)
from monitor.checks.config import CheckConfig, check_problems
from monitor.errors import ConfigError, Problem
from monitor.fields import (
    AlertSeverity,
    Condition,
    EnvName,
    Frozen,
    Mode,
    Name,
    TimeOfDay,
)
from monitor.publish.config import PublishConfig
from monitor.scheduler.config import SchedulerConfig
from monitor.store.config import RetentionConfig, StoreConfig
from monitor.strict_yaml import DuplicateKeyError, load_unique
from monitor.telemetry.export_config import ExportConfig
from monitor.telemetry.mirror_config import MirrorConfig
from monitor.validation import Timezone, problems_from_validation_error
from slo.anomaly.config import AnomalyConfig
from slo.spec import SLOSpec

Priority = Literal["critical", "optional"]
RunDateRelation = Literal["before_today", "today", "after_today"]


class ProcessorConfig(Frozen):
    """A unit of work inside a phase that reports its own events."""

    name: Name
    priority: Priority = "critical"
    depends_on: tuple[Name, ...] = Field(
        default=(), description="processors of the same phase that must finish before this one "
        "starts (no cycles); `phasewatch status` notes a run that started it earlier",
    )
    aliases: tuple[Name, ...] = Field(
        default=(), description="other names producers report for it (class names)"
    )
    output: str | None = Field(default=None, description="the table or object it writes")
    disabled: bool = Field(default=False, description="accepted if reported, never expected")
    coverage: EntityCoverageConfig | None = Field(
        default=None, description="alert when a finish covers too few entities (records / expected)"
    )


def dependency_cycle(processors: Sequence[ProcessorConfig]) -> list[str] | None:
    """A cycle in ``depends_on`` as names in dependency order (first repeated at the end), or None."""
    try:
        TopologicalSorter({p.name: p.depends_on for p in processors}).prepare()
    except CycleError as exc:
        return list(reversed(exc.args[1]))  # graphlib lists it from dependent to dependency
    return None


class ModeExpectation(Frozen):
    """What a phase expects in one mode."""

    expected: tuple[Name, ...]
    critical: tuple[Name, ...] | None = Field(
        default=None, description="default: the expected processors whose priority is critical"
    )
    required_count: int | None = Field(
        default=None, ge=0, description="completions that make the phase complete (default: all)"
    )


class PhaseConfig(Frozen):
    """One phase of a pipeline."""

    id: Name
    name: str | None = None
    upstream: tuple[Name, ...] | None = Field(
        default=None, description="phases whose completion leads here (default: the previous one)"
    )
    services: tuple[Name, ...] = ()
    completion_topic: Name | None = None
    processors: tuple[ProcessorConfig, ...] = ()
    modes: dict[Mode, ModeExpectation] = Field(default_factory=dict)
    triggers: tuple[TriggerConfig, ...] = Field(
        default=(), description="how phasewatch starts this phase; empty: it does not"
    )
    transition: TransitionConfig | None = Field(
        default=None, description="when phasewatch triggers it and how it is watched (actuator)"
    )
    subscription: SubscriptionConfig | None = Field(
        default=None, description="the push subscription the pipeline owns that starts this phase"
    )
    rerun: RerunConfig | None = Field(
        default=None, description="what a re-run trigger of this phase adds to its payload"
    )

    @model_validator(mode="after")
    def _check_names(self) -> PhaseConfig:
        names = [p.name for p in self.processors]
        dup = sorted({n for n in names if names.count(n) > 1})
        if dup:
            raise ValueError(f"processor names must be unique in a phase; repeated: {dup}")
        known = set(names)
        for proc in self.processors:
            bad = [d for d in proc.depends_on if d not in known or d == proc.name]
            if bad:
                raise ValueError(
                    f"processor {proc.name!r} depends_on {bad}; allowed: other processors of "
                    f"this phase {sorted(known - {proc.name})}"
                )
        cycle = dependency_cycle(self.processors)
        if cycle:
            raise ValueError(
                f"depends_on has a cycle: {' -> '.join(cycle)}; allowed: an order without cycles"
            )
        aliases = [a for p in self.processors for a in p.aliases]
        clash = sorted({a for a in aliases if aliases.count(a) > 1 or a in known})
        if clash:
            raise ValueError(f"aliases must be unique and differ from processor names: {clash}")
        enabled = {p.name for p in self.processors if not p.disabled}
        for mode, exp in self.modes.items():
            bad = [n for n in exp.expected if n not in enabled]
            if bad:
                raise ValueError(
                    f"modes.{mode}.expected names {bad}; allowed: enabled processors "
                    f"{sorted(enabled)}"
                )
            if exp.critical is not None:
                extra = [n for n in exp.critical if n not in exp.expected]
                if extra:
                    raise ValueError(
                        f"modes.{mode}.critical names {extra}; allowed: its expected list"
                    )
            if exp.required_count is not None and exp.required_count > len(exp.expected):
                raise ValueError(
                    f"modes.{mode}.required_count {exp.required_count} is more than the "
                    f"{len(exp.expected)} expected processors"
                )
        return self

    @property
    def policy(self) -> TransitionConfig:
        """Its transition policy (the defaults when none is configured)."""
        return self.transition or DEFAULT_TRANSITION

    @cached_property
    def processor_names(self) -> frozenset[str]:
        return frozenset(p.name for p in self.processors)

    @cached_property
    def canonical_names(self) -> dict[str, str]:
        """Every name a producer may report (name or alias) → the processor's name."""
        out = {p.name: p.name for p in self.processors}
        out.update({a: p.name for p in self.processors for a in p.aliases})
        return out

    def processor(self, name: str) -> ProcessorConfig:
        for p in self.processors:
            if p.name == name:
                return p
        raise KeyError(name)

    def expectation(self, mode: str) -> Expectation:
        """Expected and critical processors of this phase in ``mode``."""
        return self._expectations.get(mode) or self._default_expectation

    @cached_property
    def _default_expectation(self) -> Expectation:
        enabled = tuple(p.name for p in self.processors if not p.disabled)
        critical = tuple(p.name for p in self.processors if not p.disabled and p.priority == "critical")
        return Expectation(enabled, critical, len(enabled))

    @cached_property
    def _expectations(self) -> dict[str, Expectation]:
        out: dict[str, Expectation] = {}
        for mode, exp in self.modes.items():
            critical = exp.critical
            if critical is None:
                critical = tuple(
                    n for n in exp.expected if self.processor(n).priority == "critical"
                )
            count = len(exp.expected) if exp.required_count is None else exp.required_count
            out[mode] = Expectation(exp.expected, critical, count)
        return out


class Expectation(tuple[tuple[str, ...], tuple[str, ...], int]):
    """(expected, critical, required_count) for one phase in one mode."""

    def __new__(cls, expected: tuple[str, ...], critical: tuple[str, ...], required: int) -> Expectation:
        return super().__new__(cls, (expected, critical, required))

    @property
    def expected(self) -> tuple[str, ...]:
        return self[0]

    @property
    def critical(self) -> tuple[str, ...]:
        return self[1]

    @property
    def required_count(self) -> int:
        return self[2]


class ModeRule(Frozen):
    """Pick ``mode`` when the run date stands in ``run_date`` relation to today."""

    mode: Mode
    run_date: RunDateRelation


DEFAULT_MODE_RULES = (
    ModeRule(mode="overnight", run_date="before_today"),
    ModeRule(mode="same_day", run_date="today"),
    ModeRule(mode="tomorrow", run_date="after_today"),
)


CheckName = Annotated[str, Field(min_length=1, max_length=128)]
Weekday = Literal["mon", "tue", "wed", "thu", "fri", "sat", "sun"]
WEEKDAYS: tuple[Weekday, ...] = ("mon", "tue", "wed", "thu", "fri", "sat", "sun")


class ExpectationConfig(Frozen):
    """By ``deadline`` (pipeline time), checks in ``when`` holding mean ``require`` must hold."""

    name: Name
    summary: Annotated[str, Field(min_length=1, max_length=200)] | None = Field(
        default=None, description="the alert's title (default: the name)"
    )
    severity: AlertSeverity = "critical"
    when: dict[CheckName, Condition] = Field(
        default_factory=dict, description="check name -> condition; all must hold (empty: always)"
    )
    require: dict[CheckName, Condition] = Field(
        min_length=1, description="check name -> condition; each must hold once the deadline passed"
    )
    deadline: TimeOfDay
    days: tuple[Weekday, ...] | None = Field(default=None, description="default: every day")
    modes: tuple[Mode, ...] | None = Field(
        default=None, description="only on days with a tracked run of these modes (its run date: "
        "today shifted by the mode's day offset); default: every day",
    )
    max_age_min: float | None = Field(
        default=None, gt=0, description="older check values count as missing (always: not from today)"
    )


DayRange = tuple[int, int]


def _day_range(value: DayRange | Literal["any"]) -> DayRange | Literal["any"]:
    if value != "any" and value[0] > value[1]:
        raise ValueError(f"{list(value)}: expected [earliest, latest] with earliest <= latest")
    return value


# Each mode's own day, and the day a run crosses midnight into or a producer that dates in
# UTC names: overnight runs of yesterday (and tonight's), same-day runs of today (and of the
# neighbouring days), tomorrow's runs of tomorrow (and, after midnight, today's).
DEFAULT_HORIZON: dict[str, DayRange | Literal["any"]] = {
    "overnight": (-1, 0), "same_day": (-1, 1), "tomorrow": (0, 1), "backfill": "any",
}
HorizonDays = Annotated[DayRange | Literal["any"], AfterValidator(_day_range)]


class HorizonConfig(Frozen):
    """The runs phasewatch acts and opens alerts on: recent ones only (never history).

    ``run_dates`` bounds, per mode, the run date minus today (in the pipeline's timezone),
    inclusive (defaults in ``DEFAULT_HORIZON``); ``any`` leaves the run date free (backfill
    runs work on the past by definition) and only the event's age counts.
    ``max_event_age_h`` bounds how old an event's own timestamp may be for it to cause an
    action or an alert.
    """

    run_dates: dict[Mode, HorizonDays] = Field(
        default_factory=dict,
        description="per mode: [earliest, latest] run date minus today (pipeline timezone), "
        "or any; a mode left out takes its default",
    )
    max_event_age_h: float = Field(
        default=6.0, gt=0, le=24 * 400,
        description="events older than this (by their own timestamp) never act or alert",
    )

    def days(self, mode: str) -> DayRange | Literal["any"]:
        """The run-date bounds of ``mode`` (configured, else the default)."""
        configured = self.run_dates.get(mode)  # type: ignore[call-overload]
        return configured if configured is not None else DEFAULT_HORIZON[mode]


class ModeWindowConfig(Frozen):
    """What to do with an event whose run date is outside its mode's window.

    A mode's window is its mode rule (``same_day``: the run date is today) on the event's
    own day in the pipeline's timezone, give or take ``grace_h`` (a run that crosses
    midnight, an overnight run that starts late on the game night). A scheduled "today"
    job that resolves yesterday's date sends a ``same_day`` event for yesterday: outside.
    """

    on_mismatch: Literal["reject", "alert", "accept"] = Field(
        default="alert", description="reject: a 4xx naming run_date (nothing stored); alert: "
        "store it and raise 'run date mismatch' (warning); accept: neither",
    )
    grace_h: float = Field(default=6.0, ge=0, le=24, description="hours either side of the "
                           "event's day that still count as its day")
    resolve_after_min: float = Field(
        default=60.0, gt=0, description="the alert resolves once no mismatched event of its "
        "run came for this long",
    )


class PipelineConfig(Frozen):
    """A phase-by-phase daily pipeline."""

    id: Name
    description: str | None = None
    timezone: Timezone
    modes: tuple[ModeRule, ...] = DEFAULT_MODE_RULES
    horizon: HorizonConfig = Field(
        default_factory=HorizonConfig,
        description="the runs phasewatch acts and alerts on (history and backfills never)",
    )
    mode_window: ModeWindowConfig = Field(
        default_factory=ModeWindowConfig,
        description="events whose run date does not fit their mode (a same_day event for "
        "yesterday): reject, alert or accept",
    )
    services: dict[Name, ServiceConfig] = Field(default_factory=dict)
    phases: tuple[PhaseConfig, ...] = Field(min_length=1)
    expectations: tuple[ExpectationConfig, ...] = Field(
        default=(), description="data expectations over check results, alerted at a deadline"
    )

    @model_validator(mode="after")
    def _check_graph(self) -> PipelineConfig:
        ids = [p.id for p in self.phases]
        dup = sorted({i for i in ids if ids.count(i) > 1})
        if dup:
            raise ValueError(f"phase ids must be unique; repeated: {dup}")
        names = [e.name for e in self.expectations]
        dup_names = sorted({n for n in names if names.count(n) > 1})
        if dup_names:
            raise ValueError(f"expectations: names must be unique; repeated: {dup_names}")
        relations = [r.run_date for r in self.modes]
        if len(set(relations)) != len(relations):
            raise ValueError("modes: each run_date relation may have one rule only")
        if any(r.mode == "backfill" for r in self.modes):
            raise ValueError("modes: backfill is never derived; producers state it explicitly")
        for i, phase in enumerate(self.phases):
            bad_services = [s for s in phase.services if s not in self.services]
            if bad_services:
                raise ValueError(
                    f"phase {phase.id!r} names services {bad_services}; allowed: "
                    f"{sorted(self.services)}"
                )
            for up in phase.upstream or ():
                if up not in ids[:i]:
                    raise ValueError(
                        f"phase {phase.id!r} upstream {up!r}; allowed: phases listed before it "
                        f"{ids[:i]}"
                    )
        return self

    @model_validator(mode="after")
    def _check_transitions(self) -> PipelineConfig:
        for phase in self.phases:
            if phase.transition is not None:
                _check_transition(self, phase, phase.transition)
            if phase.subscription is not None and not self.upstream_of(phase.id):
                raise ValueError(
                    f"phase {phase.id!r} subscription: the phase has no upstream whose "
                    "completion messages it receives; allowed: a phase with an upstream"
                )
        return self

    def subscription_topic(self, phase_id: str) -> str | None:
        """The topic a phase's subscription reads (configured, else the upstream's completion topic)."""
        sub = self.phase_map[phase_id].subscription
        if sub is None:
            return None
        if sub.topic is not None:
            return sub.topic
        topics = [self.phase_map[up].completion_topic for up in self.upstream_of(phase_id)]
        return next((t for t in topics if t), None)

    @cached_property
    def tz(self) -> ZoneInfo:
        return ZoneInfo(self.timezone)

    @cached_property
    def phase_map(self) -> dict[str, PhaseConfig]:
        return {p.id: p for p in self.phases}

    @cached_property
    def rule_modes(self) -> tuple[str, ...]:
        """The modes its mode rules give (what an event without a mode can be)."""
        return tuple(dict.fromkeys(rule.mode for rule in self.modes))

    def upstream_of(self, phase_id: str) -> tuple[str, ...]:
        """Phases whose completion leads to ``phase_id``."""
        phase = self.phase_map[phase_id]
        if phase.upstream is not None:
            return phase.upstream
        index = self.phases.index(phase)
        return (self.phases[index - 1].id,) if index else ()

    def downstream_of(self, phase_id: str) -> tuple[str, ...]:
        """Phases that follow ``phase_id`` directly."""
        return tuple(p.id for p in self.phases if phase_id in self.upstream_of(p.id))

    def mode_for(self, run_date: date, today: date) -> str | None:
        """The mode its rules give for ``run_date`` on ``today`` (None if no rule matches)."""
        relation = "today" if run_date == today else (
            "before_today" if run_date < today else "after_today"
        )
        for rule in self.modes:
            if rule.run_date == relation:
                return rule.mode
        return None

    def mode_window_bounds(self, run_date: date, mode: str) -> tuple[datetime | None, datetime | None] | None:
        """[start, end) of the instants at which an event of ``mode`` for ``run_date`` fits
        its mode's rule (``mode_window.grace_h`` either side; None: unbounded), or None
        when no mode rule gives ``mode`` (backfill): no window."""
        rule = next((r for r in self.modes if r.mode == mode), None)
        if rule is None:
            return None
        grace = timedelta(hours=self.mode_window.grace_h)
        # In UTC: the same instants, and an event's time (UTC as most are sent) compares
        # with them field by field, without asking the zone for its offset.
        day_start = datetime.combine(run_date, time(0), self.tz).astimezone(UTC)
        next_start = datetime.combine(run_date + timedelta(days=1), time(0), self.tz).astimezone(UTC)
        if rule.run_date == "today":
            return (day_start - grace, next_start + grace)
        if rule.run_date == "before_today":
            return (next_start - grace, None)
        return (None, day_start + grace)

    def mode_mismatch(self, run_date: date, mode: str, at: datetime) -> str | None:
        """Why an event of ``mode`` for ``run_date`` at ``at`` is outside its mode's window
        (``mode_window``); None when it fits, or when no mode rule gives ``mode``."""
        bounds = self.mode_window_bounds(run_date, mode)
        if bounds is None or within(at, bounds):
            return None
        rule = next(r for r in self.modes if r.mode == mode)
        day = at.astimezone(self.tz).date()
        wanted = {"today": day.isoformat(), "before_today": f"before {day.isoformat()}",
                  "after_today": f"after {day.isoformat()}"}[rule.run_date]
        return (f"a {mode} event at {at.astimezone(self.tz):%Y-%m-%d %H:%M} {self.timezone} is "
                f"for {run_date.isoformat()}; {mode} runs then work on {wanted} "
                f"(±{self.mode_window.grace_h:g} h)")


def within(at: datetime, bounds: tuple[datetime | None, datetime | None]) -> bool:
    """Whether ``at`` is in [start, end) (an end that is None is open)."""
    start, end = bounds
    return (start is None or at >= start) and (end is None or at < end)


def _check_transition(pipeline: PipelineConfig, phase: PhaseConfig, t: TransitionConfig) -> None:
    """Names in a phase's transition must exist: upstream processors, services, triggers."""
    where = f"phase {phase.id!r} transition"
    upstream = {
        p.name for up in pipeline.upstream_of(phase.id)
        for p in pipeline.phase_map[up].processors if not p.disabled
    }
    services = set(pipeline.services)

    def known(names: tuple[str, ...], allowed: set[str], field: str) -> None:
        bad = [n for n in names if n not in allowed]
        if bad:
            raise ValueError(f"{where}: {field} names {bad}; allowed: {sorted(allowed)}")

    for rule in t.rules:
        if isinstance(rule, TiersRule):
            known(rule.require, upstream, f"rules.{rule.name}.require (upstream processors)")
    for gate in t.gates or ():
        if isinstance(gate, HealthGateConfig):
            known(gate.services or (), services, "gates.health.services")
        elif isinstance(gate, CoverageGateConfig):
            known(gate.processors, upstream, "gates.coverage.processors (upstream processors)")
    needs_triggers = bool(t.backstops) or t.trigger_when == "overdue"
    if t.recovery is not None:
        known(t.recovery.services or (), services, "recovery.services")
        for name, action in t.recovery.actions.items():
            known(action.services or (), services, f"recovery.actions.{name}.services")
        used = [a for r in t.recovery.batches for a in r.actions] + list(t.recovery.stalled_processors)
        needs_triggers = needs_triggers or "retrigger" in used
    if needs_triggers and not phase.triggers:
        raise ValueError(
            f"{where}: backstops, trigger_when: overdue and retrigger need the phase's triggers; "
            "allowed: add triggers (http, pubsub or log) to the phase"
        )


TraceExporter = Literal["none", "console", "otlp", "otlp_http", "otlp_grpc", "gcp_trace"]
OtlpProtocol = Literal["grpc", "http/protobuf"]


class TelemetryConfig(Frozen):
    """Where traces go; metrics are always served on /metrics.

    Unset fields (None) are taken from OpenTelemetry's standard variables by
    ``apply_environment``; what is set here overrides them.
    """

    exporter: TraceExporter | None = Field(
        default=None, description="otlp (protocol: otlp_protocol), console, gcp_trace (Cloud Trace), "
        "none; otlp_http and otlp_grpc name the protocol too. Default: OTEL_TRACES_EXPORTER, else none",
    )
    otlp_endpoint: HttpUrl | None = Field(
        default=None, description="default: OTEL_EXPORTER_OTLP_TRACES_ENDPOINT, or "
        "OTEL_EXPORTER_OTLP_ENDPOINT (+ /v1/traces over HTTP), else the SDK's localhost:4317/4318",
    )
    otlp_protocol: OtlpProtocol | None = Field(
        default=None, description="default: OTEL_EXPORTER_OTLP_TRACES_PROTOCOL, "
        "OTEL_EXPORTER_OTLP_PROTOCOL, else http/protobuf",
    )
    service_name: str | None = Field(
        default=None, description="default: OTEL_SERVICE_NAME, service.name in "
        "OTEL_RESOURCE_ATTRIBUTES, else phasewatch",
    )
    gcp_project: Annotated[str, Field(pattern=r"^[a-z][a-z0-9-]{4,28}[a-z0-9]$")] | None = Field(
        default=None, description="for Cloud Trace and the logs' trace field; default: "
        "GOOGLE_CLOUD_PROJECT, else the project the metadata server names (on Google Cloud)",
    )
    gcp_resource_detector: bool | None = Field(
        default=None, description="describe the resource from the metadata server (service, "
        "revision, region, project); default: on when running on Cloud Run (K_SERVICE set)",
    )


GOOGLE_CERTS_URL = "https://www.googleapis.com/oauth2/v1/certs"
LOOPBACK_HOSTS = frozenset({"127.0.0.1", "localhost", "[::1]", "::1"})
Email = Annotated[str, Field(pattern=r"^[^@\s]+@[^@\s]+\.[^@\s]+$", max_length=254)]


def _https_unless_loopback(url: HttpUrl) -> HttpUrl:
    if url.scheme != "https" and url.host not in LOOPBACK_HOSTS:
        raise ValueError(f"must be an https URL (http only for a loopback host); got {url}")
    return url


class PubSubPushConfig(Frozen):
    """Verify the OIDC token Pub/Sub push sends: Google-signed, for us, from a listed account."""

    audience: Annotated[str, Field(min_length=1, max_length=2048)] = Field(
        description="the token's aud: the subscription's --push-auth-token-audience "
        "(default there: the push endpoint URL)",
    )
    service_accounts: tuple[Email, ...] = Field(
        min_length=1, description="service accounts whose pushes are accepted (the token's email)",
    )
    certs_url: Annotated[HttpUrl, AfterValidator(_https_unless_loopback)] = Field(
        default=HttpUrl(GOOGLE_CERTS_URL),
        description="Google's signing certificates, {kid: PEM}; cached for their Cache-Control max-age",
    )
    timeout_s: float = Field(default=5.0, gt=0, le=60, description="for fetching the certificates")


PublicPath = Literal["/health", "/ready", "/metrics", "/openapi.json", "/", "/dashboard"]


class ServerConfig(Frozen):
    """HTTP service limits and auth."""

    max_body_bytes: int = Field(default=5_000_000, ge=1024)
    token_env: EnvName = "PHASEWATCH_TOKEN"
    read_auth: Literal["token", "public"] = Field(
        default="token", description="token: when a token is set, reads (GET, HEAD) need it too, "
        "but for public_paths; public: only requests that change something need it",
    )
    public_paths: tuple[PublicPath, ...] = Field(
        default=("/health", "/ready"), description="read without the token even with read_auth: "
        "token (probes; add /metrics for a scraper that cannot send a token, / and /dashboard "
        "for the dashboard page on a private network)",
    )
    pubsub_push: PubSubPushConfig | None = Field(
        default=None, description="when set, POST /v1/pubsub/push needs a valid Google OIDC token "
        "(instead of the token_env bearer token)",
    )
    tick_interval_s: float = Field(default=30.0, gt=0)
    header_timeout_s: float = Field(
        default=10.0, gt=0, le=3600,
        description="a request's headers must arrive in full within this (from its first byte); "
        "then 408 and the connection is closed",
    )
    body_timeout_s: float = Field(
        default=60.0, gt=0, le=3600,
        description="a request's body must arrive in full within this, however it trickles; "
        "then 408 and the connection is closed",
    )
    idle_timeout_s: int = Field(
        default=5, ge=1, le=3600, description="a keep-alive connection idle this long is closed",
    )
    max_connections: int = Field(
        default=1000, ge=1, le=1_000_000,
        description="open connections at most; past it a new connection closes the one that has "
        "waited longest for its request (or is idle longest), so stalled clients cannot keep "
        "/health out",
    )
    slo_interval_s: float = Field(
        default=300.0, gt=0,
        description="how often SLOs are evaluated on the ticks (runs arrive minutes apart)",
    )
    snapshot: bool = Field(
        default=True, description="save the state the events build (runs, SLO ledgers, anomaly "
        "detectors) into the store every snapshot_interval_s and on stop, and restore it on "
        "start, replaying only the events stored after it (a fast start); false: rebuild it "
        "from every event of the window on each start",
    )
    snapshot_interval_s: float = Field(
        default=900.0, gt=0,
        description="how often the leading instance saves the snapshot (after a crash, the "
        "events since are replayed)",
    )


class RunsConfig(Frozen):
    """Which run dates phasewatch accepts, and how many runs it keeps in memory.

    Both bounds are relative to the clock (wall time for ``serve``, the events' time for
    ``replay`` and ``demo``), in each pipeline's timezone; never to the run dates seen.
    """

    accept_past_days: int = Field(
        default=400, ge=1, le=36_500,
        description="oldest accepted run date, in days before today; older: 422 / dead letter",
    )
    accept_future_days: int = Field(
        default=7, ge=0, le=366,
        description="latest accepted run date, in days after today; later: 422 / dead letter",
    )
    track_days: int = Field(
        default=14, ge=1, le=36_500,
        description="run state in memory: runs of the last N run dates, and older runs that "
        "received an event in the last N days (a backfill being loaded)",
    )
    max_tracked: int = Field(
        default=10_000, ge=10,
        description="hard cap on runs in memory; past it the runs that received an event "
        "longest ago are dropped (phasewatch_runs_evicted_total{reason=\"cap\"})",
    )

    def window(self, today: date) -> tuple[date, date]:
        """The first and last run date accepted on ``today``."""
        return (today - timedelta(days=self.accept_past_days),
                today + timedelta(days=self.accept_future_days))

    def outside(self, today: date, zone: str | None = None) -> str:
        """What a rejection says of a run date outside the window of ``today`` (in ``zone``)."""
        first, last = self.window(today)
        where = f" in {zone}" if zone else ""
        return (f"outside the accepted window {first} to {last} ({self.accept_past_days} days "
                f"before to {self.accept_future_days} after today, {today}{where}; "
                "runs.accept_past_days / runs.accept_future_days)")


HISTORY_DAYS = 70  # run dates replayed on start: the detectors' 8 weeks of seasonality, SLO windows


def history_needed(pipelines: Sequence[PipelineConfig], runs: RunsConfig,
                   slos: Sequence[SLOSpec]) -> tuple[int, str]:
    """The days of history phasewatch reads back or acts on, and what needs the most: no
    retention may be shorter."""
    need, why = HISTORY_DAYS, (f"the start-up replay of the last {HISTORY_DAYS} run dates: "
                               "the anomaly baselines' weeks of seasonality")
    if runs.track_days > need:
        need, why = runs.track_days, "runs.track_days (run state rebuilt on start)"
    for i, pipeline in enumerate(pipelines):
        for mode, dates in pipeline.horizon.run_dates.items():
            if dates != "any" and -dates[0] + 1 > need:
                need, why = -dates[0] + 1, (f"pipelines[{i}:{pipeline.id}].horizon.run_dates."
                                            f"{mode} acts on run dates {-dates[0]} days back")
    for i, slo in enumerate(slos):
        window = slo.window
        days = (31 if getattr(window, "unit", None) == "month" else window.nominal_days) + 1
        if days > need:
            need, why = days, f"slos[{i}:{slo.name}] window of {window.label}"
    return need, why


class Config(Frozen):
    """The whole phasewatch configuration."""

    version: Literal[1] = 1
    pipelines: tuple[PipelineConfig, ...] = Field(min_length=1)
    telemetry: TelemetryConfig = TelemetryConfig()
    server: ServerConfig = ServerConfig()
    runs: RunsConfig = RunsConfig()
    store: StoreConfig = StoreConfig()
    anomaly: AnomalyConfig = AnomalyConfig()
    actuator: ActuatorConfig = ActuatorConfig()
    slos: tuple[SLOSpec, ...] = ()
    retention: RetentionConfig = Field(
        default_factory=RetentionConfig,
        description="how long the store keeps events, dead letters, audit lines, alert "
        "history and signals; the prune job deletes what is older",
    )
    alerting: AlertingConfig = AlertingConfig()
    export: ExportConfig = ExportConfig()
    mirror: MirrorConfig = MirrorConfig()
    checks: tuple[CheckConfig, ...] = Field(
        default=(), description="data checks: queries run on a schedule, or pushed results, "
        "with thresholds that alert",
    )
    scheduler: SchedulerConfig = Field(
        default_factory=SchedulerConfig,
        description="the pipeline's Cloud Scheduler jobs: failed attempts and missed fires alert",
    )
    publish: PublishConfig = Field(
        default_factory=PublishConfig,
        description='"data available" events: a CloudEvent per completed phase of a dataset',
    )

    @field_validator("retention")
    @classmethod
    def _retention_covers_history(cls, retention: RetentionConfig,
                                  info: ValidationInfo) -> RetentionConfig:
        pipelines, runs = info.data.get("pipelines"), info.data.get("runs")
        slos = info.data.get("slos")
        if pipelines is None or runs is None or slos is None:  # reported on their own fields
            return retention
        need, why = history_needed(pipelines, runs, slos)
        for setting in ("events", "audit", "alerts", "signals"):
            days = retention.days(setting)
            if days < need:
                raise ValueError(
                    f"{setting}_days: {days} days is shorter than the {need} days of history "
                    f"phasewatch reads back ({why}); allowed: at least {need}")
        return retention

    @model_validator(mode="after")
    def _unique_pipelines(self) -> Config:
        ids = [p.id for p in self.pipelines]
        dup = sorted({i for i in ids if ids.count(i) > 1})
        if dup:
            raise ValueError(f"pipeline ids must be unique; repeated: {dup}")
        names = [s.name for s in self.slos]
        dup = sorted({n for n in names if names.count(n) > 1})
        if dup:
            raise ValueError(f"slos: names must be unique; repeated: {dup}")
        for i, slo in enumerate(self.slos):
            _check_slo_names(f"slos[{i}:{slo.name}]", slo, self.pipeline_map, self.checks)
        problems = check_problems(self.checks, set(self.pipeline_map))
        if problems:
            raise ValueError("; ".join(problems))
        for i, auto in enumerate(self.actuator.cascades):
            where = f"actuator.cascades[{i}]"
            pipeline = self.pipeline_map.get(auto.pipeline)
            if pipeline is None:
                raise ValueError(f"{where}.pipeline {auto.pipeline!r} is unknown; allowed: "
                                 f"{sorted(self.pipeline_map)}")
            with_triggers = [p.id for p in pipeline.phases if p.triggers]
            if auto.phase not in with_triggers:
                raise ValueError(f"{where}.phase {auto.phase!r} cannot be triggered; allowed: "
                                 f"{with_triggers}")
        for i, job in enumerate(self.scheduler.jobs):
            where = f"scheduler.jobs[{i}:{job.name}]"
            _check_names(where, self.pipeline_map, job.pipeline, job.phase, job.processor)
            known_checks = sorted(c.name for c in self.checks if c.pipeline == job.pipeline)
            bad = [n for n in job.expected_when if n not in known_checks]
            if bad:
                raise ValueError(f"{where}.expected_when names checks {bad} that are not in "
                                 f"checks: for pipeline {job.pipeline}; allowed: {known_checks}")
        for i, dataset in enumerate(self.publish.datasets):
            _check_names(f"publish.datasets[{i}:{dataset.name}]", self.pipeline_map,
                         dataset.pipeline, dataset.phase, None)
        for i, playbook in enumerate(self.actuator.playbooks):
            _check_playbook(f"actuator.playbooks[{i}:{playbook.name}]", playbook,
                            self.pipeline_map)
        return self

    @cached_property
    def pipeline_map(self) -> dict[str, PipelineConfig]:
        return {p.id: p for p in self.pipelines}


def _check_names(where: str, pipelines: dict[str, PipelineConfig], pipeline_id: str,
                 phase_id: str | None, processor: str | None) -> None:
    """A component's pipeline, phase and processor names exist (the message lists the choices)."""
    pipeline = pipelines.get(pipeline_id)
    if pipeline is None:
        raise ValueError(f"{where}.pipeline {pipeline_id!r} is unknown; allowed: {sorted(pipelines)}")
    if phase_id is None:
        return
    phase = pipeline.phase_map.get(phase_id)
    if phase is None:
        raise ValueError(f"{where}.phase {phase_id!r} is unknown; allowed: {list(pipeline.phase_map)}")
    if processor is not None and processor not in phase.processor_names:
        raise ValueError(f"{where}.processor {processor!r} is not a processor of {phase_id}; "
                         f"allowed: {sorted(phase.processor_names)}")


def _check_playbook(where: str, playbook: PlaybookConfig,
                    pipelines: dict[str, PipelineConfig]) -> None:
    """A playbook names a configured pipeline, a phase phasewatch can trigger, and
    processors of that phase."""
    pipeline = pipelines.get(playbook.pipeline)
    if pipeline is None:
        raise ValueError(f"{where}.pipeline {playbook.pipeline!r} is unknown; allowed: "
                         f"{sorted(pipelines)}")
    with_triggers = [p.id for p in pipeline.phases if p.triggers]
    if playbook.phase not in with_triggers:
        raise ValueError(f"{where}.phase {playbook.phase!r} cannot be triggered (a playbook "
                         f"acts through the phase's triggers); allowed: {with_triggers}")
    known = sorted(pipeline.phase_map[playbook.phase].processor_names)
    bad = [n for n in getattr(playbook, "processors", ()) if n not in known]
    if bad:
        raise ValueError(f"{where}.processors {bad} are not processors of {playbook.phase}; "
                         f"allowed: {known}")


def _check_slo_names(where: str, slo: SLOSpec, pipelines: dict[str, PipelineConfig],
                     checks: tuple[CheckConfig, ...] = ()) -> None:
    """Every name an SLO uses exists in its pipeline; the message names the field and the choices."""
    pipeline = pipelines.get(slo.pipeline)
    if pipeline is None:
        raise ValueError(
            f"{where}.pipeline {slo.pipeline!r} is unknown; allowed: {sorted(pipelines)}"
        )
    sli = slo.sli
    phases = list(pipeline.phase_map)
    phase_id = getattr(sli, "phase", None)
    if phase_id is not None and phase_id not in pipeline.phase_map:
        raise ValueError(f"{where}.sli.phase {phase_id!r} is unknown; allowed: {phases}")
    processors = getattr(sli, "processors", None) or ()
    if processors:
        assert phase_id is not None
        known = sorted(pipeline.phase_map[phase_id].processor_names)
        bad = [p for p in processors if p not in known]
        if bad:
            raise ValueError(
                f"{where}.sli.processors {bad} are not processors of {phase_id}; allowed: {known}"
            )
    service = getattr(sli, "service", None)
    if service is not None and service not in pipeline.services:
        raise ValueError(
            f"{where}.sli.service {service!r} is unknown; allowed: {sorted(pipeline.services)}"
        )
    due = getattr(sli, "due", None)
    if due is not None:
        bad = [p for p in due.seen_phases if p not in pipeline.phase_map]
        if bad:
            raise ValueError(f"{where}.sli.due.seen_phases {bad} are unknown; allowed: {phases}")
        known_checks = sorted(c.name for c in checks if c.pipeline == slo.pipeline)
        bad = [n for n in due.expected_when if n not in known_checks]
        if bad:
            raise ValueError(f"{where}.sli.due.expected_when names checks {bad} that are not in "
                             f"checks: for pipeline {slo.pipeline}; allowed: {known_checks}")


DEFAULT_CONFIG_NAME = "nba.yaml"


def default_config_text() -> str:
    """The bundled default config (the NBA example)."""
    return (resources.files("monitor") / "examples" / DEFAULT_CONFIG_NAME).read_text("utf-8")


def parse_config(text: str, source: str) -> Config:
    """Validate YAML text into a Config, or raise ConfigError naming each bad field."""
    try:
        data = load_unique(text)
    except DuplicateKeyError as exc:
        raise ConfigError(source, [Problem(
            f"line {exc.line}", f"duplicate key {exc.key!r} (first at line {exc.first_line}); "
            "allowed: each key once per mapping",
        )]) from None
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f"line {mark.line + 1}, column {mark.column + 1}" if mark else "document"
        raise ConfigError(source, [Problem(where, f"not valid YAML: {exc}")]) from None
    if not isinstance(data, dict):
        raise ConfigError(source, [Problem("(top)", "must be a mapping with 'pipelines'")])
    try:
        return Config.model_validate(data)
    except ValidationError as exc:
        raise ConfigError(source, problems_from_validation_error(exc, data, root=Config)) from None


def load_config(path: str | Path | None = None) -> Config:
    """Load ``path``, or the bundled NBA example when ``path`` is None."""
    if path is None:
        return parse_config(default_config_text(), f"<bundled {DEFAULT_CONFIG_NAME}>")
    p = Path(path)
    try:
        text = p.read_text("utf-8")
    except OSError as exc:
        raise ConfigError(str(p), [Problem("(file)", f"cannot read: {exc.strerror}")]) from None
    except UnicodeDecodeError as exc:
        raise ConfigError(str(p), [Problem(
            "(file)", f"not UTF-8 text (byte {exc.start}); allowed: a UTF-8 YAML file",
        )]) from None
    return parse_config(text, str(p))


TRACES_EXPORTER_ENV = "PHASEWATCH_TRACES_EXPORTER"
OTEL_TRACES_EXPORTERS: dict[str, TraceExporter] = {
    "none": "none", "console": "console", "otlp": "otlp", "gcp_trace": "gcp_trace",
}
OTLP_PROTOCOLS: dict[str, OtlpProtocol] = {"grpc": "grpc", "http/protobuf": "http/protobuf"}


def apply_environment(config: Config, environ: Mapping[str, str] | None = None) -> Config:
    """``config`` with its unset telemetry settings taken from the environment.

    Precedence: ``PHASEWATCH_TRACES_EXPORTER``, then the config file's ``telemetry:``, then
    OpenTelemetry's standard variables (``OTEL_TRACES_EXPORTER``, ``OTEL_EXPORTER_OTLP_*``,
    ``OTEL_SDK_DISABLED``), then the defaults. ``GOOGLE_CLOUD_PROJECT`` names the project and
    ``K_SERVICE`` (set by Cloud Run) turns the GCP resource detector on. The SDK itself reads
    the rest of its variables (``OTEL_SERVICE_NAME``, ``OTEL_RESOURCE_ATTRIBUTES``,
    ``OTEL_EXPORTER_OTLP_HEADERS``, ``OTEL_TRACES_SAMPLER``...).
    """
    env = os.environ if environ is None else environ
    telemetry = config.telemetry
    problems: list[Problem] = []
    exporter = env.get(TRACES_EXPORTER_ENV) or None
    if exporter is not None:
        source = TRACES_EXPORTER_ENV
    elif telemetry.exporter is not None:
        exporter, source = telemetry.exporter, "telemetry.exporter"
    elif env.get("OTEL_SDK_DISABLED", "").strip().lower() == "true":
        exporter, source = "none", "OTEL_SDK_DISABLED"
    else:
        exporter, source = (env.get("OTEL_TRACES_EXPORTER") or "none").strip(), "OTEL_TRACES_EXPORTER"
        if exporter not in OTEL_TRACES_EXPORTERS:
            problems.append(Problem("OTEL_TRACES_EXPORTER", "unsupported exporter; allowed: "
                                    f"{', '.join(OTEL_TRACES_EXPORTERS)} (one of them)", repr(exporter)))
    protocol = telemetry.otlp_protocol or _otlp_protocol(exporter, env, problems)
    update: dict[str, object] = {"exporter": exporter, "otlp_protocol": protocol}
    if telemetry.otlp_endpoint is None:
        update["otlp_endpoint"] = _otlp_endpoint(protocol, env)
    if telemetry.gcp_project is None and env.get("GOOGLE_CLOUD_PROJECT"):
        update["gcp_project"] = env["GOOGLE_CLOUD_PROJECT"]
    if telemetry.gcp_resource_detector is None:
        update["gcp_resource_detector"] = bool(env.get("K_SERVICE"))
    merged = {**telemetry.model_dump(mode="json"), **update}
    if not problems:
        try:
            return config.model_copy(update={"telemetry": TelemetryConfig.model_validate(merged)})
        except ValidationError as exc:
            found = problems_from_validation_error(exc, merged, root=TelemetryConfig)
            problems = [Problem(f"telemetry.{p.field}", p.message, p.value) for p in found]
    raise ConfigError(f"environment ({source} / OTEL_* / GOOGLE_CLOUD_PROJECT)", problems)


def _otlp_protocol(exporter: str, env: Mapping[str, str], problems: list[Problem]) -> OtlpProtocol:
    if exporter in ("otlp_http", "otlp_grpc"):
        return "http/protobuf" if exporter == "otlp_http" else "grpc"
    for name in ("OTEL_EXPORTER_OTLP_TRACES_PROTOCOL", "OTEL_EXPORTER_OTLP_PROTOCOL"):
        value = env.get(name, "").strip()
        if value:
            if value not in OTLP_PROTOCOLS:
                problems.append(Problem(name, f"unsupported protocol; allowed: {', '.join(OTLP_PROTOCOLS)}",
                                        repr(value)))
                return "http/protobuf"
            return OTLP_PROTOCOLS[value]
    return "http/protobuf"


def _otlp_endpoint(protocol: OtlpProtocol, env: Mapping[str, str]) -> str | None:
    """The standard endpoint variables as the OTLP exporters read them (signal URL as given,
    the base URL with ``/v1/traces`` added over HTTP)."""
    if env.get("OTEL_EXPORTER_OTLP_TRACES_ENDPOINT"):
        return env["OTEL_EXPORTER_OTLP_TRACES_ENDPOINT"]
    base = env.get("OTEL_EXPORTER_OTLP_ENDPOINT")
    if not base:
        return None
    return base if protocol == "grpc" else base.rstrip("/") + "/v1/traces"


def default_log_format(environ: Mapping[str, str] | None = None) -> Literal["json", "text"]:
    """``json`` on Cloud Run (``K_SERVICE`` set), where Cloud Logging reads one JSON object per
    line; ``text`` for a person at a terminal."""
    env = os.environ if environ is None else environ
    return "json" if env.get("K_SERVICE") else "text"


def resolve_secret(env_name: str | None, environ: Mapping[str, str] | None = None) -> str | None:
    """The value of the environment variable named in config, or None when unset or empty."""
    if env_name is None:
        return None
    value = (os.environ if environ is None else environ).get(env_name, "")
    return value or None

