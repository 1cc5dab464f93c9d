"""Cloud Scheduler's execution log entries, as a log sink publishes them to Pub/Sub.

Cloud Scheduler logs every attempt of a job to ``cloudscheduler.googleapis.com/executions``
on the resource ``cloud_scheduler_job``: an ``AttemptStarted`` entry when it fires and an
``AttemptFinished`` entry when the target answered (or did not, by the attempt deadline).
A log sink routes each entry to a Pub/Sub topic as the LogEntry's JSON; the push
subscription brings it to ``/v1/pubsub/push`` like an event. The fields read here::

    {"insertId": "...", "logName": "projects/P/logs/cloudscheduler.googleapis.com%2Fexecutions",
     "resource": {"type": "cloud_scheduler_job", "labels": {"job_id": "J", ...}},
     "timestamp": "...", "severity": "ERROR", "httpRequest": {"status": 404},
     "jsonPayload": {"@type": "type.googleapis.com/google.cloud.scheduler.logging.AttemptFinished",
                     "jobName": "projects/P/locations/L/jobs/J", "targetType": "HTTP",
                     "url": "https://...", "status": "NOT_FOUND",
                     "debugInfo": "URL_ERROR-ERROR_NOT_FOUND. Original HTTP response code number = 404"}}

(``AttemptStarted`` carries ``scheduledTime`` instead of ``status`` and ``debugInfo``.)
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from croniter import croniter
from pydantic import BaseModel, ConfigDict, Field, ValidationError

from monitor.errors import EventError, Problem
from monitor.scheduler.attempt import RPC_CODES, Attempt
from monitor.validation import Instant, known_zone, problems_from_validation_error, render_value

RESOURCE_TYPE = "cloud_scheduler_job"
LOG_ID = "cloudscheduler.googleapis.com%2Fexecutions"
TYPE_PREFIX = "type.googleapis.com/google.cloud.scheduler.logging."
KINDS = {"AttemptFinished": "finished", "AttemptStarted": "started"}
ADMIN_METHOD = "google.cloud.scheduler.v1.CloudScheduler."
PAUSES = {"PauseJob": True, "ResumeJob": False}
CHANGES = ("UpdateJob", "CreateJob", "DeleteJob")  # what may change when a job fires
DEFAULT_ZONE = "Etc/UTC"  # a Cloud Scheduler job's time zone when it names none
SINK_FILTER = (
    'resource.type="cloud_scheduler_job" AND '
    '(jsonPayload.@type="type.googleapis.com/google.cloud.scheduler.logging.AttemptFinished" OR '
    'protoPayload.methodName=("google.cloud.scheduler.v1.CloudScheduler.PauseJob" OR '
    '"google.cloud.scheduler.v1.CloudScheduler.ResumeJob" OR '
    '"google.cloud.scheduler.v1.CloudScheduler.UpdateJob" OR '
    '"google.cloud.scheduler.v1.CloudScheduler.CreateJob" OR '
    '"google.cloud.scheduler.v1.CloudScheduler.DeleteJob"))'
)
"""The log sink's filter phasewatch expects: the attempts, and a person pausing, resuming,
rescheduling, creating or deleting a job (Admin Activity audit entries). AttemptStarted
entries are accepted too."""
_MARKERS = (RESOURCE_TYPE.encode(), b"cloudscheduler.googleapis.com")
_HTTP_IN_DEBUG = re.compile(r"response code number = (\d{3})")


class _Resource(BaseModel):
    model_config = ConfigDict(extra="allow")

    type: str
    labels: dict[str, str] = Field(default_factory=dict)


class _Payload(BaseModel):
    model_config = ConfigDict(extra="allow", populate_by_name=True)

    type: str = Field(alias="@type")
    job_name: str | None = Field(default=None, alias="jobName", max_length=2000)
    url: str | None = Field(default=None, max_length=2048)
    status: str | None = Field(default=None, max_length=64)
    debug_info: str | None = Field(default=None, alias="debugInfo", max_length=4000)
    scheduled_time: Instant | None = Field(default=None, alias="scheduledTime")
    target_type: str | None = Field(default=None, alias="targetType")


class _HttpRequest(BaseModel):
    model_config = ConfigDict(extra="allow")

    status: int | None = Field(default=None, ge=0, le=999)


class LogEntry(BaseModel):
    """The part of a Cloud Logging LogEntry that a scheduler attempt needs."""

    model_config = ConfigDict(extra="allow", populate_by_name=True)

    insert_id: str = Field(alias="insertId", min_length=1, max_length=256)
    log_name: str | None = Field(default=None, alias="logName")
    resource: _Resource
    timestamp: Instant
    severity: str | None = None
    http_request: _HttpRequest | None = Field(default=None, alias="httpRequest")
    json_payload: _Payload = Field(alias="jsonPayload")


class _AuditPayload(BaseModel):
    model_config = ConfigDict(extra="allow", populate_by_name=True)

    method_name: str = Field(alias="methodName", max_length=500)
    resource_name: str | None = Field(default=None, alias="resourceName", max_length=2000)
    authentication_info: dict[str, Any] = Field(default_factory=dict, alias="authenticationInfo")
    request: dict[str, Any] | None = None
    response: dict[str, Any] | None = None


class AuditEntry(BaseModel):
    """The part of a Cloud Audit Logs entry about a scheduler job that a pause needs."""

    model_config = ConfigDict(extra="allow", populate_by_name=True)

    insert_id: str = Field(alias="insertId", min_length=1, max_length=256)
    resource: _Resource
    timestamp: Instant
    proto_payload: _AuditPayload = Field(alias="protoPayload")


@dataclass(frozen=True)
class PauseChange:
    """A person paused (or resumed) a job: no fire of a paused job is missed."""

    job: str
    paused: bool
    at: datetime
    by: str | None


@dataclass(frozen=True)
class ScheduleChange:
    """A person (or a deploy) changed when a job fires, or deleted it: its fires are judged
    by what Cloud Scheduler will do. ``cron`` and ``timezone`` are None where the entry does
    not say (an update of other fields, logged without the Job it answered)."""

    job: str
    at: datetime
    by: str | None
    cron: str | None
    timezone: str | None
    deleted: bool = False
    created: bool = False  # a new job: enabled, whatever the one deleted before it was


def audit_change(entry: dict[str, Any]) -> PauseChange | ScheduleChange | None:
    """The pause, resume, reschedule or deletion an Admin Activity entry records; None for
    another method (a manual run) or an update that leaves the schedule and time zone as
    they were (nothing to judge); EventError when it cannot be read."""
    try:
        parsed = AuditEntry.model_validate(entry)
    except ValidationError as exc:
        raise EventError("scheduler_entry", problems_from_validation_error(
            exc, entry, root=AuditEntry)) from None
    payload = parsed.proto_payload
    method = (payload.method_name.removeprefix(ADMIN_METHOD)
              if payload.method_name.startswith(ADMIN_METHOD) else None)
    if method not in PAUSES and method not in CHANGES:
        return None
    job = parsed.resource.labels.get("job_id") or (payload.resource_name or "").rsplit("/", 1)[-1]
    if not job:
        raise EventError("scheduler_entry", [Problem(
            "resource.labels.job_id", "required: the job's id (or protoPayload.resourceName)")])
    found = payload.authentication_info.get("principalEmail")
    who = found if isinstance(found, str) else None
    if method in PAUSES:
        return PauseChange(job, PAUSES[method], parsed.timestamp, who)
    if method == "DeleteJob":
        return ScheduleChange(job, parsed.timestamp, who, None, None, deleted=True)
    created = method == "CreateJob"
    cron, zone = _schedule(payload, created=created)
    if cron is None and zone is None:
        return None
    return ScheduleChange(job, parsed.timestamp, who, cron, zone, created=created)


def _schedule(payload: _AuditPayload, *, created: bool) -> tuple[str | None, str | None]:
    """The job's schedule and time zone after the change: from the Job the call answered
    (``response``: complete, a time zone left out is Cloud Scheduler's default, UTC), else
    from the request's job (a field an update leaves out is unchanged: None; a job created
    without a time zone runs in UTC)."""
    if payload.response is not None and "schedule" in payload.response:
        job, where, complete = payload.response, "protoPayload.response", True
    else:
        request = (payload.request or {}).get("job")
        job, where, complete = (request if isinstance(request, dict) else {}), (
            "protoPayload.request.job"), created
    cron, zone = job.get("schedule"), job.get("timeZone")
    if cron is not None and (not isinstance(cron, str) or len(cron.split()) != 5
                             or not croniter.is_valid(cron)):
        raise EventError("scheduler_entry", [Problem(
            f"{where}.schedule", "a cron of five fields (minute hour day-of-month month "
            "day-of-week), as Cloud Scheduler takes them", render_value(cron))])
    if zone is not None and not (isinstance(zone, str) and known_zone(zone)):
        raise EventError("scheduler_entry", [Problem(
            f"{where}.timeZone", "an IANA time zone name, e.g. America/New_York",
            render_value(zone))])
    if complete and zone is None:
        zone = DEFAULT_ZONE
    return (" ".join(cron.split()) if cron is not None else None), zone


def scheduler_entry(data: bytes) -> dict[str, Any] | None:
    """The decoded JSON when ``data`` is a Cloud Scheduler log entry; None for anything else.

    A cheap look at the bytes first: events on the same push endpoint pay one substring test.
    """
    if _MARKERS[0] not in data and _MARKERS[1] not in data:
        return None
    try:
        found = json.loads(data)
    except (json.JSONDecodeError, UnicodeDecodeError):
        return None
    if not isinstance(found, dict):
        return None
    resource = found.get("resource")
    log_name = found.get("logName")
    if (isinstance(resource, dict) and resource.get("type") == RESOURCE_TYPE) or (
            isinstance(log_name, str) and LOG_ID in log_name):
        return found
    return None


def parse_entry(entry: dict[str, Any]) -> Attempt:
    """The attempt a scheduler log entry reports; EventError when it cannot be one."""
    try:
        parsed = LogEntry.model_validate(entry)
    except ValidationError as exc:
        raise EventError("scheduler_entry", problems_from_validation_error(exc, entry, root=LogEntry)
                         ) from None
    payload = parsed.json_payload
    kind = KINDS.get(payload.type.removeprefix(TYPE_PREFIX)) if payload.type.startswith(
        TYPE_PREFIX) else None
    if kind is None:
        raise EventError("scheduler_entry", [Problem(
            "jsonPayload.@type", f"not a scheduler attempt; allowed: "
            f"{', '.join(TYPE_PREFIX + k for k in KINDS)}", render_value(payload.type))])
    job = parsed.resource.labels.get("job_id") or (payload.job_name or "").rsplit("/", 1)[-1]
    if not job:
        raise EventError("scheduler_entry", [Problem(
            "resource.labels.job_id", "required: the job's id (or jsonPayload.jobName)")])
    code = payload.status
    if code is not None and code not in RPC_CODES:
        code = "UNKNOWN"
    http = parsed.http_request.status if parsed.http_request else None
    if http is None and payload.debug_info:
        match = _HTTP_IN_DEBUG.search(payload.debug_info)
        http = int(match.group(1)) if match else None
    if kind == "started":
        http, code = None, None
    elif code is None and parsed.severity == "ERROR" and (http is None or 200 <= http <= 299):
        code = "UNKNOWN"  # logged as an error with nothing more said: not a success
    return Attempt(
        parsed.insert_id, job, parsed.timestamp, "finished" if kind == "finished" else "started",
        http or None, code, payload.url, payload.scheduled_time, payload.debug_info, "logentry",
    )
