"""``phasewatch emit``: report one event from a shell job (DESIGN §5).

Exit 0 when phasewatch answered 202 (accepted or duplicate), 1 when it rejected the event or
could not be reached after retries, 2 when the event is invalid (checked locally first).
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, NoReturn, get_args

import click
import httpx

from monitor.client import DeliveryError, PhasewatchClient, build_event, new_event_id
from monitor.clock import Clock, SystemClock
from monitor.config import MODES, resolve_secret
from monitor.errors import EventError, Problem
from monitor.events import Status

DEFAULT_URL = "http://127.0.0.1:8080"
TOKEN_ENV = "PHASEWATCH_TOKEN"
_RFC3339 = "allowed: RFC 3339 with an offset, e.g. 2026-01-18T09:30:00-05:00"
_HINTS = {"timestamp": _RFC3339, "data_as_of": _RFC3339}
_OPTIONS = {"attributes": "--attribute"}


@dataclass(frozen=True)
class EmitDeps:
    """What ``emit`` takes from its surroundings; tests pass one as ``CliRunner.invoke(obj=...)``."""

    clock: Clock = field(default_factory=SystemClock)
    sleep: Callable[[float], None] = time.sleep
    transport: httpx.BaseTransport | None = None


@click.command("emit")
@click.option("--pipeline", required=True, help="A configured pipeline.")
@click.option("--run-date", required=True, metavar="YYYY-MM-DD", help="The date the run works on.")
@click.option("--phase", required=True, help="A configured phase.")
@click.option("--processor", help="A processor of that phase (absent: a phase-level event).")
@click.option("--status", required=True, type=click.Choice(get_args(Status)))
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
@click.option("--url", envvar="PHASEWATCH_URL", default=DEFAULT_URL, show_default=True,
              show_envvar=True, help="phasewatch base URL (token from $PHASEWATCH_TOKEN).")
@click.option("--retries", type=click.IntRange(0, 10), default=3, show_default=True,
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
        event = build_event(_event_fields(fields, deps.clock))
    except EventError as exc:
        _fail(2, "invalid event: " + "; ".join(_render(p) for p in exc.problems))
    try:
        client = PhasewatchClient(
            url, resolve_secret(TOKEN_ENV), pipeline=event.pipeline, clock=deps.clock,
            transport=deps.transport, max_attempts=retries + 1, timeout_s=timeout_s,
            connect_timeout_s=min(timeout_s, 2.0), sleep=deps.sleep,
        )
    except ValueError as exc:
        _fail(2, f"--url: {exc}")
    try:
        ack = client.send([event])
    except DeliveryError as exc:
        _fail(1, _delivery_message(client.where, exc))
    finally:
        client.close()
    outcome = "duplicate" if ack.duplicates and not ack.accepted else "accepted"
    suffix = " (already recorded)" if outcome == "duplicate" else ""
    click.echo(f"{outcome} event_id={event.event_id}{suffix}")


def _event_fields(options: dict[str, Any], clock: Clock) -> dict[str, Any]:
    """Event fields from the command's options: attributes parsed, defaults filled in."""
    fields = dict(options)
    fields["attributes"] = _attributes(fields.pop("attributes")) or None
    fields["timestamp"] = fields["timestamp"] or clock.now()
    fields["event_id"] = fields["event_id"] or new_event_id()
    return fields


def _attributes(pairs: tuple[str, ...]) -> dict[str, str]:
    """``KEY=VALUE`` pairs as a dict (a repeated key: the last one wins)."""
    out: dict[str, str] = {}
    for pair in pairs:
        key, sep, value = pair.partition("=")
        if not sep or not key:
            _fail(2, f"invalid event: attributes (--attribute): expected KEY=VALUE (got {pair!r})")
        out[key] = value
    return out


def _render(problem: Problem) -> str:
    name = problem.field.split(".")[0]
    option = _OPTIONS.get(name, "--" + name.replace("_", "-"))
    text = problem.render().replace(problem.field, f"{problem.field} ({option})", 1)
    hint = _HINTS.get(problem.field)
    return f"{text}; {hint}" if hint else text


def _delivery_message(where: str, exc: DeliveryError) -> str:
    if exc.retryable:
        return f"could not deliver to {where} after {exc.attempts} attempt(s): {exc}"
    return f"rejected by {where}: {exc}"


def _fail(code: int, message: str) -> NoReturn:
    """Print one line to stderr and exit with ``code``."""
    click.echo(f"phasewatch emit: {message}", err=True)
    raise click.exceptions.Exit(code)

