"""deploy/deploy.sh: shellcheck, and what its dry run would create.

Terraform cannot run here (no binary in Debian or PyPI, and its providers download from a
registry this machine does not reach), so the deploy is a gcloud script. Its dry run is
checked for what a lost-nothing deploy needs; where the real gcloud is installed, every
command it prints is parsed by gcloud itself (exit 2 is a usage error; without
credentials a well-formed command stops later, with exit 1).
"""

from __future__ import annotations

import json
import os
import shlex
import shutil
import subprocess
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
import yaml

from monitor.app.phasewatch import Phasewatch
from monitor.clock import FakeClock
from monitor.config import load_config
from tests.conftest import require_binary

ROOT = Path(__file__).resolve().parent.parent
SCRIPT = ROOT / "deploy" / "deploy.sh"
PROJECT = "nba-props-prod"


def dry_run(tmp_path: Path, **env: str) -> tuple[list[list[str]], dict[str, Any]]:
    """The gcloud commands the script would run, and the Cloud Run service it would deploy."""
    config = tmp_path / "pipeline.yaml"
    config.write_text("version: 1\n")
    service = tmp_path / "service.yaml"
    result = subprocess.run(
        ["bash", str(SCRIPT)], capture_output=True, text=True, timeout=60, check=True,
        env={"PATH": os.environ["PATH"], "DRY_RUN": "1", "PROJECT": PROJECT, "REGION": "us-east1",
             "IMAGE": "us-east1-docker.pkg.dev/p/phasewatch/phasewatch:0.1.0", "CONFIG": str(config),
             "TOPICS": "nba-phase3-complete nba-phase4-complete", "SERVICE_YAML": str(service),
             "DASHBOARDS": str(tmp_path / "dashboards"), **env})
    lines = [shlex.split(line) for line in result.stdout.splitlines()]
    assert all(line[:4] == ["gcloud", "--project", PROJECT, "--quiet"] for line in lines)
    return [line[4:] for line in lines], yaml.safe_load(service.read_text())


def _flag(command: list[str], name: str) -> str:
    return command[command.index(name) + 1]


def test_shellcheck_passes() -> None:
    shellcheck = require_binary("shellcheck")
    result = subprocess.run([shellcheck, "--severity=style", str(SCRIPT)], capture_output=True, text=True)
    assert result.returncode == 0, result.stdout


def test_every_push_subscription_has_oidc_and_the_dead_letter_topic(tmp_path: Path) -> None:
    commands, _ = dry_run(tmp_path)
    subscriptions = [c for c in commands if c[:3] == ["pubsub", "subscriptions", "create"]
                     and "--push-endpoint" in c]
    topics = {_flag(c, "--topic") for c in subscriptions}
    assert topics == {"nba-phase3-complete", "nba-phase4-complete", "phasewatch-scheduler-outcomes"}
    for command in subscriptions:
        assert _flag(command, "--push-endpoint").endswith("/v1/pubsub/push")
        assert _flag(command, "--push-auth-service-account") == f"phasewatch-push@{PROJECT}.iam.gserviceaccount.com"
        assert _flag(command, "--dead-letter-topic") == "phasewatch-dead-letter"
    kept = [c for c in commands if c[:3] == ["pubsub", "subscriptions", "create"]
            and _flag(c, "--topic") == "phasewatch-dead-letter"]
    assert len(kept) == 1 and "--push-endpoint" not in kept[0]  # dead letters are kept, pulled


def test_a_scheduler_job_for_every_job_phasewatch_registers(tmp_path: Path) -> None:
    pw = Phasewatch.build(load_config(), db_path=tmp_path / "pw.db",
                          clock=FakeClock(datetime(2026, 1, 18, tzinfo=UTC)), snapshots=True)
    registered = set(pw.jobs)
    pw.close()
    commands, _ = dry_run(tmp_path)
    jobs = [c for c in commands if c[:4] == ["scheduler", "jobs", "create", "http"]]
    assert {_flag(c, "--uri").rsplit("/v1/jobs/", 1)[1] for c in jobs} == registered
    for command in jobs:
        assert _flag(command, "--oidc-service-account-email").startswith("phasewatch-scheduler@")
        assert _flag(command, "--http-method") == "POST"


