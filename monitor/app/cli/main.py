"""The ``phasewatch`` command line (DESIGN §5). Exit 0 ok, 1 a check found a problem, 2 usage/config.

A command's module is imported when the command runs (``LAZY_COMMANDS``), and the commands
defined here import what they use inside them: a cold command loads only what it needs
(the HTTP server, the actuator, the alert channels and their client libraries stay out of
``status`` and ``slo report``).
"""

from __future__ import annotations

import gc
import importlib
import json
import sys
from datetime import date
from pathlib import Path
from typing import TYPE_CHECKING, Any, NamedTuple

import click

from monitor.app.cli.support import (
    check_db,
    config_or_exit,
    db_option,
    existing_file,
    fail,
    open_store,
    parse_time_option,
    store_problem,
)
from monitor.config import Config
from monitor.errors import ConfigError, StoreError

if TYPE_CHECKING:
    from monitor.app.phasewatch import Phasewatch


class Lazy(NamedTuple):
    """A command defined in its own module, imported when it runs."""

    target: str  # "module:attribute"
    summary: str  # the first sentence of its help: what ``phasewatch --help`` lists


# The commands defined in their own modules. ``phasewatch --help`` lists them by their
# ``summary`` and imports none of them (tests/test_cli_imports.py: the list is the commands'
# own, at every width).
LAZY_COMMANDS = {
    "emit": Lazy("monitor.app.cli.emit:emit_command", "Report one pipeline event to phasewatch "
                 "(exit 0 sent, 1 rejected/unreachable, 2 invalid)."),
    "dead-letters": Lazy("monitor.app.cli.deadletters:dead_letters_group",
                         "Pub/Sub messages phasewatch refused (dead letters): redrive them."),
    "import": Lazy("monitor.app.cli.importer:import_command",
                   "Import a JSON Lines file of past events as a backfill."),
    "anomaly": Lazy("monitor.app.cli.anomaly:anomaly",
                    "Find unusual values with phasewatch's streaming detector."),
    "slo": Lazy("monitor.app.cli.slo:slo", "SLO status, Prometheus rules and SQL SLIs."),
    "serve": Lazy("monitor.app.cli.serve:serve_command", "Run the HTTP service: ingest events, "
                  "serve metrics, run the periodic jobs."),
    "silence": Lazy("monitor.app.cli.alerts:silence_group", "Silence alerts by label matchers "
                    "for a while (author and comment required)."),
    "health-check": Lazy("monitor.app.cli.alerts:health_check_command", "Judge phasewatch's view "
                         "of the pipelines now; exit 1 when not healthy."),
    "report": Lazy("monitor.app.cli.alerts:report_command", "Reliability, MTTR, manual "
                   "interventions, automated recoveries and the health score."),
    "dashboards": Lazy("monitor.app.cli.dashboards:dashboards", "Cloud Monitoring and Grafana "
                       "dashboards as JSON, generated from the config."),
    "check": Lazy("monitor.app.cli.check:check_group",
                  "Data checks: record a result, or try a configured check's query."),
    "bigquery": Lazy("monitor.app.cli.bigquery:bigquery_group",
                     "The BigQuery mirror's tables (mirror.bigquery in the config)."),
    "loadtest": Lazy("monitor.app.cli.loadtest:loadtest", "Drive a running phasewatch with load; "
                     "exit 1 when a threshold is breached."),
    "prune": Lazy("monitor.app.cli.prune:prune_command", "Delete what is past the retention "
                  "section's days, table by table, in batches, then give the space back "
                  "(SQLite: incremental vacuum; PostgreSQL: autovacuum reuses it)."),
}


