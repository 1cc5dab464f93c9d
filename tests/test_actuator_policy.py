"""Transition policy: rules, tiers, backstops, and the config that states them."""

from __future__ import annotations

from datetime import date, datetime, timedelta
from typing import Any

import pytest
import yaml

from monitor.actuator.policy import backstop_at, due_backstop, evaluate
from monitor.config import Config, default_config_text, load_config, parse_config
from monitor.errors import ConfigError
from monitor.tracker import RunTracker
from tests.actuator_support import PHASE3_OVERNIGHT, PHASE4
from tests.factories import make_event

NBA = load_config()
PIPE = NBA.pipeline_map["nba"]
T0 = datetime.fromisoformat("2026-01-18T07:00:00+00:00")


def run_with(phase: str, done: list[str], *, config: Config = NBA, mode_run_date: str = "2026-01-17",
             step_min: float = 1.0, status: str = "succeeded") -> Any:
    tracker = RunTracker(config)
    at = T0
    for name in done:
        tracker.apply(make_event(phase, status, at.isoformat(), name, run_date=mode_run_date,
                                 mode="overnight"))
        at += timedelta(minutes=step_min)
    (run,) = tracker.runs()
    return run


def test_all_complete() -> None:
    run = run_with("phase3", PHASE3_OVERNIGHT)
    verdict = evaluate(PIPE, PIPE.phase_map["phase4"], run, T0 + timedelta(minutes=10))
    assert (verdict.due, verdict.reason, verdict.rule) == (True, "all_complete", "all_complete")
    assert not verdict.degraded


def test_critical_plus_fraction_needs_every_critical_and_the_fraction() -> None:
    phase4 = PIPE.phase_map["phase4"]
    two_critical = run_with("phase3", ["player_game_summary", "upcoming_player_game_context"])
    assert not evaluate(PIPE, phase4, two_critical, T0).due  # 40% < 60%
    three = run_with("phase3", ["player_game_summary", "upcoming_player_game_context",
                                "team_offense_game_summary"])
    verdict = evaluate(PIPE, phase4, three, T0 + timedelta(minutes=5))
    assert (verdict.reason, verdict.rule) == ("critical_plus_fraction", "critical_plus_majority_60pct")
    assert verdict.degraded and set(verdict.missing) == {"team_defense_game_summary",
                                                          "upcoming_team_game_context"}
    no_critical = run_with("phase3", ["team_offense_game_summary", "team_defense_game_summary",
                                      "upcoming_team_game_context", "upcoming_player_game_context"])
    assert not evaluate(PIPE, phase4, no_critical, T0 + timedelta(hours=3)).due


def test_idle_tier_triggers_when_critical_done_and_nothing_new_for_an_hour() -> None:
    phase4 = PIPE.phase_map["phase4"]
    run = run_with("phase3", ["player_game_summary", "upcoming_player_game_context"])
    last = T0 + timedelta(minutes=1)
    assert not evaluate(PIPE, phase4, run, last + timedelta(minutes=59)).due
    verdict = evaluate(PIPE, phase4, run, last + timedelta(minutes=60))
    assert (verdict.reason, verdict.rule) == ("tier", "critical_done_idle_60min")


@pytest.mark.parametrize(("done", "after_min", "rule"), [
    (PHASE4, 0, "all_complete"),
    (PHASE4[1:], 59, None),
    (PHASE4[1:], 60, "tier2_timeout"),
    (PHASE4[2:], 119, None),
    (PHASE4[2:], 120, "tier3_timeout"),
    (PHASE4[3:], 239, None),
    (PHASE4[3:], 240, "max_timeout"),
    (["team_defense_zone_analysis", "player_shot_zone_analysis", "player_composite_factors",
      "player_daily_cache"], 600, None),  # ml_feature_store is always required
])
def test_phase5_tiers_count_from_the_first_phase4_completion(
    done: list[str], after_min: float, rule: str | None,
) -> None:
    run = run_with("phase4", done, step_min=0)
    verdict = evaluate(PIPE, PIPE.phase_map["phase5"], run, T0 + timedelta(minutes=after_min))
    assert verdict.rule == rule
    assert verdict.due == (rule is not None)


