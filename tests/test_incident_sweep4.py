"""A fourth sweep of incidents phasewatch never saw, of the classes in ../shared/incidents.md.

The first three sweeps (tests/test_incident_sweep.py, test_infra_sweep.py,
test_incident_sweep3.py, test_restart_sweep.py, test_channel_failing.py) covered the
pipeline's failures, its surroundings, time and history, restarts and the channels. These
are the stories around what people and other tools report to phasewatch and do beside it,
and what recurs night after night: data checks re-measured for run dates already graded
or pushed for tomorrow, maintenance silences, a person running a phase by hand after
phasewatch's trigger failed, one root cause failing three run modes at once, a processor
that never reports, an optional one failing every night, and a slow creep of durations
over weeks. Each is driven live on a fake
clock with the real PagerDuty and Slack clients against local servers (the third sweep's
``night``), and each test counts what each channel was told and what the actuator did.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import date, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

from monitor.checks.result import CheckResult
from monitor.clock import FakeClock
from monitor.events import Event
from tests.actuator_support import COVERAGE, PHASE3_OVERNIGHT, PHASE4
from tests.factories import make_event
from tests.test_alerts_channels import PagerDutyFake
from tests.test_alerts_support import Peer
from tests.test_incident_sweep3 import (
    START,
    answered,
    channels,
    ev,
    feed,
    minute,
    phase3_done,
    predictions,
)
from tests.test_infra_sweep import Night, paged_once, pages, phase4_done, posts
from tests.test_infra_sweep import at as infra_at

__all__ = ["channels"]  # the third sweep's local Slack and PagerDuty (a fixture)

Peers = tuple[Peer, Peer, PagerDutyFake]


def night(tmp_path: Path, peers: Peers, monkeypatch: pytest.MonkeyPatch, start: datetime,
          edit: Callable[[dict[str, Any]], None] | None = None, clock: FakeClock | None = None,
          store_checks: bool = True) -> Night:
    """The third sweep's night from ``start``; the actuator reads the check store, as live."""
    hook, pd_peer, _ = peers
    return Night(tmp_path / "pw.db", f"{pd_peer.url}/v2/enqueue", f"{hook.url}/hook", monkeypatch,
                 start=start, clock=clock, edit=edit, store_checks=store_checks)


def utc(text: str) -> datetime:
    return datetime.fromisoformat(text.replace("Z", "+00:00"))


def check(n: Night, name: str, value: float, run_date: str, at: datetime | None = None,
          source: str = "api") -> None:
    """A data check's result about ``run_date``, as ``POST /v1/checks`` records it."""
    n.pw.checks.record([CheckResult(name, value, at or n.clock.now(), None,
                                    date.fromisoformat(run_date), "nba", source)])


def own(texts: list[str]) -> list[str]:
    """Slack's messages but those every such night has: the scheduler jobs that never
    report (nothing runs in these stories) and the 08:00 ET daily summary."""
    return [x for x in texts if "did not fire" not in x and "daily health" not in x]


def headline(text: str) -> str:
    """A Slack message's first words: its level, and the alert it is about."""
    return text.split(":")[0]


# --------------------------------------------------------------------------- data checks


