"""``due.expected_when``: a run date the data checks say had work is due, even if the
pipeline never reported on it (a paused scheduler job, a broken subscription).

due = calendar AND (not only_seen OR seen OR every expected_when condition holds on the
check's latest result for that run date). Live, on a restart's rebuild and in
``slo report`` alike; a result after the deadline recounts the run date.
"""

from __future__ import annotations

import json
from datetime import UTC, date, timedelta
from pathlib import Path

import pytest
from click.testing import CliRunner

from monitor.app.cli.main import main
from monitor.app.phasewatch import Phasewatch
from monitor.checks.result import CheckResult
from monitor.clock import FakeClock
from monitor.config import Config
from monitor.errors import ConfigError
from slo import SLOEngine
from slo.evaluator import SLOStatus
from slo.sli.base import CheckReading
from tests.test_slo_engine import PIPELINE, config, daily_publishes, feed, local

CHECKS = """
checks:
  - {name: games, pipeline: p, kind: pushed}
  - {name: staff, pipeline: p, kind: pushed}
"""

GAME_DAYS = """
slos:
  - name: publish-by-8
    pipeline: p
    sli:
      kind: deadline
      phase: publish
      by: {time: "08:00"}
      due: {only_seen: true, expected_when: {games: "> 0"}}
    objective: 0.9
    window: {kind: rolling, days: 28}
"""

D1, D2, D3, D4 = (date(2026, 1, 12) + timedelta(days=i) for i in range(4))


def game_config(slos: str = GAME_DAYS) -> Config:
    return config(CHECKS + slos)


def reading(name: str, value: float, at: str, run_date: date | None = None,
            pipeline: str | None = None) -> CheckReading:
    return CheckReading(name, value, local(at), run_date, pipeline)


def counted(status: SLOStatus) -> tuple[int, int, list[str]]:
    return status.good, status.total, [key for key, _ in status.bad_units]


def engine_with_runs() -> SLOEngine:
    """Publishes on time on D1 only (counting starts at its first event)."""
    cfg = game_config()
    engine = SLOEngine(cfg)
    feed(cfg, engine, daily_publishes(D1, 1))
    return engine


def test_a_run_date_the_check_says_had_work_is_due_without_any_event_of_it() -> None:
    engine = engine_with_runs()
    engine.observe_check(reading("games", 9, f"{D2}T06:00"))  # a game day: nothing ran
    engine.observe_check(reading("games", 0, f"{D3}T06:00"))  # no games
    # D4: the check never reported: not made due by it.
    (status,) = engine.evaluate(local(f"{D4}T12:00"))
    assert counted(status) == (1, 2, [D2.isoformat()])


def test_the_latest_result_of_the_run_date_decides_and_a_late_one_recounts_it() -> None:
    engine = engine_with_runs()
    (before,) = engine.evaluate(local(f"{D2}T09:00"))  # D2's deadline passed: nothing expected
    assert counted(before) == (1, 1, [])
    engine.observe_check(reading("games", 5, f"{D2}T09:30"))  # after the deadline
    (after,) = engine.evaluate(local(f"{D2}T09:31"))
    assert counted(after) == (1, 2, [D2.isoformat()])
    engine.observe_check(reading("games", 7, f"{D2}T09:00"))  # older than the latest: ignored
    engine.observe_check(reading("games", 0, f"{D2}T10:00"))  # the schedule corrected: no games
    (corrected,) = engine.evaluate(local(f"{D2}T10:01"))
    assert counted(corrected) == (1, 1, [])


def test_the_results_run_date_and_pipeline_count_and_every_condition_must_hold() -> None:
    slos = GAME_DAYS.replace('{games: "> 0"}', '{games: "> 0", staff: ">= 2"}')
    cfg = game_config(slos)
    engine = SLOEngine(cfg)
    feed(cfg, engine, daily_publishes(D1, 1))
    # Measured the evening before, for D2's run date; both hold: due.
    engine.observe_check(reading("games", 3, f"{D1}T20:00", run_date=D2, pipeline="p"))
    engine.observe_check(reading("staff", 2, f"{D1}T20:00", run_date=D2))
    # D3: games but too few staff; D4: another pipeline's check of the same name.
    engine.observe_check(reading("games", 3, f"{D3}T06:00"))
    engine.observe_check(reading("staff", 1, f"{D3}T06:00"))
    engine.observe_check(reading("games", 3, f"{D4}T06:00", pipeline="elsewhere"))
    engine.observe_check(reading("staff", 3, f"{D4}T06:00"))
    (status,) = engine.evaluate(local(f"{D4}T12:00"))
    assert counted(status) == (1, 2, [D2.isoformat()])


