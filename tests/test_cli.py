"""The command line as a person meets it: widths, --json, progress, one error style, config checks."""

from __future__ import annotations

import io
import json
import sqlite3
from pathlib import Path
from typing import Any

import jsonschema
import pytest
import yaml
from click.testing import CliRunner, Result
from rich.console import Console

from monitor.app.cli.console import progress
from monitor.app.cli.main import main
from monitor.config import default_config_text
from tests.factories import event_dict

LONG_ERROR = ("Traceback (most recent call last):\n  File \"processor.py\", line 7, in run\n"
              "BadRequest: 400 No such field: vegas_line_source " + "x" * 1000)


def cli(*args: str, columns: int = 80, **env: str) -> Result:
    return CliRunner(env={"COLUMNS": str(columns), **env}).invoke(main, list(args))


def _write(path: Path, lines: list[dict[str, Any]]) -> Path:
    path.write_text("".join(json.dumps(line) + "\n" for line in lines))
    return path


def _widest(text: str) -> int:
    return max((len(line) for line in text.splitlines()), default=0)


@pytest.fixture
def store(tmp_path: Path) -> Path:
    """A store holding a failing overnight run whose error is long, and a same-day run."""
    db = tmp_path / "pw.db"
    events = _write(tmp_path / "e.jsonl", [
        event_dict("phase2", "succeeded", "2026-01-18T05:10:00Z", "p2_odds_game_lines"),
        event_dict("phase3", "started", "2026-01-18T06:00:00Z", "player_game_summary"),
        event_dict("phase3", "failed", "2026-01-18T06:20:00Z", "player_game_summary",
                   error=LONG_ERROR),
        event_dict("phase3", "started", "2026-01-18T06:30:00Z", "team_offense_game_summary"),
        event_dict("phase3", "succeeded", "2026-01-18T06:40:00Z", "team_offense_game_summary"),
    ])
    assert cli("replay", str(events), "--db", str(db)).exit_code == 0
    return db


# --- tables fit the terminal ------------------------------------------------------------------

def test_status_fits_80_columns_even_with_a_long_error(store: Path) -> None:
    table = cli("status", "--db", str(store))
    detail = cli("status", "--db", str(store), "--run-date", "2026-01-17")
    assert table.exit_code == 0 and detail.exit_code == 0, table.output + detail.output
    assert _widest(table.stdout) <= 80 and _widest(detail.stdout) <= 80
    assert "FAIL 1/5" in table.stdout and "player_game_summary failed x1" in " ".join(
        table.stdout.split())
    assert "\x1b[" not in table.stdout + detail.stdout  # plain text when not a terminal
    assert "BadRequest: 400" in detail.stdout  # the error, cut short, is in the detail


def test_status_splits_runs_into_blocks_that_fit_a_narrow_terminal(tmp_path: Path) -> None:
    db = tmp_path / "pw.db"
    events = _write(tmp_path / "e.jsonl", [
        event_dict("phase3", "succeeded", f"2026-01-{day + 1}T06:00:00Z", "player_game_summary",
                   run_date=f"2026-01-{day}", mode=mode)
        for day in (16, 17) for mode in ("overnight", "same_day", "tomorrow")
    ])
    assert cli("replay", str(events), "--db", str(db)).exit_code == 0
    narrow = cli("status", "--db", str(db), columns=50)
    assert narrow.exit_code == 0, narrow.output
    assert _widest(narrow.stdout) <= 50
    blocks = narrow.stdout.count("first event")
    assert blocks >= 2  # one block cannot hold every run at 50 columns
    for mode in ("overnight", "same_day", "tomorrow"):  # every run is shown in some block
        assert mode in narrow.stdout


def test_status_keeps_the_wide_layout_on_a_wide_terminal(store: Path) -> None:
    wide = cli("status", "--db", str(store), columns=200)
    assert "2026-01-17  overnight" in wide.stdout and _widest(wide.stdout) <= 200


