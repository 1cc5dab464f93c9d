"""``phasewatch bigquery ddl | backfill``: the mirror's tables, and a local store copied into them."""

from __future__ import annotations

import sys
from typing import Any

import click
from pydantic import TypeAdapter, ValidationError

from monitor.app.cli.support import config_or_exit, fail, open_store
from monitor.config import Config
from monitor.telemetry.mirror_config import BigQueryMirrorConfig, DatasetId, ProjectId
from monitor.telemetry.mirror_tables import TABLES, ddl


def mirror_config(config: Config, project: str | None, dataset: str | None) -> BigQueryMirrorConfig:
    """The config's ``mirror.bigquery`` (or the defaults) with the options given on the command line."""
    base = config.mirror.bigquery or BigQueryMirrorConfig()
    update: dict[str, str] = {}
    if project is not None:
        update["project"] = _checked(project, ProjectId, "--project",
                                     "a Google Cloud project id (6-30 lowercase letters, digits, -)")
    if dataset is not None:
        update["dataset"] = _checked(dataset, DatasetId, "--dataset",
                                     "letters, digits and underscores")
    return BigQueryMirrorConfig.model_validate({**base.model_dump(), **update})


def _checked(value: str, kind: Any, option: str, allowed: str) -> str:
    try:
        return str(TypeAdapter(kind).validate_python(value))
    except ValidationError:
        fail(f"{option} {value!r}: not valid; allowed: {allowed}")


_CONFIG = click.option("--config", "config_path", type=click.Path(dir_okay=False), default=None,
                       help="Config file whose mirror.bigquery names the tables (default: the "
                       "bundled example).")
_PROJECT = click.option("--project", default=None, help="Project of the dataset (default: "
                        "mirror.bigquery.project; ddl: the project the statement runs in).")
_DATASET = click.option("--dataset", default=None,
                        help="Dataset of the tables (default: mirror.bigquery.dataset, else phasewatch).")


@click.group("bigquery")
def bigquery_group() -> None:
    """The BigQuery mirror's tables (mirror.bigquery in the config)."""


@bigquery_group.command("ddl")
@_CONFIG
@_PROJECT
@_DATASET
def ddl_command(config_path: str | None, project: str | None, dataset: str | None) -> None:
    """Print CREATE TABLE statements for the mirror's tables (GoogleSQL), for `bq query`."""
    cfg = mirror_config(config_or_exit(config_path), project, dataset)
    prefix = f"{cfg.project}." if cfg.project else ""
    click.echo(ddl({name: f"{prefix}{cfg.dataset}.{cfg.table_prefix}{name}" for name in TABLES}),
               nl=False)


@bigquery_group.command("backfill")
@click.option("--db", "db_path", required=True, help="The SQLite event store to copy.")
@_CONFIG
@_PROJECT
@_DATASET
@click.option("--api-endpoint", default=None,
              help="BigQuery API endpoint, e.g. a local emulator's http://127.0.0.1:9050 (no "
              "credentials are sent to it; needs --project or mirror.bigquery.project).")
def backfill_command(db_path: str, config_path: str | None, project: str | None,
                     dataset: str | None, api_endpoint: str | None) -> None:
    """Copy a local store's events, check results and alert notifications into the mirror's
    tables; rows already there (by id) are skipped, so it can run again. Exit 1 if some rows
    could not be written."""
    cfg = mirror_config(config_or_exit(config_path), project, dataset)
    store = open_store(db_path)
    try:
        try:
            from monitor.app.backfill import backfill
            from monitor.app.cli.console import print_out
            from monitor.telemetry import bigquery
            from monitor.telemetry.metrics import Metrics
            from monitor.telemetry.mirror import Mirror
            from monitor.telemetry.mirror_tables import ENCODERS
        except ImportError as exc:
            fail(f"bigquery backfill needs google-cloud-bigquery ({exc.name} is not installed); "
                 "allowed: pip install 'phasewatch[gcp]'")
        if api_endpoint is None:
            client = bigquery.client_for(cfg)
        elif cfg.project is None:
            fail("--api-endpoint needs --project (or mirror.bigquery.project in the config)")
        else:
            client = bigquery.local_client(cfg.project, api_endpoint)
        sink = bigquery.BigQuerySink(client, cfg)
        mirror = Mirror(sink, ENCODERS, Metrics(), name="bigquery", batch=cfg.batch,
                        interval_s=cfg.interval_s, queue_max=cfg.queue_max)
        result = backfill(store, mirror, sink)
    finally:
        store.close()
    for table, found in result.found.items():
        print_out(f"{table}: {found} in the store, {result.present.get(table, 0)} already in "
                  f"BigQuery, {result.written.get(table, 0)} written, "
                  f"{result.failed.get(table, 0)} not written")
    if any(result.failed.values()):
        sys.exit(1)

