"""Remediation playbooks (issue 13, point 5): each replayed through a scenario, counting
what was sent and what people were told; their switches, budget, idempotency and config;
and the context alerts carry."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from dataclasses import replace
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from typing import Any, get_args

import pytest

from monitor.actuator.config import ResetTime
from monitor.actuator.guards import Guards
from monitor.actuator.playbooks.base import PlaybookStore
from monitor.actuator.playbooks.registry import Playbooks
from monitor.actuator.simulated import SimulatedSink
from monitor.app.phasewatch import Phasewatch
from monitor.app.sim.replay import CheckLine
from monitor.config import Config
from monitor.errors import ConfigError
from monitor.events import Status
from tests.actuator_support import COVERAGE, PHASE3_OVERNIGHT, PHASE4, edit_config, rig, run_scenario

MISSING = [f"p{1630100 + i}" for i in range(51)]


def at(text: str) -> datetime:
    return datetime.fromisoformat(text.replace("Z", "+00:00"))


def sent(pw: Phasewatch, phase: str | None = None) -> list[Any]:
    """Every request the simulated targets received, as (target, request, result)."""
    assert pw.actuator is not None
    sink = pw.actuator.ctx.sinks["http"]
    assert isinstance(sink, SimulatedSink)
    return [s for s in sink.sent if phase is None or s[1].phase == phase]


def by_playbook(pw: Phasewatch, name: str) -> list[Any]:
    return [s for s in sent(pw) if f":playbook-{name}-" in s[1].idempotency_key]


def fired(pw: Phasewatch, kind: str) -> list[Any]:
    assert pw.actuator is not None
    return [r for r in pw.actuator.ctx.notifier.raised if r.kind == kind and r.action == "fire"]


def resolved(pw: Phasewatch, kind: str) -> list[Any]:
    assert pw.actuator is not None
    return [r for r in pw.actuator.ctx.notifier.raised if r.kind == kind and r.action == "resolve"]


def details(pw: Phasewatch, kind: str) -> list[str]:
    """The details of the notifications of ``kind`` the router sent."""
    return [d.notification.alert.details for d in pw.router.history
            if d.notification.alert.key.startswith(kind + ":") and d.notification.action == "trigger"]


@pytest.fixture
def scenario(request: pytest.FixtureRequest) -> Iterator[tuple[dict[str, Any], Phasewatch]]:
    name, config = request.param if isinstance(request.param, tuple) else (request.param, None)
    report, pw = run_scenario(name, config)
    try:
        yield report, pw
    finally:
        pw.close()


# --- (a) re-run limited to the missing entities ------------------------------------------

@pytest.mark.parametrize("scenario", ["playbook_rerun_missing.jsonl"], indirect=True)
def test_rerun_missing_sends_only_the_missing_players_once(
    scenario: tuple[dict[str, Any], Phasewatch],
) -> None:
    report, pw = scenario
    (one,) = by_playbook(pw, "rerun-missing-players")
    target, request, result = one
    assert target.kind == "http" and result.outcome == "accepted"
    assert request.phase == "phase3" and request.processors == ("upcoming_player_game_context",)
    assert request.extra == {"player_ids": MISSING}
    assert request.body()["player_ids"] == MISSING
    assert request.idempotency_key == "nba:2026-02-10:same_day:phase3:playbook-rerun-missing-players-1"
    assert request.reason == "recovery"
    # At the first tick after the 15:10 reading; the 15:20 reading (same players, the re-run
    # still running) and the 15:30 clean one do nothing.
    (trigger,) = [t for t in report["triggers"] if t["phase"] == "phase3"]
    assert at("2026-02-10T15:10:00Z") <= datetime.fromisoformat(trigger["time"]) <= at("2026-02-10T15:10:30Z")
    assert (trigger["outcome"], trigger["generation"]) == ("succeeded", 1)
    (taken,) = [p for p in report["playbooks"] if p["outcome"] == "taken"]
    assert (taken["action"], taken["playbook"]) == ("rerun_missing", "rerun-missing-players")
    # Told once (info), and the re-run's effect was seen: no "trigger had no effect".
    (notice,) = fired(pw, "playbook")
    assert notice.severity == "info" and "51 missing entities" in notice.summary
    assert not fired(pw, "trigger_no_effect")
    assert [a["outcome"] for a in pw.actuator.store.audit_rows(  # type: ignore[union-attr]
        kinds=("verification",), filters={"phase": "phase3"})] == ["effect_seen"]


# --- (b) quarantine on a storm, one re-trigger when the precondition holds ---------------

@pytest.mark.parametrize("scenario", ["playbook_quarantine.jsonl"], indirect=True)
def test_quarantine_holds_a_storming_processor_and_releases_it_with_one_retrigger(
    scenario: tuple[dict[str, Any], Phasewatch],
) -> None:
    report, pw = scenario
    final = at("2026-02-11T08:10:00Z")  # all_games_final = 1
    (one,) = sent(pw, "phase3")
    _, request, _ = one
    assert request.processors == ("player_game_summary",)
    assert request.idempotency_key == (
        "nba:2026-02-10:overnight:phase3:playbook-hold-box-scores-until-final-1")
    (trigger,) = [t for t in report["triggers"] if t["phase"] == "phase3"]
    assert final <= datetime.fromisoformat(trigger["time"]) <= final + timedelta(seconds=30)
    # One alert for the storm, resolved when the playbook released it; two info notices.
    (storm,) = fired(pw, "retry_storm")
    (cleared,) = resolved(pw, "retry_storm")
    assert storm.severity == "warning" and storm.labels["processor"] == "player_game_summary"
    assert cleared.at == datetime.fromisoformat(trigger["time"])
    notices = fired(pw, "playbook")
    assert [n.summary.split(":")[1].split()[0] for n in notices] == ["quarantined", "released"]
    assert "all_games_final = 0" in details(pw, "playbook")[0]  # the check it waits for
    # Held, not alerted on: no stuck / overdue while quarantined, nor after the release;
    # the redeliveries of one message are one failed run (its invocation id).
    for kind in ("phase_stuck", "phase_overdue", "failed_runs", "trigger_no_effect",
                 "invocations_hung", "deterministic_failure"):
        assert not fired(pw, kind), kind
    actions = [(p["action"], p["outcome"]) for p in report["playbooks"]]
    assert actions == [("quarantine", "held"), ("release", "taken")]
    assert pw.actuator is not None and pw.actuator.ctx.guards.active() == []


# --- (c) defer to the quota's reset time, then run once ----------------------------------

@pytest.mark.parametrize("scenario", ["playbook_defer.jsonl"], indirect=True)
def test_defer_holds_the_phase_until_midnight_pacific_then_runs_it_once(
    scenario: tuple[dict[str, Any], Phasewatch],
) -> None:
    report, pw = scenario
    reset = at("2026-02-11T08:05:00Z")  # 00:05 America/Los_Angeles
    phase4 = [t for t in report["triggers"] if t["phase"] == "phase4"]
    assert [(t["reason"], t["generation"]) for t in phase4] == [("all_complete", 0), ("recovery", 1)]
    assert datetime.fromisoformat(phase4[1]["time"]) == reset
    (one,) = by_playbook(pw, "precompute-after-quota-reset")
    assert one[1].processors == ("ml_feature_store", "player_daily_cache")  # the two that hit it
    notices = fired(pw, "playbook")
    assert len(notices) == 2
    assert "until 2026-02-11 00:05 America/Los_Angeles" in notices[0].summary
    assert "quota or rate limit" in notices[0].summary
    assert notices[1].at == reset
    assert "ml_feature_store failed at" in details(pw, "playbook")[0]  # its last word
    # Deferred is not late: no overdue / stuck about phase 4 while it waits.
    for kind in ("phase_overdue", "phase_stuck", "trigger_no_effect"):
        assert not [a for a in fired(pw, kind) if a.labels.get("phase") == "phase4"
                    or a.labels.get("target") == "phase5"], kind
    assert [(p["action"], p["outcome"]) for p in report["playbooks"]] == [
        ("defer", "held"), ("run", "taken")]


# --- (d) the cascade, started by a check --------------------------------------------------

def cascade_config() -> Config:
    def edit(data: dict[str, Any]) -> None:
        data["actuator"]["playbooks"].append({
            "name": "cascade-after-fix", "kind": "cascade", "pipeline": "nba", "phase": "phase3",
            "check": "player_context_coverage", "min": 0.8})
    return edit_config(edit)


@pytest.mark.parametrize("scenario", [("playbook_cascade.jsonl", cascade_config())], indirect=True)
def test_cascade_playbook_reruns_the_phases_in_order_once_the_check_passes(
    scenario: tuple[dict[str, Any], Phasewatch],
) -> None:
    report, pw = scenario
    fix = at("2026-02-10T18:00:00Z")
    reruns = [t for t in report["triggers"] if datetime.fromisoformat(t["time"]) >= fix]
    assert [(t["phase"], t["reason"], t["rule"]) for t in reruns] == [
        (p, "recovery", "cascade-1") for p in ("phase3", "phase4", "phase5", "phase6")]
    keys = {s[1].idempotency_key for s in sent(pw) if ":rerun-1" in s[1].idempotency_key}
    assert keys == {f"nba:2026-02-10:same_day:{p}:rerun-1" for p in ("phase3", "phase4", "phase5", "phase6")}
    (taken,) = [p for p in report["playbooks"] if p["outcome"] == "taken"]
    assert (taken["action"], taken["playbook"]) == ("cascade", "cascade-after-fix")
    assert len(fired(pw, "playbook")) == 1 and len(fired(pw, "cascade_finished")) == 1


def test_a_playbook_wants_no_event_of_a_status_it_does_not_name() -> None:
    """The listener passes over the events of other statuses without asking the playbooks:
    over every key the config allows, a playbook wants only events of its ``statuses``."""
    config = cascade_config()
    keys = [(pipeline.id, phase.id, name, status) for pipeline in config.pipelines
            for phase in pipeline.phases for name in (None, *phase.canonical_names)
            for status in get_args(Status)]
    with rig(config) as r:
        (listening,) = [getattr(f, "__self__", None) for f in r.pw.collector.listeners
                        if isinstance(getattr(f, "__self__", None), Playbooks)]
        assert isinstance(listening, Playbooks)
        kinds = {type(p).__name__: p for p in listening.playbooks}
        assert set(kinds) == {"RerunMissing", "Quarantine", "Defer", "Cascade"}
        for playbook in listening.playbooks:
            assert {key[3] for key in keys if playbook.wants(key)} <= playbook.statuses
        assert {key[3] for key in keys if kinds["Defer"].wants(key)} == {"failed"}
        assert listening.statuses == {"failed"}


# --- switches, budget, idempotency -------------------------------------------------------

def rerun_config(**playbook: Any) -> Callable[[dict[str, Any]], None]:
    """An edit of the example's rerun_missing playbook (and ``actuator`` settings)."""
    def edit(data: dict[str, Any]) -> None:
        for key, value in playbook.pop("actuator", {}).items():
            data["actuator"][key] = value
        entry = next(p for p in data["actuator"]["playbooks"] if p["kind"] == "rerun_missing")
        entry.update(playbook)
    return edit



