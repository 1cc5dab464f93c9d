"""The alert catalogue, the code and docs/alerts.md held to each other; the docs' silence and
inhibition examples run end to end against a phasewatch that emits the alerts they name."""

from __future__ import annotations

import ast
import itertools
import json
import re
import shlex
from datetime import UTC, date, datetime, timedelta
from pathlib import Path

import pytest
import yaml
from click.testing import CliRunner

from alerts.catalogue import CATALOGUE, render_markdown
from alerts.config import AlertingConfig
from alerts.engine import AlertEngine
from monitor.app.cli.main import main
from monitor.app.sim.replay import HealthLine
from monitor.config import Config, default_config_text
from monitor.events import Event
from monitor.store.sqlite import SQLiteStore
from monitor.tracker import RunTracker
from slo import SLOEngine
from tests.conftest import DemoRun
from tests.factories import make_event
from tests.test_alert_noise import CHANNELS, Live, nba

ROOT = Path(__file__).resolve().parent.parent
SOURCES = [p for d in ("monitor", "slo", "alerts") for p in sorted((ROOT / d).rglob("*.py"))]
PAGE = ROOT / "docs" / "alerts.md"
# Calls whose first argument is an alert's kind (fire, notice, resolve, keys), and the
# constructor of the actuator's guards (its second argument is the kind).
KIND_CALLS = {"fire", "notice", "resolve", "_fire", "alert_key", "_alert", "failure_alert", "_key"}


def _assigned(target: ast.expr, value: ast.expr) -> list[tuple[ast.Name, ast.expr]]:
    """The names a module-level assignment binds and their values (``A, B = "a", "b"`` too)."""
    if isinstance(target, ast.Name):
        return [(target, value)]
    if (isinstance(target, ast.Tuple) and isinstance(value, ast.Tuple)
            and len(target.elts) == len(value.elts)):
        return [(t, v) for t, v in zip(target.elts, value.elts, strict=True)
                if isinstance(t, ast.Name)]
    return []


def emitted_names() -> dict[str, str]:
    """Every alertname the code can emit, found in the source: the first argument of the
    calls that raise or key an alert (a literal, a module constant, or the last item of a
    tuple slot), and the kind given to a Guard."""
    found: dict[str, str] = {}
    for path in SOURCES:
        if path.name == "catalogue.py":
            continue
        tree = ast.parse(path.read_text("utf-8"))
        constants = {name.id: value.value for n in tree.body if isinstance(n, ast.Assign)
                     for target in n.targets
                     for name, value in _assigned(target, n.value)
                     if isinstance(value, ast.Constant) and isinstance(value.value, str)}
        for node in ast.walk(tree):
            if not isinstance(node, ast.Call) or not node.args:
                continue
            name = node.func.attr if isinstance(node.func, ast.Attribute) else getattr(node.func, "id", "")
            if name in KIND_CALLS:
                arg = node.args[0]
            elif name == "Guard" and len(node.args) > 1:
                arg = node.args[1]
            else:
                continue
            if isinstance(arg, ast.Tuple) and arg.elts:
                arg = arg.elts[-1]
            value = arg.value if isinstance(arg, ast.Constant) else constants.get(getattr(arg, "id", ""))
            if isinstance(value, str) and re.fullmatch(r"[a-z][a-z_]*", value):
                found.setdefault(value, f"{path.relative_to(ROOT)}:{node.lineno}")
    return found


def test_every_alertname_the_code_can_emit_is_in_the_catalogue() -> None:
    missing = {k: v for k, v in emitted_names().items() if k not in CATALOGUE}
    assert not missing, f"add these to alerts/catalogue.py: {missing}"


def test_every_catalogued_alertname_is_emitted_by_the_code() -> None:
    emitted = set(emitted_names())
    assert sorted(set(CATALOGUE) - emitted) == []


def test_the_docs_page_shows_the_catalogue() -> None:
    text = PAGE.read_text("utf-8")
    block = re.search(r"<!-- catalogue -->\n(.*?)<!-- /catalogue -->", text, re.S)
    assert block is not None and block.group(1) == render_markdown(), (
        "docs/alerts.md is stale: paste the output of\n  python -c \"from alerts.catalogue "
        "import render_markdown; print(render_markdown())\"\nbetween its catalogue markers")
    for name in CATALOGUE:
        assert f"`{name}`" in block.group(1)


