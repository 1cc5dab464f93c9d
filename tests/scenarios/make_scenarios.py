"""Writes the incident scenarios tests/scenarios/*.jsonl (the committed files are the fixtures).

    python tests/scenarios/make_scenarios.py
"""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from pathlib import Path
from zoneinfo import ZoneInfo

OUT = Path(__file__).resolve().parent
ET = ZoneInfo("America/New_York")


class S:
    def __init__(self, prefix):
        self.prefix, self.n, self.lines = prefix, 0, []

    def t(self, text):
        return datetime.fromisoformat(text.replace("Z", "+00:00"))

    def ev(self, at, run_date, mode, phase, status, processor=None, **fields):
        self.n += 1
        at = at if isinstance(at, datetime) else self.t(at)
        body = {"event_id": f"{self.prefix}-{self.n:04d}", "pipeline": "nba", "run_date": run_date,
                "mode": mode, "phase": phase}
        if mode is None:  # derived by phasewatch from the config's mode rules
            del body["mode"]
        if processor:
            body["processor"] = processor
        body.update(status=status, timestamp=at.isoformat().replace("+00:00", "Z"))
        body.update(fields)
        self.lines.append((at, self.n, body))

    def health(self, at, service, status, body=None):
        self.n += 1
        at = at if isinstance(at, datetime) else self.t(at)
        line = {"type": "health", "service": service, "status": status,
                "timestamp": at.isoformat().replace("+00:00", "Z")}
        if body is not None:
            line["body"] = body
        self.lines.append((at, self.n, line))

    def target(self, at, phase, status):
        self.n += 1
        at = at if isinstance(at, datetime) else self.t(at)
        self.lines.append((at, self.n, {"type": "target", "phase": phase, "status": status,
                                        "timestamp": at.isoformat().replace("+00:00", "Z")}))

    def check(self, at, name, value, entities=None):
        self.n += 1
        at = at if isinstance(at, datetime) else self.t(at)
        line = {"type": "check", "name": name, "value": value,
                "timestamp": at.isoformat().replace("+00:00", "Z")}
        if entities is not None:
            line["entities"] = entities
        self.lines.append((at, self.n, line))

    def deploy(self, at, service, version=None):
        self.n += 1
        at = at if isinstance(at, datetime) else self.t(at)
        line = {"type": "deploy", "service": service,
                "timestamp": at.isoformat().replace("+00:00", "Z")}
        if version is not None:
            line["version"] = version
        self.lines.append((at, self.n, line))

    def scheduler(self, at, job, status):
        self.n += 1
        at = at if isinstance(at, datetime) else self.t(at)
        self.lines.append((at, self.n, {"type": "scheduler", "job": job, "status": status,
                                        "timestamp": at.isoformat().replace("+00:00", "Z")}))

    def run(self, rd, mode, phase, processor, start, end, status="succeeded", **fields):
        self.ev(start, rd, mode, phase, "started", processor)
        self.ev(end, rd, mode, phase, status, processor, **fields)

    def write(self, name):
        self.lines.sort(key=lambda x: (x[0], x[1]))
        (OUT / name).write_text("".join(json.dumps(item[2]) + "\n" for item in self.lines))


PHASE2 = ["p2_odds_game_lines", "p2_nbacom_gamebook_pdf", "p2_nbacom_boxscores",
          "p2_bigdataball_pbp", "p2_odds_player_props"]
PHASE3 = ["team_offense_game_summary", "player_game_summary", "team_defense_game_summary",
          "upcoming_player_game_context", "upcoming_team_game_context"]
PHASE4 = ["team_defense_zone_analysis", "player_shot_zone_analysis", "player_composite_factors",
          "player_daily_cache", "ml_feature_store"]
CTX = dict(records=470, expected_records=481)
PGS = dict(records=240, expected_records=250)


def minutes(at, m):
    return at + timedelta(minutes=m)


# --- incident 5: mode-aware Phase 3 -> 4 rule, 2/5 done (1 critical): no trigger -------
s = S("i05")
RD, M = "2026-01-17", "overnight"
for i, p in enumerate(PHASE2):
    s.run(RD, M, "phase2", p, "2026-01-18T06:05:00Z", f"2026-01-18T06:{10 + 5 * i:02d}:00Z")
s.run(RD, M, "phase3", "upcoming_player_game_context", "2026-01-18T06:40:00Z",
      "2026-01-18T07:01:00Z", **CTX)                                   # T0
s.ev("2026-01-18T06:45:00Z", RD, M, "phase3", "started", "team_offense_game_summary")
s.ev("2026-01-18T08:30:00Z", RD, M, "phase3", "succeeded", "team_offense_game_summary")
# The worker's missing dependency: Pub/Sub redelivers 20+ times a minute.
s.health("2026-01-18T07:04:00Z", "prediction-worker", "fail",
         {"status": "unhealthy", "checks_failed": ["imports"],
          "error": "ImportError: cannot import name 'firestore' from 'google.cloud'"})
at = s.t("2026-01-18T07:04:00Z")
for i in range(24):
    s.ev(at + timedelta(seconds=4 * i), "2026-01-18", "same_day", "phase5", "started",
         "prediction-worker")
    s.ev(at + timedelta(seconds=4 * i + 2), "2026-01-18", "same_day", "phase5", "failed",
         "prediction-worker",
         error="ImportError: cannot import name 'firestore' from 'google.cloud' (unknown location)")
s.health("2026-01-18T12:30:00Z", "prediction-worker", "pass", {"status": "healthy"})
s.write("incident05_phase3_blocked.jsonl")

# --- incident 5, the other half: critical done and 3/5 -> degraded trigger ------------
s = S("i05b")
for i, p in enumerate(PHASE2):
    s.run(RD, M, "phase2", p, "2026-01-18T06:05:00Z", f"2026-01-18T06:{10 + 5 * i:02d}:00Z")
s.run(RD, M, "phase3", "player_game_summary", "2026-01-18T06:40:00Z", "2026-01-18T07:01:00Z", **PGS)
s.run(RD, M, "phase3", "upcoming_player_game_context", "2026-01-18T06:40:00Z",
      "2026-01-18T07:10:00Z", **CTX)
s.run(RD, M, "phase3", "team_offense_game_summary", "2026-01-18T06:45:00Z", "2026-01-18T07:20:00Z")
s.ev("2026-01-18T07:22:00Z", RD, M, "grading", "started")
for p in PHASE4:
    s.ev("2026-01-18T07:25:00Z", RD, M, "phase4", "started", p)
s.write("incident05_degraded_trigger.jsonl")

# --- incident 6: crash-looping Phase 3 and 4 services, triggers held until healthy -----
s = S("i06")
RD = "2026-01-20"
boom = {"status": "error",
        "error": "TypeError: HealthChecker.__init__() got an unexpected keyword argument 'project_id'"}
# The Week-1 merge is deployed: the analytics service by a deploy notification (POST
# /v1/deploys), the precompute service seen as a new `version` in its health body.
s.health("2026-01-21T05:30:00Z", "nba-phase4-precompute-processors", "pass",
         {"status": "pass", "version": "2026.01.19-r41"})