def test_re_measuring_dates_already_graded_neither_resolves_nor_pages_tonights_check(
    tmp_path: Path, channels: Peers, monkeypatch: pytest.MonkeyPatch,
) -> None:
    """06:00 ET: game completeness for last night (2026-02-19) is 0.4, critical: paged.
    06:30 ET the data team re-validates the week after a backfill: each of 02-12..02-18
    measured now reads 1.0, and 02-11 (a date whose raw files were purged) reads 0.3.
    Those are news about dates long graded, not about tonight. Ideal: the page stays
    open through the re-validation, nothing is paged about 02-11, and the page resolves at
    08:00 ET when last night's box scores are re-run (0.98 for 02-19). Measured before
    the fix: the re-validation cleared the check (last night still at 0.4) and 02-11's
    0.3 breached it again 80 s later, so the check was "flapping" and last night's real
    fix at 08:00 ET resolved nothing: PagerDuty had the trigger and no resolve by 08:10."""
    n = night(tmp_path, channels, monkeypatch, utc("2026-02-20T10:55:00Z"))
    hook, pd_peer, pd = channels
    try:
        n.until(utc("2026-02-20T11:00:00Z"))
        check(n, "game_completeness", 0.4, "2026-02-19")
        n.until(utc("2026-02-20T11:30:00Z"))
        for i, day in enumerate(range(12, 19)):
            n.until(utc("2026-02-20T11:30:00Z") + timedelta(seconds=10 * i))
            check(n, "game_completeness", 1.0, f"2026-02-{day:02d}")
        n.until(utc("2026-02-20T11:31:20Z"))
        check(n, "game_completeness", 0.3, "2026-02-11")
        n.until(utc("2026-02-20T13:00:00Z"))
        check(n, "game_completeness", 0.98, "2026-02-19")
        n.until(utc("2026-02-20T13:10:00Z"))
        levels = n.pw.checks.levels()
    finally:
        n.close()
    key = "check:check=game_completeness,pipeline=nba"
    paged_once(pd_peer, pd, key)
    resolve = [e for e in pd_peer.accepted() if e["event_action"] == "resolve"]
    assert len(resolve) == 1
    texts = own(posts(hook))
    assert [headline(x) for x in texts] == ["CRITICAL", "RESOLVED after 2 h 00 min"]
    assert "2026-02-19" in texts[0] and "0.4" in texts[0]
    assert levels["game_completeness"] == "ok"


def test_a_recount_of_yesterdays_predictions_does_not_close_todays_prediction_gap(
    tmp_path: Path, channels: Peers, monkeypatch: pytest.MonkeyPatch,
) -> None:
    """2026-02-20, 9 games; the prediction count for today is 0 at 08:30 ET: the gap is
    paged. At 08:45 ET an analyst re-counts yesterday's predictions after a REGENERATE
    (`phasewatch check record --name predictions_today --value 380 --run-date
    2026-02-19`). Today still has none. Ideal: the page stays open until today's
    predictions land (09:30 ET), then resolves once. Measured before the fix: two pages
    and two resolves (the re-count of yesterday resolved today's page at 08:46, the next
    count of today paged it again at 08:46)."""
    n = night(tmp_path, channels, monkeypatch, utc("2026-02-20T11:00:00Z"))
    hook, pd_peer, pd = channels
    try:
        check(n, "games_today", 9, "2026-02-20")
        for minute in range(0, 150, 15):  # the count of today's predictions every 15 min
            n.until(utc("2026-02-20T12:00:00Z") + timedelta(minutes=minute))
            if minute == 105:
                n.until(utc("2026-02-20T13:45:00Z"))
                check(n, "predictions_today", 380, "2026-02-19", source="cli")
                n.until(utc("2026-02-20T13:45:30Z"))
            check(n, "predictions_today", 0, "2026-02-20")
        n.until(utc("2026-02-20T14:30:00Z"))
        check(n, "predictions_today", 352, "2026-02-20")
        n.until(utc("2026-02-20T14:40:00Z"))
    finally:
        n.close()
    assert pages(pd_peer) == [("trigger", "expectation"), ("resolve", "expectation")]
    assert dict(pd.opened) == {pd_peer.accepted()[0]["dedup_key"]: 1} and pd.open == {}
    assert [headline(x) for x in own(posts(hook))] == ["CRITICAL", "RESOLVED after 1 h 01 min"]


