"""Scheduler outcomes: Cloud Scheduler log entries through the push endpoint, the plain
endpoint, one alert per job for failed attempts and missed fires, resolved when over."""

from __future__ import annotations

import base64
import json
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
import yaml

from alerts.channels.memory import MemoryChannel
from alerts.notification import Notification
from alerts.router import SimpleRouter
from monitor.actuator.notify import Notifier
from monitor.actuator.simulated import simulated
from monitor.app.http.server import create_app
from monitor.app.phasewatch import Phasewatch
from monitor.app.sim.replay import SimulatedWorld
from monitor.checks.result import CheckResult
from monitor.clock import FakeClock
from monitor.config import Config, default_config_text, parse_config
from monitor.errors import ConfigError
from monitor.scheduler.logentry import PauseChange, parse_entry, scheduler_entry
from monitor.scheduler.store import SchedulerStore
from tests.factories import make_event
from tests.test_service import TOKEN, Http

FIXTURES = Path(__file__).parent / "fixtures" / "cloud_scheduler"
URL = "https://nba-phase3-analytics-processors-f7p3g7f6ya-ue.a.run.app/process-date-range"
JOB = {"name": "same-day-phase3", "pipeline": "nba", "phase": "phase3",
       "processor": "upcoming_player_game_context", "cron": "30 10 * * *", "url": URL,
       "grace_min": 15}


def entry(name: str, **changes: Any) -> dict[str, Any]:
    data: dict[str, Any] = json.loads((FIXTURES / f"{name}.json").read_text())
    data.update(changes)
    return data


def push(entry_data: dict[str, Any], message_id: str = "m-1") -> dict[str, Any]:
    data = base64.b64encode(json.dumps(entry_data).encode()).decode()
    return {"message": {"data": data, "messageId": message_id,
                        "attributes": {"logging.googleapis.com/timestamp": entry_data["timestamp"]}},
            "subscription": "projects/nba-props-platform/subscriptions/scheduler-outcomes-push"}


def config_data() -> dict[str, Any]:
    data: dict[str, Any] = yaml.safe_load(default_config_text())
    return data


def with_jobs(*jobs: dict[str, Any]) -> Config:
    data = config_data()
    data["scheduler"] = {"jobs": list(jobs)}
    return parse_config(yaml.safe_dump(data), "test.yaml")


@dataclass
class Rig:
    pw: Phasewatch
    clock: FakeClock
    chat: MemoryChannel
    http: Http

    def advance(self, minutes: float, step_s: float = 30.0) -> None:
        """Tick every ``step_s`` for ``minutes`` of fake time (what serve's loop does)."""
        end = self.clock.now() + timedelta(minutes=minutes)
        while self.clock.now() < end:
            self.clock.advance(step_s)
            self.pw.tick()

    def sent(self, alertname: str) -> list[Notification]:
        return [n for n in self.chat.sent if n.alert.name == alertname]

    def post(self, path: str, body: Any) -> Any:
        return self.http.post(path, json=body, headers={"Authorization": f"Bearer {TOKEN}"})

    def get(self, path: str) -> Any:
        return self.http.get(path, headers={"Authorization": f"Bearer {TOKEN}"})


def build(tmp_path: Path, start: datetime, config: Config | None = None,
          db: str | None = None) -> tuple[Phasewatch, FakeClock, MemoryChannel]:
    clock = FakeClock(start)
    chat = MemoryChannel("chat")
    probe, sinks, checks = simulated(SimulatedWorld())  # every service passes
    pw = Phasewatch.build(config or with_jobs(JOB), db_path=db or tmp_path / "pw.db",
                          clock=clock, channels=[chat], probe=probe, sinks=sinks, checks=checks)
    return pw, clock, chat


@pytest.fixture
def rig(tmp_path: Path) -> Iterator[Rig]:
    pw, clock, chat = build(tmp_path, datetime(2026, 1, 17, 15, 0, tzinfo=UTC))  # 10:00 ET
    http = Http(create_app(pw, TOKEN))
    yield Rig(pw, clock, chat, http)
    http.close()
    pw.close()


# --- the log entries -------------------------------------------------------------------------

@pytest.mark.parametrize(("name", "kind", "ok", "status"), [
    ("attempt_started", "started", None, "started"),
    ("attempt_finished_404", "finished", False, "HTTP 404 NOT_FOUND"),
    ("attempt_finished_deadline", "finished", False, "DEADLINE_EXCEEDED"),
    ("attempt_finished_ok", "finished", True, "HTTP 200"),
    ("attempt_finished_500_other_job", "finished", False, "HTTP 500 INTERNAL"),
])
def test_cloud_scheduler_log_entries_become_attempts(name: str, kind: str, ok: bool | None,
                                                     status: str) -> None:
    raw = (FIXTURES / f"{name}.json").read_bytes()
    found = scheduler_entry(raw)
    assert found is not None
    attempt = parse_entry(found)
    assert (attempt.kind, attempt.ok, attempt.status_text()) == (kind, ok, status)
    assert attempt.job == found["resource"]["labels"]["job_id"]
    assert attempt.url == found["jsonPayload"]["url"]
    assert attempt.attempt_id == found["insertId"]
    assert attempt.at == datetime.fromisoformat(found["timestamp"])


