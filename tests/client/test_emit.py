"""``phasewatch emit`` (click) and ``phasewatch-emit`` (the client's argparse) against a local server."""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime

import pytest
from click.testing import CliRunner
from phasewatch_client import FakeClock
from phasewatch_client.emit import EmitDeps
from phasewatch_client.emit import main as client_main

from monitor.app.cli.main import main
from tests.client.local_phasewatch import LocalPhasewatch

RUN_DATE = "2026-01-17"


@dataclass(frozen=True)
class Ran:
    exit_code: int
    stdout: str
    stderr: str


@pytest.fixture(params=["phasewatch emit", "phasewatch-emit"])
def emit(
    request: pytest.FixtureRequest, clock: FakeClock, sleeps: list[float],
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str],
) -> Callable[..., Ran]:
    """Runs the server's click command or the client's argparse one: same flags, same output."""
    deps = EmitDeps(clock=clock, sleep=sleeps.append)

    def run(*args: str, env: dict[str, str | None] | None = None) -> Ran:
        environment: dict[str, str | None] = {"PHASEWATCH_URL": None, "PHASEWATCH_TOKEN": None}
        environment |= env or {}
        if request.param == "phasewatch emit":
            result = CliRunner().invoke(main, ["emit", *args], obj=deps, env=environment)
            return Ran(result.exit_code, result.stdout, result.stderr)
        for name, value in environment.items():
            if value is None:
                monkeypatch.delenv(name, raising=False)
            else:
                monkeypatch.setenv(name, value)
        code = client_main(list(args), deps)
        out, err = capsys.readouterr()
        return Ran(code, out, err)

    return run


BASE_ARGS = ("--pipeline", "nba", "--run-date", RUN_DATE, "--phase", "phase2")


def test_emit_command_sends_the_event(
    server: LocalPhasewatch, emit: Callable[..., Ran], clock: FakeClock
) -> None:
    result = emit(
        *BASE_ARGS, "--processor", "P", "--status", "succeeded", "--records", "240",
        "--duration-s", "12.5", "--attribute", "region=us", "--attribute", "query=a=b",
        "--url", server.url,
    )
    assert result.exit_code == 0, result.stderr
    (event,) = server.events
    assert result.stdout == f"accepted event_id={event['event_id']}\n"
    assert (event["records"], event["duration_s"], event["processor"]) == (240, 12.5, "P")
    assert event["attributes"] == {"region": "us", "query": "a=b"}
    assert datetime.fromisoformat(event["timestamp"]) == clock.now()


def test_emit_command_reads_url_and_token_from_the_environment(
    server: LocalPhasewatch, emit: Callable[..., Ran]
) -> None:
    env: dict[str, str | None] = {"PHASEWATCH_URL": server.url, "PHASEWATCH_TOKEN": "tok-1"}
    args = (*BASE_ARGS, "--status", "started", "--event-id", "fixed-1")
    assert emit(*args, env=env).exit_code == 0
    second = emit(*args, env=env)
    assert second.exit_code == 0
    assert second.stdout == "duplicate event_id=fixed-1 (already recorded)\n"
    assert server.requests[0].headers["Authorization"] == "Bearer tok-1"


def test_emit_command_bad_run_date_exits_2_naming_the_field(
    server: LocalPhasewatch, emit: Callable[..., Ran]
) -> None:
    result = emit("--pipeline", "nba", "--run-date", "2026-13-01", "--phase", "phase2",
                  "--status", "started", "--url", server.url)
    assert result.exit_code == 2
    assert "run_date (--run-date)" in result.stderr and "YYYY-MM-DD" in result.stderr
    assert server.requests == []


@pytest.mark.parametrize(
    ("args", "expected"),
    [
        (("--timestamp", "2026-01-18T09:30:00"), "timestamp (--timestamp): Input should have"),
        (("--attribute", "novalue"), "attributes (--attribute): expected KEY=VALUE"),
        (("--records", "-1"), "records (--records): Input should be greater than or equal to 0"),
        (("--url", "ftp://x"), "--url: url must be http(s)"),
    ],
)
def test_emit_command_invalid_input_exits_2(
    emit: Callable[..., Ran], args: tuple[str, ...], expected: str
) -> None:
    result = emit(*BASE_ARGS, "--status", "started", *args)
    assert result.exit_code == 2
    assert expected in result.stderr


def test_emit_command_server_down_exits_1_after_retries(
    down: LocalPhasewatch, emit: Callable[..., Ran], sleeps: list[float]
) -> None:
    result = emit(*BASE_ARGS, "--status", "started", "--url", down.url)
    assert result.exit_code == 1
    assert f"could not deliver to {down.url} after 4 attempt(s): ConnectError" in result.stderr
    assert len(sleeps) == 3


def test_emit_command_rejected_exits_1(
    server: LocalPhasewatch, emit: Callable[..., Ran], sleeps: list[float]
) -> None:
    server.behaviour.reject_status = 422
    result = emit(*BASE_ARGS, "--status", "started", "--url", server.url)
    assert result.exit_code == 1
    assert f"rejected by {server.url}: HTTP 422: phase: unknown phase; allowed: phase2" in result.stderr
    assert sleeps == []


def test_phasewatch_emit_usage_errors_exit_2(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as exited:
        client_main([*BASE_ARGS, "--status", "started", "--retries", "11"])
    assert exited.value.code == 2
    assert "--retries: must be between 0 and 10" in capsys.readouterr().err


def test_emit_json_prints_the_outcome_and_the_event_as_sent(
    server: LocalPhasewatch, emit: Callable[..., Ran]
) -> None:
    args = (*BASE_ARGS, "--status", "succeeded", "--records", "7", "--event-id", "j-1", "--json",
            "--url", server.url)
    first = emit(*args)
    assert first.exit_code == 0, first.stderr
    body = json.loads(first.stdout)
    assert (body["outcome"], body["event_id"]) == ("accepted", "j-1")
    assert body["event"] == server.events[0]
    again = json.loads(emit(*args).stdout)
    assert again["outcome"] == "duplicate"


@pytest.mark.parametrize(
    ("extra", "outcome", "code"),
    [(("--records", "-1"), "invalid", 2), ((), "rejected", 1)],
)
def test_emit_json_failures_print_json_on_stdout_and_one_error_line(
    server: LocalPhasewatch, emit: Callable[..., Ran], extra: tuple[str, ...], outcome: str,
    code: int,
) -> None:
    server.behaviour.reject_status = 422
    result = emit(*BASE_ARGS, "--status", "started", "--json", "--url", server.url, *extra)
    assert result.exit_code == code
    body = json.loads(result.stdout)
    assert body["outcome"] == outcome and body["error"]
    assert result.stderr.startswith("error: ") and result.stderr.count("\n") == 1


def test_emit_json_unreachable(down: LocalPhasewatch, emit: Callable[..., Ran]) -> None:
    result = emit(*BASE_ARGS, "--status", "started", "--json", "--retries", "0", "--url", down.url)
    assert result.exit_code == 1
    assert json.loads(result.stdout)["outcome"] == "unreachable"