def test_tomorrows_counts_do_not_close_todays_prediction_gap(
    tmp_path: Path, channels: Peers, monkeypatch: pytest.MonkeyPatch,
) -> None:
    """2026-02-20, 9 games, no prediction all day: the gap is paged at 08:30 ET. In the
    evening the `tomorrow` run's own validation pushes its counts for 2026-02-21: 0 games
    at 19:00 ET (no games tomorrow), then at 20:30 ET 310 predictions (a run of the 22nd's
    props, filed under the 21st by mistake). Neither is about today. Ideal: today's page
    stays open until today is over (midnight ET), reminded every 4 h, then resolves once.
    Measured before the fix: tomorrow's "0 games" resolved today's page at 19:04 ET (the
    expectation no longer applied to "today")."""
    n = night(tmp_path, channels, monkeypatch, utc("2026-02-20T11:00:00Z"))
    hook, pd_peer, pd = channels
    try:
        check(n, "games_today", 9, "2026-02-20")
        check(n, "predictions_today", 0, "2026-02-20")
        n.until(utc("2026-02-21T00:00:00Z"), step_s=120)  # 19:00 ET
        check(n, "games_today", 0, "2026-02-21")
        n.until(utc("2026-02-21T01:30:00Z"), step_s=120)
        check(n, "predictions_today", 310, "2026-02-21")
        n.until(utc("2026-02-21T05:10:00Z"), step_s=120)
        told = [(d.notification.action, d.notification.at) for d in n.pw.router.history
                if d.notification.alert.name == "expectation"]
    finally:
        n.close()
    # The page, reminded every 4 h (12:32, 16:32, 20:32 ET), resolved when the day is over.
    assert pages(pd_peer) == [("trigger", "expectation")] * 4 + [("resolve", "expectation")]
    assert len(pd.opened) == 1 and pd.open == {}
    (_, paged), *_, (_, resolved) = told
    assert utc("2026-02-20T13:30:00Z") <= paged <= utc("2026-02-20T13:32:00Z")
    slack = [headline(x) for x in own(posts(hook))]
    assert slack[:-1] == ["CRITICAL", *["Still firing"] * 3] and slack[-1].startswith("RESOLVED")
    assert utc("2026-02-21T05:00:00Z") <= resolved <= utc("2026-02-21T05:04:00Z")  # midnight ET


# --------------------------------------------------------------------------- silences

COORDINATOR = "prediction-coordinator"


def service_told(n: Any) -> list[tuple[str, datetime]]:
    """(action, time) of every notification of ``service_unhealthy`` the router sent."""
    return [(d.notification.action, d.notification.at) for d in n.pw.router.history
            if d.notification.alert.name == "service_unhealthy"]


def phase5_sent(n: Night) -> list[str]:
    """When the actuator's Phase 5 triggers succeeded (the audit log)."""
    audit = n.pw.actuator.store.audit_rows(kinds=("trigger",))  # type: ignore[union-attr]
    return [a["time"] for a in audit if a["phase"] == "phase5" and a["outcome"] == "succeeded"]


def maintenance(tmp_path: Path, peers: Peers, monkeypatch: pytest.MonkeyPatch, back: float) -> Night:
    """06:55 UTC: the on-call silences the coordinator for the hour of its Cloud SQL
    maintenance (07:00-07:55). It is down from 07:00 to minute ``back``; the overnight
    run's Phase 4 finishes at 07:20 meanwhile; Phase 5 answers the trigger it gets."""
    n = night(tmp_path, peers, monkeypatch, START, store_checks=False)
    n.until(START + timedelta(minutes=115))
    n.pw.alerting.silences.create({"matchers": [f"service={COORDINATOR}"], "author": "oncall",
                                   "comment": "Cloud SQL maintenance", "duration": "1h"},
                                  n.clock.now())
    n.until(START + timedelta(minutes=120))
    n.health(COORDINATOR, "fail")
    feed(n, phase3_done(100) + answered(100) + [ev("phase4", s, m, p) for p in PHASE4
                                                 for s, m in (("started", 102), ("succeeded", 140))])
    n.until(START + timedelta(minutes=back))
    n.health(COORDINATOR, "pass")
    n.until(START + timedelta(minutes=back + 2))
    sent = phase5_sent(n)
    feed(n, predictions(back + 1))
    n.until(START + timedelta(minutes=back + 60))
    assert sent and len(phase5_sent(n)) == 1
    return n