def test_slo_report_fits_80_columns(store: Path, tmp_path: Path) -> None:
    config = tmp_path / "long.yaml"
    data = yaml.safe_load(default_config_text())
    data["slos"][0]["name"] = "a-very-long-service-level-objective-name-" * 3 + "x"
    config.write_text(yaml.safe_dump(data))
    result = cli("slo", "report", "--db", str(store), "--config", str(config))
    assert result.exit_code in (0, 1), result.output
    assert "SLO status at" in result.stdout and _widest(result.stdout) <= 80


def test_anomaly_scan_table_fits_80_columns(tmp_path: Path) -> None:
    rows = ["timestamp,value"] + [f"2026-01-{1 + i // 24:02d}T{i % 24:02d}:00:00Z,{100 + i % 3}"
                                  for i in range(60)]
    rows.append("2026-01-03T18:00:00.123456+05:30,123456789012.5")
    path = tmp_path / "a.csv"
    path.write_text("\n".join(rows) + "\n")
    result = cli("anomaly", "scan", str(path))
    assert result.exit_code == 1, result.output  # a flagged row
    assert "123457e+06" in result.stdout or "1.23457e+11" in result.stdout
    assert _widest(result.stdout) <= 80


# --- --json on every read command -------------------------------------------------------------

def test_status_json_is_the_replay_run_shape_plus_notes(store: Path) -> None:
    result = cli("status", "--db", str(store), "--json")
    assert result.exit_code == 0, result.output
    runs = json.loads(result.stdout)["runs"]
    assert [(r["run_date"], r["mode"]) for r in runs] == [("2026-01-17", "overnight")]
    phase3 = next(p for p in runs[0]["phases"] if p["phase"] == "phase3")
    failed = next(p for p in phase3["processors"] if p["name"] == "player_game_summary")
    assert failed["error"] == LONG_ERROR  # whole in JSON, cut short in the table
    assert "phase3/player_game_summary failed x1" in runs[0]["notes"]
    assert "--json" in cli("status", "--help").stdout and '"runs"' in cli("status", "--help").stdout


def test_weekly_report_json(store: Path) -> None:
    result = cli("report", "--weekly", "--json", "--db", str(store), "--at", "2026-01-19T00:00:00Z")
    assert result.exit_code == 0, result.output
    assert {"reliability", "mttr_s", "health_score"} <= set(json.loads(result.stdout))


# --- progress on a terminal only --------------------------------------------------------------

def test_progress_draws_on_a_terminal() -> None:
    screen = io.StringIO()
    with progress("replaying e.jsonl", lambda: 3, Console(file=screen, force_terminal=True, width=60)) as step:
        for _ in range(3):
            step(1)
    assert "replaying e.jsonl" in screen.getvalue() and "3/3" in screen.getvalue()


def test_progress_is_silent_off_a_terminal() -> None:
    def total() -> int:
        raise AssertionError("the total is counted only for a bar that is drawn")

    screen = io.StringIO()
    with progress("replaying", total, Console(file=screen, force_terminal=False)) as step:
        step(1)
    assert screen.getvalue() == ""


def test_replay_output_is_unchanged_off_a_terminal(tmp_path: Path) -> None:
    events = _write(tmp_path / "e.jsonl", [
        event_dict("phase3", "started", "2026-01-18T06:00:00Z", "player_game_summary")])
    plain = cli("replay", str(events))
    assert plain.stderr == "" and json.loads(plain.stdout)["events_stored"] == 1
    forced = cli("replay", str(events), FORCE_COLOR="1", TTY_COMPATIBLE="1")
    assert json.loads(forced.stdout) == json.loads(plain.stdout)
    assert "replaying e.jsonl" in forced.stderr


# --- one error style, no tracebacks -----------------------------------------------------------

def _one_error_line(result: Result, *needles: str) -> None:
    assert result.exit_code == 2, result.output
    assert result.exception is None or isinstance(result.exception, SystemExit)
    lines = result.stderr.splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: "), result.stderr
    for needle in needles:
        assert needle in lines[0], lines[0]


@pytest.fixture
def not_a_db(tmp_path: Path) -> Path:
    path = tmp_path / "notadb.db"
    path.write_text("this is not a database\n" * 10)
    return path


