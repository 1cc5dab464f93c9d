"""The ``phasewatch`` command line (DESIGN §5). Exit 0 ok, 1 a check found a problem, 2 usage/config."""

from __future__ import annotations

import sys

import click

from monitor.config import load_config
from monitor.errors import ConfigError


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
    try:
        cfg = load_config(path)
    except ConfigError as exc:
        click.echo(str(exc), err=True)
        sys.exit(2)
    pipelines = ", ".join(f"{p.id} ({len(p.phases)} phases)" for p in cfg.pipelines)
    click.echo(f"{path}: ok: {pipelines}")


# Commands defined in other modules register here (one line each).