def test_a_maintenance_over_inside_its_silence_tells_nobody_anything(
    tmp_path: Path, channels: Peers, monkeypatch: pytest.MonkeyPatch,
) -> None:
    """The maintenance ends at 07:45, inside its silence. Ideal: nobody is told anything,
    during the silence or after it (no page, no resolve for what nobody was told); the
    held Phase 5 trigger goes once, when the coordinator is back. A guard: phasewatch
    behaved so before this sweep."""
    hook, pd_peer, _ = channels
    n = maintenance(tmp_path, channels, monkeypatch, back=165)
    try:
        sent = phase5_sent(n)
    finally:
        n.close()
    assert pages(pd_peer) == []
    assert [x for x in own(posts(hook)) if "degraded" not in x] == []
    assert minute(165) <= sent[0] <= minute(167)


def test_a_maintenance_overrunning_its_silence_is_paged_once_when_the_silence_ends(
    tmp_path: Path, channels: Peers, monkeypatch: pytest.MonkeyPatch,
) -> None:
    """The maintenance overruns: the coordinator is back only at 08:30, 35 min after its
    silence ended. Ideal: one page when the silence ends (07:55, the coordinator still
    down), not its consequences (the held trigger), one resolve at 08:30; Phase 5 once."""
    hook, pd_peer, pd = channels
    n = maintenance(tmp_path, channels, monkeypatch, back=210)
    try:
        sent = phase5_sent(n)
        told = service_told(n)
    finally:
        n.close()
    assert pages(pd_peer) == [("trigger", "service_unhealthy"), ("resolve", "service_unhealthy")]
    assert len(pd.opened) == 1 and pd.open == {}
    (_, paged), (_, resolved) = told
    ended = START + timedelta(minutes=175)
    assert ended <= paged <= ended + timedelta(minutes=1)
    assert START + timedelta(minutes=210) <= resolved <= START + timedelta(minutes=215)
    assert [headline(x) for x in own(posts(hook)) if "degraded" not in x] == [
        "CRITICAL", "RESOLVED after 1 h 30 min"]
    assert minute(210) <= sent[0] <= minute(212)


# --------------------------------------------------------------------------- by hand


def by_hand(m: float) -> list[Event]:
    """The on-call runs the predictions job by hand at ``m`` (the infrastructure sweep's
    minutes): Phase 5 and the export run, for the overnight run of 2026-01-17."""
    out = [("phase5", "started", m + 1, "prediction-coordinator"),
           ("phase5", "succeeded", m + 2, "prediction-coordinator"),
           ("phase5", "started", m + 2, "prediction-worker"),
           ("phase5", "succeeded", m + 14, "prediction-worker"),
           ("phase6", "started", m + 16, None), ("phase6", "succeeded", m + 19, None)]
    return [make_event(phase, status, infra_at(t).isoformat(), proc, run_date="2026-01-17",
                       mode="overnight") for phase, status, t, proc in out]


