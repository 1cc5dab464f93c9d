"""Silences: matchers, author, comment and expiry; persisted; created from the API or the CLI."""

from __future__ import annotations

import json
import re
import threading
import uuid
from collections.abc import Mapping
from dataclasses import dataclass, replace
from datetime import datetime, timedelta
from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError

from alerts.errors import InvalidMatcher, InvalidSilence, UnknownSilence
from alerts.matchers import Matcher, matches_all, parse_matcher
from monitor.errors import Problem
from monitor.store.base import ComponentStore, utc_text
from monitor.validation import Instant, problems_from_validation_error, render_value

SilenceState = Literal["pending", "active", "expired"]
_DURATION_PART = re.compile(r"(\d+(?:\.\d+)?)([dhms])")
_UNIT_S = {"d": 86400, "h": 3600, "m": 60, "s": 1}


def parse_duration(text: str) -> timedelta:
    """``90m``, ``2h``, ``1h30m``, ``1d`` or plain seconds → a timedelta."""
    raw = text.strip().lower()
    if re.fullmatch(r"\d+(\.\d+)?", raw):
        return timedelta(seconds=float(raw))
    if not raw or _DURATION_PART.sub("", raw):
        raise ValueError(f"duration {text!r}; allowed: e.g. 30m, 2h, 1h30m, 1d or seconds")
    return timedelta(seconds=sum(float(n) * _UNIT_S[u] for n, u in _DURATION_PART.findall(raw)))


@dataclass(frozen=True)
class Silence:
    """While active (starts_at ≤ now < ends_at), alerts its matchers match are not notified."""

    id: str
    matchers: tuple[Matcher, ...]
    author: str
    comment: str
    created_at: datetime
    starts_at: datetime
    ends_at: datetime
    updated_at: datetime

    def state(self, now: datetime) -> SilenceState:
        if now < self.starts_at:
            return "pending"
        return "active" if now < self.ends_at else "expired"

    def silences(self, labels: Mapping[str, str], now: datetime) -> bool:
        return self.state(now) == "active" and matches_all(self.matchers, labels)

    def as_dict(self, now: datetime) -> dict[str, Any]:
        return {
            "id": self.id, "matchers": [str(m) for m in self.matchers], "author": self.author,
            "comment": self.comment, "created_at": self.created_at.isoformat(),
            "starts_at": self.starts_at.isoformat(), "ends_at": self.ends_at.isoformat(),
            "state": self.state(now),
        }


class MatcherBody(BaseModel):
    """A matcher as an object (Alertmanager's API shape)."""

    model_config = ConfigDict(frozen=True, extra="forbid", populate_by_name=True)

    name: str
    value: str
    is_regex: bool = Field(default=False, alias="isRegex")
    is_equal: bool = Field(default=True, alias="isEqual")

    def text(self) -> str:
        op = ("=~" if self.is_regex else "=") if self.is_equal else ("!~" if self.is_regex else "!=")
        return f"{self.name}{op}{self.value}"


class SilenceRequest(BaseModel):
    """The body of ``POST /v1/silences`` (and what ``phasewatch silence add`` builds)."""

    model_config = ConfigDict(frozen=True, extra="forbid", populate_by_name=True)

    matchers: list[Annotated[str, Field(min_length=2, max_length=1024)] | MatcherBody] = Field(
        min_length=1, max_length=32
    )
    author: str = Field(min_length=1, max_length=128, alias="createdBy")
    comment: str = Field(min_length=1, max_length=2000)
    starts_at: Instant | None = Field(default=None, alias="startsAt")
    ends_at: Instant | None = Field(default=None, alias="endsAt")
    duration: str | None = Field(default=None, description="e.g. 2h; instead of ends_at")


