"""SLI kinds, registered by the config's ``kind``."""

from slo.sli.availability import Availability
from slo.sli.base import SLI, CheckReading, HealthProbe, SLIFactory
from slo.sli.check import Check
from slo.sli.coverage import Coverage
from slo.sli.deadline import Deadline
from slo.sli.duration import Duration
from slo.sli.freshness import Freshness
from slo.sli.success_ratio import SuccessRatio

REGISTRY: dict[str, SLIFactory] = {
    "success_ratio": SuccessRatio,
    "deadline": Deadline,
    "duration": Duration,
    "freshness": Freshness,
    "coverage": Coverage,
    "availability": Availability,
    "check": Check,
}

__all__ = ["REGISTRY", "SLI", "CheckReading", "HealthProbe", "SLIFactory"]
