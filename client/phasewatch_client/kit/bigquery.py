"""A cached, thread-safe ``bigquery.Client`` per project.

Creating a client resolves credentials (``google.auth.default()``: environment, files, the
metadata server) and builds an HTTP session with an empty connection pool; doing it per call
pays both each time and opens a new TLS connection for every query. ``BigQueryClients.get``
creates a project's client once, even when 20 threads ask at the same moment (see
``phasewatch_client.kit.cache``), then answers without locking. google-cloud-bigquery is imported at
the first creation, never at import time.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import TYPE_CHECKING, Any

from phasewatch_client.kit.cache import SharedCache

if TYPE_CHECKING:
    from google.cloud import bigquery

ClientFactory = Callable[[str], "bigquery.Client"]


class BigQueryClients:
    """One client per project, all created with the same credentials and options."""

    def __init__(
        self,
        *,
        credentials: Any = None,
        client_options: Mapping[str, Any] | None = None,
        location: str | None = None,
        factory: ClientFactory | None = None,
    ) -> None:
        """``credentials=None`` means application default credentials; ``factory`` replaces creation."""
        self._credentials = credentials
        self._client_options = dict(client_options) if client_options else None
        self._location = location
        self._factory = factory
        self._cache: SharedCache[str, bigquery.Client] = SharedCache(
            self._create, close=_close
        )

    @property
    def created(self) -> int:
        """How many clients were created so far."""
        return self._cache.created

    def get(self, project: str) -> bigquery.Client:
        """The client for ``project``, created on first use."""
        return self._cache.get(project)

    def close(self) -> None:
        """Close every client's HTTP session; later ``get`` calls create new clients."""
        self._cache.close()

    def _create(self, project: str) -> bigquery.Client:
        if not project:
            raise ValueError("project: must be a non-empty Google Cloud project id")
        if self._factory is not None:
            return self._factory(project)
        from google.cloud import bigquery

        return bigquery.Client(
            project=project, credentials=self._credentials,
            client_options=self._client_options, location=self._location,
        )


def _close(client: bigquery.Client) -> None:
    client.close()  # type: ignore[no-untyped-call]  # google-cloud-core leaves it untyped


_shared = BigQueryClients()


def bigquery_client(project: str) -> bigquery.Client:
    """The process-wide client for ``project`` (application default credentials)."""
    return _shared.get(project)


def close_bigquery_clients() -> None:
    """Close the process-wide clients (at shutdown)."""
    _shared.close()
