"""The ``publish`` section: which phases make a dataset available, and where that is said.

Only this component's own models; ``monitor.config`` composes the section into ``Config``
and checks each dataset's pipeline and phase against the pipelines.
"""

from __future__ import annotations

from functools import cached_property
from typing import Annotated, Literal

from pydantic import AfterValidator, Field, HttpUrl, model_validator

from monitor.fields import EnvName, Frozen, Name

LiveMode = Literal["overnight", "same_day", "tomorrow"]
EVENT_TYPE = "dev.phasewatch.dataset.available.v1"
_EXTENSION = r"^[a-z0-9]{1,20}$"


def _uri_reference(text: str) -> str:
    if not text or any(c.isspace() for c in text):
        raise ValueError(f"{text!r}: expected a URI reference without spaces, e.g. /phasewatch")
    return text


class DatasetCheck(Frozen):
    """A data check the dataset must pass, measured after the phase completed."""

    check: Annotated[str, Field(min_length=1, max_length=128)]
    min: float | None = None
    max: float | None = None

    @model_validator(mode="after")
    def _bounds(self) -> DatasetCheck:
        if self.min is None and self.max is None:
            raise ValueError("a dataset check needs min, max or both")
        return self

    def passes(self, value: float) -> bool:
        return (self.min is None or value >= self.min) and (self.max is None or value <= self.max)

    def condition(self) -> str:
        parts = ([f">= {self.min:g}"] if self.min is not None else []) + (
            [f"<= {self.max:g}"] if self.max is not None else [])
        return " and ".join(parts)


class DatasetConfig(Frozen):
    """The data one phase of a pipeline produces: available once the phase is complete and
    its checks pass."""

    name: Name = Field(description="the dataset's name: the event's subject is NAME/RUN_DATE")
    pipeline: Name
    phase: Name
    modes: tuple[LiveMode, ...] = Field(
        default=("overnight", "same_day", "tomorrow"),
        description="the runs that publish (backfills never do)",
    )
    checks: tuple[DatasetCheck, ...] = Field(
        default=(), description="checks that must pass, measured after the phase completed "
        "(none: complete is enough)",
    )
    checks_within_h: float = Field(
        default=6.0, gt=0, le=72,
        description="how long after completion the checks may take to pass; then withheld",
    )
    tables: tuple[Annotated[str, Field(min_length=1, max_length=1024)], ...] = Field(
        default=(), description="the tables it is made of (lineage outputs; default: the "
        "phase's processors' outputs)",
    )


class PubSubPublish(Frozen):
    """Publish the CloudEvent to a Pub/Sub topic (binary mode, ordering key per dataset)."""

    topic: Name
    project_env: EnvName = "GOOGLE_CLOUD_PROJECT"
    timeout_s: float = Field(default=30.0, gt=0, le=600)


class OpenLineagePublish(Frozen):
    """Also POST an OpenLineage RunEvent (COMPLETE) per published phase."""

    url: HttpUrl = Field(description="the OpenLineage backend's base URL (Marquez: its API)")
    endpoint: Annotated[str, Field(min_length=1, max_length=200)] = "api/v1/lineage"
    namespace: Annotated[str, Field(min_length=1, max_length=200)] = Field(
        default="phasewatch", description="the jobs' namespace (job name: PIPELINE.PHASE)")
    dataset_namespace: Annotated[str, Field(min_length=1, max_length=200)] = Field(
        default="bigquery", description="the output tables' namespace")
    api_key_env: EnvName | None = Field(
        default=None, description="environment variable holding a bearer API key")
    timeout_s: float = Field(default=10.0, gt=0, le=120)


class PublishRetry(Frozen):
    """How a failed publish is retried (full jitter between initial_s and max_s)."""

    initial_s: float = Field(default=5.0, gt=0)
    max_s: float = Field(default=300.0, gt=0)
    give_up_after_h: float = Field(default=24.0, gt=0)


class PublishConfig(Frozen):
    """"Data available" events: one CloudEvent per (run, phase, generation) of a dataset."""

    datasets: tuple[DatasetConfig, ...] = ()
    type: Annotated[str, Field(min_length=1, max_length=200)] = Field(
        default=EVENT_TYPE, description="the events' ce-type")
    source: Annotated[str, AfterValidator(_uri_reference), Field(max_length=500)] = Field(
        default="/phasewatch", description="the events' ce-source, followed by /PIPELINE")
    pubsub: PubSubPublish | None = None
    openlineage: OpenLineagePublish | None = None
    retry: PublishRetry = PublishRetry()

    @model_validator(mode="after")
    def _consistent(self) -> PublishConfig:
        names = [d.name for d in self.datasets]
        dup = sorted({n for n in names if names.count(n) > 1})
        if dup:
            raise ValueError(f"datasets: names must be unique; repeated: {dup}")
        phases = [(d.pipeline, d.phase) for d in self.datasets]
        dup_phases = sorted({f"{p}/{ph}" for p, ph in phases if phases.count((p, ph)) > 1})
        if dup_phases:
            raise ValueError(f"datasets: one dataset per phase; repeated: {dup_phases}")
        if self.datasets and self.pubsub is None and self.openlineage is None:
            raise ValueError("datasets need somewhere to publish: pubsub, openlineage or both")
        return self

    @cached_property
    def by_phase(self) -> dict[tuple[str, str], DatasetConfig]:
        return {(d.pipeline, d.phase): d for d in self.datasets}

    def sinks(self) -> tuple[str, ...]:
        """The configured destinations, in delivery order."""
        return tuple(n for n, cfg in (("pubsub", self.pubsub), ("openlineage", self.openlineage))
                     if cfg is not None)
