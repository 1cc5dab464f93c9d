"""Deploys: when each service got new code, so that "unhealthy" can say "deploy regression".

phasewatch learns of a deploy three ways, all kept in the store (component ``deploys``):

- a health probe whose body reports another ``version`` / ``releaseId`` than the last one
  seen (``application/health+json``): a deploy seen at that probe;
- ``POST /v1/deploys`` ``{"service", "version"?, "timestamp"?}`` from a deploy pipeline;
- a replay file's ``{"type": "deploy", ...}`` line.

``regression(service, began)`` is the last deploy at most ``window`` before an unhealthy
streak began (or during the streak, before the alert): the health monitor labels that
"service unhealthy" alert ``cause: deploy_regression``.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Annotated, Any, Literal

from prometheus_client import Counter
from pydantic import BaseModel, ConfigDict, StringConstraints, ValidationError

from monitor.errors import EventError, Problem
from monitor.store.base import ComponentStore, Migration, utc_text
from monitor.validation import Instant, problems_from_validation_error, query_int, render_value

MIGRATIONS: tuple[Migration, ...] = (
    """
    CREATE TABLE deploys (
        id          INTEGER PRIMARY KEY,
        service     TEXT NOT NULL,
        version     TEXT,
        at          TEXT NOT NULL,
        source      TEXT NOT NULL,
        recorded_at TEXT NOT NULL
    );
    CREATE UNIQUE INDEX deploys_once ON deploys (service, at, COALESCE(version, ''));
    CREATE INDEX deploys_by_service ON deploys (service, at);
    CREATE TABLE deploy_versions (
        service TEXT PRIMARY KEY,
        version TEXT NOT NULL,
        seen_at TEXT NOT NULL
    )
    """,
)

Source = Literal["probe", "api", "replay"]
VersionText = Annotated[str, StringConstraints(min_length=1, max_length=128)]
LIST_LIMIT = 1000


@dataclass(frozen=True)
class Deploy:
    """One deploy of a service."""

    service: str
    version: str | None
    at: datetime
    source: str

    def as_dict(self) -> dict[str, Any]:
        return {"service": self.service, "version": self.version, "time": self.at.isoformat(),
                "source": self.source}


class DeployNotice(BaseModel):
    """The body of ``POST /v1/deploys``."""

    model_config = ConfigDict(frozen=True, extra="forbid", strict=True)

    service: VersionText
    version: VersionText | None = None
    timestamp: Instant | None = None


FLAP_WINDOW = timedelta(minutes=30)  # a version seen again within this is not a new deploy


class Deploys:
    """Deploys of the configured services, durable in the store."""

    def __init__(self, store: ComponentStore, services: Iterable[str],
                 counter: Counter | None = None) -> None:
        self._store = store
        self.services = frozenset(services)
        self._counter = counter  # phasewatch_deploys{service,source}: new deploys only
        store.migrate_component("deploys", MIGRATIONS)
        # Versions probes reported lately, per service: a traffic split between revisions
        # (or mixed instances) alternates versions, and each flip is not a deploy.
        self._seen: dict[str, dict[str, datetime]] = {}

    def record(self, service: str, version: str | None, at: datetime, source: Source,
               now: datetime | None = None) -> Deploy:
        """Keep a deploy (a repeat of the same service, time and version is kept once)."""
        with self._store.transaction() as db:
            new = db.execute(
                "INSERT INTO deploys (service, version, at, source, recorded_at)"
                " VALUES (?, ?, ?, ?, ?) ON CONFLICT DO NOTHING",
                (service, version, utc_text(at), source, utc_text(now or at)),
            ).rowcount == 1
            if version is not None:  # a probe that then reports it sees no second deploy
                db.execute(
                    "INSERT INTO deploy_versions (service, version, seen_at) VALUES (?, ?, ?)"
                    " ON CONFLICT (service) DO UPDATE SET version = excluded.version,"
                    " seen_at = excluded.seen_at WHERE excluded.seen_at >= deploy_versions.seen_at",
                    (service, version, utc_text(at)),
                )
        if new and self._counter is not None:
            self._counter.labels(service, source).inc()
        return Deploy(service, version, at, source)

    def observe_version(self, service: str, version: str | None, at: datetime) -> Deploy | None:
        """A probe reported ``version``: a deploy when it differs from the last one seen."""
        if version is None:
            return None
        seen = self._seen.setdefault(service, {})
        recent = seen.get(version)
        for old in [v for v, t in seen.items() if at - t > FLAP_WINDOW]:
            del seen[old]
        seen[version] = at
        rows = self._store.read("SELECT version FROM deploy_versions WHERE service = ?", (service,))
        if rows and rows[0][0] == version:
            return None
        if recent is not None and at - recent <= FLAP_WINDOW:  # back to a version just seen
            return None
        if not rows:  # the first version ever seen: where it came from is unknown
            with self._store.transaction() as db:
                db.execute(
                    "INSERT INTO deploy_versions (service, version, seen_at)"
                    " VALUES (?, ?, ?) ON CONFLICT DO NOTHING", (service, version, utc_text(at)),
                )
            return None
        return self.record(service, version, at, "probe")

    def last(self, service: str, until: datetime) -> Deploy | None:
        """The service's latest deploy at or before ``until``."""
        rows = self._store.read(
            "SELECT service, version, at, source FROM deploys WHERE service = ? AND at <= ?"
            " ORDER BY at DESC, id DESC LIMIT 1", (service, utc_text(until)),
        )
        return _deploy(rows[0]) if rows else None

    def regression(self, service: str, began: datetime, until: datetime,
                   window: timedelta) -> Deploy | None:
        """The deploy that an unhealthy streak (began .. until) follows within ``window``."""
        deploy = self.last(service, until)
        if deploy is None or began - deploy.at > window:
            return None
        return deploy

    def list(self, service: str | None = None, limit: int = 100) -> list[Deploy]:
        """Deploys, newest first."""
        query, params = "SELECT service, version, at, source FROM deploys", list[object]()
        if service is not None:
            query += " WHERE service = ?"
            params.append(service)
        query += " ORDER BY at DESC, id DESC LIMIT ?"
        params.append(limit)
        return [_deploy(r) for r in self._store.read(query, params)]