def missing_reading(r: Any, value: float = 3, ids: list[str] | None = None) -> None:
    r.world.apply(CheckLine(type="check", name="player_context_missing", value=value,
                            timestamp=r.clock.now(), entities=ids if ids is not None else ["a", "b", "c"]))


def phase3_done(r: Any) -> None:
    r.complete("phase3", PHASE3_OVERNIGHT)


def playbook_audit(r: Any) -> list[tuple[str, str, str | None]]:
    return [(a["action"], a["outcome"], a["reason"])
            for a in r.pw.actuator.store.audit_rows(kinds=("playbook",))]


@pytest.mark.parametrize(("edit", "reason"), [
    ({"dry_run": True}, None),
    ({"enabled": False}, "disabled"),
    ({"actuator": {"enabled": False}}, "kill_switch"),
    ({"actuator": {"dry_run": True}}, None),
    ({"actuator": {"budget": {"per_run": 0}}}, "budget"),
])
def test_switches_and_budget_stop_a_playbook_and_say_why(edit: dict[str, Any], reason: str | None) -> None:
    with rig(edit_config(rerun_config(**edit))) as r:
        phase3_done(r)
        r.clock.advance(60)
        missing_reading(r)
        r.tick_for(60)
        assert [s for s in r.sent("phase3")] == []
        audit = playbook_audit(r)
        if reason is None:
            assert audit == [("rerun_missing", "dry_run", "rerun_missing")]
        else:
            assert audit == [("rerun_missing", "not_taken", reason)]
        assert (len(r.raised("action_budget_exhausted")) == 1) == (reason == "budget")