class PhasewatchGroup(click.Group):
    """The root group: click's own usage errors in the CLI's one error style (``error: ...``,
    exit 2), and the commands of ``LAZY_COMMANDS`` imported when used (click's "lazily
    loading subcommands") and listed by their summary."""

    def list_commands(self, ctx: click.Context) -> list[str]:
        return sorted([*super().list_commands(ctx), *LAZY_COMMANDS])

    def get_command(self, ctx: click.Context, cmd_name: str) -> click.Command | None:
        target = LAZY_COMMANDS.get(cmd_name)
        if target is None:
            return super().get_command(ctx, cmd_name)
        module, attribute = target.target.split(":")
        command = getattr(importlib.import_module(module), attribute)
        if not isinstance(command, click.Command) or command.name != cmd_name:
            raise RuntimeError(f"{target.target} is not the {cmd_name!r} command")
        return command

    def resolve_command(
        self, ctx: click.Context, args: list[str],
    ) -> tuple[str | None, click.Command | None, list[str]]:
        resolved = super().resolve_command(ctx, args)
        if not gc.isenabled():  # paused while the modules loaded (``monitor.app.cli.start``)
            gc.freeze()
            gc.enable()
        return resolved

    def format_commands(self, ctx: click.Context, formatter: click.HelpFormatter) -> None:
        """click's list of commands (``click.Group.format_commands``), a lazy command's line
        made from its summary: listing the commands imports none of them."""
        listed: list[tuple[str, click.Command]] = []
        for name in self.list_commands(ctx):
            lazy = LAZY_COMMANDS.get(name)
            command = (click.Command(name, help=lazy.summary) if lazy is not None
                       else super().get_command(ctx, name))
            if command is not None and not command.hidden:
                listed.append((name, command))
        if listed:
            limit = formatter.width - 6 - max(len(name) for name, _ in listed)
            with formatter.section("Commands"):
                formatter.write_dl([(name, command.get_short_help_str(limit))
                                    for name, command in listed])

    def main(self, *args: Any, **kwargs: Any) -> Any:
        kwargs["standalone_mode"] = False
        try:
            result = super().main(*args, **kwargs)
        except click.exceptions.NoArgsIsHelpError as exc:
            click.echo(exc.ctx.get_help() if exc.ctx else str(exc), err=True)
            sys.exit(2)
        except click.UsageError as exc:
            hint = f" (see `{exc.ctx.command_path} --help`)" if exc.ctx else ""
            fail(f"{exc.format_message()}{hint}")
        except click.ClickException as exc:
            fail(exc.format_message())
        except (ConfigError, StoreError) as exc:
            fail(exc)
        except click.Abort:
            click.echo("Aborted!", err=True)
            sys.exit(1)
        sys.exit(result if isinstance(result, int) else 0)


@click.group(cls=PhasewatchGroup)
@click.version_option(package_name="phasewatch")
def main() -> None:
    """phasewatch: watch phase-by-phase daily pipelines, judge them against SLOs, act on them.

    Exit status: 0 ok, 1 a check found a problem, 2 a usage, config or input error
    (one line on stderr: `error: <file, field or value>: <what is allowed>`).
    """


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


@config.command("schema")
def config_schema() -> None:
    """Print the JSON Schema of the config file, for editor completion and checking.

    Save it and point the YAML language server at it, e.g. with a first line
    `# yaml-language-server: $schema=./phasewatch.schema.json` in the config file
    (VS Code's YAML extension, Neovim, Helix and JetBrains IDEs read this comment).
    """
    schema = Config.model_json_schema()
    schema = {"$schema": "https://json-schema.org/draft/2020-12/schema",
              "title": "phasewatch config", **schema}
    click.echo(json.dumps(schema, indent=2, sort_keys=True))


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
    from monitor.app.cli.console import count_lines, progress
    from monitor.app.sim.replay import ReplayError, run_replay

    cfg = config_or_exit(config_path)
    end = parse_time_option(until, "--until") if until else None
    existing_file(events, "events")
    if report_path is not None and report_path.is_dir():
        fail(f"--report {report_path}: is a directory; allowed: a file path")
    check_db(db_path, create=True)
    with progress(f"replaying {events.name}", lambda: count_lines(events)) as advance:
        try:
            outcome = run_replay(events, cfg, db_path=db_path, until=end, on_line=advance)
        except ReplayError as exc:
            fail(exc)
        except StoreError as exc:
            fail(store_problem(exc))
    if report_path is None:
        click.echo(json.dumps(outcome.report, indent=2))
        return
    _write_or_fail(report_path, outcome.report, "--report")
    click.echo(summarise(outcome.report, report_path))


def _write_or_fail(path: Path, data: dict[str, Any], option: str) -> None:
    from monitor.app.sim.replay import write_json

    try:
        write_json(path, data)
    except OSError as exc:
        fail(f"{option} {path}: cannot write: {exc.strerror}")


