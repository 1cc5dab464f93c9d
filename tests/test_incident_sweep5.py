"""A fifth sweep of incidents phasewatch never saw, of the classes in ../shared/incidents.md.

The first four sweeps (tests/test_incident_sweep.py, test_infra_sweep.py,
test_incident_sweep3.py, test_incident_sweep4.py, test_restart_sweep.py,
test_channel_failing.py) covered the pipeline's failures, its surroundings, time and
history, restarts, the channels, and what people and other tools report beside
phasewatch. These are the stories of things said twice or taken back: a Cloud Scheduler
job delivered twice and every Pub/Sub message redelivered, failure messages published three
times, a duplicate run refused as "already running" while the first succeeds, a page a
person silenced whose condition ends inside the silence (or outlasts it), and bad deploys
rolled back before they were a problem (a service's health, a processor's crash); and a
data check flapping on its threshold night after night. Each is driven live on a fake clock with the real PagerDuty and Slack clients against
local servers (the third sweep's ``night``), and each test counts what each channel was
told and what the actuator did.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import timedelta
from pathlib import Path
from typing import TypeVar

import pytest

from monitor.events import Event
from tests.actuator_support import PHASE4
from tests.test_incident_sweep3 import START, answered, channels, ev, feed, minute, phase3_done, predictions
from tests.test_incident_sweep4 import (
    COORDINATOR,
    Peers,
    check,
    headline,
    night,
    own,
    phase5_sent,
    service_told,
)
from tests.test_infra_sweep import Night, pages, posts

__all__ = ["channels"]  # the third sweep's local Slack and PagerDuty (a fixture)

T = TypeVar("T")  # what a night's reader returns


def triggers(n: Night) -> list[tuple[str, str, str]]:
    """(phase, mode, outcome) of every trigger the actuator decided (the audit log)."""
    audit = n.pw.actuator.store.audit_rows(kinds=("trigger",))  # type: ignore[union-attr]
    return [(a["phase"], a["mode"], a["outcome"]) for a in audit]


# --------------------------------------------------------------------------- said twice


def twice(events: list[Event]) -> list[Event]:
    """Every event delivered twice (Pub/Sub's at-least-once), the copy 20 s later."""
    out: list[Event] = []
    for e in events:
        out += [e, e.model_copy(update={"timestamp": e.timestamp + timedelta(seconds=20)})]
    return out


def rerun(events: list[Event], dt_s: float, tag: str) -> list[Event]:
    """The same processors run again ``dt_s`` later under their own invocations (the
    Cloud Scheduler job delivered twice: a second run of the same run date)."""
    return [e.model_copy(update={"timestamp": e.timestamp + timedelta(seconds=dt_s),
                                 "event_id": f"{e.event_id}-{tag}",
                                 "invocation_id": f"{tag}-{e.processor}"}) for e in events]


def told_nothing(n: Night, channels: Peers, events: list[Event], minutes: float,
                 read: Callable[[Night], T], step_s: float = 30.0) -> T:
    """Feed ``events``, run the night to ``minutes`` past START and stop it: nobody paged,
    nothing in Slack but the degraded trigger. What ``read`` found before the stop."""
    hook, pd_peer, pd = channels
    try:
        feed(n, events)
        n.until(START + timedelta(minutes=minutes), step_s=step_s)
        found = read(n)
    finally:
        n.close()
    assert pages(pd_peer) == [] and pd.opened == {}
    assert [x for x in own(posts(hook)) if "degraded" not in x] == []
    return found


def test_a_scheduler_job_fired_twice_and_every_message_redelivered_is_one_run(
    tmp_path: Path, channels: Peers, monkeypatch: pytest.MonkeyPatch,
) -> None:
    """06:40 ET Cloud Scheduler delivers the overnight Phase 3 job twice (its documented
    at-least-once delivery): every Phase 3 processor runs twice, 3 min apart, and every
    finish message is also redelivered by Pub/Sub 20 s later. Phasewatch's Phase 4 and
    grading triggers are answered, then Phase 4 finishes (each message twice too) and
    Phase 5 answers. Ideal: each phase triggered once for the run (not once per run of
    the job nor per copy of a message), nobody paged, nothing in Slack about it. A guard:
    phasewatch behaved so before this sweep."""
    n = night(tmp_path, channels, monkeypatch, START, store_checks=False)
    first = phase3_done(100)
    events = twice(first) + twice(rerun(first, 180, "again"))
    events += answered(101) + [ev("phase4", "started", 102, p) for p in PHASE4]
    events += twice([ev("phase4", "succeeded", 140, p) for p in PHASE4])
    events += [ev("phase5", "started", 142, "prediction-coordinator")]
    sent = told_nothing(n, channels, events, 200, triggers)
    succeeded = sorted((phase, mode) for phase, mode, outcome in sent if outcome == "succeeded")
    assert succeeded == [("grading", "overnight"), ("phase4", "overnight"), ("phase5", "overnight")]


# --------------------------------------------------------------------------- taken back


def paged_then_silenced(n: Night, duration: str) -> None:
    """01:40 ET the coordinator's /health starts failing (paged at the third probe); 01:55
    the on-call silences the coordinator for ``duration``."""
    n.until(START + timedelta(minutes=100))
    n.health(COORDINATOR, "fail")
    n.until(START + timedelta(minutes=115))
    n.pw.alerting.silences.create({"matchers": [f"service={COORDINATOR}"], "author": "oncall",
                                   "comment": "on it", "duration": duration}, n.clock.now())


def test_a_page_silenced_by_the_on_call_is_resolved_when_its_condition_ends_inside_the_silence(
    tmp_path: Path, channels: Peers, monkeypatch: pytest.MonkeyPatch,
) -> None:
    """01:40 ET the coordinator's /health starts failing: paged. 01:55 the on-call, now on
    it, silences the coordinator for 2 h so the reminders stop. 02:25 it is healthy again,
    inside the silence. Ideal: PagerDuty's incident is resolved when the condition ends
    (02:25, not at the silence's end, and not left open for ever: a silence holds back
    news, not the end of what was already told), and Slack says RESOLVED once; one page.
    A guard: phasewatch behaved so before this sweep."""
    hook, pd_peer, pd = channels
    n = night(tmp_path, channels, monkeypatch, START, store_checks=False)
    try:
        paged_then_silenced(n, "2h")
        paged = pages(pd_peer)
        n.until(START + timedelta(minutes=145))
        n.health(COORDINATOR, "pass")
        n.until(START + timedelta(minutes=150))
        at_recovery = pages(pd_peer)
        n.until(START + timedelta(minutes=300), step_s=60)
        told = service_told(n)
    finally:
        n.close()
    assert paged == [("trigger", "service_unhealthy")]
    assert at_recovery == [("trigger", "service_unhealthy"), ("resolve", "service_unhealthy")]
    assert pages(pd_peer) == at_recovery
    assert len(pd.opened) == 1 and pd.open == {}
    (_, _), (action, resolved) = told
    assert action == "resolve" and resolved <= START + timedelta(minutes=150)
    slack = [headline(x) for x in own(posts(hook)) if "degraded" not in x]
    assert slack[0] == "CRITICAL" and slack[1].startswith("RESOLVED") and len(slack) == 2


def test_a_deploy_rolled_back_within_two_probes_pages_nobody_and_holds_the_trigger_once(
    tmp_path: Path, channels: Peers, monkeypatch: pytest.MonkeyPatch,
) -> None:
    """07:19 ET a new coordinator revision is deployed and fails its /health; Cloud Run's
    traffic is rolled back to the previous revision 2 min later (07:21). Phase 4 finished
    at 07:20, inside those two minutes. Ideal: nobody paged (fewer than 3 failed probes:
    over before it was a problem); the Phase 5 trigger held while the coordinator was
    unhealthy and sent once when it is back; nothing in Slack. A guard: phasewatch behaved
    so before this sweep."""
    hook, pd_peer, pd = channels
    n = night(tmp_path, channels, monkeypatch, START, store_checks=False)
    try:
        n.until(START + timedelta(minutes=139))
        n.health(COORDINATOR, "fail")
        feed(n, phase3_done(100) + answered(100) + [ev("phase4", s, m, p) for p in PHASE4
                                                     for s, m in (("started", 102), ("succeeded", 140))])
        n.until(START + timedelta(minutes=141))
        n.health(COORDINATOR, "pass")
        n.until(START + timedelta(minutes=143))
        feed(n, predictions(142))
        n.until(START + timedelta(minutes=240), step_s=60)
        sent = phase5_sent(n)
    finally:
        n.close()
    assert pages(pd_peer) == [] and pd.opened == {}
    assert len(sent) == 1 and minute(141) <= sent[0] <= minute(143)  # held, then sent once
    assert [x for x in own(posts(hook)) if "degraded" not in x] == []


def test_four_failures_each_redelivered_three_times_are_four_failures_not_a_crash_loop(
    tmp_path: Path, channels: Peers, monkeypatch: pytest.MonkeyPatch,
) -> None:
    """07:20 ET ml_feature_store fails 4 times on a transient BigQuery 503 (Pub/Sub
    retries it 90 s apart) and the 5th try succeeds. Each failure message is delivered
    three times (the producer's publish retried after a timeout: the same event_id).
    Ideal: 4 failures, not 12: no crash signature (10 identical failures), no storm, no
    page, nothing in Slack; Phase 5 triggered once. A guard: phasewatch behaved so before
    this sweep (failures are counted by event_id)."""
    n = night(tmp_path, channels, monkeypatch, START, store_checks=False)
    transient = "google.api_core.exceptions.ServiceUnavailable: 503 Backend Error"
    events = phase3_done(100) + answered(100)
    events += [ev("phase4", s, m, p) for p in PHASE4 if p != "ml_feature_store"
               for s, m in (("started", 102), ("succeeded", 110))]
    for i in range(4):
        inv = {"invocation_id": f"feature-{i}"}
        events.append(ev("phase4", "started", 140 + 1.5 * i, "ml_feature_store", **inv))
        failed = ev("phase4", "failed", 140 + 1.5 * i + 0.5, "ml_feature_store", error=transient, **inv)
        events += [failed.model_copy(update={"timestamp": failed.timestamp + timedelta(seconds=k)})
                   for k in (0, 5, 10)]
    events += [ev("phase4", "started", 146, "ml_feature_store", invocation_id="feature-4"),
               ev("phase4", "succeeded", 150, "ml_feature_store", invocation_id="feature-4")]
    events += predictions(151)
    sent = told_nothing(n, channels, events, 240, phase5_sent, step_s=60)
    assert len(sent) == 1


def test_the_duplicate_run_of_a_job_refused_as_already_running_is_not_a_failure(
    tmp_path: Path, channels: Peers, monkeypatch: pytest.MonkeyPatch,
) -> None:
    """06:40 ET Cloud Scheduler delivers the overnight Phase 3 job twice; the second
    delivery of each processor is refused by the processor's own run lock ("409 already
    running for 2026-02-17", reported as a failed run) while the first run goes on and
    succeeds at 06:40. Ideal: the run is a success, told as nothing: no page, nothing in
    Slack; Phase 4, grading, Phase 5 and 6 triggered once each. Measured before the fix:
    one page (CRITICAL "correlated failure: 5 processors of nba in phase3 fail with one
    error: <n> Conflict: run already in progress") at 06:44, 4 min after all five had
    succeeded, and no resolve in the 3 h after (it would have resolved only after its
    24 h quiet_h): the correlated incident opened when it settled even though every
    processor it named had already recovered."""
    n = night(tmp_path, channels, monkeypatch, START, store_checks=False)
    first = phase3_done(100)
    refused = [ev("phase3", s, 99.5, e.processor, invocation_id=f"dup-{e.processor}",
                  **({"error": "409 Conflict: run already in progress for 2026-02-17"}
                     if s == "failed" else {}))
               for e in first for s in ("started", "failed")]
    events = [ev("phase3", "started", 95, e.processor, invocation_id=f"run-{e.processor}")
              for e in first]
    events += refused + [e.model_copy(update={"invocation_id": f"run-{e.processor}"}) for e in first]
    events += answered(101) + [ev("phase4", "started", 102, p) for p in PHASE4]
    events += [ev("phase4", "succeeded", 140, p) for p in PHASE4] + predictions(141)
    sent = told_nothing(n, channels, events, 240, triggers, step_s=60)
    succeeded = sorted((phase, mode) for phase, mode, outcome in sent if outcome == "succeeded")
    assert succeeded == [("grading", "overnight"), ("phase4", "overnight"), ("phase5", "overnight"),
                         ("phase6", "overnight")]


def test_a_silence_ending_before_its_page_is_over_neither_repages_nor_loses_the_resolve(
    tmp_path: Path, channels: Peers, monkeypatch: pytest.MonkeyPatch,
) -> None:
    """01:40 ET the coordinator's /health fails: paged. 01:55 the on-call silences it for
    30 min; the silence ends at 02:25 with the coordinator still down; it is healthy at
    03:10. Ideal: still one PagerDuty incident (no second trigger when the silence ends:
    the incident it holds back was never closed, and no reminder is due before 4 h), one
    resolve at 03:10; Slack: CRITICAL then RESOLVED. A guard: phasewatch behaved so before
    this sweep."""
    hook, pd_peer, pd = channels
    n = night(tmp_path, channels, monkeypatch, START, store_checks=False)
    try:
        paged_then_silenced(n, "30m")
        n.until(START + timedelta(minutes=190))
        n.health(COORDINATOR, "pass")
        n.until(START + timedelta(minutes=300), step_s=60)
        told = service_told(n)
    finally:
        n.close()
    assert pages(pd_peer) == [("trigger", "service_unhealthy"), ("resolve", "service_unhealthy")]
    assert len(pd.opened) == 1 and pd.open == {}
    (_, _), (action, resolved) = told
    assert action == "resolve"
    assert START + timedelta(minutes=190) <= resolved <= START + timedelta(minutes=195)
    slack = [headline(x) for x in own(posts(hook)) if "degraded" not in x]
    assert slack[0] == "CRITICAL" and slack[1].startswith("RESOLVED") and len(slack) == 2


def test_a_bad_revision_rolled_back_mid_phase_pages_nobody_once_its_retries_succeed(
    tmp_path: Path, channels: Peers, monkeypatch: pytest.MonkeyPatch,
) -> None:
    """07:18 ET a new precompute revision without google-cloud-firestore takes traffic
    mid-Phase 4: ml_feature_store and player_composite_factors each crash once on the
    import (07:18, 07:19); Cloud Run's traffic is rolled back at 07:20 and Pub/Sub's retry
    of both succeeds at 07:21 and 07:22. Ideal: over in 4 min, before anything settled:
    nobody paged, nothing in Slack; Phase 5 triggered once, after the last of Phase 4.
    Measured before the fix (the duplicate-run story's): one critical page ("correlated
    failure: 2 processors of nba in phase4 fail with one error: ModuleNotFoundError") at
    07:24, 2 min after both had succeeded, and no resolve in the 2.5 h after (only its
    24 h quiet_h would have closed it)."""
    n = night(tmp_path, channels, monkeypatch, START, store_checks=False)
    crash = "ModuleNotFoundError: No module named 'google.cloud.firestore'"
    flaky = ("ml_feature_store", "player_composite_factors")
    events = phase3_done(100) + answered(100)
    events += [ev("phase4", s, m, p) for p in PHASE4 if p not in flaky
               for s, m in (("started", 102), ("succeeded", 112))]
    for i, p in enumerate(flaky):
        events += [ev("phase4", "started", 137 + i, p, invocation_id=f"{p}-1"),
                   ev("phase4", "failed", 138 + i, p, invocation_id=f"{p}-1", error=crash),
                   ev("phase4", "started", 140 + i, p, invocation_id=f"{p}-2"),
                   ev("phase4", "succeeded", 141 + i, p, invocation_id=f"{p}-2")]
    events += predictions(142)
    sent = told_nothing(n, channels, events, 240, phase5_sent, step_s=60)
    assert len(sent) == 1 and minute(142) <= sent[0] <= minute(143)


# --------------------------------------------------------------------------- night after night


def flapping_mornings(n: Night, nights: int, first: int = 0) -> None:
    """``nights`` mornings of grading completeness measured every 30 min from 06:00 ET,
    reading 0.79, 0.81, 0.79, 0.81, 0.79, 0.81 (warning below 0.8), each day to 05:00."""
    for day in range(first, first + nights):
        six = START + timedelta(days=2 + day, hours=6)  # 06:00 ET
        run_date = (six - timedelta(days=1)).date()
        for k in range(6):
            n.until(six + timedelta(minutes=30 * k), step_s=120)
            check(n, "grading_completeness", 0.79 if k % 2 == 0 else 0.81, run_date.isoformat())
        n.until(six + timedelta(hours=23), step_s=300)


def test_a_check_flapping_around_its_threshold_every_night_is_one_warning_not_four_a_night(
    tmp_path: Path, channels: Peers, monkeypatch: pytest.MonkeyPatch,
) -> None:
    """Three nights running, grading completeness for last night (warning below 0.8)
    sits on its threshold each morning (the threshold is wrong, not the grading); the
    fourth morning, the threshold fixed, it reads 0.85 every half hour. Ideal: one
    problem, told as such: the first warning, its resolve (the first recovery cannot be
    told from a real one), the "flapping" warning, kept open through the nights, and its
    resolve once the fourth morning's results have passed for the flap window (60 min),
    at 07:00 ET. Never a page. Measured before the fix: each night its own warning,
    resolve, flapping warning and resolve (the flapping settled an hour after each
    morning's last result, with no result to show it): 6 warnings and 6 resolves."""
    hook, pd_peer, pd = channels
    n = night(tmp_path, channels, monkeypatch, START + timedelta(days=2, minutes=355))
    try:
        flapping_mornings(n, 3)
        after_three = [headline(x) for x in own(posts(hook))]
        six = START + timedelta(days=5, hours=6)
        told: list[int] = []  # messages after each of the fourth morning's results
        for k in range(6):
            n.until(six + timedelta(minutes=30 * k), step_s=120)
            check(n, "grading_completeness", 0.85, (six - timedelta(days=1)).date().isoformat())
            told.append(len(own(posts(hook))))
    finally:
        n.close()
    assert pages(pd_peer) == [] and pd.opened == {}
    texts = own(posts(hook))
    heads = [headline(x) for x in texts]
    assert heads[0] == "WARNING" and heads[1].startswith("RESOLVED after 3") and heads[2] == "WARNING"
    assert "flapping: breached again" in texts[2]
    # Kept open through the nights: the warning's daily reminder (warning_repeat_interval_s,
    # 24 h), no new warning and no resolve, then one resolve at the 07:00 ET result.
    assert after_three[3:] == ["Still firing"] * 2
    assert heads[5:] == ["RESOLVED after 2 d 23 h"]
    assert told == [5, 6, 6, 6, 6, 6]


def test_a_flapping_check_whose_results_stop_while_passing_resolves_after_a_quiet_day(
    tmp_path: Path, channels: Peers, monkeypatch: pytest.MonkeyPatch,
) -> None:
    """One morning of flapping, then no result at all (the check was switched off): the
    flapping alert cannot be shown passing by results, so it resolves once a day has gone
    by without a breach (08:30 ET the next day), not never and not an hour later."""
    hook, pd_peer, _ = channels
    n = night(tmp_path, channels, monkeypatch, START + timedelta(days=2, minutes=355))
    try:
        flapping_mornings(n, 1)  # its last result, 0.81, at 08:30 ET
        last = START + timedelta(days=2, hours=8, minutes=30)
        n.until(last + timedelta(hours=23, minutes=50), step_s=300)
        before = [headline(x) for x in own(posts(hook))]
        n.until(last + timedelta(days=1, minutes=10), step_s=120)
    finally:
        n.close()
    assert pages(pd_peer) == []
    assert before[0] == "WARNING" and before[1].startswith("RESOLVED")
    assert before[2:] == ["WARNING", "Still firing"]  # the warning's daily reminder, at 07:0x
    assert [headline(x) for x in own(posts(hook))] == [*before, "RESOLVED after 25 h 30 min"]
