"""``phasewatch dashboards push`` with the real google-cloud-monitoring-dashboards client
against an in-process gRPC DashboardsService that records every request."""

from __future__ import annotations

import json
from collections.abc import Iterator
from concurrent import futures
from dataclasses import dataclass, field
from typing import Any

import grpc
import pytest
from click.testing import CliRunner
from google.cloud import monitoring_dashboard_v1 as md

from monitor.app.cli.dashboards import bundled_configs
from monitor.app.cli.main import main
from monitor.dashboards import render
from monitor.dashboards.push import PushError, client, push

SERVICE = "google.monitoring.dashboard.v1.DashboardsService"
PROJECT = "nba-props-platform"


@dataclass
class FakeDashboards:
    """Keeps dashboards by name, checks etags like the API, records every request."""

    address: str = ""
    dashboards: dict[str, md.Dashboard] = field(default_factory=dict)
    requests: list[tuple[str, Any]] = field(default_factory=list)
    deny: bool = False
    serial: int = 0

    def _abort_if_denied(self, context: grpc.ServicerContext) -> None:
        if self.deny:
            context.abort(grpc.StatusCode.PERMISSION_DENIED, "Permission monitoring.dashboards.list denied")

    def list(self, request: md.ListDashboardsRequest, context: grpc.ServicerContext) -> md.ListDashboardsResponse:
        self.requests.append(("list", request))
        self._abort_if_denied(context)
        return md.ListDashboardsResponse(dashboards=list(self.dashboards.values()))

    def create(self, request: md.CreateDashboardRequest, context: grpc.ServicerContext) -> md.Dashboard:
        self.requests.append(("create", request))
        if request.dashboard.name or request.dashboard.etag:
            context.abort(grpc.StatusCode.INVALID_ARGUMENT, "name and etag are the API's to set")
        stored = md.Dashboard(request.dashboard)
        self.serial += 1
        stored.name = f"{request.parent}/dashboards/{self.serial}"
        stored.etag = f"etag-{self.serial}"
        if not request.validate_only:
            self.dashboards[stored.name] = stored
        return stored

    def update(self, request: md.UpdateDashboardRequest, context: grpc.ServicerContext) -> md.Dashboard:
        self.requests.append(("update", request))
        current = self.dashboards.get(request.dashboard.name)
        if current is None:
            context.abort(grpc.StatusCode.NOT_FOUND, f"{request.dashboard.name} not found")
        if request.dashboard.etag != current.etag:
            context.abort(grpc.StatusCode.ABORTED, "etag mismatch: the dashboard was changed")
        stored = md.Dashboard(request.dashboard)
        self.serial += 1
        stored.etag = f"etag-{self.serial}"
        if not request.validate_only:
            self.dashboards[stored.name] = stored
        return stored

    def of(self, kind: str) -> list[Any]:
        return [r for k, r in self.requests if k == kind]


def _handler(fn: Any, request: Any, response: Any) -> grpc.RpcMethodHandler:
    return grpc.unary_unary_rpc_method_handler(
        fn, request_deserializer=request.deserialize, response_serializer=response.serialize)


@pytest.fixture
def fake() -> Iterator[FakeDashboards]:
    state = FakeDashboards()
    handler = grpc.method_handlers_generic_handler(SERVICE, {
        "ListDashboards": _handler(state.list, md.ListDashboardsRequest, md.ListDashboardsResponse),
        "CreateDashboard": _handler(state.create, md.CreateDashboardRequest, md.Dashboard),
        "UpdateDashboard": _handler(state.update, md.UpdateDashboardRequest, md.Dashboard),
    })
    server = grpc.server(futures.ThreadPoolExecutor(max_workers=2))
    server.add_generic_rpc_handlers((handler,))
    port = server.add_insecure_port("127.0.0.1:0")
    server.start()
    state.address = f"127.0.0.1:{port}"
    try:
        yield state
    finally:
        server.stop(grace=None)


def documents(query: str = "promql") -> list[dict[str, Any]]:
    files = render(bundled_configs(), query=query)  # type: ignore[arg-type]
    return [json.loads(t) for n, t in sorted(files.items()) if n.startswith("cloud-monitoring/")]


def as_json(dashboard: md.Dashboard) -> dict[str, Any]:
    return json.loads(md.Dashboard.to_json(dashboard, use_integers_for_enums=False,
                                           always_print_fields_with_no_presence=False))


