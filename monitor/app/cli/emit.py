"""``phasewatch emit``: report one event from a shell job (DESIGN §5).

Exit 0 when phasewatch answered 202 (accepted or duplicate), 1 when it rejected the event or
could not be reached after retries, 2 when the event is invalid (checked locally first).
The work is ``phasewatch_client.emit``'s (the client's ``phasewatch-emit`` runs the same);
this module is its click face.
"""

from __future__ import annotations

from typing import Any

import click
from phasewatch_client.emit import (
    DEFAULT_URL,
    MAX_RETRIES,
    TOKEN_ENV,
    URL_ENV,
    EmitDeps,
    EmitFailure,
    emit_one,
)
from phasewatch_client.event import MODES, STATUSES

from monitor.config import resolve_secret

__all__ = ["EmitDeps", "emit_command"]


@click.command("emit")
@click.option("--pipeline", required=True, help="A configured pipeline.")
@click.option("--run-date", required=True, metavar="YYYY-MM-DD", help="The date the run works on.")
@click.option("--phase", required=True, help="A configured phase.")
@click.option("--processor", help="A processor of that phase (absent: a phase-level event).")
@click.option("--status", required=True, type=click.Choice(STATUSES))
@click.option("--mode", type=click.Choice(MODES), help="Default: from the config's mode rules.")
@click.option("--duration-s", type=float)
@click.option("--records", type=int)
@click.option("--expected-records", type=int)
@click.option("--data-as-of", metavar="RFC3339", help="Freshness watermark of the data produced.")
@click.option("--error", help="What went wrong (on failed), at most 2000 characters.")
@click.option("--batch-id")
@click.option("--done", type=int)
@click.option("--total", type=int)
@click.option("--attribute", "attributes", multiple=True, metavar="KEY=VALUE",
              help="Repeatable; at most 32.")
@click.option("--event-id", help="Idempotency key (default: a new UUID); re-send with the same id.")
@click.option("--timestamp", metavar="RFC3339", help="When it happened (default: now).")
@click.option("--url", envvar=URL_ENV, default=DEFAULT_URL, show_default=True,
              show_envvar=True, help="phasewatch base URL (token from $PHASEWATCH_TOKEN).")
@click.option("--retries", type=click.IntRange(0, MAX_RETRIES), default=3, show_default=True,
              help="Retries on 5xx, 408, 429 or network errors, with capped jittered backoff.")
@click.option("--timeout-s", type=click.FloatRange(0, min_open=True), default=5.0,
              show_default=True, help="Per-request timeout.")
@click.pass_context
def emit_command(
    ctx: click.Context, /, url: str, retries: int, timeout_s: float, **fields: Any
) -> None:
    """Report one pipeline event to phasewatch (exit 0 sent, 1 rejected/unreachable, 2 invalid)."""
    deps = ctx.find_object(EmitDeps) or EmitDeps()
    try:
        line = emit_one(fields, url=url, token=resolve_secret(TOKEN_ENV), retries=retries,
                        timeout_s=timeout_s, deps=deps)
    except EmitFailure as failure:
        click.echo(f"phasewatch emit: {failure}", err=True)
        raise click.exceptions.Exit(failure.exit_code) from None
    click.echo(line)
