"""deploy.sh's watchdog: Cloud Monitoring watching phasewatch itself (deploy/watchdog/).

The policies are checked as Google parses them (``monitoring_v3.AlertPolicy``, strictly),
as the real gcloud sends them (a local server records its requests), their PromQL by
promtool (syntax, and what fires on synthetic series), and their metric names against what
a real phasewatch serves on /metrics. A second deploy is run against a fake gcloud that
says everything exists: it must update, never create twice.
"""

from __future__ import annotations

import asyncio
import json
import os
import re
import shlex
import shutil
import subprocess
import threading
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any, ClassVar

import httpx
import pytest
import yaml
from google.cloud import monitoring_v3
from google.protobuf import json_format
from prometheus_client.parser import text_string_to_metric_families

from monitor.app.http.server import create_app
from monitor.app.phasewatch import Phasewatch
from tests.conftest import require_binary
from tests.test_deploy import PROJECT, SCRIPT, _flag, dry_run

TEMPLATES = sorted((SCRIPT.parent / "watchdog").glob("*.json"))
MONITORING_AGENT = "serviceAccount:service-PROJECT_NUMBER@gcp-sa-monitoring-notification.iam.gserviceaccount.com"


def policies(out: Path) -> dict[str, dict[str, Any]]:
    """The filled policies a deploy kept, by file name."""
    return {path.name: json.loads(path.read_text()) for path in sorted(out.glob("*.json"))}


def promql(policy: dict[str, Any]) -> list[str]:
    return [c["conditionPrometheusQueryLanguage"]["query"] for c in policy["conditions"]
            if "conditionPrometheusQueryLanguage" in c]


def all_promql() -> list[str]:
    return [q for path in TEMPLATES for q in promql(json.loads(path.read_text()))]


OTHER_CHANNEL = "projects/ops-project/notificationChannels/99"


@dataclass(frozen=True)
class DryRun:
    commands: list[list[str]]
    out: Path  # the filled policies the deploy kept


@pytest.fixture(scope="module")
def deployed(tmp_path_factory: pytest.TempPathFactory) -> DryRun:
    """One dry run with two channels (an id, and a full name in another project)."""
    tmp_path = tmp_path_factory.mktemp("watchdog")
    commands, _ = dry_run(tmp_path, WATCHDOG_OUT=str(tmp_path / "watchdog"),
                          WATCHDOG_CHANNELS=f"1234 {OTHER_CHANNEL}")
    return DryRun(commands, tmp_path / "watchdog")


CHANNELS = [f"projects/{PROJECT}/notificationChannels/1234", OTHER_CHANNEL]


def test_a_dry_run_creates_the_uptime_check_and_each_policy_once(deployed: DryRun) -> None:
    commands = deployed.commands
    uptime = [c for c in commands if c[:3] == ["monitoring", "uptime", "create"]]
    assert len(uptime) == 1
    check = uptime[0]
    assert _flag(check, "--resource-labels") == f"host=phasewatch-PROJECT_HASH.us-east1.run.app,project_id={PROJECT}"
    assert (_flag(check, "--protocol"), _flag(check, "--path")) == ("https", "/health")
    assert _flag(check, "--service-agent-auth") == "oidc-token"  # Cloud Run is behind IAM
    assert len(_flag(check, "--regions").split(",")) >= 3
    invokers = [c for c in commands if c[:3] == ["run", "services", "add-iam-policy-binding"]]
    assert [_flag(c, "--role") for c in invokers if _flag(c, "--member") == MONITORING_AGENT] == ["roles/run.invoker"]
    created = [c for c in commands if c[:4] == ["alpha", "monitoring", "policies", "create"]]
    assert sorted(Path(_flag(c, "--policy-from-file")).name for c in created) == [t.name for t in TEMPLATES]
    assert len(TEMPLATES) == 4
    kept = policies(deployed.out)
    assert 'metric.label.check_id="UPTIME_CHECK_ID"' in kept["health.json"]["conditions"][0]["conditionThreshold"]["filter"]
    assert "phasewatch-dead-letter-keep" in kept["dead-letters.json"]["conditions"][0]["conditionThreshold"]["filter"]


