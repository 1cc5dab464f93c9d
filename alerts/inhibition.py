"""Inhibition: alerts that are consequences of another firing alert are not notified.

Four sources of rules: phasewatch reaching none of the services (``probes_unreachable``
hides every alert about one service: its outage, its availability SLO, a trigger held for
it), the pipeline graph (a failing phase, processor or service inhibits
the deadline, overdue and no-effect alerts of the phases downstream of it in the same
run), correlated incidents (one incident for a shared error signature inhibits the
per-processor alerts of the processors it names), and configured rules in Alertmanager's
shape (source matchers, target matchers, labels that must be equal). Evaluated when a
group is flushed, against every alert firing at that moment, so the order in which a
cause and its consequences arrive within ``group_wait`` does not matter.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import TYPE_CHECKING

from alerts.config import CorrelationConfig, GraphInhibitionConfig, InhibitRuleConfig
from alerts.matchers import Matcher, matches_all, parse_matchers
from alerts.model import Alert

if TYPE_CHECKING:
    from monitor.config import Config

# pipeline → phase → every phase downstream of it (transitively)
Graph = Mapping[str, Mapping[str, frozenset[str]]]
# service → the (pipeline, phase) pairs that use it
ServicePhases = Mapping[str, frozenset[tuple[str, str]]]
# (pipeline, run_date, mode, phase) → whether that run's phase is under way (has events)
UnderWay = Callable[[str, str, str, str], bool]
CORRELATED = "correlated_failure"
REACH = "probes_unreachable"  # no service answers phasewatch: their outages are its consequence
STUCK = "phase_stuck"
DETERMINISTIC = "deterministic_failure"
SAME_PROCESSOR = frozenset({"failed_runs", "retry_storm"})
# Actions held by a gate: by data (no ``service`` label), a failure upstream is why; held for
# a service's health, only that service's outage is (DEFAULT_INHIBIT_RULES).
HELD = frozenset({"trigger_deferred", "recovery_deferred"})


def service_phases(config: Config) -> dict[str, frozenset[tuple[str, str]]]:
    """Every configured service and the phases that run on it."""
    out: dict[str, set[tuple[str, str]]] = {}
    for pipeline in config.pipelines:
        for phase in pipeline.phases:
            for service in phase.services:
                out.setdefault(service, set()).add((pipeline.id, phase.id))
    return {k: frozenset(v) for k, v in out.items()}


def pipeline_graph(config: Config) -> dict[str, dict[str, frozenset[str]]]:
    """The transitive downstream phases of every phase of every configured pipeline."""
    out: dict[str, dict[str, frozenset[str]]] = {}
    for pipeline in config.pipelines:
        below: dict[str, frozenset[str]] = {}
        for phase in reversed(pipeline.phases):  # downstream phases come later in the list
            direct = pipeline.downstream_of(phase.id)
            found = set(direct)
            for child in direct:
                found |= below.get(child, frozenset())
            below[phase.id] = frozenset(found)
        out[pipeline.id] = below
    return out


@dataclass(frozen=True)
class InhibitRule:
    """A configured rule: ``source`` firing inhibits ``target`` when ``equal`` labels agree."""

    source: tuple[Matcher, ...]
    target: tuple[Matcher, ...]
    equal: tuple[str, ...]

    @classmethod
    def from_config(cls, cfg: InhibitRuleConfig) -> InhibitRule:
        return cls(parse_matchers(cfg.source), parse_matchers(cfg.target), cfg.equal)

    def inhibits(self, source: Mapping[str, str], target: Mapping[str, str]) -> bool:
        return (
            matches_all(self.target, target) and matches_all(self.source, source)
            and all(source.get(n, "") == target.get(n, "") for n in self.equal)
        )


class Inhibitor:
    """Decides which firing alerts inhibit a given alert."""

    def __init__(self, graph: Graph, graph_cfg: GraphInhibitionConfig,
                 rules: Sequence[InhibitRuleConfig] = (), *,
                 services: ServicePhases | None = None,
                 correlation: CorrelationConfig | None = None,
                 critical: Callable[[str, str, str, str], bool] | None = None,
                 under_way: UnderWay | None = None) -> None:
        """``under_way`` tells whether a run's phase has begun (the run tracker): a failure
        of no run (failing now) holds up no phase that began without it."""
        self.graph = graph
        self.graph_cfg = graph_cfg
        self.rules = tuple(InhibitRule.from_config(r) for r in rules)
        self.services = services or {}
        # (pipeline, phase, processor, mode) -> whether the phase waits for that processor
        self.critical = critical
        self.under_way = under_way
        self.correlated = frozenset(correlation.inhibits) if correlation and correlation.enabled \
            else frozenset()

    def sources(self, firing: Sequence[Alert]) -> list[tuple[str, dict[str, str]]]:
        """The firing alerts that could inhibit anything, with their labels (once per flush)."""
        out = []
        names = set(self.graph_cfg.source_alertnames if self.graph_cfg.enabled else ())
        names.add(REACH)
        if self.correlated:
            names.add(CORRELATED)
        for alert in firing:
            labels = alert.match_labels()
            if labels["alertname"] in names or any(
                matches_all(r.source, labels) for r in self.rules
            ):
                out.append((alert.key, labels))
        return out

    def inhibited_by(self, target: Alert,
                     firing: Sequence[Alert] | Sequence[tuple[str, dict[str, str]]],
                     opened: Mapping[str, datetime] | None = None) -> list[str]:
        """Keys of the firing alerts that inhibit ``target`` (empty: it is not inhibited).

        ``firing`` is the alerts firing now, or what ``sources`` made of them; ``opened``
        (key -> when each alert opened) settles two alerts that would hide each other (a
        phase overdue and the stalled processor it waits for): the earlier is the cause.
        """
        t_labels = target.match_labels()
        candidates = [
            item if isinstance(item, tuple) else (item.key, item.match_labels())
            for item in firing
        ]
        out = []
        for key, s_labels in candidates:
            if key == target.key or not self._inhibits(s_labels, t_labels):
                continue
            if opened is not None and self._inhibits(t_labels, s_labels):
                mine, theirs = opened.get(target.key), opened.get(key)
                if mine is not None and theirs is not None and (theirs, key) > (mine, target.key):
                    continue  # each would hide the other: the later one is not the cause
            out.append(key)
        return out

    def _inhibits(self, source: Mapping[str, str], target: Mapping[str, str]) -> bool:
        if source.get("alertname") == REACH and target.get("service"):
            return True  # what the probes said of one service: phasewatch reached none
        return (self._graph_inhibits(source, target) or self._correlation_inhibits(source, target)
                or any(r.inhibits(source, target) for r in self.rules))

    def _graph_inhibits(self, source: Mapping[str, str], target: Mapping[str, str]) -> bool:
        cfg = self.graph_cfg
        if not cfg.enabled:
            return False
        if source.get("alertname") not in cfg.source_alertnames:
            return False
        if (source.get("alertname") == "service_unhealthy"
                and target.get("alertname") in cfg.service_targets):
            return self._service_covers(source, target)
        if target.get("alertname") == STUCK and self._explains_stuck(source, target):
            return True
        if (source.get("alertname") == DETERMINISTIC and target.get("alertname") in SAME_PROCESSOR
                and all(source.get(n) == target.get(n) for n in ("pipeline", "phase", "processor"))):
            return True  # its repeated signature already says why it keeps failing
        if target.get("alertname") not in cfg.target_alertnames:
            return False
        if target.get("alertname") in HELD and target.get("service"):
            return False  # held for a service's health: that service's outage is the cause
        t_pipeline, t_phase = target.get("pipeline"), target.get("phase")
        if not t_pipeline:
            return False
        blocks = self._blocks(source)
        # A source about one run covers that run; one without a run_date is failing now
        # (a processor failing over and over, a service down) and covers every run.
        run_date = source.get("run_date")
        if run_date and target.get("run_date") != run_date:
            return False
        s_mode, t_mode = source.get("mode"), target.get("mode")
        if s_mode and t_mode and s_mode != t_mode:
            return False
        # A failure of no run holds up the phases downstream that have not begun; one that
        # began (in its run, with its inputs: another run's overnight Phase 2 failing while
        # tomorrow's Phase 5 hangs) is late for reasons of its own.
        began = not run_date and self._under_way(target)
        for pipeline, s_phase in self._source_phases(source):
            if pipeline != t_pipeline:
                continue
            if s_phase == t_phase:  # its own phase: even an optional processor explains it
                if cfg.same_phase:
                    return True
            elif not blocks or began:
                continue
            # A target about the whole run (no phase): every phase is upstream of it.
            elif not t_phase or t_phase in self.graph.get(pipeline, {}).get(s_phase, frozenset()):
                return True
        return False

    def _under_way(self, target: Mapping[str, str]) -> bool:
        """Whether the target's own phase has begun in its run (the tracker says)."""
        run_date, mode, phase = target.get("run_date"), target.get("mode"), target.get("phase")
        if self.under_way is None or not (run_date and mode and phase):
            return False
        return self.under_way(target.get("pipeline", ""), run_date, mode, phase)

    def _explains_stuck(self, source: Mapping[str, str], target: Mapping[str, str]) -> bool:
        """A stuck phase whose only missing processor is failing (the source is about that
        processor, of that phase and run): the failure is why nothing new came."""
        processor = source.get("processor")
        if not processor or target.get("missing", "").split(",") != [processor]:
            return False
        if (source.get("pipeline"), source.get("phase")) != (target.get("pipeline"), target.get("phase")):
            return False
        return all(source.get(name) in (None, target.get(name)) for name in ("run_date", "mode"))

    def _blocks(self, source: Mapping[str, str]) -> bool:
        """Whether a failure holds up the phases downstream: not when it is about one
        processor that is optional in its phase (the phase completes without it), nor a
        correlated incident of optional processors only (it is a warning then)."""
        if source.get("alertname") == CORRELATED:
            return source.get("severity") == "critical"
        processor = source.get("processor")
        if not processor or self.critical is None:
            return True
        return self.critical(source.get("pipeline", ""), source.get("phase", ""), processor,
                             source.get("mode", ""))

    def _service_covers(self, source: Mapping[str, str], target: Mapping[str, str]) -> bool:
        """An unhealthy service's processor failures: the target's phase (or a phase a
        correlated incident names) runs on the service."""
        pipeline = target.get("pipeline", "")
        phases = set(target.get("phases", "").split(",")) | {target.get("phase", "")}
        return any((pipeline, phase) in self._source_phases(source) for phase in phases if phase)

    def _source_phases(self, source: Mapping[str, str]) -> set[tuple[str, str]]:
        """The (pipeline, phase) pairs a failure alert is about: its phase, the phases a
        correlated incident names, or the phases that run on an unhealthy service."""
        pipeline = source.get("pipeline", "")
        if source.get("phases"):
            return {(pipeline, p) for p in source["phases"].split(",")}
        if source.get("phase"):
            return {(pipeline, source["phase"])}
        service = source.get("service")
        found = self.services.get(service, frozenset()) if service else frozenset()
        return {pp for pp in found if not pipeline or pp[0] == pipeline}

    def _correlation_inhibits(self, source: Mapping[str, str], target: Mapping[str, str]) -> bool:
        """A correlated incident hides the per-processor alerts of the processors it names."""
        if source.get("alertname") != CORRELATED or target.get("alertname") not in self.correlated:
            return False
        if source.get("pipeline") != target.get("pipeline"):
            return False
        named = f"{target.get('phase', '')}/{target.get('processor', '')}"
        return named in source.get("processors", "").split(",")
