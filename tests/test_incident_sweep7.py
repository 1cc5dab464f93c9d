"""A seventh sweep of incidents phasewatch never saw, of the classes in ../shared/incidents.md.

The first six sweeps (tests/test_incident_sweep.py, test_infra_sweep.py,
test_incident_sweep3.py to test_incident_sweep6.py, test_restart_sweep.py,
test_channel_failing.py) and the acknowledgements of tests/test_pagerduty_acks.py covered
the pipeline's failures, its surroundings, time and history, restarts, the channels, what
people report and do beside phasewatch. These are the stories of what overlaps and what
changes under phasewatch's feet: a trigger target over its quota saying when to come back, a
whole night delivered hours late in one burst, two run dates (and two modes of one date)
under way at once, an SLO's calendar month ending in the middle of a streak of late runs, a
processor renamed in a deploy before the config, data-check pushes with a typo in their run
date or pipeline during an open page, and the daily summaries of a three-day outage. Each is
driven live on a fake clock with the real PagerDuty and Slack clients against local servers
(the third sweep's ``night``, or the infra sweep's HTTP target), and each test counts what
each channel was told and what the actuator did.
"""

from __future__ import annotations

import json
import random
from datetime import UTC, datetime, timedelta
from itertools import pairwise
from pathlib import Path
from typing import Any

import pytest
from starlette.testclient import TestClient

from monitor.app.http.server import create_app
from monitor.events import Event
from tests import test_incident_sweep3 as S3
from tests import test_incident_sweep4 as S4
from tests.actuator_support import COVERAGE, PHASE3_OVERNIGHT, PHASE4
from tests.factories import make_event
from tests.test_incident_sweep3 import PHASE2, channels, feed
from tests.test_incident_sweep4 import Peers, headline
from tests.test_incident_sweep5 import triggers
from tests.test_incident_sweep6 import crashing
from tests.test_infra_sweep import Night, at, paged_once, pages, phase4_done, posts
from tests.test_pagerduty_acks import TOKEN
from tests.test_service import push_envelope

__all__ = ["channels"]  # the third sweep's local Slack and PagerDuty (a fixture)

AUTH = {"Authorization": f"Bearer {TOKEN}"}

# --------------------------------------------------------------------------- quota


def phase5_ran(m: float) -> list[Event]:
    """The overnight run's Phases 5 and 6 run from ``m`` minutes past the infra sweep's START."""
    run = {"run_date": "2026-01-17", "mode": "overnight"}
    return [make_event(phase, status, at(m + dm).isoformat(), processor, **run)
            for phase, status, dm, processor in (
                ("phase5", "started", 0, "prediction-coordinator"),
                ("phase5", "succeeded", 1, "prediction-coordinator"),
                ("phase5", "started", 1, "prediction-worker"),
                ("phase5", "succeeded", 12, "prediction-worker"),
                ("phase6", "started", 14, None), ("phase6", "succeeded", 17, None))]


@pytest.mark.parametrize("status", [429, 503])
def test_a_target_over_quota_saying_when_to_come_back_is_triggered_once_and_pages_nobody(
    tmp_path: Path, channels: Peers, monkeypatch: pytest.MonkeyPatch, status: int,
) -> None:
    """02:10 ET the overnight run's Phase 4 completes and phasewatch calls the coordinator's
    /start, which is over its quota (Cloud Run's per-minute request quota, used up by the
    morning's retries of another service; or its instances all busy): it answers 429 (503)
    with `Retry-After: 300` until 02:22, then accepts. Ideal: phasewatch waits as long as
    the target asks between calls (at most 4 calls, 5 min apart, all with the first call's
    Idempotency-Key), Phase 5 is triggered once, nobody paged and nothing told: the target
    said when to come back and took the trigger 15 min after it was decided, within the
    escalation's 15 min. Measured before the fix: the Retry-After was not read; the
    retries followed the backoff from 5 s: 11 calls in 13 min, and the 5th refusal (02:10:40)
    paged "trigger not delivered" (critical; resolved 12 min later when the 11th call was
    accepted): a page for a target that had said when to come back."""
    hook, pd_peer, pd = channels
    quota = [True]

    def answer(request: Any) -> tuple[int, dict[str, str], Any]:
        if quota[0]:
            return status, {"Retry-After": "300"}, "Quota exceeded for quota metric 'Requests'"
        return 200, {}, {"status": "started"}

    with phase4_done(tmp_path, channels, monkeypatch, answer) as (night, target):
        night.until(at(22), step_s=5)
        quota[0] = False
        night.until(at(26), step_s=5)
        feed(night, phase5_ran(27))
        night.until(at(120), step_s=30)
        audit = night.pw.actuator.store.audit_rows(kinds=("trigger",))  # type: ignore[union-attr]
    calls = [a for a in audit if a["phase"] == "phase5"]
    assert [a["outcome"] for a in calls] == ["failed"] * 3 + ["succeeded"]
    assert target.statuses == [status] * 3 + [200]
    assert {r.headers["Idempotency-Key"] for r in target.requests} == {"nba:2026-01-17:overnight:phase5"}
    times = [datetime.fromisoformat(a["time"]) for a in calls]
    assert all(b - a >= timedelta(seconds=300) for a, b in pairwise(times))
    assert pages(pd_peer) == [] and pd.opened == {}
    assert posts(hook) == []