def test_without_channels_the_policies_tell_nobody_and_the_deploy_says_so(tmp_path: Path) -> None:
    config = tmp_path / "pipeline.yaml"
    config.write_text("version: 1\n")
    result = subprocess.run(
        ["bash", str(SCRIPT)], capture_output=True, text=True, timeout=60, check=True,
        env={"PATH": os.environ["PATH"], "DRY_RUN": "1", "PROJECT": PROJECT, "REGION": "us-east1",
             "IMAGE": "i", "CONFIG": str(config), "DASHBOARDS": str(tmp_path / "none")})
    assert "warning: WATCHDOG_CHANNELS is empty" in result.stderr
    kept = policies(Path(f"{config}.watchdog"))
    assert kept and all(p["notificationChannels"] == [] for p in kept.values())


def test_the_channels_are_attached_to_every_policy(deployed: DryRun) -> None:
    kept = policies(deployed.out)
    assert len(kept) == len(TEMPLATES)
    for policy in kept.values():
        assert policy["notificationChannels"] == CHANNELS


FAKE_GCLOUD = r"""#!/usr/bin/env bash
# A gcloud that records its calls and answers as if everything existed (FAKE_EXISTING=1) or not.
printf '%q ' "$@" >>"$FAKE_GCLOUD_LOG"; printf '\n' >>"$FAKE_GCLOUD_LOG"
case " $* " in
  *" run services describe "*) echo https://phasewatch-abc123.a.run.app ;;
  *" projects describe "*) echo 123456 ;;
  *" logging sinks describe "*" --format "*) echo serviceAccount:sink-writer@example.com ;;
  *" uptime create "*) echo "projects/p/uptimeCheckConfigs/new-check" ;;
  *" uptime list-configs "*) [ "$FAKE_EXISTING" = 1 ] && echo "projects/p/uptimeCheckConfigs/old-check" ;;
  *" policies list "*) [ "$FAKE_EXISTING" = 1 ] &&
    echo "projects/p/alertPolicies/$(printf %s "$*" | md5sum | cut -c1-8)" ;;
  *" describe "*) [ "$FAKE_EXISTING" = 1 ] ;;
esac
exit 0
"""


def deploy_with_fake_gcloud(tmp_path: Path, existing: bool) -> tuple[list[list[str]], dict[str, Any]]:
    """Run deploy.sh for real against the fake gcloud: its calls, and the policies it kept."""
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir(exist_ok=True)
    (bin_dir / "gcloud").write_text(FAKE_GCLOUD)
    (bin_dir / "gcloud").chmod(0o755)
    log, out = tmp_path / f"gcloud-{existing}.log", tmp_path / f"watchdog-{existing}"
    config = tmp_path / "pipeline.yaml"
    config.write_text("version: 1\n")
    subprocess.run(
        ["bash", str(SCRIPT)], capture_output=True, text=True, timeout=120, check=True,
        env={"PATH": f"{bin_dir}:{os.environ['PATH']}", "FAKE_GCLOUD_LOG": str(log),
             "FAKE_EXISTING": "1" if existing else "0", "PROJECT": PROJECT, "REGION": "us-east1",
             "IMAGE": "i", "CONFIG": str(config), "SERVICE_YAML": str(tmp_path / "service.yaml"),
             "DASHBOARDS": str(tmp_path / "none"), "WATCHDOG_OUT": str(out), "WATCHDOG_CHANNELS": "42"})
    calls = [shlex.split(line) for line in log.read_text().splitlines()]
    return [c[c.index("--quiet") + 1:] if "--quiet" in c else c[2:] for c in calls], policies(out)


@dataclass(frozen=True)
class TwoDeploys:
    first: list[list[str]]  # gcloud's calls when nothing exists
    first_kept: dict[str, Any]
    second: list[list[str]]  # ... and when everything exists
    second_kept: dict[str, Any]


@pytest.fixture(scope="module")
def redeployed(tmp_path_factory: pytest.TempPathFactory) -> TwoDeploys:
    tmp_path = tmp_path_factory.mktemp("redeploy")
    return TwoDeploys(*deploy_with_fake_gcloud(tmp_path, existing=False),
                      *deploy_with_fake_gcloud(tmp_path, existing=True))


