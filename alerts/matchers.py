"""Label matchers (``name=value``, ``!=``, ``=~``, ``!~``) as Alertmanager defines them.

A missing label matches as the empty string; regexes are anchored at both ends.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Literal

from alerts.errors import InvalidMatcher

Op = Literal["=", "!=", "=~", "!~"]
OPS: tuple[Op, ...] = ("=~", "!~", "!=", "=")  # longest first, so "=~" is not read as "="
LABEL_NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")
_MATCHER = re.compile(r"^\s*([A-Za-z_][A-Za-z0-9_]*)\s*(=~|!~|!=|=)\s*(.*?)\s*$", re.DOTALL)


@dataclass(frozen=True)
class Matcher:
    """One condition on one label."""

    name: str
    op: Op
    value: str

    def __post_init__(self) -> None:
        if not LABEL_NAME.fullmatch(self.name):
            raise InvalidMatcher(
                f"label name {self.name!r}; allowed: letters, digits and _, not starting "
                "with a digit"
            )
        if self.op not in OPS:
            raise InvalidMatcher(f"operator {self.op!r}; allowed: {', '.join(OPS)}")
        if self.op in ("=~", "!~"):
            try:
                re.compile(self.value)
            except re.error as exc:
                raise InvalidMatcher(f"regex {self.value!r} does not compile: {exc}") from None

    @property
    def _regex(self) -> re.Pattern[str]:
        return _compiled(self.value)

    def matches(self, labels: Mapping[str, str]) -> bool:
        value = labels.get(self.name, "")
        if self.op == "=":
            return value == self.value
        if self.op == "!=":
            return value != self.value
        found = self._regex.fullmatch(value) is not None
        return found if self.op == "=~" else not found

    def matches_empty(self) -> bool:
        """Whether an alert without this label would match (a silence needs one that does not)."""
        return self.matches({})

    def __str__(self) -> str:
        return f"{self.name}{self.op}{self.value}"

    def as_dict(self) -> dict[str, str]:
        return {"name": self.name, "op": self.op, "value": self.value}


_REGEX_CACHE: dict[str, re.Pattern[str]] = {}


def _compiled(pattern: str) -> re.Pattern[str]:
    compiled = _REGEX_CACHE.get(pattern)
    if compiled is None:
        if len(_REGEX_CACHE) > 4096:
            _REGEX_CACHE.clear()
        compiled = _REGEX_CACHE[pattern] = re.compile(pattern)
    return compiled


def parse_matcher(text: str) -> Matcher:
    """``severity="critical"``, ``phase!=phase1``, ``pipeline=~"nba|mlb"`` → a Matcher."""
    found = _MATCHER.match(text)
    if found is None:
        raise InvalidMatcher(
            f"matcher {text!r}; allowed: NAME=VALUE, NAME!=VALUE, NAME=~REGEX or NAME!~REGEX"
        )
    name, op, value = found.groups()
    if len(value) >= 2 and value[0] == value[-1] == '"':
        value = value[1:-1].replace('\\"', '"').replace("\\\\", "\\")
    return Matcher(name, op, value)  # type: ignore[arg-type]  # op is one of OPS by the regex


def parse_matchers(texts: Iterable[str]) -> tuple[Matcher, ...]:
    return tuple(parse_matcher(t) for t in texts)


def matches_all(matchers: Sequence[Matcher], labels: Mapping[str, str]) -> bool:
    """True when every matcher matches (an empty list matches everything)."""
    return all(m.matches(labels) for m in matchers)
