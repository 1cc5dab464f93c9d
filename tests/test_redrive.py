"""Redriving dead letters (``POST /v1/dead-letters/replay``): a processor renamed in a
deploy is dead-lettered, the config learns the name at a restart, and the replay stores
what was refused; and the endpoint's selection, its answers and its refusals."""

from __future__ import annotations

import json
from collections.abc import Iterator
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner

from monitor.app.cli.main import main
from monitor.app.http.server import create_app, serving
from monitor.app.phasewatch import Phasewatch
from tests import test_incident_sweep3 as S3
from tests import test_incident_sweep4 as S4
from tests.test_incident_sweep3 import channels, feed
from tests.test_incident_sweep4 import Peers, headline
from tests.test_incident_sweep5 import triggers
from tests.test_incident_sweep7 import V3, renamed_night
from tests.test_infra_sweep import Night, pages, posts
from tests.test_service import TOKEN, Http, dumps, ev, push_envelope, rejected

__all__ = ["channels"]  # the third sweep's local Slack and PagerDuty (a fixture)

REPLAY = "/v1/dead-letters/replay"


def unknown_told(n: Night) -> list[str]:
    return [d.notification.action for d in n.pw.router.history
            if d.notification.alert.name == "unknown_processor"]


def phase4_status(n: Night) -> str:
    (run,) = [r for r in n.pw.tracker.runs() if r.run_date.isoformat() == "2026-02-17"
              and r.mode == "overnight"]
    return run.phases["phase4"].status



def restarted_knowing_the_name(tmp_path: Path, channels: Peers, monkeypatch: pytest.MonkeyPatch,
                               first: Night) -> tuple[Night, Http]:
    """phasewatch restarted on ``first``'s store and clock with the config that knows the
    new name (the old one its alias), and an authenticated client of its API."""
    second = S4.night(tmp_path, channels, monkeypatch, S3.START, edit=S3.renamed, clock=first.clock,
                      store_checks=False)
    return second, Http(create_app(second.pw, TOKEN), headers={"Authorization": f"Bearer {TOKEN}"})


def test_a_renamed_processors_dead_letters_are_replayed_after_the_restart_that_knows_it(
    tmp_path: Path, channels: Peers, monkeypatch: pytest.MonkeyPatch,
) -> None:
    """The precompute deploy of 01:05 ET renames the feature-store processor: its two
    messages (01:10, 01:20 ET) are dead-lettered and `unknown_processor` warns once. At
    03:00 the config gets the new name (the old as its alias) and phasewatch restarts: the
    warning resolves. At 03:05 the on-call replays the dead letters instead of re-running
    the feature store. Ideal: both events stored, Phase 4 complete, Phase 5 triggered once
    (the events are fresh: judged as a late redelivery), the letters gone, a second replay
    finds nothing; nobody paged, Slack hears the warning and its resolve only. Before:
    no way to replay: the events were lost and the phase waited for a re-run."""
    hook, pd_peer, pd = channels
    first = S4.night(tmp_path, channels, monkeypatch, S3.START, store_checks=False)
    try:
        answers = renamed_night(first)
        first.until(S3.START + timedelta(minutes=180), step_s=60)
        before = unknown_told(first)
    finally:
        first.close()
    second, http = restarted_knowing_the_name(tmp_path, channels, monkeypatch, first)
    try:
        second.until(S3.START + timedelta(minutes=185))
        assert phase4_status(second) != "complete"
        stored = second.pw.store.count()
        first_replay = http.post(REPLAY)
        again = http.post(REPLAY)
        letters = http.get("/v1/dead-letters").json()["dead_letters"]
        done = phase4_status(second)
        feed(second, S3.predictions(185))
        second.until(S3.START + timedelta(minutes=260), step_s=60)
        sent = triggers(second)
        after = unknown_told(second)
        count = second.pw.store.count()
    finally:
        http.close()
        second.close()
    assert answers == ["dead_lettered", "dead_lettered"]
    assert first_replay.status_code == 200
    assert first_replay.json() == {"replayed": 2, "duplicates": 0, "still_invalid": [],
                                   "remaining": 0, "next_after": first_replay.json()["next_after"]}
    assert again.json() == {"replayed": 0, "duplicates": 0, "still_invalid": [], "remaining": 0,
                            "next_after": 0}
    assert letters == []
    assert done == "complete"
    assert count >= stored + 2
    assert [t for t in sent if t[0] == "phase5"] == [("phase5", "overnight", "succeeded")]
    assert (before, after) == (["trigger"], ["resolve"])
    assert pages(pd_peer) == [] and pd.opened == {}
    unknown = [x for x in posts(hook) if V3 in x and "overdue" not in x and "stuck" not in x]
    assert [headline(x).split(" after ")[0] for x in unknown] == ["WARNING", "RESOLVED"]


