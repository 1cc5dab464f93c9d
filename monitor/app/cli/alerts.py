"""``phasewatch silence``, ``phasewatch health-check`` and ``phasewatch report --weekly``.

Each command opens the store (``--db``) the service writes, so silences made here are the
ones the running service honours, and the summaries judge what the service recorded.
Exit status: 0 ok, 1 not healthy (health-check), 2 usage, config or store error.
"""

from __future__ import annotations

import json
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import datetime
from typing import Any

import click
from rich.table import Table

from alerts.api import daily_health_check, silencing
from alerts.daily_render import render_text, title
from alerts.errors import InvalidSilence, UnknownSilence
from alerts.kpis import render_weekly
from alerts.silences import Silence
from monitor.app.cli.console import fit_lines, print_out, table
from monitor.app.cli.support import (
    check_db,
    config_or_exit,
    db_option,
    fail,
    parse_time_option,
    store_problem,
)
from monitor.app.phasewatch import Phasewatch, cold_window_days
from monitor.clock import Clock, FakeClock, SystemClock
from monitor.config import HISTORY_DAYS
from monitor.errors import StoreError
from monitor.store.base import ProgressRead

_config_option = click.option("--config", "config_path", type=click.Path(dir_okay=False),
                              help="Config file (default: the bundled example).")
_db_option = db_option(help="The store the service uses")
_at_option = click.option("--at", "at", help="Evaluate at this RFC 3339 time (default: now).")
WEEK_DAYS = 7  # the daily summary's window at its longest: the weekly KPIs it carries on weekly_on
_json_option = click.option("--json", "as_json", is_flag=True, help="Print JSON.")


def _clock(at: str | None) -> Clock:
    return SystemClock() if at is None else FakeClock(parse_time_option(at, "--at"))


@contextmanager
def _phasewatch(config_path: str | None, db_path: str, at: str | None,
                live_channels: bool = False, create: bool = False,
                window_days: int | None = None, slos: bool = True,
                progress: ProgressRead = "all") -> Iterator[Phasewatch]:
    """A Phasewatch on the service's store; channels are in-memory unless ``live_channels``.

    ``window_days``: replay only the run dates this command's window needs
    (``cold_window_days``, with the SLO windows unless not ``slos``); default: the service's
    start-up window. The service's state snapshot, when the store has a valid one, stands for
    the events it summarises (not with ``--at``: it is of the present). ``progress="first"``:
    for a command that reads no heartbeat (``Phasewatch.rebuild``).
    """
    clock = _clock(at)
    config = config_or_exit(config_path)
    check_db(db_path, create=create, hint=" (run `phasewatch serve` or pass --db)")
    try:
        pw = Phasewatch.build(
            config, db_path=db_path, clock=clock, dry_run_alerts=not live_channels,
            history_days=(HISTORY_DAYS if window_days is None
                          else cold_window_days(config, window_days, slos=slos)),
            snapshots=at is None, snapshot_saves=False, progress=progress, judge=False,
        )
    except StoreError as exc:
        fail(store_problem(exc))
    try:
        yield pw
    finally:
        pw.close()


# --- silences --------------------------------------------------------------------------------

@click.group("silence")
def silence_group() -> None:
    """Silence alerts by label matchers for a while (author and comment required)."""


def _silence_table(silences: list[Silence], now: datetime) -> Table:
    """Silences as a table that fits the terminal (matchers and comments wrap)."""
    t = table("ID", "STATE", "UNTIL", "MATCHERS", "BY", "COMMENT",
              wrap=("MATCHERS", "BY", "COMMENT"))
    for s in silences:
        t.add_row(s.id, s.state(now), s.ends_at.isoformat(), " ".join(str(m) for m in s.matchers),
                  s.author, s.comment)
    return t


@silence_group.command("add")
@click.option("-m", "--matcher", "matchers", multiple=True, required=True,
              help="NAME=VALUE, NAME!=VALUE, NAME=~REGEX or NAME!~REGEX (repeatable; all must match).")
