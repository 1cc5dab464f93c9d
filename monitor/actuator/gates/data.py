"""Data gates: upstream coverage (records / expected_records) and check results."""

from __future__ import annotations

from datetime import timedelta

from monitor.actuator.config import CheckGateConfig, CoverageGateConfig
from monitor.actuator.gates.base import CheckSource, GateContext, GateResult


class CoverageGate:
    """Passes when each named upstream processor succeeded and wrote at least ``min_ratio``
    of its expected records. A skip or a failure is no coverage (it fails the gate); a
    processor that has not reported records and expected_records is missing, which holds
    the trigger unless ``on_missing: pass`` (fail closed: no data is not enough data)."""

    kind = "coverage"

    def __init__(self, config: CoverageGateConfig) -> None:
        self.config = config

    def check(self, ctx: GateContext) -> GateResult:
        cfg = self.config
        if ctx.run is None:
            return self._missing("no run state yet")
        upstream = ctx.pipeline.upstream_of(ctx.phase.id)
        for name in cfg.processors:
            proc = next(
                (ctx.run.phases[up].processors[name] for up in upstream
                 if name in ctx.run.phases[up].processors), None,
            )
            if proc is not None and proc.status in ("skipped", "failed"):
                return GateResult(False, "coverage", (
                    f"coverage of {name} is 0: it {proc.status} (skipped is not coverage)"))
            if proc is None or proc.records is None or not proc.expected_records:
                result = self._missing(f"{name} reported no records / expected_records")
                if not result.passed:
                    return result
                continue
            ratio = proc.records / proc.expected_records
            if ratio < cfg.min_ratio:
                return GateResult(False, "coverage", (
                    f"coverage of {name} is {proc.records}/{proc.expected_records} "
                    f"({ratio:.0%}), below {cfg.min_ratio:.0%}"
                ))
        return GateResult.ok("coverage")

    def _missing(self, why: str) -> GateResult:
        if self.config.on_missing == "pass":
            return GateResult.ok("coverage")
        return GateResult(False, "coverage", why)


class CheckGate:
    """Passes when the check's latest value is within [min, max] and recent enough."""

    kind = "check"

    def __init__(self, config: CheckGateConfig, source: CheckSource) -> None:
        self.config = config
        self.source = source

    def check(self, ctx: GateContext) -> GateResult:
        cfg = self.config
        value = self.source.latest(cfg.check)
        if value is None:
            return self._missing(f"check {cfg.check} has no result")
        if cfg.max_age_min is not None and ctx.now - value.at > timedelta(minutes=cfg.max_age_min):
            return self._missing(f"check {cfg.check} is older than {cfg.max_age_min:g} min")
        if cfg.min is not None and value.value < cfg.min:
            return GateResult(False, "check", f"check {cfg.check} = {value.value:g}, below {cfg.min:g}")
        if cfg.max is not None and value.value > cfg.max:
            return GateResult(False, "check", f"check {cfg.check} = {value.value:g}, above {cfg.max:g}")
        return GateResult.ok("check")

    def _missing(self, why: str) -> GateResult:
        if self.config.on_missing == "pass":
            return GateResult.ok("check")
        return GateResult(False, "check", why)
