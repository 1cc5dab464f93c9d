"""Pipeline configuration: YAML validated once into frozen pydantic models.

The only module that reads the environment (``resolve_secret``) and config files.
"""

from __future__ import annotations

import os
import re
from collections.abc import Mapping
from datetime import date
from functools import cached_property
from importlib import resources
from pathlib import Path
from typing import Annotated, Literal
from urllib.parse import urlsplit
from zoneinfo import ZoneInfo

import yaml
from pydantic import (
    AfterValidator,
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    HttpUrl,
    ValidationError,
    ValidationInfo,
    field_validator,
    model_validator,
)

from alerts.config import AlertingConfig
from monitor.errors import ConfigError, Problem
from monitor.validation import Timezone, problems_from_validation_error
from slo.anomaly.config import AnomalyConfig
from slo.spec import SLOSpec

MODES = ("overnight", "same_day", "tomorrow", "backfill")
Mode = Literal["overnight", "same_day", "tomorrow", "backfill"]
Priority = Literal["critical", "optional"]
RunDateRelation = Literal["before_today", "today", "after_today"]

NAME_PATTERN = r"^[A-Za-z0-9][A-Za-z0-9_.:-]{0,127}$"
Name = Annotated[str, Field(pattern=NAME_PATTERN)]
EnvName = Annotated[str, Field(pattern=r"^[A-Z_][A-Z0-9_]*$")]


class Frozen(BaseModel):
    """Base of every config model: immutable, and unknown keys are an error."""

    model_config = ConfigDict(frozen=True, extra="forbid")


class EntityCoverageConfig(Frozen):
    """Entity coverage of a processor's finish: ``records / expected_records`` and lockouts."""

    min_ratio: float = Field(default=0.8, gt=0, le=1)
    lockouts_over: int = Field(
        default=50, ge=0, description="entity lockouts (circuit breakers) that make a mass lockout"
    )
    lockouts_check: Annotated[str, Field(min_length=1, max_length=128)] | None = Field(
        default=None, description="a check whose value is the lockout count (default: the "
        "finishing event's `lockouts` attribute)",
    )


class ProcessorConfig(Frozen):
    """A unit of work inside a phase that reports its own events."""

    name: Name
    priority: Priority = "critical"
    depends_on: tuple[Name, ...] = ()
    aliases: tuple[Name, ...] = Field(
        default=(), description="other names producers report for it (class names)"
    )
    output: str | None = Field(default=None, description="the table or object it writes")
    disabled: bool = Field(default=False, description="accepted if reported, never expected")
    coverage: EntityCoverageConfig | None = Field(
        default=None, description="alert when a finish covers too few entities (records / expected)"
    )


class ModeExpectation(Frozen):
    """What a phase expects in one mode."""

    expected: tuple[Name, ...]
    critical: tuple[Name, ...] | None = Field(
        default=None, description="default: the expected processors whose priority is critical"
    )
    required_count: int | None = Field(
        default=None, ge=0, description="completions that make the phase complete (default: all)"
    )


class CallerAuth(Frozen):
    """How phasewatch authenticates to a service it calls: a static bearer token or a Google ID token."""

    token_env: EnvName | None = Field(
        default=None, description="the environment variable holding a static bearer token",
    )
    auth: Literal["google"] | None = Field(
        default=None, description="google: a Google-signed ID token of phasewatch's service account "
        "(Cloud Run / Cloud Functions behind IAM; the account needs roles/run.invoker there)",
    )
    audience: Annotated[str, Field(min_length=1, max_length=2048)] | None = Field(
        default=None, description="the ID token's aud (default: the URL's scheme://host)",
    )

    @field_validator("auth")
    @classmethod
    def _one_credential(cls, auth: str | None, info: ValidationInfo) -> str | None:
        if auth is not None and info.data.get("token_env") is not None:
            raise ValueError(f"auth: {auth} and token_env are exclusive (the ID token is the "
                             "bearer token); remove one")
        return auth

    @field_validator("audience")
    @classmethod
    def _audience_of_id_token(cls, audience: str | None, info: ValidationInfo) -> str | None:
        if audience is not None and "auth" in info.data and info.data["auth"] != "google":
            raise ValueError("audience is the ID token's; it needs auth: google")
        return audience

    def audience_for(self, url: HttpUrl | str) -> str | None:
        """The ID token audience for calling ``url``, or None when auth is not google."""
        if self.auth != "google":
            return None
        if self.audience is not None:
            return self.audience
        parts = urlsplit(str(url))  # an HttpUrl drops a default port: https://x.run.app
        origin = f"{parts.scheme}://{parts.netloc.rpartition('@')[2]}"
        if (parts.hostname or "").endswith(".cloudfunctions.net"):
            return origin + parts.path  # a 1st-gen function expects its full URL
        return origin