@click.option("--author", required=True, help="Who is silencing.")
@click.option("--comment", required=True, help="Why (a ticket, the incident).")
@click.option("--duration", help="How long, e.g. 2h, 90m, 1d.")
@click.option("--until", "until", help="Until this RFC 3339 time (instead of --duration).")
@click.option("--starts", help="From this RFC 3339 time (default: now).")
@_config_option
@_db_option
@_at_option
@_json_option
def silence_add(matchers: tuple[str, ...], author: str, comment: str, duration: str | None,
                until: str | None, starts: str | None, config_path: str | None, db_path: str,
                at: str | None, as_json: bool) -> None:
    """Create a silence; prints its id."""
    body: dict[str, Any] = {"matchers": list(matchers), "author": author, "comment": comment}
    if duration is not None:
        body["duration"] = duration
    if until is not None:
        body["ends_at"] = until
    if starts is not None:
        body["starts_at"] = starts
    with _phasewatch(config_path, db_path, at, create=True) as pw:
        now = pw.clock.now()
        try:
            silence = pw.alerting.silences.create(body, now)
        except InvalidSilence as exc:
            fail("\n".join(f"silence: {p.render()}" for p in exc.problems))
        held = silencing(pw.alerting, silence.id, now)
        if as_json:
            click.echo(json.dumps({**silence.as_dict(now), "silencing": held}, indent=2))
            return
        print_out(_silence_table([silence], now))
        if held:
            click.echo(fit_lines(f"silences {len(held)} firing alert(s) now: {', '.join(held)}"))
        else:
            click.echo(fit_lines("it silences no firing alert now: check its matchers (a typo "
                                 "matches nothing); it holds back alerts that fire later"))


@silence_group.command("list")
@click.option("--all", "include_expired", is_flag=True, help="Include expired silences.")
@_config_option
@_db_option
@_at_option
@_json_option
def silence_list(include_expired: bool, config_path: str | None, db_path: str, at: str | None,
                 as_json: bool) -> None:
    """List pending and active silences."""
    with _phasewatch(config_path, db_path, at) as pw:
        now = pw.clock.now()
        items = pw.alerting.silences.silences(now, include_expired=include_expired)
        if as_json:
            click.echo(json.dumps([s.as_dict(now) for s in items], indent=2))
            return
        if items:
            print_out(_silence_table(items, now))
        else:
            click.echo("no silences")


@silence_group.command("expire")
@click.argument("silence_id")
@_config_option
@_db_option
@_at_option
def silence_expire(silence_id: str, config_path: str | None, db_path: str, at: str | None) -> None:
    """End a silence now."""
    with _phasewatch(config_path, db_path, at) as pw:
        now = pw.clock.now()
        try:
            silence = pw.alerting.silences.expire(silence_id, now)
        except UnknownSilence as exc:
            fail(str(exc))
        print_out(_silence_table([silence], now))


# --- health check and weekly report ---------------------------------------------------------

@click.command("health-check")
@click.option("--daily", is_flag=True, help="The full daily summary (runs, checks, SLOs, actions).")
@click.option("--send", is_flag=True,
              help="Also send it to the summary channels (once per day, like the job).")
@_config_option
@_db_option
@_at_option
@_json_option
def health_check_command(daily: bool, send: bool, config_path: str | None, db_path: str,
                         at: str | None, as_json: bool) -> None:
    """Judge phasewatch's view of the pipelines now; exit 1 when not healthy."""
    # Its runs' phases, SLOs and alerts read no heartbeat nor batch progress, and the
    # actuator's stall watches are not evaluated here: no repeated progress event (issue 18).
    with _phasewatch(config_path, db_path, at, live_channels=send, window_days=WEEK_DAYS,
                     progress="first") as pw:
        now = pw.clock.now()
        if send:
            result = daily_health_check(pw.alerting, now, send=True)
            healthy = bool(result["healthy"])
            if as_json:
                click.echo(json.dumps(result["summary"], indent=2))
            else:
                click.echo(fit_lines(result["text"]))
        else:
            summary = pw.alerting.daily_summary(now)
            healthy = summary.healthy
            if as_json:
                click.echo(json.dumps(summary.as_dict(), indent=2))
            elif daily:
                click.echo(fit_lines(render_text(summary)))
            else:
                lines = [title(summary), *(f"  [{f.level}] {f.text}" for f in summary.findings)]
                click.echo(fit_lines("\n".join(lines)))
    sys.exit(0 if healthy else 1)


@click.command("report")
@click.option("--weekly", is_flag=True, required=True, help="The weekly KPI table.")
@click.option("--days", default=7, show_default=True, type=click.IntRange(1, 31),
              help="Length of the window ending now (or --at).")
@_config_option
@_db_option
@_at_option
@_json_option
def report_command(weekly: bool, days: int, config_path: str | None, db_path: str,
                   at: str | None, as_json: bool) -> None:
    """Reliability, MTTR, manual interventions, automated recoveries and the health score."""
    with _phasewatch(config_path, db_path, at, window_days=days, slos=False,
                     progress="first") as pw:  # the SLO verdicts read no heartbeat
        kpis = pw.alerting.weekly(pw.clock.now(), days=days)
    if as_json:
        click.echo(json.dumps(kpis.as_dict(), indent=2))
    else:
        click.echo(fit_lines(render_weekly(kpis)))


COMMANDS = (silence_group, health_check_command, report_command)