@pytest.mark.parametrize("status", [403, 503])
def test_a_phase_run_by_hand_after_its_trigger_failed_ends_the_page_and_is_not_sent_again(
    tmp_path: Path, channels: Peers, monkeypatch: pytest.MonkeyPatch, status: int,
) -> None:
    """Phase 4 finishes at 07:10 and the coordinator's /start refuses phasewatch's trigger:
    403 (a redeploy stripped roles/run.invoker: failed for good at once) or 503 (retried,
    escalated after 15 min). The person paged fixes nothing in phasewatch: at 07:40 they
    run the predictions job by hand (`gcloud scheduler jobs run`), and Phase 5 and the
    export run by 07:59. Ideal: one page, resolved when the phase starts by the other
    path; phasewatch sends nothing after it (the 503's pending retry is not sent into a
    running phase) and reminds nobody. A guard: phasewatch behaved so before this sweep
    (the pending retry superseded, the failed-for-good row's alert resolved by the start)."""
    hook, pd_peer, pd = channels
    answer = lambda request: (status, {}, "no")  # noqa: E731
    with phase4_done(tmp_path, channels, monkeypatch, answer) as (n, target):
        n.until(infra_at(40))
        calls = len(target.requests)
        feed(n, by_hand(40))
        n.until(infra_at(40 + 5 * 60), step_s=60)
        audit = n.pw.actuator.store.audit_rows(kinds=("trigger",))  # type: ignore[union-attr]
        active = [a.key for a in n.pw.router.active() if a.name != "scheduler_job_missed"]
    assert len(target.requests) == calls  # nothing after the phase ran by hand
    assert [a["outcome"] for a in audit if a["phase"] == "phase5" and a["time"] > infra_at(41).isoformat()
            and a["outcome"] == "succeeded"] == []
    assert pages(pd_peer) == [("trigger", "trigger_undelivered"), ("resolve", "trigger_undelivered")]
    assert len(pd.opened) == 1 and pd.open == {}
    slack = own(posts(hook))
    assert [headline(x) for x in slack] == ["CRITICAL", f"RESOLVED after {31 if status == 403 else 29} min"]
    assert active == []


# --------------------------------------------------------------------------- one cause, three runs

IMPORT = "ModuleNotFoundError: No module named 'google.cloud.firestore'"
CONTEXT = "upcoming_player_game_context"
RUNS = {"overnight": ("2026-02-17", 360), "same_day": ("2026-02-18", 630),
        "tomorrow": ("2026-02-19", 1020)}  # run date, and the minute (from 00:00 ET) it runs


def crashing_run(mode: str) -> list[Event]:
    """``mode``'s Phase 3: every processor but the player context succeeds; the context
    crashes on every Pub/Sub delivery (11 times, 90 s apart) on the same ImportError."""
    run_date, m = RUNS[mode]
    others = ([p for p in PHASE3_OVERNIGHT if p != CONTEXT] if mode == "overnight"
              else ["upcoming_team_game_context"])
    out = [e for p in others for e in (ev("phase3", "started", m, p, run_date=run_date, mode=mode),
                                        ev("phase3", "succeeded", m + 5, p, run_date=run_date, mode=mode,
                                           **COVERAGE.get(p, {})))]
    for i in range(11):
        inv = {"invocation_id": f"{mode}-{i}"}
        out += [ev("phase3", "started", m + 1.5 * i, CONTEXT, run_date=run_date, mode=mode, **inv),
                ev("phase3", "failed", m + 1.5 * i + 0.5, CONTEXT, run_date=run_date, mode=mode,
                   error=IMPORT, **inv)]
    return out


