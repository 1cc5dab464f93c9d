"""The client installs and imports without the server: checked in a fresh interpreter."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest

SERVER_SIDE = ("numpy", "pydantic", "yaml", "slack_sdk", "prometheus_client", "starlette", "monitor",
               "slo", "alerts", "google")  # (httpx imports click when it is installed)


@pytest.mark.parametrize("module", ["phasewatch_client", "phasewatch_client.kit"])
def test_importing_the_client_loads_nothing_of_the_server(module: str) -> None:
    # Every exported name used: the package's re-exports are imported on first use.
    code = (f"import sys, json, {module}; [getattr({module}, n) for n in {module}.__all__]; "
            "print(json.dumps(sorted({m.split('.')[0] for m in sys.modules})))")
    # -I: no user site, no PYTHONPATH, no current directory, so tests/ and monitor/ are not on the path
    out = subprocess.run([sys.executable, "-I", "-c", code], capture_output=True, text=True, check=True)
    loaded = set(json.loads(out.stdout))
    assert {"phasewatch_client", "httpx", "tenacity"} <= loaded  # the check sees what was imported
    assert loaded.isdisjoint(SERVER_SIDE), sorted(loaded & set(SERVER_SIDE))
