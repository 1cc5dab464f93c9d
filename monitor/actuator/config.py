"""The actuator's configuration: how phasewatch starts a phase, gates it, verifies it and
recovers stalled work (the README's "Actuator" section is the policy language).

The global section is ``actuator:`` (``ActuatorConfig``); the per-phase parts (``triggers``,
``transition``, ``subscription``, ``rerun``), the pipeline's ``services`` and a processor's
``coverage`` are read by the actuator too and live here. The root ``monitor.config.Config``
composes them. This module imports nothing of the actuator's runtime.
"""

from __future__ import annotations

import re
from datetime import datetime, time, timedelta
from typing import Annotated, Literal
from urllib.parse import urlsplit
from zoneinfo import ZoneInfo

from croniter import croniter
from pydantic import (
    AfterValidator,
    Field,
    HttpUrl,
    ValidationInfo,
    field_validator,
    model_validator,
)

from monitor.fields import DEFAULT_DAY_OFFSET, AlertSeverity, EnvName, Frozen, Mode, Name, TimeOfDay
from monitor.validation import Timezone


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
    """Hold the trigger while upstream processors cover less than ``min_ratio`` of expected
    records; a skipped or failed processor covers nothing."""

    kind: Literal["coverage"]
    processors: tuple[Name, ...] = Field(min_length=1)
    min_ratio: float = Field(gt=0, le=1)
    on_missing: Literal["pass", "defer"] = Field(
        default="defer", description="a processor without records / expected_records: defer "
        "(fail closed) or pass",
    )


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
    recovered_after: int = Field(
        default=3, ge=1, description="consecutive passing probes before that alert resolves (a "
        "flapping service is one outage); held triggers go out at the first pass",
    )
    flap_window_min: float = Field(
        default=30.0, gt=0, description="a service unhealthy again this soon after its "
        "outage resolved is flapping: that alert says so and resolves only once the service "
        "has passed for this long",
    )
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


CheckName = Annotated[str, Field(min_length=1, max_length=128)]


class CheckBounds(Frozen):
    """A check's reading passes when it is within [min, max] (either may be left out)."""

    check: CheckName
    min: float | None = None
    max: float | None = None

    @model_validator(mode="after")
    def _bounds(self) -> CheckBounds:
        if self.min is None and self.max is None:
            raise ValueError(f"check {self.check!r} needs min, max or both")
        return self

    def passes(self, value: float) -> bool:
        return (self.min is None or value >= self.min) and (self.max is None or value <= self.max)


class ResetTime(Frozen):
    """When a quota resets: a time of day (``at``) or a cron expression, in a timezone."""

    at: TimeOfDay | None = None
    cron: Annotated[str, Field(min_length=1, max_length=100)] | None = Field(
        default=None, description="five fields (minute hour day month weekday), e.g. '5 0 * * *'",
    )
    timezone: Timezone

    @model_validator(mode="after")
    def _one_of(self) -> ResetTime:
        if (self.at is None) == (self.cron is None):
            raise ValueError("give at (HH:MM) or cron, not both")
        if self.cron is not None and not croniter.is_valid(self.cron):
            raise ValueError(f"cron {self.cron!r} is not a valid cron expression; allowed: five "
                             "fields such as '5 0 * * *'")
        return self

    def next_after(self, when: datetime) -> datetime:
        """The first reset time strictly after ``when`` (timezone-aware)."""
        tz = ZoneInfo(self.timezone)
        local = when.astimezone(tz)
        if self.cron is not None:
            found: datetime = croniter(self.cron, local).get_next(datetime)
            return found
        assert self.at is not None
        hour, minute = (int(x) for x in self.at.split(":"))
        day = local.date()
        while True:
            candidate = datetime.combine(day, time(hour, minute), tz)
            if candidate > local:
                return candidate
            day += timedelta(days=1)


class PlaybookBase(Frozen):
    """What every playbook has: where it acts, and its own switches (the actuator's kill
    switch and dry run apply too)."""

    name: Name
    pipeline: Name
    phase: Name
    enabled: bool = Field(default=True, description="this playbook's kill switch")
    dry_run: bool = Field(default=False, description="decide and audit, send nothing")
    modes: tuple[Mode, ...] | None = Field(default=None, description="default: every mode")

    def applies(self, mode: str) -> bool:
        return self.modes is None or mode in self.modes


class RerunMissingPlaybook(PlaybookBase):
    """Re-run ``phase`` for the entities a check found missing (the check result's
    ``entities``), sent in the trigger's payload."""

    kind: Literal["rerun_missing"]
    check: CheckName = Field(description="a check whose result lists the missing entity ids")
    processors: tuple[Name, ...] = Field(
        default=(), description="the processors to re-run (default: the whole phase)")
    payload_field: Name = Field(default="entities", description="the payload key of the ids")
    max_entities: int = Field(default=1000, ge=1, le=100_000)
    max_reruns: int = Field(default=2, ge=1, le=10, description="re-runs per run at most")


class QuarantinePlaybook(PlaybookBase):
    """On a retry storm of a processor, hold its automated re-triggers (quarantine) until
    the ``release`` check passes; then re-trigger it exactly once."""

    kind: Literal["quarantine"]
    processors: tuple[Name, ...] = Field(
        default=(), description="the processors it quarantines (default: any of the phase)")
    release: CheckBounds = Field(description="the precondition, e.g. all games final")
    max_hold_h: float = Field(default=24.0, gt=0, description="then abandoned, with an alert")


class DeferPlaybook(PlaybookBase):
    """When a processor of ``phase`` fails with an error of ``categories`` (a quota), hold
    the phase until the reset time, then run it once."""

    kind: Literal["defer"]
    categories: tuple[Name, ...] = Field(
        default=("quota",), min_length=1, description="signature categories (guards.categories)")
    until: ResetTime


class CascadePlaybook(PlaybookBase):
    """The automatic cascade re-run (``actuator.cascades``) as a playbook: when ``check``
    newly passes, re-run ``phase`` and every downstream phase, for runs whose coverage
    drop still fires."""

    kind: Literal["cascade"]
    check: CheckName
    min: float | None = None
    max: float | None = None
    within_h: float = Field(default=24.0, gt=0)

    @model_validator(mode="after")
    def _bounds(self) -> CascadePlaybook:
        if self.min is None and self.max is None:
            raise ValueError("a cascade playbook needs min, max or both")
        return self


PlaybookConfig = Annotated[
    RerunMissingPlaybook | QuarantinePlaybook | DeferPlaybook | CascadePlaybook,
    Field(discriminator="kind"),
]


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
    playbooks: tuple[PlaybookConfig, ...] = Field(
        default=(), description="remediations beyond re-triggering: rerun_missing, quarantine, "
        "defer, cascade (docs: actuator.md#playbooks)",
    )

    @model_validator(mode="after")
    def _unique_playbooks(self) -> ActuatorConfig:
        names = [p.name for p in self.playbooks]
        dup = sorted({n for n in names if names.count(n) > 1})
        if dup:
            raise ValueError(f"playbooks: names must be unique; repeated: {dup}")
        known = [c.name for c in self.guards.categories]
        for playbook in self.playbooks:
            if isinstance(playbook, DeferPlaybook):
                bad = [c for c in playbook.categories if c not in known]
                if bad:
                    raise ValueError(f"playbooks[{playbook.name}].categories {bad} are unknown; "
                                     f"allowed: guards.categories {known}")
        return self


DEFAULT_TRANSITION = TransitionConfig()