def test_one_broken_deploy_failing_three_run_modes_is_one_page(
    tmp_path: Path, channels: Peers, monkeypatch: pytest.MonkeyPatch,
) -> None:
    """A deploy at 05:00 ET leaves the analytics image without google-cloud-firestore:
    the player context crashes on import in the overnight run (06:00 ET), the same-day
    run (10:30 ET) and tomorrow's run (17:00 ET), each on every Pub/Sub delivery. The
    fix is deployed at 18:30 ET and the context succeeds in all three runs. Each run's
    Phase 4 backstop (07:00, 11:00, 17:30 ET) decides a trigger that the coverage gate
    holds (the context produced nothing). Ideal: one page (one cause, not one per run
    mode), reminded every 4 h, one resolve; each run's Phase 4 sent once, after the fix.
    Measured before the fix: four pages, not one: each run's held Phase 4 trigger
    ("trigger of phase4 ... held 3 times by coverage") paged on its own, reminded, so
    PagerDuty got 10 triggers and 4 resolves for one missing library."""
    hook, pd_peer, pd = channels
    n = night(tmp_path, channels, monkeypatch, START, store_checks=False)
    events = [e for mode in RUNS for e in crashing_run(mode)]
    events += [ev("phase3", "succeeded", 1110, CONTEXT, run_date=run_date, mode=mode,
                  **COVERAGE[CONTEXT]) for mode, (run_date, _) in RUNS.items()]
    # Phase 4 (and the overnight run's grading) answer the triggers sent at the fix.
    events += [ev("phase4", "started", 1118, "player_daily_cache", run_date=run_date, mode=mode)
               for mode, (run_date, _) in RUNS.items()]
    events += [ev("grading", "started", 1118, run_date="2026-02-17", mode="overnight")]
    try:
        feed(n, events)
        n.until(START + timedelta(minutes=1140), step_s=60)
        audit = n.pw.actuator.store.audit_rows(kinds=("trigger",))  # type: ignore[union-attr]
    finally:
        n.close()
    key = f"deterministic_failure:phase=phase3,pipeline=nba,processor={CONTEXT}"
    assert [(e["event_action"], e["dedup_key"]) for e in pd_peer.accepted()] == [
        *[("trigger", key)] * 4, ("resolve", key)]  # the page, reminded every 4 h, resolved
    assert dict(pd.opened) == {key: 1} and pd.open == {}
    slack = [headline(x) for x in own(posts(hook)) if not x.startswith("NOTICE: backstop")]
    assert slack[:-1] == ["CRITICAL", *["Still firing"] * 3] and slack[-1].startswith("RESOLVED")
    fix = minute(1110)
    sent = sorted((a["mode"], a["phase"]) for a in audit if a["outcome"] == "succeeded")
    assert all(a["time"] >= fix for a in audit if a["outcome"] == "succeeded")
    assert sent == [("overnight", "grading"), ("overnight", "phase4"), ("same_day", "phase4"),
                    ("tomorrow", "phase4")]


# --------------------------------------------------------------------------- a slow creep

PHASE2 = ("p2_odds_game_lines", "p2_nbacom_gamebook_pdf", "p2_nbacom_boxscores",
          "p2_bigdataball_pbp", "p2_odds_player_props")
# Phase 3 in the order it finishes: the critical processors last (all five, not 4/5 degraded).
PHASE3_ORDER = ("team_offense_game_summary", "team_defense_game_summary",
                "upcoming_team_game_context", "player_game_summary", "upcoming_player_game_context")
WINTER = utc("2026-01-05T05:00:00Z")  # 00:00 ET; three weeks without a clock change


def overnight_night(day: int, feature_min: float) -> list[Event]:
    """Night ``day`` (from WINTER) of the overnight run, from 01:00 ET, every phase
    answering phasewatch's triggers; ml_feature_store takes ``feature_min`` minutes."""
    m0 = WINTER + timedelta(days=day, hours=1)
    run = {"run_date": (WINTER + timedelta(days=day - 1)).date().isoformat(), "mode": "overnight"}
    out: list[Event] = []

    def run_of(phase: str, processor: str | None, start: float, end: float, **fields: Any) -> None:
        out.extend([make_event(phase, "started", (m0 + timedelta(minutes=start)).isoformat(),
                               processor, **run),
                    make_event(phase, "succeeded", (m0 + timedelta(minutes=end)).isoformat(),
                               processor, **run, **fields)])

    for i, p in enumerate(PHASE2):
        run_of("phase2", p, 0, 5 + 2 * i)
    for i, p in enumerate(PHASE3_ORDER):
        run_of("phase3", p, 16, 20 + 4 * i, **COVERAGE.get(p, {}))
    run_of("grading", None, 38, 48)
    for i, p in enumerate(PHASE4):
        run_of("phase4", p, 38, 38 + (feature_min if p == "ml_feature_store" else 4 + 2 * i))
    done = 38 + max(feature_min, 12)
    run_of("phase5", "prediction-coordinator", done + 2, done + 3)
    run_of("phase5", "prediction-worker", done + 3, done + 15)
    run_of("phase6", None, done + 17, done + 20)
    return out


