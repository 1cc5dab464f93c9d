"""``phasewatch slo report`` / ``slo rules``, and the rules checked by the real promtool."""

from __future__ import annotations

import json
import subprocess
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
import yaml
from click.testing import CliRunner

from monitor.app.cli.main import main
from monitor.events import Event
from monitor.store.sqlite import SQLiteStore
from tests.conftest import require_binary

CONFIG = """
version: 1
pipelines:
  - id: p
    timezone: America/New_York
    phases:
      - id: load
        processors:
          - {name: x, priority: critical}
          - {name: y, priority: optional}
      - id: publish
slos:
  - name: load-ok
    pipeline: p
    sli: {kind: success_ratio, phase: load, processors: [x], count: attempts}
    objective: 0.99
    window: {kind: rolling, days: 30}
  - name: publish-by-8
    pipeline: p
    sli: {kind: deadline, phase: publish, by: {time: "08:00"}}
    objective: 0.9
    window: {kind: rolling, days: 7}
    alerting: {min_units: 3}
  - name: publish-mode
    pipeline: p
    sli: {kind: success_ratio, phase: publish, modes: [same_day]}
    objective: 0.9
"""


@pytest.fixture
def files(tmp_path: Path) -> tuple[Path, Path]:
    cfg = tmp_path / "pw.yaml"
    cfg.write_text(CONFIG)
    db = tmp_path / "pw.db"
    store = SQLiteStore(db)
    events = []
    for i in range(6):
        day = date(2026, 1, 5) + timedelta(days=i)
        hour = 9 if i >= 4 else 7  # the last two runs are late
        events.append(Event(
            event_id=f"e{i}", pipeline="p", run_date=day, mode="same_day", phase="publish",
            status="succeeded", timestamp=datetime(2026, 1, 5 + i, hour + 5, tzinfo=UTC),
        ))
    store.append(events, datetime(2026, 1, 11, tzinfo=UTC))
    store.close()
    return cfg, db


def run(*args: str) -> Any:
    return CliRunner().invoke(main, list(args), catch_exceptions=False, env={"COLUMNS": "120"})


def test_report_table_and_exit_status(files: tuple[Path, Path]) -> None:
    cfg, db = files
    ok = run("slo", "report", "--config", str(cfg), "--db", str(db), "--at", "2026-01-08T14:00:00Z")
    assert ok.exit_code == 0, ok.output
    (row,) = [line for line in ok.output.splitlines() if line.startswith("publish-by-8")]
    assert "4/4" in row and row.endswith("OK")
    breached = run("slo", "report", "--config", str(cfg), "--db", str(db), "--at", "2026-01-10T14:00:00Z")
    assert breached.exit_code == 1
    assert "4/6" in breached.output and "BREACH" in breached.output
    # Two runs are fewer than min_units (3): a cold start is no breach, whatever the runs.
    cold = run("slo", "report", "--config", str(cfg), "--db", str(db), "--at", "2026-01-06T14:00:00Z")
    (row,) = [line for line in cold.output.splitlines() if line.startswith("publish-by-8")]
    assert cold.exit_code == 0 and "2/2" in row and row.endswith("INSUFFICIENT")


def test_report_json(files: tuple[Path, Path]) -> None:
    cfg, db = files
    result = run("slo", "report", "--json", "--config", str(cfg), "--db", str(db),
                 "--at", "2026-01-09T14:00:00+00:00")
    doc = json.loads(result.output)
    (slo,) = [s for s in doc["slos"] if s["name"] == "publish-by-8"]
    assert {"name", "objective", "sli", "budget_remaining", "status"} <= set(slo)
    assert (slo["good"], slo["total"], slo["status"]) == (4, 5, "breach")
    assert slo["budget_total"] == pytest.approx(0.5)


def test_report_usage_errors(files: tuple[Path, Path], tmp_path: Path) -> None:
    cfg, db = files
    assert run("slo", "report", "--config", str(cfg), "--db", str(tmp_path / "none.db")).exit_code == 2
    naive = run("slo", "report", "--config", str(cfg), "--db", str(db), "--at", "2026-01-09T14:00")
    assert naive.exit_code == 2 and "offset" in naive.output