def two_days_later(tmp_path: Path, channels: Peers, monkeypatch: pytest.MonkeyPatch,
                   replay: bool) -> tuple[dict[str, Any], str, tuple[list[Any], ...]]:
    """The renamed processor's two messages dead-lettered; the config learns the name two
    days later, and the dead letters are replayed then (or not): the answer, Phase 4's
    state, and what was sent from the restart on (Slack, PagerDuty, triggers, alerts)."""
    hook, pd_peer, _ = channels
    first = S4.night(tmp_path, channels, monkeypatch, S3.START, store_checks=False)
    try:
        renamed_night(first)
        first.until(S3.START + timedelta(days=2), step_s=300)
    finally:
        first.close()
    second, http = restarted_knowing_the_name(tmp_path, channels, monkeypatch, first)
    try:
        texts, paged, sent = len(posts(hook)), len(pages(pd_peer)), len(triggers(second))
        second.until(S3.START + timedelta(days=2, minutes=5))
        answer = http.post(REPLAY, json={"reason": "unknown_name"}).json() if replay else {}
        second.until(S3.START + timedelta(days=2, minutes=120), step_s=60)
        done = phase4_status(second)
        news = (posts(hook)[texts:], pages(pd_peer)[paged:], triggers(second)[sent:],
                [(d.notification.action, d.notification.alert.key) for d in second.pw.router.history])
    finally:
        http.close()
        second.close()
    return answer, done, news


def test_a_replay_two_days_later_stores_the_events_and_tells_nobody_anything_new(
    tmp_path: Path, channels: Peers, monkeypatch: pytest.MonkeyPatch,
) -> None:
    """The same two messages dead-lettered, but the config learns the name two days later
    (the night's run long over). Ideal: the replay stores them (inside the accepted run
    dates): run state learns the run; nothing is triggered and nobody hears anything a
    restart without the replay would not have told (the run is outside the actionable
    horizon, as for a late redelivery)."""
    answer, done, news = two_days_later(tmp_path / "replayed", channels, monkeypatch, replay=True)
    _, waiting, quiet = two_days_later(tmp_path / "not", channels, monkeypatch, replay=False)
    assert (answer["replayed"], answer["still_invalid"], answer["remaining"]) == (2, [], 0)
    assert (done, waiting) == ("complete", "running")
    assert news == quiet
    assert news[2] == []  # no trigger


@pytest.fixture
def authed(app: Phasewatch) -> Iterator[Http]:
    client = Http(create_app(app, TOKEN), headers={"Authorization": f"Bearer {TOKEN}"})
    yield client
    client.close()


def dead_letter(http: Http, data: bytes, message_id: str) -> None:
    response = http.post("/v1/pubsub/push", json=push_envelope(data, message_id))
    assert response.json()["outcome"] == "dead_lettered"


def test_a_letter_still_invalid_is_kept_and_reported_with_why_now(authed: Http, app: Phasewatch) -> None:
    dead_letter(authed, dumps(ev(processor="NoSuchProcessor")), "m-1")
    dead_letter(authed, b"{not json", "m-2")
    ids = [d["id"] for d in reversed(authed.get("/v1/dead-letters").json()["dead_letters"])]
    refused = rejected(app)
    answer = authed.post(REPLAY, json={}).json()
    assert [(x["id"], x["reason"]) for x in answer["still_invalid"]] == [
        (ids[0], "unknown_name"), (ids[1], "invalid_json")]
    assert "NoSuchProcessor" in answer["still_invalid"][0]["detail"]
    assert (answer["replayed"], answer["duplicates"], answer["remaining"]) == (0, 0, 0)
    assert answer["next_after"] == ids[1]
    kept = authed.get("/v1/dead-letters").json()["dead_letters"]
    assert [d["message_id"] for d in kept] == ["m-2", "m-1"]
    assert rejected(app) == refused  # counted once, when they arrived
    assert app.store.count() == 0
    # Past the letters still invalid: one by id, one by reason, a limit and `after`.
    by_id = authed.post(REPLAY, json={"ids": [ids[1]]}).json()
    assert [x["id"] for x in by_id["still_invalid"]] == [ids[1]]
    first = authed.post(REPLAY, json={"limit": 1}).json()
    assert (len(first["still_invalid"]), first["remaining"], first["next_after"]) == (1, 1, ids[0])
    rest = authed.post(REPLAY, json={"limit": 1, "after": first["next_after"]}).json()
    assert ([x["id"] for x in rest["still_invalid"]], rest["remaining"]) == ([ids[1]], 0)
    none = authed.post(REPLAY, json={"reason": "date_mismatch"}).json()
    assert none["still_invalid"] == [] and none["remaining"] == 0


def test_a_duplicate_letter_is_deleted_and_counted(authed: Http, app: Phasewatch) -> None:
    """A letter whose events another path stored since (the producer re-sent them by POST)."""
    event = ev()
    app.store.add_dead_letter(received_at=app.clock.now(), source="pubsub:s", message_id="m-1",
                              reason="unknown_name", detail="d",
                              payload=push_envelope(dumps(event))["message"]["data"])
    assert authed.post("/v1/events", json=event).status_code == 202
    answer = authed.post(REPLAY).json()
    assert (answer["replayed"], answer["duplicates"]) == (0, 1)
    assert app.store.dead_letters() == [] and app.store.count() == 1