# --------------------------------------------------------------------------- a night late


def whole_night() -> list[Event]:
    """The overnight run of 2026-02-17 from 00:30 ET to 04:10 ET, as its processors lived it
    (the pipeline's own orchestrators and subscriptions ran every phase): Phase 2, Phase 3
    done 01:45, grading, Phase 4 (ml_feature_store failed twice on a backend error, the
    third try worked at 02:40), Phases 5 and 6 by 04:10."""
    out = [e for i, p in enumerate(PHASE2)
           for e in (S3.ev("phase2", "started", 30, p), S3.ev("phase2", "succeeded", 40 + 3 * i, p))]
    out += [S3.ev("phase3", "started", 60, p) for p in PHASE3_OVERNIGHT] + S3.phase3_done(105)
    out += S3.answered(105)
    for i, p in enumerate(PHASE4):
        out += [S3.ev("phase4", "started", 120, p), S3.ev("phase4", "succeeded", 130 + 3 * i, p)]
    out += [S3.ev("phase4", "failed", 121 + 5 * k, "ml_feature_store", invocation_id=f"inv-{k}",
                  error="RuntimeError: BigQuery job failed: backend error") for k in range(2)]
    out += S3.predictions(200)
    return out


def test_a_whole_night_delivered_three_hours_late_in_one_burst_changes_nothing_already_over(
    tmp_path: Path, channels: Peers, monkeypatch: pytest.MonkeyPatch,
) -> None:
    """phasewatch's push subscription lost its invoker role at a redeploy at 23:50 ET
    (every push 403 at ingress, so Pub/Sub kept the messages); the overnight run of
    2026-02-17 went on without being seen: Phase 2 from 00:30, Phase 3 done 01:45 (long
    before its 06:00 deadline), Phase 4 with ml_feature_store failing twice then succeeding
    at 02:40, Phases 5 and 6 done by 04:00. The role is restored at 07:30 ET and the whole
    night arrives in one burst, in no order (3 to 7 h late). Ideal: nothing told of what
    is over (the two feature-store failures ended in a success hours ago), no trigger sent
    for a phase that already ran, the Phase 3 deadline SLO counts the night good (judged
    on the events' times, not on when they arrived), nobody paged. A guard: phasewatch
    behaved so before this sweep."""
    hook, pd_peer, pd = channels
    n = S4.night(tmp_path, channels, monkeypatch, S3.START, store_checks=False)
    backlog = whole_night()
    random.Random(7).shuffle(backlog)
    try:
        n.until(S3.START + timedelta(minutes=450), step_s=60)
        before = len(n.pw.router.history)
        n.pw.ingest(backlog)
        n.until(S3.START + timedelta(minutes=600), step_s=60)
        after = [d.notification.alert.name for d in n.pw.router.history][before:]
        sent = triggers(n)
        units = S3.slo_units(n.pw, n.clock.now(), "nba-phase3-overnight-by-6am")
        (run,) = [r for r in n.pw.tracker if r.run_date.isoformat() == "2026-02-17"]
        statuses = {p: run.phases[p].status for p in ("phase3", "phase4", "phase6")}
    finally:
        n.close()
    assert after == [] and sent == []
    assert units == (1, 1)
    assert statuses == {"phase3": "complete", "phase4": "complete", "phase6": "complete"}
    assert pages(pd_peer) == [] and pd.opened == {}
    assert S4.own(posts(hook)) == []


