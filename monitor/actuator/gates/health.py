"""The health gate: probes of services' health / ready / deep URLs, read in every body shape.

Bodies understood: ``application/health+json`` (``status`` pass / warn / fail, ``checks``),
the legacy ``{"status": "healthy" | "ready" | "degraded" | "not ready" ...}`` shapes, deep
checks (``checks_failed``), and plain status codes. A body that names another service than
the configured ``identity`` is unhealthy: the wrong code is deployed there.
The HTTP probe imports httpx and builds its client on its first probe (``monitor.lazy``).
"""

from __future__ import annotations

import json
import logging
from collections.abc import Sequence
from datetime import datetime
from typing import TYPE_CHECKING, Any

from monitor.actuator.config import ServiceConfig
from monitor.actuator.gates.base import (
    Endpoint,
    GateContext,
    GateResult,
    HealthProbe,
    HealthResult,
    HealthSource,
    HealthStatus,
)
from monitor.config import resolve_secret
from monitor.errors import IdTokenError
from monitor.idtokens import IdTokens
from monitor.lazy import Lazy

if TYPE_CHECKING:
    import httpx

log = logging.getLogger(__name__)

PASS_WORDS = frozenset({"pass", "ok", "up", "healthy", "ready", "green", "alive", "serving"})
WARN_WORDS = frozenset({"warn", "warning", "degraded", "yellow"})
FAIL_WORDS = frozenset({
    "fail", "failed", "failing", "down", "unhealthy", "not ready", "not_ready", "notready",
    "error", "red", "critical", "unavailable",
})
RANK: dict[HealthStatus, int] = {"pass": 0, "warn": 1, "fail": 2}
ACCEPT = "application/health+json, application/json;q=0.9, */*;q=0.1"
_DETAIL_CHARS = 300


def interpret(
    http_status: int, body: bytes, config: ServiceConfig, endpoint: str = "health"
) -> tuple[HealthStatus, str]:
    """One endpoint's answer as (status, why). The HTTP status wins over a hopeful body."""
    data = _json(body)
    where = f"{endpoint} HTTP {http_status}"
    if isinstance(data, dict):
        identity = _identity_problem(data, config)
        if identity:
            return "fail", identity
    said = _body_status(data)
    if http_status >= 400 or http_status < 200:
        reason = f" ({said})" if said else ""
        return "fail", f"{where}{reason}{_reasons(data)}"
    failed_checks = _failed_checks(data)
    if failed_checks:
        return "fail", f"{where}: failed checks {failed_checks}"
    if said is None or said in PASS_WORDS:
        return "pass", where
    if said in WARN_WORDS:
        return "warn", f"{where}: {said}{_reasons(data)}"
    if said in FAIL_WORDS:
        return "fail", f"{where}: {said}{_reasons(data)}"
    return "warn", f"{where}: unknown status {said!r}"


VERSION_FIELDS = ("version", "releaseId")


def body_version(body: bytes) -> str | None:
    """The code version a health body reports (health+json ``version`` or ``releaseId``)."""
    data = _json(body)
    if not isinstance(data, dict):
        return None
    for name in VERSION_FIELDS:
        value = data.get(name)
        if isinstance(value, str | int) and not isinstance(value, bool) and str(value).strip():
            return str(value).strip()[:128]
    return None


def _json(body: bytes) -> Any:
    text = body.strip()
    if not text or text[:1] not in (b"{", b"["):
        return None
    try:
        return json.loads(text)
    except ValueError:
        return None


def _body_status(data: Any) -> str | None:
    if isinstance(data, dict):
        value = data.get("status")
        if isinstance(value, str):
            return value.strip().lower()
        if isinstance(value, bool):
            return "pass" if value else "fail"
    return None


def _identity_problem(data: dict[str, Any], config: ServiceConfig) -> str | None:
    if config.identity is None:
        return None
    reported = data.get(config.identity_field)
    if isinstance(reported, str) and reported != config.identity:
        return (f"wrong identity: {config.identity_field} is {reported!r}, expected "
                f"{config.identity!r} (wrong code deployed?)")
    return None


def _failed_checks(data: Any) -> list[str]:
    """Names of failed checks in a deep-check or health+json body."""
    if not isinstance(data, dict):
        return []
    failed = data.get("checks_failed")
    if isinstance(failed, list) and failed:
        return [str(f) for f in failed][:10]
    if isinstance(failed, int) and not isinstance(failed, bool) and failed > 0:
        return [f"{failed} check(s)"]
    checks = data.get("checks")
    names: list[str] = []
    if isinstance(checks, dict):
        for name, value in checks.items():
            items = value if isinstance(value, list) else [value]
            for item in items:
                status = _body_status(item) if isinstance(item, dict) else (
                    item.lower() if isinstance(item, str) else None)
                if status in FAIL_WORDS:
                    names.append(str(name))
                    break
    return names[:10]