def test_the_service_runs_on_postgresql_with_the_prometheus_sidecar(tmp_path: Path) -> None:
    commands, service = dry_run(tmp_path)
    template = service["spec"]["template"]
    annotations = template["metadata"]["annotations"]
    assert annotations["run.googleapis.com/cloudsql-instances"] == f"{PROJECT}:us-east1:phasewatch"
    assert annotations["run.googleapis.com/cpu-throttling"] == "false"
    app, collector = template["spec"]["containers"]
    assert "--db" not in app["args"]  # PHASEWATCH_DB, never the image's SQLite default
    env = {e["name"]: e for e in app["env"]}
    assert env["PHASEWATCH_DB"]["valueFrom"]["secretKeyRef"]["name"] == "phasewatch-db"
    assert env["SLACK_WEBHOOK_URL"]["valueFrom"]["secretKeyRef"]["name"] == "phasewatch-slack-webhook"
    assert env["PAGERDUTY_ROUTING_KEY"]["valueFrom"]["secretKeyRef"]["name"] == "phasewatch-pagerduty-routing-key"
    assert (env["PHASEWATCH_LOG_FORMAT"]["value"], env["OTEL_TRACES_EXPORTER"]["value"]) == ("json", "gcp_trace")
    assert "cloud-run-gmp-sidecar" in collector["image"]
    assert collector["volumeMounts"] == [{"name": "gmp-config", "mountPath": "/etc/rungmp"}]
    assert json.loads(annotations["run.googleapis.com/container-dependencies"]) == {"collector": ["app"]}
    assert any(c[:3] == ["run", "services", "replace"] for c in commands)
    invokers = [c for c in commands if c[:3] == ["run", "services", "add-iam-policy-binding"]]
    assert {_flag(c, "--member").split("@")[0] for c in invokers} == {
        "serviceAccount:phasewatch-push", "serviceAccount:phasewatch-scheduler",
        "serviceAccount:service-PROJECT_NUMBER"}  # the watchdog's uptime check (Monitoring)


def test_dashboards_are_created_from_whatever_files_exist(tmp_path: Path) -> None:
    commands, _ = dry_run(tmp_path)
    assert not [c for c in commands if c[:2] == ["monitoring", "dashboards"]]  # none yet: no failure
    (tmp_path / "dashboards").mkdir()
    for name in ("runs", "slos"):
        (tmp_path / "dashboards" / f"{name}.json").write_text(json.dumps({"displayName": name}))
    commands, _ = dry_run(tmp_path)
    created = [c for c in commands if c[:3] == ["monitoring", "dashboards", "create"]]
    assert sorted(Path(_flag(c, "--config-from-file")).name for c in created) == ["runs.json", "slos.json"]


def test_gcloud_parses_every_command(tmp_path: Path) -> None:
    gcloud = shutil.which("gcloud")
    if gcloud is None:  # not in Debian's archive: Google's own apt repository ships it
        pytest.skip("gcloud is not installed (Google Cloud CLI)")
    (tmp_path / "dashboards").mkdir()
    (tmp_path / "dashboards" / "runs.json").write_text('{"displayName": "runs"}')
    commands, _ = dry_run(tmp_path)
    # One of each kind with three flags or more (where a mistake hides): its first words and flags.
    distinct = {tuple(c[:3]) + tuple(sorted(a for a in c if a.startswith("--"))): c for c in commands
                if sum(a.startswith("--") for a in c) >= 3}
    env = {**os.environ, "CLOUDSDK_CONFIG": str(tmp_path / "gcloud"), "CLOUDSDK_CORE_DISABLE_PROMPTS": "1"}

    def parse(command: list[str]) -> tuple[list[str], int, str]:
        done = subprocess.run([gcloud, "--project", PROJECT, "--quiet", *command], capture_output=True, text=True, timeout=120,
                              env=env, stdin=subprocess.DEVNULL)
        return command, done.returncode, done.stderr

    with ThreadPoolExecutor(2) as pool:
        results = list(pool.map(parse, distinct.values()))
    usage_errors = [(" ".join(c), err.strip().splitlines()[:2]) for c, code, err in results if code == 2]
    assert not usage_errors
