"""The field types and the frozen base model that every config section shares.

``monitor.config`` (the pipelines and the root ``Config``) and each component's own section
(``monitor.actuator.config``) build on these; this module imports nothing of phasewatch.
"""

from __future__ import annotations

import operator
import re
from collections.abc import Callable
from typing import Annotated, Literal

from pydantic import AfterValidator, BaseModel, BeforeValidator, ConfigDict, Field

MODES = ("overnight", "same_day", "tomorrow", "backfill")
Mode = Literal["overnight", "same_day", "tomorrow", "backfill"]
# The run date of a mode's run, in days from the day it runs on (overnight works on yesterday).
DEFAULT_DAY_OFFSET: dict[str, int] = {"overnight": 1, "same_day": 0, "tomorrow": -1, "backfill": 0}

NAME_PATTERN = r"^[A-Za-z0-9][A-Za-z0-9_.:-]{0,127}$"
Name = Annotated[str, Field(pattern=NAME_PATTERN)]
EnvName = Annotated[str, Field(pattern=r"^[A-Z_][A-Z0-9_]*$")]
TimeOfDay = Annotated[str, Field(pattern=r"^([01][0-9]|2[0-3]):[0-5][0-9]$")]

# Alert severities; the incidents' priorities are accepted too (P0 page, P1 urgent, P2/P3 ticket).
PRIORITY_SEVERITY = {"P0": "critical", "P1": "warning", "P2": "info", "P3": "info"}
AlertSeverity = Annotated[
    Literal["critical", "warning", "info"],
    BeforeValidator(
        lambda v: PRIORITY_SEVERITY.get(v, v) if isinstance(v, str) else v,
        # so `phasewatch config schema` accepts the priorities too
        json_schema_input_type=Literal["critical", "warning", "info", "P0", "P1", "P2", "P3"],
    ),
]

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


OPERATORS: dict[str, Callable[[float, float], bool]] = {
    ">": operator.gt, ">=": operator.ge, "<": operator.lt, "<=": operator.le,
    "==": operator.eq, "!=": operator.ne,
}


def condition_holds(text: str, value: float) -> bool:
    """Whether ``value`` meets a validated condition such as ``"< 0.9"``."""
    op, bound = parse_condition(text)
    return OPERATORS[op](value, bound)


Condition = Annotated[str, AfterValidator(_condition)]
"""A comparison with a number, such as ``"> 0"`` or ``"<= 0.95"`` (expectations, check thresholds)."""


class Frozen(BaseModel):
    """Base of every config model: immutable, and unknown keys are an error."""

    model_config = ConfigDict(frozen=True, extra="forbid")