def _reasons(data: Any) -> str:
    if not isinstance(data, dict):
        return ""
    for key in ("reason", "output", "error", "message"):
        value = data.get(key)
        if value:
            text = value if isinstance(value, str) else json.dumps(value)
            return f": {text[:_DETAIL_CHARS]}"
    return ""


def worst(results: Sequence[tuple[HealthStatus, str]]) -> tuple[HealthStatus, str]:
    """The most severe of several endpoint results (pass when there are none)."""
    if not results:
        return "pass", "no endpoint"
    return max(results, key=lambda r: RANK[r[0]])


def endpoint_urls(config: ServiceConfig, endpoints: Sequence[Endpoint]) -> list[tuple[str, str]]:
    """(endpoint, URL) for the endpoints the service has configured."""
    urls = {"health": config.health_url, "ready": config.ready_url, "deep": config.deep_url}
    return [(e, str(urls[e])) for e in endpoints if urls.get(e) is not None]


def _pooled_client() -> httpx.Client:
    import httpx

    return httpx.Client(limits=httpx.Limits(max_connections=32, max_keepalive_connections=16))


class HttpHealthProbe:
    """Probes over HTTP with one pooled client (built on the first probe); a timeout, a refused
    connection or an ID token that cannot be minted (``auth: google``) is a fail."""

    parallel = True  # the health job may probe several services at once

    def __init__(self, timeout_s: float = 5.0, client: httpx.Client | None = None,
                 id_tokens: IdTokens | None = None) -> None:
        self.timeout_s = timeout_s
        self._client = Lazy(_pooled_client) if client is None else Lazy.given(client)
        self._owned = client is None
        self._id_tokens = id_tokens or IdTokens()

    def probe(
        self, service: str, config: ServiceConfig, endpoints: Sequence[Endpoint], at: datetime
    ) -> HealthResult:
        import httpx

        results: list[tuple[HealthStatus, str]] = []
        codes: list[int] = []
        version: str | None = None
        for endpoint, url in endpoint_urls(config, endpoints):
            try:
                headers = self._headers(config, url)
            except IdTokenError as exc:
                results.append(("fail", f"{endpoint}: {exc}"[:_DETAIL_CHARS]))
                continue
            try:
                response = self._client.get().get(url, headers=headers, timeout=self.timeout_s)
            except httpx.TimeoutException:
                results.append(("fail", f"{endpoint}: timeout after {self.timeout_s:g} s"))
                continue
            except httpx.HTTPError as exc:
                results.append(("fail", f"{endpoint}: unreachable ({type(exc).__name__})"))
                continue
            codes.append(response.status_code)
            results.append(interpret(response.status_code, response.content, config, endpoint))
            version = version or body_version(response.content)
        status, detail = worst(results)
        return HealthResult(service, status, detail, at, max(codes) if codes else None, version)

    def _headers(self, config: ServiceConfig, url: str) -> dict[str, str]:
        """Accept, and the bearer token: an ID token for the URL's audience, or token_env's."""
        headers = {"Accept": ACCEPT}
        audience = config.audience_for(url)
        token = self._id_tokens.get(audience) if audience else resolve_secret(config.token_env)
        if token:
            headers["Authorization"] = f"Bearer {token}"
        return headers

    def close(self) -> None:
        client = self._client.built
        if self._owned and client is not None:
            client.close()


class HealthGate:
    """Passes when every named service's latest probe (at most ``max_age_s`` old) is healthy."""

    kind = "health"

    def __init__(
        self, services: Sequence[str], endpoints: Sequence[Endpoint], monitor: HealthSource,
        warn_is_healthy: bool = True,
    ) -> None:
        self.services = tuple(services)
        self.endpoints = tuple(endpoints)
        self.monitor = monitor
        self.warn_is_healthy = warn_is_healthy

    def check(self, ctx: GateContext) -> GateResult:
        for service in self.services:
            result = self.monitor.current(service, self.endpoints, ctx.now)
            if not result.healthy(self.warn_is_healthy):
                return GateResult(False, "health", f"{service}: {result.detail}", service)
        return GateResult.ok("health")

    def answers_now(self, ctx: GateContext) -> bool:
        """Whether ``check`` would answer from recent probes, without probing (no I/O)."""
        return all(self.monitor.fresh(service, self.endpoints, ctx.now) for service in self.services)


__all__ = ["HealthGate", "HealthProbe", "HealthSource", "HttpHealthProbe", "body_version", "interpret"]
