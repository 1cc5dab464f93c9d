"""A check result: the value a data check measured at a time (and what it found missing).

The one shape every source records (a runner, ``POST /v1/checks``, ``phasewatch check
record``, a replay's ``check`` line) and every reader gets back from ``latest(name)``
(check gates, expectations, watches, playbooks, the daily summary, SLIs)::

    {"name": "boxscore_missing_games", "value": 2, "at": "2026-01-18T11:00:03Z",
     "entities": ["0022500601", "0022500604"], "run_date": "2026-01-17", "pipeline": "nba"}

``entities`` (the ids of missing entities: games, players, teams), ``run_date`` (the run
the value is about) and ``pipeline`` are optional.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from datetime import date, datetime
from typing import Annotated, Any

from pydantic import AwareDatetime, BaseModel, ConfigDict, Field, FiniteFloat, StringConstraints

MAX_ENTITIES = 10_000
NameText = Annotated[str, StringConstraints(min_length=1, max_length=128)]
EntityId = Annotated[str, StringConstraints(min_length=1, max_length=256)]


@dataclass(frozen=True)
class CheckResult:
    """One measurement of a data check (``CheckValue`` to the actuator's gates)."""

    name: str
    value: float
    at: datetime
    entities: tuple[str, ...] | None = None
    run_date: date | None = None
    pipeline: str | None = None
    source: str = "api"  # runner | api | cli | replay

    def __post_init__(self) -> None:
        if self.at.tzinfo is None:
            raise ValueError("CheckResult.at must be timezone-aware")

    def as_dict(self) -> dict[str, Any]:
        """The JSON shape (non-finite values, which only tests make, as null)."""
        out: dict[str, Any] = {
            "name": self.name, "value": self.value if math.isfinite(self.value) else None,
            "at": self.at.isoformat(), "source": self.source,
        }
        if self.entities is not None:
            out["entities"] = list(self.entities)
        if self.run_date is not None:
            out["run_date"] = self.run_date.isoformat()
        if self.pipeline is not None:
            out["pipeline"] = self.pipeline
        return out


class CheckInput(BaseModel):
    """One result as ``POST /v1/checks`` takes it (the same fields as ``CheckResult``)."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    name: NameText
    value: FiniteFloat
    at: AwareDatetime
    entities: list[EntityId] | None = Field(default=None, max_length=MAX_ENTITIES)
    run_date: date | None = None
    pipeline: NameText | None = None

    def result(self, source: str) -> CheckResult:
        entities = tuple(self.entities) if self.entities is not None else None
        return CheckResult(self.name, float(self.value), self.at, entities, self.run_date,
                           self.pipeline, source)
