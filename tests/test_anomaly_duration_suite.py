"""The duration detector's quality on a labelled suite, through ingest (``duration_suite.py``)."""

from __future__ import annotations

from monitor.config import Config
from tests.duration_suite import PROCESSORS, build_world, describe, run_suite


def test_the_suite_is_what_it_says() -> None:
    for seed in (0, 1, 2):
        world = build_world(seed)
        assert {inj.kind for inj in world.injections} == {"slow run", "stuck run", "slowdown",
                                                          "speedup"}
        assert len(world.injections) == 3 * len(PROCESSORS)
        assert world.dst_crossings >= 1  # a processor run straddles a daylight-saving change
        days = (world.season.last - world.season.first).days + 1
        assert 0 < days - len(world.run_dates) < 0.1 * days  # a few days without a run
        no_games = [run for run in world.runs if run[-1]["expected_records"] == 0]
        assert len(no_games) >= 8  # the All-Star break and the holidays
        assert any(processor == "" for _, processor in world.labels.windows)  # phases too


def test_duration_detector_f1_on_the_suite(nba_config: Config) -> None:
    score = run_suite(nba_config)
    assert score.detected + score.missed >= 90
    assert score.f1 >= 0.95, "\n".join(describe(score))
