"""What every ``phasewatch`` subcommand shares: one error style, loading config and stores, reading times.

A user's mistake (a bad option, a missing or unreadable file, a file that is not a store,
a config that does not validate) prints ``error: <what>`` on stderr, naming the file,
field or value and what is allowed, and exits 2; never a traceback.
"""

from __future__ import annotations

import sys
from datetime import datetime
from pathlib import Path
from typing import NoReturn

import click

from monitor.config import Config, load_config
from monitor.errors import ConfigError, PhasewatchError, StoreError
from monitor.store.sqlite import SQLiteStore

USAGE_EXIT = 2


def fail(message: str | PhasewatchError) -> NoReturn:
    """Print ``error: <message>`` (each line of it) to stderr and exit 2."""
    lines = str(message).splitlines() or ["(no detail)"]
    for line in lines:
        click.echo(f"error: {line}", err=True)
    sys.exit(USAGE_EXIT)


def config_or_exit(path: str | None) -> Config:
    """Load config (the bundled example when None), or exit 2 naming the file and field."""
    try:
        return load_config(path)
    except ConfigError as exc:
        fail(exc)


def existing_file(path: str | Path, option: str, hint: str = "") -> Path:
    """``path`` if it is a readable regular file, else exit 2 saying what is wrong with it."""
    p = Path(path)
    if not p.exists():
        fail(f"{option} {p}: no such file{hint}")
    if p.is_dir():
        fail(f"{option} {p}: is a directory; allowed: a file")
    try:
        with p.open("rb"):
            pass
    except OSError as exc:
        fail(f"{option} {p}: cannot read: {exc.strerror}")
    return p


def open_store(db_path: str, *, create: bool = False) -> SQLiteStore:
    """The SQLite store at ``db_path``, or exit 2 when it is missing, not a store or too new."""
    if db_path != ":memory:" and not create:
        existing_file(db_path, "--db", " (run `phasewatch serve` or `replay --db` first)")
    if db_path != ":memory:" and Path(db_path).is_dir():
        fail(f"--db {db_path}: is a directory; allowed: an SQLite file")
    try:
        return SQLiteStore(db_path)
    except StoreError as exc:
        fail(store_problem(exc))


def store_problem(exc: StoreError) -> str:
    """A StoreError as one line that also says what ``--db`` takes."""
    text = str(exc)
    if text.startswith("cannot open store"):
        text += "; allowed: an SQLite store written by phasewatch"
    return text


def parse_time_option(value: str, option: str) -> datetime:
    """An RFC 3339 time with an offset given to ``option``, or exit 2."""
    try:
        when = datetime.fromisoformat(value.strip().replace("Z", "+00:00"))
    except ValueError:
        when = None
    if when is None or when.tzinfo is None:
        fail(f"{option} {value!r}: not a time; allowed: an RFC 3339 time with offset, "
             "e.g. 2026-01-18T12:00:00Z")
    return when