def test_backstop_applies_in_its_window_and_needs_nothing_from_the_rules() -> None:
    phase4 = PIPE.phase_map["phase4"]
    run = run_with("phase3", ["upcoming_player_game_context"])
    (overnight,) = [b for b in phase4.policy.backstops if b.mode == "overnight"]
    due = backstop_at(PIPE, overnight, date(2026, 1, 17))
    assert due.isoformat() == "2026-01-18T07:00:00-05:00"  # 07:00 ET the morning after
    assert due_backstop(PIPE, phase4, run, due - timedelta(seconds=1)) is None
    assert due_backstop(PIPE, phase4, run, due) is overnight
    assert due_backstop(PIPE, phase4, run, due + timedelta(minutes=61)) is None
    tomorrow = next(b for b in phase4.policy.backstops if b.mode == "tomorrow")
    assert backstop_at(PIPE, tomorrow, date(2026, 1, 19)).isoformat() == "2026-01-18T17:30:00-05:00"


def test_phase_level_upstream_is_due_on_its_success() -> None:
    tracker = RunTracker(NBA)
    tracker.apply(make_event("phase1", "succeeded", T0.isoformat(), run_date="2026-01-17"))
    (run,) = tracker.runs()
    verdict = evaluate(PIPE, PIPE.phase_map["phase2"], run, T0)
    assert (verdict.due, verdict.reason) == (True, "all_complete")
    assert not evaluate(PIPE, PIPE.phase_map["phase1"], run, T0).due  # no upstream


def _config_with(edit: Any) -> str:
    data = yaml.safe_load(default_config_text())
    edit(data)
    return yaml.safe_dump(data)


def _phase(data: dict[str, Any], phase: str) -> dict[str, Any]:
    return next(p for p in data["pipelines"][0]["phases"] if p["id"] == phase)


@pytest.mark.parametrize(("edit", "field", "words"), [
    (lambda d: _phase(d, "phase5")["transition"]["rules"][1].update(require=["nope"]),
     "phase 'phase5' transition", ["require", "nope", "allowed", "ml_feature_store"]),
    (lambda d: _phase(d, "phase4")["transition"]["rules"].append({"kind": "magic"}),
     "rules", ["all_complete", "critical_plus_fraction", "tiers"]),
    (lambda d: _phase(d, "phase4")["transition"]["backstops"].append({"mode": "overnight", "at": "7am"}),
     "at", ["pattern", "7am"]),
    (lambda d: _phase(d, "phase4")["transition"]["gates"].append({"kind": "health", "services": ["x"]}),
     "phase 'phase4' transition", ["gates.health.services", "allowed", "prediction-worker"]),
    (lambda d: _phase(d, "phase5")["transition"]["recovery"]["batches"][0].update(actions=["reboot"]),
     "recovery", ["reboot", "allowed", "check_stalled"]),
    (lambda d: _phase(d, "phase6").update(transition={"backstops": [{"mode": "overnight", "at": "08:00"}]},
                                          triggers=[]),
     "phase 'phase6' transition", ["need the phase's triggers", "allowed"]),
    (lambda d: d.setdefault("actuator", {}).update(deferral={"retry_after_min": 5}),
     "actuator.deferral.retry_after_min", ["unknown field", "allowed", "retry_after_s"]),
    (lambda d: d.setdefault("actuator", {}).update(enabled="perhaps"),
     "actuator.enabled", ["bool"]),
])
def test_bad_transition_config_names_the_field_and_what_is_allowed(
    edit: Any, field: str, words: list[str],
) -> None:
    with pytest.raises(ConfigError) as info:
        parse_config(_config_with(edit), "nba.yaml")
    text = str(info.value)
    assert field in text, text
    for word in words:
        assert word.lower() in text.lower(), text


def test_defaults_work_without_any_actuator_config() -> None:
    config = parse_config(_config_with(lambda d: [p.pop("transition", None) for p in
                                                    d["pipelines"][0]["phases"]]), "x.yaml")
    cfg = config.actuator
    assert (cfg.enabled, cfg.dry_run, cfg.deferral.retry_after_s, cfg.verification.start_within_min,
            cfg.health.timeout_s) == (True, False, 300.0, 15.0, 5.0)
    phase4 = config.pipeline_map["nba"].phase_map["phase4"]
    assert [r.kind for r in phase4.policy.rules] == ["all_complete"]
