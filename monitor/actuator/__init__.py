"""The actuator: health-gated, verified phase transitions and stalled-work recovery.

``install(pw, probe=..., sinks=...)`` wires it into a Phasewatch; ``list_actions`` and
``manual_action`` back ``GET /v1/actions`` and ``POST /v1/actions/trigger``.
"""

from monitor.actuator.api import list_actions, manual_action
from monitor.actuator.context import Timeouts
from monitor.actuator.engine import Actuator, StoredChecks, install
from monitor.actuator.errors import ActionError
from monitor.actuator.gates import (
    CheckSource,
    CheckValue,
    Gate,
    GateResult,
    HealthProbe,
    HealthResult,
    HttpHealthProbe,
)
from monitor.actuator.policy import Verdict, evaluate
from monitor.actuator.simulated import SimulatedChecks, SimulatedProbe, SimulatedSink, simulated
from monitor.actuator.sinks import (
    HttpSink,
    LogSink,
    MemorySink,
    PubSubSink,
    SinkResult,
    TriggerRequest,
    TriggerSink,
    default_sinks,
)

__all__ = [
    "ActionError",
    "Actuator",
    "CheckSource",
    "CheckValue",
    "Gate",
    "GateResult",
    "HealthProbe",
    "HealthResult",
    "HttpHealthProbe",
    "HttpSink",
    "LogSink",
    "MemorySink",
    "PubSubSink",
    "SimulatedChecks",
    "SimulatedProbe",
    "SimulatedSink",
    "SinkResult",
    "StoredChecks",
    "Timeouts",
    "TriggerRequest",
    "TriggerSink",
    "Verdict",
    "default_sinks",
    "evaluate",
    "install",
    "list_actions",
    "manual_action",
    "simulated",
]
