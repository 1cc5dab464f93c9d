"""An alert channel that does not take notifications is an alert, told by the other channels.

A Slack webhook deleted (404), a PagerDuty routing key rotated (400): the outbox buries the
row, and every later one, so a warning routed only there reaches nobody, and nobody knows.
A provider down for long: the rows wait, retried, while the problem they tell goes on.
``ChannelWatch.tick`` reads the outbox's outcomes since it last looked (the store's, so it
judges what any instance delivered) and raises ``alert_channel_failing`` for a channel
that refused a row, or whose oldest waiting row first failed ``delivery.failing_after_s``
ago. It resolves when the channel takes a notification again (any alert, or the daily
summary) with none waiting that long. A refusal followed by a row taken in the same look
(one message the channel rejected, e.g. too long) is told once, as a notice.

Critical when the channel pages (pages are lost), else warning; ``RouteTable.failing_plan``
decides who hears it, never the channel itself. Only the acting (leading) instance judges.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from datetime import datetime
from typing import TYPE_CHECKING

from alerts.model import ALERTNAME, Alert, Severity, alert_key
from alerts.outbox import DEAD, DELIVERED, NOT_CONFIGURED, Outbox, OutboxRow, Waiting

if TYPE_CHECKING:
    from alerts.router import AlertRouter

CHANNEL_FAILING = "alert_channel_failing"
Cursor = tuple[datetime, int]


def failing_key(channel: str) -> str:
    return alert_key(CHANNEL_FAILING, {"channel": channel})


class ChannelWatch:
    """Judges the channels from the outbox's outcomes; raises and resolves their alerts."""

    def __init__(self, router: AlertRouter, outbox: Outbox, *, paging: Mapping[str, bool],
                 failing_after_s: float, acting: Callable[[], bool] = lambda: True) -> None:
        self.router = router
        self.outbox = outbox
        self.paging = dict(paging)  # every configured channel: whether it pages
        self.failing_after_s = failing_after_s
        self.acting = acting
        # Outcomes before this instance judged are not judged again (an alert they raised is
        # restored with the router); None: take up from the latest when acting again.
        self._cursor: Cursor | None = self._latest()

    def tick(self, now: datetime) -> None:
        if not self.acting():
            self._cursor = None  # another instance judges; take up from the latest when leading
            return
        if self._cursor is None:
            self._cursor = self._latest()
        refused: dict[str, list[OutboxRow]] = {}
        taken: set[str] = set()
        while True:
            rows = self.outbox.finished(self._cursor, limit=1000)
            for row in rows:
                if row.status == DEAD and row.last_error != NOT_CONFIGURED:
                    refused.setdefault(row.channel, []).append(row)
                    taken.discard(row.channel)
                elif row.status == DELIVERED:
                    taken.add(row.channel)
            if rows:
                last = rows[-1]
                self._cursor = (last.done_at or now, last.id)
            if len(rows) < 1000:
                break
        waiting = {c: w for c, w in self.outbox.waiting().items()
                   if (now - w.since).total_seconds() >= self.failing_after_s}
        firing = {a.labels.get("channel", "") for a in self.router.active()
                  if a.name == CHANNEL_FAILING}
        for channel, rows in refused.items():
            if channel in self.paging:
                self.router.fire(self._refused(channel, rows, now))
        for channel, wait in waiting.items():
            if channel in self.paging and channel not in firing and channel not in refused:
                self.router.fire(self._waiting(channel, wait, now))
        for channel in firing | set(refused):
            if channel not in self.paging or (channel in taken and channel not in waiting):
                self.router.resolve(failing_key(channel), now)

    def _latest(self) -> Cursor:
        rows = self.outbox.db.read(
            "SELECT done_at, id FROM alert_outbox WHERE status != 'pending' AND done_at IS NOT NULL"
            " ORDER BY done_at DESC, id DESC LIMIT 1")
        if not rows:
            return _EPOCH, 0
        return datetime.fromisoformat(rows[0][0]), int(rows[0][1])

    def _alert(self, channel: str, summary: str, details: str, now: datetime,
               count: int = 1) -> Alert:
        severity: Severity = "critical" if self.paging[channel] else "warning"
        return Alert(failing_key(channel), severity, summary, now, details=details,
                     labels={ALERTNAME: CHANNEL_FAILING, "channel": channel}, count=count)

    def _refused(self, channel: str, rows: list[OutboxRow], now: datetime) -> Alert:
        error = rows[-1].last_error or "no reason given"
        what = "a notification" if len(rows) == 1 else f"{len(rows)} notifications"
        lost = ", ".join(dict.fromkeys(r.key for r in rows[-3:]))
        return self._alert(
            channel, f"Alert channel {channel} refused {what}: {error}",
            f"Not delivered through {channel}: {lost}.{self._consequence(channel)} Fix the "
            f"channel (its webhook, routing key or token); this alert resolves when {channel} "
            "next takes a notification (any alert, or the daily summary).", now, len(rows))

    def _waiting(self, channel: str, wait: Waiting, now: datetime) -> Alert:
        minutes = int((now - wait.since).total_seconds() // 60)
        what = "notification waits" if wait.rows == 1 else "notifications wait"
        return self._alert(
            channel,
            f"Alert channel {channel} has taken no notification for {minutes} min: {wait.error}",
            f"{wait.rows} {what}, retried, since {wait.since:%H:%M} UTC.{self._consequence(channel)}"
            f" This alert resolves when {channel} takes one.", now)

    def _consequence(self, channel: str) -> str:
        if self.paging[channel]:
            return " Pages sent only through it reach nobody."
        return " Alerts routed only to it reach nobody."


_EPOCH = datetime.fromisoformat("1970-01-01T00:00:00+00:00")