def test_only_scheduler_entries_are_taken_from_the_push_path() -> None:
    event = json.dumps({"event_id": "e", "pipeline": "nba", "phase": "phase3"}).encode()
    run_log = json.dumps({"logName": "projects/p/logs/run.googleapis.com%2Frequests",
                          "resource": {"type": "cloud_run_revision"}}).encode()
    assert scheduler_entry(event) is None and scheduler_entry(run_log) is None
    # by its log name alone (a sink that rewrites nothing else) it is still one
    by_name = entry("attempt_finished_404")
    by_name["resource"] = {"type": "other"}
    assert scheduler_entry(json.dumps(by_name).encode()) is not None


def test_an_error_entry_without_a_status_is_not_a_success() -> None:
    raw = entry("attempt_finished_ok", severity="ERROR", httpRequest={})
    del raw["jsonPayload"]["debugInfo"]
    attempt = parse_entry(raw)
    assert attempt.ok is False and attempt.status_text() == "UNKNOWN"
    # the HTTP status is read from debugInfo when httpRequest has none
    raw = entry("attempt_finished_404", httpRequest={})
    assert parse_entry(raw).http_status == 404


# --- alerts ------------------------------------------------------------------------------------

def test_a_404_alerts_within_five_minutes_once_naming_job_url_and_status(rig: Rig) -> None:
    rig.clock.set(datetime(2026, 1, 17, 15, 30, 1, tzinfo=UTC))
    assert rig.post("/v1/pubsub/push", push(entry("attempt_started"), "m-1")).json()["outcome"] == "stored"
    rig.clock.set(datetime(2026, 1, 17, 15, 30, 3, tzinfo=UTC))
    answer = rig.post("/v1/pubsub/push", push(entry("attempt_finished_404"), "m-2"))
    assert answer.status_code == 200 and answer.json()["outcome"] == "stored"
    rig.advance(5)
    fired = rig.sent("scheduler_attempt_failed")
    assert len(fired) == 1
    summary = fired[0].alert.summary
    assert "same-day-phase3" in summary and URL in summary and "HTTP 404 NOT_FOUND" in summary
    assert fired[0].alert.severity == "critical"
    assert fired[0].alert.labels["phase"] == "phase3"
    # the retry times out 3 minutes later: still one alert for the job
    rig.post("/v1/pubsub/push", push(entry("attempt_finished_deadline"), "m-3"))
    rig.post("/v1/pubsub/push", push(entry("attempt_finished_404"), "m-2"))  # redelivered
    rig.advance(60)
    assert len(rig.sent("scheduler_attempt_failed")) == 1
    status = rig.get("/v1/scheduler-outcomes").json()
    assert status["jobs"][0]["state"] == "failing"
    assert status["jobs"][0]["failing_status"] == "DEADLINE_EXCEEDED"
    assert len(status["attempts"]) == 3
    # the next day's attempt succeeds: resolved
    rig.clock.set(datetime(2026, 1, 18, 15, 30, 5, tzinfo=UTC))
    rig.post("/v1/pubsub/push", push(entry("attempt_finished_ok"), "m-4"))
    rig.advance(10)
    actions = [n.action for n in rig.sent("scheduler_attempt_failed")]
    assert actions == ["trigger", "resolve"]
    assert rig.sent("scheduler_job_missed") == []


def test_a_job_that_does_not_fire_alerts_after_its_grace_and_resolves_when_it_fires(rig: Rig) -> None:
    rig.advance(44.5)  # 10:44:30 ET: inside the 15 min after 10:30
    assert rig.sent("scheduler_job_missed") == []
    rig.advance(6)  # past 10:45 and within 5 minutes of it
    missed = rig.sent("scheduler_job_missed")
    assert len(missed) == 1 and missed[0].alert.severity == "warning"
    assert "did not fire" in missed[0].alert.summary and "10:30" in missed[0].alert.summary
    rig.advance(120)
    assert len(rig.sent("scheduler_job_missed")) == 1
    rig.post("/v1/scheduler-outcomes", {"job": "same-day-phase3", "status": 200,
                                        "timestamp": rig.clock.now().isoformat()})
    rig.advance(10)
    assert [n.action for n in rig.sent("scheduler_job_missed")] == ["trigger", "resolve"]


