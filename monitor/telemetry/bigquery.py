"""The BigQuery mirror's sink: rows streamed with ``tabledata.insertAll`` (google-cloud-bigquery).

The only module that imports google-cloud-bigquery. ``insert`` sends one request with each
row's insert id (``row_ids``: BigQuery's best-effort de-duplication key) and no retries of
the client's own (the mirror retries, with the same ids); it sorts what BigQuery answered:

- ``insertErrors`` of a passing kind (``stopped``: another row of the request was invalid;
  ``backendError``, ``internalError``, ``timeout``, rate limits) are rows to send again;
  others (``invalid``...) are rows refused for good;
- 429, 5xx, a timeout or no connection, and 403 for a rate limit or quota, fail the request
  for a passing reason; other 4xx (a missing table, no permission, a bad request) for good.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import date
from typing import Any

import google.auth
import requests
from google.api_core import exceptions as api_errors
from google.auth.exceptions import DefaultCredentialsError, TransportError
from google.cloud import bigquery

from monitor.errors import ConfigError, Problem
from monitor.telemetry.mirror import InsertOutcome, Row, SinkRejected, SinkUnavailable
from monitor.telemetry.mirror_config import BigQueryMirrorConfig
from monitor.telemetry.mirror_tables import TABLES

log = logging.getLogger(__name__)

MIRROR = "bigquery"  # the ``mirror`` label of the phasewatch_mirror_* metrics
SCOPE = "https://www.googleapis.com/auth/bigquery.insertdata"
QUERY_SCOPE = "https://www.googleapis.com/auth/bigquery"
PASSING_ROW_REASONS = frozenset({"stopped", "backendError", "internalError", "timeout",
                                 "rateLimitExceeded", "quotaExceeded"})
PASSING_403_REASONS = frozenset({"rateLimitExceeded", "quotaExceeded", "backendError"})
PASSING_ERRORS = (api_errors.TooManyRequests, api_errors.InternalServerError, api_errors.BadGateway,
                  api_errors.ServiceUnavailable, api_errors.GatewayTimeout,
                  api_errors.DeadlineExceeded)
TRANSPORT_ERRORS = (requests.ConnectionError, requests.Timeout, TransportError, ConnectionError,
                    TimeoutError)


def client_for(config: BigQueryMirrorConfig, *, scopes: Sequence[str] = (QUERY_SCOPE,)) -> bigquery.Client:
    """A client with the application default credentials; ConfigError when there are none or
    no project is known."""
    try:
        credentials, default_project = google.auth.default(scopes=list(scopes))
    except DefaultCredentialsError as exc:
        raise ConfigError("mirror.bigquery", [Problem(
            "credentials", f"no Google credentials found ({exc}); allowed: run on Google Cloud, "
            "set GOOGLE_APPLICATION_CREDENTIALS, or remove mirror.bigquery",
        )]) from None
    project = config.project or default_project
    if not project:
        raise ConfigError("mirror.bigquery", [Problem(
            "project", "not set, and the credentials name no project; allowed: a project id in "
            "the config, or $GOOGLE_CLOUD_PROJECT",
        )])
    return bigquery.Client(project=project, credentials=credentials)


def local_client(project: str, api_endpoint: str) -> bigquery.Client:
    """A client for a local emulator at ``api_endpoint``: no credentials are sent."""
    from google.auth.credentials import AnonymousCredentials

    return bigquery.Client(project=project, credentials=AnonymousCredentials(),  # type: ignore[no-untyped-call]
                           client_options={"api_endpoint": api_endpoint})


@dataclass
class BigQuerySink:
    """Streams rows into the mirror's tables (``project.dataset.prefix+table``)."""

    client: bigquery.Client
    config: BigQueryMirrorConfig
    project: str | None = None

    def table_id(self, table: str) -> str:
        return self.config.table_id(self.project or str(self.client.project), table)

    def insert(self, table: str, rows: Sequence[Row]) -> InsertOutcome:
        try:
            errors = self.client.insert_rows_json(
                self.table_id(table), [row for _, row in rows], row_ids=[i for i, _ in rows],
                retry=None,  # type: ignore[arg-type]  # None: no retries of the client's own
                timeout=self.config.timeout_s,
            )
        except api_errors.Forbidden as exc:
            if _reasons(exc) & PASSING_403_REASONS:
                raise SinkUnavailable(str(exc)) from exc
            raise SinkRejected(str(exc)) from exc
        except PASSING_ERRORS as exc:
            raise SinkUnavailable(str(exc)) from exc
        except api_errors.GoogleAPICallError as exc:
            raise SinkRejected(str(exc)) from exc
        except TRANSPORT_ERRORS as exc:
            raise SinkUnavailable(f"{type(exc).__name__}: {exc}") from exc
        return sort_insert_errors(errors, len(rows))

    def existing_ids(self, table: str, lo: date, hi: date) -> set[str]:
        """Ids already in ``table`` among rows dated ``lo``..``hi`` (partitions pruned)."""
        spec = TABLES[table]
        sql = (f"SELECT DISTINCT {spec.id_column} AS id FROM `{self.table_id(table)}`"
               f" WHERE {spec.date_column} BETWEEN @lo AND @hi")
        job = self.client.query(sql, job_config=bigquery.QueryJobConfig(query_parameters=[
            bigquery.ScalarQueryParameter("lo", "DATE", lo),
            bigquery.ScalarQueryParameter("hi", "DATE", hi),
        ]), timeout=self.config.timeout_s)
        return {str(row["id"]) for row in job.result(timeout=self.config.timeout_s)}


def sort_insert_errors(errors: Sequence[dict[str, Any]], count: int) -> InsertOutcome:
    """insertAll's ``insertErrors`` as rows to retry and rows refused for good."""
    retry: list[int] = []
    rejected: list[tuple[int, str]] = []
    for entry in errors:
        index = entry.get("index")
        if not isinstance(index, int) or not 0 <= index < count:
            continue
        reasons = [e for e in entry.get("errors") or [] if isinstance(e, dict)]
        if reasons and all(e.get("reason") in PASSING_ROW_REASONS for e in reasons):
            retry.append(index)
        else:
            why = "; ".join(f"{e.get('reason')}: {e.get('message')}" for e in reasons) or "refused"
            rejected.append((index, why))
    return InsertOutcome(tuple(retry), tuple(rejected))


def _reasons(exc: api_errors.GoogleAPICallError) -> set[str]:
    return {str(e.get("reason")) for e in exc.errors or [] if isinstance(e, dict)}
