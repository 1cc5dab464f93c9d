"""``phasewatch dashboards build | check | push``: the Cloud Monitoring and Grafana JSON."""

from __future__ import annotations

import sys
from collections.abc import Callable
from importlib import resources
from pathlib import Path
from typing import Any

import click

from monitor.app.cli.support import config_or_exit, fail
from monitor.config import Config, parse_config
from monitor.dashboards import (
    DEFAULT_METRIC_PREFIX,
    DuplicatePipeline,
    QueryMode,
    differences,
    write,
)
from monitor.dashboards.files import CLOUD_MONITORING, FOLDERS, documents, text


def bundled_configs() -> list[Config]:
    """The example configs shipped with phasewatch (examples/*.yaml), by file name."""
    folder = resources.files("monitor") / "examples"
    names = sorted(p.name for p in folder.iterdir() if p.name.endswith(".yaml"))
    return [parse_config((folder / name).read_text("utf-8"), f"<bundled {name}>") for name in names]


def _configs(paths: tuple[str, ...]) -> list[Config]:
    return [config_or_exit(p) for p in paths] if paths else bundled_configs()


def _options(command: Callable[..., Any]) -> Callable[..., Any]:
    """The options that say what is generated, shared by build, check and push."""
    for option in reversed((
        click.option("--config", "config_paths", multiple=True, type=click.Path(dir_okay=False),
                     help="Config file (repeatable; default: the bundled examples, nba and mlb)."),
        click.option("--query", "query", type=click.Choice(["promql", "filter"]), default="promql",
                     show_default=True,
                     help="Cloud Monitoring queries: PromQL over Managed Service for Prometheus, "
                          "or filters over the custom metrics phasewatch exports."),
        click.option("--metric-prefix", default=DEFAULT_METRIC_PREFIX, show_default=True,
                     help="With --query filter: the custom metrics' type prefix."),
    )):
        command = option(command)
    return command


def _prefix(metric_prefix: str) -> str:
    prefix = metric_prefix.strip().rstrip("/")
    if not prefix or " " in prefix or "." not in prefix.split("/")[0]:
        fail(f"--metric-prefix {metric_prefix!r}: not a metric type prefix; allowed: a domain and "
             f"path, e.g. {DEFAULT_METRIC_PREFIX}")
    return prefix


def _documents(config_paths: tuple[str, ...], query: QueryMode,
               metric_prefix: str) -> dict[str, dict[str, Any]]:
    prefix = _prefix(metric_prefix)
    try:
        return documents(_configs(config_paths), query=query, metric_prefix=prefix)
    except DuplicatePipeline as exc:
        fail(f"--config: {exc}; allowed: each pipeline id once")


def _render(config_paths: tuple[str, ...], query: QueryMode, metric_prefix: str) -> dict[str, str]:
    return {name: text(d) for name, d in _documents(config_paths, query, metric_prefix).items()}


OUT = click.option("--out", "out_dir", default="dashboards", show_default=True,
                   type=click.Path(file_okay=False, path_type=Path),
                   help="The dashboards folder (cloud-monitoring/ and grafana/ inside).")


@click.group("dashboards")
def dashboards() -> None:
    """Cloud Monitoring and Grafana dashboards as JSON, generated from the config."""


@dashboards.command("build")
@_options
@OUT
def build_command(config_paths: tuple[str, ...], query: QueryMode, metric_prefix: str,
                  out_dir: Path) -> None:
    """Write every pipeline's dashboards under --out (and remove ones no pipeline makes)."""
    files = _render(config_paths, query, metric_prefix)
    try:
        changed = write(out_dir, files)
    except OSError as exc:
        fail(f"--out {out_dir}: cannot write: {exc.strerror or exc}")
    state = f"{len(changed)} written or removed" if changed else "all up to date"
    click.echo(f"{out_dir}: {len(files)} dashboards ({', '.join(FOLDERS)}), {state}")


@dashboards.command("check")
@_options
@OUT
def check_command(config_paths: tuple[str, ...], query: QueryMode, metric_prefix: str,
                  out_dir: Path) -> None:
    """Exit 1, naming each file, when --out differs from what the config generates."""
    files = _render(config_paths, query, metric_prefix)
    problems = differences(out_dir, files)
    if not problems:
        click.echo(f"{out_dir}: {len(files)} dashboards match the config")
        return
    for problem in problems:
        click.echo(f"{out_dir}/{problem}", err=True)
    click.echo("run `phasewatch dashboards build` (with the same options) and commit the result",
               err=True)
    sys.exit(1)


@dashboards.command("push")
@click.option("--project", required=True, help="Google Cloud project id.")
@click.option("--validate-only", is_flag=True,
              help="Have the API check every dashboard; create or change nothing.")
@click.option("--endpoint", default=None,
              help="Dashboards API host:port (default monitoring.googleapis.com:443); a loopback "
                   "address is spoken to in plain text, without credentials (a local test server).")
@_options
def push_command(project: str, validate_only: bool, endpoint: str | None,
                 config_paths: tuple[str, ...], query: QueryMode, metric_prefix: str) -> None:
    """Create or update the Cloud Monitoring dashboards in --project (matched by display name)."""
    try:
        from monitor.dashboards.push import PushError, client, push
    except ImportError as exc:
        fail(f"push needs google-cloud-monitoring-dashboards ({exc.name} is missing): "
             "pip install 'phasewatch[gcp]'")
    project = project.strip()
    if not project:
        fail("--project '': allowed: a Google Cloud project id")
    found = _documents(config_paths, query, metric_prefix)
    cloud = [doc for name, doc in found.items() if name.startswith(f"{CLOUD_MONITORING}/")]
    try:
        results = push(client(endpoint), project, cloud, validate_only=validate_only)
    except PushError as exc:
        if exc.usage:
            fail(str(exc))
        click.echo(f"error: {exc}", err=True)
        sys.exit(1)
    for r in results:
        click.echo(f"{r.action}: {r.display_name}" + (f" ({r.name})" if r.name else ""))
