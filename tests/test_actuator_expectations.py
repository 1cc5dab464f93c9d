"""Data expectations over check results: deadline, condition, requirement, resolve, restart."""

from __future__ import annotations

from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

from monitor.app.sim.replay import CheckLine
from monitor.config import ExpectationConfig
from monitor.errors import ConfigError
from tests.actuator_support import Rig, edit_config, rig

# 2026-02-08 is a Sunday; 08:00 ET is 13:00 UTC, the deadline 08:30 ET is 13:30 UTC.
START = datetime.fromisoformat("2026-02-08T13:00:00+00:00")
DEADLINE = datetime.fromisoformat("2026-02-08T13:30:00+00:00")


def check(r: Rig, name: str, value: float, at: datetime | None = None) -> None:
    r.world.apply(CheckLine(type="check", name=name, value=value, timestamp=at or r.clock.now()))


def gaps(r: Rig, action: str = "fire") -> list[Any]:
    assert r.pw.actuator is not None
    return [x for x in r.pw.actuator.ctx.notifier.raised
            if x.kind == "expectation" and x.action == action]


def with_expectation(**changes: Any) -> Any:
    def edit(data: dict[str, Any]) -> None:
        (exp,) = data["pipelines"][0]["expectations"]
        exp.update(changes)
    return edit_config(edit)


def test_fires_at_the_deadline_and_resolves_when_the_requirement_passes() -> None:
    with rig(start=START) as r:
        check(r, "games_today", 10)
        check(r, "predictions_today", 0)
        r.tick_for(29 * 60)
        assert not gaps(r)  # before the deadline: nothing
        r.tick_for(90)
        (gap,) = gaps(r)
        assert DEADLINE <= gap.at <= DEADLINE + timedelta(seconds=30)
        assert gap.severity == "critical"  # P0 in nba.yaml
        assert gap.labels == {"pipeline": "nba", "expectation": "prediction_gap",
                              "day": "2026-02-08", "deadline": "08:30"}
        assert gap.summary == ("prediction gap: nba 2026-02-08, by 08:30 America/New_York: "
                               "games_today = 10; predictions_today = 0 (needs > 0)")
        r.tick_for(600)
        assert len(gaps(r)) == 1  # one alert, not one per tick
        check(r, "predictions_today", 343)
        r.tick_for(30)
        (resolved,) = gaps(r, "resolve")
        assert resolved.key == gap.key


@pytest.mark.parametrize("setup", ["no_games", "no_games_result", "yesterdays_values", "other_day"])
def test_does_not_fire_when_it_does_not_apply(setup: str) -> None:
    config = with_expectation(days=["mon", "tue"]) if setup == "other_day" else None
    with rig(config, start=START) as r:
        if setup == "no_games":
            check(r, "games_today", 0)
        elif setup == "no_games_result":
            pass
        elif setup == "yesterdays_values":  # the check runner has not run today
            check(r, "games_today", 10, START - timedelta(hours=14))
        else:
            check(r, "games_today", 10)
        check(r, "predictions_today", 0)
        r.tick_for(40 * 60)
        assert not gaps(r)


def test_a_missing_requirement_is_not_met() -> None:
    with rig(start=START) as r:
        check(r, "games_today", 10)  # predictions_today never measured
        r.tick_for(40 * 60)
        (gap,) = gaps(r)
        assert "predictions_today has no result today" in gap.summary


def test_modes_limit_it_to_days_with_such_a_run() -> None:
    with rig(with_expectation(modes=["same_day"]), start=START) as r:
        check(r, "games_today", 10)
        check(r, "predictions_today", 0)
        r.tick_for(40 * 60)
        assert not gaps(r)  # no same_day run of 2026-02-08 is tracked
        r.ingest("phase1", "started", run_date="2026-02-08", mode="same_day")
        r.tick_for(30)
        assert len(gaps(r)) == 1


def test_a_firing_expectation_survives_a_restart_and_resolves_after_it(tmp_path: Path) -> None:
    db = tmp_path / "pw.db"
    with rig(db=db, start=DEADLINE) as r:
        check(r, "games_today", 10)
        check(r, "predictions_today", 0)
        r.tick_for(60)
        assert len(gaps(r)) == 1
        stop = r.clock.now()
    with rig(db=db, start=stop) as r:
        check(r, "games_today", 10)
        check(r, "predictions_today", 0)
        r.tick_for(120)
        assert not gaps(r)  # not fired again

        def active() -> list[str]:
            return [a.key for a in r.pw.router.active() if a.key.startswith("expectation:")]

        assert len(active()) == 1  # still firing, from the store
        check(r, "predictions_today", 12)
        r.tick_for(30)
        assert active() == []


def test_an_alert_of_a_past_day_resolves_when_the_day_is_over() -> None:
    with rig(start=DEADLINE) as r:
        check(r, "games_today", 10)
        check(r, "predictions_today", 0)
        r.tick_for(60)
        r.clock.set(datetime.fromisoformat("2026-02-09T05:00:30+00:00"))  # 00:00:30 ET
        r.pw.tick()
        (resolved,) = gaps(r, "resolve")
        assert resolved.labels["day"] == "2026-02-08"


@pytest.mark.parametrize(("changes", "field", "words"), [
    ({"require": {"predictions_today": "0"}}, "require.predictions_today", "e.g. '> 0'"),
    ({"when": {"games_today": "=> 1"}}, "when.games_today", ">, >=, <, <=, ==, !="),
    ({"require": {}}, "require", "at least 1"),
    ({"deadline": "8:30"}, "deadline", "pattern"),
    ({"severity": "P7"}, "severity", "critical"),
    ({"days": ["monday"]}, "days", "mon"),
    ({"modes": ["nightly"]}, "modes", "overnight"),
    ({"bogus": 1}, "bogus", "unknown field; allowed: name,"),
])
def test_bad_expectations_name_the_field_and_what_is_allowed(
    changes: dict[str, Any], field: str, words: str,
) -> None:
    with pytest.raises(ConfigError) as exc:
        with_expectation(**changes)
    text = str(exc.value)
    assert f"expectations[0:prediction_gap].{field}" in text, text
    assert words in text, text


def test_expectation_names_are_unique_and_priorities_map() -> None:
    def edit(data: dict[str, Any]) -> None:
        data["pipelines"][0]["expectations"] *= 2
    with pytest.raises(ConfigError, match="repeated: \\['prediction_gap'\\]"):
        edit_config(edit)
    exp = ExpectationConfig.model_validate({"name": "x", "severity": "P1", "deadline": "10:00",
                                            "require": {"rows": ">= 1"}})
    assert exp.severity == "warning"
