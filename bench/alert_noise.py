"""Alert noise benchmark: what the person on call is told, counted. Prints figures, asserts
nothing.

    python bench/alert_noise.py           # the three scenarios (about a minute)
    python bench/alert_noise.py --quick   # (b) and (c) only (about 20 s)

Each scenario is a replay file (DESIGN §5) run through the whole stack (``run_replay``) with
two channels: ``pager`` (PagerDuty, a paging channel) and ``chat`` (Slack), no routes (the
defaults). The scenario knows the problems it injects (what, from when to when, and the
labels an alert about it carries); each notification is attributed to the problem whose
labels it carries, and one that matches none counts as a problem of its own (noise).

(a) the demo's 12 days (``phasewatch demo``: a retried failure, an optional processor that
    fails for good, a service down 25 min, an ignored trigger, a processor hours late, a
    batch stalled at 96%);
(b) a 5-day replay of a broken pipeline, after 10 ordinary days (so that the SLOs have
    their minimum of runs): the analytics service crash-loops for 3 h with its processors
    failing (incident 6), three processors of two phases failing with one permission error
    for an hour, an optional processor failing three nights, two evenings of a bad worker
    deploy (its ImportError, incident 12; rolled back after 90 min, and the evening run not
    re-run) so that two game days
    in a row get their predictions after 10:00, and the worker's health flapping for an
    hour; plus the demo's own faults of its last four days;
(c) a flapping service: the prediction worker failing 3 probes out of 5 for two hours.

Figures: notifications per channel and severity; notifications per distinct problem (the
target is at most 3 in (b)); info notifications to paging channels (target 0); the time
from each problem's start to its first notification; alerts open longer than their problem
(target none: each alert about a problem resolved within an hour of its end; an SLO budget
ticket's problem is the spent budget, and a bad run's notice the budget it used, which
outlast these replays, so they are listed apart).
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from collections import Counter, defaultdict
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import date, datetime, timedelta
from pathlib import Path
from typing import Any

import yaml

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from alerts.store import AlertStore  # noqa: E402
from monitor.app.sim.demo import DEMO_START, ET, Scenario, write_scenario  # noqa: E402
from monitor.app.sim.replay import run_replay  # noqa: E402
from monitor.config import Config, default_config_text  # noqa: E402
from monitor.store.sqlite import SQLiteStore  # noqa: E402

CHANNELS = [{"kind": "pagerduty", "name": "pager", "routing_key_env": "PD_ROUTING_KEY"},
            {"kind": "slack", "name": "chat", "webhook_url_env": "SLACK_WEBHOOK_URL"}]
PAGING = {"pager"}
GRACE = timedelta(hours=1)  # an alert may resolve this long after its problem ended
BUDGET_TICKETS = ("slo_budget_exhausted", "slo_budget_low", "slo_budget_projected")  # own problem


@dataclass(frozen=True)
class Problem:
    """An injected fault: its window and the labels an alert about it carries: any of
    ``labels`` (each a set of label values that must all match; a value may list
    alternatives with ``|``; ``processor`` and ``phase`` also match a correlated incident's
    lists)."""

    name: str
    start: datetime
    end: datetime
    labels: tuple[dict[str, str], ...]
    quiet: bool = False  # nothing needs telling (a retried failure that succeeded)

    def matches(self, labels: dict[str, str], at: datetime) -> bool:
        if not self.start - timedelta(minutes=5) <= at <= self.end + GRACE:
            return False
        return any(all(_has(labels, k, v) for k, v in want.items()) for want in self.labels)


def _has(labels: dict[str, str], key: str, want: str) -> bool:
    options = want.split("|")
    if labels.get(key) in options:
        return True
    if key == "processor":
        return any(p.split("/")[-1] in options for p in labels.get("processors", "").split(","))
    if key == "phase":
        return any(p in options for p in labels.get("phases", "").split(","))
    return False


# --------------------------------------------------------------------------- scenarios


def local(day: date, hh: int, mm: int = 0) -> datetime:
    return datetime(day.year, day.month, day.day, hh, mm, tzinfo=ET)


def work_day(n: int) -> date:
    """The calendar day of the n-th simulated day (0 = the first)."""
    return DEMO_START + timedelta(days=n + 1)


def demo_problems(days: int) -> list[Problem]:
    """The faults ``phasewatch demo`` builds into its last days (monitor/app/sim/demo.py)."""
    def back(k: int) -> date:  # the k-th last simulated day
        return work_day(days - k)

    problems = [
        Problem("(demo) export ignores its trigger once", local(back(4), 11), local(back(4), 13),
                ({"phase": "phase6"},)),
        Problem("(demo) precompute service down 25 min", local(back(3), 10, 30), local(back(3), 11, 30),
                ({"service": "nba-phase4-precompute-processors"}, {"phase": "phase4|phase5"})),
        Problem("(demo) critical processor failed once, retried", local(back(2), 0), local(back(2), 8),
                ({"processor": "player_daily_cache"},), quiet=True),
        Problem("(demo) optional raw processor fails for good", local(back(2), 0), local(back(2), 8),
                ({"processor": "p2_bigdataball_pbp"}, {"phase": "phase2"}), quiet=True),
        Problem("(demo) analytics processor hours late", local(back(1), 0), local(back(1), 8),
                ({"phase": "phase3"}, {"phase": "phase4"})),
        Problem("(demo) prediction batch stalled at 96%", local(back(1), 10), local(back(1), 13),
                ({"phase": "phase5"},)),
    ]
    first = work_day(0)
    return [p for p in problems if p.start.date() >= first]  # a short run has the last ones only


class Broken(Scenario):
    """Five days of the example pipeline with its worst week in it (see the module doc).

    Each fault is fixed as it would be (a rollback, a permission granted, a source back),
    so each problem has an end; the demo's own faults of its last four days stay in.
    """

    CRASH = "TypeError: HealthChecker.__init__() got an unexpected keyword argument 'project_id'"
    DENIED = ("google.api_core.exceptions.Forbidden: 403 Access Denied: Table "
              "'nba-props:nba_analytics.{}': User does not have permission to query the table")
    IMPORT = "ImportError: cannot import name 'firestore' from 'google.cloud' (unknown location)"
    PBP = "HTTP 503 from the play-by-play source"

    DAYS, BROKEN = 15, 10  # ten ordinary days first: the SLOs have their minimum of runs

    def __init__(self) -> None:
        super().__init__(days=self.DAYS, seed=11)
        self.problems: list[Problem] = demo_problems(self.DAYS)
        self._hold: datetime | None = None
        self._tomorrow = False

    def overnight(self, game_date: date, work: date, day: int) -> None:
        if day == self.BROKEN:  # the analytics service crash-loops: its work waits for the fix
            self._crash_loop(game_date, work)
            self._hold = local(work, 3, 30)
        super().overnight(game_date, work, day)
        self._hold = None

    def _finished(self, run_date: date, phase: str) -> list[datetime]:
        found = super()._finished(run_date, phase)
        return [*found, self._hold] if self._hold is not None and phase == "phase2" else found

    def same_day(self, game_date: date, day: int) -> None:
        if day == self.BROKEN + 1:
            self._shared_failure(game_date)
        super().same_day(game_date, day)

    def tomorrow(self, game_date: date, work: date) -> None:
        self._tomorrow = True
        super().tomorrow(game_date, work)
        self._tomorrow = False

    def _crash_loop(self, game_date: date, work: date) -> None:
        """The analytics service crash-loops 00:30-03:30 ET; every push of its work fails."""
        start, end = local(work, 0, 30), local(work, 3, 30)
        service = "nba-phase3-analytics-processors"
        self.world("health", start, service=service, status="fail",
                   body={"status": "fail", "error": self.CRASH})
        self.world("health", end, service=service, status="pass")
        for i in range(6):
            for name in ("upcoming_player_game_context", "team_offense_game_summary"):
                at = start + timedelta(minutes=20 + 25 * i)
                self.event(game_date, "phase3", "started", at, name)
                self.event(game_date, "phase3", "failed", at + timedelta(seconds=5), name, error=self.CRASH)
        self.problems.append(Problem("analytics service crash-loops 3 h", start, end,
                                     ({"service": service}, {"phase": "phase3"})))

    def _shared_failure(self, game_date: date) -> None:
        """Three processors of Phase 3 and 4 fail with one permission error from 09:30 until
        the grant at 10:25; the 10:30 run then succeeds."""
        start = local(game_date, 9, 30)
        failing = [("phase3", "upcoming_player_game_context"), ("phase3", "upcoming_team_game_context"),
                   ("phase4", "player_daily_cache")]
        for i in range(11):
            for k, (phase, name) in enumerate(failing):
                at = start + timedelta(minutes=5 * i + k)
                self.event(game_date, phase, "started", at, name)
                self.event(game_date, phase, "failed", at + timedelta(seconds=20), name,
                           error=self.DENIED.format(name))
        names = "|".join(n for _, n in failing)
        self.problems.append(Problem("permission error across phases 3 and 4", start,
                                     local(game_date, 11, 30),
                                     ({"processor": names}, {"phase": "phase3|phase4"})))

    def predictions(self, game_date: date, start: datetime, *, stall: bool = False) -> datetime:
        if not self._tomorrow or game_date not in (work_day(self.BROKEN + 3), work_day(self.BROKEN + 4)):
            return super().predictions(game_date, start, stall=stall)
        # A bad deploy of the worker (18:00-19:30 ET, rolled back): it cannot import its
        # dependency and its deep health check fails; the evening run predicts nothing, and
        # the game day's predictions come only from the 11:30 same-day run.
        bad = start  # the deploy went out just before the evening run's trigger
        back = bad + timedelta(minutes=90)
        self.world("health", bad, service="prediction-worker", status="fail",
                   body={"status": "fail", "error": self.IMPORT})
        self.world("health", back, service="prediction-worker", status="pass")
        self.processor_run(game_date, "phase5", "prediction-coordinator", start, 1.0)
        for i in range(12):
            at = start + timedelta(minutes=2 + 6 * i)
            self.event(game_date, "phase5", "started", at, "prediction-worker")
            self.event(game_date, "phase5", "failed", at + timedelta(seconds=3), "prediction-worker",
                       error=self.IMPORT)
        self.problems.append(Problem(f"worker bad deploy the evening before {game_date}", bad, back,
                                     ({"service": "prediction-worker"}, {"processor": "prediction-worker"},
                                      {"phase": "phase5|phase6"})))
        return back

    def build(self) -> list[dict[str, Any]]:
        lines = super().build()
        # The optional play-by-play source fails three nights running, then comes back (the
        # demo fails it once more, two nights later).
        b = self.BROKEN
        failing = {(work_day(b + n) - timedelta(days=1)).isoformat() for n in (-1, 0, 1)}
        for e in lines:
            if (e.get("processor") == "p2_bigdataball_pbp" and e.get("status") == "succeeded"
                    and e["run_date"] in failing):
                e["status"], e["error"] = "failed", self.PBP
                for k in ("records", "expected_records", "data_as_of"):
                    e.pop(k, None)
        self.problems.append(Problem("optional raw processor fails three nights", local(work_day(b - 1), 0),
                                     local(work_day(b + 2), 6),
                                     ({"processor": "p2_bigdataball_pbp"}, {"phase": "phase2"})))
        self.problems.append(Problem("predictions after 10:00 two game days in a row",
                                     local(work_day(b + 3), 10), local(work_day(b + 5), 10),
                                     ({"slo": "nba-predictions-by-10am"},)))
        flap = local(work_day(b + 4), 13)
        add_flapping(self, "prediction-worker", flap, timedelta(hours=1))
        self.problems.append(Problem("worker health flapping 1 h", flap, flap + timedelta(hours=1),
                                     ({"service": "prediction-worker"},)))
        lines.sort(key=lambda e: e["timestamp"])
        return lines


def add_flapping(s: Scenario, service: str, start: datetime, length: timedelta) -> None:
    """Fail 3 minutes, pass 2, over ``length`` (probes are a minute apart)."""
    at = start
    while at < start + length:
        s.world("health", at, service=service, status="fail", body={"status": "fail"})
        s.world("health", at + timedelta(minutes=3), service=service, status="pass")
        at += timedelta(minutes=5)


class Flapping(Scenario):
    """One day of the example pipeline; the prediction worker flaps for two hours."""

    def __init__(self) -> None:
        super().__init__(days=1, seed=5)
        start = local(work_day(0), 13)
        self.problems = [Problem("worker health flapping 2 h", start, start + timedelta(hours=2),
                                 ({"service": "prediction-worker"},)),
                         *demo_problems(1)]  # the demo's faults of its last day stay in

    def build(self) -> list[dict[str, Any]]:
        lines = super().build()
        add_flapping(self, "prediction-worker", self.problems[0].start, timedelta(hours=2))
        lines.sort(key=lambda e: e["timestamp"])
        return lines


# --------------------------------------------------------------------------- measuring


def config() -> Config:
    data = yaml.safe_load(default_config_text())
    data["alerting"] = {**data.get("alerting", {}), "channels": CHANNELS}
    return Config.model_validate(data)


@dataclass
class Outcome:
    name: str
    lines: int
    seconds: float
    by_channel: Counter[tuple[str, str]]
    per_problem: dict[str, int]
    first: dict[str, float | None]
    info_paged: int
    overdue: list[str]
    budget_open: list[str]
    noise: list[str]
    told: list[str] = field(default_factory=list)  # every notification (--verbose)


def measure(title: str, path: Path, problems: list[Problem], until: datetime | None = None) -> Outcome:
    with tempfile.TemporaryDirectory() as tmp:
        db = Path(tmp) / "pw.db"
        began = time.perf_counter()
        outcome = run_replay(path, config(), db_path=db, until=until)
        seconds = time.perf_counter() - began
        store = SQLiteStore(db)
        try:
            episodes = AlertStore(store).episodes(datetime(2000, 1, 1).astimezone(),
                                                  datetime(2100, 1, 1).astimezone())
        finally:
            store.close()
    report = outcome.report
    end = datetime.fromisoformat(report["time"])

    ordered = sorted(problems, key=lambda p: p.name.startswith("(demo)"))  # the scenario's first

    def owner_of(alertname: str, labels: dict[str, str], opened: datetime) -> str:
        # An SLO's budget (its tickets: spent, low, projected, a ticket-tier burn) is a
        # problem of its own: it outlasts the incident that spent it.
        if alertname in BUDGET_TICKETS or (alertname == "slo_burn_rate" and labels.get("tier") == "ticket"):
            return f"budget of SLO {labels.get('slo')}"
        found = next((p for p in ordered if p.matches(labels, opened)), None)
        return found.name if found else f"(noise) {alertname}"

    # Each episode (one firing of a key) belongs to the problem it is about when it opened.
    spans = sorted(((e.alert.key, e.opened_at, e.resolved_at or end,
                     owner_of(e.alert.name, dict(e.alert.labels), e.opened_at), e) for e in episodes),
                   key=lambda x: x[1])
    by_channel: Counter[tuple[str, str]] = Counter()
    per_problem: dict[str, int] = defaultdict(int)
    first: dict[str, float | None] = {p.name: None for p in problems}
    noise: list[str] = []
    told: list[str] = []
    info_paged = 0
    for item in report["alerts"]:
        at = datetime.fromisoformat(item["time"])
        key = item["key"]
        for channel in item["channels"]:
            by_channel[(channel, item["severity"])] += 1
            info_paged += channel in PAGING and item["severity"] == "info"
        problem = next((o for k, opened, _closed, o, _ in reversed(spans) if k == key and opened <= at),
                       None) or owner_of(key.split(":", 1)[0], item["labels"], at)
        per_problem[problem] += 1
        if problem.startswith("(noise)") and not item.get("repeat") and item["action"] == "trigger":
            noise.append(f"{item['time'][:16]} {item['severity']} {item['summary'][:90]}")
        told.append(f"{item['time'][:16]} {item['action']:<7} {item['severity']:<8} "
                    f"{'reminder ' if item.get('repeat') else ''}{','.join(item['channels']):<10} "
                    f"[{problem}] {item['summary'][:110]}")
        if problem in first and first[problem] is None:
            start = next(p.start for p in problems if p.name == problem)
            first[problem] = (at - start).total_seconds() / 60
    overdue, budget_open = [], []
    by_name = {p.name: p for p in problems}
    for _key, _opened, closed, name, ep in spans:
        fault = by_name.get(name)
        if not ep.notified or (fault is None and not name.startswith("budget")):
            continue
        if fault is None or ep.alert.name == "slo_bad_run":  # the budget a run used
            if ep.resolved_at is None:
                budget_open.append(f"{ep.alert.name} ({name}): open at the end")
            continue
        if closed > fault.end + GRACE:
            overdue.append(f"{ep.alert.name} ({name}): open until {closed:%m-%d %H:%M}Z, "
                           f"problem ended {fault.end.astimezone(ET):%m-%d %H:%M} ET")
    quiet = {p.name for p in problems if p.quiet}
    return Outcome(title, sum(1 for _ in path.open()), seconds, by_channel, dict(per_problem),
                   {k: v for k, v in first.items() if k not in quiet or v is not None},
                   info_paged, overdue, budget_open, noise, told)


def report(o: Outcome, verbose: bool = False) -> None:
    print(f"\n{o.name}: {o.lines} input lines, replayed in {o.seconds:.1f} s")
    if verbose:
        print("\n".join(f"    {line}" for line in o.told))
    total = sum(o.by_channel.values())
    print(f"  notifications: {total} "
          f"({', '.join(f'{c}/{s} {n}' for (c, s), n in sorted(o.by_channel.items()))})")
    print(f"  info notifications to paging channels: {o.info_paged}")
    print("  per problem (notifications, minutes to the first):")
    for name, n in sorted(o.per_problem.items(), key=lambda kv: (kv[0].startswith("(noise)"), kv[0])):
        minutes = o.first.get(name)
        when = "" if minutes is None else f", first after {minutes:.0f} min"
        print(f"    {n:3d}  {name}{when}")
    for name, minutes in o.first.items():
        if minutes is None:
            print(f"      0  {name} (nobody told: missed)")
    worst = max(o.per_problem.values(), default=0)
    print(f"  most notifications for one problem: {worst}")
    print(f"  alerts open longer than their problem: {len(o.overdue)}")
    for line in o.overdue:
        print(f"    {line}")
    for line in o.budget_open:
        print(f"    (a spent budget outlasts the replay) {line}")


def scenario(make: Callable[[], Any], path: Path) -> list[Problem]:
    s = make()
    lines = s.build()
    path.write_text("".join(__import__("json").dumps(line) + "\n" for line in lines), "utf-8")
    return list(s.problems)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--quick", action="store_true", help="(b) and (c) only")
    parser.add_argument("--only", choices=("a", "b", "c"), help="one scenario")
    parser.add_argument("--verbose", action="store_true", help="list every notification")
    args = parser.parse_args(argv)
    print(f"phasewatch alert noise benchmark, {datetime.now().astimezone():%Y-%m-%d %H:%M %Z}")
    with tempfile.TemporaryDirectory() as tmp:
        runs: list[tuple[str, Path, list[Problem], datetime | None]] = []
        if not args.quick and args.only in (None, "a"):
            demo = Path(tmp) / "demo.jsonl"
            write_scenario(demo, 12)
            runs.append(("(a) the demo's 12 days", demo, demo_problems(12), None))
        if args.only in (None, "b"):
            broken = Path(tmp) / "broken.jsonl"
            # until the day after: the game day whose 10:00 deadline ends the last problem
            runs.append(("(b) a broken pipeline, 5 days (after 10 ordinary ones)", broken,
                         scenario(Broken, broken), local(work_day(Broken.DAYS), 12)))
        if args.only in (None, "c"):
            flapping = Path(tmp) / "flapping.jsonl"
            runs.append(("(c) a flapping service", flapping, scenario(Flapping, flapping), None))
        for name, path, problems, until in runs:
            report(measure(name, path, problems, until), args.verbose)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
