"""Judgment per batch: listeners take a stored batch, and each event reaches only the
consumers that can use it (``monitor.interest``)."""

from __future__ import annotations

from collections.abc import Sequence

from monitor.app.phasewatch import Phasewatch
from monitor.clock import FakeClock
from monitor.interest import EventKey, Interest
from monitor.tracker import Update
from tests.factories import make_event


def test_interest_asks_each_consumer_once_per_key() -> None:
    asked: list[tuple[str, EventKey]] = []

    def wants(name: str, key: EventKey) -> bool:
        asked.append((name, key))
        return key[3] == "failed" or name == "all"

    interest = Interest(["all", "failures"], wants)
    failed: EventKey = ("nba", "phase2", "p2_odds_game_lines", "failed")
    started: EventKey = ("nba", "phase2", "p2_odds_game_lines", "started")
    for _ in range(3):
        assert interest[failed] == ("all", "failures")
        assert interest[started] == ("all",)
    assert asked == [("all", failed), ("failures", failed), ("all", started),
                     ("failures", started)]
    assert len(interest) == 2


def test_a_listener_takes_each_stored_batch_once_oldest_first(app: Phasewatch,
                                                              clock: FakeClock) -> None:
    batches: list[list[str]] = []

    def listener(updates: Sequence[Update]) -> None:
        batches.append([u.event.event_id for u in updates])

    app.add_listener(listener)
    at = clock.now().isoformat()
    events = [make_event("phase2", status, at, "p2_odds_game_lines", event_id=f"b-{i}")
              for i, status in enumerate(["started", "progress", "succeeded"])]
    app.ingest(events)
    app.ingest([events[0], make_event("phase2", "started", at, "p2_odds_game_lines",
                                      event_id="b-3")])  # a duplicate is not new
    assert batches == [["b-0", "b-1", "b-2"], ["b-3"]]


def test_each_event_reaches_only_the_slos_that_can_use_it(app: Phasewatch,
                                                          clock: FakeClock) -> None:
    seen: dict[str, list[str]] = {}
    for tracked in app.slo._slos:
        sli = tracked.sli
        original = sli.on_updates

        def spy(updates: Sequence[Update], ledger: object, name: str = tracked.spec.name,
                original: object = original) -> None:
            seen.setdefault(name, []).extend(update.event.event_id for update in updates)
            original(updates, ledger)  # type: ignore[operator]

        sli.on_updates = spy  # type: ignore[method-assign]
    at = clock.now().isoformat()
    app.ingest([make_event("phase3", "succeeded", at, "upcoming_player_game_context",
                           event_id="cov", records=400, expected_records=481),
                make_event("phase2", "failed", at, "p2_odds_game_lines", event_id="fail"),
                make_event("phase2", "progress", at, "p2_odds_game_lines", event_id="prog")])
    # the deadlines count from any event; the success ratios (of processor runs) use the
    # ends of their phase's runs; the coverage SLO a success of its processor; availability
    # and the check SLO no event at all
    assert seen == {
        "nba-predictions-by-10am": ["cov", "fail", "prog"],
        "nba-phase3-overnight-by-6am": ["cov", "fail", "prog"],
        "nba-phase2-success": ["fail"],
        "nba-phase3-success": ["cov"],
        "nba-player-context-coverage": ["cov"],
    }
