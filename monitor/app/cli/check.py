"""``phasewatch check``: record a data check's result, or run a configured check once.

``check record`` sends one result to a running phasewatch (``--url``, token from
``$PHASEWATCH_TOKEN``, as ``POST /v1/checks``) or writes it into a store (``--db``), where
the service handling that store takes it within a tick. Exit 0 recorded (or a duplicate),
1 refused or unreachable, 2 invalid (checked locally first).

``check run`` runs a configured ``kind: sql`` check's query now and prints what it
measured and the level its thresholds give, recording nothing: for trying a query out.
"""

from __future__ import annotations

import json
from datetime import date, datetime, time, timedelta
from typing import Any

import click
from phasewatch_client.emit import DEFAULT_URL, MAX_RETRIES, URL_ENV
from pydantic import ValidationError

from monitor.app.cli.service import env_url, post
from monitor.app.cli.support import config_or_exit, fail, open_store, parse_time_option
from monitor.checks.api import resolve
from monitor.checks.config import SqlCheckConfig
from monitor.checks.engine import execute, level_of
from monitor.checks.errors import CheckRunError
from monitor.checks.result import CheckInput, CheckResult
from monitor.checks.runners import RUNNERS
from monitor.checks.store import CheckStore
from monitor.clock import SystemClock
from monitor.errors import EventError
from monitor.validation import problems_from_validation_error

CHECKS_PATH = "/v1/checks"
_OPTION = {"at": "--at", "run_date": "--run-date", "entities": "--entity"}


@click.group("check")
def check_group() -> None:
    """Data checks: record a result, or try a configured check's query."""


@check_group.command("record")
@click.option("--name", required=True, help="The check's name (a configured one gets its thresholds).")
@click.option("--value", required=True, type=float, help="The number it measured.")
@click.option("--at", "at_text", help="When it was measured, RFC 3339 with offset (default: now).")
@click.option("--entity", "entities", multiple=True,
              help="An id of a missing entity (game, player, team); repeat for each.")
@click.option("--run-date", help="The run date the value is about (YYYY-MM-DD).")
@click.option("--pipeline", help="Its pipeline (default: the configured check's).")
@click.option("--url", help=f"phasewatch base URL [env var: {URL_ENV}; default: {DEFAULT_URL}].")
@click.option("--db", "db_path", help="Write into this store instead of sending (no server needed).")
@click.option("--config", "config_path", type=click.Path(dir_okay=False),
              help="Config file, for --db (default: the bundled example).")
@click.option("--retries", type=click.IntRange(0, MAX_RETRIES), default=3, show_default=True,
              help="Retries on 5xx, 408, 429 or network errors (--url).")
@click.option("--timeout-s", type=click.FloatRange(0, min_open=True), default=5.0,
              show_default=True, help="Per-request timeout (--url).")
def record_command(
    name: str, value: float, at_text: str | None, entities: tuple[str, ...],
    run_date: str | None, pipeline: str | None, url: str | None, db_path: str | None,
    config_path: str | None, retries: int, timeout_s: float,
) -> None:
    """Record one check result (as POST /v1/checks): exit 0 recorded, 1 refused, 2 invalid."""
    if url is not None and db_path is not None:
        fail("--url and --db: give one; allowed: --url to send, --db to write into a store")
    at = parse_time_option(at_text, "--at") if at_text else SystemClock().now()
    body: dict[str, Any] = {"name": name, "value": value, "at": at.isoformat()}
    if entities:
        body["entities"] = list(entities)
    if run_date is not None:
        body["run_date"] = run_date
    if pipeline is not None:
        body["pipeline"] = pipeline
    item = _validated(body)
    if db_path is not None:
        _record_in_store(item, db_path, config_path)
        return
    _send(body, url or env_url(), retries, timeout_s)


def _validated(body: dict[str, Any]) -> CheckInput:
    try:
        return CheckInput.model_validate_json(json.dumps(body))
    except ValidationError as exc:
        problems = problems_from_validation_error(exc, root=CheckInput)
        fail("; ".join(f"{_option(p.field)}{' ' + p.value if p.value else ''}: {p.message}"
                       for p in problems))


def _option(field: str) -> str:
    """The option that gave a field (``entities[1]`` came from the second ``--entity``)."""
    name = field.split("[")[0]
    return _OPTION.get(name, "--" + name.replace("_", "-"))


def _record_in_store(item: CheckInput, db_path: str, config_path: str | None) -> None:
    cfg = config_or_exit(config_path)
    try:
        (result,) = resolve(cfg, [item], "cli", SystemClock().now())
    except EventError as exc:
        fail("; ".join(f"--{p.field}: {p.message}" for p in exc.problems))
    store = open_store(db_path)
    try:
        accepted, _ = CheckStore(store).record([result], SystemClock().now())
    finally:
        store.close()
    click.echo(_line(result, "recorded" if accepted else "duplicate"))


def _send(body: dict[str, Any], url: str, retries: int, timeout_s: float) -> None:
    ack = post(url, CHECKS_PATH, body, 202, retries=retries, timeout_s=timeout_s)
    outcome = "recorded" if ack.get("accepted") else "duplicate"
    click.echo(f"{outcome}: check {body['name']} = {body['value']:g} at {body['at']}")


def _line(result: CheckResult, outcome: str) -> str:
    return f"{outcome}: check {result.name} = {result.value:g} at {result.at.isoformat()}"


@check_group.command("run")
@click.argument("name")
@click.option("--config", "config_path", type=click.Path(dir_okay=False), help="Config file.")
@click.option("--run-date", help="The run date to check (default: as its schedule would now).")
@click.option("--json", "as_json", is_flag=True, help="Print the result as one JSON object.")
def run_command(name: str, config_path: str | None, run_date: str | None, as_json: bool) -> None:
    """Run a configured check's query now and print the result (exit 1 if it could not run)."""
    cfg = config_or_exit(config_path)
    check = next((c for c in cfg.checks if c.name == name), None)
    runnable = sorted(c.name for c in cfg.checks if isinstance(c, SqlCheckConfig))
    if not isinstance(check, SqlCheckConfig):
        fail(f"check {name!r}: not a configured sql check; allowed: {', '.join(runnable) or 'none'}")
    tz = cfg.pipeline_map[check.pipeline].tz
    now = SystemClock().now()
    scheduled = now
    if run_date is not None:  # the day whose schedule checks that run date (noon: no DST edge)
        day = _date(run_date) + timedelta(days=check.run_date_days_ago)
        scheduled = datetime.combine(day, time(12), tz)
    runner = RUNNERS[check.runner.kind](check.runner)
    try:
        result = execute(check, runner, tz, scheduled, now)
    except CheckRunError as exc:
        click.echo(f"error: check {name} could not run ({exc.reason}): {exc.detail}", err=True)
        raise click.exceptions.Exit(1) from None
    finally:
        runner.close()
    level = level_of(check, result.value)
    if as_json:
        click.echo(json.dumps({**result.as_dict(), "level": level}))
        return
    click.echo(f"{_line(result, level)} (run date {result.run_date})")
    if result.entities:
        click.echo("missing: " + ", ".join(result.entities))


def _date(text: str) -> date:
    try:
        return date.fromisoformat(text.strip())
    except ValueError:
        fail(f"--run-date {text!r}: not a date; allowed: YYYY-MM-DD, e.g. 2026-01-17")