def test_a_fire_on_time_raises_nothing(rig: Rig) -> None:
    rig.advance(30.5)
    rig.post("/v1/scheduler-outcomes", {"job": "same-day-phase3", "status": 200,
                                        "timestamp": rig.clock.now().isoformat()})
    rig.advance(24 * 60 - 5, step_s=900)  # a whole day: the next fire is due but not late yet
    rig.advance(5)
    assert rig.sent("scheduler_job_missed") == []
    rig.advance(16)
    assert len(rig.sent("scheduler_job_missed")) == 1
    assert rig.sent("scheduler_attempt_failed") == []


def test_unknown_jobs_from_the_sink_are_accepted_listed_and_never_alerted(rig: Rig) -> None:
    rig.clock.set(datetime(2026, 1, 17, 15, 35, 1, tzinfo=UTC))
    answer = rig.post("/v1/pubsub/push", push(entry("attempt_finished_500_other_job")))
    assert answer.json()["outcome"] == "stored"
    rig.advance(5)
    assert rig.sent("scheduler_attempt_failed") == []
    status = rig.get("/v1/scheduler-outcomes").json()
    assert status["unknown_jobs"][0]["job"] == "phasewatch-slo"
    metrics = rig.get("/metrics").text
    assert 'phasewatch_scheduler_attempts_total{job="_unknown",outcome="failed"} 1.0' in metrics


def test_an_old_failure_delivered_late_never_pages(rig: Rig) -> None:
    rig.clock.set(datetime(2026, 1, 17, 23, 0, tzinfo=UTC))  # 7.5 h later: past max_event_age_h
    rig.post("/v1/pubsub/push", push(entry("attempt_finished_404")))
    rig.advance(5)
    assert rig.sent("scheduler_attempt_failed") == []


def test_the_failing_state_survives_a_restart(tmp_path: Path) -> None:
    start = datetime(2026, 1, 17, 15, 30, 3, tzinfo=UTC)
    pw, clock, chat = build(tmp_path, start)
    pw.scheduler.record([parse_entry(entry("attempt_finished_404"))])
    clock.advance(60)
    pw.tick()
    pw.close()
    pw, clock, chat = build(tmp_path, datetime(2026, 1, 18, 15, 30, 5, tzinfo=UTC))
    try:
        assert pw.scheduler.status()["jobs"][0]["state"] == "failing"
        pw.scheduler.record([parse_entry(entry("attempt_finished_ok"))])
        clock.advance(60)
        pw.tick()
        assert [n.action for n in chat.sent if n.alert.name == "scheduler_attempt_failed"] == ["resolve"]
        assert pw.scheduler.status()["jobs"][0]["state"] == "ok"
    finally:
        pw.close()


# --- the plain endpoint --------------------------------------------------------------------------

def test_plain_outcomes_are_validated_naming_the_field(rig: Rig) -> None:
    bad = rig.post("/v1/scheduler-outcomes", {"job": "same-day-phase3", "status": 999})
    assert bad.status_code == 422
    fields = {d["field"] for d in bad.json()["details"]}
    assert fields == {"status", "timestamp"}
    unknown = rig.post("/v1/scheduler-outcomes", [
        {"job": "same-day-phase3", "status": "OK", "timestamp": "2026-01-17T15:30:00Z"},
        {"job": "nope", "status": "OK", "timestamp": "2026-01-17T15:30:00Z"}])
    assert unknown.status_code == 422
    detail = unknown.json()["details"][0]
    assert detail["field"] == "outcomes[1].job" and "same-day-phase3" in detail["message"]
    assert rig.pw.scheduler.store.recent() == []  # nothing of the batch was stored
    naive = rig.post("/v1/scheduler-outcomes", {"job": "same-day-phase3", "status": "OK",
                                                "timestamp": "2026-01-17T15:30:00"})
    assert naive.status_code == 422
    denied = rig.http.post("/v1/scheduler-outcomes", json={"job": "same-day-phase3"})
    assert denied.status_code == 401
    ok = rig.post("/v1/scheduler-outcomes", {"job": "same-day-phase3", "status": "OK",
                                             "timestamp": "2026-01-17T15:30:00Z", "id": "a-1"})
    again = rig.post("/v1/scheduler-outcomes", {"job": "same-day-phase3", "status": "OK",
                                                "timestamp": "2026-01-17T15:30:00Z", "id": "a-1"})
    assert ok.status_code == again.status_code == 202
    assert (ok.json()["accepted"], again.json()["duplicates"]) == (1, 1)
    assert rig.get("/v1/scheduler-outcomes?limit=0").status_code == 400
    assert rig.http.get("/v1/scheduler-outcomes").status_code == 401  # reads need the token too