def rules_text(cfg: Path) -> str:
    result = run("slo", "rules", "--config", str(cfg))
    assert result.exit_code == 0
    return str(result.output)


def test_rules_cover_event_ratio_slos_only(files: tuple[Path, Path]) -> None:
    text = rules_text(files[0])
    doc = yaml.safe_load(text)
    assert [g["name"] for g in doc["groups"]] == ["phasewatch-slo-load-ok"]
    assert "publish-by-8: deadline is not an event ratio" in text
    assert "publish-mode: has a modes filter" in text
    records = {r.get("record") for r in doc["groups"][0]["rules"]}
    assert "phasewatch:slo_error_ratio:rate5m" in records


def test_promtool_checks_the_generated_rules(files: tuple[Path, Path], tmp_path: Path) -> None:
    promtool = require_binary("promtool")
    path = tmp_path / "rules.yml"
    path.write_text(rules_text(files[0]))
    done = subprocess.run([promtool, "check", "rules", str(path)], capture_output=True, text=True)
    assert done.returncode == 0, done.stdout + done.stderr


def test_promtool_page_fires_for_a_fast_burn_only(files: tuple[Path, Path], tmp_path: Path) -> None:
    promtool = require_binary("promtool")
    text = rules_text(files[0])
    (tmp_path / "rules.yml").write_text(text)
    page = next(
        r for r in yaml.safe_load(text)["groups"][0]["rules"]
        if r.get("alert") == "PhasewatchSLOBurnRatePage"
    )
    ticket = next(
        r for r in yaml.safe_load(text)["groups"][0]["rules"]
        if r.get("alert") == "PhasewatchSLOBurnRateTicket"
    )

    def expected(rule: dict[str, Any]) -> list[dict[str, Any]]:
        return [{"exp_labels": rule["labels"], "exp_annotations": rule["annotations"]}]

    def series(status: str) -> str:
        return f'phasewatch_events_total{{pipeline="p",phase="load",processor="x",status="{status}"}}'

    tests = {
        "rule_files": ["rules.yml"],
        "evaluation_interval": "1m",
        "tests": [
            {   # Fast burn: 60 attempts a minute for 6 h, then all failing. After k failing
                # minutes the 1h error ratio is k/60: at least 14.4 x 1% from k = 9, so the
                # page fires at 6h09m; the 6h/30m pair would need k >= 21.6.
                "interval": "1m",
                "input_series": [
                    {"series": series("succeeded"), "values": "0+60x360 21600+0x120"},
                    {"series": series("failed"), "values": "0x360 60+60x120"},
                ],
                "alert_rule_test": [
                    {"eval_time": "360m", "alertname": page["alert"], "exp_alerts": []},
                    {"eval_time": "368m", "alertname": page["alert"], "exp_alerts": []},
                    {"eval_time": "369m", "alertname": page["alert"], "exp_alerts": expected(page)},
                    {"eval_time": "420m", "alertname": page["alert"], "exp_alerts": expected(page)},
                ],
            },
            {   # Slow burn: 2% of attempts fail for 8 hours (2x): no page, a ticket (1x over 3d/6h).
                "interval": "1m",
                "input_series": [
                    {"series": series("succeeded"), "values": "0+49x480"},
                    {"series": series("failed"), "values": "0+1x480"},
                ],
                "alert_rule_test": [
                    {"eval_time": f"{m}m", "alertname": page["alert"], "exp_alerts": []}
                    for m in (10, 60, 120, 240, 480)
                ] + [
                    {"eval_time": "480m", "alertname": ticket["alert"], "exp_alerts": expected(ticket)},
                ],
            },
        ],
    }
    path = tmp_path / "test.yml"
    path.write_text(yaml.safe_dump(tests, sort_keys=False))
    done = subprocess.run([promtool, "test", "rules", str(path)], capture_output=True, text=True)
    assert done.returncode == 0, done.stdout + done.stderr