class SilenceStore:
    """Silences in the alerts tables; active ones are kept in memory for matching."""

    def __init__(self, db: ComponentStore, max_duration: timedelta = timedelta(days=30)) -> None:
        self.db = db
        self.max_duration = max_duration
        self._lock = threading.Lock()
        self._silences: dict[str, Silence] = {}
        self._load()

    def _load(self) -> None:
        rows = self.db.read(
            "SELECT id, matchers, author, comment, created_at, starts_at, ends_at, updated_at"
            " FROM alert_silences ORDER BY created_at"
        )
        for r in rows:
            matchers = tuple(parse_matcher(t) for t in json.loads(r[1]))
            times = [datetime.fromisoformat(t) for t in r[4:8]]
            self._silences[r[0]] = Silence(r[0], matchers, r[2], r[3], *times)

    def create(self, body: Mapping[str, Any] | SilenceRequest, now: datetime) -> Silence:
        """Validate and store a silence; raises InvalidSilence naming each bad field."""
        request = self._request(body)
        silence = self._validate(request, now)
        self._save(silence)
        return silence

    def _request(self, body: Mapping[str, Any] | SilenceRequest) -> SilenceRequest:
        if isinstance(body, SilenceRequest):
            return body
        if not isinstance(body, Mapping):
            raise InvalidSilence(problems=[Problem("body", "must be a JSON object")])
        try:
            return SilenceRequest.model_validate(dict(body))
        except ValidationError as exc:
            problems = problems_from_validation_error(exc, dict(body), root=SilenceRequest)
            raise InvalidSilence(problems=problems) from None

    def _validate(self, req: SilenceRequest, now: datetime) -> Silence:
        problems: list[Problem] = []
        matchers: list[Matcher] = []
        for i, item in enumerate(req.matchers):
            text = item if isinstance(item, str) else item.text()
            try:
                matchers.append(parse_matcher(text))
            except InvalidMatcher as exc:
                problems.append(Problem(f"matchers[{i}]", str(exc), render_value(text)))
        if matchers and len(matchers) == len(req.matchers) and all(m.matches_empty() for m in matchers):
            problems.append(Problem(
                "matchers", "at least one matcher must require a label value (a silence that "
                "matches every alert is refused), e.g. alertname=deadline",
            ))
        starts = req.starts_at or now
        ends: datetime | None = req.ends_at
        if (req.ends_at is None) == (req.duration is None):
            problems.append(Problem("ends_at", "give exactly one of ends_at and duration"))
        elif req.duration is not None:
            try:
                ends = starts + parse_duration(req.duration)
            except ValueError as exc:
                problems.append(Problem("duration", str(exc)))
            except OverflowError:  # past datetime's range: far beyond the longest silence
                problems.append(Problem(
                    "duration", f"a silence may last at most {self._max_hours():g} h",
                    render_value(req.duration)))
        if ends is not None:
            if ends <= max(starts, now):
                problems.append(Problem("ends_at", "must be later than now and than starts_at",
                                        ends.isoformat()))
            elif ends - starts > self.max_duration:
                problems.append(Problem(
                    "ends_at", f"a silence may last at most {self._max_hours():g} h;"
                    " allowed: an earlier ends_at or a shorter duration", ends.isoformat(),
                ))
        if problems or ends is None:
            raise InvalidSilence(problems=problems)
        return Silence(
            id=str(uuid.uuid4()), matchers=tuple(matchers), author=req.author.strip(),
            comment=req.comment.strip(), created_at=now, starts_at=starts, ends_at=ends,
            updated_at=now,
        )

    def _max_hours(self) -> float:
        return self.max_duration.total_seconds() / 3600

    def _save(self, silence: Silence) -> None:
        with self.db.transaction() as conn:
            conn.execute(
                "INSERT INTO alert_silences (id, matchers, author, comment, created_at,"
                " starts_at, ends_at, updated_at) VALUES (?, ?, ?, ?, ?, ?, ?, ?)"
                " ON CONFLICT (id) DO UPDATE SET ends_at = excluded.ends_at,"
                " updated_at = excluded.updated_at",
                (silence.id, json.dumps([str(m) for m in silence.matchers]), silence.author,
                 silence.comment, utc_text(silence.created_at), utc_text(silence.starts_at),
                 utc_text(silence.ends_at), utc_text(silence.updated_at)),
            )
        with self._lock:
            self._silences[silence.id] = silence

    def expire(self, silence_id: str, now: datetime) -> Silence:
        """End a silence now (an expired one is returned unchanged)."""
        with self._lock:
            silence = self._silences.get(silence_id)
        if silence is None:
            raise UnknownSilence(silence_id)
        if silence.state(now) == "expired":
            return silence
        ended = replace(silence, ends_at=max(now, silence.starts_at), updated_at=now)
        self._save(ended)
        return ended

    def get(self, silence_id: str) -> Silence:
        with self._lock:
            silence = self._silences.get(silence_id)
        if silence is None:
            raise UnknownSilence(silence_id)
        return silence

    def silences(self, now: datetime, *, include_expired: bool = False) -> list[Silence]:
        """Pending and active silences (and expired ones when asked), oldest first."""
        with self._lock:
            items = list(self._silences.values())
        return [s for s in items if include_expired or s.state(now) != "expired"]

    def matching(self, labels: Mapping[str, str], now: datetime) -> list[str]:
        """Ids of the active silences that silence an alert with ``labels``."""
        with self._lock:
            items = list(self._silences.values())
        return [s.id for s in items if s.silences(labels, now)]