def test_every_entry_says_what_resolves_it_and_what_to_do() -> None:
    for kind in CATALOGUE.values():
        assert kind.labels and kind.severity and kind.resolves and kind.runbook, kind.name
        assert re.match(r"(critical|warning|info|as |the category)", kind.severity), kind.name
        if kind.notice:
            assert kind.reminders == "never"


def test_a_demo_emits_only_catalogued_alerts(demo_run: DemoRun) -> None:
    report = json.loads((demo_run.out_dir / "report.json").read_text("utf-8"))
    names = {a["key"].split(":", 1)[0] for a in report["alerts"]}
    assert names and names <= set(CATALOGUE)


def test_severity_overrides_must_name_catalogued_alerts() -> None:
    with pytest.raises(ValueError, match="allowed: the catalogue's alertnames"):
        AlertingConfig.model_validate({"severity": {"overrides": {"deadline": "critical"}}})
    cfg = AlertingConfig.model_validate({"severity": {"overrides": {"slo_budget_exhausted": "critical"}}})
    assert cfg.severity.overrides == {"slo_budget_exhausted": "critical"}


# --------------------------------------------------------------------------- the docs' examples


def doc_commands(prefix: str) -> list[list[str]]:
    """The shell commands of docs/alerts.md and docs/alerting.md that start with ``prefix``."""
    out = []
    for page in (PAGE, ROOT / "docs" / "alerting.md"):
        text = page.read_text("utf-8")
        blocks = re.findall(r"```\n(.*?)```", text, re.S)
        inline = re.findall(r"`(phasewatch silence add[^`]*)`", text.replace("\n", " "))
        for line in [*(line for b in blocks for line in b.splitlines()), *inline]:
            if line.startswith(prefix):
                out.append(shlex.split(line)[1:])
    return out


def doc_inhibit_rules() -> list[dict[str, object]]:
    rules = []
    for block in re.findall(r"```yaml\n(.*?)```", PAGE.read_text("utf-8"), re.S):
        rules += yaml.safe_load(block)["alerting"]["inhibit_rules"]
    return rules


def test_the_docs_silence_examples_use_real_names() -> None:
    commands = doc_commands("phasewatch silence add")
    assert len(commands) >= 3
    for args in commands:
        names = [m.split("=", 1)[1] for flag, m in itertools.pairwise(args)
                 if flag == "-m" and m.startswith("alertname=")]
        assert names and all(n in CATALOGUE for n in names), args


def silence_from_docs(db: Path, marker: str, at: datetime) -> None:
    """Run the docs' ``phasewatch silence add`` example that mentions ``marker`` on ``db``."""
    (args,) = [a for a in doc_commands("phasewatch silence add") if any(marker in x for x in a)]
    SQLiteStore(db).close()
    made = CliRunner().invoke(main, [*args, "--db", str(db), "--at", at.isoformat()])
    assert made.exit_code == 0, made.output


def test_the_docs_service_silence_silences_the_outage(tmp_path: Path) -> None:
    db = tmp_path / "pw.db"
    start = datetime(2026, 1, 18, 7, 0, tzinfo=UTC)
    silence_from_docs(db, "service=prediction-worker", start)
    live = Live(nba(), db, start)
    try:
        live.world.apply(HealthLine(type="health", service="prediction-worker", status="fail",
                                    timestamp=start))
        live.run(30)
        assert "service_unhealthy" in {a.name for a in live.pw.router.active()}
        assert live.sent() == []  # silenced; its availability SLO's alerts inhibited under it
    finally:
        live.close()