def test_without_expected_when_a_silent_run_date_is_still_not_counted() -> None:
    cfg = config(CHECKS + GAME_DAYS.replace(', expected_when: {games: "> 0"}', ""))
    engine = SLOEngine(cfg)
    feed(cfg, engine, daily_publishes(D1, 1))
    engine.observe_check(reading("games", 9, f"{D2}T06:00"))
    (status,) = engine.evaluate(local(f"{D4}T12:00"))
    assert counted(status) == (1, 1, [])


def test_results_are_kept_only_as_long_as_the_window_needs() -> None:
    engine = engine_with_runs()
    for i in range(60):
        day = D2 + timedelta(days=i)
        engine.observe_check(reading("games", 1, f"{day}T06:00"))
        engine.evaluate(local(f"{day}T12:00"))
    (tracked,) = engine._slos
    kept = tracked.sli.expected  # type: ignore[attr-defined]
    assert len(kept) <= 28 + 8 + 2
    assert max(kept) == D2 + timedelta(days=59)


def test_live_restart_and_report_count_the_silent_game_day_alike(tmp_path: Path) -> None:
    """A pushed result is stored; the live instance, a restarted one (rebuild) and
    ``slo report`` over the same store all count D2 bad."""
    cfg_path = tmp_path / "pw.yaml"
    cfg_path.write_text(PIPELINE + CHECKS + GAME_DAYS)
    cfg = game_config()
    db = str(tmp_path / "pw.db")
    end = local(f"{D3}T12:00")
    clock = FakeClock(local(f"{D1}T06:00"))
    pw = Phasewatch.build(cfg, db_path=db, clock=clock, dry_run_alerts=True)
    try:
        pw.collector.ingest(daily_publishes(D1, 1))
        clock.set(local(f"{D2}T09:00"))  # after D2's deadline
        pw.checks.record([CheckResult("games", 9, local(f"{D2}T09:00"))], clock.now())
        clock.set(end)
        live = next(s for s in pw.slo_report() if s["name"] == "publish-by-8")
    finally:
        pw.close()
    pw = Phasewatch.build(cfg, db_path=db, clock=FakeClock(end), dry_run_alerts=True,
                          snapshots=False)
    try:
        restarted = next(s for s in pw.slo_report() if s["name"] == "publish-by-8")
    finally:
        pw.close()
    result = CliRunner().invoke(main, ["slo", "report", "--json", "--config", str(cfg_path),
                                       "--db", db, "--at", end.astimezone(UTC).isoformat()])
    reported = next(s for s in json.loads(result.output)["slos"] if s["name"] == "publish-by-8")
    assert [(s["good"], s["total"]) for s in (live, restarted, reported)] == [(1, 2)] * 3


# --------------------------------------------------------------------------- the config


@pytest.mark.parametrize(("due", "field", "allowed"), [
    ('{only_seen: true, expected_when: {gmes: "> 0"}}', "sli.due.expected_when",
     "allowed: ['games', 'staff']"),
    ('{only_seen: true, expected_when: {games: "more than 0"}}', "expected_when",
     "expected an operator"),
    ('{expected_when: {games: "> 0"}}', "due", "needs only_seen: true"),
], ids=["unknown-check", "bad-condition", "without-only-seen"])
def test_a_wrong_expected_when_is_a_config_error_naming_the_field(
    due: str, field: str, allowed: str, tmp_path: Path,
) -> None:
    slos = GAME_DAYS.replace('{only_seen: true, expected_when: {games: "> 0"}}', due)
    with pytest.raises(ConfigError) as raised:
        game_config(slos)
    assert field in str(raised.value) and allowed in str(raised.value)
    path = tmp_path / "bad.yaml"
    path.write_text(PIPELINE + CHECKS + slos)
    result = CliRunner().invoke(main, ["config", "validate", str(path)])
    assert result.exit_code == 2 and field in result.output and "Traceback" not in result.output


def test_a_check_of_another_pipeline_is_not_allowed() -> None:
    checks = CHECKS.replace("{name: staff, pipeline: p, kind: pushed}",
                            "{name: staff, pipeline: p, kind: pushed}\n  - {name: other, pipeline: q, kind: pushed}")
    pipelines = PIPELINE + PIPELINE.split("pipelines:\n", 1)[1].replace("id: p", "id: q", 1)
    from monitor.config import parse_config

    slos = GAME_DAYS.replace('{games: "> 0"}', '{other: "> 0"}')
    with pytest.raises(ConfigError, match=r"expected_when names checks \['other'\]"):
        parse_config(pipelines + checks + slos, "<test>")