class HttpTrigger(CallerAuth):
    """Start a phase by an HTTP request (a JSON body and an Idempotency-Key header)."""

    kind: Literal["http"]
    url: HttpUrl
    method: Literal["POST", "PUT"] = "POST"
    already_running_status: tuple[int, ...] = (409,)
    timeout_s: float = Field(default=10.0, gt=0, le=300)


class PubSubTrigger(Frozen):
    """Start a phase by publishing to a Pub/Sub topic."""

    kind: Literal["pubsub"]
    topic: Name
    project_env: EnvName = "GOOGLE_CLOUD_PROJECT"


class LogTrigger(Frozen):
    """Record the trigger decision only (dry run)."""

    kind: Literal["log"]


TriggerConfig = Annotated[HttpTrigger | PubSubTrigger | LogTrigger, Field(discriminator="kind")]


class ServiceConfig(CallerAuth):
    """A deployed service whose health gates the phases it runs (probed with its auth)."""

    kind: Literal["cloud_run", "cloud_function", "other"] = "cloud_run"
    health_url: HttpUrl
    ready_url: HttpUrl | None = None
    deep_url: HttpUrl | None = None
    identity: str | None = Field(
        default=None, description="the name the health body must report; another name is unhealthy"
    )
    identity_field: str = "service"


# --- actuator: how phasewatch starts a phase, gates it, verifies it and recovers stalled work
# (monitor/actuator reads these; the README's "Actuator" section is the policy language).

TimeOfDay = Annotated[str, Field(pattern=r"^([01][0-9]|2[0-3]):[0-5][0-9]$")]
DEFAULT_DAY_OFFSET: dict[str, int] = {"overnight": 1, "same_day": 0, "tomorrow": -1, "backfill": 0}


class AllCompleteRule(Frozen):
    """Due when the upstream phase is complete (every expected processor, or its required count)."""

    kind: Literal["all_complete"]
    name: Name = "all_complete"


class CriticalPlusFractionRule(Frozen):
    """Due when every critical processor is done and at least ``min_fraction`` of the expected."""

    kind: Literal["critical_plus_fraction"]
    name: Name = "critical_plus_fraction"
    min_fraction: float = Field(gt=0, le=1)


class TierConfig(Frozen):
    """One tier: after ``after_min`` since the upstream's first (or last) completion, accept less."""

    name: Name
    after_min: float = Field(ge=0)
    since: Literal["first_completion", "last_completion"] = "first_completion"
    min_done: int | None = Field(default=None, ge=0, description="capped at the expected count")
    min_fraction: float | None = Field(default=None, ge=0, le=1)
    require_critical: bool = False


class TiersRule(Frozen):
    """Due when a tier's time has come and its count is met, ``require`` always done."""

    kind: Literal["tiers"]
    name: Name = "tiers"
    require: tuple[Name, ...] = ()
    tiers: tuple[TierConfig, ...] = Field(min_length=1)


TransitionRule = Annotated[
    AllCompleteRule | CriticalPlusFractionRule | TiersRule, Field(discriminator="kind")
]


class BackstopConfig(Frozen):
    """At ``at`` (pipeline time) on run_date + ``day_offset``, trigger with whatever exists."""

    mode: Mode
    at: TimeOfDay
    day_offset: int | None = Field(
        default=None, ge=-7, le=7,
        description="days after the run date (default: overnight 1, same_day 0, tomorrow -1, backfill 0)",
    )

    within_min: float = Field(
        default=60.0, gt=0,
        description="how long after its time the backstop applies; later, only the rules decide",
    )

    @property
    def offset_days(self) -> int:
        return DEFAULT_DAY_OFFSET[self.mode] if self.day_offset is None else self.day_offset