def summarise(report: dict[str, Any], path: Path) -> str:
    """One line per report list with its length."""
    from monitor.app.sim.replay import REPORT_LISTS

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
    import logging

    from monitor.app.cli.console import count_lines, progress
    from monitor.app.page import dashboard_data, render_dashboard
    from monitor.app.sim.demo import demo_config, write_scenario, write_warehouse
    from monitor.app.sim.replay import run_replay
    from monitor.app.sim.report import render_demo

    try:
        out_dir.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        fail(f"--out {out_dir}: cannot create: {exc.strerror}")
    warehouse = (out_dir / "warehouse.db").resolve()  # what the demo's SQLite check reads
    write_warehouse(warehouse, days)
    cfg = demo_config(warehouse)
    log_path = out_dir / "phasewatch.log"
    logging.basicConfig(filename=log_path, level=logging.INFO, force=True,
                        format="%(asctime)s %(levelname)s %(name)s %(message)s")
    events_path = out_dir / "events.jsonl"
    count = write_scenario(events_path, days)
    pages: list[str] = []  # the dashboard page at the end, before the simulation closes

    def snapshot(pw: Phasewatch) -> None:
        pages.append(render_dashboard(dashboard_data(pw), cfg, live=False).html)

    with progress(f"simulating {days} days", lambda: count_lines(events_path)) as advance:
        outcome = run_replay(events_path, cfg, on_line=advance, on_end=snapshot)
    _write_or_fail(out_dir / "report.json", outcome.report, "--out")
    metrics_path = out_dir / "metrics.prom"
    metrics_path.write_text(outcome.metrics_text, "utf-8")
    page_path = out_dir / "dashboard.html"
    page_path.write_text(pages[0], "utf-8")
    click.echo(render_demo(outcome, cfg, days, count))
    click.echo(f"\nwrote {events_path}, {warehouse}, {out_dir / 'report.json'}, {metrics_path}, {page_path}, "
               f"{log_path}")


STATUS_JSON = """\b
--json prints one object: {"runs": [RUN, ...]}, the same run objects as the replay
report's "runs": pipeline, run_date, mode, first_event_at, last_event_at, notes (list of
strings) and phases (phase, status, expected, critical, required_count, done, missing,
failed, running, skipped, coverage, first_start, first_completion, last_completion,
completed_at, processors: name, status, starts, failures, started_at, finished_at,
duration_s, records, expected_records, data_as_of, error, last_heartbeat, coverage,
invocations, open_invocations; batches). Times are RFC 3339 (UTC)
or null. Keys are only ever added."""


@main.command("status", epilog=STATUS_JSON)
@click.option("--config", "config_path", type=click.Path(dir_okay=False), help="Config file.")
@db_option(help="The event store")
@click.option("--pipeline", help="Only this pipeline.")
@click.option("--run-date", "run_date",
              help="Only this run date (YYYY-MM-DD); default: the two latest run dates.")
@click.option("--json", "as_json", is_flag=True, help="Print JSON (described below) instead of tables.")
def status_command(
    config_path: str | None, db_path: str, pipeline: str | None, run_date: str | None,
    as_json: bool,
) -> None:
    """Show the run table for the current and previous runs (from the store)."""
    from monitor.app.cli.console import print_out, stdout_console
    from monitor.app.cli.status import phase_detail_renderable, runs_renderable
    from monitor.app.runnotes import note_list
    from monitor.store.window import window_events
    from monitor.tracker import RunTracker

    cfg = config_or_exit(config_path)
    if pipeline is not None and pipeline not in cfg.pipeline_map:
        fail(f"--pipeline {pipeline!r}: unknown pipeline; allowed: {', '.join(cfg.pipeline_map)}")
    day = _run_date(run_date) if run_date is not None else None
    store = open_store(db_path, options=cfg.store)
    tracker = RunTracker(cfg, retention_days=36500)
    try:
        # Only the run dates shown are read: the two latest (an index query) or --run-date.
        latest = [day] if day is not None else store.latest_run_dates(pipeline=pipeline, limit=2)
        if latest:
            tracker.rebuild(window_events(store, min(latest), pipeline=pipeline))
    finally:
        store.close()
    runs = [r for r in tracker.runs(pipeline=pipeline, run_date=day) if r.run_date in latest]
    if as_json:
        items = [{**run.as_dict(), "notes": note_list(run, cfg)} for run in runs]
        click.echo(json.dumps({"runs": items}, indent=2))
        return
    width = stdout_console().width
    parts = [runs_renderable(runs, cfg, width)]
    if day is not None:
        parts += [phase_detail_renderable(run, cfg) for run in runs]
    print_out(*_spaced(parts))


def _run_date(text: str) -> date:
    try:
        return date.fromisoformat(text.strip())
    except ValueError:
        fail(f"--run-date {text!r}: not a date; allowed: YYYY-MM-DD, e.g. 2026-01-17")


def _spaced(parts: list[Any]) -> list[Any]:
    """The parts with a blank line between each."""
    out: list[Any] = []
    for part in parts:
        if out:
            out.append("")
        out.append(part)
    return out
