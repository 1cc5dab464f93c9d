"""BigQuery runner (google-cloud-bigquery): named query parameters, a timeout, a bytes cap.

``@run_date`` is a DATE and ``@now`` a TIMESTAMP; only the parameters the query names are
sent. Each query runs with ``maximum_bytes_billed`` (BigQuery refuses, free of charge, a
query that would bill more) and the check's timeout three ways: the job's own
``jobTimeoutMs`` (BigQuery stops it), the wait for it (the client cancels it then), and
each HTTP call. It goes out as ``jobs.query`` (one round trip when the answer is quick),
polling ``jobs.getQueryResults`` otherwise.

The library is imported when a check first runs: ``pip install 'phasewatch[gcp]'``.
"""

from __future__ import annotations

import concurrent.futures
import re
import threading
from collections.abc import Mapping
from datetime import date, datetime
from typing import Any

from monitor.checks.config import BigQueryRunnerConfig
from monitor.checks.errors import CheckRunError, RunnerUnavailable
from monitor.checks.runners.base import ParamValue, Row

# A named parameter: @name, but not a @@system_variable.
_PARAMETER = re.compile(r"(?<![@\w])@([A-Za-z_]\w*)")


def parameters_of(sql: str) -> set[str]:
    """The named parameters a BigQuery query uses (``@run_date``)."""
    return set(_PARAMETER.findall(sql))


class BigQueryRunner:
    """One client per check, made on its first query and reused."""

    def __init__(self, config: BigQueryRunnerConfig) -> None:
        self.config = config
        self._client: Any = None
        self._lock = threading.Lock()

    def query(self, sql: str, params: Mapping[str, ParamValue], timeout_s: float) -> list[Row]:
        bigquery, exceptions = _library()
        client = self._client_once(bigquery)
        used = parameters_of(sql)
        job_config = bigquery.QueryJobConfig(
            query_parameters=[_parameter(bigquery, k, v) for k, v in params.items() if k in used],
            maximum_bytes_billed=self.config.maximum_bytes_billed,
            job_timeout_ms=int(timeout_s * 1000),
        )
        try:
            rows = client.query_and_wait(
                sql, job_config=job_config, location=self.config.location,
                api_timeout=timeout_s, wait_timeout=timeout_s, job_retry=None,
            )
            return [tuple(row.values()) for row in rows]
        except concurrent.futures.TimeoutError:
            raise CheckRunError("timeout", f"query ran over {timeout_s:g} s (cancelled)") from None
        except exceptions.GoogleAPICallError as exc:
            raise CheckRunError("failed", f"BigQuery: {_message(exc)}") from None
        except exceptions.GoogleAPIError as exc:  # RetryError, auth errors
            raise CheckRunError("failed", f"BigQuery: {exc}") from None

    def _client_once(self, bigquery: Any) -> Any:
        with self._lock:
            if self._client is None:
                self._client = _client(bigquery, self.config)
            return self._client

    def close(self) -> None:
        with self._lock:
            client, self._client = self._client, None
        if client is not None:
            client.close()


def _client(bigquery: Any, config: BigQueryRunnerConfig) -> Any:
    if config.api_endpoint is None:
        try:
            return bigquery.Client(project=config.project, location=config.location)
        except Exception as exc:  # no Application Default Credentials, most often
            raise CheckRunError("failed", f"cannot make a BigQuery client: {exc}") from None
    from google.auth.credentials import AnonymousCredentials

    return bigquery.Client(
        project=config.project, location=config.location,
        credentials=AnonymousCredentials(),  # type: ignore[no-untyped-call]
        client_options={"api_endpoint": str(config.api_endpoint).rstrip("/")},
    )


def _parameter(bigquery: Any, name: str, value: ParamValue) -> Any:
    if isinstance(value, datetime):
        return bigquery.ScalarQueryParameter(name, "TIMESTAMP", value)
    assert isinstance(value, date)
    return bigquery.ScalarQueryParameter(name, "DATE", value)


def _message(exc: Any) -> str:
    """The API's own reason and message (``bytesBilledLimitExceeded: ...``), not the URL."""
    reasons = [e.get("reason") for e in getattr(exc, "errors", None) or [] if isinstance(e, dict)]
    reason = next((r for r in reasons if r), None)
    text = getattr(exc, "message", None) or str(exc)
    return f"{reason}: {text}" if reason else str(text)


def _library() -> tuple[Any, Any]:
    try:
        from google.api_core import exceptions
        from google.cloud import bigquery
    except ImportError:
        raise RunnerUnavailable("unavailable", "the bigquery runner needs google-cloud-bigquery: "
                                "pip install 'phasewatch[gcp]'") from None
    return bigquery, exceptions