s.deploy("2026-01-21T05:40:00Z", "nba-phase3-analytics-processors", "2026.01.20-week1")
s.health("2026-01-21T06:00:00Z", "nba-phase3-analytics-processors", "fail", boom)
s.health("2026-01-21T06:00:00Z", "nba-phase4-precompute-processors", "fail",
         {**boom, "version": "2026.01.20-week1"})
s.ev("2026-01-21T07:00:00Z", RD, M, "phase1", "started")
s.ev("2026-01-21T07:30:00Z", RD, M, "phase1", "succeeded")
for i, p in enumerate(PHASE2):
    s.run(RD, M, "phase2", p, "2026-01-21T07:35:00Z", minutes(s.t("2026-01-21T07:40:00Z"), 5 * i))
# 16:10: a redeploy answers healthy but runs the precompute code (wrong identity).
s.health("2026-01-21T16:10:00Z", "nba-phase3-analytics-processors", "pass",
         {"status": "healthy", "service": "precompute-processor"})
s.health("2026-01-21T16:19:00Z", "nba-phase3-analytics-processors", "pass",
         {"status": "healthy", "service": "analytics-processor"})
s.health("2026-01-21T16:19:00Z", "nba-phase4-precompute-processors", "pass",
         {"status": "healthy", "service": "precompute-processor"})
for i, p in enumerate(PHASE3):
    extra = CTX if p == "upcoming_player_game_context" else PGS if p == "player_game_summary" else {}
    s.run(RD, M, "phase3", p, "2026-01-21T16:25:00Z", f"2026-01-21T16:{35 + 5 * i:02d}:00Z", **extra)
s.ev("2026-01-21T17:00:00Z", RD, M, "grading", "started")
for i, p in enumerate(PHASE4):
    s.run(RD, M, "phase4", p, "2026-01-21T17:00:00Z", f"2026-01-21T17:{20 + 5 * i:02d}:00Z")
s.ev("2026-01-21T17:45:00Z", RD, M, "phase5", "started", "prediction-coordinator")
s.write("incident06_crashloop.jsonl")

# --- incident 11: a trigger that failed, then had no effect; stalled batches ----------
s = S("i11")
RD = "2026-02-04"
# Yesterday's leftovers: two same-day batches at 0% since 05:00.
for b in ("batch_2026-02-05_1770267600", "batch_2026-02-05_1770267700"):
    s.ev("2026-02-05T05:00:00Z", "2026-02-05", "same_day", "phase5", "progress",
         "prediction-worker", batch_id=b, done=0, total=136)
for b in ("batch_2026-02-05_1770267600", "batch_2026-02-05_1770267700"):
    s.ev("2026-02-05T05:17:00Z", "2026-02-05", "same_day", "phase5", "failed",
         "prediction-worker", batch_id=b, done=0, total=136, error="force-completed by /check-stalled")
s.target("2026-02-05T06:00:00Z", "phase4", "fail")
for i, p in enumerate(PHASE3):
    extra = CTX if p == "upcoming_player_game_context" else PGS if p == "player_game_summary" else {}
    end = "2026-02-05T07:03:23Z" if p == "upcoming_player_game_context" else (
        f"2026-02-05T06:{35 + 5 * i:02d}:00Z")
    s.run(RD, M, "phase3", p, "2026-02-05T06:20:00Z", end, **extra)
s.ev("2026-02-05T07:10:00Z", RD, M, "grading", "started")
s.ev("2026-02-05T07:40:00Z", RD, M, "grading", "succeeded")
s.target("2026-02-05T07:40:00Z", "phase4", "ok")
for i, p in enumerate(PHASE4):
    s.run(RD, M, "phase4", p, "2026-02-05T08:05:00Z", f"2026-02-05T08:{25 + 5 * i:02d}:00Z")
s.run(RD, M, "phase5", "prediction-coordinator", "2026-02-05T08:50:00Z", "2026-02-05T08:51:00Z")
b1 = "batch_2026-02-04_1770281520"
s.ev("2026-02-05T08:52:00Z", RD, M, "phase5", "started", "prediction-worker", batch_id=b1, done=0, total=136)
for at, done in (("09:00", 40), ("09:08", 80), ("09:15", 119)):
    s.ev(f"2026-02-05T{at}:00Z", RD, M, "phase5", "progress", "prediction-worker",
         batch_id=b1, done=done, total=136)
# After /check-stalled (force) the coordinator closes the batch; /start runs the rest.
s.ev("2026-02-05T09:30:00Z", RD, M, "phase5", "succeeded", "prediction-worker", batch_id=b1,
     done=119, total=136)
b2 = "batch_2026-02-04_1770284000"
s.ev("2026-02-05T09:31:00Z", RD, M, "phase5", "started", "prediction-worker", batch_id=b2, done=0, total=17)
s.ev("2026-02-05T09:40:00Z", RD, M, "phase5", "succeeded", "prediction-worker", batch_id=b2, done=17, total=17)
s.ev("2026-02-05T09:35:00Z", RD, M, "phase6", "started")
s.ev("2026-02-05T09:50:00Z", RD, M, "phase6", "succeeded")
s.write("incident11_orphaned_trigger.jsonl")

# --- incident 12: schema drift; stuck 0% batch; restart only once the worker is green --
s = S("i12")
RD, M = "2026-02-08", "same_day"
s.run(RD, M, "phase5", "prediction-coordinator", "2026-02-08T03:36:00Z", "2026-02-08T03:36:20Z")
b1 = "batch_2026-02-08_1770521760"
s.ev("2026-02-08T03:36:30Z", RD, M, "phase5", "started", "prediction-worker", batch_id=b1, done=0, total=343)
at = s.t("2026-02-08T03:37:00Z")
for i in range(15):
    s.ev(at + timedelta(seconds=30 * i), RD, M, "phase5", "failed", "prediction-worker",
         error=(f"400 Provided Schema does not match Table nba-props-platform:nba_predictions."
                f"player_prop_predictions. Cannot add fields (field: vegas_line_source) "
                f"player 1630{100 + i}"))
s.health("2026-02-08T03:40:00Z", "prediction-worker", "fail",
         {"status": "fail", "checks": {"output_schema": [
             {"status": "fail", "output": "missing columns vegas_line_source, required_default_count"}]}})
s.ev("2026-02-08T04:08:00Z", RD, M, "phase5", "failed", "prediction-worker", batch_id=b1, done=0,
     total=343, error="force-completed by /check-stalled")