def test_one_action_per_reading_across_a_restart_and_at_most_max_reruns(db: str) -> None:
    config = edit_config(rerun_config(max_reruns=2))
    with rig(config, db=db) as r:
        phase3_done(r)
        r.clock.advance(60)
        missing_reading(r)
        r.tick_for(60)
        assert len(r.sent("phase3")) == 1
        now = r.clock.now()
        reading = r.world.checks["player_context_missing"]
    with rig(config, db=db, start=now) as r2:
        r2.world.apply(reading)  # the same reading, seen again after the restart
        r2.tick_for(120)
        assert r2.sent("phase3") == []
        for n in range(2):  # the re-run finishes, a new reading still misses players
            r2.complete("phase3", ["upcoming_player_game_context"])
            r2.clock.advance(60)
            missing_reading(r2, ids=[f"x{n}"])
            r2.tick_for(60)
        assert len(r2.sent("phase3")) == 1  # the second re-run; the third is over max_reruns
        assert [s.request.extra["player_ids"] for s in r2.sent("phase3")] == [["x0"]]
        assert playbook_audit(r2)[-1] == ("rerun_missing", "not_taken", "max_reruns")


def test_a_reading_acts_on_one_run_only_even_once_its_rerun_has_finished() -> None:
    with rig() as r:
        phase3_done(r)  # the overnight run of Jan 17
        r.clock.advance(3600)
        r.complete("phase3", ["upcoming_player_game_context"], run_date="2026-01-18",
                   mode="same_day")
        r.clock.advance(60)
        missing_reading(r)
        r.tick_for(60)
        (first,) = r.sent("phase3")
        assert first.request.run_date == "2026-01-18"
        r.complete("phase3", ["upcoming_player_game_context"], run_date="2026-01-18",
                   mode="same_day")  # the re-run finished: the reading is older than it now
        r.tick_for(600)
        assert len(r.sent("phase3")) == 1  # not the overnight run, which it never measured