def test_a_malformed_scheduler_entry_is_dead_lettered(rig: Rig) -> None:
    broken = entry("attempt_finished_404")
    del broken["insertId"]
    answer = rig.post("/v1/pubsub/push", push(broken))
    assert answer.json() == {"outcome": "dead_lettered", "reason": "scheduler_entry"}
    letters = rig.get("/v1/dead-letters").json()["dead_letters"]
    assert "insertId" in letters[0]["detail"]


# --- config ---------------------------------------------------------------------------------------

def test_config_checks_the_jobs_names_and_cron() -> None:
    def problems(job: dict[str, Any]) -> str:
        data = {**config_data(), "scheduler": {"jobs": [{**JOB, **job}]}}
        with pytest.raises(ConfigError) as caught:
            parse_config(yaml.safe_dump(data), "test.yaml")
        return str(caught.value)

    assert "allowed: ['mlb'" not in problems({"pipeline": "nope"})
    assert "'nope' is unknown; allowed: ['nba']" in problems({"pipeline": "nope"})
    assert "phase 'phase9' is unknown" in problems({"phase": "phase9"})
    assert "processor 'x' is not a processor of phase3" in problems({"processor": "x"})
    assert "five fields" in problems({"cron": "every day"})
    assert "five fields" in problems({"cron": "61 10 * * *"})
    assert "unknown timezone" in problems({"timezone": "Mars/Olympus"})


def test_store_keeps_attempts_once(tmp_path: Path) -> None:
    pw, _, _ = build(tmp_path, datetime(2026, 1, 17, 15, 30, 3, tzinfo=UTC))
    try:
        attempt = parse_entry(entry("attempt_finished_404"))
        first = pw.scheduler.record([attempt])
        second = pw.scheduler.record([attempt])
        assert (first.accepted, second.duplicates) == (1, 1)
        assert isinstance(pw.scheduler.store, SchedulerStore)
    finally:
        pw.close()


# --- replay ---------------------------------------------------------------------------------------

def test_replay_scheduler_lines_alert_as_live_ones(tmp_path: Path) -> None:
    from monitor.app.sim.replay import ReplayError, run_replay

    lines = [
        {"type": "scheduler", "job": "same-day-phase3", "status": 404, "url": URL,
         "timestamp": "2026-01-17T15:30:02Z"},
        {"type": "scheduler", "job": "same-day-phase3", "status": "DEADLINE_EXCEEDED",
         "timestamp": "2026-01-17T15:33:02Z"},
        {"type": "scheduler", "job": "same-day-phase3", "status": 200,
         "timestamp": "2026-01-18T15:30:02Z"},
    ]
    path = tmp_path / "events.jsonl"
    path.write_text("".join(json.dumps(line) + "\n" for line in lines))
    report = run_replay(path, with_jobs(JOB)).report
    alerts = [(a["action"], a["summary"]) for a in report["alerts"]
              if a["labels"].get("alertname") == "scheduler_attempt_failed"]
    assert alerts[0][0] == "trigger" and alerts[-1][0] == "resolve"
    assert "HTTP 404" in alerts[0][1] and URL in alerts[0][1]
    path.write_text(json.dumps({**lines[0], "job": "nope"}) + "\n")
    with pytest.raises(ReplayError, match="job: unknown scheduler job; allowed: same-day-phase3"):
        run_replay(path, with_jobs(JOB))


def test_an_attempt_another_process_took_alerts_from_the_leader(rig: Rig) -> None:
    rig.clock.set(datetime(2026, 1, 17, 15, 30, 3, tzinfo=UTC))
    rig.pw.scheduler.acting = lambda: False  # this process follows: it stores, never alerts
    rig.post("/v1/pubsub/push", push(entry("attempt_finished_404")))
    rig.pw.alerting.deliver_alerts(rig.clock.now())
    assert rig.sent("scheduler_attempt_failed") == []
    rig.pw.scheduler.acting = lambda: True  # the leader's tick reads the stored state
    rig.advance(3)
    fired = rig.sent("scheduler_attempt_failed")
    assert len(fired) == 1 and "HTTP 404 NOT_FOUND" in fired[0].alert.summary and URL in fired[0].alert.summary
    rig.pw.scheduler.acting = lambda: False
    rig.clock.set(datetime(2026, 1, 17, 17, 30, 5, tzinfo=UTC))  # a manual re-run succeeds
    rig.post("/v1/pubsub/push", push(entry("attempt_finished_ok", timestamp="2026-01-17T17:30:04Z"),
                                     "m-2"))
    rig.pw.scheduler.acting = lambda: True
    rig.advance(3)
    assert [n.action for n in rig.sent("scheduler_attempt_failed")] == ["trigger", "resolve"]