# The check runner: 10 games today, no predictions (07:00 and 08:00 ET). The FIRST run at
# 08:00 ET cannot write either; the columns are added and the worker is green at 09:00 ET.
s.check("2026-02-08T12:00:00Z", "games_today", 10)
s.check("2026-02-08T12:00:00Z", "predictions_today", 0)
s.check("2026-02-08T13:00:00Z", "predictions_today", 0)
s.health("2026-02-08T14:00:00Z", "prediction-worker", "pass", {"status": "pass"})
b2 = "batch_2026-02-08_1770559200"
s.ev("2026-02-08T14:02:00Z", RD, M, "phase5", "started", "prediction-worker", batch_id=b2, done=0, total=343)
s.ev("2026-02-08T14:12:00Z", RD, M, "phase5", "progress", "prediction-worker", batch_id=b2, done=200, total=343)
s.ev("2026-02-08T14:20:00Z", RD, M, "phase5", "succeeded", "prediction-worker", batch_id=b2, done=343, total=343)
s.check("2026-02-08T14:25:00Z", "predictions_today", 343)
s.ev("2026-02-08T14:25:00Z", RD, M, "phase6", "started")
s.ev("2026-02-08T14:33:00Z", RD, M, "phase6", "succeeded")
s.write("incident12_schema_drift.jsonl")

# --- incident 13: data-driven 2 -> 3, coverage and check gates -----------------------
s = S("i13")
RD, M = "2026-02-10", "same_day"
names = {"p2_odds_game_lines": "OddsApiGameLinesBatchProcessor",
         "p2_nbacom_boxscores": "NbacPlayerBoxscoreProcessor",
         "p2_odds_player_props": "OddsApiPropsBatchProcessor",
         "p2_nbacom_gamebook_pdf": "p2_nbacom_gamebook_pdf", "p2_bigdataball_pbp": "p2_bigdataball_pbp"}
for i, p in enumerate(PHASE2):
    s.run(RD, M, "phase2", names[p], "2026-02-10T14:00:00Z", f"2026-02-10T14:{10 + 5 * i:02d}:00Z")
s.run(RD, M, "phase3", "upcoming_team_game_context", "2026-02-10T14:35:00Z", "2026-02-10T14:50:00Z")
s.run(RD, M, "phase3", "upcoming_player_game_context", "2026-02-10T14:35:00Z",
      "2026-02-10T15:05:00Z", records=200, expected_records=481)
# 11:00 ET: the same-day-phase4 schedule starts Phase 4 on the partial input anyway.
for i, p in enumerate(PHASE4):
    s.run(RD, M, "phase4", p, "2026-02-10T16:00:00Z", f"2026-02-10T16:{20 + 5 * i:02d}:00Z")
s.check("2026-02-10T16:20:00Z", "feature_store_clean_player_pct", 40.0)
# The upstream fix: Phase 3 re-run for the date, then Phase 4 (dependency order).
s.run(RD, M, "phase3", "upcoming_player_game_context", "2026-02-10T18:00:00Z",
      "2026-02-10T18:20:00Z", records=478, expected_records=481)
for i, p in enumerate(PHASE4):
    s.run(RD, M, "phase4", p, "2026-02-10T18:25:00Z", f"2026-02-10T18:{30 + 3 * i:02d}:00Z")
s.check("2026-02-10T18:46:00Z", "feature_store_clean_player_pct", 95.0)
s.ev("2026-02-10T18:58:00Z", RD, M, "phase5", "started", "prediction-coordinator")
s.write("incident13_coverage_gate.jsonl")

# --- incident 13, the ideal response: subscriber not invoked, coverage drop and mass
# lockout, then (the test's manual action at 18:00) a cascade re-run 3 -> 4 -> 5 -> 6 -----
s = S("i13r")
M = "same_day"


def phase2_done(rd, day):
    for i, p in enumerate(PHASE2):
        s.run(rd, M, "phase2", names[p], f"{day}T14:00:00Z", f"{day}T14:{10 + 5 * i:02d}:00Z")


def downstream(rd, day, hour):
    """Phase 4 (five processors), Phase 5 (coordinator, worker) and Phase 6 from ``hour``."""
    for i, p in enumerate(PHASE4):
        s.run(rd, M, "phase4", p, f"{day}T{hour}:05:00Z", f"{day}T{hour}:{10 + 5 * i:02d}:00Z")
    s.run(rd, M, "phase5", "prediction-coordinator", f"{day}T{hour}:35:00Z", f"{day}T{hour}:37:00Z")
    s.run(rd, M, "phase5", "prediction-worker", f"{day}T{hour}:37:00Z", f"{day}T{hour}:50:00Z")
    s.ev(f"{day}T{hour}:52:00Z", rd, M, "phase6", "started")
    s.ev(f"{day}T{hour}:55:00Z", rd, M, "phase6", "succeeded")


# The day before: the subscription starts Phase 3 five minutes after Phase 2's traffic.
phase2_done("2026-02-09", "2026-02-09")
s.run("2026-02-09", M, "phase3", "upcoming_team_game_context", "2026-02-09T14:15:00Z",
      "2026-02-09T14:30:00Z")
s.run("2026-02-09", M, "phase3", "upcoming_player_game_context", "2026-02-09T14:15:00Z",
      "2026-02-09T14:45:00Z", records=470, expected_records=481)
downstream("2026-02-09", "2026-02-09", "14")
# The incident: a redeploy stripped roles/run.invoker; pushes get 403, nothing starts Phase 3
# until the same-day-phase3 schedule at 10:30 ET (15:30 UTC).
RD = "2026-02-10"
phase2_done(RD, RD)                                                        # T0 = 14:10
s.run(RD, M, "phase3", "upcoming_team_game_context", "2026-02-10T15:30:00Z", "2026-02-10T15:40:00Z")
s.run(RD, M, "phase3", "upcoming_player_game_context", "2026-02-10T15:30:00Z",
      "2026-02-10T16:00:00Z", records=200, expected_records=481,
      attributes={"failures.dependency_missing": "281", "failures.circuit_breaker_open": "474",
                  "lockouts": "474"})
downstream(RD, RD, "16")                   # the schedules run 4, 5 and 6 on the partial input
# 18:00: the upstream fix is confirmed and the operator starts the cascade re-run (the test
# posts it); the phases answer each re-run trigger.
s.run(RD, M, "phase3", "upcoming_player_game_context", "2026-02-10T18:02:00Z",
      "2026-02-10T18:20:00Z", records=478, expected_records=481)
for i, p in enumerate(PHASE4):
    s.run(RD, M, "phase4", p, "2026-02-10T18:22:00Z", f"2026-02-10T18:{25 + 4 * i:02d}:00Z")
s.run(RD, M, "phase5", "prediction-coordinator", "2026-02-10T18:47:00Z", "2026-02-10T18:48:00Z")
s.run(RD, M, "phase5", "prediction-worker", "2026-02-10T18:48:00Z", "2026-02-10T19:00:00Z")
s.ev("2026-02-10T19:03:00Z", RD, M, "phase6", "started")
s.ev("2026-02-10T19:06:00Z", RD, M, "phase6", "succeeded")
s.write("incident13_ideal_response.jsonl")

