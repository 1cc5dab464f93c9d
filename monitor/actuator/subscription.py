""""Subscriber not invoked (IAM?)": a phase its own push subscription never started.

A phase with ``subscription:`` is started by the pipeline's push subscription on its
upstream's completion topic, not by phasewatch. When the upstream has completed (the
topic had traffic) and the phase shows no activity ``invoked_within_min`` later — or it
started only after phasewatch's own backup trigger — the subscription did not invoke its
endpoint: typically a redeploy stripped ``roles/run.invoker`` and the pushes get 403 at
ingress, where nothing is logged (incident 13). One warning alert per subscription (not per
run), naming the topic and the subscription; it resolves when a later run is started by
the subscription again. While one of the phase's services fails its health probe, the
cause is already known ("service unhealthy") and this alert is not raised.

"phase overdue" (verification.py) fires earlier for the same run (``start_within_min``) and
says the phase is late; this alert says why it may be, and outlives the run.
"""

from __future__ import annotations

from datetime import datetime, timedelta

from monitor.actuator.context import Context
from monitor.actuator.policy import phase_started
from monitor.config import PhaseConfig, PipelineConfig
from monitor.tracker import RunState

Judged = tuple[tuple[str, str, str], str]  # (run key, phase)


class SubscriberWatch:
    """Judges each run's subscription-started phases once their invocation time has passed."""

    def __init__(self, ctx: Context) -> None:
        self.ctx = ctx
        self._judged: set[Judged] = set()

    def check(self, now: datetime) -> None:
        runs = self.ctx.recent_runs(now)
        for run in sorted(runs, key=lambda r: r.first_event_at or now):
            pipeline = self.ctx.pipeline(run.pipeline)
            if pipeline is None:
                continue
            for phase in pipeline.phases:
                if phase.subscription is not None and (run.key, phase.id) not in self._judged:
                    self._judge(pipeline, phase, run, now)
        keys = {r.key for r in runs}
        self._judged = {j for j in self._judged if j[0] in keys}

    def _judge(self, pipeline: PipelineConfig, phase: PhaseConfig, run: RunState,
               now: datetime) -> None:
        sub = phase.subscription
        assert sub is not None
        if phase.policy.modes is not None and run.mode not in phase.policy.modes:
            return
        firsts = [run.phases[up].first_completion for up in pipeline.upstream_of(phase.id)]
        traffic = min((f for f in firsts if f is not None), default=None)
        if traffic is None:
            return
        deadline = traffic + timedelta(minutes=sub.invoked_within_min)
        phase_run = run.phases[phase.id]
        started = [t for t in (phase_run.first_start, phase_run.first_completion) if t]
        first = min(started) if started else None
        if first is None and now < deadline:
            return
        backup = self.ctx.store.find_trigger(run.key, phase.id) if first is not None else None
        if first is not None and first < deadline and (backup is None or first < backup.decided_at):
            self._judged.add((run.key, phase.id))
            self._invoked(pipeline, phase, now)
            return
        self._judged.add((run.key, phase.id))
        if self._unhealthy(phase):
            return
        topic = _topic(pipeline, phase)
        rd = run.run_date.isoformat()
        if not phase_started(phase_run):
            how = "has no start"
        elif backup is not None and first is not None and first >= backup.decided_at:
            how = "started only after phasewatch's backup trigger"
        else:
            how = "started only later, by another path"
        self.ctx.notifier.fire(
            "subscriber_not_invoked", "warning",
            f"subscriber not invoked (IAM?): {phase.id} of {pipeline.id} {rd} ({run.mode}) "
            f"{how} {sub.invoked_within_min:g} min after {topic} had traffic "
            f"({traffic.isoformat()}); check that subscription {sub.name} can invoke its "
            "push endpoint (roles/run.invoker)", now, _labels(pipeline, phase),
        )

    def _invoked(self, pipeline: PipelineConfig, phase: PhaseConfig, now: datetime) -> None:
        # By the labels, not by a record of what this process fired: the alert is durable
        # and may have been raised before a restart (a no-op when nothing fires).
        self.ctx.notifier.resolve("subscriber_not_invoked", _labels(pipeline, phase), now)

    def _unhealthy(self, phase: PhaseConfig) -> bool:
        failing = {row["service"] for row in self.ctx.store.health() if row["status"] == "fail"}
        return any(s in failing for s in phase.services)


def _topic(pipeline: PipelineConfig, phase: PhaseConfig) -> str:
    return pipeline.subscription_topic(phase.id) or "(upstream topic)"


def _labels(pipeline: PipelineConfig, phase: PhaseConfig) -> dict[str, str | None]:
    """One alert per subscription: its labels follow from the config alone."""
    assert phase.subscription is not None
    return {"pipeline": pipeline.id, "phase": phase.id, "subscription": phase.subscription.name,
            "topic": _topic(pipeline, phase)}