# --------------------------------------------------------------------------- two at once


PARSER = "pdfplumber.PDFSyntaxError: No /Root object! - Is this really a PDF? (gamebook layout changed)"
TOMORROW = {"run_date": "2026-02-18", "mode": "tomorrow"}



def tomorrow_through_phase4() -> list[Event]:
    """The ``tomorrow`` run's Phase 3 (its two upcoming-context processors) done 28 min
    before midnight ET and its Phase 4 from 26 to 10 min before."""
    events = [S3.ev("phase3", "succeeded", -28, p, **{**COVERAGE.get(p, {}), **TOMORROW})
              for p in ("upcoming_player_game_context", "upcoming_team_game_context")]
    return events + [S3.ev("phase4", s, m, p, **TOMORROW) for p in PHASE4
                     for s, m in (("started", -26), ("succeeded", -10))]


def test_a_failure_of_tonights_run_does_not_hold_what_tomorrows_run_still_running_is_told(
    tmp_path: Path, channels: Peers, monkeypatch: pytest.MonkeyPatch,
) -> None:
    """Two run dates at once. The `tomorrow` run of 2026-02-18 runs late on the 17th: its
    Phase 4 completes at 23:50 ET and Phase 5 starts at 23:52, then the coordinator hangs
    on a Firestore lock (nothing more from Phase 5). After midnight the overnight run of
    2026-02-17 begins: its Phase 2 `p2_nbacom_gamebook_pdf` crash-loops from 00:10 ET on a
    gamebook layout change (paged at its 10th failure). The on-call restarts the
    coordinator at 02:00 (tomorrow's Phase 5 and 6 then finish by 02:15) and fixes the
    parser at 03:00. Ideal: tomorrow's Phase 5 overdue is told when it passes its 60 min
    timeout (00:52 ET): last night's box scores are not among its inputs (it started with
    them all), so a failure of tonight's Phase 2 is not why it is late; it resolves when
    the phase finishes; the Phase 2 page resolves at 03:00. Measured before the fix:
    Phase 2's deterministic failure, an alert about no run ("failing now", so covering
    every run), inhibited the other run's Phase 5 overdue as its downstream consequence:
    Slack never heard of tomorrow's stuck predictions (the overdue resolved at 02:10,
    still inhibited)."""
    hook, pd_peer, pd = channels
    n = S4.night(tmp_path, channels, monkeypatch, S3.START - timedelta(minutes=30), store_checks=False)
    events = tomorrow_through_phase4()
    events += [S3.ev("phase5", "started", -8, "prediction-coordinator", **TOMORROW),
               S3.ev("phase5", "started", -7, "prediction-worker", **TOMORROW)]
    events += [S3.ev("phase2", s, m, p) for p in PHASE2 if p != "p2_nbacom_gamebook_pdf"
               for s, m in (("started", 10), ("succeeded", 25))]
    events += crashing("phase2", 10, "p2_nbacom_gamebook_pdf", error=PARSER)
    events += [S3.ev("phase5", "succeeded", 125, "prediction-coordinator", **TOMORROW),
               S3.ev("phase5", "succeeded", 130, "prediction-worker", **TOMORROW),
               S3.ev("phase6", "started", 132, **TOMORROW), S3.ev("phase6", "succeeded", 135, **TOMORROW),
               S3.ev("phase2", "started", 178, "p2_nbacom_gamebook_pdf"),
               S3.ev("phase2", "succeeded", 180, "p2_nbacom_gamebook_pdf")]
    try:
        feed(n, events)
        n.until(S3.START + timedelta(minutes=192), step_s=60)
        told = [(d.notification.at, d.notification.action, d.notification.alert.name)
                for d in n.pw.router.history]
    finally:
        n.close()
    key = "deterministic_failure:phase=phase2,pipeline=nba,processor=p2_nbacom_gamebook_pdf"
    paged_once(pd_peer, pd, key)
    assert [(a, name) for _, a, name in told] == [
        ("trigger", "deterministic_failure"), ("trigger", "phase_overdue"),
        ("resolve", "phase_overdue"), ("resolve", "deterministic_failure")]
    overdue = told[1][0]
    assert S3.START + timedelta(minutes=52) <= overdue <= S3.START + timedelta(minutes=60)
    slack = [x for x in S4.own(posts(hook)) if "phase overdue" in x]
    assert len(slack) == 2 and "2026-02-18 (tomorrow)" in slack[0] and "phase5" in slack[0]