# --- playbook (d): incident 13's cascade started by a check (the playbook form) ---------
# The same day as above; the coverage check says 42% at the drop and 99% once the upstream
# fix is in: the cascade playbook re-runs 3 -> 4 -> 5 -> 6 on its own at 18:00.
s.check("2026-02-10T16:30:00Z", "player_context_coverage", 0.42)
s.check("2026-02-10T18:00:00Z", "player_context_coverage", 0.99)
s.write("playbook_cascade.jsonl")


def answer(s, rd, mode, at, phases=("phase5", "phase6")):
    """The phases after Phase 4 answer phasewatch's triggers from ``at`` (UTC)."""
    start = s.t(at)
    if "grading" in phases:
        s.ev(minutes(start, 2), rd, mode, "grading", "started")
        s.ev(minutes(start, 12), rd, mode, "grading", "succeeded")
    if "phase5" in phases:
        s.run(rd, mode, "phase5", "prediction-coordinator", minutes(start, 3), minutes(start, 4))
        s.run(rd, mode, "phase5", "prediction-worker", minutes(start, 4), minutes(start, 18))
        s.ev(minutes(start, 21), rd, mode, "phase6", "started")
        s.ev(minutes(start, 29), rd, mode, "phase6", "succeeded")


def same_day_until_phase3(s, rd, ctx_records=CTX):
    """A same-day run of ``rd``: Phase 3 (started by its subscription) done by 15:05 UTC."""
    s.run(rd, "same_day", "phase3", "upcoming_team_game_context", f"{rd}T14:35:00Z",
          f"{rd}T14:50:00Z")
    s.run(rd, "same_day", "phase3", "upcoming_player_game_context", f"{rd}T14:35:00Z",
          f"{rd}T15:05:00Z", **ctx_records)


# --- playbook (a): re-run only the players the coverage check found missing -----------
s = S("pbr")
RD = "2026-02-10"
same_day_until_phase3(s, RD, dict(records=430, expected_records=481))
for i, p in enumerate(PHASE4):
    s.run(RD, "same_day", "phase4", p, "2026-02-10T15:08:00Z", f"2026-02-10T15:{20 + 3 * i:02d}:00Z")
MISSING = [f"p{1630100 + i}" for i in range(51)]
s.check("2026-02-10T15:10:00Z", "player_context_missing", 51, MISSING)
# The check runs again before the re-run has finished: same players, nothing new to do.
s.check("2026-02-10T15:20:00Z", "player_context_missing", 51, MISSING)
s.run(RD, "same_day", "phase3", "upcoming_player_game_context", "2026-02-10T15:13:00Z",
      "2026-02-10T15:25:00Z", records=481, expected_records=481)
s.check("2026-02-10T15:30:00Z", "player_context_missing", 0, [])
answer(s, RD, "same_day", "2026-02-10T15:32:00Z")
s.write("playbook_rerun_missing.jsonl")

# --- playbook (b): quarantine a storming processor until all games are final ----------
s = S("pbq")
RD, M = "2026-02-10", "overnight"
for i, p in enumerate(PHASE2):
    s.run(RD, M, "phase2", p, "2026-02-11T05:00:00Z", f"2026-02-11T05:{10 + 5 * i:02d}:00Z")
s.check("2026-02-11T05:30:00Z", "all_games_final", 0)
for p in ("team_offense_game_summary", "team_defense_game_summary", "upcoming_team_game_context"):
    s.run(RD, M, "phase3", p, "2026-02-11T05:35:00Z", "2026-02-11T05:45:00Z")
s.run(RD, M, "phase3", "upcoming_player_game_context", "2026-02-11T05:35:00Z",
      "2026-02-11T05:48:00Z", **CTX)
# Pub/Sub redelivers the box-score message every 50 s: 11 starts in 10 min, each fails
# (the last ones time out). The message id is the invocation id: its redeliveries are one
# failed run, not eleven.
at = s.t("2026-02-11T05:50:00Z")
for i in range(11):
    s.ev(at + timedelta(seconds=50 * i), RD, M, "phase3", "started", "player_game_summary",
         invocation_id="msg-5517306")
    s.ev(at + timedelta(seconds=50 * i + 20), RD, M, "phase3", "failed", "player_game_summary",
         invocation_id="msg-5517306",
         error=(f"BoxScoresNotFinal: {3 + i % 2} games still in progress" if i < 9
                else "DeadlineExceeded: 504 Deadline Exceeded"))
s.check("2026-02-11T06:40:00Z", "all_games_final", 0)
s.check("2026-02-11T08:10:00Z", "all_games_final", 1)
s.run(RD, M, "phase3", "player_game_summary", "2026-02-11T08:13:00Z", "2026-02-11T08:30:00Z",
      invocation_id="msg-5521940", **PGS)
for i, p in enumerate(PHASE4):
    s.run(RD, M, "phase4", p, "2026-02-11T08:33:00Z", f"2026-02-11T08:{40 + 3 * i:02d}:00Z")
answer(s, RD, M, "2026-02-11T08:30:00Z", phases=("grading",))
answer(s, RD, M, "2026-02-11T08:52:00Z")
s.write("playbook_quarantine.jsonl")

# --- playbook (c): precompute hits the load-job quota; run it after midnight Pacific ---
s = S("pbd")
RD = "2026-02-10"
same_day_until_phase3(s, RD)
QUOTA = ("google.api_core.exceptions.Forbidden: 403 Quota exceeded: Your table exceeded quota "
         "for imports or query appends per table")
for i, p in enumerate(PHASE4[:3]):
    s.run(RD, "same_day", "phase4", p, "2026-02-10T15:08:00Z", f"2026-02-10T15:{20 + 3 * i:02d}:00Z")
s.run(RD, "same_day", "phase4", "ml_feature_store", "2026-02-10T15:08:00Z", "2026-02-10T15:30:00Z",
      status="failed", error=QUOTA)
s.run(RD, "same_day", "phase4", "player_daily_cache", "2026-02-10T15:08:00Z", "2026-02-10T15:35:00Z",
      status="failed", error=QUOTA)
# 11:30 ET: the predictions backstop sends whatever exists; the pipeline runs them.
answer(s, RD, "same_day", "2026-02-10T16:30:00Z")
# 00:05 PST = 08:05 UTC: phasewatch runs the two again, once.
for p in ("ml_feature_store", "player_daily_cache"):
    s.run(RD, "same_day", "phase4", p, "2026-02-11T08:08:00Z", "2026-02-11T08:30:00Z")
s.write("playbook_defer.jsonl")


# === The sweep: new incidents of the same classes, never seen by the product =============
# (tests/test_incident_sweep.py replays each with a Slack and a PagerDuty channel and counts
# what each was told.)

def scheduled(s, day, jobs=("overnight-phase4", "same-day-phase3", "same-day-predictions")):
    """The operators' Cloud Scheduler jobs fire on time on ``day`` (UTC; EST is UTC-5)."""
    when = {"overnight-phase4": "06:00", "same-day-phase3": "10:30", "same-day-predictions": "11:30"}
    for job in jobs:
        local = datetime.fromisoformat(f"{day}T{when[job]}:05").replace(tzinfo=ET)
        s.scheduler(local.astimezone(UTC), job, 200)


