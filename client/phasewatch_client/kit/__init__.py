"""Helpers for the pipeline's own services: retry policies, pooled clients, health endpoints.

Import-light: google-cloud-* is imported only when a BigQuery client is first created or a
retry predicate first runs, prometheus-client when a retry policy is first used, and web
frameworks only inside their adapters.
"""

from phasewatch_client.kit.bigquery import BigQueryClients, bigquery_client, close_bigquery_clients
from phasewatch_client.kit.cache import SharedCache
from phasewatch_client.kit.health import (
    HEALTH_JSON,
    Dependency,
    HealthKit,
    Identity,
    Observation,
    Status,
    starlette_routes,
    wsgi_middleware,
)
from phasewatch_client.kit.http import (
    HttpClients,
    HttpSettings,
    RetryTransport,
    build_client,
    close_shared_clients,
    shared_client,
)
from phasewatch_client.kit.retry import (
    GENERIC_RETRY,
    QUOTA_RETRY,
    SERIALIZATION_RETRY,
    RetryPolicy,
    attempts_counter,
    is_quota_error,
    is_serialization_conflict,
    is_transient,
)
from phasewatch_client.retry import stop_before_deadline, wait_decorrelated_jitter

__all__ = [
    "GENERIC_RETRY",
    "HEALTH_JSON",
    "QUOTA_RETRY",
    "SERIALIZATION_RETRY",
    "BigQueryClients",
    "Dependency",
    "HealthKit",
    "HttpClients",
    "HttpSettings",
    "Identity",
    "Observation",
    "RetryPolicy",
    "RetryTransport",
    "SharedCache",
    "Status",
    "attempts_counter",
    "bigquery_client",
    "build_client",
    "close_bigquery_clients",
    "close_shared_clients",
    "is_quota_error",
    "is_serialization_conflict",
    "is_transient",
    "shared_client",
    "starlette_routes",
    "stop_before_deadline",
    "wait_decorrelated_jitter",
    "wsgi_middleware",
]