def _deploy(row: tuple[Any, ...]) -> Deploy:
    return Deploy(str(row[0]), row[1], datetime.fromisoformat(row[2]), str(row[3]))


# --- the HTTP endpoints (the service module wires them) ------------------------------------

def post_deploy(deploys: Deploys, body: bytes, now: datetime) -> dict[str, Any]:
    """``POST /v1/deploys``: validate and keep a deploy notice; EventError (4xx) names the field."""
    try:
        notice = DeployNotice.model_validate_json(body)
    except ValidationError as exc:
        problems = problems_from_validation_error(exc, root=DeployNotice)
        raise EventError("bad_deploy", problems) from None
    if notice.service not in deploys.services:
        raise EventError("unknown_name", [Problem(
            "service", f"unknown service; allowed: {', '.join(sorted(deploys.services))}",
            render_value(notice.service),
        )], status_code=404)
    deploy = deploys.record(notice.service, notice.version, notice.timestamp or now, "api", now)
    return {"deploy": deploy.as_dict()}


def list_deploys(deploys: Deploys, query: Mapping[str, str]) -> dict[str, Any]:
    """``GET /v1/deploys?service=&limit=``: deploys, newest first."""
    problems: list[Problem] = []
    service = query.get("service") or None
    if service is not None and service not in deploys.services:
        problems.append(Problem("service", "unknown service; allowed: "
                                + ", ".join(sorted(deploys.services)), render_value(service)))
    limit = query_int(query, "limit", problems, default=100, low=1, high=LIST_LIMIT)
    if problems:
        raise EventError("bad_query", problems, status_code=400)
    return {"deploys": [d.as_dict() for d in deploys.list(service, limit)]}