class HealthGateConfig(Frozen):
    """Hold the trigger while a service's health (and readiness) probe does not pass."""

    kind: Literal["health"]
    services: tuple[Name, ...] | None = Field(default=None, description="default: the phase's services")
    endpoints: tuple[Literal["health", "ready", "deep"], ...] = ("health", "ready")


class CoverageGateConfig(Frozen):
    """Hold the trigger while upstream processors cover less than ``min_ratio`` of expected records."""

    kind: Literal["coverage"]
    processors: tuple[Name, ...] = Field(min_length=1)
    min_ratio: float = Field(gt=0, le=1)
    on_missing: Literal["pass", "defer"] = "pass"


class CheckGateConfig(Frozen):
    """Hold the trigger while a data check's latest value is outside [min, max] or too old."""

    kind: Literal["check"]
    check: Annotated[str, Field(min_length=1, max_length=128)]
    min: float | None = None
    max: float | None = None
    max_age_min: float | None = Field(default=None, gt=0)
    on_missing: Literal["pass", "defer"] = "pass"

    @model_validator(mode="after")
    def _bounds(self) -> CheckGateConfig:
        if self.min is None and self.max is None:
            raise ValueError("a check gate needs min, max or both")
        return self


GateConfig = Annotated[
    HealthGateConfig | CoverageGateConfig | CheckGateConfig, Field(discriminator="kind")
]


class RecoveryActionConfig(CallerAuth):
    """One recovery step: an HTTP call, or a re-trigger of the phase for its missing processors."""

    kind: Literal["http", "retrigger"]
    url: HttpUrl | None = None
    method: Literal["POST", "PUT"] = "POST"
    body: dict[str, str | int | float | bool] = Field(default_factory=dict)
    already_running_status: tuple[int, ...] = (409,)
    timeout_s: float = Field(default=10.0, gt=0, le=300)
    services: tuple[Name, ...] | None = Field(
        default=None, description="services whose health gates this step (default: the recovery's)"
    )
    scope: Literal["batch", "run"] = Field(
        default="batch",
        description="cooldown scope: batch (per batch) or run (once per run within the cooldown)",
    )
    restarts: bool = Field(
        default=False,
        description="it starts the phase's work again: held while a guard (retry storm, "
        "deterministic failure) is tripped on the phase; retrigger always is",
    )

    @model_validator(mode="after")
    def _url(self) -> RecoveryActionConfig:
        if self.kind == "http" and self.url is None:
            raise ValueError("an http recovery action needs url")
        if self.kind == "retrigger" and self.url is not None:
            raise ValueError("a retrigger action uses the phase's triggers; remove url")
        if self.kind == "retrigger" and self.auth is not None:
            raise ValueError("a retrigger action uses the phase's triggers and their auth; remove auth")
        return self


class BatchStallRule(Frozen):
    """A batch is stalled when every given bound holds; then its actions run in order."""

    name: Name
    min_fraction: float | None = Field(default=None, ge=0, le=1)
    max_fraction: float | None = Field(default=None, ge=0, le=1)
    idle_min: float | None = Field(default=None, gt=0)
    older_than_min: float | None = Field(default=None, gt=0)
    actions: tuple[Name, ...] = ()

    @model_validator(mode="after")
    def _time_bound(self) -> BatchStallRule:
        if self.idle_min is None and self.older_than_min is None:
            raise ValueError(f"batch rule {self.name!r} needs idle_min, older_than_min or both")
        return self


class AlreadyRunningPolicy(Frozen):
    """When a trigger is answered "already running" and the phase has not moved for ``idle_min``."""

    idle_min: float = Field(default=5.0, gt=0)
    actions: tuple[Name, ...] = Field(min_length=1)