KEY_ERROR = "KeyError: 'vegas_line_source'"
SAME_DAY = {"run_date": "2026-02-18", "mode": "same_day"}


def test_an_early_run_succeeding_beside_the_same_dates_failing_run_ends_its_page_once(
    tmp_path: Path, channels: Peers, monkeypatch: pytest.MonkeyPatch,
) -> None:
    """Two modes of one run date at once. The `tomorrow` run of 2026-02-18 reaches Phase 5
    at 23:52 ET on the 17th; its prediction-worker fails on every delivery from midnight
    with a KeyError (a field missing from the evening's betting lines): paged at the 10th
    failure. At 02:30 ET the early `same_day` run of the same date starts from the
    morning's lines (complete): its Phases 3 to 6 run and succeed by 03:00. Ideal: one page,
    resolved by the same-day worker's success (the date's predictions exist, and the
    worker works on today's lines); each phase of each mode triggered once, Phase 6 only
    for the run that finished Phase 5; nothing told about the `tomorrow` run's failed
    Phase 5 after the date was delivered. A guard: phasewatch behaved so before this
    sweep."""
    hook, pd_peer, pd = channels
    n = S4.night(tmp_path, channels, monkeypatch, S3.START - timedelta(minutes=30), store_checks=False)
    events = tomorrow_through_phase4()
    events += [S3.ev("phase5", "started", -8, "prediction-coordinator", **TOMORROW),
               S3.ev("phase5", "succeeded", -7, "prediction-coordinator", **TOMORROW)]
    events += crashing("phase5", 0, "prediction-worker", error=KEY_ERROR, **TOMORROW)
    events += [S3.ev("phase3", "succeeded", 150, p, **{**COVERAGE.get(p, {}), **SAME_DAY})
               for p in ("upcoming_player_game_context", "upcoming_team_game_context")]
    events += [S3.ev("phase4", s, m, p, **SAME_DAY) for p in PHASE4
               for s, m in (("started", 152), ("succeeded", 160))]
    events += S3.predictions(160, **SAME_DAY)
    key = "deterministic_failure:phase=phase5,pipeline=nba,processor=prediction-worker"
    try:
        feed(n, events)
        n.until(S3.START + timedelta(minutes=600), step_s=60)
        told = [(d.notification.at, d.notification.action, d.notification.alert.key)
                for d in n.pw.router.history if d.notification.alert.name != "scheduler_job_missed"]
        sent = triggers(n)
    finally:
        n.close()
    paged_once(pd_peer, pd, key)
    assert [(a, k) for _, a, k in told] == [("trigger", key), ("resolve", key)]
    assert S3.START + timedelta(minutes=175) <= told[1][0] <= S3.START + timedelta(minutes=177)
    assert sorted(sent) == sorted([("phase4", "tomorrow", "succeeded"), ("phase5", "tomorrow", "succeeded"),
                                   ("phase4", "same_day", "succeeded"), ("phase5", "same_day", "succeeded"),
                                   ("phase6", "same_day", "succeeded")])
    assert [headline(x).split(" after ")[0] for x in S4.own(posts(hook))] == ["CRITICAL", "RESOLVED"]


# --------------------------------------------------------------------------- what changes


def phase3_overnight(run_date: str, done: datetime) -> list[Event]:
    """The overnight Phase 3 of ``run_date``, its processors started 30 min before ``done``."""
    return [make_event("phase3", status, (done - timedelta(minutes=dm)).isoformat(), p,
                       run_date=run_date, mode="overnight", **(COVERAGE.get(p, {}) if dm == 0 else {}))
            for p in PHASE3_OVERNIGHT for status, dm in (("started", 30), ("succeeded", 0))]


STREAK = "slo_bad_runs_in_a_row:phase=phase3,pipeline=nba,slo=nba-phase3-overnight-by-6am"


