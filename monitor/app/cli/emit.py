"""``phasewatch emit``: report one event from a shell job (DESIGN §5).

Exit 0 when phasewatch answered 202 (accepted or duplicate), 1 when it rejected the event or
could not be reached after retries, 2 when the event is invalid (checked locally first).
The work is ``phasewatch_client.emit``'s (the client's ``phasewatch-emit`` runs the same);
this module is its click face.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import click
from phasewatch_client.emit import (
    DEFAULT_URL,
    EVENT_FLAGS,
    JSON_HELP,
    MAX_RETRIES,
    TOKEN_ENV,
    URL_ENV,
    EmitDeps,
    EmitFailure,
    Emitted,
    emit_one,
    report,
)

from monitor.config import resolve_secret

__all__ = ["EmitDeps", "emit_command"]


def event_options(command: Callable[..., None]) -> Callable[..., None]:
    """The event options of ``phasewatch emit``, from the client's ``EVENT_FLAGS``."""
    for flag in reversed(EVENT_FLAGS):
        command = click.option(
            flag.name, flag.key, required=flag.required, help=flag.help, metavar=flag.metavar,
            type=click.Choice(flag.choices) if flag.choices else flag.kind, multiple=flag.repeat,
        )(command)
    return command


@click.command("emit")
@event_options
@click.option("--url", envvar=URL_ENV, default=DEFAULT_URL, show_default=True,
              show_envvar=True, help="phasewatch base URL (token from $PHASEWATCH_TOKEN).")
@click.option("--retries", type=click.IntRange(0, MAX_RETRIES), default=3, show_default=True,
              help="Retries on 5xx, 408, 429 or network errors, with capped jittered backoff.")
@click.option("--timeout-s", type=click.FloatRange(0, min_open=True), default=5.0,
              show_default=True, help="Per-request timeout.")
@click.option("--json", "as_json", is_flag=True, help=JSON_HELP)
@click.pass_context
def emit_command(
    ctx: click.Context, /, url: str, retries: int, timeout_s: float, as_json: bool,
    **fields: Any,
) -> None:
    """Report one pipeline event to phasewatch (exit 0 sent, 1 rejected/unreachable, 2 invalid)."""
    deps = ctx.find_object(EmitDeps) or EmitDeps()
    result: Emitted | EmitFailure
    try:
        result = emit_one(fields, url=url, token=resolve_secret(TOKEN_ENV), retries=retries,
                          timeout_s=timeout_s, deps=deps)
    except EmitFailure as failure:
        result = failure
    code = report(result, as_json, lambda text, to_stderr: click.echo(text, err=to_stderr))
    if code:
        raise click.exceptions.Exit(code)
