"""Logs: Cloud Logging's structured JSON on Cloud Run, key=value text at a terminal."""

from __future__ import annotations

import io
import json
import logging
import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from opentelemetry.sdk.trace import TracerProvider
from phasewatch_client.kit.testing import LocalServer, StubReply

from monitor.config import default_config_text, default_log_format
from monitor.telemetry.logs import CloudLoggingFormatter, configure_logging, fields_of, formatter

ROOT = Path(__file__).resolve().parent.parent


@pytest.fixture
def logged() -> Iterator[tuple[logging.Logger, io.StringIO, CloudLoggingFormatter]]:
    """A logger of its own writing JSON to a string."""
    stream = io.StringIO()
    handler = logging.StreamHandler(stream)
    json_formatter = CloudLoggingFormatter(project="nba-props-prod")
    handler.setFormatter(json_formatter)
    logger = logging.getLogger("phasewatch.test.logs")
    logger.addHandler(handler)
    logger.setLevel(logging.DEBUG)
    logger.propagate = False
    yield logger, stream, json_formatter
    logger.removeHandler(handler)


def _entries(stream: io.StringIO) -> list[dict[str, Any]]:
    return [json.loads(line) for line in stream.getvalue().splitlines()]


def test_one_json_object_per_line_with_severity_and_typed_fields(logged: Any) -> None:
    logger, stream, _ = logged
    logger.info("event=serve.started host=%s port=%d auth=%s", "0.0.0.0", 8080, "on")
    logger.warning("event=tracing.failed error=%r (further failures only counted)",
                   RuntimeError("exporter down"))
    logger.debug("event=x detail=%r", "it's 'quoted'")
    logger.critical("event=store.gone")
    started, failed, debug, critical = _entries(stream)
    assert started["severity"] == "INFO"
    assert started["message"] == "event=serve.started host=0.0.0.0 port=8080 auth=on"
    assert (started["event"], started["host"], started["port"], started["auth"]) == (
        "serve.started", "0.0.0.0", 8080, "on")
    assert started["logger"] == "phasewatch.test.logs"
    assert started["time"].endswith("+00:00")
    assert started["logging.googleapis.com/sourceLocation"]["function"] == (
        "test_one_json_object_per_line_with_severity_and_typed_fields")
    assert (failed["severity"], failed["error"]) == ("WARNING", "RuntimeError: exporter down")
    assert debug["detail"] == "it's 'quoted'"  # the value, not its Python repr
    assert critical["severity"] == "CRITICAL"
    assert "logging.googleapis.com/trace" not in started  # no span is active


def test_an_exception_is_one_entry_with_its_traceback(logged: Any) -> None:
    logger, stream, _ = logged
    try:
        {}["missing"]
    except KeyError:
        logger.exception("event=job.failed job=%s", "slo")
    assert len(stream.getvalue().splitlines()) == 1
    (entry,) = _entries(stream)
    assert entry["severity"] == "ERROR"
    assert entry["job"] == "slo"
    first, *rest = entry["message"].splitlines()
    assert first == "event=job.failed job=slo"
    assert rest[0] == "Traceback (most recent call last):"
    assert rest[-1] == "KeyError: 'missing'"


def test_an_active_span_correlates_the_entry(logged: Any) -> None:
    logger, stream, json_formatter = logged
    tracer = TracerProvider().get_tracer("test")
    with tracer.start_as_current_span("request") as span:
        logger.info("event=in.span")
        json_formatter.project = None
        logger.info("event=no.project")
    context = span.get_span_context()
    with_project, without = _entries(stream)
    trace_id = format(context.trace_id, "032x")
    assert with_project["logging.googleapis.com/trace"] == f"projects/nba-props-prod/traces/{trace_id}"
    assert with_project["logging.googleapis.com/spanId"] == format(context.span_id, "016x")
    assert with_project["logging.googleapis.com/trace_sampled"] is True
    assert without["logging.googleapis.com/trace"] == trace_id


def test_extra_fields_and_odd_format_strings(logged: Any) -> None:
    logger, stream, _ = logged
    logger.info("event=deploy service=%s", "analytics", extra={"version": "v42", "attempt": 2})
    logger.info("50%% done of %s runs=%d", "x", 3)
    logger.info("%(who)s said", {"who": "me"})
    logger.info("no fields at all")
    deploy, percent, mapping, plain = _entries(stream)
    assert (deploy["service"], deploy["version"], deploy["attempt"]) == ("analytics", "v42", 2)
    assert (percent["message"], percent["runs"]) == ("50% done of x runs=3", 3)
    assert mapping["message"] == "me said"
    assert plain["message"] == "no fields at all"


