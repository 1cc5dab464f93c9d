"""One detector per pipeline series, keyed by (pipeline, phase, processor, mode, kind)."""

from __future__ import annotations

from collections.abc import Hashable, Iterable, Iterator
from datetime import UTC, date, datetime, time, tzinfo
from functools import lru_cache
from typing import Any, Literal, NamedTuple

from slo.anomaly.config import AnomalyConfig
from slo.anomaly.detector import Decision, RobustDetector

SeriesKind = Literal["duration", "late", "records"]
SERIES_KINDS: tuple[SeriesKind, ...] = ("duration", "late", "records")


class SeriesKey(NamedTuple):
    """Which series a point belongs to; ``processor`` is ``""`` for a phase-level series."""

    pipeline: str
    phase: str
    processor: str
    mode: str
    kind: SeriesKind


class Observation(NamedTuple):
    """One point of one series, as stored and replayed by :meth:`SeriesDetectors.rebuild`."""

    key: SeriesKey
    at: datetime
    value: float
    season_key: Hashable | None = None
    covariate: float | None = None


def lateness_s(run_date: date, completed_at: datetime, tz: tzinfo) -> float:
    """Seconds from midnight of ``run_date`` in ``tz`` to ``completed_at`` (may exceed a day)."""
    if completed_at.tzinfo is None:
        raise ValueError("completed_at must be timezone-aware")
    return (completed_at - midnight_utc(run_date, tz)).total_seconds()


@lru_cache(maxsize=4096)
def midnight_utc(run_date: date, tz: tzinfo) -> datetime:
    """Midnight of ``run_date`` in ``tz``, in UTC: the same instant, and the difference from a
    UTC time (each point's) needs no offset of ``tz`` worked out again."""
    return datetime.combine(run_date, time(0), tzinfo=tz).astimezone(UTC)


class SeriesDetectors:
    """A streaming detector per series, created on first sight of the series."""

    def __init__(self, config: AnomalyConfig | None = None) -> None:
        self.config = config or AnomalyConfig()
        self._detectors: dict[SeriesKey, RobustDetector] = {}

    def __len__(self) -> int:
        return len(self._detectors)

    def __iter__(self) -> Iterator[SeriesKey]:
        return iter(self._detectors)

    def detector(self, key: SeriesKey) -> RobustDetector:
        """The detector of ``key``, created (empty) if it does not exist yet."""
        found = self._detectors.get(key)
        if found is None:
            if key.kind not in SERIES_KINDS:
                raise ValueError(
                    f"unknown series kind {key.kind!r}; allowed: {', '.join(SERIES_KINDS)}"
                )
            found = self._detectors[key] = RobustDetector(self.config.for_kind(key.kind))
        return found

    def observe(
        self,
        pipeline: str,
        phase: str,
        processor: str | None,
        mode: str,
        kind: SeriesKind,
        at: datetime,
        value: float,
        season_key: Hashable | None = None,
        covariate: float | None = None,
    ) -> Decision:
        """Judge one finished duration (seconds), lateness (seconds, see :func:`lateness_s`)
        or row count (rows, or rows per expected row).

        Call once per finished run of the series, in time order. ``season_key`` defaults
        to the day of week of ``at``; pass e.g. the run date's weekday or a game-day flag.
        ``covariate``: the size of the run's work (e.g. the rows it expects), see
        :meth:`RobustDetector.update`.
        """
        return self.series(pipeline, phase, processor, mode, kind).update(
            at, value, season_key, covariate)

    def series(self, pipeline: str, phase: str, processor: str | None, mode: str,
               kind: SeriesKind) -> RobustDetector:
        """The detector of a series, created (empty) if it does not exist yet."""
        # A plain tuple finds the series' key (a tuple too) without building one per point.
        found: RobustDetector | None = self._detectors.get(  # type: ignore[call-overload]
            (pipeline, phase, processor or "", mode, kind))
        if found is None:
            found = self.detector(SeriesKey(pipeline, phase, processor or "", mode, kind))
        return found

    def rebuild(self, points: Iterable[Observation]) -> None:
        """Forget everything and replay ``points`` (in observation order) after a restart."""
        self._detectors.clear()
        for point in points:
            self.detector(point.key).update(point.at, point.value, point.season_key,
                                            point.covariate)

    def export_state(self) -> list[dict[str, Any]]:
        """Every series' state as plain data, for :meth:`restore`."""
        return [
            {"key": list(key), "state": det.export_state()}
            for key, det in self._detectors.items()
        ]

    def restore(self, states: Iterable[dict[str, Any]]) -> None:
        """Replace all state by what :meth:`export_state` produced (same config)."""
        self._detectors.clear()
        for item in states:
            key = SeriesKey(*item["key"])
            self.detector(key).restore(item["state"])