def test_the_docs_slo_silence_silences_the_page(tmp_path: Path) -> None:
    """Two missed prediction runs in a row page; the docs' silence holds the page back."""
    from monitor.clock import FakeClock

    db = tmp_path / "pw.db"
    now = datetime(2026, 1, 19, 16, 0, tzinfo=UTC)  # after 10:00 ET on January 19
    silence_from_docs(db, "slo=nba-predictions-by-10am", now - timedelta(hours=4))
    data = yaml.safe_load(default_config_text())
    data["slos"] = [s for s in data["slos"] if s["name"] == "nba-predictions-by-10am"]
    data["alerting"] = {"channels": CHANNELS}
    cfg = Config.model_validate(data)
    store = SQLiteStore(db)
    engine = SLOEngine(cfg)
    tracker = RunTracker(cfg, retention_days=60)
    clock = FakeClock(now)
    alerting = AlertEngine.build(cfg.alerting, db=store, clock=clock, secret=lambda n: None,
                                 config=cfg, dry_run=True)
    try:
        for i in range(14):  # January 6..19; the 18th and 19th never got predictions
            day = date(2026, 1, 6) + timedelta(days=i)
            for e in _prediction_day(day, made_it=i < 12):
                engine.on_update(tracker.apply(e))
        engine.tick(now, alerting.router)
        clock.advance(60)
        alerting.tick(clock.now())
        assert "slo_bad_runs_in_a_row" in {a.name for a in alerting.router.active()}
        assert alerting.router.history == []  # the page is silenced; the ticket waits an hour
        clock.advance(3600)
        alerting.tick(clock.now())
        assert [d.notification.alert.name for d in alerting.router.history] == ["slo_budget_exhausted"]
    finally:
        alerting.close()
        store.close()


def _prediction_day(day: date, made_it: bool) -> list[Event]:
    """Phase 3 seen for the game day (the tomorrow run, the evening before); Phase 5 done by
    09:00 ET on the day, or never."""
    ny = "-05:00"
    before = day - timedelta(days=1)
    out = [make_event("phase3", "succeeded", f"{before}T17:30:00{ny}", "upcoming_player_game_context",
                      run_date=day.isoformat(), mode="tomorrow")]
    if made_it:
        out.append(make_event("phase5", "succeeded", f"{day}T09:00:00{ny}", run_date=day.isoformat(),
                              mode="same_day"))
    return out


def test_the_docs_inhibit_rules_use_real_names_and_parse() -> None:
    rules = doc_inhibit_rules()
    assert len(rules) >= 2
    for rule in rules:
        cfg = AlertingConfig.model_validate({"inhibit_rules": [rule]})
        for matcher in (*cfg.inhibit_rules[0].source, *cfg.inhibit_rules[0].target):
            if matcher.startswith("alertname=~"):
                names = matcher.split("=~", 1)[1].strip('"').split("|")
                assert set(names) <= set(CATALOGUE)
            elif matcher.startswith("alertname="):
                assert matcher.split("=", 1)[1] in CATALOGUE
    default = AlertingConfig().inhibit_rules
    assert [r.model_dump() for r in default] == [
        AlertingConfig.model_validate({"inhibit_rules": [rules[-1]]}).inhibit_rules[0].model_dump()]


def test_the_docs_expectation_rule_hides_the_prediction_gap_while_the_worker_is_down(
    tmp_path: Path,
) -> None:
    """The docs' own rule, end to end: the worker fails its probes and a game day has no
    predictions at 08:30 ET; the outage is told, the prediction gap is its consequence.
    Without the rule the gap pages too."""
    from monitor.app.sim.replay import CheckLine

    rule = next(r for r in doc_inhibit_rules() if "expectation" in str(r["target"]))

    def told(alerting: dict[str, object]) -> list[str]:
        live = Live(nba(alerting), tmp_path / f"pw{len(alerting)}.db",
                    datetime(2026, 1, 21, 13, 0, tzinfo=UTC))
        try:
            now = live.clock.now()
            live.world.apply(HealthLine(type="health", service="prediction-worker", status="fail",
                                        timestamp=now))
            live.world.apply(CheckLine(type="check", name="games_today", value=10, timestamp=now))
            live.world.apply(CheckLine(type="check", name="predictions_today", value=0, timestamp=now))
            live.run(45)  # past 08:30 ET
            assert {"service_unhealthy", "expectation"} <= {a.name for a in live.pw.router.active()}
            return sorted(d.notification.alert.name for d in live.sent("pager"))
        finally:
            live.close()

    assert told({"inhibit_rules": [rule]}) == ["service_unhealthy"]
    assert told({}) == ["expectation", "service_unhealthy"]