class RecoveryConfig(Frozen):
    """Stalled-work recovery of a phase: named actions and the rules that run them."""

    services: tuple[Name, ...] | None = Field(
        default=None, description="services whose health gates every action (default: the phase's)"
    )
    actions: dict[Name, RecoveryActionConfig] = Field(default_factory=dict)
    batches: tuple[BatchStallRule, ...] = ()
    stalled_processors: tuple[Name, ...] = Field(
        default=(), description="actions for a processor running past its timeout"
    )
    on_already_running: AlreadyRunningPolicy | None = None

    @model_validator(mode="after")
    def _known_actions(self) -> RecoveryConfig:
        known = set(self.actions) | {"retrigger"}
        used = [a for r in self.batches for a in r.actions] + list(self.stalled_processors)
        if self.on_already_running is not None:
            used += list(self.on_already_running.actions)
        bad = sorted({a for a in used if a not in known})
        if bad:
            raise ValueError(f"recovery names actions {bad}; allowed: {sorted(known)}")
        return self


class TransitionConfig(Frozen):
    """When a phase is due (rules, backstops), what gates its trigger, how it is watched."""

    rules: tuple[TransitionRule, ...] = Field(
        default=(AllCompleteRule(kind="all_complete"),), min_length=1,
        description="tried in order; the first satisfied one gives the trigger's reason",
    )
    trigger_when: Literal["due", "overdue"] = Field(
        default="due",
        description="due: as soon as a rule holds; overdue: only when the phase has not started "
        "start_within_min after it became due (a backup for another trigger path)",
    )
    modes: tuple[Mode, ...] | None = Field(
        default=None, description="modes the transition applies in (triggers, overdue and stuck "
        "alerts); default: all",
    )
    gates: tuple[GateConfig, ...] | None = Field(
        default=None, description="default: a health gate on the phase's services"
    )
    backstops: tuple[BackstopConfig, ...] = ()
    stuck_after_min: float | None = Field(
        default=60.0, gt=0, description="alert when the upstream has been idle this long, incomplete"
    )
    start_within_min: float | None = Field(
        default=None, gt=0, description="default: actuator.verification.start_within_min"
    )
    finish_within_min: float | None = Field(
        default=None, gt=0, description="static phase timeout (default: actuator.stalled)"
    )
    recovery: RecoveryConfig | None = None


class TriggerRetryConfig(Frozen):
    """Retries of a trigger the sink did not accept: capped full jitter, then escalation."""

    initial_s: float = Field(default=5.0, gt=0)
    max_s: float = Field(default=300.0, gt=0)
    escalate_after_attempts: int = Field(default=5, ge=1)
    escalate_after_min: float = Field(default=15.0, gt=0)
    give_up_after_h: float = Field(default=6.0, gt=0)


class DeferralConfig(Frozen):
    """A failing gate defers the trigger to ``retry_after_s`` (jittered by ``jitter_ratio``)."""

    retry_after_s: float = Field(default=300.0, gt=0)
    jitter_ratio: float = Field(default=0.2, ge=0, lt=1)
    alert_after: int = Field(default=3, ge=1, description="deferrals before a critical alert")
    give_up_after_h: float = Field(default=24.0, gt=0)


class HealthProbeConfig(Frozen):
    """Health probes of the configured services."""

    timeout_s: float = Field(default=5.0, gt=0, le=60)
    interval_s: float = Field(default=60.0, gt=0)
    unhealthy_after: int = Field(default=3, ge=1, description="consecutive failed probes before an alert")
    max_age_s: float = Field(default=30.0, ge=0, description="a gate reuses a probe this recent")
    warn_is_healthy: bool = Field(default=True, description="degraded / warn passes the gate")
    deploy_regression_min: float = Field(
        default=60.0, gt=0,
        description="an unhealthy streak that begins this soon after a deploy is a deploy regression",
    )


class VerificationConfig(Frozen):
    """Effect verification: the triggered phase must show a start within the time."""

    start_within_min: float = Field(default=15.0, gt=0)
    max_retriggers: int = Field(default=2, ge=0)


class StalledConfig(Frozen):
    """Static timeouts, used until (or where) adaptive timeouts have no value."""

    phase_timeout_min: float = Field(default=60.0, gt=0)
    processor_timeout_min: float = Field(default=240.0, gt=0)
    heartbeat_dead_min: float = Field(default=15.0, gt=0)


