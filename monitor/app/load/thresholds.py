"""Pass or fail of a load test: the figures it measured against the limits it was given."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError

from monitor.errors import ConfigError, Problem
from monitor.validation import problems_from_validation_error


class Thresholds(BaseModel):
    """The limits (``--thresholds FILE``, YAML or JSON; a key left out keeps its default)."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    max_lost: int = Field(default=0, ge=0, description="acknowledged events the store does not hold")
    max_failed: int = Field(default=0, ge=0, description="requests not acknowledged (4xx, 5xx, errors)")
    max_duplicate_triggers: int = Field(default=0, ge=0, description="a run's trigger sent twice")
    max_missing_triggers: int = Field(
        default=0, ge=0, description="synthetic: runs whose every event was acknowledged and no "
        "trigger came")
    ingest_p99_ms: float = Field(default=500.0, gt=0, description="event sent -> acknowledged, p99")
    decision_lag_p99_s: float = Field(
        default=5.0, gt=0, description="last upstream event sent -> its trigger at the peer, p99")
    max_rss_mb: float = Field(default=1024.0, gt=0, description="peak RSS of --pid")


@dataclass(frozen=True)
class Breach:
    """One limit a figure went past."""

    name: str
    value: float
    limit: float

    def __str__(self) -> str:
        return f"{self.name} {self.value:g} > {self.limit:g}"


def load_thresholds(path: Path | None) -> Thresholds:
    """The defaults, or the file's values over them; ConfigError names the file and key."""
    if path is None:
        return Thresholds()
    source = str(path)
    try:
        data: Any = yaml.safe_load(path.read_text("utf-8")) or {}
    except OSError as exc:
        raise ConfigError(source, [_problem("(file)", f"cannot read: {exc.strerror}")]) from None
    except yaml.YAMLError as exc:
        raise ConfigError(source, [_problem("(file)", f"not YAML or JSON: {exc}")]) from None
    if not isinstance(data, dict):
        raise ConfigError(source, [_problem("(file)", "must be a mapping of limits; allowed keys: "
                                            + ", ".join(Thresholds.model_fields))])
    try:
        return Thresholds.model_validate(data)
    except ValidationError as exc:
        raise ConfigError(source, problems_from_validation_error(exc, data, root=Thresholds)) from None


def judge(figures: dict[str, Any], limits: Thresholds) -> list[Breach]:
    """The limits the figures went past (a figure that was not measured is not judged)."""
    pairs = [
        ("lost", limits.max_lost), ("failed", limits.max_failed),
        ("duplicate_triggers", limits.max_duplicate_triggers),
        ("missing_triggers", limits.max_missing_triggers),
        ("ingest_p99_ms", limits.ingest_p99_ms), ("decision_lag_p99_s", limits.decision_lag_p99_s),
        ("peak_rss_mb", limits.max_rss_mb),
    ]
    out = []
    for name, limit in pairs:
        value = figures.get(name)
        if value is not None and value > limit:
            out.append(Breach(name, float(value), float(limit)))
    return out


def _problem(field: str, message: str) -> Problem:
    return Problem(field, message)