def test_a_streak_of_late_runs_across_the_months_end_is_one_page_and_one_resolve(
    tmp_path: Path, channels: Peers, monkeypatch: pytest.MonkeyPatch,
) -> None:
    """nba-phase3-overnight-by-6am counts its budget per calendar month. February went well
    until the night of the 24th: from then the overnight Phase 3 finishes at 07:00 ET
    every morning (a slow upstream scraper), past its 06:00 deadline, until the fix lands
    for the night of March 4th. Ideal: the second late run in a row pages (02-26 06:35 ET),
    reminded daily; the month's end resets the budget (February's exhausted ticket
    resolves, March's is told when March's budget is spent) but not the streak: Phase 3
    is still late every morning, so the page stays open across midnight of March 1st and
    resolves once, when the good run of March 4th is judged (03-05 06:00 ET): one
    PagerDuty incident. Measured before the fix: the streak was counted inside the month
    only, so the page resolved at 00:00 ET on March 1st (Phase 3 was late that morning
    again) and a second incident was opened on March 2nd for the same streak."""
    hook, pd_peer, pd = channels
    start = S4.utc("2026-02-24T05:00:00Z")
    n = S4.night(tmp_path, channels, monkeypatch, start)
    history = [e for d in range(1, 23)
               for e in phase3_overnight(f"2026-02-{d:02d}", datetime(2026, 2, d + 1, 10, 0, tzinfo=UTC))]
    n.pw.collector.ingest(history, backfill=True)
    try:
        for i in range(10):
            morning = start + timedelta(days=i)
            run_date = (morning - timedelta(days=1)).date().isoformat()
            done = morning + timedelta(hours=7 if "2026-02-23" < run_date < "2026-03-04" else 5)
            n.until(done - timedelta(minutes=30), step_s=600)
            feed(n, phase3_overnight(run_date, done))
        n.until(start + timedelta(days=10, hours=8), step_s=600)
        told = [(d.notification.at, d.notification.action) for d in n.pw.router.history
                if d.notification.alert.key == STREAK]
    finally:
        n.close()
    paged = [(e["event_action"], e["payload"]["timestamp"][:10] if "payload" in e else None)
             for e in pd_peer.accepted() if e["dedup_key"] == STREAK]
    assert [a for a, _ in paged] == ["trigger"] * 7 + ["resolve"]  # paged, 6 daily reminders
    assert pd.opened[STREAK] == 1 and STREAK not in pd.open
    (resolved,) = [at for at, action in told if action == "resolve"]
    assert resolved == S4.utc("2026-03-05T11:00:00Z")
    assert told[0][1] == "trigger"
    assert S4.utc("2026-02-26T11:00:00Z") <= told[0][0] <= S4.utc("2026-02-26T11:40:00Z")
    budget = [headline(x) for x in posts(hook) if "error budget exhausted" in x]
    assert budget == ["WARNING", "RESOLVED after 2 d 17 h", "WARNING"]  # at 00:00 ET March 1st


def pushed(n: Night, events: list[Event]) -> list[str]:
    """Each event through the Pub/Sub push path when the clock reaches its time; what the
    handler answered."""
    out = []
    for event in sorted(events, key=lambda e: e.timestamp):
        n.until(max(event.timestamp, n.clock.now()))
        data = event.model_dump_json(exclude_none=True).encode()
        envelope = json.dumps(push_envelope(data, f"m-{event.event_id}")).encode()
        out.append(n.pw.collector.ingest_push(envelope).outcome)
    return out


V3 = "ml_feature_store_v3"


def renamed_night(n: Night) -> list[str]:
    """The night of the rename: Phase 3 done and answered by 01:00 ET, four of Phase 4's
    processors done by 01:08; the renamed feature store (``V3``) starts at 01:10 and
    succeeds at 01:20, both through Pub/Sub. What the push handler answered to each."""
    feed(n, S3.phase3_done(60) + S3.answered(60)
         + [S3.ev("phase4", s, m, p) for p in PHASE4[:4] for s, m in (("started", 63), ("succeeded", 68))])
    return pushed(n, [S3.ev("phase4", "started", 70, V3), S3.ev("phase4", "succeeded", 80, V3)])