def test_a_second_deploy_updates_the_watchdog_and_creates_nothing_twice(redeployed: TwoDeploys) -> None:
    first, kept = redeployed.first, redeployed.first_kept
    assert len([c for c in first if c[:3] == ["monitoring", "uptime", "create"]]) == 1
    assert len([c for c in first if c[:4] == ["alpha", "monitoring", "policies", "create"]]) == len(TEMPLATES)
    # the new check's id, read from gcloud's answer, is the one the /health policy watches
    assert 'check_id="new-check"' in kept["health.json"]["conditions"][0]["conditionThreshold"]["filter"]
    agent = "serviceAccount:service-123456@gcp-sa-monitoring-notification.iam.gserviceaccount.com"
    assert any(c[:3] == ["run", "services", "add-iam-policy-binding"] and _flag(c, "--member") == agent
               for c in first)

    second, kept = redeployed.second, redeployed.second_kept
    assert not [c for c in second if c[:3] == ["monitoring", "uptime", "create"]
                or c[:4] == ["alpha", "monitoring", "policies", "create"]]
    assert [c[3] for c in second if c[:3] == ["monitoring", "uptime", "update"]] == ["old-check"]
    updated = [c for c in second if c[:4] == ["alpha", "monitoring", "policies", "update"]]
    assert len(updated) == len(TEMPLATES) == len({c[4] for c in updated})  # each its own policy
    assert all(c[4].startswith("projects/p/alertPolicies/") for c in updated)
    assert 'check_id="old-check"' in kept["health.json"]["conditions"][0]["conditionThreshold"]["filter"]
    assert all(p["notificationChannels"] == [f"projects/{PROJECT}/notificationChannels/42"] for p in kept.values())


def test_every_policy_parses_as_a_cloud_monitoring_alert_policy(deployed: DryRun) -> None:
    for name, policy in policies(deployed.out).items():
        parsed = monitoring_v3.AlertPolicy.from_json(json.dumps(policy), ignore_unknown_fields=False)
        assert parsed.display_name.startswith("phasewatch watchdog: "), name
        assert list(parsed.notification_channels) == CHANNELS
        assert parsed.documentation.content and parsed.severity, name
        assert "$" not in json.dumps(policy), name  # every placeholder filled
        for condition in parsed.conditions:  # a metric not written yet (no dead notification
            if "condition_prometheus_query_language" in condition:  # ever) must not refuse it
                assert condition.condition_prometheus_query_language.disable_metric_validation, name
    wrong = dict(policies(deployed.out)["judging.json"], notificationChannel=["x"])
    with pytest.raises(json_format.ParseError):  # the check can fail: a misspelt field
        monitoring_v3.AlertPolicy.from_json(json.dumps(wrong), ignore_unknown_fields=False)


class Recorder(BaseHTTPRequestHandler):
    """The Cloud Monitoring REST API as far as gcloud's create calls need: it keeps bodies."""

    bodies: ClassVar[list[tuple[str, dict[str, Any]]]] = []

    def do_POST(self) -> None:
        body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
        type(self).bodies.append((f"{self.command} {self.path}", body))
        self.answer(body)

    do_PATCH = do_POST

    def do_GET(self) -> None:  # an update reads the uptime check first: one as created
        self.answer({"displayName": "phasewatch /health (phasewatch watchdog)", "period": "60s",
                     "monitoredResource": {"type": "uptime_url", "labels": {"host": "h", "project_id": PROJECT}},
                     "httpCheck": {"path": "/", "port": 443, "useSsl": True}, "selectedRegions": ["EUROPE"]})

    def answer(self, body: dict[str, Any]) -> None:
        kind = "uptimeCheckConfigs" if "uptimeCheckConfigs" in self.path else "alertPolicies"
        answer = json.dumps({**body, "name": f"projects/{PROJECT}/{kind}/1"}).encode()
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(answer)))
        self.end_headers()
        self.wfile.write(answer)

    def log_message(self, format: str, *args: Any) -> None:
        pass


@pytest.fixture
def monitoring_api() -> Iterator[str]:
    Recorder.bodies = []
    server = ThreadingHTTPServer(("127.0.0.1", 0), Recorder)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_address[1]}/"
    server.shutdown()
    server.server_close()