def test_reserved_keys_are_not_overwritten_by_fields() -> None:
    record = logging.LogRecord("x", logging.INFO, __file__, 1, "severity=%s message=%s", ("low", "m"), None)
    entry = json.loads(CloudLoggingFormatter().format(record))
    assert (entry["severity"], entry["message"]) == ("INFO", "severity=low message=m")
    assert fields_of(record) == {"severity": "low", "message": "m"}


def test_text_stays_key_value_for_a_terminal() -> None:
    record = logging.LogRecord("monitor.x", logging.WARNING, __file__, 1, "event=a b=%s", ("c",), None)
    assert formatter("text").format(record).endswith(" level=WARNING logger=monitor.x event=a b=c")


def test_json_is_the_default_on_cloud_run_only() -> None:
    assert default_log_format({"K_SERVICE": "phasewatch"}) == "json"
    assert default_log_format({}) == "text"


def test_configure_logging_leaves_a_configured_root_alone() -> None:
    root = logging.getLogger()
    before = list(root.handlers)
    handler = configure_logging("json", io.StringIO())
    if before:  # under pytest the root logger has its capture handlers
        assert root.handlers == before and handler not in root.handlers


def test_serve_on_cloud_run_logs_json_correlated_with_the_callers_trace(tmp_path: Path) -> None:
    """The real ``phasewatch serve`` with Cloud Run's environment: every stderr line is one JSON
    object; a request that carries ``traceparent`` (as Cloud Run's front end sends) logs under
    that trace, named with the project."""
    config = tmp_path / "pw.yaml"
    config.write_text(default_config_text() + "server:\n  pubsub_push:\n    audience: https://pw.example\n"
                      "    service_accounts: [push@nba-props-prod.iam.gserviceaccount.com]\n")
    caller_trace = "4bf92f3577b34da6a3ce929d0e0e4736"
    log = tmp_path / "serve.log"
    with LocalServer(lambda request: StubReply(200)) as collector:
        env = {**os.environ, "K_SERVICE": "phasewatch", "GOOGLE_CLOUD_PROJECT": "nba-props-prod",
               "OTEL_TRACES_EXPORTER": "otlp", "OTEL_EXPORTER_OTLP_ENDPOINT": collector.url,
               "PHASEWATCH_TOKEN": "t0ken", "OTEL_BSP_SCHEDULE_DELAY": "100"}
        env.pop("PHASEWATCH_LOG_FORMAT", None)
        with log.open("wb") as stderr:
            proc = subprocess.Popen(
                [sys.executable, "-c", "from monitor.app.cli.main import main; main()", "serve",
                 "--config", str(config), "--db", str(tmp_path / "pw.db"), "--port", "0"],
                cwd=ROOT, env=env, stdout=subprocess.DEVNULL, stderr=stderr)
        try:
            url = _started_url(proc, log)
            response = httpx.post(f"{url}/v1/pubsub/push", json={}, headers={
                "traceparent": f"00-{caller_trace}-00f067aa0ba902b7-01"})
            assert response.status_code == 401
        finally:
            proc.send_signal(signal.SIGTERM)
            proc.wait(30)
        exported = [r.path for r in collector.requests]
    entries = [json.loads(line) for line in log.read_text().splitlines()]  # every line is JSON
    by_event = {e.get("event"): e for e in entries}
    assert by_event["telemetry.traces"]["exporter"] == "otlp"
    assert by_event["serve.started"]["severity"] == "INFO"
    denied = by_event["pubsub_push.denied"]
    assert denied["logging.googleapis.com/trace"] == f"projects/nba-props-prod/traces/{caller_trace}"
    assert len(denied["logging.googleapis.com/spanId"]) == 16
    assert "/v1/traces" in exported  # the request's span went to the collector


def _started_url(proc: subprocess.Popen[bytes], log: Path) -> str:
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:  # polling a real external process
        for line in log.read_text().splitlines():
            if '"event": "serve.started"' in line:
                return f"http://127.0.0.1:{json.loads(line)['port']}"
        if proc.poll() is not None:
            break
        time.sleep(0.05)
    proc.kill()
    raise AssertionError(f"serve did not start:\n{log.read_text()}")
