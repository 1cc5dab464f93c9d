"""The CLI's cold commands import only what they use (issue 18: each command <= 1 s): the HTTP
server, the actuator, the alert channels and the store drivers they do not need stay out."""

from __future__ import annotations

import importlib
import json
import pkgutil
import subprocess
import sys
from pathlib import Path

import click
import pytest

from monitor.store.sqlite import SQLiteStore

# What `status` and `slo report` on an SQLite store never need.
NOT_NEEDED = ("uvicorn", "starlette", "aiohttp", "slack_sdk", "psycopg", "opentelemetry", "jinja2",
              "httpx", "google", "requests", "prometheus_client", "cloudevents")
# What `health-check` and `report --weekly` never need: they build the service to read it (the
# daily summary reads the actuator, the alert engine, the checks) but send nothing, so no
# sender's client library (HTTP sinks and probes, Slack, Google auth, CloudEvents) loads.
NOT_NEEDED_TO_READ = ("uvicorn", "starlette", "aiohttp", "slack_sdk", "psycopg", "jinja2", "httpx",
                      "httpcore", "google", "requests", "urllib3", "cloudevents",
                      "numpy")  # the SLO ledgers count in arrays of the standard library
LAZY_PACKAGES = ("alerts", "alerts.channels", "slo", "monitor.store", "phasewatch_client")


def _loaded(args: list[str], tmp_path: Path) -> set[str]:
    """The top-level packages a command run in a fresh interpreter has imported."""
    db = tmp_path / "pw.db"
    SQLiteStore(db).close()
    code = ("import json, sys\nfrom monitor.app.cli.main import main\n"
            f"try:\n    main({[*args, '--db', str(db)]!r})\nexcept SystemExit:\n    pass\n"
            "print(json.dumps(sorted({m.split('.')[0] for m in sys.modules})))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True,
                         cwd=Path(__file__).resolve().parent.parent)
    loaded = set(json.loads(out.stdout.splitlines()[-1]))
    assert {"click", "pydantic", "monitor"} <= loaded  # the check sees what was imported
    return loaded


@pytest.mark.parametrize(("args", "also"), [(["status"], ("numpy",)),
                                            (["slo", "report"], ("numpy",))],
                         ids=["status", "slo report"])
def test_a_cold_command_loads_only_what_it_uses(args: list[str], also: tuple[str, ...],
                                               tmp_path: Path) -> None:
    """``also``: numpy, which only the anomaly package's ensemble detector uses (loaded on first
    use); the SLO ledgers count in the standard library's arrays."""
    loaded = _loaded(args, tmp_path)
    unwanted = {*NOT_NEEDED, *also}
    assert loaded.isdisjoint(unwanted), sorted(loaded & unwanted)


@pytest.mark.parametrize("args", [["health-check", "--daily"], ["report", "--weekly"]],
                         ids=["health-check", "report --weekly"])
def test_a_reading_command_loads_no_senders_client(args: list[str], tmp_path: Path) -> None:
    """The service these commands build holds its senders (the actuator's HTTP sink, the
    health probe, the alert channels, the publisher) unbuilt until they send."""
    loaded = _loaded(args, tmp_path)
    assert "alerts" in loaded and "opentelemetry" in loaded  # the service was built
    assert loaded.isdisjoint(NOT_NEEDED_TO_READ), sorted(loaded & set(NOT_NEEDED_TO_READ))


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


def test_the_service_loads_the_first_attempts_library_at_start() -> None:
    """``serve`` imports aiohttp when it starts (not on the first trigger, on the event loop)."""
    code = "import sys\nimport monitor.app.http.server\nprint('aiohttp' in sys.modules)"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True,
                         cwd=Path(__file__).resolve().parent.parent)
    assert out.stdout.split()[-1] == "True"


def _modules_after(args: list[str]) -> set[str]:
    """Every module a command run in a fresh interpreter has imported."""
    code = ("import json, sys\nfrom monitor.app.cli.main import main\n"
            f"try:\n    main({args!r})\nexcept SystemExit:\n    pass\n"
            "print(json.dumps(sorted(sys.modules)))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True,
                         cwd=Path(__file__).resolve().parent.parent)
    assert "Commands:" in out.stdout
    return set(json.loads(out.stdout.splitlines()[-1]))


def test_help_lists_the_commands_without_importing_them() -> None:
    """``phasewatch --help`` listed each command by importing its module (and so numpy, the HTTP
    clients, the page renderer...): about 1 s to print a list."""
    from monitor.app.cli.main import LAZY_COMMANDS

    loaded = _modules_after(["--help"])
    modules = {lazy.target.split(":")[0] for lazy in LAZY_COMMANDS.values()}
    assert loaded.isdisjoint(modules), sorted(loaded & modules)
    heavy = {m.split(".")[0] for m in loaded} & {*NOT_NEEDED, "numpy", "rich", "pygments"}
    assert not heavy, sorted(heavy)


@pytest.mark.parametrize("width", [40, 80, 100, 200])
def test_the_help_list_is_the_commands_own(width: int) -> None:
    """The lazy list (each command's summary in ``LAZY_COMMANDS``) is what click lists from the
    commands themselves, at every terminal width: a summary cannot drift from its command."""
    from monitor.app.cli.main import main

    ctx = click.Context(main, info_name="phasewatch")
    lazy, real = click.HelpFormatter(width=width), click.HelpFormatter(width=width)
    main.format_commands(ctx, lazy)
    click.Group.format_commands(main, ctx, real)  # imports every command
    assert lazy.getvalue() == real.getvalue()
    assert "health-check" in lazy.getvalue()


def test_the_script_loads_a_command_with_the_collector_paused_then_resumes_it(
    tmp_path: Path,
) -> None:
    """The ``phasewatch`` script (``monitor.app.cli.start``) loads the command line and the
    command's modules with no garbage collection (before: about 130 of them, 30 ms of
    ``health-check``), then runs the command with the collector on and the modules' objects
    frozen out of it."""
    db = tmp_path / "pw.db"
    SQLiteStore(db).close()
    code = ("import atexit, gc, sys\n"
            "early = []\n"
            "gc.callbacks.append(lambda phase, info: early.append(phase) if phase == 'start'"
            " and 'monitor.app.cli.main' in sys.modules and not gc.get_freeze_count() else None)\n"
            "atexit.register(lambda: print(len(early), gc.isenabled(), gc.get_freeze_count() > 0))\n"
            f"sys.argv = ['phasewatch', 'health-check', '--db', {str(db)!r}]\n"
            "from monitor.app.cli.start import main\n"
            "main()\n")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                         check=False, cwd=Path(__file__).resolve().parent.parent)
    assert out.returncode in (0, 1), out.stderr
    assert out.stdout.splitlines()[-1].split() == ["0", "True", "True"]