class BudgetConfig(Frozen):
    """Bounds on automated recovery actions."""

    per_run: int = Field(default=10, ge=0)
    per_day: int = Field(default=50, ge=0)
    cooldown_min: float = Field(default=10.0, ge=0)
    recurring_per_day: int = Field(default=3, ge=1, description="recoveries of a phase a day before an alert")
    step_attempts: int = Field(default=3, ge=1)


# Alert severities; the incidents' priorities are accepted too (P0 page, P1 urgent, P2/P3 ticket).
PRIORITY_SEVERITY = {"P0": "critical", "P1": "warning", "P2": "info", "P3": "info"}
AlertSeverity = Annotated[
    Literal["critical", "warning", "info"],
    BeforeValidator(lambda v: PRIORITY_SEVERITY.get(v, v) if isinstance(v, str) else v),
]


def _regex(pattern: str) -> str:
    try:
        re.compile(pattern)
    except re.error as exc:
        raise ValueError(f"not a valid regular expression ({exc}); allowed: Python re syntax") from None
    return pattern


Regex = Annotated[str, Field(min_length=1, max_length=500), AfterValidator(_regex)]


class SignatureCategory(Frozen):
    """A kind of deterministic failure, recognised by regexes over the error text."""

    name: Name
    title: Annotated[str, Field(min_length=1, max_length=80)] = Field(
        description="what the alert's summary calls it, e.g. 'schema drift'"
    )
    patterns: tuple[Regex, ...] = Field(min_length=1, description="any match puts an error here")
    severity: AlertSeverity = "critical"
    stops_retries: bool = Field(
        default=True, description="false: alert only (retrying later may help, e.g. quotas)"
    )


DEFAULT_SIGNATURE_CATEGORIES: tuple[SignatureCategory, ...] = (
    SignatureCategory(
        name="service_crash", title="service crash signature", severity="critical",
        patterns=(r"\b(ImportError|ModuleNotFoundError|SyntaxError)\b",
                  r"\bTypeError\b.*(__init__|unexpected keyword argument|required positional argument)"),
    ),
    SignatureCategory(
        name="schema_drift", title="schema drift", severity="critical",
        patterns=(r"(?i)provided schema does not match", r"(?i)no such field",
                  r"(?i)schema mismatch", r"(?i)cannot add fields",
                  r"(?i)unrecognized name:", r"(?i)missing (required )?columns?"),
    ),
    SignatureCategory(
        name="permission_denied", title="permission denied", severity="critical",
        patterns=(r"(?i)permission[ _]denied", r"(?i)\b403\b.*forbidden", r"(?i)access denied",
                  r"(?i)does not have [\w.]*\s*permission"),
    ),
    SignatureCategory(
        name="quota", title="quota or rate limit", severity="warning", stops_retries=False,
        patterns=(r"(?i)quota", r"(?i)rate ?limit", r"(?i)resource_?exhausted",
                  r"(?i)too many requests", r"\b429\b"),
    ),
)


class GuardsConfig(Frozen):
    """Stop automated retries when they cannot help."""

    retry_storm_starts: int = Field(default=10, ge=2)
    retry_storm_window_min: float = Field(default=10.0, gt=0)
    same_error_times: int = Field(default=10, ge=2)
    failed_runs: int = Field(default=3, ge=2)
    categories: tuple[SignatureCategory, ...] = Field(
        default_factory=lambda: DEFAULT_SIGNATURE_CATEGORIES,
        description="what a repeated error signature means; the first matching category wins",
    )

    @model_validator(mode="after")
    def _unique_categories(self) -> GuardsConfig:
        names = [c.name for c in self.categories]
        dup = sorted({n for n in names if names.count(n) > 1})
        if dup:
            raise ValueError(f"guards.categories: names must be unique; repeated: {dup}")
        return self


class SubscriptionConfig(Frozen):
    """A subscription (not phasewatch) starts the phase on its upstream's completion messages."""

    name: Name
    topic: Name | None = Field(default=None, description="default: the upstream's completion_topic")
    invoked_within_min: float = Field(
        default=30.0, gt=0, description="no start this long after upstream traffic: not invoked"
    )


class RerunConfig(Frozen):
    """Extra payload fields of a re-run (cascade) trigger, e.g. ``{mode: REGENERATE}``."""

    payload: dict[Name, str | int | float | bool] = Field(default_factory=dict)


