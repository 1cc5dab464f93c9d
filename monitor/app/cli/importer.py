"""``phasewatch import``: load history as a backfill (stored and learned from, never acted on)."""

from __future__ import annotations

import json
import time
from collections.abc import Sequence
from pathlib import Path

import click
from phasewatch_client import PhasewatchClient
from phasewatch_client.errors import DeliveryError
from phasewatch_client.event import validate_event

from monitor.app.cli.console import count_lines, progress
from monitor.app.cli.support import config_or_exit, db_option, existing_file, fail, open_store
from monitor.app.importer import ImportSummary, Send, read_events, run_import, store_with
from monitor.clock import SystemClock
from monitor.collector import Collector
from monitor.events import Event, event_dict
from monitor.telemetry.metrics import Metrics
from monitor.telemetry.tracing import RunTracer, build_tracer_provider
from monitor.tracker import RunTracker

SHOWN_PROBLEMS = 20


@click.command("import")
@click.argument("events", type=click.Path(dir_okay=False, path_type=Path))
@click.option("--config", "config_path", type=click.Path(dir_okay=False), help="Config file.")
@db_option(help="Store to import into (an SQLite instance that is not running reads them on "
           "start; instances sharing a PostgreSQL store follow them at once)")
@click.option("--url", help="Import into a running phasewatch instead (POST /v1/events as a backfill).")
@click.option("--token", envvar="PHASEWATCH_TOKEN", help="Bearer token for --url [env PHASEWATCH_TOKEN].")
@click.option("--skip-invalid", is_flag=True,
              help="Import the valid lines and list the others "
              "(default: import nothing if any line is invalid).")
@click.option("--json", "as_json", is_flag=True, help="Print the summary as JSON.")
def import_command(events: Path, config_path: str | None, db_path: str, url: str | None,
                   token: str | None, skip_invalid: bool, as_json: bool) -> None:
    """Import a JSON Lines file of past events as a backfill.

    Every line is validated first. The events are stored (a repeated event_id is a
    duplicate, so an interrupted import can be run again), tracked, and feed SLO budgets
    and anomaly baselines, but nothing is triggered and no alert is sent about them.
    """
    cfg = config_or_exit(config_path)
    existing_file(events, "events")
    summary = ImportSummary()
    store = open_store(":memory:") if url else open_store(db_path, create=True, options=cfg.store)
    metrics = Metrics()
    collector = Collector(cfg, store, RunTracker(cfg), metrics,
                          RunTracer(build_tracer_provider(cfg.telemetry), metrics), SystemClock())
    if not url and not store.shared and store.judged() == store.position():
        # A backfill acts on nothing and tells nobody: what is imported counts as judged
        # (the service learns it on start, in silence) and keeps the judged mark with it,
        # unless a kill left events unjudged before (the service judges those, and these).
        collector.judge_from(store.position())
    started = time.monotonic()
    try:
        valid = read_events(events, collector, summary)
        if summary.invalid and not skip_invalid:
            _show_problems(summary)
            fail(f"{events}: {len(summary.invalid)} of {summary.lines} lines are not valid "
                 "events; nothing was imported (fix them, or pass --skip-invalid)")
        if not valid:
            fail(f"{events}: no valid events to import")
        with progress(f"importing {events.name}", lambda: count_lines(events)) as advance:
            if url:
                with _client(url, token, valid) as client:
                    run_import(valid, _send_to(client), summary, advance)
            else:
                run_import(valid, store_with(collector), summary, advance)
    finally:
        store.close()
    if summary.invalid:
        _show_problems(summary)
    if as_json:
        click.echo(json.dumps(summary.as_dict(), sort_keys=True))
        return
    took = time.monotonic() - started
    where = url or db_path
    out = summary.as_dict()
    lines = [
        f"imported {summary.imported} events into {where} ({summary.duplicates} duplicates, "
        f"{len(summary.invalid)} invalid lines skipped) in {took:.1f} s",
        f"  {out['runs']} runs of {', '.join(out['pipelines'])} "  # type: ignore[arg-type]
        f"from {out['first_run_date']} to {out['last_run_date']}",
    ]
    if summary.outside_window:
        lines.append(f"  {summary.outside_window} events outside the accepted run dates skipped "
                     "(runs.accept_past_days, runs.accept_future_days)")
    lines.append("  as a backfill: nothing was triggered and no alert was sent")
    click.echo("\n".join(lines))


def _show_problems(summary: ImportSummary) -> None:
    for problem in summary.invalid[:SHOWN_PROBLEMS]:
        click.echo(f"  {problem.render()}", err=True)
    more = len(summary.invalid) - SHOWN_PROBLEMS
    if more > 0:
        click.echo(f"  … and {more} more invalid lines", err=True)


def _client(url: str, token: str | None, events: Sequence[Event]) -> PhasewatchClient:
    pipeline = events[0].pipeline
    try:
        return PhasewatchClient(url, token, pipeline=pipeline, backfill=True, max_batch=500)
    except ValueError as exc:
        fail(f"--url {url!r}: {exc}")


def _send_to(client: PhasewatchClient) -> Send:
    def send(batch: Sequence[Event]) -> tuple[int, int]:
        try:
            ack = client.send([validate_event(event_dict(e)) for e in batch])
        except DeliveryError as exc:
            fail(f"--url {client.where}: {exc}; the batches before this one were imported "
                 "(run the import again: duplicates are ignored)")
        return ack.accepted, ack.duplicates

    return send
