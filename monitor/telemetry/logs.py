"""Log records as text for a person at a terminal, or as Cloud Logging's structured JSON.

phasewatch logs ``key=value`` lines (``"event=job.failed job=%s"``). In JSON each line is
one object: ``severity`` (Cloud Logging's names), ``message`` (the text line, with the
traceback when there is one: one entry, never one per traceback line), ``time``, the
``key=value`` fields as JSON values (taken from the format string and its arguments, so a
string argument is the string, not its Python repr), ``extra=`` fields, the source
location, and ``logging.googleapis.com/trace`` / ``spanId`` / ``trace_sampled`` when a
span is active. See https://cloud.google.com/logging/docs/structured-logging.
"""

from __future__ import annotations

import json
import logging
import re
import sys
from datetime import UTC, datetime
from typing import IO, Any, Literal

from opentelemetry import trace

LogFormat = Literal["json", "text"]
LOG_FORMATS: tuple[LogFormat, ...] = ("json", "text")
TEXT_FORMAT = "%(asctime)s level=%(levelname)s logger=%(name)s %(message)s"
TRACE = "logging.googleapis.com/trace"
SPAN_ID = "logging.googleapis.com/spanId"
SAMPLED = "logging.googleapis.com/trace_sampled"
SOURCE = "logging.googleapis.com/sourceLocation"

# "key=%s" (a field from an argument), "key=value" (a literal field), or a lone "%s".
_TOKEN = re.compile(
    r"(?:(?<![\w.])(?P<key>[A-Za-z_][\w.]*)=)?"
    r"(?:(?P<spec>%(?:\(\w+\))?[#0 +-]*(?:\*|\d+)?(?:\.(?:\*|\d+))?[diouxXeEfFgGcrsa%])"
    r"|(?<==)(?P<literal>[^\s%]+))"
)
_RECORD_ATTRS = frozenset(vars(logging.LogRecord("", 0, "", 0, "", (), None))) | {
    "message", "asctime", "taskName"}


def severity(levelno: int) -> str:
    """Cloud Logging's severity for a Python level (custom levels round down)."""
    for floor, name in ((50, "CRITICAL"), (40, "ERROR"), (30, "WARNING"), (20, "INFO"), (10, "DEBUG")):
        if levelno >= floor:
            return name
    return "DEFAULT"


def fields_of(record: logging.LogRecord) -> dict[str, Any]:
    """The ``key=value`` fields of a record's format string, valued from its arguments."""
    if not isinstance(record.msg, str):
        return {}
    args = record.args if isinstance(record.args, tuple) else ()
    fields: dict[str, Any] = {}
    position = 0
    for match in _TOKEN.finditer(record.msg):
        key, spec, literal = match.group("key", "spec", "literal")
        if spec == "%%":
            continue
        if spec is not None:
            if spec.startswith("%(") or "*" in spec or position >= len(args):
                return fields  # a mapping or a star width: positions unknown from here on
            value, position = args[position], position + 1
            if key:
                fields[key] = _json_value(value)
        elif key and literal is not None:
            fields[key] = literal
    return fields


def _json_value(value: Any) -> Any:
    if value is None or isinstance(value, bool | int | float | str):
        return value
    if isinstance(value, BaseException):
        return f"{type(value).__name__}: {value}"
    return str(value)


class CloudLoggingFormatter(logging.Formatter):
    """One JSON object per record, in Cloud Logging's structured logging format.

    ``project``: the Google Cloud project, for the full trace name
    (``projects/P/traces/T``) that correlates the entry with Cloud Trace; without it the
    bare trace id is written.
    """

    def __init__(self, project: str | None = None) -> None:
        super().__init__()
        self.project = project

    def format(self, record: logging.LogRecord) -> str:
        try:
            entry = self._entry(record)
        except Exception as exc:  # a log line must never break the code that logs
            entry = {"severity": severity(record.levelno), "message": str(record.msg),
                     "logging_error": repr(exc)}
        return json.dumps(entry, ensure_ascii=False, default=str)

    def _entry(self, record: logging.LogRecord) -> dict[str, Any]:
        message = record.getMessage()
        if record.exc_info and not record.exc_text:
            record.exc_text = self.formatException(record.exc_info)
        if record.exc_text:
            message = f"{message}\n{record.exc_text}"
        if record.stack_info:
            message = f"{message}\n{self.formatStack(record.stack_info)}"
        entry: dict[str, Any] = {**fields_of(record), **{
            k: _json_value(v) for k, v in vars(record).items() if k not in _RECORD_ATTRS}}
        entry.update({
            "severity": severity(record.levelno),
            "message": message,
            "time": datetime.fromtimestamp(record.created, UTC).isoformat(timespec="microseconds"),
            "logger": record.name,
            SOURCE: {"file": record.pathname, "line": str(record.lineno), "function": record.funcName},
        })
        context = trace.get_current_span().get_span_context()
        if context.is_valid:
            trace_id = format(context.trace_id, "032x")
            entry[TRACE] = f"projects/{self.project}/traces/{trace_id}" if self.project else trace_id
            entry[SPAN_ID] = format(context.span_id, "016x")
            entry[SAMPLED] = context.trace_flags.sampled
        return entry


def formatter(log_format: LogFormat, project: str | None = None) -> logging.Formatter:
    """The formatter of one log format."""
    if log_format == "json":
        return CloudLoggingFormatter(project)
    return logging.Formatter(TEXT_FORMAT)


def configure_logging(log_format: LogFormat, stream: IO[str] | None = None) -> logging.Handler:
    """Log INFO and above to ``stream`` (stderr) in ``log_format``; returns the handler.

    Like ``logging.basicConfig``, it does nothing to a root logger that has handlers already
    (then the returned handler is not attached).
    """
    handler = logging.StreamHandler(stream or sys.stderr)
    handler.setFormatter(formatter(log_format))
    logging.basicConfig(level=logging.INFO, handlers=[handler])
    return handler
