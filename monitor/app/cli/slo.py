"""``phasewatch slo report`` and ``phasewatch slo rules`` (DESIGN §5)."""

from __future__ import annotations

import json
import sys
from datetime import UTC, datetime, timedelta

import click
from rich.console import Group
from rich.text import Text

from monitor.app.cli.bigquery import mirror_config
from monitor.app.cli.console import print_out, table
from monitor.app.cli.support import config_or_exit, db_option, fail, open_store, parse_time_option
from monitor.app.slo_history import stored_probes
from monitor.app.snapshot import StateSnapshots
from monitor.checks.store import CheckStore
from monitor.store.probes import ProbeLog
from monitor.store.window import window_events, window_start
from monitor.tracker import RunTracker
from slo.evaluator import SLOEngine, SLOStatus
from slo.rules import rules_yaml
from slo.sli.base import CheckReading
from slo.sql import DIALECTS, Tables, all_sql


@click.group()
def slo() -> None:
    """SLO status, Prometheus rules and SQL SLIs."""


@slo.command("report")
@click.option("--json", "as_json", is_flag=True, help="Print JSON instead of a table.")
@click.option("--config", "config_path", type=click.Path(dir_okay=False), default=None,
              help="Config file (default: the bundled example).")
@db_option(help="The event store")
@click.option("--at", "at_text", default=None,
              help="Evaluate as of this time (RFC 3339): only events up to it count.")
def report(as_json: bool, config_path: str | None, db_path: str, at_text: str | None) -> None:
    """Rebuild every SLO from the store and print its status; exit 1 if any is in breach.

    With the service's state snapshot in the store (and no ``--at``), it stands for the events
    it summarises: only the events after it are replayed."""
    cfg = config_or_exit(config_path)
    at = parse_time_option(at_text, "--at") if at_text else None
    store = open_store(db_path, options=cfg.store)
    now = at or datetime.now(UTC)
    try:
        engine = SLOEngine(cfg)
        tracker = RunTracker(cfg, retention_days=engine.history_days)
        restored = None if at is not None else StateSnapshots(
            store, cfg, {"tracker": tracker, "slo": engine}, engine.history_days, saves=False,
        ).restore(now, store.position())
        if restored is None:
            # Without the progress events that repeat the event before them: they change no
            # SLO unit, and a busy worker's heartbeats are most of a store (issue 18).
            events = window_events(store, window_start(now.date(), engine.history_days),
                                   until=at, progress="first")
            engine.reset()
        else:
            events = store.events(after=restored.position)
        for event in events:
            engine.on_update(tracker.apply(event))
        keep = engine.probe_retention_minutes
        if keep:  # a probe or a check result counted already replaces itself
            for probe in stored_probes(ProbeLog(store), since=now - timedelta(minutes=keep),
                                       until=now):
                engine.observe_probe(probe)
        checks = CheckStore(store).since(now - timedelta(days=engine.history_days))
        for result in (r for r in checks if r.at <= now):
            engine.observe_check(CheckReading(result.name, result.value, result.at,
                                              result.run_date, result.pipeline))
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


@slo.command("sql")
@click.option("--dialect", type=click.Choice(DIALECTS), default="bigquery", show_default=True,
              help="SQL dialect of the statements.")
@click.option("--slo", "names", multiple=True, help="Only this SLO (repeatable; default: all).")
@click.option("--config", "config_path", type=click.Path(dir_okay=False), default=None,
              help="Config file (default: the bundled example); mirror.bigquery names the tables.")
@click.option("--project", default=None, help="Project of the mirror's dataset (default: "
              "mirror.bigquery.project, else the project the query runs in).")
@click.option("--dataset", default=None, help="The mirror's dataset (default: mirror.bigquery.dataset).")
def sql_command(dialect: str, names: tuple[str, ...], config_path: str | None, project: str | None,
                dataset: str | None) -> None:
    """Print each SLO's SLI as SQL over the BigQuery mirror's tables: good and total units per
    day for a window given as @start and @end (TIMESTAMP parameters, half-open)."""
    cfg = config_or_exit(config_path)
    known = [s.name for s in cfg.slos]
    for name in names:
        if name not in known:
            fail(f"--slo {name!r}: no such SLO; allowed: {', '.join(known) or 'none configured'}")
    mirror = mirror_config(cfg, project, dataset)
    prefix = f"{mirror.project}." if mirror.project else ""

    def table(name: str) -> str:
        return f"{prefix}{mirror.dataset}.{mirror.table_prefix}{name}"

    tables = Tables(table("events"), table("probes"), table("checks"))
    click.echo(all_sql(cfg, tables, names or None), nl=False)


STATUS_SHOWN = {"insufficient_data": "INSUFFICIENT"}  # data: too few units to judge (cold start)


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
                  f"{s.burn_rate:.2f}x", STATUS_SHOWN.get(s.status, s.status.upper()))
    return Group(Text(f"SLO status at {now.isoformat()}"), t)
