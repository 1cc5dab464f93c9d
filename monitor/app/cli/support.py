"""What every ``phasewatch`` subcommand shares: one error style, loading config and stores, reading times.

A user's mistake (a bad option, a missing or unreadable file, a file that is not a store,
a config that does not validate) prints ``error: <what>`` on stderr, naming the file,
field or value and what is allowed, and exits 2; never a traceback.
"""

from __future__ import annotations

import sys
from collections.abc import Callable
from datetime import datetime
from pathlib import Path
from typing import Any, NoReturn, TypeVar

import click

from monitor.config import Config, load_config
from monitor.errors import ConfigError, PhasewatchError, StoreError
from monitor.store.config import StoreConfig
from monitor.store.registry import DB_ENV, URL_STORES, Store, scheme
from monitor.store.registry import open_store as open_any_store

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


F = TypeVar("F", bound=Callable[..., Any])
DB_ALLOWED = "an SQLite file, or " + " or ".join(f"a {s}://... URL" for s in URL_STORES)


def db_option(default: str = "phasewatch.db", help: str = "The store") -> Callable[[F], F]:
    """The ``--db`` option: an SQLite file or a PostgreSQL URL, ``$PHASEWATCH_DB`` when not given."""
    return click.option(
        "--db", "db_path", default=default, show_default=True, envvar=DB_ENV,
        help=f"{help}: an SQLite file or a postgresql://user:password@host/db URL "
             f"(${DB_ENV} when the option is not given).",
    )


def check_db(db_path: str, *, create: bool = False,
             hint: str = " (run `phasewatch serve` or `replay --db` first)") -> None:
    """Exit 2 when ``--db`` names no store: a missing file (unless ``create``), a directory,
    or a URL of an unknown kind."""
    kind = scheme(db_path)
    if kind is not None:
        if kind not in URL_STORES:
            fail(f"--db {kind}://...: unknown kind of store; allowed: {DB_ALLOWED}")
        return
    if db_path == ":memory:":
        return
    if not create:
        existing_file(db_path, "--db", hint)
    if Path(db_path).is_dir():
        fail(f"--db {db_path}: is a directory; allowed: {DB_ALLOWED}")


def open_store(db_path: str, *, create: bool = False, options: StoreConfig | None = None) -> Store:
    """The store ``db_path`` names, or exit 2 when it is missing, not a store or too new."""
    check_db(db_path, create=create)
    try:
        return open_any_store(db_path, options)
    except StoreError as exc:
        fail(store_problem(exc))


def store_problem(exc: StoreError) -> str:
    """A StoreError as one line that also says what ``--db`` takes."""
    text = str(exc)
    if text.startswith("cannot open store") and "postgresql://" not in text:
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