def test_a_reading_that_names_its_run_acts_on_that_run() -> None:
    with rig() as r:
        phase3_done(r)
        r.clock.advance(3600)
        r.complete("phase3", ["upcoming_player_game_context"], run_date="2026-01-18",
                   mode="same_day")
        r.clock.advance(60)
        r.pw.actuator.ctx.checks = _Named(r.pw.actuator.ctx.checks)  # type: ignore[union-attr]
        missing_reading(r)
        r.tick_for(60)
        (one,) = r.sent("phase3")
        assert (one.request.run_date, one.request.mode) == ("2026-01-17", "overnight")


def test_a_reading_about_another_pipeline_is_not_acted_on() -> None:
    with rig() as r:
        phase3_done(r)
        r.clock.advance(60)
        r.pw.actuator.ctx.checks = _Named(r.pw.actuator.ctx.checks, "mlb")  # type: ignore[union-attr]
        missing_reading(r)
        r.tick_for(60)
        assert r.sent("phase3") == []


class _Named:
    """A check source whose results name the run date they measured (Jan 17: its only run
    is the overnight one), as a runner's ``run_date_days_ago`` or ``POST /v1/checks`` do."""

    def __init__(self, inner: Any, pipeline: str = "nba") -> None:
        self.inner = inner
        self.pipeline = pipeline

    def latest(self, name: str, run_date: date | None = None) -> Any:
        value = self.inner.latest(name, run_date)
        if value is None:
            return None
        return replace(value, run_date=date(2026, 1, 17), pipeline=self.pipeline)


def released_once_after_the_restart(db: str, now: datetime) -> None:
    """A process restarted on ``db`` at ``now`` keeps the storm quarantined until the
    precondition passes, then re-triggers the processor once and clears the guards."""
    with rig(db=db, start=now) as r2:
        r2.tick_for(600)
        assert r2.sent("phase3") == []  # still held: the precondition has not passed
        r2.world.apply(CheckLine(type="check", name="all_games_final", value=1,
                                 timestamp=r2.clock.now()))
        r2.tick_for(600)
        (one,) = r2.sent("phase3")
        assert one.request.processors == ("player_game_summary",)
        assert r2.pw.actuator.ctx.guards.active() == []  # type: ignore[union-attr]


