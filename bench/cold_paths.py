"""Cold CLI paths on a big store: ``slo report``, ``status``, ``report --weekly`` and
``health-check`` timed as a user runs them (a child process each), with the bundled example
config, against a store of N events spanning ~400 run dates (the accepted window).

    python bench/cold_paths.py                       # 1M events (building the store: minutes, once)
    python bench/cold_paths.py --quick               # 20k events, 5 runs each (seconds)
    python bench/cold_paths.py --before /tmp/pw-before   # also the same commands on an old tree
    python bench/cold_paths.py --before /tmp/pw-main --before-schema same  # an old tree of this schema

The store is built with the store's own ``append`` (ingest refuses run dates older than
``runs.accept_past_days``, so the history is written directly) and kept in --cache.
``--before DIR`` runs the same commands with ``PYTHONPATH=DIR`` (a git worktree of main)
on a copy of the store at that tree's schema: the baseline, measured in the same run.
The commands also run on a copy that holds the service's state snapshot (what ``serve``
saves when it stops, ``monitor.app.snapshot``): there they replay only the events after it.
Every command (of both trees) runs with its modules' bytecode present, as an installed
package has it (``measure.installed_env``: compiled into ``--cache``/pycache by one untimed
run of the command first), not compiled from source at each run under
``PYTHONDONTWRITEBYTECODE=1``; the runs are interleaved (``measure.interleaved``: one run of
every command, of both trees, a round), so a load that changes meanwhile falls on all alike.
Targets (issue 18): each command <= 1 s and <= 150 MB on 1M events.
"""

from __future__ import annotations

import argparse
import os
import shutil
import sqlite3
import sys
import tomllib
from collections.abc import Callable
from datetime import UTC, date, datetime, timedelta
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from measure import Sample, cached_store, emit, installed_env, interleaved, run_command, table

from monitor.events import Event
from monitor.store.sqlite import SQLiteStore

DAYS = 398
MODES = ("overnight", "same_day", "tomorrow")
# One run of the NBA example (phase, processor): started, progress..., an outcome.
SHAPE: tuple[tuple[str, str | None], ...] = (
    ("phase1", None), ("phase2", "OddsApiGameLinesBatchProcessor"),
    ("phase2", "NbacPlayerBoxscoreProcessor"), ("phase3", "PlayerGameSummaryProcessor"),
    ("phase4", "ml_feature_store_v2"), ("phase5", "prediction-coordinator"),
    ("phase5", "prediction-worker"), ("grading", None), ("phase6", None),
)
COMMANDS: dict[str, list[str]] = {
    "slo report": ["slo", "report"],
    "status": ["status"],
    "report --weekly": ["report", "--weekly"],
    "health-check": ["health-check"],
}


def run_events(run_date: date, mode: str, per_run: int, serial: int) -> list[Event]:
    """One run: every processor starts and ends; the prediction worker reports progress so the
    run has ``per_run`` events (a busy day)."""
    at = datetime.combine(run_date, datetime.min.time(), UTC) + timedelta(hours=2)
    progress = max(per_run - 2 * len(SHAPE), 0)
    out: list[Event] = []
    for slot, (phase, processor) in enumerate(SHAPE):
        steps = ["started"] + ["progress"] * (progress if processor == "prediction-worker" else 0)
        steps.append("failed" if (serial + slot) % 97 == 0 else "succeeded")
        for step, status in enumerate(steps):
            at += timedelta(seconds=3)
            out.append(Event(
                event_id=f"{run_date}-{mode}-{slot}-{step}", pipeline="nba", run_date=run_date,
                mode=mode, phase=phase, processor=processor, status=status, timestamp=at,
                duration_s=30.0 if status == "succeeded" else None,
            ))
    return out


