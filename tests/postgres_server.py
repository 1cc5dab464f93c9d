"""A throwaway PostgreSQL server (Debian's ``postgresql`` package) for tests and benchmarks.

``initdb`` refuses to run as root, so as root the data directory belongs to ``postgres``
and the server tools run through ``runuser``. The server listens on 127.0.0.1 on a free
port, trusts local connections, and is stopped and deleted on exit (../shared/TESTING.md).
"""

from __future__ import annotations

import contextlib
import glob
import os
import shutil
import socket
import subprocess
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path


def postgres_bin() -> Path | None:
    """The directory with ``initdb`` and ``pg_ctl`` (the newest installed major), or None."""
    found = sorted(glob.glob("/usr/lib/postgresql/*/bin/initdb"),
                   key=lambda p: int(Path(p).parts[-3]) if Path(p).parts[-3].isdigit() else 0)
    if found:
        return Path(found[-1]).parent
    initdb = shutil.which("initdb")
    return Path(initdb).parent if initdb else None


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@contextlib.contextmanager
def temporary_postgres(*, max_connections: int = 100, durable: bool = False) -> Iterator[str]:
    """Start a server in a temporary directory; yields its URL (database ``postgres``).

    Tests run with ``fsync`` off; ``durable`` keeps the server's default (benchmarks).
    """
    bindir = postgres_bin()
    if bindir is None:
        raise FileNotFoundError("PostgreSQL is not installed (apt-get install postgresql)")
    root = Path(tempfile.mkdtemp(prefix="phasewatch-pg-"))
    run_as: list[str] = []
    if os.geteuid() == 0:
        shutil.chown(root, "postgres", "postgres")
        run_as = ["runuser", "-u", "postgres", "--"]
    data, port = root / "data", _free_port()
    ctl = [*run_as, str(bindir / "pg_ctl"), "-D", str(data)]
    try:
        subprocess.run([*run_as, str(bindir / "initdb"), "-D", str(data), "-A", "trust",
                        "-U", "phasewatch", "--no-sync", "-E", "UTF8", "--locale", "C.UTF-8"],
                       check=True, capture_output=True)
        options = (f"-p {port} -k {root} -c listen_addresses=127.0.0.1"
                   f" -c max_connections={max_connections}")
        if not durable:
            options += " -c fsync=off -c synchronous_commit=off"
        subprocess.run([*ctl, "-o", options, "-l", str(root / "log"), "-w", "-t", "30", "start"],
                       check=True, capture_output=True)
        url = f"postgresql://phasewatch@127.0.0.1:{port}/postgres"
        _wait_ready(url)
        yield url
    finally:
        subprocess.run([*ctl, "-m", "immediate", "stop"], capture_output=True)
        shutil.rmtree(root, ignore_errors=True)


def _wait_ready(url: str, timeout_s: float = 15.0) -> None:
    import psycopg

    deadline = time.monotonic() + timeout_s
    while True:
        try:
            psycopg.connect(url, connect_timeout=2).close()
            return
        except psycopg.OperationalError:
            if time.monotonic() > deadline:
                raise
            time.sleep(0.1)


def fresh_database(url: str, name: str) -> str:
    """Create database ``name`` on the server at ``url`` (dropping one of that name); its URL."""
    import psycopg

    with psycopg.connect(url, autocommit=True) as conn:
        conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        conn.execute(f'CREATE DATABASE "{name}"')
    return url.rsplit("/", 1)[0] + f"/{name}"