@pytest.fixture
def newer_store(store: Path) -> Path:
    with sqlite3.connect(store) as db:
        db.execute("PRAGMA user_version = 99")
    return store


@pytest.mark.parametrize("command", [
    ["status"], ["slo", "report"], ["health-check"], ["report", "--weekly"], ["silence", "list"],
])
def test_a_file_that_is_not_a_store_is_one_line(command: list[str], not_a_db: Path) -> None:
    _one_error_line(cli(*command, "--db", str(not_a_db)), "notadb.db", "not a database")


@pytest.mark.parametrize("command", [["status"], ["slo", "report"], ["health-check"]])
def test_a_store_newer_than_the_code_is_one_line(command: list[str], newer_store: Path) -> None:
    _one_error_line(cli(*command, "--db", str(newer_store)), "schema version 99", "upgrade")


def test_replay_into_a_newer_store_is_one_line(newer_store: Path, tmp_path: Path) -> None:
    events = _write(tmp_path / "x.jsonl", [
        event_dict("phase3", "started", "2026-01-18T06:00:00Z", "player_game_summary")])
    _one_error_line(cli("replay", str(events), "--db", str(newer_store)), "schema version 99")


def test_bad_input_everywhere_is_one_error_line(tmp_path: Path, store: Path) -> None:
    binary = tmp_path / "binary.yaml"
    binary.write_bytes(b"\xff\xfe\x00pipelines")
    nul = tmp_path / "nul.csv"
    nul.write_bytes(b"timestamp,value\n2026-01-01T00:00:00Z,1\x00\n")
    events = _write(tmp_path / "e.jsonl", [
        event_dict("phase3", "started", "2026-01-18T06:00:00Z", "player_game_summary")])
    _one_error_line(cli("config", "validate", str(binary)), "binary.yaml", "UTF-8")
    _one_error_line(cli("config", "validate", str(tmp_path / "nope.yaml")), "nope.yaml")
    _one_error_line(cli("config", "validate", str(tmp_path)), "directory")
    _one_error_line(cli("status", "--db", str(tmp_path)), "directory")
    _one_error_line(cli("status", "--db", str(tmp_path / "none.db")), "none.db")
    _one_error_line(cli("status", "--db", str(store), "--run-date", "2026-13-01"), "YYYY-MM-DD")
    _one_error_line(cli("status", "--db", str(store), "--pipeline", "nhl"), "allowed: nba")
    _one_error_line(cli("slo", "report", "--db", str(store), "--at", "noon"), "RFC 3339")
    _one_error_line(cli("replay", str(tmp_path / "none.jsonl")), "none.jsonl")
    _one_error_line(cli("replay", str(events), "--until", "tomorrow"), "--until")
    _one_error_line(cli("replay", str(events), "--report", str(tmp_path)), "--report")
    _one_error_line(cli("replay", str(events), "--db", str(tmp_path)), "directory")
    _one_error_line(cli("replay", str(events), "--config", str(binary)), "UTF-8")
    _one_error_line(cli("anomaly", "scan", str(nul)), "nul.csv")
    _one_error_line(cli("demo", "--days", "1"), "--days")
    _one_error_line(cli("no-such-command"), "no-such-command")


# --- config schema, duplicate keys, depends_on ------------------------------------------------

def test_config_schema_validates_the_example_and_rejects_a_typo() -> None:
    result = cli("config", "schema")
    assert result.exit_code == 0, result.output
    schema = json.loads(result.stdout)
    example = yaml.safe_load(default_config_text())
    jsonschema.validate(example, schema)
    example["pipelines"][0]["phasess"] = []
    with pytest.raises(jsonschema.ValidationError, match="phasess"):
        jsonschema.validate(example, schema)
    assert "yaml-language-server" in cli("config", "schema", "--help").stdout