def overnight_until_phase3(s, rd, day, hour="06"):
    """An overnight run of ``rd``: Phase 2 from {hour}:00, all of Phase 3 done by {hour}:40."""
    for i, p in enumerate(PHASE2):
        s.run(rd, "overnight", "phase2", p, f"{day}T{hour}:00:00Z", f"{day}T{hour}:{5 + 2 * i:02d}:00Z")
    for i, p in enumerate(PHASE3):
        extra = CTX if p == "upcoming_player_game_context" else PGS if p == "player_game_summary" else {}
        s.run(rd, "overnight", "phase3", p, f"{day}T{hour}:16:00Z", f"{day}T{hour}:{20 + 4 * i:02d}:00Z",
              **extra)


def overnight_after_phase3(s, rd, day, hour="06"):
    """Phase 4 and grading answer the triggers at {hour}:37, then Phases 5 and 6."""
    for i, p in enumerate(PHASE4):
        s.run(rd, "overnight", "phase4", p, f"{day}T{hour}:38:00Z", f"{day}T{hour}:{42 + 2 * i:02d}:00Z")
    answer(s, rd, "overnight", f"{day}T{hour}:36:00Z", phases=("grading",))
    answer(s, rd, "overnight", f"{day}T{hour}:50:00Z")


# --- sweep 1: a trigger said "done" when nothing ran: the player context succeeded with 0 rows
s = S("sw1")
RD = "2026-03-03"
scheduled(s, RD)
s.run(RD, "same_day", "phase3", "upcoming_team_game_context", f"{RD}T14:35:00Z", f"{RD}T14:41:00Z")
# The BigQuery read of the schedule came back empty (a wrong partition): "success", 0 of 478.
s.run(RD, "same_day", "phase3", "upcoming_player_game_context", f"{RD}T14:35:00Z",
      f"{RD}T14:42:00Z", records=0, expected_records=478)                     # T0 = 14:42
# 11:00 ET: the same-day-phase4 schedule runs Phase 4 anyway (on nothing), 4 of 5 succeed
# with 0 rows; 10:30 ET the same-day-phase3 job re-runs the context and it works.
s.run(RD, "same_day", "phase3", "upcoming_player_game_context", f"{RD}T15:31:00Z",
      f"{RD}T15:50:00Z", records=471, expected_records=478)
for i, p in enumerate(PHASE4):
    s.run(RD, "same_day", "phase4", p, f"{RD}T15:53:00Z", f"{RD}T16:{5 + 3 * i:02d}:00Z")
answer(s, RD, "same_day", f"{RD}T16:20:00Z")
s.write("sweep_empty_success.jsonl")

# --- sweep 2: the scheduler never fires on a game day; a no-game day where silence is right
s = S("sw2")
# 2026-02-12: a 9-game Thursday. Nothing from the same-day run at all: the same-day-phase3
# and same-day-predictions jobs were paused by a Terraform apply, and the event-driven path
# (the tomorrow run the evening before) never ran either.
RD = "2026-02-12"
scheduled(s, RD, jobs=("overnight-phase4",))
overnight_until_phase3(s, "2026-02-11", RD)
overnight_after_phase3(s, "2026-02-11", RD)
for hour in ("11", "12", "13", "14", "15", "16"):
    s.check(f"{RD}T{hour}:00:00Z", "games_today", 9)
    s.check(f"{RD}T{hour}:00:00Z", "predictions_today", 0)
# The pause is found and undone at 17:00 UTC: the job runs by hand, predictions land.
s.scheduler(f"{RD}T17:00:00Z", "same-day-phase3", 200)
same = "same_day"
s.run(RD, same, "phase3", "upcoming_team_game_context", f"{RD}T17:01:00Z", f"{RD}T17:08:00Z")
s.run(RD, same, "phase3", "upcoming_player_game_context", f"{RD}T17:01:00Z", f"{RD}T17:15:00Z", **CTX)
for i, p in enumerate(PHASE4):
    s.run(RD, same, "phase4", p, f"{RD}T17:17:00Z", f"{RD}T17:{20 + 2 * i:02d}:00Z")
answer(s, RD, same, f"{RD}T17:30:00Z")
s.check(f"{RD}T18:00:00Z", "predictions_today", 402)
# 2026-02-13: All-Star break, no games. The jobs fire (daily crons), nothing has work to do.
DAY = "2026-02-13"
scheduled(s, DAY)
for hour in ("11", "12", "13", "14", "15", "16", "17", "18"):
    s.check(f"{DAY}T{hour}:00:00Z", "games_today", 0)
    s.check(f"{DAY}T{hour}:00:00Z", "predictions_today", 0)
s.write("sweep_silent_scheduler.jsonl")

# --- sweep 3: a new crash signature while /health says healthy ---------------------------
s = S("sw3")
RD, DAY = "2026-03-04", "2026-03-05"
scheduled(s, DAY)
s.health(f"{DAY}T05:00:00Z", "nba-phase4-precompute-processors", "pass",
         {"status": "healthy", "service": "precompute-processor"})
overnight_until_phase3(s, RD, DAY)
answer(s, RD, "overnight", f"{DAY}T06:36:00Z", phases=("grading",))
# Phase 4 starts; ml_feature_store crashes on every message: a column renamed upstream. Each
# Pub/Sub redelivery is a new invocation of the same message; /health stays 200.
for p in PHASE4[:4]:
    s.run(RD, "overnight", "phase4", p, f"{DAY}T06:45:00Z", f"{DAY}T06:58:00Z")
at = s.t(f"{DAY}T06:45:00Z")
for i in range(14):
    s.ev(at + timedelta(seconds=70 * i), RD, "overnight", "phase4", "started", "ml_feature_store",
         invocation_id=f"exec-{4410 + i}")
    s.ev(at + timedelta(seconds=70 * i + 25), RD, "overnight", "phase4", "failed", "ml_feature_store",
         invocation_id=f"exec-{4410 + i}",
         error=(f"KeyError: 'opp_pace_last_10' while building features for player "
                f"{1629000 + 37 * i} (row {118 + 3 * i})"))
# 08:40 UTC: the fix is deployed; the next run succeeds.
s.deploy(f"{DAY}T08:40:00Z", "nba-phase4-precompute-processors", "2026.03.05-r2")
s.run(RD, "overnight", "phase4", "ml_feature_store", f"{DAY}T08:45:00Z", f"{DAY}T08:58:00Z",
      invocation_id="exec-4470")
answer(s, RD, "overnight", f"{DAY}T09:00:00Z")
s.write("sweep_crash_signature_healthy.jsonl")

# --- sweep 4: one failed invocation, its completion message redelivered 30 times ----------
s = S("sw4")
RD, DAY = "2026-03-05", "2026-03-06"
scheduled(s, DAY)
overnight_until_phase3(s, RD, DAY)
answer(s, RD, "overnight", f"{DAY}T06:36:00Z", phases=("grading",))
for p in PHASE4[:3] + PHASE4[4:]:
    s.run(RD, "overnight", "phase4", p, f"{DAY}T06:45:00Z", f"{DAY}T06:58:00Z")
