"""Errors of the checks component.

Hierarchy::

    PhasewatchError            (monitor.errors)
    └── CheckRunError          a check could not be run: the runner failed, timed out, or the
        │                      query's answer is not what ``returns`` says (alerted, retried
        │                      at the next scheduled time)
        └── RunnerUnavailable  the runner's library is not installed
"""

from __future__ import annotations

from dataclasses import dataclass

from monitor.errors import PhasewatchError


@dataclass
class CheckRunError(PhasewatchError):
    """A run of a check that produced no result, and why (``reason``: a short code)."""

    reason: str  # failed | timeout | bad_answer | unavailable
    detail: str

    def __str__(self) -> str:
        return f"{self.reason}: {self.detail}"


class RunnerUnavailable(CheckRunError):
    """The library a runner needs is not installed (``pip install 'phasewatch[...]'``)."""