def nights(n: Night, days: range, night_of: Callable[[int], list[Event]]) -> None:
    """Feed each night's events on time (ticks of 5 min), then tick to the next midnight
    ET (ticks of 30 min: nothing is due between the nights)."""
    for day in days:
        for event in night_of(day):
            n.until(max(event.timestamp, n.clock.now()), step_s=300)
            n.pw.ingest([event])
        n.until(WINTER + timedelta(days=day + 1), step_s=1800)


def test_a_processor_that_never_reports_is_one_notice_not_one_a_night(
    tmp_path: Path, channels: Peers, monkeypatch: pytest.MonkeyPatch,
) -> None:
    """From 2026-01-05 team_defense_game_summary never reports (its completion message went
    to a renamed topic), while the other four Phase 3 processors and every other phase run
    each night: Phase 4 goes degraded (4/5, the critical ones done) every night. Ideal:
    nobody paged; Slack told once when it begins, then once more when it is a week old
    (the P3 expected-list drift of incident 13, naming the processor); each night's Phase 4
    sent once. Measured before the fix: a "degraded trigger ... missing
    ['team_defense_game_summary']" notice every night (10 in 10 nights), going on after
    the drift alert had said it; and a "phase overdue" warning and resolve for Phase 3
    every night (20 messages), fixed in the session after."""
    hook, pd_peer, _ = channels
    n = night(tmp_path, channels, monkeypatch, WINTER, store_checks=False)
    try:
        nights(n, range(10), lambda day: [e for e in overnight_night(day, 20)
                                          if e.processor != "team_defense_game_summary"])
        audit = n.pw.actuator.store.audit_rows(kinds=("trigger",))  # type: ignore[union-attr]
        held = [s.silenced_by for s in n.pw.router.statuses(n.clock.now())
                if s.alert.name == "phase_overdue"]
    finally:
        n.close()
    assert pages(pd_peer) == []
    # Phase 3 never completes: overdue each night, told the first night only (a known gap
    # after it: the run before missed the same; 20 messages in 10 nights before); its 06:00
    # deadline SLO is missed each night, inhibited by the overdue phase, until its budget is
    # exhausted (one warning).
    texts = own(posts(hook))
    overdue = [x.split(":")[0] for x in texts if "phase overdue" in x]
    assert overdue[0] == "WARNING" and overdue[1].startswith("RESOLVED") and len(overdue) == 2
    assert held == [("known gap: phase3 of nba 2026-01-12 (overnight) missed the same",)]
    assert [x for x in texts if "SLO " in x] == [
        "WARNING: SLO nba-phase3-overnight-by-6am: error budget exhausted (10 of 0.50 runs in month)"]
    slack = [x for x in texts if "phase overdue" not in x and "SLO " not in x]
    assert [x.split(":")[1].strip() for x in slack] == ["degraded trigger", "expected-list drift"]
    assert "2026-01-04" in slack[0] and "team_defense_game_summary" in slack[0]
    assert "team_defense_game_summary" in slack[1]
    phase4 = [a["run_date"] for a in audit if a["phase"] == "phase4" and a["outcome"] == "succeeded"]
    assert phase4 == [(WINTER + timedelta(days=d - 1)).date().isoformat() for d in range(10)]


