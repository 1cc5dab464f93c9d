"""Report one event from a shell job: the logic behind ``phasewatch emit`` and ``phasewatch-emit``.

Exit 0 when phasewatch answered 202 (accepted or duplicate), 1 when it rejected the event or
could not be reached after retries, 2 when the event is invalid (checked locally first).
Both commands take the same options and print the same lines; ``phasewatch-emit`` comes
with the client alone (argparse), ``phasewatch emit`` with the server's CLI (click).
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

import httpx

from phasewatch_client.client import PhasewatchClient
from phasewatch_client.clock import Clock, SystemClock
from phasewatch_client.errors import DeliveryError, EventError, PhasewatchError, Problem
from phasewatch_client.event import MODES, STATUSES, Event, build_event, new_event_id
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
    outcome: str = "invalid"  # invalid, rejected or unreachable
    event_id: str | None = None

    def __str__(self) -> str:
        return self.message

    def as_dict(self) -> dict[str, Any]:
        """What ``--json`` prints on stdout for a failure."""
        return {"outcome": self.outcome, "event_id": self.event_id, "error": self.message}


@dataclass(frozen=True)
class Emitted:
    """An event phasewatch acknowledged: newly accepted, or a duplicate of one it had."""

    event: Event
    duplicate: bool

    def line(self) -> str:
        """The line both commands print."""
        if self.duplicate:
            return f"duplicate event_id={self.event.event_id} (already recorded)"
        return f"accepted event_id={self.event.event_id}"

    def as_dict(self) -> dict[str, Any]:
        """What ``--json`` prints: the outcome and the event as sent."""
        return {"outcome": "duplicate" if self.duplicate else "accepted",
                "event_id": self.event.event_id, "event": self.event.as_dict()}


@dataclass(frozen=True)
class Flag:
    """One event option; both commands (click and argparse) are built from ``EVENT_FLAGS``."""

    name: str
    help: str | None = None
    kind: type[str] | type[int] | type[float] = str
    required: bool = False
    choices: tuple[str, ...] = ()
    metavar: str | None = None
    repeat: bool = False
    dest: str | None = None

    @property
    def key(self) -> str:
        """The event field (and keyword) this option fills."""
        return self.dest or self.name[2:].replace("-", "_")


EVENT_FLAGS: tuple[Flag, ...] = (
    Flag("--pipeline", "A configured pipeline.", required=True),
    Flag("--run-date", "The date the run works on.", required=True, metavar="YYYY-MM-DD"),
    Flag("--phase", "A configured phase.", required=True),
    Flag("--processor", "A processor of that phase (absent: a phase-level event)."),
    Flag("--status", required=True, choices=STATUSES),
    Flag("--mode", "Default: from the config's mode rules.", choices=MODES),
    Flag("--duration-s", kind=float),
    Flag("--records", kind=int),
    Flag("--expected-records", kind=int),
    Flag("--data-as-of", "Freshness watermark of the data produced.", metavar="RFC3339"),
    Flag("--error", "What went wrong (on failed), at most 2000 characters."),
    Flag("--batch-id"),
    Flag("--done", kind=int),
    Flag("--total", kind=int),
    Flag("--attribute", "Repeatable; at most 32.", metavar="KEY=VALUE", repeat=True,
         dest="attributes"),
    Flag("--event-id", "Idempotency key (default: a new UUID); re-send with the same id."),
    Flag("--timestamp", "When it happened (default: now).", metavar="RFC3339"),
)
JSON_HELP = ("Print one JSON object on stdout: outcome (accepted, duplicate, invalid, rejected, "
             "unreachable), event_id, and the event as sent or the error.")


def emit_one(
    options: dict[str, Any],
    *,
    url: str,
    token: str | None,
    retries: int = 3,
    timeout_s: float = 5.0,
    deps: EmitDeps | None = None,
) -> Emitted:
    """Build the event from command options and send it; what phasewatch said, or EmitFailure."""
    deps = deps or EmitDeps()
    try:
        event = build_event(event_fields(options, deps.clock))
    except EventError as exc:
        raise EmitFailure(2, "invalid event: " + "; ".join(render_problem(p) for p in exc.problems),
                          event_id=options.get("event_id")) from None
    try:
        client = PhasewatchClient(
            url, token, pipeline=event.pipeline, clock=deps.clock, transport=deps.transport,
            max_attempts=retries + 1, timeout_s=timeout_s, connect_timeout_s=min(timeout_s, 2.0),
            sleep=deps.sleep,
        )
    except ValueError as exc:
        raise EmitFailure(2, f"--url: {exc}", event_id=event.event_id) from None
    try:
        ack = client.send([event])
    except DeliveryError as exc:
        outcome = "unreachable" if exc.retryable else "rejected"
        raise EmitFailure(1, delivery_message(client.where, exc), outcome, event.event_id) from None
    finally:
        client.close()
    return Emitted(event, duplicate=bool(ack.duplicates and not ack.accepted))


def report(result: Emitted | EmitFailure, as_json: bool, echo: Callable[[str, bool], None]) -> int:
    """Print what happened as both commands do (``echo(text, to_stderr)``); the exit code."""
    if as_json:
        echo(json.dumps(result.as_dict()), False)
    if isinstance(result, EmitFailure):
        echo(f"error: {result}", True)
        return result.exit_code
    if not as_json:
        echo(result.line(), False)
    return 0


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
    for flag in EVENT_FLAGS:
        if flag.repeat:
            parser.add_argument(flag.name, dest=flag.key, action="append", default=[],
                                help=flag.help, metavar=flag.metavar)
        else:
            parser.add_argument(flag.name, dest=flag.key, type=flag.kind, required=flag.required,
                                help=flag.help, choices=flag.choices or None, metavar=flag.metavar)
    add = parser.add_argument
    add("--url", help=f"phasewatch base URL (default: ${URL_ENV} or {DEFAULT_URL}; token from ${TOKEN_ENV}).")
    add("--retries", type=_retries, default=3,
        help="Retries on 5xx, 408, 429 or network errors, with capped jittered backoff (0-10, default 3).")
    add("--timeout-s", type=_positive, default=5.0, help="Per-request timeout (default 5).")
    add("--json", dest="as_json", action="store_true", help=JSON_HELP)
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
    retries, timeout_s, as_json = options.pop("retries"), options.pop("timeout_s"), options.pop("as_json")
    result: Emitted | EmitFailure
    try:
        result = emit_one(options, url=url, token=os.environ.get(TOKEN_ENV) or None,
                          retries=retries, timeout_s=timeout_s, deps=deps)
    except EmitFailure as failure:
        result = failure
    return report(result, as_json, _print)


def _print(text: str, to_stderr: bool) -> None:
    print(text, file=sys.stderr if to_stderr else sys.stdout)


def console_main() -> None:
    """The ``phasewatch-emit`` console script."""
    sys.exit(main())
