"""What the SLO engine is rebuilt from besides events: the stored health probes."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import datetime

from monitor.store.probes import ProbeLog
from slo.sli.base import HealthProbe


def stored_probes(log: ProbeLog, *, since: datetime, until: datetime | None = None
                  ) -> Iterator[HealthProbe]:
    """The stored probe results from ``since`` (to ``until``) as availability SLI inputs."""
    for probe in log.probes(since=since, until=until):
        if probe.status in ("pass", "warn", "fail"):
            yield HealthProbe(probe.service, probe.at, probe.status)  # type: ignore[arg-type]