def test_push_creates_then_leaves_alone_then_updates_with_the_etag(fake: FakeDashboards) -> None:
    api = client(fake.address)
    wanted = documents()
    first = push(api, PROJECT, wanted)
    assert [(p.action, p.display_name) for p in first] == [
        ("created", "phasewatch mlb: overview"), ("created", "phasewatch nba: overview"),
        ("created", "phasewatch nba: SLOs"),
    ]
    assert [r.parent for r in fake.of("list")] == [f"projects/{PROJECT}"]
    sent = [as_json(r.dashboard) for r in fake.of("create")]
    assert sent == wanted  # exactly the files' JSON, nothing added or lost
    assert not any(r.validate_only for r in fake.of("create"))

    fake.requests.clear()
    again = push(api, PROJECT, wanted)
    assert {p.action for p in again} == {"unchanged"}
    assert [k for k, _ in fake.requests] == ["list"]  # nothing rewritten

    fake.requests.clear()
    changed = documents("filter")
    before = {d.display_name: (d.name, d.etag) for d in fake.dashboards.values()}
    third = push(api, PROJECT, changed)
    assert {p.action for p in third} == {"updated"}
    updates = fake.of("update")
    assert [(u.dashboard.name, u.dashboard.etag) for u in updates] == [
        before[d["displayName"]] for d in changed]
    assert [as_json(u.dashboard) for u in updates] == [
        d | {"name": before[d["displayName"]][0], "etag": before[d["displayName"]][1]} for d in changed]
    assert len(fake.dashboards) == 3  # updated in place, none added


def test_validate_only_reaches_the_api_and_changes_nothing(fake: FakeDashboards) -> None:
    api = client(fake.address)
    result = push(api, PROJECT, documents(), validate_only=True)
    assert {p.action for p in result} == {"valid (new)"}
    assert [r.validate_only for r in fake.of("create")] == [True, True, True]
    assert fake.dashboards == {}
    push(api, PROJECT, documents())
    fake.requests.clear()
    result = push(api, PROJECT, documents("filter"), validate_only=True)
    assert {p.action for p in result} == {"valid (update)"}
    assert all(u.validate_only for u in fake.of("update"))
    assert all("prometheusQuery" in json.dumps(as_json(d)) for d in fake.dashboards.values())


def test_two_dashboards_with_one_display_name_are_not_guessed_between(fake: FakeDashboards) -> None:
    for n in (1, 2):
        twin = md.Dashboard.from_json(json.dumps(documents()[0]))
        twin.name, twin.etag = f"projects/{PROJECT}/dashboards/twin{n}", "e"
        fake.dashboards[twin.name] = twin
    with pytest.raises(PushError, match="2 dashboards are named 'phasewatch mlb: overview'") as info:
        push(client(fake.address), PROJECT, documents())
    assert info.value.usage
    assert fake.of("update") == [] and fake.of("create") == []


def test_cli_pushes_and_reports_each_dashboard(fake: FakeDashboards) -> None:
    runner = CliRunner()
    args = ["dashboards", "push", "--project", PROJECT, "--endpoint", fake.address]
    checked = runner.invoke(main, [*args, "--validate-only"])
    assert checked.exit_code == 0, checked.output
    assert checked.output.splitlines() == [
        "valid (new): phasewatch mlb: overview", "valid (new): phasewatch nba: overview",
        "valid (new): phasewatch nba: SLOs",
    ]
    done = runner.invoke(main, args)
    assert done.exit_code == 0, done.output
    assert done.output.splitlines()[0] == (
        f"created: phasewatch mlb: overview (projects/{PROJECT}/dashboards/4)")
    assert len(fake.dashboards) == 3


def test_permission_denied_is_exit_2_naming_the_project_and_role(fake: FakeDashboards) -> None:
    fake.deny = True
    result = CliRunner().invoke(main, ["dashboards", "push", "--project", PROJECT,
                                       "--endpoint", fake.address])
    assert result.exit_code == 2
    assert result.stderr.startswith(f"error: project '{PROJECT}': Permission monitoring.dashboards.list")
    assert "roles/monitoring.dashboardEditor" in result.stderr
    assert "Traceback" not in result.output + result.stderr


def test_missing_credentials_are_exit_2_with_what_to_do(monkeypatch: pytest.MonkeyPatch,
                                                         tmp_path: Any) -> None:
    monkeypatch.setenv("GOOGLE_APPLICATION_CREDENTIALS", str(tmp_path / "missing-key.json"))
    result = CliRunner().invoke(main, ["dashboards", "push", "--project", PROJECT])
    assert result.exit_code == 2
    assert result.stderr.startswith("error: no Google Cloud credentials (")
    assert "gcloud auth application-default login" in result.stderr
    assert "Traceback" not in result.output + result.stderr
