"""``phasewatch slo report`` and ``phasewatch slo rules`` (DESIGN §5)."""

from __future__ import annotations

import json
import sys
from datetime import UTC, datetime

import click
from rich.console import Group
from rich.text import Text

from monitor.app.cli.console import print_out, table
from monitor.app.cli.support import config_or_exit, open_store, parse_time_option
from monitor.store.window import window_events, window_start
from monitor.tracker import RunTracker
from slo.evaluator import SLOEngine, SLOStatus
from slo.rules import rules_yaml


@click.group()
def slo() -> None:
    """SLO status and Prometheus rules."""


@slo.command("report")
@click.option("--json", "as_json", is_flag=True, help="Print JSON instead of a table.")
@click.option("--config", "config_path", type=click.Path(dir_okay=False), default=None,
              help="Config file (default: the bundled example).")
@click.option("--db", "db_path", default="phasewatch.db", show_default=True,
              help="The SQLite event store.")
@click.option("--at", "at_text", default=None,
              help="Evaluate as of this time (RFC 3339): only events up to it count.")
def report(as_json: bool, config_path: str | None, db_path: str, at_text: str | None) -> None:
    """Rebuild every SLO from the store and print its status; exit 1 if any is in breach."""
    cfg = config_or_exit(config_path)
    at = parse_time_option(at_text, "--at") if at_text else None
    store = open_store(db_path)
    now = at or datetime.now(UTC)
    try:
        engine = SLOEngine(cfg)
        since = window_start(now.date(), engine.history_days)
        events = window_events(store, since, until=at)
        tracker = RunTracker(cfg, retention_days=engine.history_days)
        engine.rebuild(tracker.apply(event) for event in events)
        statuses = engine.evaluate(now)
    finally:
        store.close()
    if as_json:
        click.echo(json.dumps(
            {"time": now.isoformat(), "slos": [s.as_dict() for s in statuses]}, indent=2
        ))
    else:
        print_out(render_table(statuses, now) if statuses else Text("no SLOs configured"))
    if any(s.status == "breach" for s in statuses):
        sys.exit(1)


@slo.command("rules")
@click.option("--config", "config_path", type=click.Path(dir_okay=False), default=None,
              help="Config file (default: the bundled example).")
def rules(config_path: str | None) -> None:
    """Print Prometheus recording and alerting rules (multi-window burn rate) as YAML."""
    click.echo(rules_yaml(config_or_exit(config_path)), nl=False)


def _number(value: float) -> str:
    return f"{value:.2f}".rstrip("0").rstrip(".")


def render_table(statuses: list[SLOStatus], now: datetime) -> Group:
    """A table, one SLO per row, that fits the terminal (long names and budgets wrap)."""
    t = table("SLO", "WINDOW", "OBJECTIVE", "SLI", "GOOD/TOTAL", "BUDGET LEFT", "BURN", "STATUS",
              wrap=("SLO", "WINDOW", "BUDGET LEFT"))
    for s in statuses:
        sli = "-" if s.sli is None else f"{s.sli:.2%}"
        left = (
            f"{_number(float(s.budget_remaining_units))} of {_number(float(s.budget_total))} "
            f"{s.unit} ({s.budget_remaining:.0%})"
        )
        t.add_row(s.name, s.window, f"{s.objective:.2%}", sli, f"{s.good}/{s.total}", left,
                  f"{s.burn_rate:.2f}x", s.status.upper())
    return Group(Text(f"SLO status at {now.isoformat()}"), t)