def build_store(path: Path, total: int) -> None:
    """``total`` events over ``DAYS`` run dates ending today, appended in run-date order."""
    today = datetime.now(UTC).date()
    per_run = max(total // (DAYS * len(MODES)), 2 * len(SHAPE))
    store = SQLiteStore(path)
    try:
        for d in range(DAYS, -1, -1):
            run_date = today - timedelta(days=d)
            batch: list[Event] = []
            for m, mode in enumerate(MODES):
                batch += run_events(run_date, mode, per_run, d * 3 + m)
            store.append(batch, batch[-1].timestamp)
    finally:
        store.close()


SAVE = ("from monitor.app.phasewatch import Phasewatch\n"
        "from monitor.clock import SystemClock\n"
        "from monitor.config import load_config\n"
        "Phasewatch.build(load_config(None), db_path={db!r}, clock=SystemClock(),"
        " dry_run_alerts=True, snapshots=True).close()")


def snapshot_copy(path: Path, pycache: Path, pythonpath: str | None = None) -> Path:
    """A copy of the store with the service's snapshot, saved as ``serve`` saves it at a stop
    (in a child process: this one stays small, its peak counts in the children's); by the
    code at ``pythonpath`` (an old tree) when given."""
    copy = path.with_name(path.stem + ("-snapshot.db" if pythonpath is None else "-before-snapshot.db"))
    if not copy.exists():
        tmp = copy.with_suffix(".tmp")
        shutil.copy(path, tmp)
        tmp.rename(copy)
    # Saved again each time (restored first when it still fits): a snapshot of other code is
    # ignored, and the rows would time the rebuild instead.
    # In the store's folder: ``python -c`` puts its working directory first on sys.path.
    env = installed_env(dict(os.environ, PYTHONPATH=pythonpath) if pythonpath else os.environ,
                        pycache)
    run_command([sys.executable, "-c", SAVE.format(db=str(copy))], env=env, cwd=copy.parent)
    return copy


def before_copy(path: Path, before: Path) -> Path:
    """A copy of the store at the schema the old tree knows (without the run-date index)."""
    copy = path.with_name(path.stem + "-before.db")
    if not copy.exists():
        shutil.copy(path, copy)
        db = sqlite3.connect(copy)
        db.execute("DROP INDEX IF EXISTS events_by_run_date")
        db.execute("PRAGMA user_version = 3")
        db.commit()
        db.close()
    return copy


Timed = tuple[str, Callable[[], Sample], int]  # name, one run, runs


def phasewatch(tree: str | None) -> list[str]:
    """The ``phasewatch`` script of ``tree`` (default: this one), as its ``pyproject.toml``
    declares it (``[project.scripts]``): what an install of that tree runs. Each tree's own,
    as the entry point moved (``monitor.app.cli.start`` since 2026-12-07)."""
    root = Path(tree) if tree else Path(__file__).resolve().parent.parent
    with open(root / "pyproject.toml", "rb") as f:
        module, function = tomllib.load(f)["project"]["scripts"]["phasewatch"].split(":")
    return [sys.executable, "-c", f"import sys; sys.argv[0] = 'phasewatch'; "
            f"from {module} import {function}; sys.exit({function}())"]


def measure(label: str, db: Path, runs: int, pythonpath: str | None, pycache: Path,
            only: list[str] | None = None) -> list[Timed]:
    env = installed_env(os.environ, pycache)
    if pythonpath:
        env["PYTHONPATH"] = pythonpath
    out: list[Timed] = []
    for name, args in COMMANDS.items():
        if only and name not in only:
            continue
        argv = [*phasewatch(pythonpath), *args, "--db", str(db)]
        out.append((f"{label} {name}",
                    lambda argv=argv: run_command(argv, env=env, ok=(0, 1), cwd=db.parent), runs))
    return out


def peak_mb() -> float:
    with open("/proc/self/status") as status:
        for line in status:
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) / 1024
    return 0.0


def main(argv: list[str] | None = None) -> list[dict[str, str]]:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--quick", action="store_true")
    parser.add_argument("--events", type=int, default=None)
    parser.add_argument("--runs", type=int, default=5)
    parser.add_argument("--before", type=Path, default=None, help="a tree of the old code")
    parser.add_argument("--before-runs", type=int, default=None,
                        help="runs of each old command (default: --runs)")
    parser.add_argument("--before-schema", choices=("3", "same"), default="3",
                        help="the old tree's store schema: 3 (before the run-date index, 1900fc7) "
                             "or the same as now (then also measured with a snapshot it saves)")
    parser.add_argument("--command", action="append", choices=sorted(COMMANDS),
                        help="only these commands (default: all)")
    parser.add_argument("--cache", type=Path, default=Path("/tmp/phasewatch-bench"))
    args = parser.parse_args(argv)
    total = args.events or (20_000 if args.quick else 1_000_000)
    path = cached_store(args.cache, "cold", total, build_store, f"{DAYS + 1} run dates")
    SQLiteStore(path).close()  # migrated once, outside the timings
    pycache = args.cache / "pycache"
    help_env = installed_env(os.environ, pycache)
    paths: list[Timed] = [("now phasewatch --help (start-up alone)",
                           lambda: run_command([*phasewatch(None), "--help"], env=help_env),
                           args.runs)]
    before_runs = args.before_runs or args.runs
    if args.before is not None:
        old_env = dict(help_env, PYTHONPATH=str(args.before))
        old_help = [*phasewatch(str(args.before)), "--help"]
        paths.append(("before phasewatch --help",
                      lambda: run_command(old_help, env=old_env), before_runs))
    paths += measure("now", path, args.runs, None, pycache, args.command)
    paths += measure("now, with the service's snapshot:", snapshot_copy(path, pycache),
                     args.runs, None, pycache, args.command)
    if args.before is not None and args.before_schema == "same":
        old = str(args.before)
        paths += measure("before", path, before_runs, old, pycache, args.command)
        paths += measure("before, with its snapshot:", snapshot_copy(path, pycache, old),
                         before_runs, old, pycache, args.command)
    elif args.before is not None:
        paths += measure("before", before_copy(path, args.before), before_runs,
                         str(args.before), pycache, args.command)
    figures = interleaved(paths)
    rows = [f.row() for f in figures]
    print(f"cold CLI paths, {total:,} events over {DAYS + 1} run dates, median [min-max]; "
          f"this process's own peak {peak_mb():.0f} MB (a child's peak counts it too)")
    print(table(rows))
    emit("cold_paths", rows)
    return rows


if __name__ == "__main__":
    main()
