"""The functions behind ``POST /v1/checks`` and ``GET /v1/checks`` (the service wires them).

A body is one result, a JSON array of results, or NDJSON (one per line); all are
validated before any is stored, and one bad result rejects the batch (``EventError``,
answered 4xx with ``details`` naming the field: ``checks[2].value``).
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime
from typing import Any, TypeVar

from pydantic import TypeAdapter, ValidationError

from monitor.checks.engine import Checks
from monitor.checks.result import CheckInput, CheckResult
from monitor.config import Config
from monitor.errors import EventError, Problem
from monitor.validation import body_rejection, render_value

MAX_RESULTS = 1000
NDJSON_TYPES = frozenset({"application/x-ndjson", "application/ndjson", "application/jsonl"})
_ONE = TypeAdapter(CheckInput)
_MANY = TypeAdapter(list[CheckInput])
T = TypeVar("T")


def parse_checks(body: bytes, content_type: str | None = None) -> list[CheckInput]:
    """One result, an array or NDJSON; EventError (400 / 422) naming the field otherwise."""
    stripped = body.strip()
    if not stripped:
        raise EventError("empty", [Problem("body", "empty; expected a check result, an array "
                                           "or NDJSON")], status_code=400)
    ctype = (content_type or "").split(";")[0].strip().lower()
    if stripped[:1] == b"[":
        items = _validate(_MANY, stripped, "checks")
    elif ctype in NDJSON_TYPES:
        items = _ndjson(stripped)
    else:
        try:
            items = [_ONE.validate_json(stripped)]
        except ValidationError as exc:
            trailing = any(e["type"] == "json_invalid" and "trailing characters" in e["msg"]
                           for e in exc.errors(include_url=False))
            if not (trailing and b"\n" in stripped):
                raise body_rejection(exc, CheckInput) from None
            items = _ndjson(stripped)
    if not items:
        raise EventError("empty", [Problem("body", "no check results")], status_code=400)
    if len(items) > MAX_RESULTS:
        raise EventError("too_many", [Problem(
            "body", f"{len(items)} results; allowed: at most {MAX_RESULTS} per request")])
    return items


def _ndjson(body: bytes) -> list[CheckInput]:
    items = []
    for number, line in enumerate(body.splitlines(), start=1):
        if line.strip():
            items.append(_validate(_ONE, line, f"line {number}: "))
    return items


def _validate(adapter: TypeAdapter[T], raw: bytes, prefix: str) -> T:
    try:
        return adapter.validate_json(raw)
    except ValidationError as exc:
        raise body_rejection(exc, CheckInput, prefix) from None


def resolve(config: Config, items: Sequence[CheckInput], source: str,
            now: datetime | None = None) -> list[CheckResult]:
    """Results with their pipeline named or filled in from config; EventError (422) if wrong.

    With ``now``, a run date must lie in the window events are accepted in
    (``runs.accept_past_days`` / ``accept_future_days``, today in the pipeline's timezone):
    a result about 2026-12-19 pushed on 2026-02-20 (a typo for 02-19) would otherwise stand
    as the check's newest run date, and end last night's alert."""
    pipelines = config.pipeline_map
    configured_checks = {c.name: c for c in config.checks}
    problems: list[Problem] = []
    reasons: set[str] = set()
    out: list[CheckResult] = []
    for i, item in enumerate(items):
        where = f"checks[{i}]." if len(items) > 1 else ""
        configured = configured_checks.get(item.name)
        pipeline = item.pipeline
        if pipeline is not None and pipeline not in pipelines:
            reasons.add("unknown_name")
            problems.append(Problem(f"{where}pipeline", "unknown pipeline; allowed: "
                                    + ", ".join(sorted(pipelines)), render_value(pipeline)))
        elif configured is not None and pipeline not in (None, configured.pipeline):
            problems.append(Problem(f"{where}pipeline", f"check {item.name} is configured for "
                                    f"pipeline {configured.pipeline}; allowed: that, or leave it "
                                    "out", render_value(pipeline)))
            reasons.add("unknown_name")
        if configured is not None:
            pipeline = configured.pipeline
        outside = _outside_window(config, pipeline, item, now)
        if outside is not None:
            reasons.add("run_date_window")
            problems.append(Problem(f"{where}run_date", outside,
                                    render_value(str(item.run_date))))
        out.append(item.model_copy(update={"pipeline": pipeline}).result(source))
    if problems:
        raise EventError("unknown_name" if "unknown_name" in reasons else "run_date_window",
                         problems)
    return out


def _outside_window(config: Config, pipeline: str | None, item: CheckInput,
                    now: datetime | None) -> str | None:
    """Why ``item``'s run date is outside the accepted window, or None (as events')."""
    if now is None or item.run_date is None:
        return None
    known = config.pipeline_map.get(pipeline) if pipeline is not None else None
    today = now.astimezone(known.tz).date() if known is not None else now.date()
    first, last = config.runs.window(today)
    if first <= item.run_date <= last:
        return None
    return config.runs.outside(today, known.timezone if known is not None else None)


def post_checks(checks: Checks, body: bytes, content_type: str | None,
                now: datetime) -> dict[str, Any]:
    """``POST /v1/checks``: validate every result, then store them; ``{"accepted", "duplicates"}``."""
    results = resolve(checks.config, parse_checks(body, content_type), "api", now)
    accepted, duplicates = checks.record(results, now)
    return {"accepted": accepted, "duplicates": duplicates}


def list_checks(checks: Checks) -> dict[str, Any]:
    """``GET /v1/checks``: the latest result of every check, and each configured one's level."""
    levels = checks.levels()
    latest = {r.name: r for r in checks.store.latest_all()}
    items = []
    for name in sorted(set(latest) | set(checks.configured)):
        result = latest.get(name)
        item: dict[str, Any] = result.as_dict() if result else {"name": name}
        item["configured"] = name in checks.configured
        item["level"] = levels.get(name)
        items.append(item)
    return {"checks": items}
