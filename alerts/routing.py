"""Routing: which channels an alert goes to, how it is grouped, and how often."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

from alerts.channel_watch import CHANNEL_FAILING
from alerts.config import AlertingConfig
from alerts.matchers import Matcher, matches_all, parse_matchers


@dataclass(frozen=True)
class RoutePlan:
    """A resolved route: its channels, grouping labels and timings (inheritance applied)."""

    index: int  # position in ``routes``; -1 for the default route, -2 a failing channel's
    channels: tuple[str, ...]
    group_by: tuple[str, ...]
    group_wait_s: float
    group_interval_s: float
    repeat_interval_s: float  # reminders of a critical alert
    warning_repeat_interval_s: float = 86400.0
    matchers: tuple[Matcher, ...] = ()
    severities: tuple[str, ...] = ()
    continue_: bool = False
    paging: frozenset[str] = frozenset()  # the channels among ``channels`` that page
    paging_severities: tuple[str, ...] = ("critical",)

    def channels_for(self, severity: str) -> tuple[str, ...]:
        """The route's channels an alert of ``severity`` goes to.

        A paging channel gets what the route names in ``severities``; a configured route that
        names none gives it critical and warning alerts (it named the channel), the default
        route ``paging_severities`` (critical): info never pages unless a route names it.
        """
        allowed = self.severities or (self.paging_severities if self.index < 0
                                      else ("critical", "warning"))
        return tuple(c for c in self.channels if c not in self.paging or severity in allowed)

    def reminder_every(self, severity: str) -> float | None:
        """Seconds between reminders of a firing alert; None: never (info)."""
        if severity == "critical":
            return self.repeat_interval_s
        if severity == "warning":
            return self.warning_repeat_interval_s
        return None

    def matches(self, labels: Mapping[str, str]) -> bool:
        if self.severities and labels.get("severity") not in self.severities:
            return False
        return matches_all(self.matchers, labels)

    def group_labels(self, labels: Mapping[str, str]) -> tuple[tuple[str, str], ...]:
        return tuple((name, labels.get(name, "")) for name in self.group_by)

    def group_key(self, labels: Mapping[str, str]) -> str:
        inner = ",".join(f"{k}={v}" for k, v in self.group_labels(labels))
        return f"route{self.index}{{{inner}}}"


class RouteTable:
    """Routes in order: the first match wins unless it says ``continue``; the default route
    catches what no route matched."""

    def __init__(self, cfg: AlertingConfig) -> None:
        paging = frozenset(c.name for c in cfg.channels if c.paging)
        self._paging = paging
        self._channels = tuple(c.name for c in cfg.channels)
        self.routes = tuple(
            RoutePlan(
                index=i, channels=r.channels,
                group_by=r.group_by if r.group_by is not None else cfg.group_by,
                group_wait_s=cfg.group_wait_s if r.group_wait_s is None else r.group_wait_s,
                group_interval_s=r.group_interval_s or cfg.group_interval_s,
                repeat_interval_s=r.repeat_interval_s or cfg.repeat_interval_s,
                warning_repeat_interval_s=(r.warning_repeat_interval_s
                                           or cfg.warning_repeat_interval_s),
                matchers=parse_matchers(r.match), severities=r.severities,
                continue_=r.continue_, paging=paging, paging_severities=cfg.paging_severities,
            )
            for i, r in enumerate(cfg.routes)
        )
        channels = cfg.default_channels
        if channels is None:
            channels = tuple(c.name for c in cfg.channels)
        self.default = RoutePlan(
            index=-1, channels=channels, group_by=cfg.group_by, group_wait_s=cfg.group_wait_s,
            group_interval_s=cfg.group_interval_s, repeat_interval_s=cfg.repeat_interval_s,
            warning_repeat_interval_s=cfg.warning_repeat_interval_s, paging=paging,
            paging_severities=cfg.paging_severities,
        )

    def plans_for(self, labels: Mapping[str, str]) -> list[RoutePlan]:
        """The routes an alert with ``labels`` (including alertname and severity) takes."""
        if labels.get("alertname") == CHANNEL_FAILING:
            return [self.failing_plan(labels.get("channel", ""))]
        found: list[RoutePlan] = []
        for plan in self.routes:
            if plan.matches(labels):
                found.append(plan)
                if not plan.continue_:
                    break
        return found or [self.default]

    def failing_plan(self, failing: str) -> RoutePlan:
        """Where a failing channel is told: not through itself, nor through routes that may
        lead only to it. A paging channel's failure (pages lost): every other channel. Another
        channel's: the others that do not page, or when there are none those that page, at
        the alert's warning (a dead chat channel must reach somebody, but wakes nobody)."""
        others = tuple(c for c in self._channels if c != failing)
        quiet = tuple(c for c in others if c not in self._paging)
        d = self.default
        return RoutePlan(
            index=-2, channels=others if failing in self._paging else quiet or others,
            group_by=("alertname", "channel"),
            group_wait_s=0.0, group_interval_s=d.group_interval_s,
            repeat_interval_s=d.repeat_interval_s,
            warning_repeat_interval_s=d.warning_repeat_interval_s, paging=self._paging,
            severities=("critical", "warning", "info"),
        )