def test_durations_creeping_five_percent_a_day_for_two_weeks_page_nobody_and_are_not_told_nightly(
    tmp_path: Path, channels: Peers, monkeypatch: pytest.MonkeyPatch,
) -> None:
    """ml_feature_store takes 20 min every night for a week, then 5% longer each night for
    two weeks (a table growing without its partition filter): 20 min to 40 min. Nothing
    fails and every deadline is met. Ideal: nobody paged; Slack told about the creep when
    it shows, not every night. A guard: nobody is paged and Slack gets three notices in
    the fourteen nights (the duration's spike on 01-17 and its level shift the night
    after, its lateness drifting out of range a week later), none on the other nights."""
    hook, pd_peer, _ = channels
    n = night(tmp_path, channels, monkeypatch, WINTER, store_checks=False)
    try:
        nights(n, range(21), lambda day: overnight_night(day, 20 * 1.05 ** max(0, day - 7)))
        anomalies = [a.as_dict() for a in n.pw.anomalies.recent]
    finally:
        n.close()
    assert pages(pd_peer) == []
    slack = own(posts(hook))
    assert [x.split(" (")[-1] for x in slack] == [
        "2026-01-17 overnight)", "2026-01-18 overnight)", "2026-01-24 overnight)"]
    assert [x.split(":")[1].split(" took")[0].split(" finished")[0].strip() for x in slack] == [
        "ml_feature_store"] * 3
    assert {a["pattern"] for a in anomalies} == {"spike", "shift", "drift"}


# --------------------------------------------------------------------------- one of many failing


def test_an_overdue_phase_missing_another_processor_than_the_night_before_is_told(
    tmp_path: Path, channels: Peers, monkeypatch: pytest.MonkeyPatch,
) -> None:
    """Two nights team_defense_game_summary never reports, the third night it does but
    team_offense_game_summary does not: the second night is the known gap (held back),
    the third is news (told)."""
    hook, _, _ = channels
    n = night(tmp_path, channels, monkeypatch, WINTER, store_checks=False)
    try:
        nights(n, range(3), lambda day: [
            e for e in overnight_night(day, 20)
            if e.processor != ("team_defense_game_summary" if day < 2 else "team_offense_game_summary")])
        held = [s for s in n.pw.router.statuses(n.clock.now()) if s.alert.name == "phase_overdue"]
    finally:
        n.close()
    told = [x.split(": phase overdue: ")[0] + " " + x.split("missing ")[-1]
            for x in own(posts(hook)) if "phase overdue" in x and not x.startswith("RESOLVED")]
    assert told == ["WARNING ['team_defense_game_summary']", "WARNING ['team_offense_game_summary']"]
    assert all(not s.silenced_by for s in held)  # tonight's is news: told, not held back


def source_down(day: int) -> list[Event]:
    """Night ``day``, but the optional play-by-play source answers 502: its processor fails
    on each of its three attempts (a new request id in each error)."""
    out: list[Event] = []
    for e in overnight_night(day, 20):
        if e.processor != "p2_bigdataball_pbp" or e.status != "succeeded":
            out.append(e)
            continue
        out += [make_event("phase2", "failed", (e.timestamp + timedelta(minutes=k)).isoformat(),
                           e.processor, run_date=e.run_date.isoformat(), mode="overnight",
                           invocation_id=f"{day}-{k}",
                           error=f"HTTPError: 502 from bigdataball.com (request {day * 10 + k})")
                for k in range(3)]
    return out


def test_one_optional_processor_failing_every_night_is_one_warning_for_it(
    tmp_path: Path, channels: Peers, monkeypatch: pytest.MonkeyPatch,
) -> None:
    """The play-by-play source (optional in Phase 2) is down for four nights: its processor
    fails three times a night, the rest of the pipeline runs. Ideal: nobody paged (the
    phase completes without it); one warning about that processor, not one per run or per
    phase, reminded daily (the warning cadence); when its ten failures in a row share one
    signature, the warning that retries stopped takes over. A guard: phasewatch behaved so
    before this sweep."""
    hook, pd_peer, _ = channels
    n = night(tmp_path, channels, monkeypatch, WINTER, store_checks=False)
    try:
        nights(n, range(4), source_down)
    finally:
        n.close()
    assert pages(pd_peer) == []
    slack = own(posts(hook))
    assert all("p2_bigdataball_pbp" in x for x in slack)
    assert [x.split(":")[0] + (" (retries stopped)" if "retries stopped" in x else "") for x in slack] == [
        "WARNING", "Still firing", "Still firing", "WARNING (retries stopped)"]
