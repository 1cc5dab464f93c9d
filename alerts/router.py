"""The router: every alert goes through one Router on its way to the channels.

``AlertRouter`` deduplicates by key (repeats add to the alert's count), groups alerts per
route and group labels, waits ``group_wait`` before a group's first notification and
``group_interval`` between later ones, reminds every ``repeat_interval``, sends resolves,
and holds back silenced and inhibited alerts. All of it runs in ``tick(now)`` on the
injected clock: no threads, no sleeping. Decisions are written to the durable outbox
together with the notify log, so a restart neither repeats nor forgets a notification.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field, replace
from datetime import datetime, timedelta
from typing import Any, Literal, Protocol

from prometheus_client import Counter

from alerts.channels.base import Channel
from alerts.channels.log import LogChannel
from alerts.channels.memory import MemoryChannel
from alerts.config import AlertingConfig
from alerts.inhibition import Inhibitor
from alerts.model import ALERTNAME, KNOWN_GAP, Alert, alert_key
from alerts.notification import Action, Delivery, Notification
from alerts.outbox import enqueue_notification
from alerts.routing import RoutePlan, RouteTable
from alerts.severity import SeverityPolicy
from alerts.silences import SilenceStore
from alerts.simple import SimpleRouter
from alerts.store import NO_CHANNEL, AlertStore, SentRecord
from monitor.clock import Clock

log = logging.getLogger(__name__)

__all__ = [
    "Action", "AlertRouter", "AlertStatus", "Channel", "Delivery", "LogChannel", "MemoryChannel",
    "Notification", "Router", "SimpleRouter",
]


class Router(Protocol):
    """Where the evaluators raise and clear alerts."""

    def fire(self, alert: Alert, *, news: bool = False) -> None:
        """Raise ``alert``; repeats of a firing key are absorbed (and counted). ``news``: a
        repeat that says more than was told (the problem spread): told now, as a reminder,
        even to whoever acknowledged what it was before."""
        ...

    def resolve(self, key: str, at: datetime, summary: str | None = None) -> None:
        """Clear the alert with ``key`` if it is firing (``summary``: what its resolve says
        instead, when the way it ended is news)."""
        ...

    def active(self) -> list[Alert]:
        """Alerts firing now."""
        ...


@dataclass
class _Entry:
    """One alert episode the router still has to do something about."""

    alert: Alert
    episode: int
    opened_at: datetime
    resolved_at: datetime | None = None
    dirty: bool = False
    born_inhibited: bool = False  # its cause was firing when it opened: a consequence
    acked_at: datetime | None = None  # a person acknowledged it: no reminders while it lasts
    acked_by: str | None = None
    news: bool = False  # it spread since it was told: tell it again at the next flush


@dataclass
class _Group:
    key: str
    plan: RoutePlan
    created_at: datetime
    members: dict[str, None] = field(default_factory=dict)  # an ordered set of alert keys
    last_flush: datetime | None = None


@dataclass(frozen=True)
class AlertStatus:
    """A firing alert as the API shows it: why it is or is not being notified."""

    alert: Alert
    opened_at: datetime
    silenced_by: tuple[str, ...]
    inhibited_by: tuple[str, ...]
    channels: tuple[str, ...]
    notified: tuple[str, ...]
    acked_at: datetime | None = None
    acked_by: str | None = None

    @property
    def state(self) -> Literal["active", "suppressed"]:
        return "suppressed" if self.silenced_by or self.inhibited_by else "active"

    def as_dict(self) -> dict[str, Any]:
        return {
            **self.alert.as_dict(), "opened_at": self.opened_at.isoformat(),
            "status": self.state, "silenced_by": list(self.silenced_by),
            "inhibited_by": list(self.inhibited_by), "channels": list(self.channels),
            "notified": list(self.notified),
            "acknowledged": None if self.acked_at is None else {
                "at": self.acked_at.isoformat(), "by": self.acked_by},
        }


@dataclass(frozen=True)
class _Planned:
    channel: str
    notification: Notification
    episode: int
    sent: SentRecord
    enqueue: bool = True
    mark: bool = False  # only a record (an inhibited episode), no notification


INHIBITED = "inhibited"  # the notify log's action for an episode that was a consequence
HELD = "held"  # the notify log's action for a notice waiting for its digest
DIGEST_LINES = 40  # the notices a digest lists one by one
_Kind = tuple[str, str, str]
"""Notices told together: a channel, an alertname, a pipeline (pipelines are kept apart)."""


def _kind(channel: str, alert: Alert) -> _Kind:
    return channel, alert.name, alert.labels.get("pipeline", "")


class AlertRouter:
    """Grouping, dedup, silences, inhibition, repeats and resolves over a durable outbox."""

    def __init__(
        self, cfg: AlertingConfig, store: AlertStore, clock: Clock, *,
        silences: SilenceStore, inhibitor: Inhibitor, counter: Counter | None = None,
        severity: SeverityPolicy | None = None,
    ) -> None:
        self.cfg = cfg
        self.store = store
        self.clock = clock
        self.silences = silences
        self.inhibitor = inhibitor
        self.severity = severity or SeverityPolicy({}, cfg.severity)
        self.routes = RouteTable(cfg)
        self.counter = counter
        self.history: list[Delivery] = []
        self._send_resolved = {c.name: c.send_resolved for c in cfg.channels}
        self._lock = threading.RLock()
        self._entries: dict[str, _Entry] = {}
        self._groups: dict[str, _Group] = {}
        self._member_of: dict[str, set[str]] = {}
        self._sent: dict[tuple[str, str], SentRecord] = {}
        self._counted: set[tuple[str, str, int]] = set()
        # Notices waiting for their digest, by kind: alert key -> group key; when each
        # channel was last told a notice of each kind; the notices of each kind this flush
        # tells (their message's place in it, and them).
        self._held: dict[_Kind, dict[str, str]] = {}
        self._last_notice: dict[_Kind, datetime] = {}
        self._flushing: dict[_Kind, tuple[int, list[_Entry]]] = {}
        # Alertmanager groups what it receives by its own rules: every notice goes to it.
        self._digested = cfg.notice_digest.quiet_s > 0
        self._self_grouping = {c.name for c in cfg.channels if c.kind == "alertmanager"}
        self._restore()

    # --- the Router protocol -----------------------------------------------------------

    def fire(self, alert: Alert, *, news: bool = False) -> None:
        alert = self.severity.apply(alert)
        with self._lock:
            entry = self._entries.get(alert.key)
            if entry is not None:
                merged = replace(alert, count=entry.alert.count + alert.count)
                if entry.resolved_at is not None:
                    # Fired again before its resolve went out: the same episode goes on.
                    entry.resolved_at = None
                    entry.alert = merged
                    self.store.reopen_episode(entry.episode, merged)
                    self._place(entry)
                else:
                    if news or _rank(alert.severity) > _rank(entry.alert.severity):
                        # Worse than what may have been acknowledged (here or by an instance
                        # sharing the store), or spread: told, and reminded again.
                        self._set_ack(entry, None, None)
                    entry.alert = merged
                    entry.dirty = True
                    entry.news = entry.news or news
                return
            episode = self.store.open_episode(alert, alert.at)
            entry = _Entry(alert, episode, alert.at)
            # Judged now as well as at the flush: a cause that clears in the same tick (a
            # stall that ends with the slow run it stalled) still makes this a consequence.
            causes = self._causes()
            entry.born_inhibited = bool(causes and self.inhibitor.inhibited_by(
                alert, self.inhibitor.sources(causes), self._opened()))
            self._entries[alert.key] = entry
            self._place(entry)

    def resolve(self, key: str, at: datetime, summary: str | None = None) -> None:
        with self._lock:
            entry = self._entries.get(key)
            if entry is None or entry.resolved_at is not None:
                return
            if summary is not None:
                entry.alert = replace(entry.alert, summary=summary)
            entry.resolved_at = max(at, entry.opened_at)
            entry.dirty = False
            self.store.resolve_episode(entry.episode, entry.alert, entry.resolved_at,
                                       notice=entry.resolved_at == entry.opened_at)

    def active(self) -> list[Alert]:
        with self._lock:
            return [e.alert for e in self._entries.values() if e.resolved_at is None]

    # --- acknowledgements ----------------------------------------------------------------

    def acknowledge(self, key: str, at: datetime, by: str) -> bool:
        """A person took the firing alert ``key`` on (in PagerDuty): no reminders to any
        channel until it resolves, its severity rises or it is unacknowledged; its resolve
        still goes out. False when no alert with that key is firing."""
        return self._mark_ack(key, at, by)

    def unacknowledge(self, key: str) -> bool:
        """The acknowledgement of ``key`` lapsed: reminders resume (the next one is due at
        once if its interval has gone by). False when no alert with that key is firing."""
        return self._mark_ack(key, None, None)

    def _mark_ack(self, key: str, at: datetime | None, by: str | None) -> bool:
        with self._lock:
            entry = self._entries.get(key)
            if entry is None or entry.resolved_at is not None:
                return False
            if (entry.acked_at is None) == (at is not None):  # a change, not a repeat
                self._set_ack(entry, at, by)
                log.info("event=alerts.%s key=%s by=%r",
                         "acknowledged" if at else "unacknowledged", key, by)
            return True

    def _acknowledged(self, entry: _Entry) -> bool:
        """Whether a reminder due now is held back: asked of the store, since the instance
        PagerDuty's webhook reached may not be the one that notifies (it shares the store)."""
        entry.acked_at, entry.acked_by = self.store.acknowledgement(entry.episode)
        return entry.acked_at is not None

    def _set_ack(self, entry: _Entry, at: datetime | None, by: str | None) -> None:
        self.store.acknowledge_episode(entry.episode, at, by)
        entry.acked_at, entry.acked_by = at, by

    # --- grouping and flushing -----------------------------------------------------------

    def _place(self, entry: _Entry) -> None:
        """Put an alert into the group of every route it takes."""
        now = self.clock.now()
        labels = entry.alert.match_labels()
        for plan in self.routes.plans_for(labels):
            key = plan.group_key(labels)
            group = self._groups.get(key)
            if group is None:
                group = self._groups[key] = _Group(key, plan, now)
            group.members[entry.alert.key] = None
            self._member_of.setdefault(entry.alert.key, set()).add(key)

    def tick(self, now: datetime) -> list[Delivery]:
        """Flush every group that is due: queue its notifications in the outbox."""
        with self._lock:
            self._save_counts()
            firing = _Firing(self.inhibitor, self._causes())
            cache: dict[str, tuple[list[str], list[str]]] = {}
            planned: list[_Planned] = []
            flushed: list[_Group] = []
            self._flushing = {}  # places in ``planned``: never a previous flush's
            for group in list(self._groups.values()):
                plan = group.plan
                due = (group.created_at + timedelta(seconds=plan.group_wait_s)
                       if group.last_flush is None
                       else group.last_flush + timedelta(seconds=plan.group_interval_s))
                if now < due:
                    continue
                before = len(planned)
                self._plan(group, now, firing, cache, planned)
                work = any(not p.mark for p in planned[before:])
                if work or any(self._entries[k].resolved_at is not None for k in group.members):
                    flushed.append(group)
            self._flush_held(now, planned)
            if not flushed and not planned:
                return []
            self._commit(planned)
            for p in planned:
                self._sent[(p.channel, p.sent.key)] = p.sent
            for group in flushed:
                if any(p.notification.group == group.key for p in planned if not p.mark):
                    group.last_flush = now
                self._settle(group)
            return self._record(planned)

    def _plan(self, group: _Group, now: datetime, firing: _Firing,
              cache: dict[str, tuple[list[str], list[str]]], out: list[_Planned]) -> bool:
        """Decide what each channel of the group must be told; True when anything."""
        before = len(out)
        taken = {(p.channel, p.notification.alert.key) for p in out}
        for key in group.members:
            entry = self._entries[key]
            severity = entry.alert.severity
            # A trigger goes where its severity may go (info never pages); a resolve to every
            # channel that was told of the trigger.
            allowed = group.plan.channels_for(severity)
            every = (None if severity == "info"
                     else self.cfg.reminders_s.get(entry.alert.name, group.plan.reminder_every(severity)))
            wait = timedelta(seconds=self.cfg.waits_s.get(entry.alert.name, 0.0))
            for channel in group.plan.channels:
                if (channel, key) in taken:
                    continue  # another route already told this channel in this flush
                prev = self._sent.get((channel, key))
                told = (prev if prev is not None and prev.episode == entry.episode
                        and prev.action != HELD else None)
                if told is not None and told.action == INHIBITED:
                    continue  # a consequence of another alert for its whole episode
                if channel not in allowed and (told is None or told.action != "trigger"):
                    continue
                if entry.resolved_at is None:
                    if told is None or told.action != "trigger" or told.severity != severity:
                        repeat = False
                    elif entry.news:
                        repeat = True  # it spread: told now, whenever its reminder is due
                    elif every is not None and now >= told.sent_at + timedelta(seconds=every):
                        if self._acknowledged(entry):
                            continue
                        repeat = True
                    else:
                        continue
                    if key not in cache:  # only for alerts that would be notified now
                        cache[key] = self._suppression(entry.alert, now, firing.sources())
                    silenced, inhibited = cache[key]
                    if entry.born_inhibited and told is None and not silenced:
                        inhibited = inhibited or ["(its cause when it opened)"]
                    if silenced or inhibited:
                        self._count_suppressed(channel, entry, "silenced" if silenced else "inhibited")
                        if inhibited and not silenced and told is None:
                            # Never told and caused by another firing alert: it stays a
                            # consequence when its cause clears first (an SLO burn that
                            # lingers minutes after the outage that caused it is not news).
                            out.append(_Planned(channel, Notification("trigger", entry.alert, now),
                                                entry.episode, SentRecord(
                                                    channel, key, entry.episode, INHIBITED,
                                                    severity, now), enqueue=False, mark=True))
                        continue
                    if told is None and wait and severity != "critical" and now < entry.opened_at + wait:
                        continue  # a ticket waits: one that clears by itself is never news
                    out.append(self._planned(group, channel, entry, "trigger", now, repeat))
                elif told is None and entry.resolved_at == entry.opened_at:
                    # Raised and cleared at the same instant: an event, not a condition
                    # (the actuator's notices). Told once, with no resolve to follow.
                    if key not in cache:
                        cache[key] = self._suppression(entry.alert, now, firing.sources())
                    if any(cache[key]) or entry.born_inhibited:
                        continue
                    self._notice(group, channel, entry, now, out)
                elif told is not None and told.action == "trigger":
                    # Info is told once: its resolve is recorded, not sent.
                    enqueue = self._send_resolved.get(channel, True) and severity != "info"
                    out.append(self._planned(group, channel, entry, "resolve", now, False, enqueue))
            entry.news = False  # told (or held back by a silence) in this flush
        return len(out) > before

    def _planned(self, group: _Group, channel: str, entry: _Entry, action: Action, now: datetime,
                 repeat: bool, enqueue: bool = True) -> _Planned:
        alert = entry.alert
        if entry.resolved_at is not None:
            alert = replace(alert, state="resolved", at=entry.resolved_at)
        notification = Notification(action, alert, now, repeat=repeat, started_at=entry.opened_at,
                                    group=group.key)
        told = "resolve" if notification.notice else action
        sent = SentRecord(channel, alert.key, entry.episode, told, alert.severity, now)
        return _Planned(channel, notification, entry.episode, sent, enqueue)

    # --- notices in bulk ----------------------------------------------------------------

    def _notice(self, group: _Group, channel: str, entry: _Entry, now: datetime,
                out: list[_Planned]) -> None:
        """Plan a notice: told now, in this flush's message of its kind, or held for a digest.

        Held when a notice of its kind was told to the channel less than ``quiet_s`` before
        it opened (or others already wait); recorded in the notify log as ``held``, so a
        restart takes it up and tells it. Several of a kind told in one flush are one message.
        """
        if (not self._digested or entry.alert.severity != "info"
                or channel in self._self_grouping):
            out.append(self._planned(group, channel, entry, "trigger", now, False))
            return
        kind = _kind(channel, entry.alert)
        held = self._held.get(kind)
        if held is not None and entry.alert.key in held:
            return
        flushing = self._flushing.get(kind)
        if flushing is not None:
            flushing[1].append(entry)
            out.append(replace(self._planned(group, channel, entry, "trigger", now, False),
                               enqueue=False))
            return
        last = self._last_notice.get(kind)
        if held or (last is not None and entry.opened_at < last + timedelta(
                seconds=self.cfg.notice_digest.quiet_s)):
            self._held.setdefault(kind, {})[entry.alert.key] = group.key
            out.append(_Planned(channel, Notification("trigger", entry.alert, now), entry.episode,
                                SentRecord(channel, entry.alert.key, entry.episode, HELD,
                                           entry.alert.severity, now), enqueue=False, mark=True))
            return
        self._last_notice[kind] = now
        self._flushing[kind] = (len(out), [entry])
        out.append(self._planned(group, channel, entry, "trigger", now, False))

    def _flush_held(self, now: datetime, out: list[_Planned]) -> None:
        """Make the notices of a kind told in this flush one message; tell the notices held
        for each channel and kind once they stopped coming for ``quiet_s``, or the oldest
        waited ``max_wait_s``: one alone as itself, more as one digest that names each."""
        for (_, name, _), (index, entries) in self._flushing.items():
            if len(entries) > 1:
                first = out[index]
                out[index] = replace(first, notification=replace(
                    first.notification, alert=self._digest(name, entries)))
        self._flushing = {}
        quiet = timedelta(seconds=self.cfg.notice_digest.quiet_s)
        longest = timedelta(seconds=self.cfg.notice_digest.max_wait_s)
        for kind, held in list(self._held.items()):
            entries = [self._entries[k] for k in held]
            oldest = min(e.opened_at for e in entries)
            newest = max(e.opened_at for e in entries)
            if now < newest + quiet and now < oldest + longest:
                continue
            del self._held[kind]
            self._last_notice[kind] = now
            channel = kind[0]
            group = self._groups[next(iter(held.values()))]
            if len(entries) == 1:
                out.append(self._planned(group, channel, entries[0], "trigger", now, False))
                continue
            digest = self._digest(kind[1], entries)
            for i, entry in enumerate(entries):
                planned = self._planned(group, channel, entry, "trigger", now, False)
                out.append(replace(planned, notification=replace(planned.notification, alert=digest))
                           if i == 0 else replace(planned, enqueue=False))

    @staticmethod
    def _digest(name: str, entries: Sequence[_Entry]) -> Alert:
        """One notice standing for ``entries`` (notices of kind ``name``): the labels they
        share, the range of those that differ, and each one's summary."""
        first, last = entries[0].alert, entries[-1].alert
        shared = {k: v for k, v in first.labels.items()
                  if k != ALERTNAME and all(e.alert.labels.get(k) == v for e in entries)}
        varied = sorted({k for e in entries for k in e.alert.labels} - set(shared) - {ALERTNAME})
        ranges = []
        for label in varied:
            values = sorted({e.alert.labels.get(label, "") for e in entries} - {""})
            ranges.append(f"{label} {values[0]} … {values[-1]}" if len(values) > 1
                          else f"{label} {values[0]}" if values else label)
        oldest = min(e.opened_at for e in entries)
        about = ", ".join([f"{k}={v}" for k, v in sorted(shared.items())] + ranges)
        lines = [e.alert.summary for e in entries]
        if len(lines) > DIGEST_LINES:
            lines = [*lines[:DIGEST_LINES], f"… and {len(lines) - DIGEST_LINES} more"]
        return Alert(
            key=alert_key(name, {**shared, "digest": f"{oldest.isoformat()}/{len(entries)}"}),
            severity=first.severity, state="resolved", at=last.at, count=len(entries),
            summary=f"{name} since {oldest:%H:%M} UTC: {about}"[:1024],
            details="\n".join(lines), labels={**shared, ALERTNAME: name},
        )

    def _suppression(self, alert: Alert, now: datetime,
                     firing: Sequence[tuple[str, dict[str, str]]]) -> tuple[list[str], list[str]]:
        silenced = self.silences.matching(alert.match_labels(), now)
        if (gap := alert.labels.get(KNOWN_GAP)) is not None:
            silenced = [*silenced, f"known gap: {gap}"]  # told when it began: still a cause
        inhibited = self.inhibitor.inhibited_by(alert, firing, self._opened())
        return silenced, inhibited

    def _causes(self) -> list[Alert]:
        """The firing alerts that may inhibit others: not those that are consequences
        themselves (nobody was told about them, so what they would hide must be told)."""
        consequence: dict[str, bool] = {}  # key -> every channel holds it as a consequence
        for (_, key), sent in self._sent.items():
            entry = self._entries.get(key)
            if entry is not None and sent.episode == entry.episode:
                consequence[key] = consequence.get(key, True) and sent.action == INHIBITED
        return [e.alert for key, e in self._entries.items()
                if e.resolved_at is None and not e.born_inhibited and not consequence.get(key)]

    def _opened(self) -> dict[str, datetime]:
        """When each alert the router holds opened (settles mutual inhibition)."""
        return {k: e.opened_at for k, e in self._entries.items()}

    def _count_suppressed(self, channel: str, entry: _Entry, outcome: str) -> None:
        mark = (channel, entry.alert.key, entry.episode)
        if mark in self._counted:
            return
        self._counted.add(mark)
        if self.counter is not None:
            self.counter.labels(channel=channel, severity=entry.alert.severity, outcome=outcome).inc()
        log.info("event=alert.%s channel=%s key=%s", outcome, channel, entry.alert.key)

    def _commit(self, planned: Sequence[_Planned]) -> None:
        """Outbox rows and the notify log in one transaction: decided and queued, or neither."""
        with self.store.db.transaction() as conn:
            for p in planned:
                if p.enqueue:
                    enqueue_notification(conn, channel=p.channel, notification=p.notification,
                                         episode=p.episode, now=p.notification.at)
                AlertStore.record_sent(conn, p.sent)

    def _settle(self, group: _Group) -> None:
        """Drop resolved members (told or never needing to be, not waiting for a digest);
        forget settled alerts."""
        waiting = {k for held in self._held.values() for k in held}
        for key in [k for k in group.members
                    if self._entries[k].resolved_at is not None and k not in waiting]:
            del group.members[key]
            homes = self._member_of.get(key, set())
            homes.discard(group.key)
            if homes:
                continue
            entry = self._entries.pop(key)
            self._member_of.pop(key, None)
            for channel in {c for (c, k) in self._sent if k == key}:
                del self._sent[(channel, key)]
            self._counted = {m for m in self._counted if m[1] != key}
            self.store.forget(key, entry.episode)
        if not group.members:
            del self._groups[group.key]

    def _record(self, planned: Sequence[_Planned]) -> list[Delivery]:
        by_message: dict[tuple[str, str, bool], tuple[Notification, list[str]]] = {}
        for p in planned:
            if not p.enqueue:
                continue
            n = p.notification
            mark = (n.alert.key, n.action, n.repeat)
            if mark not in by_message:
                by_message[mark] = (n, [])
            by_message[mark][1].append(p.channel)
        deliveries = [Delivery(n, tuple(chs)) for n, chs in by_message.values()]
        self.history.extend(deliveries)
        overflow = len(self.history) - self.cfg.history_limit
        if overflow > 0:
            del self.history[:overflow]
        for d in deliveries:
            alert = d.notification.alert
            log.info("event=alert.notify action=%s key=%s severity=%s count=%d channels=%s",
                     d.notification.action, alert.key, alert.severity, alert.count,
                     ",".join(d.channels))
        return deliveries

    # --- durability ------------------------------------------------------------------

    def _save_counts(self) -> None:
        dirty = [e for e in self._entries.values() if e.dirty and e.resolved_at is None]
        self.store.save_episodes([(e.episode, e.alert) for e in dirty])
        for e in dirty:
            e.dirty = False

    def _restore(self) -> None:
        """Rebuild the groups from the stored episodes and notify log (after a restart)."""
        self.restore()

    def restore(self) -> int:
        """Take up what the store holds and this router does not: the notify log's newer
        records and the unsettled episodes of other keys. At start (after a restart), and
        when this instance starts leading those sharing the store (what the previous
        leader raised but had not told is told now, and nothing it told is told again).
        A group taken up is due from its oldest alert: an alert fired just before a crash
        is due at once after the restart (bench/crash.py). Returns how many alerts were
        taken up."""
        with self._lock:
            for record in self.store.notify_log():
                known = self._sent.get((record.channel, record.key))
                if known is None or known.sent_at <= record.sent_at:
                    self._sent[(record.channel, record.key)] = record
            taken = []
            for ep in self.store.unsettled_episodes():
                if ep.alert.key in self._entries:
                    continue
                entry = _Entry(ep.alert, ep.id, ep.opened_at, ep.resolved_at,
                               acked_at=ep.acked_at, acked_by=ep.acked_by)
                self._entries[ep.alert.key] = entry
                self._place(entry)
                taken.append(entry)
            for (channel, key), record in self._sent.items():
                waiting = self._entries.get(key)
                homes = sorted(self._member_of.get(key, ()))
                if (record.action == HELD and waiting is not None and homes
                        and record.episode == waiting.episode and channel != NO_CHANNEL):
                    self._held.setdefault(_kind(channel, waiting.alert), {})[key] = homes[0]
            self._relearn_notices()
            for group in self._groups.values():
                told = [s.sent_at for (_, k), s in self._sent.items()
                        if k in group.members and s.action != HELD]
                if told and group.last_flush is None:
                    group.last_flush = max(told)
                if group.last_flush is None:  # due from its oldest alert, not from the restart
                    opened = min(self._entries[k].opened_at for k in group.members)
                    group.created_at = min(group.created_at, opened)
            if taken:
                log.info("event=alerts.restored alerts=%d groups=%d", len(taken), len(self._groups))
            return len(taken)

    def _relearn_notices(self) -> None:
        """When each channel was last told a notice of each kind, from the outbox's notices
        of the last ``quiet_s`` (a restart would otherwise tell the next one of a kind on its
        own at once, however recently the last went out)."""
        if not self._digested:
            return
        since = self.clock.now() - timedelta(seconds=self.cfg.notice_digest.quiet_s)
        for channel, told in self.store.notifications_since(since):
            if told.notice and told.alert.severity == "info":
                kind = _kind(channel, told.alert)
                self._last_notice[kind] = max(self._last_notice.get(kind, told.at), told.at)

    def flush_state(self) -> None:
        """Persist counts now (close calls it; ticks do it anyway)."""
        with self._lock:
            self._save_counts()

    # --- views ---------------------------------------------------------------------------

    def statuses(self, now: datetime) -> list[AlertStatus]:
        """Every firing alert with its routing, suppression and who has been told."""
        with self._lock:
            firing = [e for e in self._entries.values() if e.resolved_at is None]
            sources = self.inhibitor.sources(self._causes())
            out = []
            for entry in firing:
                silenced, inhibited = self._suppression(entry.alert, now, sources)
                channels = tuple(dict.fromkeys(
                    c for g in self._member_of.get(entry.alert.key, ())
                    for c in self._groups[g].plan.channels_for(entry.alert.severity)
                ))
                notified = tuple(
                    c for c in channels
                    if (s := self._sent.get((c, entry.alert.key))) is not None
                    and s.episode == entry.episode and s.action == "trigger"
                )
                out.append(AlertStatus(entry.alert, entry.opened_at, tuple(silenced),
                                       tuple(inhibited), channels, notified,
                                       entry.acked_at, entry.acked_by))
            return sorted(out, key=lambda s: (-_rank(s.alert.severity), s.opened_at))

    def told_about_run(self, pipeline: str, run_date: str, mode: str, since: datetime) -> bool:
        """Whether a notification about this run (its labels) went out since ``since``."""
        with self._lock:
            for delivery in reversed(self.history):
                if delivery.notification.at < since:
                    return False
                labels = delivery.notification.alert.labels
                if (labels.get("pipeline"), labels.get("run_date"), labels.get("mode")) == (
                        pipeline, run_date, mode):
                    return True
        return False

    def groups(self) -> Mapping[str, tuple[str, ...]]:
        """Group key → the alert keys in it (for debugging and tests)."""
        with self._lock:
            return {k: tuple(g.members) for k, g in self._groups.items()}


class _Firing:
    """The alerts firing at a flush; their possible inhibitors computed once, when needed."""

    def __init__(self, inhibitor: Inhibitor, alerts: list[Alert]) -> None:
        self.inhibitor = inhibitor
        self.alerts = alerts
        self._sources: list[tuple[str, dict[str, str]]] | None = None

    def sources(self) -> list[tuple[str, dict[str, str]]]:
        if self._sources is None:
            self._sources = self.inhibitor.sources(self.alerts)
        return self._sources


def _rank(severity: str) -> int:
    return {"critical": 2, "warning": 1}.get(severity, 0)
