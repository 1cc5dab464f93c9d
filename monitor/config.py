"""Pipeline configuration: YAML validated once into frozen pydantic models.

The only module that reads the environment (``resolve_secret``) and config files.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from datetime import date
from functools import cached_property
from importlib import resources
from pathlib import Path
from typing import Annotated, Literal
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

import yaml
from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    HttpUrl,
    ValidationError,
    field_validator,
    model_validator,
)

from monitor.errors import ConfigError, Problem
from monitor.validation import problems_from_validation_error

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


class ModeExpectation(Frozen):
    """What a phase expects in one mode."""

    expected: tuple[Name, ...]
    critical: tuple[Name, ...] | None = Field(
        default=None, description="default: the expected processors whose priority is critical"
    )
    required_count: int | None = Field(
        default=None, ge=0, description="completions that make the phase complete (default: all)"
    )


class HttpTrigger(Frozen):
    """Start a phase by an HTTP request (a JSON body and an Idempotency-Key header)."""

    kind: Literal["http"]
    url: HttpUrl
    method: Literal["POST", "PUT"] = "POST"
    token_env: EnvName | None = None
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


class ServiceConfig(Frozen):
    """A deployed service whose health gates the phases it runs."""

    kind: Literal["cloud_run", "cloud_function", "other"] = "cloud_run"
    health_url: HttpUrl
    ready_url: HttpUrl | None = None
    deep_url: HttpUrl | None = None
    identity: str | None = Field(
        default=None, description="the name the health body must report; another name is unhealthy"
    )
    identity_field: str = "service"
    token_env: EnvName | None = None


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


class PipelineConfig(Frozen):
    """A phase-by-phase daily pipeline."""

    id: Name
    description: str | None = None
    timezone: str
    modes: tuple[ModeRule, ...] = DEFAULT_MODE_RULES
    services: dict[Name, ServiceConfig] = Field(default_factory=dict)
    phases: tuple[PhaseConfig, ...] = Field(min_length=1)

    @field_validator("timezone")
    @classmethod
    def _known_zone(cls, value: str) -> str:
        try:
            ZoneInfo(value)
        except (ZoneInfoNotFoundError, ValueError):
            raise ValueError(
                f"unknown timezone {value!r}; allowed: an IANA name such as America/New_York"
            ) from None
        return value

    @model_validator(mode="after")
    def _check_graph(self) -> PipelineConfig:
        ids = [p.id for p in self.phases]
        dup = sorted({i for i in ids if ids.count(i) > 1})
        if dup:
            raise ValueError(f"phase ids must be unique; repeated: {dup}")
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


class TelemetryConfig(Frozen):
    """Where traces go; metrics are always served on /metrics."""

    exporter: Literal["none", "console", "otlp_http"] = "none"
    otlp_endpoint: HttpUrl | None = None
    service_name: str = "phasewatch"


class ServerConfig(Frozen):
    """HTTP service limits and auth."""

    max_body_bytes: int = Field(default=5_000_000, ge=1024)
    token_env: EnvName = "PHASEWATCH_TOKEN"
    tick_interval_s: float = Field(default=30.0, gt=0)


class Config(Frozen):
    """The whole phasewatch configuration."""

    version: Literal[1] = 1
    pipelines: tuple[PipelineConfig, ...] = Field(min_length=1)
    telemetry: TelemetryConfig = TelemetryConfig()
    server: ServerConfig = ServerConfig()

    @model_validator(mode="after")
    def _unique_pipelines(self) -> Config:
        ids = [p.id for p in self.pipelines]
        dup = sorted({i for i in ids if ids.count(i) > 1})
        if dup:
            raise ValueError(f"pipeline ids must be unique; repeated: {dup}")
        return self

    @cached_property
    def pipeline_map(self) -> dict[str, PipelineConfig]:
        return {p.id: p for p in self.pipelines}


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


def resolve_secret(env_name: str | None, environ: Mapping[str, str] | None = None) -> str | None:
    """The value of the environment variable named in config, or None when unset or empty."""
    if env_name is None:
        return None
    value = (os.environ if environ is None else environ).get(env_name, "")
    return value or None

