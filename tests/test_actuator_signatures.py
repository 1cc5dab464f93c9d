"""Failure signature categories, their alerts, and streaks that survive a restart."""

from __future__ import annotations

from datetime import datetime
from pathlib import Path
from typing import Any

import pytest

from monitor.actuator.config import DEFAULT_SIGNATURE_CATEGORIES, GuardsConfig
from monitor.actuator.signatures import classify
from monitor.config import parse_config
from monitor.errors import ConfigError
from tests.actuator_support import Rig, edit_config, rig

START = datetime.fromisoformat("2026-02-08T15:36:00+00:00")  # 10:36 in New York
SCHEMA = ("400 Provided Schema does not match Table p:nba_predictions.player_prop_predictions."
          " Cannot add fields (field: vegas_line_source) player {n}")


@pytest.mark.parametrize(("error", "category", "headline"), [
    ("ImportError: cannot import name 'firestore' from 'google.cloud'", "service_crash",
     "service crash signature (ImportError)"),
    ("Traceback (most recent call last):\n  File \"w.py\"\nModuleNotFoundError: No module named 'x'",
     "service_crash", "service crash signature (ModuleNotFoundError)"),
    ("TypeError: HealthChecker.__init__() got an unexpected keyword argument 'project_id'",
     "service_crash", "service crash signature (TypeError)"),
    (SCHEMA.format(n=1), "schema_drift", "schema drift"),
    ("BadRequest: 400 No such field: vegas_line_source", "schema_drift", "schema drift"),
    ("SchemaError: no such field x", "schema_drift", "schema drift (SchemaError)"),
    ("403 Forbidden: Permission denied on resource project p", "permission_denied", "permission denied"),
    ("429 Too Many Requests: Quota exceeded for quota metric", "quota", "quota or rate limit"),
    ("ValueError: player 1630123 has no line", None, None),
    ("TypeError: unsupported operand type(s) for +: 'int' and 'str'", None, None),
])
def test_default_categories(error: str, category: str | None, headline: str | None) -> None:
    found = classify(error, DEFAULT_SIGNATURE_CATEGORIES)
    assert (found.name if found else None) == category
    assert (found.headline if found else None) == headline


def test_categories_are_validated_and_priorities_map_to_severities() -> None:
    guards = GuardsConfig.model_validate(
        {"categories": [{"name": "drift", "title": "schema drift", "severity": "P0",
                         "patterns": ["(?i)no such field"]}]})
    assert guards.categories[0].severity == "critical"

    def bad(categories: list[dict[str, Any]]) -> str:
        def edit(data: dict[str, Any]) -> None:
            data["actuator"]["guards"]["categories"] = categories
        with pytest.raises(ConfigError) as exc:
            edit_config(edit)
        return str(exc.value)

    text = bad([{"name": "x", "title": "x", "patterns": ["(unclosed"]}])
    assert "actuator.guards.categories[0" in text and "patterns" in text
    assert "not a valid regular expression" in text
    text = bad([{"name": "x", "title": "x", "patterns": ["a"], "severity": "P9"}])
    assert "severity" in text and "critical" in text
    assert "repeated: ['x']" in bad([{"name": "x", "title": "x", "patterns": ["a"]}] * 2)
    with pytest.raises(ConfigError):
        parse_config("pipelines: []\n", "<t>")


def fail(r: Rig, times: int, error: str = SCHEMA) -> None:
    for i in range(times):
        r.clock.advance(30)
        r.ingest("phase5", "failed", "prediction-worker", run_date="2026-02-08", mode="same_day",
                 error=error.format(n=100 + i))


def test_a_signature_streak_survives_a_restart(tmp_path: Path) -> None:
    db = tmp_path / "pw.db"
    with rig(db=db, start=START) as r:
        fail(r, 6)
        assert not r.raised("deterministic_failure")
        stop = r.clock.now()
    with rig(db=db, start=stop) as r:
        fail(r, 3)
        assert not r.raised("deterministic_failure")
        fail(r, 1)  # the tenth in a row, across the restart
        (alert,) = r.raised("deterministic_failure")
        assert alert.severity == "critical" and alert.labels["category"] == "schema_drift"
        assert alert.summary.startswith("schema drift: prediction-worker failed 10 times in a row")
        assert alert.summary.endswith("automated retries stopped")
        assert r.pw.actuator is not None
        assert [g.kind for g in r.pw.actuator.ctx.guards.active()] == ["deterministic_failure"]
    with rig(db=db, start=stop) as r:  # the tripped guard is kept too
        assert r.pw.actuator is not None
        assert [g.kind for g in r.pw.actuator.ctx.guards.active()] == ["deterministic_failure"]


def test_a_success_ends_the_stored_streak(tmp_path: Path) -> None:
    db = tmp_path / "pw.db"
    with rig(db=db, start=START) as r:
        fail(r, 9)
        r.clock.advance(30)
        r.ingest("phase5", "succeeded", "prediction-worker", run_date="2026-02-08", mode="same_day")
        stop = r.clock.now()
    with rig(db=db, start=stop) as r:
        fail(r, 9)
        assert not r.raised("deterministic_failure")


def test_an_alert_only_category_keeps_retrying_and_resolves_on_success() -> None:
    with rig(start=START) as r:
        fail(r, 10, "429 Too Many Requests: rate limit exceeded for player {n}")
        (alert,) = r.raised("deterministic_failure")
        assert alert.severity == "warning" and alert.labels["category"] == "quota"
        assert alert.summary.endswith("retries continue")
        assert r.pw.actuator is not None
        assert r.pw.actuator.ctx.guards.active() == []  # nothing blocked
        r.clock.advance(30)
        r.ingest("phase5", "succeeded", "prediction-worker", run_date="2026-02-08", mode="same_day")
        resolved = [x for x in r.pw.actuator.ctx.notifier.raised
                    if x.action == "resolve" and x.kind == "deterministic_failure"]
        assert [x.key for x in resolved] == [alert.key]


def test_an_uncategorised_signature_is_still_a_deterministic_failure() -> None:
    with rig(start=START) as r:
        fail(r, 10, "ValueError: player {n} has no line")
        (alert,) = r.raised("deterministic_failure")
        assert alert.severity == "critical" and "category" not in alert.labels
        assert alert.summary.startswith("deterministic failure: prediction-worker failed 10 times")


def test_one_invocations_failure_reported_again_is_one_attempt() -> None:
    """A publisher that retries its own publish (a new event id each time) reports one
    invocation's failure 12 times: one attempt, no streak; a redelivery that starts the
    processor again is another attempt (incident 5's ImportError loop)."""
    error = "RuntimeError: BigQuery job bqjob_r5e1 failed: backend error"
    with rig(start=START) as r:
        r.ingest("phase5", "started", "prediction-worker", run_date="2026-02-08", mode="same_day",
                 invocation_id="exec-1")
        for _ in range(12):
            r.clock.advance(20)
            r.ingest("phase5", "failed", "prediction-worker", run_date="2026-02-08",
                     mode="same_day", invocation_id="exec-1", error=error)
        assert not r.raised("deterministic_failure") and not r.raised("failed_runs")
        for _ in range(10):
            r.clock.advance(20)
            r.ingest("phase5", "started", "prediction-worker", run_date="2026-02-08",
                     mode="same_day", invocation_id="msg-7")
            r.ingest("phase5", "failed", "prediction-worker", run_date="2026-02-08",
                     mode="same_day", invocation_id="msg-7", error=error)
        (alert,) = r.raised("deterministic_failure")
        assert "failed 10 times in a row" in alert.summary  # the first report of exec-1, 9 of msg-7