s.ev(f"{DAY}T06:45:00Z", RD, "overnight", "phase4", "started", "player_daily_cache",
     invocation_id="exec-9001")
failed_at = s.t(f"{DAY}T07:00:00Z")
s.ev(failed_at, RD, "overnight", "phase4", "failed", "player_daily_cache",
     invocation_id="exec-9001", error="RuntimeError: BigQuery job bqjob_r5e1 failed: backend error")
first = s.lines[-1][2]
# The subscriber acked late: Pub/Sub redelivers the same message (same event id) 15 times,
# and the processor's publisher retried its own publish 15 times (a new event id each).
for i in range(15):
    s.n += 1
    s.lines.append((failed_at + timedelta(seconds=40 * (i + 1)), s.n, dict(first)))
    s.ev(failed_at + timedelta(seconds=40 * (i + 1) + 5), RD, "overnight", "phase4", "failed",
         "player_daily_cache", invocation_id="exec-9001",
         error="RuntimeError: BigQuery job bqjob_r5e1 failed: backend error")
# The retry (a new invocation) succeeds at 07:30.
s.run(RD, "overnight", "phase4", "player_daily_cache", f"{DAY}T07:20:00Z", f"{DAY}T07:30:00Z",
      invocation_id="exec-9002")
answer(s, RD, "overnight", f"{DAY}T07:31:00Z")
s.write("sweep_redelivered_failure.jsonl")

# --- sweep 5: the coordinator is down 6 hours across three runs ---------------------------
s = S("sw5")
DAY = "2026-03-07"
scheduled(s, DAY, jobs=("overnight-phase4", "same-day-phase3"))
s.scheduler(f"{DAY}T16:30:05Z", "same-day-predictions", 503)
down = {"status": "unhealthy", "error": "Cloud SQL connection refused (instance maintenance)"}
s.health(f"{DAY}T11:00:00Z", "prediction-coordinator", "pass", {"status": "healthy"})
s.health(f"{DAY}T11:45:00Z", "prediction-coordinator", "fail", down)          # T0
overnight_until_phase3(s, "2026-03-06", DAY, hour="11")
answer(s, "2026-03-06", "overnight", f"{DAY}T11:36:00Z", phases=("grading",))
for i, p in enumerate(PHASE4):
    s.run("2026-03-06", "overnight", "phase4", p, f"{DAY}T11:38:00Z", f"{DAY}T11:{42 + 2 * i:02d}:00Z")
s.run(DAY, "same_day", "phase3", "upcoming_team_game_context", f"{DAY}T14:35:00Z", f"{DAY}T14:50:00Z")
s.run(DAY, "same_day", "phase3", "upcoming_player_game_context", f"{DAY}T14:35:00Z",
      f"{DAY}T15:05:00Z", **CTX)
for i, p in enumerate(PHASE4):
    s.run(DAY, "same_day", "phase4", p, f"{DAY}T15:10:00Z", f"{DAY}T15:{15 + 2 * i:02d}:00Z")
s.health(f"{DAY}T17:50:00Z", "prediction-coordinator", "pass", {"status": "healthy"})  # 6 h
answer(s, "2026-03-06", "overnight", f"{DAY}T17:51:00Z")
answer(s, DAY, "same_day", f"{DAY}T17:53:00Z")
s.write("sweep_long_outage.jsonl")

# --- sweep 6: a flapping health probe around the Phase 4 trigger --------------------------
s = S("sw6")
RD, DAY = "2026-02-23", "2026-02-24"
scheduled(s, DAY)
# The precompute service's /health/ready flaps (a bad instance behind the load balancer):
# down 4 min, up 3 min, from 06:20 to 07:30 UTC, then steady.
at = s.t(f"{DAY}T06:20:00Z")
while at < s.t(f"{DAY}T07:30:00Z"):
    s.health(at, "nba-phase4-precompute-processors", "fail", {"status": "not ready", "reason": ["lb"]})
    s.health(at + timedelta(minutes=4), "nba-phase4-precompute-processors", "pass", {"status": "ready"})
    at += timedelta(minutes=7)
overnight_until_phase3(s, RD, DAY)                         # Phase 3 complete at 06:36
answer(s, RD, "overnight", f"{DAY}T06:36:00Z", phases=("grading",))
# Phase 4 starts 12 min after the trigger phasewatch sends (06:32, while the probe passes).
for i, p in enumerate(PHASE4):
    s.run(RD, "overnight", "phase4", p, f"{DAY}T06:44:00Z", f"{DAY}T06:{50 + 2 * i:02d}:00Z")
answer(s, RD, "overnight", f"{DAY}T07:00:00Z")
s.write("sweep_flapping_probe.jsonl")

# --- sweep 7: predictions land late, after the prediction-gap page ------------------------
s = S("sw7")
RD = "2026-02-25"
scheduled(s, RD)
for hour, minute in (("11", "00"), ("12", "00"), ("13", "00"), ("13", "30"), ("14", "00")):
    s.check(f"{RD}T{hour}:{minute}:00Z", "games_today", 7)
    s.check(f"{RD}T{hour}:{minute}:00Z", "predictions_today", 0)
# The tomorrow run the evening before never ran Phase 4 (its backstop was off), so the same
# day's run does it all from 13:00 UTC.
s.run(RD, "same_day", "phase3", "upcoming_team_game_context", f"{RD}T13:00:00Z", f"{RD}T13:10:00Z")
s.run(RD, "same_day", "phase3", "upcoming_player_game_context", f"{RD}T13:00:00Z",
      f"{RD}T13:20:00Z", **CTX)
for i, p in enumerate(PHASE4):
    s.run(RD, "same_day", "phase4", p, f"{RD}T13:22:00Z", f"{RD}T13:{40 + 3 * i:02d}:00Z")
answer(s, RD, "same_day", f"{RD}T14:00:00Z")
s.check(f"{RD}T14:25:00Z", "predictions_today", 388)
s.write("sweep_late_after_page.jsonl")

# --- sweep 8: yesterday's date re-run today (backfill-like) -------------------------------
s = S("sw8")
RD, DAY = "2026-02-26", "2026-02-27"
scheduled(s, DAY)
overnight_until_phase3(s, RD, DAY)
overnight_after_phase3(s, RD, DAY)
s.run(DAY, "same_day", "phase3", "upcoming_team_game_context", f"{DAY}T14:35:00Z", f"{DAY}T14:50:00Z")
s.run(DAY, "same_day", "phase3", "upcoming_player_game_context", f"{DAY}T14:35:00Z",
      f"{DAY}T15:05:00Z", **CTX)
for i, p in enumerate(PHASE4):
    s.run(DAY, "same_day", "phase4", p, f"{DAY}T15:10:00Z", f"{DAY}T15:{15 + 2 * i:02d}:00Z")