def test_what_gcloud_sends_parses_as_google_s_protos(tmp_path: Path, deployed: DryRun, redeployed: TwoDeploys,
                                                     monitoring_api: str) -> None:
    """A first deploy's creates (the dry run) and a second deploy's updates, sent by gcloud."""
    gcloud = shutil.which("gcloud")
    if gcloud is None:  # not in Debian's archive: Google's own apt repository ships it
        pytest.skip("gcloud is not installed (Google Cloud CLI)")
    verbs = {(*group, verb) for group in (("monitoring", "uptime"), ("alpha", "monitoring", "policies"))
             for verb in ("create", "update")}
    calls = [c for c in [*deployed.commands, *redeployed.second] if tuple(c[:3]) in verbs or tuple(c[:4]) in verbs]
    creates, updates = [c for c in calls if "create" in c[:4]], [c for c in calls if "update" in c[:4]]
    assert len(creates) == len(updates) == 1 + len(TEMPLATES)
    # every create; of the updates, the check's and one policy's (the others differ only by file)
    watchdog = [*creates, next(c for c in updates if c[1] == "uptime"), next(c for c in updates if c[0] == "alpha")]
    (tmp_path / "token").write_text("not-a-real-token")
    env = {**os.environ, "CLOUDSDK_CONFIG": str(tmp_path / "gcloud"), "CLOUDSDK_CORE_DISABLE_PROMPTS": "1",
           "CLOUDSDK_API_ENDPOINT_OVERRIDES_MONITORING": monitoring_api}

    def send(command: list[str]) -> tuple[list[str], subprocess.CompletedProcess[str]]:
        return command, subprocess.run(
            [gcloud, "--project", PROJECT, "--quiet", "--access-token-file", str(tmp_path / "token"), *command],
            capture_output=True, text=True, timeout=120, env=env, stdin=subprocess.DEVNULL)

    with ThreadPoolExecutor(2) as pool:
        for command, done in pool.map(send, watchdog):
            assert done.returncode == 0, (command, done.stderr)
            if command[1:3] == ["uptime", "create"]:  # deploy.sh reads the new check's name here
                assert done.stdout.strip() == f"projects/{PROJECT}/uptimeCheckConfigs/1"
    uptime = {r.split()[0]: b for r, b in Recorder.bodies if "/uptimeCheckConfigs" in r}
    sent = [(r, b) for r, b in Recorder.bodies if "/alertPolicies" in r]
    assert set(uptime) == {"POST", "PATCH"}
    assert sorted(r.split()[0] for r, _ in sent) == ["PATCH"] + ["POST"] * len(TEMPLATES)
    Auth = monitoring_v3.UptimeCheckConfig.HttpCheck.ServiceAgentAuthentication.ServiceAgentAuthenticationType
    for body in uptime.values():  # as created, and as an update leaves it
        check = monitoring_v3.UptimeCheckConfig.from_json(json.dumps(body), ignore_unknown_fields=False)
        assert check.http_check.service_agent_authentication.type_ == Auth.OIDC_TOKEN
        assert (check.http_check.path, check.http_check.use_ssl, check.period.seconds) == ("/health", True, 60)
        assert check.monitored_resource.type == "uptime_url"
        assert len(check.selected_regions) == 3
    for request, body in sent:
        policy = monitoring_v3.AlertPolicy.from_json(json.dumps(body), ignore_unknown_fields=False)
        assert policy.display_name.startswith("phasewatch watchdog: ") and policy.conditions, request
        channels = CHANNELS if request.startswith("POST") else [f"projects/{PROJECT}/notificationChannels/42"]
        assert list(policy.notification_channels) == channels, request


def rule_file(tmp_path: Path) -> Path:
    """Every PromQL condition as a Prometheus alerting rule named after its policy file."""
    rules = [{"alert": f"{path.stem.title().replace('-', '')}{i}", "expr": query}
             for path in TEMPLATES for i, query in enumerate(promql(json.loads(path.read_text())))]
    path = tmp_path / "watchdog.rules.json"  # YAML is a superset of JSON
    path.write_text(json.dumps({"groups": [{"name": "watchdog", "rules": rules}]}))
    return path


def test_promtool_accepts_the_watchdog_promql(tmp_path: Path) -> None:
    promtool = require_binary("promtool")
    result = subprocess.run([promtool, "check", "rules", str(rule_file(tmp_path))],
                            capture_output=True, text=True, timeout=60)
    assert result.returncode == 0, result.stdout + result.stderr
    assert len(all_promql()) == 3


def alerts_at(minute: int, name: str, *labels: dict[str, str]) -> dict[str, Any]:
    return {"eval_time": f"{minute}m", "alertname": name, "exp_alerts": [{"exp_labels": x} for x in labels]}


OK, FAILED = 'phasewatch_job_runs_total{job_name="%s",outcome="ok"}', 'phasewatch_job_runs_total{job_name="%s",outcome="failed"}'


