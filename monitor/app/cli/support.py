"""What every ``phasewatch`` subcommand shares: loading config and reading times, exit 2 on bad input."""

from __future__ import annotations

import sys
from datetime import datetime

import click

from monitor.config import Config, load_config
from monitor.errors import ConfigError


def config_or_exit(path: str | None) -> Config:
    """Load config (the bundled example when None), or exit 2 naming the file and field."""
    try:
        return load_config(path)
    except ConfigError as exc:
        click.echo(str(exc), err=True)
        sys.exit(2)


def parse_time_option(value: str, option: str) -> datetime:
    """An RFC 3339 time with an offset given to ``option``, or a usage error (exit 2)."""
    try:
        when = datetime.fromisoformat(value.strip().replace("Z", "+00:00"))
    except ValueError:
        when = None
    if when is None or when.tzinfo is None:
        raise click.BadParameter(
            f"{value!r}; allowed: an RFC 3339 time with offset, e.g. 2026-01-18T12:00:00Z",
            param_hint=option,
        )
    return when