class DriftConfig(Frozen):
    """Expected-list drift: an expected processor that never reports while its phase does."""

    window_days: float = Field(default=7.0, gt=0)
    min_run_dates: int = Field(
        default=3, ge=1, description="run dates the phase reported in the window before judging"
    )
    interval_min: float = Field(default=60.0, gt=0, description="how often the store is scanned")


class AutoCascadeConfig(Frozen):
    """Start a cascade re-run of ``phase`` when check ``check`` confirms the upstream fix."""

    pipeline: Name
    phase: Name
    check: Annotated[str, Field(min_length=1, max_length=128)]
    min: float | None = None
    max: float | None = None
    within_h: float = Field(
        default=24.0, gt=0, description="run dates this recent (by their last event) are re-run"
    )

    @model_validator(mode="after")
    def _bounds(self) -> AutoCascadeConfig:
        if self.min is None and self.max is None:
            raise ValueError("an automatic cascade needs min, max or both")
        return self


class ActuatorConfig(Frozen):
    """The actuator: global switches and the defaults of every phase's transition."""

    enabled: bool = Field(default=True, description="kill switch: false stops every automated action")
    dry_run: bool = Field(default=False, description="decide and audit, call no sink")
    window_h: float = Field(default=36.0, gt=0, description="runs idle longer are left alone")
    retry: TriggerRetryConfig = TriggerRetryConfig()
    deferral: DeferralConfig = DeferralConfig()
    health: HealthProbeConfig = HealthProbeConfig()
    verification: VerificationConfig = VerificationConfig()
    stalled: StalledConfig = StalledConfig()
    budget: BudgetConfig = BudgetConfig()
    guards: GuardsConfig = GuardsConfig()
    drift: DriftConfig = DriftConfig()
    cascades: tuple[AutoCascadeConfig, ...] = ()


DEFAULT_TRANSITION = TransitionConfig()


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


_CONDITION = re.compile(r"^\s*(>=|<=|==|!=|>|<)\s*(-?\d+(?:\.\d+)?)\s*$")
CONDITION_OPERATORS = (">", ">=", "<", "<=", "==", "!=")


def _condition(text: str) -> str:
    if not _CONDITION.match(text):
        raise ValueError(
            f"condition {text!r}: expected an operator ({', '.join(CONDITION_OPERATORS)}) and a "
            "number, e.g. '> 0'"
        )
    return text


def parse_condition(text: str) -> tuple[str, float]:
    """A validated condition such as ``"> 0"`` as (operator, number)."""
    match = _CONDITION.match(text)
    if match is None:
        raise ValueError(_condition(text))
    return match.group(1), float(match.group(2))


Condition = Annotated[str, AfterValidator(_condition)]
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


class PipelineConfig(Frozen):
    """A phase-by-phase daily pipeline."""

    id: Name
    description: str | None = None
    timezone: Timezone
    modes: tuple[ModeRule, ...] = DEFAULT_MODE_RULES
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


class TelemetryConfig(Frozen):
    """Where traces go; metrics are always served on /metrics."""

    exporter: Literal["none", "console", "otlp_http"] = "none"
    otlp_endpoint: HttpUrl | None = None
    service_name: str = "phasewatch"


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


class ServerConfig(Frozen):
    """HTTP service limits and auth."""

    max_body_bytes: int = Field(default=5_000_000, ge=1024)
    token_env: EnvName = "PHASEWATCH_TOKEN"
    pubsub_push: PubSubPushConfig | None = Field(
        default=None, description="when set, POST /v1/pubsub/push needs a valid Google OIDC token "
        "(instead of the token_env bearer token)",
    )
    tick_interval_s: float = Field(default=30.0, gt=0)
    slo_interval_s: float = Field(
        default=300.0, gt=0,
        description="how often SLOs are evaluated on the ticks (runs arrive minutes apart)",
    )