def test_the_watchdog_fires_when_phasewatch_stops_judging_or_delivering_and_only_then(tmp_path: Path) -> None:
    """promtool runs the conditions over synthetic series, minute by minute."""
    promtool = require_binary("promtool")
    healthy = [{"series": OK % "checks", "values": "0+2x90"}, {"series": FAILED % "checks", "values": "0x90"}]
    tests = [
        {"interval": "1m", "input_series": healthy,  # every job well: nothing fires
         "alert_rule_test": [alerts_at(60, "Judging0"), alerts_at(60, "Judging1"), alerts_at(60, "Deliveries0")]},
        {"interval": "1m",  # the ticks stop at minute 10: silent at 20 (the window still sees them), fires at 26
         "input_series": [{"series": OK % "slo", "values": "0+2x10 20x80"}],
         "alert_rule_test": [alerts_at(20, "Judging0"), alerts_at(26, "Judging0", {})]},
        {"interval": "1m",  # no job metric at all (service or sidecar down): fires
         "input_series": [{"series": 'up{job="other"}', "values": "1x30"}],
         "alert_rule_test": [alerts_at(20, "Judging0", {"outcome": "ok"})]},
        {"interval": "1m",  # slo fails on every run from minute 6; checks stays well
         "input_series": [*healthy, {"series": OK % "slo", "values": "0+2x5 10x85"},
                          {"series": FAILED % "slo", "values": "0x5 0+2x85"}],
         "alert_rule_test": [alerts_at(15, "Judging1"), alerts_at(21, "Judging1", {"job_name": "slo"}),
                             alerts_at(21, "Judging0")]},
        {"interval": "1m",  # one notification went dead on Slack at minute 10: fires, then resolves
         "input_series": [*healthy, {"series": 'phasewatch_alerts_total{channel="slack",severity="critical",'
                                               'outcome="failed"}', "values": "0x10 1x80"}],
         "alert_rule_test": [alerts_at(9, "Deliveries0"), alerts_at(15, "Deliveries0", {"channel": "slack"}),
                             alerts_at(45, "Deliveries0")]},
    ]
    rules = rule_file(tmp_path)
    (tmp_path / "test.yml").write_text(yaml.safe_dump(
        {"rule_files": [rules.name], "evaluation_interval": "1m", "tests": tests}))
    result = subprocess.run([promtool, "test", "rules", str(tmp_path / "test.yml")],
                            capture_output=True, text=True, timeout=60, cwd=tmp_path)
    assert result.returncode == 0, result.stdout + result.stderr


async def scrape(pw: Phasewatch) -> str:
    """POST one job and read /metrics, as Cloud Scheduler and the Prometheus sidecar do."""
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=create_app(pw, None)),
                                 base_url="http://phasewatch.test") as client:
        assert (await client.post("/v1/jobs/slo")).status_code == 200
        return (await client.get("/metrics")).text


def exposed(text: str) -> set[str]:
    """The series names a /metrics text holds, as PromQL names them."""
    suffixes = {"counter": ["_total"], "gauge": [""], "histogram": ["_bucket", "_count", "_sum"]}
    return {family.name + suffix for family in text_string_to_metric_families(text)
            for suffix in suffixes.get(family.type, [""])}


def unknown_metrics(queries: list[str], names: set[str]) -> set[str]:
    bare = [re.sub(r'"(?:[^"\\]|\\.)*"', '""', q) for q in queries]  # label values are not names
    return {name for q in bare for name in re.findall(r"\bphasewatch_\w+", q)} - names


def test_the_watchdog_queries_name_metrics_that_phasewatch_serves(app: Phasewatch) -> None:
    text = asyncio.run(scrape(app))
    names = exposed(text)
    assert unknown_metrics(all_promql(), names) == set()
    assert unknown_metrics(['sum(increase(phasewatch_job_run_total{outcome="ok"}[15m]))'], names) == {
        "phasewatch_job_run_total"}  # a renamed metric fails this test
    runs = {(s.labels["job_name"], s.labels["outcome"]): s.value
            for f in text_string_to_metric_families(text) if f.name == "phasewatch_job_runs" for s in f.samples}
    assert runs[("slo", "ok")] == 1 and runs[("slo", "failed")] == 0
    assert set(app.jobs) == {job for job, _ in runs}  # every job at 0 from the start


def test_a_failing_job_counts_as_failed(app: Phasewatch) -> None:
    def boom(now: object) -> None:
        raise RuntimeError("the store is gone")

    app.add_job("boom", boom)
    app.run_job("boom")
    app.run_job("boom")
    value = app.metrics.registry.get_sample_value
    assert value("phasewatch_job_runs_total", {"job_name": "boom", "outcome": "failed"}) == 2
    assert value("phasewatch_job_runs_total", {"job_name": "boom", "outcome": "ok"}) == 0