def test_a_quarantine_cut_off_by_a_restart_is_released_once(db: str) -> None:
    with rig(db=db) as r:
        for _ in range(11):
            r.ingest("phase3", "started", "player_game_summary")
            r.clock.advance(40)
        r.tick_for(60)
        assert [h.kind for h in r.pw.actuator.ctx.guards.active()] == ["retry_storm", "quarantine"]  # type: ignore[union-attr]
        now = r.clock.now()
    released_once_after_the_restart(db, now)


class Killed(BaseException):
    """``kill -9`` (no handler runs)."""


def kill_between_the_two_writes(monkeypatch: pytest.MonkeyPatch) -> None:
    """Kill at the second of a hold's two writes (its row, its hold on the phase), in
    whichever order the playbook makes them."""
    writes: list[str] = []
    create, hold = PlaybookStore.create, Guards.hold

    def second_kills(name: str, write: Callable[..., Any]) -> Callable[..., Any]:
        def wrapped(*args: Any, **kwargs: Any) -> Any:
            writes.append(name)
            if len(writes) == 2:
                raise Killed
            return write(*args, **kwargs)
        return wrapped

    monkeypatch.setattr(PlaybookStore, "create", second_kills("row", create))
    monkeypatch.setattr(Guards, "hold", second_kills("hold", hold))


def test_a_quarantine_cut_off_between_its_two_writes_is_released_once(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
) -> None:
    """The storm is quarantined, and phasewatch is killed between the quarantine's two writes
    (its row and its hold on the phase, in whichever order they are made). After the
    restart it is still held and released once the precondition passes: one re-trigger.
    Measured before the fix (row first): the restart found the row without its hold, took
    it for a processor that had succeeded, and never re-triggered; the phase stayed behind
    the storm guard until a person retried it."""
    db = str(tmp_path / "pw.db")
    kill_between_the_two_writes(monkeypatch)
    with rig(db=db) as r:
        for _ in range(11):
            r.ingest("phase3", "started", "player_game_summary")
            r.clock.advance(40)
        with pytest.raises(Killed):
            r.tick_for(60)
        now = r.clock.now()
    monkeypatch.undo()
    released_once_after_the_restart(db, now)


def test_a_deferral_cut_off_between_its_two_writes_runs_once_at_the_reset(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
) -> None:
    """ml_feature_store hits the quota; phasewatch is killed between the deferral's two
    writes. The restart judges the stored failure again: the phase is deferred (nothing
    retried against the quota) and runs once at the reset time. Measured before the fix
    (row first): the judged-again failure joined the row, whose hold was never placed, and
    the next look ended it as "a person retried the phase": no run at the reset time."""
    db = str(tmp_path / "pw.db")
    quota = "RESOURCE_EXHAUSTED: Quota exceeded for quota metric 'Load jobs per table per day'"
    with rig(db=db) as r:
        phase3_done(r)
        r.complete("phase4", PHASE4[:3])
        kill_between_the_two_writes(monkeypatch)
        with pytest.raises(Killed):
            r.ingest("phase4", "failed", "ml_feature_store", error=quota)
        now = r.clock.now()
    monkeypatch.undo()
    with rig(db=db, start=now) as r2:
        r2.tick_for(60)
        assert [g.kind for g in r2.pw.actuator.ctx.guards.active()] == ["deferred"]  # type: ignore[union-attr]
        r2.tick_for(6 * 3600, step=600)  # past 00:05 America/Los_Angeles
        runs = [s.request for s in r2.sent("phase4")
                if s.request.idempotency_key.endswith(":playbook-precompute-after-quota-reset-1")]
        assert len(runs) == 1 and runs[0].processors == ("ml_feature_store",)
        assert runs[0].rule == "playbook-precompute-after-quota-reset"
        assert [a[:2] for a in playbook_audit(r2)] == [("defer", "held"), ("run", "taken")]


def test_a_processor_that_succeeds_ends_its_quarantine_without_a_trigger() -> None:
    with rig() as r:
        for _ in range(11):
            r.ingest("phase3", "started", "player_game_summary")
            r.clock.advance(40)
        r.tick_for(60)
        r.ingest("phase3", "succeeded", "player_game_summary", **COVERAGE["player_game_summary"])
        r.tick_for(60)
        r.world.apply(CheckLine(type="check", name="all_games_final", value=1,
                                timestamp=r.clock.now()))
        r.tick_for(120)
        assert r.sent("phase3") == []
        assert playbook_audit(r)[-1] == ("release", "cleared", "hold_cleared")


