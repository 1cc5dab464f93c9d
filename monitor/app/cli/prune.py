"""``phasewatch prune``: delete the history past the config's retention, now."""

from __future__ import annotations

import json
from datetime import UTC, datetime

import click
from rich.table import Table

from monitor.app.cli.console import print_out, table
from monitor.app.cli.support import config_or_exit, db_option, fail, open_store, parse_time_option
from monitor.app.retention import RULES, cutoffs, pruner
from monitor.store.config import RetentionConfig
from monitor.store.retention import PrunableStore, Pruned

PRUNE_EPILOG = """\b
--json prints one object: store, dry_run, at (RFC 3339), rows (table: rows deleted, or
that would be), total, complete, and with an SQLite store bytes_before, bytes_after."""


@click.command("prune", epilog=PRUNE_EPILOG)
@click.option("--config", "config_path", type=click.Path(dir_okay=False), default=None,
              help="Config file (its retention section; default: the bundled example).")
@db_option(help="The store to prune")
@click.option("--dry-run", is_flag=True, help="Count what would be deleted; delete nothing.")
@click.option("--at", "at_text", default=None,
              help="Prune as of this time (RFC 3339; default: now).")
@click.option("--json", "as_json", is_flag=True, help="Print JSON (described below).")
def prune_command(config_path: str | None, db_path: str, dry_run: bool, at_text: str | None,
                  as_json: bool) -> None:
    """Delete what is past the retention section's days, table by table, in batches, then
    give the space back (SQLite: incremental vacuum; PostgreSQL: autovacuum reuses it).

    The same pass as the `prune` job of a running phasewatch (hourly, or POST
    /v1/jobs/prune), without its cap on rows per pass. An SQLite store belongs to one
    process: stop `phasewatch serve` first, or call the job instead.
    """
    cfg = config_or_exit(config_path)
    at = parse_time_option(at_text, "--at") if at_text else datetime.now(UTC)
    store = open_store(db_path, options=cfg.store)
    try:
        if not isinstance(store, PrunableStore):
            fail(f"--db {db_path}: this store cannot be pruned")
        size = getattr(store, "file_bytes", None)
        before = size() if callable(size) else None
        job = pruner(store, cfg)
        result = job.count(cutoffs(cfg, at)) if dry_run else job.prune(cutoffs(cfg, at))
        if not dry_run:
            result.reclaimed_bytes = store.reclaim()
        after = size() if callable(size) else None
        where = store.describe()
    finally:
        store.close()
    if as_json:
        out: dict[str, object] = {
            "store": where, "dry_run": dry_run, "at": at.isoformat(), "rows": result.rows,
            "total": result.total, "complete": result.complete,
        }
        if before is not None:
            out.update(bytes_before=before, bytes_after=after)
        click.echo(json.dumps(out, indent=2))
        return
    print_out(_table(result, cfg.retention, dry_run))
    click.echo(_summary(where, result, dry_run, before, after))


def _table(result: Pruned, retention: RetentionConfig, dry_run: bool) -> Table:
    settings = {rule.table: rule.setting for rule in RULES}
    out = table("table", "retention", "rows that would be deleted" if dry_run else "rows deleted")
    for name, rows in result.rows.items():
        setting = settings.get(name)
        kept = f"{setting}_days: {retention.days(setting)}" if setting else "expired a day"
        out.add_row(name, kept, f"{rows:,}")
    return out


def _summary(where: str, result: Pruned, dry_run: bool, before: int | None,
             after: int | None) -> str:
    verb = "would delete" if dry_run else "deleted"
    line = f"{where}: {verb} {result.total:,} rows"
    if before is not None and after is not None:
        line += f"; file {before / 1e6:.1f} MB -> {after / 1e6:.1f} MB"
    return line