def test_a_processor_renamed_in_a_deploy_is_told_once_by_its_new_name(
    tmp_path: Path, channels: Peers, monkeypatch: pytest.MonkeyPatch,
) -> None:
    """The precompute deploy of 01:05 ET renames the feature-store processor class, and its
    completion messages now say `ml_feature_store_v3`; nobody updated phasewatch's config.
    Tonight's feature store runs 01:10-01:20 under the new name: both messages come
    through Pub/Sub, and phasewatch does not know the name. At 03:00 the config gets the
    new name (the old one as its alias) and phasewatch restarts; the on-call re-runs the
    feature store at 03:10 and Phase 5 goes on. Ideal: the unknown name is told once, when
    its first message is refused (a warning naming ml_feature_store_v3 and nba/phase4,
    and that its messages are dead-lettered), not once per message; it resolves at the
    restart that knows the name; after it, the name is accepted and Phase 5 triggered
    once. Measured before the fix: both messages were dead-lettered in silence; Slack
    heard only "phase overdue ... missing ['ml_feature_store']" (02:04) and "phase4→phase5
    stuck ... missing ['ml_feature_store']" (02:09): the processor named missing had run,
    and nothing said the name phasewatch refused."""
    hook, pd_peer, pd = channels
    first = S4.night(tmp_path, channels, monkeypatch, S3.START, store_checks=False)
    try:
        answers = renamed_night(first)
        first.until(S3.START + timedelta(minutes=180), step_s=60)
        warned = [(d.notification.at, d.notification.action) for d in first.pw.router.history
                  if d.notification.alert.name == "unknown_processor"]
    finally:
        first.close()
    second = S4.night(tmp_path, channels, monkeypatch, S3.START, edit=S3.renamed, clock=first.clock,
                      store_checks=False)
    try:
        second.until(S3.START + timedelta(minutes=190))
        answers += pushed(second, [S3.ev("phase4", "started", 190, V3), S3.ev("phase4", "succeeded", 200, V3)])
        feed(second, S3.predictions(200))
        second.until(S3.START + timedelta(minutes=260), step_s=60)
        sent = triggers(second)
        told = [(d.notification.at, d.notification.action) for d in second.pw.router.history
                if d.notification.alert.name == "unknown_processor"]
    finally:
        second.close()
    assert answers == ["dead_lettered", "dead_lettered", "stored", "stored"]
    assert [t for t in sent if t[0] == "phase5"] == [("phase5", "overnight", "succeeded")]
    assert pages(pd_peer) == [] and pd.opened == {}
    unknown = [x for x in posts(hook) if V3 in x and "overdue" not in x and "stuck" not in x]
    assert [headline(x).split(" after ")[0] for x in unknown] == ["WARNING", "RESOLVED"]
    ((at, action),) = warned
    assert action == "trigger" and at <= S3.START + timedelta(minutes=75)
    assert "nba/phase4" in unknown[0] and "dead-lettered" in unknown[0]
    ((at, action),) = told  # resolved at the restart that knows the name
    assert action == "resolve" and at <= S3.START + timedelta(minutes=181)


def test_check_results_with_a_typo_are_refused_naming_the_field_and_end_no_page(
    tmp_path: Path, channels: Peers, monkeypatch: pytest.MonkeyPatch,
) -> None:
    """06:00 ET: game completeness for last night (2026-02-19) is 0.4: paged. At 06:30 the
    validator's new version pushes its batch with a date bug: game completeness 1.0 and box
    score coverage 0.99, both about `2026-12-19` (the month in the day's place); at 07:00 a
    hand-run push names the pipeline `nab`. At 08:00 last night's box scores are re-run
    and the check reads 0.98. Ideal: each bad push is answered 422 naming the field
    (`checks[0].run_date`: outside the accepted window, as an event's run date is;
    `pipeline`: unknown), nothing of its batch stored; the page stays open until 08:00
    and resolves once then. Measured before the fix: the result about 2026-12-19 was
    accepted (202) and, the newest run date of the check, resolved the page at 06:30 ET
    while last night still read 0.4; the real fix at 08:00 resolved nothing more."""
    hook, pd_peer, pd = channels
    n = S4.night(tmp_path, channels, monkeypatch, S4.utc("2026-02-20T10:55:00Z"))
    client = TestClient(create_app(n.pw, TOKEN))

    def result(name: str, value: float, run_date: str, **more: str) -> dict[str, Any]:
        return {"name": name, "value": value, "run_date": run_date, "at": n.clock.now().isoformat(),
                **more}

    try:
        n.until(S4.utc("2026-02-20T11:00:00Z"))
        first = client.post("/v1/checks", headers=AUTH, json=result("game_completeness", 0.4, "2026-02-19"))
        n.until(S4.utc("2026-02-20T11:30:00Z"))
        typo = client.post("/v1/checks", headers=AUTH, json=[
            result("boxscore_team_coverage", 0.99, "2026-12-19"),
            result("game_completeness", 1.0, "2026-12-19")])
        n.until(S4.utc("2026-02-20T12:00:00Z"))
        other = client.post("/v1/checks", headers=AUTH,
                            json=result("game_completeness", 1.0, "2026-02-19", pipeline="nab"))
        n.until(S4.utc("2026-02-20T13:00:00Z"))
        fix = client.post("/v1/checks", headers=AUTH, json=result("game_completeness", 0.98, "2026-02-19"))
        n.until(S4.utc("2026-02-20T13:10:00Z"))
        stored = {c["name"]: c.get("run_date") for c in client.get("/v1/checks", headers=AUTH).json()["checks"]}
        told = [(d.notification.at, d.notification.action) for d in n.pw.router.history
                if d.notification.alert.name == "check"]
    finally:
        n.close()
    assert [first.status_code, typo.status_code, other.status_code, fix.status_code] == [202, 422, 422, 202]
    assert [d["field"] for d in typo.json()["details"]] == ["checks[0].run_date", "checks[1].run_date"]
    assert typo.json()["reason"] == "run_date_window"
    assert [d["field"] for d in other.json()["details"]] == ["pipeline"]
    assert stored["boxscore_team_coverage"] is None and stored["game_completeness"] == "2026-02-19"
    key = "check:check=game_completeness,pipeline=nba"
    paged_once(pd_peer, pd, key)
    assert [a for _, a in told] == ["trigger", "resolve"]
    assert S4.utc("2026-02-20T13:00:00Z") <= told[1][0] <= S4.utc("2026-02-20T13:02:00Z")
    assert [headline(x) for x in S4.own(posts(hook))] == ["CRITICAL", "RESOLVED after 2 h 00 min"]



