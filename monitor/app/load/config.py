"""The config a phasewatch under load runs with: generated (synthetic) or rewritten (replay).

Synthetic: ``pipelines`` pipelines ``load01``, ``load02``... each with a phase ``work`` of
``processors`` critical processors ``p001``... and a phase ``publish`` that phasewatch
triggers by HTTP at the load test's target peer once ``work`` is complete (the decision
under test). Run dates are actionable whatever their age (``horizon: any``), so every run
the load creates is decided on.

Replay: a pipeline config (the bundled example by default) with every trigger sent to the
peer by HTTP and every service's health probed there, its data checks only declared (as
pushed ones: they query warehouses) and without exports (they write to Google): nothing
outside is called.
"""

from __future__ import annotations

from typing import Any

import yaml

from monitor.config import default_config_text

WORK, PUBLISH = "work", "publish"
TRIGGER_PATH = "/trigger"
HEALTH_PATH = "/health"
_ANY = {"overnight": "any", "same_day": "any", "tomorrow": "any"}
_OUTSIDE = ("export",)  # exports write to Google
_CHECK_FIELDS = ("name", "pipeline", "title", "warn_when", "critical_when")


def pipeline_id(index: int) -> str:
    """The id of synthetic pipeline ``index`` (0-based): load01, load02..."""
    return f"load{index + 1:02d}"


def processor_name(index: int) -> str:
    """The name of synthetic processor ``index`` (0-based): p001, p002..."""
    return f"p{index + 1:03d}"


def synthetic_config(pipelines: int, processors: int, target_url: str,
                     *, tick_interval_s: float = 1.0, slos: bool = True) -> dict[str, Any]:
    """The config of the synthetic profile, as YAML data (``target_url``: the peer)."""
    out: dict[str, Any] = {"version": 1, "pipelines": [], "slos": []}
    for i in range(pipelines):
        pid = pipeline_id(i)
        out["pipelines"].append({
            "id": pid, "timezone": "UTC",
            "horizon": {"run_dates": dict(_ANY)},
            "phases": [
                {"id": WORK, "processors": [{"name": processor_name(j), "priority": "critical"}
                                            for j in range(processors)]},
                {"id": PUBLISH, "triggers": [{
                    "kind": "http", "url": f"{target_url.rstrip('/')}{TRIGGER_PATH}/{pid}",
                    "timeout_s": 10}]},
            ],
        })
        if slos:
            out["slos"].append({"name": f"{pid}-work-success", "pipeline": pid,
                                "sli": {"kind": "success_ratio", "phase": WORK, "processors": []},
                                "objective": 0.98})
    out["server"] = {"tick_interval_s": tick_interval_s}
    out["actuator"] = {"retry": {"initial_s": 1, "max_s": 5}}
    return out


def replay_config(target_url: str, text: str | None = None) -> dict[str, Any]:
    """``text`` (default: the bundled example) with every trigger and service at the peer."""
    data: dict[str, Any] = yaml.safe_load(text if text is not None else default_config_text())
    for section in _OUTSIDE:  # a load test calls nothing beyond this machine
        data.pop(section, None)
    # Data checks query warehouses: each stays declared (SLOs and expectations name them) as
    # a pushed one, which phasewatch never runs.
    data["checks"] = [{**{k: c[k] for k in _CHECK_FIELDS if k in c}, "kind": "pushed"}
                      for c in data.get("checks") or ()]
    base = target_url.rstrip("/")
    for pipeline in data.get("pipelines", []):
        pipeline["horizon"] = {**pipeline.get("horizon", {}), "run_dates": dict(_ANY)}
        for name, service in pipeline.get("services", {}).items():
            kind = service.get("kind")
            service.clear()
            service["health_url"] = f"{base}{HEALTH_PATH}/{name}"
            if kind:
                service["kind"] = kind
        for phase in pipeline.get("phases", []):
            if phase.get("triggers"):
                phase["triggers"] = [{"kind": "http", "timeout_s": 10,
                                      "url": f"{base}{TRIGGER_PATH}/{pipeline['id']}"}]
            recovery = (phase.get("transition") or {}).get("recovery")
            if recovery:  # recovery actions call the pipeline too: the peer answers them
                for action in recovery.get("actions", {}).values():
                    if action.get("kind") == "http":
                        action["url"] = f"{base}/recovery/{pipeline['id']}"
    return data


def dump(data: dict[str, Any]) -> str:
    """YAML text of a config (keys in the order written)."""
    return yaml.safe_dump(data, sort_keys=False)
