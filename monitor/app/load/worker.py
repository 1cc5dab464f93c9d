"""The load test's traffic: locust users in a process of their own.

    python monitor/app/load/worker.py SPEC.json     (run by ``phasewatch loadtest``)

locust monkey-patches the standard library with gevent when it is imported, so it is
imported only here, inside ``main``, in a child process that does nothing else: the CLI,
the target peer and the tests never load it. The child runs this file by its path and it
imports nothing of phasewatch, so nothing but the standard library is loaded before the
patch.

SPEC names the planned events (``monitor.app.load.plan``), the URL, the share sent through
the Pub/Sub push path, the users, the duration and where the reports go. Each user takes
the next planned event, waits until it is due, stamps it with the time and posts it. What
each request got is one line of the acknowledgement log: the event's keys, when it was
sent and answered, the path, the status and whether phasewatch acknowledged it (202 on
``/v1/events``; 200 with outcome ``stored`` or ``duplicate`` on the push path). The token,
if any, comes in ``PHASEWATCH_LOADTEST_TOKEN``, never in the spec.
"""

from __future__ import annotations

import base64
import json
import os
import sys
import time
from collections import deque
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

TOKEN_ENV = "PHASEWATCH_LOADTEST_TOKEN"
EVENTS_NAME, PUSH_NAME = "POST /v1/events", "POST /v1/pubsub/push"
ACKED_PUSH = ("stored", "duplicate")


def stamp(planned: list[Any], now: float) -> dict[str, Any]:
    """The planned event with ``timestamp`` (and ``data_as_of``) at ``now``."""
    _, event, age = planned
    body = dict(event)
    when = datetime.fromtimestamp(now, UTC)
    body["timestamp"] = when.isoformat(timespec="milliseconds").replace("+00:00", "Z")
    if age is not None:
        body["data_as_of"] = (when - timedelta(seconds=age)).isoformat().replace("+00:00", "Z")
    return body


def envelope(body: dict[str, Any], now: float) -> dict[str, Any]:
    """A Pub/Sub push envelope around ``body``, its message id the event id."""
    data = base64.b64encode(json.dumps(body).encode()).decode()
    published = datetime.fromtimestamp(now, UTC).isoformat().replace("+00:00", "Z")
    return {"message": {"data": data, "messageId": body["event_id"], "attributes": {},
                        "publishTime": published},
            "subscription": "projects/loadtest/subscriptions/phasewatch"}


@dataclass
class _State:
    start: float = 0.0
    deadline: float = 0.0
    taken: int = 0
    inflight: int = 0
    unsent: int = 0


def main(argv: list[str]) -> int:
    spec = json.loads(Path(argv[1]).read_text("utf-8"))
    import gevent
    from locust import FastHttpUser, constant, task  # patches the standard library on import
    from locust.env import Environment
    from locust.exception import StopUser
    from locust.html import get_html_report
    from locust.stats import PERCENTILES_TO_REPORT, StatsCSVFileWriter, stats_history

    plan: deque[list[Any]] = deque(json.loads(Path(spec["plan"]).read_text("utf-8")))
    total = len(plan)
    push_every = round(1 / spec["push_share"]) if spec["push_share"] > 0 else 0
    token = os.environ.get(TOKEN_ENV)
    headers = {"Authorization": f"Bearer {token}"} if token else {}
    acks = open(spec["acks"], "w", encoding="utf-8")  # noqa: SIM115  (closed below)
    state = _State()

    class Producer(FastHttpUser):
        """A pipeline's processors reporting: the next planned event when it is due."""

        host = spec["url"]
        wait_time = constant(0)
        network_timeout = 30.0
        connection_timeout = 10.0

        @task
        def report(self) -> None:
            if not plan:
                raise StopUser()
            item = plan.popleft()
            index = state.taken
            state.taken += 1
            due = state.start + item[0]
            if due > state.deadline:
                state.unsent += 1 + len(plan)
                plan.clear()
                raise StopUser()
            state.inflight += 1  # taken: waiting until due, then sent
            try:
                if due > time.time():
                    gevent.sleep(due - time.time())
                self._send(item, index)
            finally:
                state.inflight -= 1

        def _send(self, item: list[Any], index: int) -> None:
            sent = time.time()
            body = stamp(item, sent)
            push = push_every > 0 and index % push_every == push_every - 1
            path, name = ("/v1/pubsub/push", PUSH_NAME) if push else ("/v1/events", EVENTS_NAME)
            payload = envelope(body, sent) if push else body
            status, acked, outcome = 0, False, ""
            with self.client.request("POST", path, name=name, json=payload, headers=headers,
                                     catch_response=True) as response:
                status = response.status_code or 0
                if push and status == 200:
                    try:
                        outcome = str(response.json().get("outcome", ""))
                    except ValueError:
                        outcome = "unreadable"
                    acked = outcome in ACKED_PUSH
                else:
                    acked = status == 202
                if acked:
                    response.success()
                else:
                    response.failure(f"HTTP {status} {outcome}".strip())
            answered = time.time()
            acks.write(json.dumps({
                "event_id": body["event_id"], "pipeline": body["pipeline"],
                "run_date": body["run_date"], "phase": body["phase"],
                "processor": body.get("processor"), "status": body["status"],
                "path": "push" if push else "events", "sent": sent, "answered": answered,
                "http": status, "outcome": outcome, "acked": acked,
            }) + "\n")

    env = Environment(user_classes=[Producer], host=spec["url"])
    runner = env.create_local_runner()
    prefix = spec["csv_prefix"]
    csv = StatsCSVFileWriter(env, PERCENTILES_TO_REPORT, prefix, full_history=False)
    writer = gevent.spawn(csv.stats_writer)
    history = gevent.spawn(stats_history, runner)
    state.start = time.time() + 0.5  # the users are spawned meanwhile
    state.deadline = state.start + spec["duration_s"]
    runner.start(spec["users"], spawn_rate=max(spec["users"] * 4, 1))
    while time.time() < state.deadline and (plan or state.inflight):
        gevent.sleep(0.1)
    runner.quit()
    state.unsent += len(plan)
    gevent.sleep(1.2)  # one more pass of the CSV writer after the last request
    writer.kill()
    history.kill()
    csv.close_files()
    html = get_html_report(env, show_download_link=False)  # type: ignore[no-untyped-call]
    Path(spec["html"]).write_text(html, "utf-8")
    acks.close()
    Path(spec["summary"]).write_text(json.dumps({
        "planned": total, "unsent": state.unsent, "started_at": state.start,
        "ended_at": time.time(),
    }), "utf-8")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