def _config(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "pw.yaml"
    path.write_text(text)
    return path


PHASE = """version: 1
pipelines:
  - id: p
    timezone: UTC
    phases:
      - id: load
        processors:
{processors}
"""


def test_duplicate_keys_are_an_error_naming_key_and_line(tmp_path: Path) -> None:
    text = PHASE.format(processors="          - {name: a, priority: critical, priority: optional}")
    _one_error_line(cli("config", "validate", str(_config(tmp_path, text))),
                    "line 8", "duplicate key 'priority'")
    top = "version: 1\n" + PHASE.format(processors="          - {name: a}")
    _one_error_line(cli("config", "validate", str(_config(tmp_path, top))),
                    "line 2", "'version'", "first at line 1")


def test_yaml_merge_keys_may_still_override(tmp_path: Path) -> None:
    text = PHASE.format(processors="          - &base {name: a, priority: optional}\n"
                                   "          - {<<: *base, name: b}")
    result = cli("config", "validate", str(_config(tmp_path, text)))
    assert result.exit_code == 0, result.output


@pytest.mark.parametrize(("processors", "needles"), [
    ("          - {name: a, depends_on: [b]}\n          - {name: b, depends_on: [a]}",
     ("pipelines[0:p].phases[0:load]", "cycle", "a -> b -> a")),
    ("          - {name: a, depends_on: [c]}\n          - {name: b, depends_on: [a]}\n"
     "          - {name: c, depends_on: [b]}",
     ("pipelines[0:p].phases[0:load]", "a -> c -> b -> a")),
    ("          - {name: a, depends_on: [zz]}", ("phases[0:load]", "'a'", "'zz'")),
    ("          - {name: a, depends_on: [a]}", ("phases[0:load]", "'a'")),
])
def test_depends_on_rejects_cycles_and_unknown_names(
    tmp_path: Path, processors: str, needles: tuple[str, ...]
) -> None:
    _one_error_line(cli("config", "validate", str(_config(tmp_path, PHASE.format(
        processors=processors)))), *needles)


def test_depends_on_chain_is_valid(tmp_path: Path) -> None:
    chain = "          - {name: a}\n          - {name: b, depends_on: [a]}\n" \
            "          - {name: c, depends_on: [a, b]}"
    result = cli("config", "validate", str(_config(tmp_path, PHASE.format(processors=chain))))
    assert result.exit_code == 0, result.output


def test_status_notes_a_processor_started_before_its_dependency_finished(
    store: Path, tmp_path: Path
) -> None:
    # nba.yaml: player_game_summary depends_on team_offense_game_summary
    result = cli("status", "--db", str(store), "--json")
    notes = json.loads(result.stdout)["runs"][0]["notes"]
    assert ("phase3/player_game_summary started before team_offense_game_summary finished"
            in notes)
    db = tmp_path / "in_order.db"
    events = _write(tmp_path / "in_order.jsonl", [
        event_dict("phase3", "started", "2026-01-18T06:00:00Z", "team_offense_game_summary"),
        event_dict("phase3", "succeeded", "2026-01-18T06:10:00Z", "team_offense_game_summary"),
        event_dict("phase3", "started", "2026-01-18T06:11:00Z", "player_game_summary"),
    ])
    assert cli("replay", str(events), "--db", str(db)).exit_code == 0
    in_order = json.loads(cli("status", "--db", str(db), "--json").stdout)
    assert not any("started before" in n for n in in_order["runs"][0]["notes"])


def test_health_check_and_silences_fit_80_columns(store: Path) -> None:
    at = ["--db", str(store), "--at", "2026-01-19T00:00:00Z"]
    for args in (["health-check", "--daily"], ["health-check"]):
        result = cli(*args, *at)
        assert result.exit_code == 1, result.output
        assert "upcoming_team_game_context" in result.stdout and _widest(result.stdout) <= 80
    added = cli("silence", "add", "-m", "alertname=deadline", "-m", "pipeline=nba",
                "-m", "processor=~player_game_summary|team_offense_game_summary",
                "--author", "ana@example.com", "--comment", "INC-5 " + "waiting on the vendor " * 8,
                "--duration", "2h", *at)
    listed = cli("silence", "list", *at)
    assert added.exit_code == 0 and listed.exit_code == 0, added.output + listed.output
    assert "active" in listed.stdout and _widest(added.stdout + listed.stdout) <= 80
