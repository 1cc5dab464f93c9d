"""Config: the examples model the pipeline facts, and bad config names the field."""

from __future__ import annotations

from pathlib import Path

import pytest
from click.testing import CliRunner

from monitor.app.cli.main import main
from monitor.config import load_config, parse_config
from monitor.errors import ConfigError

ROOT = Path(__file__).resolve().parents[1]
NBA = ROOT / "examples" / "nba.yaml"
MLB = ROOT / "examples" / "mlb.yaml"


def test_bundled_default_is_the_nba_example() -> None:
    assert load_config(None) == load_config(NBA)


def test_nba_example_models_the_pipeline_facts() -> None:
    nba = load_config(NBA).pipeline_map["nba"]
    assert nba.timezone == "America/New_York"
    assert [p.id for p in nba.phases] == [
        "phase1", "phase2", "phase3", "phase4", "phase5", "grading", "phase6"
    ]
    p2 = nba.phase_map["phase2"].expectation("overnight")
    assert set(p2.critical) == {"p2_odds_game_lines", "p2_nbacom_gamebook_pdf", "p2_nbacom_boxscores"}
    assert set(p2.expected) == set(p2.critical) | {"p2_bigdataball_pbp", "p2_odds_player_props"}
    assert "bdl_player_boxscores" not in p2.expected  # disabled: never expected
    p3 = nba.phase_map["phase3"]
    overnight = p3.expectation("overnight")
    assert len(overnight.expected) == 5
    assert set(overnight.critical) == {"player_game_summary", "upcoming_player_game_context"}
    for mode in ("same_day", "tomorrow"):
        exp = p3.expectation(mode)
        assert exp.critical == ("upcoming_player_game_context",)
        assert exp.required_count == 1
    assert p3.processor("player_game_summary").depends_on == ("team_offense_game_summary",)
    p4 = nba.phase_map["phase4"].expectation("overnight")
    assert set(p4.critical) == {"player_daily_cache", "ml_feature_store"}
    assert len(p4.expected) == 5
    assert nba.upstream_of("grading") == ("phase3",)
    assert nba.downstream_of("phase3") == ("phase4", "grading")
    topics = [t.topic for p in nba.phases for t in p.triggers if t.kind == "pubsub"]
    assert topics == ["nba-phase4-trigger", "nba-predictions-trigger", "nba-grading-trigger",
                      "nba-phase6-export-trigger"]
    assert nba.services["nba-phase3-analytics-processors"].identity == "analytics-processor"
    # aliases map the producers' class names (incident 13's missing name map)
    assert nba.phase_map["phase2"].canonical_names["NbacPlayerBoxscoreProcessor"] == "p2_nbacom_boxscores"


def test_mode_rules_follow_run_date_vs_today() -> None:
    from datetime import date

    nba = load_config(NBA).pipeline_map["nba"]
    today = date(2026, 1, 18)
    assert nba.mode_for(date(2026, 1, 17), today) == "overnight"
    assert nba.mode_for(today, today) == "same_day"
    assert nba.mode_for(date(2026, 1, 19), today) == "tomorrow"


def test_mlb_example_validates() -> None:
    mlb = load_config(MLB).pipeline_map["mlb"]
    assert mlb.phase_map["phase3"].processor_names == {"pitcher_game_summary", "batter_game_summary"}
    assert mlb.phase_map["phase4"].processor_names == {"pitcher_features", "lineup_k_analysis"}


BAD = [
    ("pipelines: []", "pipelines", "at least 1"),
    ("pipelines: [{id: x, timezone: Mars/Olympus, phases: [{id: a}]}]", "pipelines[0:x].timezone",
     "unknown timezone"),
    ("pipelines: [{id: x, timezone: UTC, phases: [{id: a, processors: [{name: p, priority: high}]}]}]",
     "pipelines[0:x].phases[0:a].processors[0:p].priority", "'critical' or 'optional'"),
    ("pipelines: [{id: x, timezone: UTC, colour: red, phases: [{id: a}]}]", "pipelines[0:x].colour",
     "unknown field; allowed: id, description, timezone"),
    ("pipelines: [{id: x, timezone: UTC, phases: [{id: a}, {id: a}]}]", "pipelines[0:x]",
     "phase ids must be unique"),
    ("pipelines: [{id: x, timezone: UTC, phases: [{id: a, services: [nope]}]}]", "pipelines[0:x]",
     "allowed: []"),
    ("pipelines: [{id: x, timezone: UTC, phases: [{id: a, processors: [{name: p}], "
     "modes: {overnight: {expected: [q]}}}]}]", "pipelines[0:x].phases[0:a]", "allowed: enabled"),
    ("pipelines: [{id: x, timezone: UTC, phases: [{id: a, triggers: [{kind: smoke}]}]}]",
     "pipelines[0:x].phases[0:a].triggers[0]", "'http', 'pubsub', 'log'"),
    ("pipelines: [{id: x, timezone: UTC, phases: [{id: a, upstream: [b]}, {id: b}]}]",
     "pipelines[0:x]", "phases listed before it"),
    ("pipelines: [{id: x, timezone: UTC, modes: [{mode: backfill, run_date: today}], phases: [{id: a}]}]",
     "pipelines[0:x]", "backfill is never derived"),
    ("pipelines: [\n  - id: x", "line", "not valid YAML"),
    ("42", "(top)", "mapping"),
]


@pytest.mark.parametrize(("text", "field", "message"), BAD)
def test_bad_config_names_field_and_allowed(text: str, field: str, message: str) -> None:
    with pytest.raises(ConfigError) as info:
        parse_config(text, "bad.yaml")
    rendered = str(info.value)
    assert rendered.startswith("bad.yaml: ")
    assert any(p.field.startswith(field) for p in info.value.problems), rendered
    assert message in rendered


def test_config_validate_cli(tmp_path: Path) -> None:
    runner = CliRunner()
    ok = runner.invoke(main, ["config", "validate", str(NBA)])
    assert ok.exit_code == 0, ok.output
    bad = tmp_path / "bad.yaml"
    bad.write_text(NBA.read_text().replace("priority: critical,", "priority: urgent,", 1))
    result = runner.invoke(main, ["config", "validate", str(bad)])
    assert result.exit_code == 2
    assert "processors[0:p2_odds_game_lines].priority" in result.output
    assert "'urgent'" in result.output and "'critical' or 'optional'" in result.output
    missing = runner.invoke(main, ["config", "validate", str(tmp_path / "nope.yaml")])
    assert missing.exit_code == 2
    assert "cannot read" in missing.output


def test_config_is_parsed_by_libyaml_when_pyyaml_has_it() -> None:
    """The pure-Python parser took 0.2 s of every cold command (a third of `status`)."""
    import yaml

    from monitor.strict_yaml import UniqueKeyLoader, load_unique

    if yaml.__with_libyaml__:
        assert issubclass(UniqueKeyLoader, yaml.CSafeLoader)
    with pytest.raises(yaml.YAMLError, match="duplicate key 'a'"):
        load_unique("a: 1\nb: {c: 1}\na: 2\n")