def test_the_scheduler_store_on_sqlite_and_postgresql(tmp_path: Path, db: str) -> None:
    pw, clock, chat = build(tmp_path, datetime(2026, 1, 17, 15, 30, 3, tzinfo=UTC), db=db)
    try:
        failed = parse_entry(entry("attempt_finished_404"))
        assert pw.scheduler.record([failed, failed]).as_dict() == {
            "accepted": 1, "duplicates": 1, "unknown_jobs": []}
        other = parse_entry(entry("attempt_finished_500_other_job"))
        pw.scheduler.record([other])
        clock.advance(60)
        pw.tick()
        status = pw.scheduler.status()
        assert status["jobs"][0]["state"] == "failing"
        assert [a["job"] for a in status["attempts"]] == ["phasewatch-slo", "same-day-phase3"]
        assert status["unknown_jobs"][0]["attempts"] == 1
        assert [n.action for n in chat.sent if n.alert.name == "scheduler_attempt_failed"] == ["trigger"]
        assert pw.scheduler.pause(PauseChange("same-day-phase3", True, clock.now(), "dana")) == "stored"
        (job,) = pw.scheduler.store.states().values()
        assert (job.paused_since, job.paused_by, job.failing_since) == (clock.now(), "dana", None)
        for _ in range(10):  # to the group's next flush
            clock.advance(60)
            pw.tick()
        assert [n.action for n in chat.sent if n.alert.name == "scheduler_attempt_failed"] == [
            "trigger", "resolve"]
    finally:
        pw.close()


@pytest.mark.parametrize("fails", ["attempt", "fire"])
def test_a_job_whose_work_gets_done_another_way_is_over_until_its_next_time(
    rig: Rig, fails: str,
) -> None:
    """The same-day Phase 3 job gets 404 at 10:30 ET (or never fires), but the push
    subscription starts upcoming_player_game_context anyway and it succeeds at 10:49: the
    day's work is done, so the alert resolves then, saying so, instead of reminding every 4
    hours overnight until the next day's attempt (measured before the fix: the demo's 404
    job, critical, 5 reminders over 24 h). A failure the next day is a new alert."""
    def succeeded(at: datetime) -> None:
        rig.pw.collector.ingest([
            make_event("phase3", "started", (at - timedelta(minutes=10)).isoformat(),
                       "upcoming_player_game_context", run_date="2026-01-17", mode="same_day"),
            make_event("phase3", "succeeded", at.isoformat(), "upcoming_player_game_context",
                       run_date="2026-01-17", mode="same_day")])

    name = "scheduler_attempt_failed" if fails == "attempt" else "scheduler_job_missed"
    if fails == "attempt":
        rig.clock.set(datetime(2026, 1, 17, 15, 30, 3, tzinfo=UTC))
        rig.post("/v1/pubsub/push", push(entry("attempt_finished_404"), "m-2"))
    rig.advance(18.5 if fails == "attempt" else 50.5)
    assert [n.action for n in rig.sent(name)] == ["trigger"]
    done = rig.clock.now()
    succeeded(done)
    rig.advance(10)
    rig.advance(24 * 60 - 70, step_s=300)  # until 09:50 ET the next day
    told = rig.sent(name)
    assert [(n.action, n.repeat) for n in told] == [("trigger", False), ("resolve", False)]
    assert told[1].at - done <= timedelta(minutes=2)
    assert "done another way" in told[1].alert.summary
    if fails == "attempt":  # the next day's attempt fails again: told again
        rig.clock.set(datetime(2026, 1, 18, 15, 30, 3, tzinfo=UTC))
        rig.post("/v1/pubsub/push", push(entry("attempt_finished_404", timestamp=rig.clock.now().isoformat(),
                                               insertId="next-day"), "m-5"))
        rig.advance(10)
        assert [n.action for n in rig.sent(name)] == ["trigger", "resolve", "trigger"]


# --- a person pausing a job (Admin Activity audit entries) -------------------------------------

def audit(method: str, at: datetime, job: str = "same-day-phase3", insert_id: str | None = None,
          ) -> dict[str, Any]:
    data = entry("audit_pause_job", timestamp=at.isoformat(),
                 insertId=insert_id or f"{method}-{job}-{at.isoformat()}")
    data["resource"] = {**data["resource"], "labels": {**data["resource"]["labels"], "job_id": job}}
    data["protoPayload"] = {**data["protoPayload"],
                            "methodName": f"google.cloud.scheduler.v1.CloudScheduler.{method}"}
    return data