def summary_text(body: dict[str, Any]) -> str:
    """A daily summary's Slack message as a person reads it: its blocks' text."""
    out = []
    for block in body.get("blocks") or []:
        text = block.get("text")
        if isinstance(text, dict):
            out.append(text.get("text", ""))
        out += [e["text"] for e in block.get("elements") or [] if isinstance(e.get("text"), str)]
    return "\n".join(out)


def test_each_morning_of_a_three_day_outage_is_one_summary_that_says_it(
    tmp_path: Path, channels: Peers, monkeypatch: pytest.MonkeyPatch,
) -> None:
    """The prediction coordinator's new revision cannot start (its /health answers 503) from
    01:00 ET Tuesday 2026-02-17 until Thursday 15:00 ET. Ideal: one daily summary each
    morning at 08:00 ET, four in all: Tuesday, Wednesday and Thursday critical, each naming
    the coordinator's outage and since when it fires (Tuesday 01:15 ET, not the morning's
    date); Friday's no longer critical and no longer naming it; PagerDuty one incident,
    reminded and resolved once. A guard: phasewatch behaved so before this sweep."""
    hook, pd_peer, pd = channels
    coordinator = "prediction-coordinator"
    n = S4.night(tmp_path, channels, monkeypatch, S4.utc("2026-02-17T05:00:00Z"), store_checks=False)
    try:
        n.until(S4.utc("2026-02-17T06:00:00Z"))
        n.health(coordinator, "fail")
        n.until(S4.utc("2026-02-19T20:00:00Z"), step_s=300)
        n.health(coordinator, "pass")
        n.until(S4.utc("2026-02-20T14:00:00Z"), step_s=300)
    finally:
        n.close()
    summaries = [b for b in hook.accepted("/hook") if b["text"].startswith("phasewatch daily health")]
    assert [b["text"].split(", ")[1] for b in summaries] == [
        f"{day} 2026-02-{d} 08:00 EST: {status}" for day, d, status in (
            ("Tue", 17, "CRITICAL"), ("Wed", 18, "CRITICAL"), ("Thu", 19, "CRITICAL"),
            ("Fri", 20, "DEGRADED"))]  # Friday: the jobs nobody runs in this story
    texts = [summary_text(b) for b in summaries]
    since = "firing since 2026-02-17 06:15 UTC: service unhealthy: prediction-coordinator"
    assert all(since in t for t in texts[:3]) and coordinator not in texts[3]
    key = f"service_unhealthy:service={coordinator}"
    paged = [e["event_action"] for e in pd_peer.accepted() if e["dedup_key"] == key]
    assert paged[0] == "trigger" and paged[-1] == "resolve" and paged.count("resolve") == 1
    assert pd.opened[key] == 1 and key not in pd.open
