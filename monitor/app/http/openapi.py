"""The OpenAPI 3.1 document: each API handler declares what it documents with ``@route``."""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass
from typing import Any, TypeVar

from starlette.requests import Request
from starlette.responses import Response

from monitor.checks.result import CheckInput
from monitor.events import Event, PushEnvelope
from monitor.scheduler.attempt import OutcomeBody

HEALTH_JSON = "application/health+json"
SAFE_METHODS = frozenset({"GET", "HEAD", "OPTIONS"})
Handler = Callable[[Request], Awaitable[Response]]
F = TypeVar("F", bound=Callable[..., Any])


@dataclass(frozen=True)
class Operation:
    """What one route documents: its method, path, summary, responses, parameters and body."""

    method: str
    path: str
    summary: str
    responses: dict[str, str]
    parameters: tuple[dict[str, Any], ...] = ()
    body: dict[str, Any] | None = None
    media: str | None = None  # a success's media type when it is not JSON (text/html)


@dataclass(frozen=True)
class Endpoint:
    """One route: its operation and the bound handler (the route table and the document share it)."""

    operation: Operation
    handler: Handler

    @property
    def method(self) -> str:
        return self.operation.method

    @property
    def path(self) -> str:
        return self.operation.path


def route(
    method: str, path: str, *, summary: str, responses: dict[str, str],
    parameters: tuple[dict[str, Any], ...] = (), body: dict[str, Any] | None = None,
    media: str | None = None,
) -> Callable[[F], F]:
    """Mark an API method as the handler of ``method path``, with what it documents
    (``media``: what a success answers when it is not JSON)."""
    operation = Operation(method, path, summary, responses, parameters, body, media)

    def mark(fn: F) -> F:
        fn.route = operation  # type: ignore[attr-defined]
        return fn

    return mark



_SCHEMA = "#/components/schemas/{model}"
ERROR = {"$ref": "#/components/schemas/Error"}
HEALTH = {"$ref": "#/components/schemas/Health"}
EVENT = {"$ref": "#/components/schemas/Event"}
CHECK = {"$ref": "#/components/schemas/CheckInput"}
OUTCOME = {"$ref": "#/components/schemas/SchedulerOutcome"}


def content(schema: dict[str, Any], media: str = "application/json") -> dict[str, Any]:
    return {"content": {media: {"schema": schema}}}


def query(name: str, description: str, **schema: Any) -> dict[str, Any]:
    return {"name": name, "in": "query", "required": False, "description": description,
            "schema": {"type": "string", **schema}}



_STATUS_SCHEMA = {
    "202": content({"type": "object", "properties": {
        "accepted": {"type": "integer"}, "duplicates": {"type": "integer"}}}),
}


def _operation(ep: Endpoint, public_reads: frozenset[str] | None) -> dict[str, Any]:
    responses: dict[str, Any] = {}
    doc = ep.operation
    for status, description in doc.responses.items():
        schema = _STATUS_SCHEMA.get(status)
        if schema is None and doc.media is not None and status.startswith("2"):
            schema = content({"type": "string"}, doc.media)
        if schema is None and (status.startswith(("4", "5"))):
            schema = content(ERROR)
        if schema is None and ep.path in ("/health", "/ready"):
            schema = content(HEALTH, HEALTH_JSON)
        responses[status] = {"description": description, **(schema or {})}
    op: dict[str, Any] = {"summary": doc.summary, "operationId": ep.handler.__name__,
                          "responses": responses}
    if doc.parameters:
        op["parameters"] = list(doc.parameters)
    if doc.body is not None:
        op["requestBody"] = doc.body
    read = ep.method in SAFE_METHODS
    if not read or (public_reads is not None and ep.path not in public_reads):
        op["security"] = [{"bearer": []}]
        op["responses"].setdefault("401", {"description": "missing or wrong token",
                                           **content(ERROR)})
    if not read:
        op["responses"].setdefault("413", {"description": "body too large", **content(ERROR)})
    return op


def _components() -> dict[str, Any]:
    schemas: dict[str, Any] = {}
    for name, model in (("Event", Event), ("PushEnvelope", PushEnvelope),
                        ("CheckInput", CheckInput), ("SchedulerOutcome", OutcomeBody)):
        schema = model.model_json_schema(by_alias=True, ref_template=_SCHEMA)
        schemas.update(schema.pop("$defs", {}))
        schemas[name] = schema
    problem = {"type": "object", "required": ["field", "message"], "properties": {
        "field": {"type": "string"}, "message": {"type": "string"}, "value": {"type": "string"}}}
    schemas["Error"] = {"type": "object", "required": ["error", "details"], "properties": {
        "error": {"type": "string"}, "reason": {"type": "string"},
        "details": {"type": "array", "items": problem}}}
    schemas["Health"] = {"type": "object", "required": ["status"], "properties": {
        "status": {"enum": ["pass", "warn", "fail"]}, "version": {"type": "string"},
        "checks": {"type": "object"}}}
    return {"schemas": schemas,
            "securitySchemes": {"bearer": {"type": "http", "scheme": "bearer"}}}


def openapi_document(
    endpoints: Sequence[Endpoint], version: str, public_reads: frozenset[str] | None = None,
) -> dict[str, Any]:
    """An OpenAPI 3.1 document for ``endpoints``, with the Event model's JSON schema.

    Reads of paths outside ``public_reads`` need the token (None: every read is open).
    """
    paths: dict[str, dict[str, Any]] = {}
    for ep in endpoints:
        paths.setdefault(ep.path, {})[ep.method.lower()] = _operation(ep, public_reads)
    return {
        "openapi": "3.1.0",
        "info": {"title": "phasewatch", "version": version,
                 "description": "Pipeline events in; run state, metrics and health out."},
        "paths": paths,
        "components": _components(),
    }


