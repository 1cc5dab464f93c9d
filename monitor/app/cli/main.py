"""The ``phasewatch`` command line (DESIGN §5). Exit 0 ok, 1 a check found a problem, 2 usage/config."""

from __future__ import annotations

import json
import logging
import sys
from datetime import datetime
from pathlib import Path
from typing import Any

import click

from monitor.app.cli.status import render_phase_detail, render_runs
from monitor.app.cli.support import config_or_exit, parse_time_option
from monitor.app.sim.demo import write_scenario
from monitor.app.sim.replay import REPORT_LISTS, ReplayError, run_replay, write_json
from monitor.app.sim.report import render_demo
from monitor.config import load_config
from monitor.store.sqlite import SQLiteStore
from monitor.tracker import RunTracker


@click.group()
@click.version_option(package_name="phasewatch")
def main() -> None:
    """phasewatch: watch phase-by-phase daily pipelines, judge them against SLOs, act on them."""


@main.group()
def config() -> None:
    """Work with pipeline config files."""


@config.command("validate")
@click.argument("path", type=click.Path(dir_okay=False))
def config_validate(path: str) -> None:
    """Validate a config file: exit 0, or exit 2 naming the file, field, value and what is allowed."""
    cfg = config_or_exit(path)
    pipelines = ", ".join(f"{p.id} ({len(p.phases)} phases)" for p in cfg.pipelines)
    click.echo(f"{path}: ok: {pipelines}")



@main.command("replay")
@click.argument("events", type=click.Path(dir_okay=False, path_type=Path))
@click.option("--config", "config_path", type=click.Path(dir_okay=False), help="Config file.")
@click.option("--report", "report_path", type=click.Path(dir_okay=False, path_type=Path),
              help="Write the JSON report here (default: stdout).")
@click.option("--until", help="Simulate up to this RFC 3339 time (default: last line + 1 h).")
@click.option("--db", "db_path", default=":memory:", show_default=True,
              help="Store for the simulation.")
def replay_command(
    events: Path, config_path: str | None, report_path: Path | None, until: str | None,
    db_path: str,
) -> None:
    """Replay a JSON Lines history through the whole stack on simulated time."""
    cfg = config_or_exit(config_path)
    end = parse_time_option(until, "--until") if until else None
    try:
        outcome = run_replay(events, cfg, db_path=db_path, until=end)
    except ReplayError as exc:
        click.echo(str(exc), err=True)
        sys.exit(2)
    if report_path is None:
        click.echo(json.dumps(outcome.report, indent=2))
        return
    write_json(report_path, outcome.report)
    click.echo(summarise(outcome.report, report_path))


def summarise(report: dict[str, Any], path: Path) -> str:
    """One line per report list with its length."""
    counts = ", ".join(f"{name} {len(report[name])}" for name in REPORT_LISTS)
    return f"report written to {path}: {counts}"


@main.command("demo")
@click.option("--days", default=12, show_default=True, type=click.IntRange(3, 120),
              help="Simulated days of the NBA example.")
@click.option("--out", "out_dir", default="phasewatch-demo", show_default=True,
              type=click.Path(file_okay=False, path_type=Path),
              help="Where the events, report and metrics snapshot go.")
def demo_command(days: int, out_dir: Path) -> None:
    """Simulate days of the NBA example through the whole stack and print what happened."""
    cfg = load_config(None)
    out_dir.mkdir(parents=True, exist_ok=True)
    log_path = out_dir / "phasewatch.log"
    logging.basicConfig(filename=log_path, level=logging.INFO, force=True,
                        format="%(asctime)s %(levelname)s %(name)s %(message)s")
    events_path = out_dir / "events.jsonl"
    count = write_scenario(events_path, days)
    outcome = run_replay(events_path, cfg)
    write_json(out_dir / "report.json", outcome.report)
    metrics_path = out_dir / "metrics.prom"
    metrics_path.write_text(outcome.metrics_text, "utf-8")
    click.echo(render_demo(outcome, cfg, days, count))
    click.echo(f"\nwrote {events_path}, {out_dir / 'report.json'}, {metrics_path}, {log_path}")


@main.command("status")
@click.option("--config", "config_path", type=click.Path(dir_okay=False), help="Config file.")
@click.option("--db", "db_path", default="phasewatch.db", show_default=True)
@click.option("--pipeline", help="Only this pipeline.")
@click.option("--run-date", "run_date", type=click.DateTime(["%Y-%m-%d"]),
              help="Only this run date (YYYY-MM-DD); default: the two latest run dates.")
def status_command(
    config_path: str | None, db_path: str, pipeline: str | None, run_date: datetime | None
) -> None:
    """Show the run table for the current and previous runs (from the store)."""
    cfg = config_or_exit(config_path)
    if pipeline is not None and pipeline not in cfg.pipeline_map:
        raise click.BadParameter(
            f"{pipeline!r}; allowed: {', '.join(cfg.pipeline_map)}", param_hint="--pipeline"
        )
    if not Path(db_path).exists():
        click.echo(f"{db_path}: no such store (run `phasewatch serve` or pass --db)", err=True)
        sys.exit(2)
    store = SQLiteStore(db_path)
    tracker = RunTracker(cfg, retention_days=36500)
    tracker.rebuild(store.events(pipeline=pipeline))
    store.close()
    runs = tracker.runs(pipeline=pipeline, run_date=run_date.date() if run_date else None)
    if run_date is None:
        latest = sorted({r.run_date for r in runs}, reverse=True)[:2]
        runs = [r for r in runs if r.run_date in latest]
    click.echo(render_runs(runs, cfg))
    if run_date is not None:
        for run in runs:
            click.echo("\n" + render_phase_detail(run, cfg))


# Commands defined in other modules register here (one line each).
from monitor.app.cli.emit import emit_command  # noqa: E402

main.add_command(emit_command)
from monitor.app.cli.anomaly import anomaly  # noqa: E402

main.add_command(anomaly)
from monitor.app.cli.slo import slo  # noqa: E402

main.add_command(slo)
from monitor.app.http.server import serve_command  # noqa: E402

main.add_command(serve_command)
from monitor.app.cli.alerts import health_check_command, report_command, silence_group  # noqa: E402

main.add_command(silence_group)
main.add_command(health_check_command)
main.add_command(report_command)