answer(s, DAY, "same_day", f"{DAY}T15:30:00Z")
# 19:00 UTC: an analyst re-runs yesterday's player_game_summary after a stat correction (no
# mode: derived as overnight). The first attempt fails on a lock, the second works.
s.ev(f"{DAY}T19:00:00Z", RD, None, "phase3", "started", "player_game_summary")
s.ev(f"{DAY}T19:04:00Z", RD, None, "phase3", "failed", "player_game_summary",
     error="google.api_core.exceptions.BadRequest: 400 Could not serialize access to table "
           "nba_analytics.player_game_summary due to concurrent update")
s.ev(f"{DAY}T19:10:00Z", RD, None, "phase3", "started", "player_game_summary")
s.ev(f"{DAY}T19:25:00Z", RD, None, "phase3", "succeeded", "player_game_summary", **PGS)
s.write("sweep_yesterday_rerun.jsonl")


# === The third sweep (tests/test_incident_sweep3.py) =====================================

# --- sweep 9: a batch "alive" but stalled: heartbeats with the same `done` for an hour ----
s = S("sw9")
RD, DAY = "2026-02-17", "2026-02-18"
scheduled(s, DAY)
overnight_until_phase3(s, RD, DAY)
for i, p in enumerate(PHASE4):
    s.run(RD, "overnight", "phase4", p, f"{DAY}T06:38:00Z", f"{DAY}T06:{42 + 2 * i:02d}:00Z")
answer(s, RD, "overnight", f"{DAY}T06:36:00Z", phases=("grading",))
s.run(RD, "overnight", "phase5", "prediction-coordinator", f"{DAY}T06:53:00Z", f"{DAY}T06:54:00Z")
b = "batch_2026-02-17_1771397640"
s.ev(f"{DAY}T06:54:00Z", RD, "overnight", "phase5", "started", "prediction-worker",
     batch_id=b, done=0, total=412)
for at, done in (("07:00", 150), ("07:05", 300), ("07:10", 371)):                   # 90%
    s.ev(f"{DAY}T{at}:00Z", RD, "overnight", "phase5", "progress", "prediction-worker",
         batch_id=b, done=done, total=412)
# From 07:10 the workers keep reporting, every 2 min, and nothing moves (T0 = 07:10): a
# stuck Firestore transaction; the heartbeats are the workers' keep-alive, not work.
at = s.t(f"{DAY}T07:12:00Z")
while at <= s.t(f"{DAY}T07:24:00Z"):
    s.ev(at, RD, "overnight", "phase5", "progress", "prediction-worker", batch_id=b, done=371,
         total=412)
    at += timedelta(minutes=2)
# phasewatch's /reset and /start (from 07:24) work: a new batch runs the date in 18 min.
b2 = "batch_2026-02-17_1771399620"
s.ev(f"{DAY}T07:27:00Z", RD, "overnight", "phase5", "started", "prediction-worker",
     batch_id=b2, done=0, total=412)
s.ev(f"{DAY}T07:36:00Z", RD, "overnight", "phase5", "progress", "prediction-worker",
     batch_id=b2, done=220, total=412)
s.ev(f"{DAY}T07:45:00Z", RD, "overnight", "phase5", "succeeded", "prediction-worker",
     batch_id=b2, done=412, total=412)
s.ev(f"{DAY}T07:48:00Z", RD, "overnight", "phase6", "started")
s.ev(f"{DAY}T07:55:00Z", RD, "overnight", "phase6", "succeeded")
s.write("sweep_stalled_heartbeats.jsonl")

# --- sweep 10: games postponed (a snowstorm) after the schedule said 9 -----------------
s = S("sw10")
# 2026-02-19: the schedule update at 07:20 ET (12:20 UTC) postpones all 9 games, before the
# 08:30 prediction-gap deadline: no run starts, nothing is due, nobody is paged.
RD = "2026-02-19"
scheduled(s, RD)
for at in ("11:00", "11:30", "12:00"):
    s.check(f"{RD}T{at}:00Z", "games_today", 9)
for at in ("12:30", "13:00", "13:30", "14:00", "14:30", "15:00", "15:30", "16:00"):
    s.check(f"{RD}T{at}:00Z", "games_today", 0)
for at in ("12:00", "13:00", "14:00", "15:00", "16:00"):
    s.check(f"{RD}T{at}:00Z", "predictions_today", 0)
# 2026-02-20: the games are on at 08:30 ET and nothing has run (the gap is real and
# pages); at 09:10 ET (14:10 UTC) the league postpones them all: the page resolves, and
# the 10:00 ET predictions deadline has no game day left to judge.
RD = "2026-02-20"
scheduled(s, RD)
for at in ("11:00", "12:00", "13:00", "13:30", "14:00"):
    s.check(f"{RD}T{at}:00Z", "games_today", 9)
    s.check(f"{RD}T{at}:00Z", "predictions_today", 0)
for at in ("14:10", "14:30", "15:00", "15:30", "16:00"):
    s.check(f"{RD}T{at}:00Z", "games_today", 0)
    s.check(f"{RD}T{at}:00Z", "predictions_today", 0)
s.write("sweep_postponed_games.jsonl")

# --- sweep 11: a backfill of 30 past dates at once, while today's run goes on ------------
s = S("sw11")
DAY = "2026-02-21"
scheduled(s, DAY)
same_day_until_phase3(s, DAY)
for i, p in enumerate(PHASE4):
    # The feature store says how fresh its input is (the freshness SLO reads it).
    fresh = {"data_as_of": f"{DAY}T15:05:00Z"} if p == "ml_feature_store" else {}
    s.run(DAY, "same_day", "phase4", p, f"{DAY}T15:10:00Z", f"{DAY}T15:{15 + 2 * i:02d}:00Z", **fresh)
answer(s, DAY, "same_day", f"{DAY}T15:30:00Z")
# 15:00-16:15 UTC: an analyst re-processes January (30 dates, mode backfill) after a
# box-score source fix: Phase 3 for every date, 2.5 min apart, and the phases after it
# answer phasewatch's triggers; on 2026-01-18 player_game_summary fails once on a lock
# and is retried 2 min later.
start = s.t(f"{DAY}T15:00:00Z")
LOCK = ("google.api_core.exceptions.BadRequest: 400 Could not serialize access to table "
        "nba_analytics.player_game_summary due to concurrent update")
