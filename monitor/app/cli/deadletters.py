"""``phasewatch dead-letters replay``: redrive dead letters in a running phasewatch.

A client of the service (``--url``, token from ``$PHASEWATCH_TOKEN``), as ``POST
/v1/dead-letters/replay``: the events are stored and judged by the process that acts on
them (a command writing into the store itself would go unjudged until a restart). Exit 0
when every letter looked at was replayed (or a duplicate), 1 when some are still invalid,
or phasewatch refused or could not be reached; 2 for a usage error.
"""

from __future__ import annotations

import json
from typing import Any

import click

from monitor.app.cli.service import MAX_RETRIES, URL_ENV, env_url, post

REPLAY_PATH = "/v1/dead-letters/replay"
MAX_PAGES = 1000  # --all: at most this many pages of --limit letters


@click.group("dead-letters")
def dead_letters_group() -> None:
    """Pub/Sub messages phasewatch refused (dead letters): redrive them."""


@dead_letters_group.command("replay")
@click.option("--id", "ids", type=click.IntRange(1), multiple=True,
              help="A dead letter's id (GET /v1/dead-letters); repeat for several.")
@click.option("--reason", help="Only letters refused for this reason (e.g. unknown_name).")
@click.option("--limit", type=click.IntRange(1, 1000), help="Letters per request (default 100).")
@click.option("--after", type=click.IntRange(0), default=0, show_default=True,
              help="Only letters with an id above this.")
@click.option("--all", "every", is_flag=True,
              help="Go on, page after page, past letters still invalid, until none is left.")
@click.option("--url", help=f"phasewatch base URL [env var: {URL_ENV}].")
@click.option("--retries", type=click.IntRange(0, MAX_RETRIES), default=3, show_default=True,
              help="Retries on 5xx, 408, 429 or network errors.")
@click.option("--timeout-s", type=click.FloatRange(0, min_open=True), default=30.0,
              show_default=True, help="Per-request timeout.")
@click.option("--json", "as_json", is_flag=True, help="Print the answers' totals as JSON.")
def replay_command(ids: tuple[int, ...], reason: str | None, limit: int | None, after: int,
                   every: bool, url: str | None, retries: int, timeout_s: float,
                   as_json: bool) -> None:
    """Put dead letters through the push path again under the running config (exit 0 all
    replayed, 1 some still invalid or refused, 2 usage)."""
    if ids and (reason or every):
        raise click.UsageError("--id with --reason or --all: give ids, or a selection")
    body: dict[str, Any] = {"ids": list(ids)} if ids else {
        k: v for k, v in (("reason", reason), ("limit", limit)) if v is not None}
    total: dict[str, Any] = {"replayed": 0, "duplicates": 0, "still_invalid": [],
                             "remaining": 0}
    for _ in range(MAX_PAGES if every else 1):
        if not ids:
            body["after"] = after
        answer = post(url or env_url(), REPLAY_PATH, body, 200, retries=retries,
                      timeout_s=timeout_s)
        for key in ("replayed", "duplicates"):
            total[key] += answer[key]
        total["still_invalid"] += answer["still_invalid"]
        total["remaining"] = answer["remaining"]
        if answer["next_after"] == after or not answer["remaining"]:
            break
        after = answer["next_after"]
    _report(total, as_json)
    if total["still_invalid"]:
        raise click.exceptions.Exit(1)


def _report(total: dict[str, Any], as_json: bool) -> None:
    if as_json:
        click.echo(json.dumps(total, indent=2))
        return
    invalid = total["still_invalid"]
    click.echo(f"replayed {total['replayed']}, duplicates {total['duplicates']}, still invalid "
               f"{len(invalid)}, remaining {total['remaining']}")
    for letter in invalid:
        click.echo(f"  #{letter['id']} {letter['reason']}: {letter['detail']}"[:300])