class Config(Frozen):
    """The whole phasewatch configuration."""

    version: Literal[1] = 1
    pipelines: tuple[PipelineConfig, ...] = Field(min_length=1)
    telemetry: TelemetryConfig = TelemetryConfig()
    server: ServerConfig = ServerConfig()
    anomaly: AnomalyConfig = AnomalyConfig()
    actuator: ActuatorConfig = ActuatorConfig()
    slos: tuple[SLOSpec, ...] = ()
    alerting: AlertingConfig = AlertingConfig()

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
            _check_slo_names(f"slos[{i}:{slo.name}]", slo, self.pipeline_map)
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
        return self

    @cached_property
    def pipeline_map(self) -> dict[str, PipelineConfig]:
        return {p.id: p for p in self.pipelines}


def _check_slo_names(where: str, slo: SLOSpec, pipelines: dict[str, PipelineConfig]) -> None:
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


DEFAULT_CONFIG_NAME = "nba.yaml"


def default_config_text() -> str:
    """The bundled default config (the NBA example)."""
    return (resources.files("monitor") / "examples" / DEFAULT_CONFIG_NAME).read_text("utf-8")


def parse_config(text: str, source: str) -> Config:
    """Validate YAML text into a Config, or raise ConfigError naming each bad field."""
    try:
        data = yaml.safe_load(text)
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f"line {mark.line + 1}, column {mark.column + 1}" if mark else "document"
        raise ConfigError(source, [Problem(where, f"not valid YAML: {exc}")]) from None
    if not isinstance(data, dict):
        raise ConfigError(source, [Problem("(top)", "must be a mapping with 'pipelines'")])
    try:
        return Config.model_validate(data)
    except ValidationError as exc:
        raise ConfigError(source, problems_from_validation_error(exc, data)) from None


def load_config(path: str | Path | None = None) -> Config:
    """Load ``path``, or the bundled NBA example when ``path`` is None."""
    if path is None:
        return parse_config(default_config_text(), f"<bundled {DEFAULT_CONFIG_NAME}>")
    p = Path(path)
    try:
        text = p.read_text("utf-8")
    except OSError as exc:
        raise ConfigError(str(p), [Problem("(file)", f"cannot read: {exc.strerror}")]) from None
    return parse_config(text, str(p))


TRACES_EXPORTER_ENV = "PHASEWATCH_TRACES_EXPORTER"
OTLP_ENDPOINT_ENVS = ("OTEL_EXPORTER_OTLP_TRACES_ENDPOINT", "OTEL_EXPORTER_OTLP_ENDPOINT")


def apply_environment(config: Config, environ: Mapping[str, str] | None = None) -> Config:
    """``config`` with the trace exporter chosen by the environment, when it says so.

    ``PHASEWATCH_TRACES_EXPORTER`` (none | console | otlp_http) picks the exporter; the
    standard ``OTEL_EXPORTER_OTLP_TRACES_ENDPOINT`` / ``OTEL_EXPORTER_OTLP_ENDPOINT`` give the
    OTLP/HTTP endpoint (the latter as a base URL, to which ``/v1/traces`` is added).
    """
    env = os.environ if environ is None else environ
    update: dict[str, str] = {}
    if env.get(TRACES_EXPORTER_ENV):
        update["exporter"] = env[TRACES_EXPORTER_ENV]
    if env.get(OTLP_ENDPOINT_ENVS[0]):
        update["otlp_endpoint"] = env[OTLP_ENDPOINT_ENVS[0]]
    elif env.get(OTLP_ENDPOINT_ENVS[1]):
        update["otlp_endpoint"] = env[OTLP_ENDPOINT_ENVS[1]].rstrip("/") + "/v1/traces"
    if not update:
        return config
    merged = {**config.telemetry.model_dump(mode="json"), **update}
    try:
        telemetry = TelemetryConfig.model_validate(merged)
    except ValidationError as exc:
        problems = problems_from_validation_error(exc, merged, root=TelemetryConfig)
        named = [Problem(f"telemetry.{p.field}", p.message, p.value) for p in problems]
        raise ConfigError(f"environment ({TRACES_EXPORTER_ENV} / OTEL_EXPORTER_OTLP_*)", named) from None
    return config.model_copy(update={"telemetry": telemetry})


def resolve_secret(env_name: str | None, environ: Mapping[str, str] | None = None) -> str | None:
    """The value of the environment variable named in config, or None when unset or empty."""
    if env_name is None:
        return None
    value = (os.environ if environ is None else environ).get(env_name, "")
    return value or None

