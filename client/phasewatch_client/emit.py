"""Report one event from a shell job: the logic behind ``phasewatch emit`` and ``phasewatch-emit``.

Exit 0 when phasewatch answered 202 (accepted or duplicate), 1 when it rejected the event or
could not be reached after retries, 2 when the event is invalid (checked locally first).
Both commands take the same options and print the same lines; ``phasewatch-emit`` comes
with the client alone (argparse), ``phasewatch emit`` with the server's CLI (click).
"""

from __future__ import annotations

import argparse
import os
import sys
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import httpx

from phasewatch_client.client import PhasewatchClient
from phasewatch_client.clock import Clock, SystemClock
from phasewatch_client.errors import DeliveryError, EventError, PhasewatchError, Problem
from phasewatch_client.event import MODES, STATUSES, build_event, new_event_id
from phasewatch_client.retry import Sleep

DEFAULT_URL = "http://127.0.0.1:8080"
URL_ENV = "PHASEWATCH_URL"
TOKEN_ENV = "PHASEWATCH_TOKEN"
MAX_RETRIES = 10
_RFC3339 = "allowed: RFC 3339 with an offset, e.g. 2026-01-18T09:30:00-05:00"
_HINTS = {"timestamp": _RFC3339, "data_as_of": _RFC3339}
_OPTIONS = {"attributes": "--attribute"}


@dataclass(frozen=True)
class EmitDeps:
    """What emitting takes from its surroundings; tests pass a fake clock, a recording sleep."""

    clock: Clock = field(default_factory=SystemClock)
    sleep: Sleep | None = None  # None: the clock's own
    transport: httpx.BaseTransport | None = None


@dataclass
class EmitFailure(PhasewatchError):
    """Emitting failed: ``exit_code`` 1 (rejected or unreachable) or 2 (invalid), and why."""

    exit_code: int
    message: str

    def __str__(self) -> str:
        return self.message


def emit_one(
    options: dict[str, Any],
    *,
    url: str,
    token: str | None,
    retries: int = 3,
    timeout_s: float = 5.0,
    deps: EmitDeps | None = None,
) -> str:
    """Build the event from command options, send it; the line to print, or EmitFailure."""
    deps = deps or EmitDeps()
    try:
        event = build_event(event_fields(options, deps.clock))
    except EventError as exc:
        raise EmitFailure(2, "invalid event: " + "; ".join(render_problem(p) for p in exc.problems)) from None
    try:
        client = PhasewatchClient(
            url, token, pipeline=event.pipeline, clock=deps.clock, transport=deps.transport,
            max_attempts=retries + 1, timeout_s=timeout_s, connect_timeout_s=min(timeout_s, 2.0),
            sleep=deps.sleep,
        )
    except ValueError as exc:
        raise EmitFailure(2, f"--url: {exc}") from None
    try:
        ack = client.send([event])
    except DeliveryError as exc:
        raise EmitFailure(1, delivery_message(client.where, exc)) from None
    finally:
        client.close()
    if ack.duplicates and not ack.accepted:
        return f"duplicate event_id={event.event_id} (already recorded)"
    return f"accepted event_id={event.event_id}"


def event_fields(options: dict[str, Any], clock: Clock) -> dict[str, Any]:
    """Event fields from the command's options: attributes parsed, defaults filled in."""
    fields = dict(options)
    fields["attributes"] = parse_attributes(fields.pop("attributes", ()) or ()) or None
    fields["timestamp"] = fields.get("timestamp") or clock.now()
    fields["event_id"] = fields.get("event_id") or new_event_id()
    return fields


def parse_attributes(pairs: Sequence[str]) -> dict[str, str]:
    """``KEY=VALUE`` pairs as a dict (a repeated key: the last one wins)."""
    out: dict[str, str] = {}
    for pair in pairs:
        key, sep, value = pair.partition("=")
        if not sep or not key:
            message = f"attributes (--attribute): expected KEY=VALUE (got {pair!r})"
            raise EmitFailure(2, f"invalid event: {message}")
        out[key] = value
    return out


def render_problem(problem: Problem) -> str:
    """A problem naming the command option beside the field, with a hint for timestamps."""
    name = problem.field.split(".")[0]
    option = _OPTIONS.get(name, "--" + name.replace("_", "-"))
    text = problem.render().replace(problem.field, f"{problem.field} ({option})", 1)
    hint = _HINTS.get(problem.field)
    return f"{text}; {hint}" if hint else text


def delivery_message(where: str, exc: DeliveryError) -> str:
    """Why the event was not delivered, naming the server (never the token)."""
    if exc.retryable:
        return f"could not deliver to {where} after {exc.attempts} attempt(s): {exc}"
    return f"rejected by {where}: {exc}"


# --- phasewatch-emit: the same command without the server -------------------------------------

def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="phasewatch-emit",
        description="Report one pipeline event to phasewatch "
                    "(exit 0 sent, 1 rejected/unreachable, 2 invalid).",
    )
    add = parser.add_argument
    add("--pipeline", required=True, help="A configured pipeline.")
    add("--run-date", required=True, metavar="YYYY-MM-DD", help="The date the run works on.")
    add("--phase", required=True, help="A configured phase.")
    add("--processor", help="A processor of that phase (absent: a phase-level event).")
    add("--status", required=True, choices=STATUSES)
    add("--mode", choices=MODES, help="Default: from the config's mode rules.")
    add("--duration-s", type=float)
    add("--records", type=int)
    add("--expected-records", type=int)
    add("--data-as-of", metavar="RFC3339", help="Freshness watermark of the data produced.")
    add("--error", help="What went wrong (on failed), at most 2000 characters.")
    add("--batch-id")
    add("--done", type=int)
    add("--total", type=int)
    add("--attribute", dest="attributes", action="append", default=[], metavar="KEY=VALUE",
        help="Repeatable; at most 32.")
    add("--event-id", help="Idempotency key (default: a new UUID); re-send with the same id.")
    add("--timestamp", metavar="RFC3339", help="When it happened (default: now).")
    add("--url", help=f"phasewatch base URL (default: ${URL_ENV} or {DEFAULT_URL}; token from ${TOKEN_ENV}).")
    add("--retries", type=_retries, default=3,
        help="Retries on 5xx, 408, 429 or network errors, with capped jittered backoff (0-10, default 3).")
    add("--timeout-s", type=_positive, default=5.0, help="Per-request timeout (default 5).")
    return parser


def _retries(text: str) -> int:
    value = int(text)
    if not 0 <= value <= MAX_RETRIES:
        raise argparse.ArgumentTypeError(f"must be between 0 and {MAX_RETRIES}")
    return value


def _positive(text: str) -> float:
    value = float(text)
    if not value > 0:
        raise argparse.ArgumentTypeError("must be > 0")
    return value


def main(argv: Sequence[str] | None = None, deps: EmitDeps | None = None) -> int:
    """``phasewatch-emit``: the exit code (0 sent, 1 rejected or unreachable, 2 invalid)."""
    options = vars(_parser().parse_args(argv))
    url = options.pop("url") or os.environ.get(URL_ENV) or DEFAULT_URL
    retries, timeout_s = options.pop("retries"), options.pop("timeout_s")
    try:
        line = emit_one(options, url=url, token=os.environ.get(TOKEN_ENV) or None,
                        retries=retries, timeout_s=timeout_s, deps=deps)
    except EmitFailure as failure:
        print(f"phasewatch emit: {failure}", file=sys.stderr)
        return failure.exit_code
    print(line)
    return 0


def console_main() -> None:
    """The ``phasewatch-emit`` console script."""
    sys.exit(main())