def test_a_paused_job_is_not_missed_and_its_missed_alert_ends_with_the_pause(rig: Rig) -> None:
    """10:30 ET due, no fire: missed at 10:45. Dana pauses the job at 10:55 (the target is
    being moved): the missed alert resolves, saying so, one notice tells the pause, and the
    next days' 10:30 are not missed. Resumed two days later: one notice, and the next
    10:30 without a fire is missed again."""
    rig.advance(50)
    assert [n.action for n in rig.sent("scheduler_job_missed")] == ["trigger"]
    paused = audit("PauseJob", rig.clock.now())
    assert rig.post("/v1/pubsub/push", push(paused)).json() == {"outcome": "stored", "reason": None}
    assert rig.post("/v1/pubsub/push", push(paused, "m-2")).json()["outcome"] == "duplicate"
    rig.advance(10)
    missed = rig.sent("scheduler_job_missed")
    assert [n.action for n in missed] == ["trigger", "resolve"]
    assert missed[1].alert.summary.endswith("; dana@nba-props.example paused the job")
    (job,) = rig.get("/v1/scheduler-outcomes").json()["jobs"]
    assert (job["state"], job["paused_by"]) == ("paused", "dana@nba-props.example")
    rig.advance(2 * 24 * 60, step_s=600)
    assert len(rig.sent("scheduler_job_missed")) == 2
    resumed = audit("ResumeJob", rig.clock.now())
    assert rig.post("/v1/pubsub/push", push(resumed, "m-3")).json()["outcome"] == "stored"
    late = audit("PauseJob", rig.clock.now() - timedelta(hours=1), insert_id="late-pause")
    assert rig.post("/v1/pubsub/push", push(late, "m-4")).json()["outcome"] == "duplicate"
    rig.advance(24 * 60, step_s=600)
    assert [n.alert.summary.split(" by ")[0] for n in rig.chat.sent
            if n.alert.name in ("scheduler_job_paused", "scheduler_job_resumed")] == [
        "scheduler job same-day-phase3 paused", "scheduler job same-day-phase3 resumed"]
    (resume,) = rig.sent("scheduler_job_resumed")
    assert "after 2 d 0 h" in resume.alert.summary
    assert [n.action for n in rig.sent("scheduler_job_missed")] == ["trigger", "resolve", "trigger"]


def test_audit_entries_of_other_changes_or_jobs_are_ignored_and_a_broken_one_dead_lettered(
    rig: Rig,
) -> None:
    now = rig.clock.now()
    for data in (audit("UpdateJob", now), audit("RunJob", now),
                 audit("PauseJob", now, job="phasewatch-slo")):  # not configured
        assert rig.post("/v1/pubsub/push", push(data)).json() == {"outcome": "ignored",
                                                                  "reason": None}
    broken = audit("PauseJob", now)
    del broken["protoPayload"]["methodName"]
    answer = rig.post("/v1/pubsub/push", push(broken, "m-9")).json()
    assert answer == {"outcome": "dead_lettered", "reason": "scheduler_entry"}
    letters = rig.get("/v1/dead-letters").json()["dead_letters"]
    assert "protoPayload.methodName" in letters[0]["detail"]
    (job,) = rig.get("/v1/scheduler-outcomes").json()["jobs"]
    assert job["state"] == "ok" and job["paused_since"] is None


# --- a job left paused while its work is due ----------------------------------------------------

GAME_DAYS = {"expected_when": {"games_today": "> 0"}}
OVERNIGHT = {"name": "overnight-phase4", "pipeline": "nba", "phase": "phase4", "cron": "0 6 * * *",
             "url": "http://127.0.0.1:8104/process-date", "run_date_days_ago": 1, **GAME_DAYS}


def games(rig: Rig, count: int, day: str) -> None:
    rig.pw.checks.record([CheckResult("games_today", count, rig.clock.now(), None,
                                      date.fromisoformat(day), "nba", "api")])


@pytest.fixture
def paused_rig(tmp_path: Path) -> Iterator[Rig]:
    """Both jobs watched on game days, paused by Dana at 10:00 ET on 2026-01-17."""
    config = with_jobs({**JOB, **GAME_DAYS}, OVERNIGHT)
    pw, clock, chat = build(tmp_path, datetime(2026, 1, 17, 15, 0, tzinfo=UTC), config)
    http = Http(create_app(pw, TOKEN))
    rig = Rig(pw, clock, chat, http)
    for i, job in enumerate(("same-day-phase3", "overnight-phase4")):
        rig.post("/v1/pubsub/push", push(audit("PauseJob", clock.now(), job=job), f"p-{i}"))
    yield rig
    http.close()
    pw.close()


