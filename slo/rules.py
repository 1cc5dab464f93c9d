"""Prometheus recording and alerting rules (multi-window burn rate) for event-ratio SLOs.

For teams who want Prometheus to alert without phasewatch in the loop. The rules read
phasewatch's own counter ``phasewatch_events_total{pipeline,phase,processor,status}``, so
they count *attempts* (every terminal event): a ``success_ratio`` SLO with ``count: runs``
gets the attempt-based approximation, and one with a ``modes`` filter is left out (the
counter has no mode label). Windows are scaled to the SLO window exactly as phasewatch's
own evaluator scales them, and each pair is gated on the long window holding
``min_events`` events, like phasewatch's own alerts.
"""

from __future__ import annotations

from fractions import Fraction
from typing import TYPE_CHECKING, Any

import yaml

from slo.evaluator import slo_labels
from slo.spec import SLOSpec, SuccessRatioSLI
from slo.windows import duration_label, scaled_minutes

if TYPE_CHECKING:
    from monitor.config import Config

METRIC = "phasewatch_events_total"
ERROR_RATIO = "phasewatch:slo_error_ratio:rate{window}"
EVENTS = "phasewatch:slo_events:increase{window}"
ALERT_NAMES = {"critical": "PhasewatchSLOBurnRatePage", "warning": "PhasewatchSLOBurnRateTicket"}
TIER = {"critical": "page", "warning": "ticket"}


def _quote(value: str) -> str:
    return '"' + value.replace("\\", "\\\\").replace('"', '\\"') + '"'


def _regex_escape(value: str) -> str:
    return "".join("\\\\" + c if c in ".+*?()[]{}|^$\\" else c for c in value)


def selector(spec: SLOSpec) -> str:
    """The label matchers of the events an SLO counts (status left out)."""
    sli = spec.sli
    assert isinstance(sli, SuccessRatioSLI)
    parts = [f"pipeline={_quote(spec.pipeline)}", f"phase={_quote(sli.phase)}"]
    if sli.processors is None:
        parts.append('processor=""')
    elif sli.processors:
        alternatives = "|".join(_regex_escape(p) for p in sli.processors)
        parts.append(f'processor=~"{alternatives}"')
    else:
        parts.append('processor!=""')
    return ",".join(parts)


def _threshold(spec: SLOSpec, factor: float) -> str:
    value = Fraction(str(factor)) * (1 - Fraction(str(spec.objective)))
    return repr(float(value))


def _rules_for(spec: SLOSpec) -> list[dict[str, Any]]:
    sel = selector(spec)
    policy = spec.alerting
    pairs = [
        (p.severity, p.factor, scaled_minutes(p.long_min, spec.window, policy),
         scaled_minutes(p.short_min, spec.window, policy))
        for p in policy.burn_rates
    ]
    windows = sorted({m for _, _, long_m, short_m in pairs for m in (long_m, short_m)})
    longs = sorted({long_m for _, _, long_m, _ in pairs})
    name = {"slo": spec.name}
    rules: list[dict[str, Any]] = []
    for minutes in windows:
        label = duration_label(minutes)
        bad = f'sum(rate({METRIC}{{{sel},status="failed"}}[{label}]))'
        total = f'sum(rate({METRIC}{{{sel},status=~"succeeded|skipped|failed"}}[{label}]))'
        rules.append({
            "record": ERROR_RATIO.format(window=label),
            "expr": f"({bad} or vector(0))\n/\n{total}",
            "labels": dict(name),
        })
    for minutes in longs:
        label = duration_label(minutes)
        rules.append({
            "record": EVENTS.format(window=label),
            "expr": f'sum(increase({METRIC}{{{sel},status=~"succeeded|skipped|failed"}}[{label}]))',
            "labels": dict(name),
        })
    match = f"{{slo={_quote(spec.name)}}}"
    for severity in ("critical", "warning"):
        clauses = []
        for sev, factor, long_m, short_m in pairs:
            if sev != severity:
                continue
            threshold = _threshold(spec, factor)
            long_l, short_l = duration_label(long_m), duration_label(short_m)
            clauses.append(
                "(\n"
                f"  {ERROR_RATIO.format(window=long_l)}{match} >= {threshold}\n"
                f"  and {ERROR_RATIO.format(window=short_l)}{match} >= {threshold}\n"
                f"  and {EVENTS.format(window=long_l)}{match} >= {policy.min_events}\n"
                ")"
            )
        if not clauses:
            continue
        labels = {**slo_labels(spec), "severity": severity, "tier": TIER[severity]}
        rules.append({
            "alert": ALERT_NAMES[severity],
            "expr": "\nor\n".join(clauses),
            "labels": labels,
            "annotations": {
                "summary": f"SLO {spec.name}: error budget burning fast ({TIER[severity]})",
                "description": (
                    f"Objective {spec.objective:g} over {spec.window.label}; multi-window "
                    "burn-rate alert over phasewatch_events_total (attempts)."
                ),
            },
        })
    return rules


def prometheus_rules(config: Config) -> tuple[dict[str, Any], list[str]]:
    """The rule-file document, and a note for every SLO left out (and why)."""
    groups = []
    notes = []
    for spec in config.slos:
        sli = spec.sli
        if not isinstance(sli, SuccessRatioSLI):
            notes.append(f"{spec.name}: {sli.kind} is not an event ratio; phasewatch alerts on it")
            continue
        if sli.modes is not None:
            notes.append(f"{spec.name}: has a modes filter; phasewatch_events_total has no mode label")
            continue
        if sli.count == "runs":
            notes.append(f"{spec.name}: counts runs; these rules count attempts (retries included)")
        groups.append({"name": f"phasewatch-slo-{spec.name}", "rules": _rules_for(spec)})
    return {"groups": groups}, notes


class _Dumper(yaml.SafeDumper):
    """Multi-line expressions as literal blocks, so the rules read like hand-written ones."""


def _str(dumper: yaml.SafeDumper, value: str) -> yaml.ScalarNode:
    style = "|" if "\n" in value else None
    return dumper.represent_scalar("tag:yaml.org,2002:str", value, style=style)


_Dumper.add_representer(str, _str)


def rules_yaml(config: Config) -> str:
    """The rules as a YAML document with a comment header."""
    document, notes = prometheus_rules(config)
    header = ["# Generated by `phasewatch slo rules`: multi-window burn-rate rules over"]
    header.append(f"# {METRIC}. Notes:")
    header.extend(f"#   {note}" for note in notes)
    body = yaml.dump(document, Dumper=_Dumper, sort_keys=False, width=200, default_flow_style=False)
    return "\n".join(header) + "\n" + body
