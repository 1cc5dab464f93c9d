"""Create or update Cloud Monitoring dashboards (google-cloud-monitoring-dashboards).

Dashboards are matched by display name among the project's dashboards: one found is
updated with its ``name`` and ``etag`` (so a concurrent edit is refused, not overwritten),
one not found is created, one that already reads the same is left alone. With
``validate_only`` the API checks every dashboard and changes nothing.
"""

from __future__ import annotations

import ipaddress
import json
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, Literal

import grpc
from google.api_core import exceptions as api_errors
from google.auth import exceptions as auth_errors
from google.cloud.monitoring_dashboard_v1 import (
    CreateDashboardRequest,
    Dashboard,
    DashboardsServiceClient,
    ListDashboardsRequest,
    UpdateDashboardRequest,
)
from google.cloud.monitoring_dashboard_v1.services.dashboards_service.transports.grpc import (
    DashboardsServiceGrpcTransport,
)

CREDENTIALS_HINT = (
    "run `gcloud auth application-default login`, or set GOOGLE_APPLICATION_CREDENTIALS to a "
    "service account key file"
)
ROLE_HINT = "the caller needs roles/monitoring.dashboardEditor on the project"


class PushError(Exception):
    """A push that could not be done; ``usage`` when the user must fix something first."""

    def __init__(self, message: str, *, usage: bool) -> None:
        super().__init__(message)
        self.usage = usage


@dataclass(frozen=True)
class Pushed:
    """What happened to one dashboard."""

    display_name: str
    action: Literal["created", "updated", "unchanged", "valid (new)", "valid (update)"]
    name: str | None  # the API's resource name, when it has one


def _loopback(endpoint: str) -> bool:
    host = endpoint.rsplit(":", 1)[0].strip("[]")
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def client(endpoint: str | None = None) -> DashboardsServiceClient:
    """A client with Application Default Credentials; a loopback ``endpoint`` (a local test
    server or emulator) gets a plain-text channel and no credentials."""
    if endpoint is not None and _loopback(endpoint):
        channel = grpc.insecure_channel(endpoint)
        return DashboardsServiceClient(transport=DashboardsServiceGrpcTransport(channel=channel))
    options = {"api_endpoint": endpoint} if endpoint else None
    try:
        return DashboardsServiceClient(client_options=options)
    except auth_errors.DefaultCredentialsError as exc:
        raise PushError(f"no Google Cloud credentials ({_first_line(exc)}); {CREDENTIALS_HINT}",
                        usage=True) from None


def _first_line(exc: BaseException) -> str:
    return (str(exc).strip().splitlines() or [type(exc).__name__])[0]


def _same(existing: Dashboard, wanted: Dashboard) -> bool:
    current = Dashboard(existing)
    current.name = ""
    current.etag = ""
    return bool(current == wanted)


def push(api: DashboardsServiceClient, project: str, documents: Sequence[dict[str, Any]], *,
         validate_only: bool = False) -> list[Pushed]:
    """Create or update each dashboard (the API's JSON) in ``project``."""
    parent = f"projects/{project}"
    try:
        return _push(api, parent, documents, validate_only)
    except auth_errors.GoogleAuthError as exc:
        raise PushError(f"Google Cloud credentials refused ({_first_line(exc)}); {CREDENTIALS_HINT}",
                        usage=True) from None
    except (api_errors.PermissionDenied, api_errors.Unauthenticated) as exc:
        raise PushError(f"project {project!r}: {exc.message}; {ROLE_HINT}", usage=True) from None
    except api_errors.NotFound as exc:
        raise PushError(f"project {project!r}: {exc.message}", usage=True) from None
    except api_errors.GoogleAPICallError as exc:
        raise PushError(f"project {project!r}: {type(exc).__name__}: {exc.message}",
                        usage=False) from None


def _push(api: DashboardsServiceClient, parent: str, documents: Sequence[dict[str, Any]],
          validate_only: bool) -> list[Pushed]:
    existing: dict[str, list[Dashboard]] = {}
    for found in api.list_dashboards(request=ListDashboardsRequest(parent=parent)):
        existing.setdefault(found.display_name, []).append(found)
    results = []
    for document in documents:
        wanted = Dashboard.from_json(json.dumps(document))
        matches = existing.get(wanted.display_name, [])
        if len(matches) > 1:
            names = ", ".join(m.name for m in matches)
            raise PushError(f"{len(matches)} dashboards are named {wanted.display_name!r} ({names}): "
                            "delete or rename all but one", usage=True)
        if not matches:
            created = api.create_dashboard(request=CreateDashboardRequest(
                parent=parent, dashboard=wanted, validate_only=validate_only))
            results.append(Pushed(wanted.display_name, "valid (new)" if validate_only else "created",
                                  None if validate_only else created.name))
            continue
        current = matches[0]
        if _same(current, wanted):
            results.append(Pushed(wanted.display_name, "unchanged", current.name))
            continue
        update = Dashboard(wanted)
        update.name = current.name
        update.etag = current.etag
        api.update_dashboard(request=UpdateDashboardRequest(dashboard=update, validate_only=validate_only))
        results.append(Pushed(wanted.display_name, "valid (update)" if validate_only else "updated",
                              current.name))
    return results
