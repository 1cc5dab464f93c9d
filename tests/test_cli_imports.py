"""The CLI's cold commands import only what they use (issue 18: each command <= 1 s): the HTTP
server, the actuator, the alert channels and the store drivers they do not need stay out."""

from __future__ import annotations

import importlib
import json
import pkgutil
import subprocess
import sys
from pathlib import Path

import pytest

from monitor.store.sqlite import SQLiteStore

# What `status` and `slo report` on an SQLite store never need.
NOT_NEEDED = ("uvicorn", "starlette", "aiohttp", "slack_sdk", "psycopg", "opentelemetry", "jinja2",
              "httpx", "google", "requests", "prometheus_client", "cloudevents")
LAZY_PACKAGES = ("alerts", "alerts.channels", "slo", "monitor.store", "phasewatch_client")


@pytest.mark.parametrize("args", [["status"], ["slo", "report"]], ids=["status", "slo report"])
def test_a_cold_command_loads_only_what_it_uses(args: list[str], tmp_path: Path) -> None:
    db = tmp_path / "pw.db"
    SQLiteStore(db).close()
    code = ("import json, sys\nfrom monitor.app.cli.main import main\n"
            f"try:\n    main({[*args, '--db', str(db)]!r})\nexcept SystemExit:\n    pass\n"
            "print(json.dumps(sorted({m.split('.')[0] for m in sys.modules})))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True,
                         cwd=Path(__file__).resolve().parent.parent)
    loaded = set(json.loads(out.stdout.splitlines()[-1]))
    assert {"click", "pydantic", "monitor"} <= loaded  # the check sees what was imported
    assert loaded.isdisjoint(NOT_NEEDED), sorted(loaded & set(NOT_NEEDED))


@pytest.mark.parametrize("package", LAZY_PACKAGES)
def test_a_lazy_re_export_is_never_a_submodule_name(package: str) -> None:
    """Importing a submodule sets the package attribute of its name, which would hide a lazily
    re-exported name that is the same (``slo.anomaly.scan`` is both: that package is eager)."""
    module = importlib.import_module(package)
    names = set(module._LAZY)
    assert names == set(module.__all__) - {"__version__"}
    assert not names & {m.name for m in pkgutil.iter_modules(module.__path__)}
    for name in sorted(names):
        assert getattr(module, name) is not None
