"""``phasewatch loadtest``: its config, its usage errors, its verdicts, and a short profile
against a real ``phasewatch serve`` (both profiles, the push path, a breach exiting 1).

The short profile sends for 12 s (synthetic) and 6 s (replay): every path of the load test
runs (locust in its child process, both ingest paths, the trigger target, decision lag,
RSS, the stored check, the reports); a longer run only sends more of the same requests.
The figures in docs/loadtest.md come from longer runs.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import pytest
import yaml
from click.testing import CliRunner

from monitor.app.cli.main import main
from monitor.app.load.config import replay_config, synthetic_config
from monitor.app.load.plan import recorded_day, replay_plan, synthetic_plan
from monitor.app.load.thresholds import Thresholds, judge
from monitor.config import parse_config

ROOT = Path(__file__).resolve().parent.parent
PHASEWATCH = str(Path(sys.executable).with_name("phasewatch"))


def cli(*args: str) -> Any:
    return CliRunner().invoke(main, list(args))


def test_importing_the_cli_and_the_runner_loads_neither_locust_nor_gevent() -> None:
    """locust monkey-patches the standard library on import: only the worker process may."""
    code = ("import sys, monitor.app.cli.main, monitor.app.load.runner, monitor.app.load.worker; "
            "print(sorted({m.split('.')[0] for m in sys.modules} & {'locust', 'gevent'}))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=ROOT, check=True)
    assert out.stdout.strip() == "[]"


def test_loadtest_config_prints_a_valid_config_for_each_profile() -> None:
    result = cli("loadtest", "config", "--pipelines", "3", "--processors", "4", "--target-port", "18111")
    assert result.exit_code == 0, result.output
    config = parse_config(result.output, "<synthetic>")
    assert [p.id for p in config.pipelines] == ["load01", "load02", "load03"]
    publish = config.pipeline_map["load02"].phase_map["publish"]
    assert [str(t.url) for t in publish.triggers] == ["http://127.0.0.1:18111/trigger/load02"]  # type: ignore[union-attr]
    result = cli("loadtest", "config", "--profile", "replay", "--target-port", "18111")
    assert result.exit_code == 0, result.output
    replay = parse_config(result.output, "<replay>")
    # Nothing beyond this machine: no export, and every data check only declared (pushed,
    # never run), so what the SLOs and expectations name stays known.
    assert replay.checks and all(c.kind == "pushed" for c in replay.checks)
    assert replay.export.cloud_monitoring is None
    nba = replay.pipeline_map["nba"]
    urls = [str(t.url) for ph in nba.phases for t in ph.triggers]  # type: ignore[union-attr]
    assert urls and all(u.startswith("http://127.0.0.1:18111/trigger/") for u in urls)
    assert all(str(s.health_url).startswith("http://127.0.0.1:18111/health/") for s in nba.services.values())


@pytest.mark.parametrize(("args", "message"), [
    (["loadtest"], "--url: missing"),
    (["loadtest", "--url", "http://127.0.0.1:9", "--duration", "soon"], "--duration 'soon': not a duration"),
    (["loadtest", "--url", "http://127.0.0.1:9", "--runs", "0"], "--runs"),
    (["loadtest", "--url", "http://127.0.0.1:9", "--profile", "day"], "--profile"),
    (["loadtest", "--url", "http://127.0.0.1:9", "--pid", "999999999"], "--pid 999999999: no such process"),
    (["loadtest", "--url", "http://127.0.0.1:9", "--profile", "replay", "--events", "/nonexistent.jsonl"],
     "--events /nonexistent.jsonl: no such file"),
    (["loadtest", "--url", "http://127.0.0.1:9", "--out", "/proc/version/x"], "--out /proc/version/x: cannot create"),
    (["loadtest", "config", "--target-port", "0"], "--target-port"),
])
def test_usage_errors_exit_2_naming_the_option(args: list[str], message: str) -> None:
    result = cli(*args)
    assert result.exit_code == 2, result.output
    assert message in result.output


def test_a_thresholds_file_with_an_unknown_key_names_it(tmp_path: Path) -> None:
    path = tmp_path / "limits.yaml"
    path.write_text("ingest_p99_ms: 100\nmax_lsot: 0\n")
    result = cli("loadtest", "--url", "http://127.0.0.1:9", "--thresholds", str(path))
    assert result.exit_code == 2
    assert "max_lsot" in result.output and "limits.yaml" in result.output


def test_events_of_an_unknown_pipeline_are_refused(tmp_path: Path) -> None:
    path = tmp_path / "day.jsonl"
    path.write_text(json.dumps({"event_id": "a", "pipeline": "mlb", "run_date": "2026-01-17", "phase": "phase2",
                                "status": "started", "timestamp": "2026-01-18T05:00:00Z"}) + "\n")
    result = cli("loadtest", "--url", "http://127.0.0.1:9", "--profile", "replay", "--events", str(path))
    assert result.exit_code == 2
    assert "pipeline 'mlb' is not in the config; allowed: nba" in result.output


def test_judge_names_each_limit_passed_and_skips_what_was_not_measured() -> None:
    limits = Thresholds(ingest_p99_ms=100, decision_lag_p99_s=1.0)
    figures = {"lost": 1, "failed": 0, "ingest_p99_ms": 250.0, "decision_lag_p99_s": None,
               "duplicate_triggers": 0}
    assert [str(b) for b in judge(figures, limits)] == ["lost 1 > 0", "ingest_p99_ms 250 > 100"]
    assert judge({"lost": 0, "ingest_p99_ms": 99.0}, limits) == []


def test_plans_spread_the_runs_and_move_a_recorded_day_to_today() -> None:
    from datetime import date

    plan = synthetic_plan(2, 3, 4, 10.0, today=date(2026, 12, 6), session="s")
    assert len(plan) == 2 * 3 * 4 * 2 and max(p.at_s for p in plan) <= 8.0
    assert len({p.event["event_id"] for p in plan}) == len(plan)
    assert {p.event["run_date"] for p in plan} == {"2026-12-06", "2026-12-05", "2026-12-04", "2026-12-03"}
    day = recorded_day()
    replayed = replay_plan(day, 100.0, today=date(2026, 12, 6), session="s", timezone="America/New_York")
    assert len(replayed) == sum(1 for line in day if "type" not in line) > 50
    assert replayed[0].at_s == 0 and max(p.at_s for p in replayed) <= 864
    assert {p.event["run_date"] for p in replayed} <= {"2026-12-05", "2026-12-06", "2026-12-07"}


def _serve(config: Path, db: Path, log: Path, token: str) -> tuple[subprocess.Popen[bytes], str]:
    with log.open("ab") as stderr:
        proc = subprocess.Popen([PHASEWATCH, "serve", "--config", str(config), "--db", str(db), "--port", "0"],
                                env={**os.environ, "PHASEWATCH_TOKEN": token}, stdout=subprocess.DEVNULL,
                                stderr=stderr, cwd=ROOT)
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:  # polling a real external process
        for line in log.read_text().splitlines():
            if "event=serve.started" in line:
                return proc, f"http://127.0.0.1:{line.split(' port=')[1].split()[0]}"
        if proc.poll() is not None:
            break
        time.sleep(0.05)
    proc.kill()
    raise AssertionError(f"serve did not start:\n{log.read_text()}")


def _free_port() -> int:
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def test_both_profiles_against_phasewatch_serve(tmp_path: Path) -> None:
    port = _free_port()
    target = f"http://127.0.0.1:{port}"
    data = replay_config(target)  # the NBA example and two synthetic pipelines, in one config
    synthetic = synthetic_config(2, 6, target)
    data["pipelines"] += synthetic["pipelines"]
    data["slos"] += synthetic["slos"]
    config = tmp_path / "load.yaml"
    config.write_text(yaml.safe_dump(data, sort_keys=False))
    proc, url = _serve(config, tmp_path / "load.db", tmp_path / "serve.log", "load-token")
    common = ["--url", url, "--token", "load-token", "--target-port", str(port), "--pid", str(proc.pid),
              "--push", "--settle", "10s"]
    try:
        out = tmp_path / "synthetic"
        done = subprocess.run([PHASEWATCH, "loadtest", *common, "--profile", "synthetic", "--pipelines", "2",
                               "--processors", "6", "--runs", "8", "--duration", "12s", "--out", str(out)],
                              capture_output=True, text=True, timeout=180, cwd=ROOT)
        assert done.returncode == 0, done.stdout + done.stderr
        assert done.stdout.rstrip().endswith("PASS")
        figures = json.loads((out / "summary.json").read_text())["figures"]
        assert figures["acknowledged"] == figures["planned"] == 2 * 6 * 8 * 2
        assert figures["via_push"] == figures["acknowledged"] // 2
        assert (figures["lost"], figures["unverified"], figures["failed"]) == (0, 0, 0)
        assert figures["triggers"] == figures["runs_complete"] == 16 and figures["missing_triggers"] == 0
        assert figures["decision_lag_p99_s"] is not None and figures["peak_rss_mb"] > 20
        stats = (out / "locust_stats.csv").read_text()
        assert "POST /v1/events" in stats and "POST /v1/pubsub/push" in stats
        assert "locust" in (out / "report.html").read_text().lower()

        strict = tmp_path / "strict.yaml"
        strict.write_text("ingest_p99_ms: 0.001\n")
        out = tmp_path / "replay"
        done = subprocess.run([PHASEWATCH, "loadtest", *common, "--profile", "replay", "--config", str(config),
                               "--speed", "2000", "--duration", "6s", "--thresholds", str(strict),
                               "--out", str(out)], capture_output=True, text=True, timeout=180, cwd=ROOT)
        assert done.returncode == 1, done.stdout + done.stderr
        assert "FAIL: ingest_p99_ms" in done.stdout
        figures = json.loads((out / "summary.json").read_text())["figures"]
        assert figures["acknowledged"] > 20 and figures["lost"] == 0 and figures["failed"] == 0
    finally:
        proc.terminate()
        proc.wait(30)
