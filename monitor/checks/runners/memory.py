"""An in-memory runner for tests: answers each query with the rows a test gives it."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

from monitor.checks.errors import CheckRunError
from monitor.checks.runners.base import ParamValue, Row

Answer = list[Row] | CheckRunError | Callable[[Mapping[str, ParamValue]], list[Row]]


@dataclass
class MemoryRunner:
    """Answers ``query`` from ``answers`` (by the exact SQL, else ``default``); records calls."""

    answers: dict[str, Answer] = field(default_factory=dict)
    default: Answer = field(default_factory=list)
    calls: list[tuple[str, dict[str, ParamValue]]] = field(default_factory=list)

    def query(self, sql: str, params: Mapping[str, ParamValue], timeout_s: float) -> list[Row]:
        self.calls.append((sql, dict(params)))
        answer = self.answers.get(sql, self.default)
        if isinstance(answer, CheckRunError):
            raise answer
        if callable(answer):
            return answer(params)
        return list(answer)

    def close(self) -> None:
        return None

    def factory(self, config: Any) -> MemoryRunner:
        """Use as a ``RunnerFactory``: every check gets this runner."""
        return self
