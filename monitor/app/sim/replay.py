"""Replay (DESIGN §5): a JSON Lines history driven through the whole stack on simulated time."""

from __future__ import annotations

import json
import math
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any, Literal, get_args

from pydantic import BaseModel, ConfigDict, Field, ValidationError

from monitor.actuator.simulated import simulated
from monitor.app.phasewatch import Phasewatch
from monitor.checks.result import MAX_ENTITIES, CheckResult, EntityId
from monitor.clock import FakeClock
from monitor.config import Config
from monitor.errors import EventError, PhasewatchError, Problem
from monitor.events import Event, parse_event
from monitor.publish.senders import MemorySender, Sender
from monitor.scheduler.attempt import Attempt, Status
from monitor.scheduler.config import Cron
from monitor.scheduler.logentry import PauseChange, ScheduleChange
from monitor.tracker import RunState
from monitor.validation import Instant, Timezone, problems_from_validation_error

REPORT_LISTS = ("triggers", "deferrals", "recoveries", "alerts", "anomalies", "slos")


class _Line(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid", strict=True)


class HealthLine(_Line):
    """From ``timestamp`` on, ``service``'s health endpoint answers ``status`` (and ``body``)."""

    type: Literal["health"]
    service: str
    status: Literal["pass", "warn", "fail"]
    timestamp: Instant
    body: dict[str, Any] | None = None


class TargetLine(_Line):
    """From ``timestamp`` on, a trigger sent to ``phase`` is accepted (ok) or fails."""

    type: Literal["target"]
    phase: str
    status: Literal["ok", "fail"]
    timestamp: Instant


class CheckLine(_Line):
    """A data check's result as the live check runner would have measured it."""

    type: Literal["check"]
    name: str = Field(min_length=1, max_length=128)
    value: float
    timestamp: Instant
    entities: list[EntityId] | None = Field(
        default=None, max_length=MAX_ENTITIES,
        description="the entity ids the check found missing (the rerun_missing playbook)")


class DeployLine(_Line):
    """A deploy of ``service`` at ``timestamp`` (as ``POST /v1/deploys`` would report it)."""

    type: Literal["deploy"]
    service: str
    timestamp: Instant
    version: str | None = Field(default=None, min_length=1, max_length=128)


SchedulerChangeKind = Literal["pause", "resume", "update", "create", "delete"]
SCHEDULE_CHANGES = ("update", "create")  # the changes that say when the job fires


class SchedulerLine(_Line):
    """A scheduler job's attempt, as ``POST /v1/scheduler-outcomes`` would receive it; or,
    with ``change``, a person changing the job in Cloud Scheduler, as its audit log would
    tell it: paused, resumed, rescheduled (``update``: ``cron`` and / or ``timezone``, what
    is left out unchanged), created again or deleted."""

    type: Literal["scheduler"]
    job: str = Field(min_length=1, max_length=500)
    status: Status | None = None
    timestamp: Instant
    url: str | None = Field(default=None, min_length=1, max_length=2048)
    change: SchedulerChangeKind | None = None
    cron: Cron | None = None
    timezone: Timezone | None = None
    by: str | None = Field(default=None, min_length=1, max_length=256)

    def attempt(self, number: int) -> Attempt:
        assert self.status is not None
        http = self.status if isinstance(self.status, int) else None
        code = self.status if isinstance(self.status, str) else None
        return Attempt(f"replay:{number}:{self.job}@{self.timestamp.isoformat()}", self.job,
                       self.timestamp, "finished", http, code, self.url, source="replay")

    def problems(self) -> list[Problem]:
        """What an attempt line or a change line must (not) carry."""
        if self.change is None:
            extra = [f for f in ("cron", "timezone", "by") if getattr(self, f) is not None]
            return ([Problem("status", "required for an attempt (or give change: "
                                       f"{', '.join(get_args(SchedulerChangeKind))})")]
                    if self.status is None else []) + [
                Problem(f, "only with change (a change to the job, not an attempt)")
                for f in extra]
        found = [Problem(f, f"an attempt's; a change line ({self.change}) has none")
                 for f in ("status", "url") if getattr(self, f) is not None]
        if self.change in SCHEDULE_CHANGES:
            if self.cron is None and self.timezone is None:
                found.append(Problem("cron", f"change {self.change} needs cron or timezone "
                                             "(what Cloud Scheduler fires the job by now)"))
        else:
            found += [Problem(f, f"only with change update or create, not {self.change}")
                      for f in ("cron", "timezone") if getattr(self, f) is not None]
        return found

    def scheduler_change(self) -> PauseChange | ScheduleChange:
        """The change as the audit log's entry would give it to the scheduler watch."""
        if self.change in ("pause", "resume"):
            return PauseChange(self.job, self.change == "pause", self.timestamp, self.by)
        return ScheduleChange(self.job, self.timestamp, self.by, self.cron, self.timezone,
                              deleted=self.change == "delete", created=self.change == "create")


ReplayLine = Event | HealthLine | TargetLine | CheckLine | DeployLine | SchedulerLine
WorldLine = HealthLine | TargetLine | CheckLine | DeployLine | SchedulerLine
WORLD_LINES: dict[str, type[WorldLine]] = {
    "health": HealthLine, "target": TargetLine, "check": CheckLine, "deploy": DeployLine,
    "scheduler": SchedulerLine,
}


class ReplayError(PhasewatchError):
    """A replay file that cannot be replayed; nothing was simulated or written."""

    def __init__(self, source: str, line: int, problems: list[Problem]) -> None:
        super().__init__(source, line, problems)
        self.source, self.line, self.problems = source, line, problems

    def __str__(self) -> str:
        return "\n".join(f"{self.source}:{self.line}: {p.render()}" for p in self.problems)


@dataclass
class SimulatedWorld:
    """What the outside world answers during a replay: health, trigger targets and checks."""

    health: dict[str, HealthLine] = field(default_factory=dict)
    targets: dict[str, TargetLine] = field(default_factory=dict)
    checks: dict[str, CheckLine] = field(default_factory=dict)

    def apply(self, line: HealthLine | TargetLine | CheckLine) -> None:
        """Take a line as the world's answer from now on (checks: for ``SimulatedChecks``,
        in tests; a replay records its check lines as live results are recorded)."""
        if isinstance(line, HealthLine):
            self.health[line.service] = line
        elif isinstance(line, TargetLine):
            self.targets[line.phase] = line
        else:
            self.checks[line.name] = line


def parse_line(raw: bytes, config: Config) -> ReplayLine:
    """One replay line: a pipeline event, or a health / target / check line."""
    try:
        head = json.loads(raw)
    except json.JSONDecodeError as exc:
        raise EventError("invalid_json", [Problem("line", f"not valid JSON: {exc.msg}")]) from None
    if not isinstance(head, dict):
        raise EventError("schema", [Problem("line", "must be a JSON object")])
    kind = head.get("type")
    if kind is None:
        try:
            return parse_event(raw)
        except ValidationError as exc:
            raise EventError("schema", problems_from_validation_error(exc, root=Event)) from None
    model = WORLD_LINES.get(kind) if isinstance(kind, str) else None
    if model is None:
        raise EventError("schema", [Problem(
            "type", f"unknown line type; allowed: {', '.join(WORLD_LINES)} (or none for an event)",
            repr(kind),
        )])
    try:
        line = model.model_validate_json(raw)
    except ValidationError as exc:
        raise EventError("schema", problems_from_validation_error(exc, head, root=model)) from None
    _check_names(line, config)
    return line


def _check_names(line: WorldLine, config: Config) -> None:
    if isinstance(line, SchedulerLine):
        problems = line.problems()
        if problems:
            raise EventError("schema", problems)
        jobs = config.scheduler.job_map
        if line.job not in jobs:
            raise EventError("unknown_name", [Problem(
                "job", f"unknown scheduler job; allowed: {', '.join(sorted(jobs)) or 'none'}",
                repr(line.job),
            )])
    elif isinstance(line, HealthLine | DeployLine):
        services = {s for p in config.pipelines for s in p.services}
        if line.service not in services:
            raise EventError("unknown_name", [Problem(
                "service", f"unknown service; allowed: {', '.join(sorted(services))}",
                repr(line.service),
            )])
    elif isinstance(line, TargetLine):
        phases = {ph.id for p in config.pipelines for ph in p.phases}
        if line.phase not in phases:
            raise EventError("unknown_name", [Problem(
                "phase", f"unknown phase; allowed: {', '.join(sorted(phases))}", repr(line.phase),
            )])


def read_lines(path: Path, pw: Phasewatch) -> list[ReplayLine]:
    """Parse and validate every line first, so a bad file fails before anything is simulated."""
    lines: list[ReplayLine] = []
    source = str(path)
    try:
        raw_lines = path.read_bytes().splitlines()
    except OSError as exc:
        raise ReplayError(source, 0, [Problem("(file)", f"cannot read: {exc.strerror}")]) from None
    for number, raw in enumerate(raw_lines, start=1):
        if not raw.strip():
            continue
        try:
            line = parse_line(raw, pw.config)
            if isinstance(line, Event):  # judged at its own time, as the replay will feed it
                pw.collector.resolve([line], now=line.timestamp)
        except EventError as exc:
            raise ReplayError(source, number, exc.problems) from None
        lines.append(line)
    if not lines:
        raise ReplayError(source, 0, [Problem("(file)", "no lines to replay")])
    return lines


def _timestamp(line: ReplayLine) -> datetime:
    return line.timestamp


class Replayer:
    """Drives a Phasewatch on a FakeClock through replay lines, ticking on the way."""

    def __init__(self, pw: Phasewatch, clock: FakeClock, world: SimulatedWorld) -> None:
        self.pw, self.clock, self.world = pw, clock, world
        self.tick_s = pw.config.server.tick_interval_s
        self._next_tick = clock.now()
        self._fed = 0

    def advance_to(self, when: datetime) -> None:
        """Move simulated time to ``when``, running every tick that falls on the way."""
        while self._next_tick <= when:
            self.clock.set(self._next_tick)
            self.pw.tick(self._next_tick)
            self._next_tick += timedelta(seconds=self.tick_s)
        self.clock.set(when)

    def feed(self, line: ReplayLine) -> None:
        self.advance_to(_timestamp(line))
        self._fed += 1
        if isinstance(line, Event):
            self.pw.collector.ingest([line])
        elif isinstance(line, SchedulerLine):
            if line.change is None:
                self.pw.scheduler.record([line.attempt(self._fed)])
            else:
                change = line.scheduler_change()
                if isinstance(change, PauseChange):
                    self.pw.scheduler.pause(change)
                else:
                    self.pw.scheduler.reschedule(change)
        elif isinstance(line, DeployLine):
            if self.pw.actuator is not None:
                self.pw.actuator.ctx.health.deploys.record(
                    line.service, line.version, line.timestamp, "replay")
        elif isinstance(line, CheckLine):
            # Recorded as POST /v1/checks records a result: gates, expectations, thresholds
            # and SLIs read it from the same store.
            entities = tuple(line.entities) if line.entities is not None else None
            self.pw.checks.record([CheckResult(line.name, line.value, line.timestamp, entities,
                                               source="replay")], line.timestamp)
        else:
            self.world.apply(line)


def replay(
    lines: Iterable[ReplayLine], pw: Phasewatch, clock: FakeClock, world: SimulatedWorld,
    until: datetime | None = None, on_line: Callable[[int], None] | None = None,
) -> dict[str, Any]:
    """Replay ``lines`` (in time order) and return the report; ``on_line(1)`` after each line."""
    player = Replayer(pw, clock, world)
    last = clock.now()
    for line in lines:
        player.feed(line)
        last = max(last, _timestamp(line))
        if on_line is not None:
            on_line(1)
    player.advance_to(until or last + timedelta(hours=1))
    return build_report(pw)


def build_report(pw: Phasewatch) -> dict[str, Any]:
    """The replay report: every contract list (empty where its capability is not built yet)."""
    report: dict[str, Any] = {name: [] for name in REPORT_LISTS}
    report["alerts"] = [d.as_dict() for d in pw.router.history]
    for name, section in pw.report_sections().items():
        report[name] = section
    report["time"] = pw.clock.now().isoformat()
    report["runs"] = [run.as_dict() for run in pw.tracker.runs()]
    report["dead_letters"] = len(pw.store.dead_letters())
    report["events_stored"] = pw.store.count()
    return report


@dataclass(frozen=True)
class ReplayOutcome:
    """The report and the /metrics exposition at the end of a replay."""

    report: dict[str, Any]
    metrics_text: str
    runs: list[RunState]


def run_replay(
    path: Path, config: Config, *, db_path: str | Path = ":memory:", until: datetime | None = None,
    on_line: Callable[[int], None] | None = None,
    on_end: Callable[[Phasewatch], None] | None = None,
) -> ReplayOutcome:
    """Validate the whole file, then replay it from its first timestamp (``on_line``: progress;
    ``on_end``: called with the simulated instance at the end, before it is closed)."""
    clock = FakeClock(_peek_start(path))
    world = SimulatedWorld()
    probe, sinks, _ = simulated(world)
    # The outside world is the file's health / target lines, and alerts go to in-memory
    # channels: a replay never probes, triggers, pages or publishes anything real. Its check
    # lines are recorded like live results; scheduled checks run on local files only.
    senders: dict[str, Sender] = {name: MemorySender() for name in config.publish.sinks()}
    pw = Phasewatch.build(config, db_path=db_path, clock=clock, probe=probe, sinks=sinks,
                          dry_run_alerts=True, publish_senders=senders)
    try:
        parsed = read_lines(path, pw)
        report = replay(parsed, pw, clock, world, until, on_line)
        if on_end is not None:
            on_end(pw)
        return ReplayOutcome(report, pw.metrics.exposition()[0].decode(), pw.tracker.runs())
    finally:
        pw.close()


def _peek_start(path: Path) -> datetime:
    """The earliest timestamp in the file (where simulated time starts)."""
    earliest: datetime | None = None
    try:
        raw_lines = path.read_bytes().splitlines()
    except OSError as exc:
        raise ReplayError(str(path), 0, [Problem("(file)", f"cannot read: {exc.strerror}")]) from None
    for raw in raw_lines:
        try:
            stamp = json.loads(raw).get("timestamp") if raw.strip() else None
            when = datetime.fromisoformat(stamp) if isinstance(stamp, str) else None
        except (ValueError, AttributeError):
            continue  # read_lines reports the bad line with its number
        if when is not None and when.tzinfo is not None and (earliest is None or when < earliest):
            earliest = when
    if earliest is None:
        raise ReplayError(str(path), 0, [Problem("(file)", "no line with a valid timestamp")])
    return earliest


def write_json(path: Path, data: Mapping[str, Any]) -> None:
    """Write JSON atomically: a temp file renamed into place (never half-written)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_text(json.dumps(data, indent=2, default=_json_default) + "\n", "utf-8")
    tmp.replace(path)


def _json_default(value: object) -> object:
    if isinstance(value, datetime):
        return value.isoformat()
    if isinstance(value, float) and not math.isfinite(value):
        return None
    raise TypeError(f"not JSON serialisable: {type(value).__name__}")
