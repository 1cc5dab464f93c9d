"""The OpenLineage RunEvent (COMPLETE) of a published phase, built with openlineage-python.

The job is ``PIPELINE.PHASE`` in the configured namespace, the run id is derived from the
completion (the same completion, the same event), and each table the dataset is made of is
an output with its row count (``outputStatistics``) where the phase's events reported one.
openlineage-python is the optional ``lineage`` extra: it is imported when lineage is
configured, never at start otherwise.
"""

from __future__ import annotations

import importlib
import importlib.util
import uuid
from typing import Any

from monitor.publish.cloudevent import ID_NAMESPACE, Completion
from monitor.publish.config import OpenLineagePublish

PRODUCER = "https://pypi.org/project/phasewatch/"


def installed(module: str) -> bool:
    """Whether ``module`` can be imported (found without importing it: the clients are slow
    to import, and only the destinations that are configured need them)."""
    try:
        return importlib.util.find_spec(module) is not None
    except ModuleNotFoundError:  # a parent package is missing
        return False


def run_id(completion: Completion) -> str:
    return str(uuid.uuid5(ID_NAMESPACE, f"lineage/{completion.key}"))


def run_event(completion: Completion, outputs: list[tuple[str, int | None]],
              cfg: OpenLineagePublish) -> Any:
    """The RunEvent: ``outputs`` are (table, row count or None)."""
    ev: Any = importlib.import_module("openlineage.client.event_v2")
    stats: Any = importlib.import_module("openlineage.client.facet_v2").output_statistics_output_dataset
    datasets = [
        ev.OutputDataset(
            namespace=cfg.dataset_namespace, name=table,
            outputFacets={} if rows is None else {
                "outputStatistics": stats.OutputStatisticsOutputDatasetFacet(rowCount=rows)},
        )
        for table, rows in outputs
    ]
    return ev.RunEvent(
        eventType=ev.RunState.COMPLETE, eventTime=completion.completed_at.isoformat(),
        run=ev.Run(runId=run_id(completion)),
        job=ev.Job(namespace=cfg.namespace, name=f"{completion.pipeline}.{completion.phase}"),
        producer=PRODUCER, inputs=[], outputs=datasets,
    )


def to_json(event: Any) -> str:
    """The event as OpenLineage's own serializer writes it (with its schemaURL)."""
    serde: Any = importlib.import_module("openlineage.client.serde")
    return str(serde.Serde.to_json(event))