def test_a_job_left_paused_is_told_once_on_the_first_day_with_work_and_ends_with_its_resume(
    paused_rig: Rig,
) -> None:
    """No result of games_today on the 17th, none played that day (0), 4 games on the 18th:
    the same-day job's 10:30 ET on the 18th is the first time its work is due while paused
    (one warning), the overnight job's is 06:00 ET on the 19th (the 18th's games: its
    ``run_date_days_ago``); a day on, still paused, the same warning is reminded, not
    raised again. Each resume resolves its warning, saying so, with no resume notice."""
    rig = paused_rig
    rig.advance(24 * 60 - 60, step_s=300)  # the 17th's 10:30 and the 18th's 06:00 pass: no work known
    assert rig.sent("scheduler_job_left_paused") == []
    games(rig, 0, "2026-01-17")
    rig.advance(1)  # results are one per check and time
    games(rig, 4, "2026-01-18")
    rig.advance(24 * 60 - 1, step_s=300)  # to 09:00 ET on the 19th
    rig.advance(120, step_s=300)  # past the 19th's 10:30 + grace
    told = rig.sent("scheduler_job_left_paused")
    assert [(n.action, n.alert.labels["job"], n.repeat) for n in told] == [
        ("trigger", "same-day-phase3", False), ("trigger", "overnight-phase4", False),
        ("trigger", "same-day-phase3", True)]  # a day on: the warning's daily reminder
    assert "games_today = 4 for 2026-01-18" in told[0].alert.summary
    assert "games_today = 4 for 2026-01-18" in told[1].alert.summary
    assert "(by dana@nba-props.example since 2026-01-17 15:00 UTC)" in told[0].alert.summary
    judged = datetime(2026, 1, 18, 15, 45, tzinfo=UTC)  # 10:30 ET + 15 min grace
    assert timedelta(0) <= told[0].at - judged <= timedelta(minutes=10)  # ticks of 5 min, group wait
    for i, job in enumerate(("same-day-phase3", "overnight-phase4")):
        rig.post("/v1/pubsub/push", push(audit("ResumeJob", rig.clock.now(), job=job), f"r-{i}"))
    rig.advance(10)
    told = rig.sent("scheduler_job_left_paused")
    assert [n.action for n in told] == ["trigger"] * 3 + ["resolve"] * 2
    assert all(n.alert.summary.endswith("dana@nba-props.example resumed the job") for n in told[3:])
    assert rig.sent("scheduler_job_resumed") == []  # the resolves said it
    assert [n.action for n in rig.sent("scheduler_job_missed")] == []


def test_a_check_result_after_a_paused_jobs_grace_is_read_for_that_time(paused_rig: Rig) -> None:
    """The games_today result for the 17th arrives at 11:30 ET, after the paused same-day
    job's 10:30 time and its 15 minutes of grace were judged with no value. Ideal: the job is
    told left paused once, at the next look after the result (4 games), not first the next
    day; a result of 0 games for the 18th, as late, tells nothing that day. Before: the
    late result was never read for the 17th's time."""
    rig = paused_rig
    rig.advance(90, step_s=60)  # 11:30 ET: the 10:30 was judged at 10:45, nothing known
    assert rig.sent("scheduler_job_left_paused") == []
    games(rig, 4, "2026-01-17")
    rig.advance(5, step_s=60)
    told = [n for n in rig.sent("scheduler_job_left_paused") if n.alert.labels["job"] == JOB["name"]]
    assert [(n.action, n.repeat) for n in told] == [("trigger", False)]
    assert "games_today = 4 for 2026-01-17" in told[0].alert.summary
    assert told[0].alert.labels["due"].startswith("2026-01-17T10:30")
    assert timedelta(0) <= told[0].at - datetime(2026, 1, 17, 16, 30, tzinfo=UTC) <= timedelta(minutes=5)
    rig.post("/v1/pubsub/push", push(audit("ResumeJob", rig.clock.now(), job=JOB["name"]), "r-0"))
    rig.advance(5, step_s=60)
    for job in (JOB["name"],):
        rig.post("/v1/pubsub/push", push(audit("PauseJob", rig.clock.now(), job=job), "p-again"))
    rig.clock.set(datetime(2026, 1, 18, 16, 30, tzinfo=UTC))  # 11:30 ET on the 18th
    rig.advance(1, step_s=60)
    games(rig, 0, "2026-01-18")
    rig.advance(30, step_s=60)
    told = [n for n in rig.sent("scheduler_job_left_paused") if n.alert.labels["job"] == JOB["name"]]
    assert [n.action for n in told] == ["trigger", "resolve"]