for d in range(30):
    rd, B = f"2026-01-{d + 1:02d}", "backfill"
    at = start + timedelta(seconds=150 * d)
    late = 2 if d == 17 else 0
    for p in PHASE3:
        extra = CTX if p == "upcoming_player_game_context" else PGS if p == "player_game_summary" else {}
        if late and p == "player_game_summary":
            s.run(rd, B, "phase3", p, at, minutes(at, 1), status="failed", error=LOCK)
            s.run(rd, B, "phase3", p, minutes(at, 1.5), minutes(at, 1 + late), **extra)
        else:
            s.run(rd, B, "phase3", p, at, minutes(at, 1), **extra)
    at = minutes(at, late)
    for i, p in enumerate(PHASE4):
        # A backfill's input is as old as its date: the box scores of the morning after.
        old = {"data_as_of": f"2026-01-{d + 2:02d}T11:00:00Z"} if p == "ml_feature_store" else {}
        s.run(rd, B, "phase4", p, minutes(at, 1.5), minutes(at, 2 + 0.2 * i), **old)
    s.ev(minutes(at, 1.5), rd, B, "grading", "started")
    s.ev(minutes(at, 2.5), rd, B, "grading", "succeeded")
    s.run(rd, B, "phase5", "prediction-coordinator", minutes(at, 3.5), minutes(at, 3.6))
    s.run(rd, B, "phase5", "prediction-worker", minutes(at, 3.6), minutes(at, 4))
    s.ev(minutes(at, 4.5), rd, B, "phase6", "started")
    s.ev(minutes(at, 5), rd, B, "phase6", "succeeded")
s.write("sweep_backfill_month.jsonl")

# --- sweep 12: the two daylight-saving days (America/New_York) ---------------------------


def dst_day(s, rd, offset_h):
    """A same-day run of ``rd`` at ET = UTC-offset_h: Phase 3 at 09:35 ET, predictions by
    09:58 ET (before the 10:00 deadline), the prediction gap checks from 07:00 ET."""
    def utc(hm):
        h, m = map(int, hm.split(":"))
        return datetime.fromisoformat(f"{rd}T{h:02d}:{m:02d}:00").replace(tzinfo=ET).astimezone(UTC)
    assert utc("12:00").hour == 12 + offset_h
    scheduled(s, rd)
    for hm in ("07:00", "08:00", "08:20"):
        s.check(utc(hm), "games_today", 11)
        s.check(utc(hm), "predictions_today", 0)
    s.run(rd, "same_day", "phase3", "upcoming_team_game_context", utc("08:05"), utc("08:12"))
    s.run(rd, "same_day", "phase3", "upcoming_player_game_context", utc("08:05"), utc("08:15"),
          **CTX)
    for i, p in enumerate(PHASE4):
        s.run(rd, "same_day", "phase4", p, utc("08:17"), utc(f"08:{20 + i}"))
    s.run(rd, "same_day", "phase5", "prediction-coordinator", utc("08:26"), utc("08:27"))
    s.run(rd, "same_day", "phase5", "prediction-worker", utc("08:27"), utc("08:29"))
    s.check(utc("08:29"), "predictions_today", 431)
    s.ev(utc("08:31"), rd, "same_day", "phase6", "started")
    s.ev(utc("08:40"), rd, "same_day", "phase6", "succeeded")
    for hm in ("09:00", "10:00", "11:00"):
        s.check(utc(hm), "games_today", 11)
        s.check(utc(hm), "predictions_today", 431)


s = S("sw12s")
dst_day(s, "2026-03-07", 5)     # the day before: EST
dst_day(s, "2026-03-08", 4)     # 02:00 EST -> 03:00 EDT
s.write("sweep_dst_spring.jsonl")
s = S("sw12f")
dst_day(s, "2026-10-31", 4)     # EDT
dst_day(s, "2026-11-01", 5)     # 02:00 EDT -> 01:00 EST
s.write("sweep_dst_fall.jsonl")

# --- sweep 13: the same failure three days running -----------------------------------
s = S("sw13")
DRIFT = ("google.api_core.exceptions.BadRequest: 400 Provided Schema does not match Table "
         "nba_precompute.player_daily_cache. Cannot add fields (field: opponent_rest_days)")
for rd, day in (("2026-02-21", "2026-02-22"), ("2026-02-22", "2026-02-23"),
                ("2026-02-23", "2026-02-24")):
    scheduled(s, day)
    overnight_until_phase3(s, rd, day)
    answer(s, rd, "overnight", f"{day}T06:36:00Z", phases=("grading",))
    for i, p in enumerate(PHASE4):
        if p == "player_daily_cache":
            continue
        s.run(rd, "overnight", "phase4", p, f"{day}T06:38:00Z", f"{day}T06:{42 + 2 * i:02d}:00Z")
    at = s.t(f"{day}T06:38:00Z")
    for k in range(12):                    # the Pub/Sub retries of the day, 5 min apart
        s.run(rd, "overnight", "phase4", "player_daily_cache", minutes(at, 5 * k),
              minutes(at, 5 * k + 2), status="failed", error=DRIFT, invocation_id=f"{rd}-{k}")
    # 08:00 ET: the overnight-predictions schedule runs Phase 5 without the cache.
    answer(s, rd, "overnight", f"{day}T13:00:00Z")
# 2026-02-25 06:38: the migration is applied; the day's run (and a re-run of the 24th) work.
rd, day = "2026-02-24", "2026-02-25"
scheduled(s, day)
overnight_until_phase3(s, rd, day)
overnight_after_phase3(s, rd, day)
s.write("sweep_three_day_failure.jsonl")

# --- sweep 14: a data check flapping between pass and fail every run -------------------
s = S("sw14")
DAY = "2026-02-26"
scheduled(s, DAY)
at = s.t(f"{DAY}T05:00:00Z")
for k in range(16):                       # every 30 min for 8 h: 0.85, 0.6, 0.85, ...
    s.check(minutes(at, 30 * k), "bq_load_jobs_ratio", 0.85 if k % 2 == 0 else 0.6)
s.check(minutes(at, 30 * 16), "bq_load_jobs_ratio", 0.3)
for k in range(17, 23):
    s.check(minutes(at, 30 * k), "bq_load_jobs_ratio", 0.3)
s.write("sweep_flapping_check.jsonl")

# --- sweep 15: the coordinator down three days; an overnight run reaches Phase 4 each day -
s = S("sw15")
down = {"status": "unhealthy", "error": "Cloud SQL connection refused (instance deleted by mistake)"}
s.health("2026-03-10T05:00:00Z", "prediction-coordinator", "pass", {"status": "healthy"})
s.health("2026-03-10T07:00:00Z", "prediction-coordinator", "fail", down)            # T0
for rd, day in (("2026-03-09", "2026-03-10"), ("2026-03-10", "2026-03-11"),
                ("2026-03-11", "2026-03-12")):
    scheduled(s, day, jobs=("overnight-phase4", "same-day-phase3"))
    s.scheduler(f"{day}T15:30:05Z", "same-day-predictions", 503)
    overnight_until_phase3(s, rd, day, hour="10")
    answer(s, rd, "overnight", f"{day}T10:36:00Z", phases=("grading",))
    for i, p in enumerate(PHASE4):
        s.run(rd, "overnight", "phase4", p, f"{day}T10:38:00Z", f"{day}T10:{42 + 2 * i:02d}:00Z")
s.health("2026-03-13T07:00:00Z", "prediction-coordinator", "pass", {"status": "healthy"})
answer(s, "2026-03-11", "overnight", "2026-03-13T07:01:00Z")
s.write("sweep_outage_three_days.jsonl")