@pytest.mark.parametrize(("body", "status", "field"), [
    (b"{not json", 400, "body"),
    (b'{"id": [1]}', 422, "id"),
    (b'{"limit": 0}', 422, "limit"),
    (b'{"limit": 1001}', 422, "limit"),
    (b'{"limit": "5"}', 422, "limit"),
    (b'{"ids": []}', 422, "ids"),
    (b'{"ids": ["a"]}', 422, "ids[0]"),
    (b'{"after": -1}', 422, "after"),
    (b'{"after": 18446744073709551616}', 422, "after"),
    (b'{"ids": [9223372036854775808]}', 422, "ids[0]"),
], ids=["not json", "unknown field", "limit 0", "limit 1001", "limit text", "no ids", "id text",
        "after negative", "after past 64 bits", "id past 63 bits"])
def test_a_bad_selection_is_refused_naming_the_field(
    authed: Http, app: Phasewatch, body: bytes, status: int, field: str,
) -> None:
    dead_letter(authed, dumps(ev(processor="NoSuchProcessor")), "m-1")
    response = authed.post(REPLAY, content=body)
    assert response.status_code == status
    assert [d["field"] for d in response.json()["details"]] == [field]
    assert len(app.store.dead_letters()) == 1


def test_replay_needs_the_token(app: Phasewatch) -> None:
    http = Http(create_app(app, TOKEN))
    try:
        assert http.post(REPLAY).status_code == 401
    finally:
        http.close()


def test_a_store_failure_is_503_and_keeps_the_letters(
    authed: Http, app: Phasewatch, monkeypatch: pytest.MonkeyPatch,
) -> None:
    dead_letter(authed, dumps(ev(processor="NoSuchProcessor")), "m-1")

    def broken(*args: Any, **kwargs: Any) -> Any:
        raise OSError("disk gone")

    monkeypatch.setattr(app.store, "oldest_dead_letters", broken)
    response = authed.post(REPLAY)
    assert response.status_code == 503
    assert response.json()["reason"] == "unavailable"
    monkeypatch.undo()
    assert len(app.store.dead_letters()) == 1


def test_the_answer_is_json(authed: Http) -> None:
    response = authed.post(REPLAY, content=b"")
    assert response.status_code == 200
    assert json.loads(response.content)["replayed"] == 0


# --- the CLI: a client of the running service ------------------------------------------------

def cli(*args: str, token: str = TOKEN) -> Any:
    return CliRunner().invoke(main, list(args), env={"COLUMNS": "120", "PHASEWATCH_TOKEN": token})


def test_the_cli_replays_through_the_running_service_page_by_page(
    authed: Http, app: Phasewatch,
) -> None:
    """Three letters: two still invalid, then one the service now takes (a duplicate of an
    event stored since). ``--all --limit 1`` goes past the invalid ones page by page: the
    totals add up, the invalid ones are listed, exit 1 (some are still invalid); the
    duplicate's letter is gone. By ``--id`` alone, the duplicate: exit 0. A usage error is 2
    and a refused token 1, each one line naming what is wrong."""
    dead_letter(authed, dumps(ev(processor="NoSuchProcessor")), "m-1")
    dead_letter(authed, b"{not json", "m-2")
    event = ev()
    app.store.add_dead_letter(received_at=app.clock.now(), source="pubsub:s", message_id="m-3",
                              reason="unknown_name", detail="d",
                              payload=push_envelope(dumps(event))["message"]["data"])
    assert authed.post("/v1/events", json=event).status_code == 202
    with serving(create_app(app, TOKEN)) as url:
        paged = cli("dead-letters", "replay", "--all", "--limit", "1", "--url", url)
        assert paged.exit_code == 1, paged.output
        lines = paged.output.splitlines()
        assert lines[0] == "replayed 0, duplicates 1, still invalid 2, remaining 0"
        assert [x.split(":")[0].split()[1] for x in lines[1:]] == ["unknown_name", "invalid_json"]
        assert [d["message_id"] for d in authed.get("/v1/dead-letters").json()["dead_letters"]] == [
            "m-2", "m-1"]
        again = cli("dead-letters", "replay", "--url", url, "--json")
        assert again.exit_code == 1 and json.loads(again.output)["duplicates"] == 0
        letter = authed.get("/v1/dead-letters").json()["dead_letters"][0]["id"]
        app.store.add_dead_letter(received_at=app.clock.now(), source="pubsub:s",
                                  message_id="m-4", reason="unknown_name", detail="d",
                                  payload=push_envelope(dumps(event))["message"]["data"])
        newest = authed.get("/v1/dead-letters").json()["dead_letters"][0]["id"]
        assert newest != letter
        by_id = cli("dead-letters", "replay", "--id", str(newest), "--url", url)
        assert by_id.exit_code == 0, by_id.output
        assert by_id.output.startswith("replayed 0, duplicates 1, still invalid 0")
        usage = cli("dead-letters", "replay", "--id", "1", "--all", "--url", url)
        assert usage.exit_code == 2 and "--id with --reason or --all" in usage.output
        refused = cli("dead-letters", "replay", "--url", url, token="wrong")
        assert refused.exit_code == 1 and "refused (401)" in refused.output