def test_a_late_check_result_after_the_resume_tells_nothing(paused_rig: Rig) -> None:
    """The same late result (11:30 ET), but Dana resumed the job at 11:00: it is no longer
    left paused, nothing is told."""
    rig = paused_rig
    rig.advance(60, step_s=60)
    rig.post("/v1/pubsub/push", push(audit("ResumeJob", rig.clock.now(), job=JOB["name"]), "r-0"))
    rig.advance(30, step_s=60)
    games(rig, 4, "2026-01-17")
    rig.advance(30, step_s=60)
    assert [n for n in rig.sent("scheduler_job_left_paused")
            if n.alert.labels["job"] == JOB["name"]] == []


def test_a_paused_job_whose_work_was_done_another_way_is_not_left_paused(paused_rig: Rig) -> None:
    """4 games on the 17th, but the push subscription starts upcoming_player_game_context at
    10:25 ET and it succeeds at 10:40, before the job's time is judged: nothing is at risk,
    nothing told."""
    rig = paused_rig
    games(rig, 4, "2026-01-17")
    rig.advance(25, step_s=60)
    rig.pw.collector.ingest([
        make_event("phase3", "started", rig.clock.now().isoformat(),
                   "upcoming_player_game_context", mode="same_day")])
    rig.advance(15, step_s=60)
    rig.pw.collector.ingest([
        make_event("phase3", "succeeded", rig.clock.now().isoformat(),
                   "upcoming_player_game_context", mode="same_day")])
    rig.advance(60, step_s=300)
    assert rig.sent("scheduler_job_left_paused") == []


def test_config_checks_a_jobs_expected_when() -> None:
    def problems(job: dict[str, Any]) -> str:
        data = {**config_data(), "scheduler": {"jobs": [{**JOB, **job}]}}
        with pytest.raises(ConfigError) as caught:
            parse_config(yaml.safe_dump(data), "test.yaml")
        return str(caught.value)

    unknown = problems({"expected_when": {"games_tonight": "> 0"}})
    assert "scheduler.jobs[0:same-day-phase3].expected_when names checks ['games_tonight']" in unknown
    assert "allowed: [" in unknown and "'games_today'" in unknown
    assert "expected an operator" in problems({"expected_when": {"games_today": "some"}})
    assert "run_date_days_ago" in problems({"run_date_days_ago": -1})


def test_an_explainer_that_fails_never_stops_the_alert(caplog: pytest.LogCaptureFixture) -> None:
    """A component explaining an alert (the paused jobs) adds lines to its details; one that
    raises is logged and the alert goes out with what the others said."""
    channel = MemoryChannel("chat")
    notifier = Notifier(SimpleRouter([channel]))

    def broken(kind: str, labels: Mapping[str, str]) -> list[str]:
        raise RuntimeError("store gone")

    notifier.explainers += [broken, lambda kind, labels: [f"{kind} of {labels['pipeline']}"]]
    at = datetime(2026, 1, 17, 15, 0, tzinfo=UTC)
    notifier.fire("expectation", "critical", "no predictions", at, {"pipeline": "nba"}, "games 9")
    (sent,) = channel.sent
    assert sent.alert.details == "games 9\nexpectation of nba"
    assert "event=notify.explainer_failed kind=expectation" in caplog.text


def test_a_left_paused_job_that_fires_again_is_over_even_if_its_resume_went_unheard(
    paused_rig: Rig,
) -> None:
    """The resume's audit entry never arrives (a sink filter without ResumeJob), but the job
    fires the next day: the warning resolves with that fire, not reminded forever. (The
    overnight job, still paused, is told for the 17th's games on the 18th: another job.)"""
    rig = paused_rig
    games(rig, 4, "2026-01-17")
    rig.advance(60, step_s=300)
    assert [n.action for n in rig.sent("scheduler_job_left_paused")] == ["trigger"]
    rig.clock.set(datetime(2026, 1, 18, 15, 30, 2, tzinfo=UTC))
    rig.post("/v1/pubsub/push", push(entry("attempt_finished_ok", timestamp=rig.clock.now().isoformat(),
                                           insertId="next-day-fire"), "m-9"))
    rig.advance(5)
    told = [n for n in rig.sent("scheduler_job_left_paused") if n.alert.labels["job"] == JOB["name"]]
    assert [n.action for n in told] == ["trigger", "resolve"]
    assert told[1].alert.summary.endswith("; it fired at 15:30 UTC")
    games(rig, 6, "2026-01-19")  # a game day: the job fires on time, still "paused" here
    rig.clock.set(datetime(2026, 1, 19, 15, 30, 2, tzinfo=UTC))
    rig.post("/v1/pubsub/push", push(entry("attempt_finished_ok", timestamp=rig.clock.now().isoformat(),
                                           insertId="third-day-fire"), "m-10"))
    rig.advance(30, step_s=300)
    assert len([n for n in rig.sent("scheduler_job_left_paused")
                if n.alert.labels["job"] == JOB["name"]]) == 2