def test_a_deferral_whose_processors_succeed_before_the_reset_is_cancelled() -> None:
    quota = "RESOURCE_EXHAUSTED: Quota exceeded for quota metric 'Load jobs per table per day'"
    with rig() as r:
        phase3_done(r)
        r.complete("phase4", PHASE4[:3])
        r.ingest("phase4", "failed", "ml_feature_store", error=quota)
        r.tick_for(60)
        assert [g.kind for g in r.pw.actuator.ctx.guards.active()] == ["deferred"]  # type: ignore[union-attr]
        r.complete("phase4", ["ml_feature_store", "player_daily_cache"])
        r.tick_for(24 * 3600, step=600)
        assert [s.request.idempotency_key for s in r.sent("phase4")] == ["nba:2026-01-17:overnight:phase4"]
        assert playbook_audit(r)[-1][:2] == ("run", "cleared")


# --- config -------------------------------------------------------------------------------

@pytest.mark.parametrize(("playbook", "words"), [
    ({"kind": "rerun_missing", "phase": "phase9", "check": "c"}, ["phase9", "cannot be triggered"]),
    ({"kind": "rerun_missing", "phase": "phase2", "check": "c"}, ["phase2", "allowed: ['phase3'"]),
    ({"kind": "rerun_missing", "phase": "phase3", "check": "c", "processors": ["nope"]},
     ["processors ['nope']", "allowed"]),
    ({"kind": "quarantine", "phase": "phase3"}, ["release"]),
    ({"kind": "defer", "phase": "phase4", "categories": ["weather"],
      "until": {"at": "00:05", "timezone": "America/Los_Angeles"}}, ["weather", "guards.categories"]),
    ({"kind": "defer", "phase": "phase4", "until": {"cron": "61 * * * *", "timezone": "UTC"}},
     ["not a valid cron"]),
    ({"kind": "defer", "phase": "phase4", "until": {"at": "00:05", "cron": "5 0 * * *",
                                                    "timezone": "UTC"}}, ["not both"]),
    ({"kind": "defer", "phase": "phase4", "until": {"at": "00:05", "timezone": "Mars/Base"}},
     ["unknown timezone"]),
    ({"kind": "teleport", "phase": "phase4"}, ["kind", "rerun_missing"]),
])
def test_a_bad_playbook_is_a_config_error_naming_the_field(playbook: dict[str, Any],
                                                           words: list[str]) -> None:
    def edit(data: dict[str, Any]) -> None:
        data["actuator"]["playbooks"] = [{"name": "bad", "pipeline": "nba", **playbook}]
    with pytest.raises(ConfigError) as caught:
        edit_config(edit)
    text = str(caught.value)
    assert "playbooks" in text
    for word in words:
        assert word in text, text


def test_reset_times_in_their_timezone_across_daylight_saving() -> None:
    fixed = ResetTime(at="00:05", timezone="America/Los_Angeles")
    first = fixed.next_after(datetime(2026, 3, 7, 12, 0, tzinfo=UTC))
    assert first == datetime(2026, 3, 8, 8, 5, tzinfo=UTC)  # PST
    assert fixed.next_after(first) == datetime(2026, 3, 9, 7, 5, tzinfo=UTC)  # PDT
    cron = ResetTime(cron="5 0 * * 1", timezone="America/Los_Angeles")  # Mondays
    assert cron.next_after(datetime(2026, 3, 7, 12, 0, tzinfo=UTC)) == datetime(2026, 3, 9, 7, 5, tzinfo=UTC)


# --- alerts carry context ----------------------------------------------------------------

def test_an_alert_carries_the_jobs_last_decision_and_the_checks_it_depends_on(db: str) -> None:
    with rig(db=db) as r:
        phase3_done(r)
        r.complete("phase4", PHASE4[:4])
        r.clock.advance(60)
        r.world.apply(CheckLine(type="check", name="feature_store_clean_player_pct", value=44,
                                timestamp=r.clock.now()))
        r.ingest("phase4", "succeeded", "ml_feature_store",
                 attributes={"clean_players": "212", "decision": "wrote partial features"})
        r.tick_for(20 * 60)
        (text,) = details(r.pw, "trigger_deferred")
        assert "last decision reported: ml_feature_store succeeded at 2026-01-18" in text
        assert "decision=wrote partial features" in text
        assert "check feature_store_clean_player_pct = 44" in text
