"""The ``phasewatch`` script's entry point: the command line, its modules loaded with the
cyclic garbage collector paused."""

from __future__ import annotations

import gc


def main() -> None:
    """Run the ``phasewatch`` command line.

    Loading a command's modules (the config models, the service's components) makes a few
    hundred thousand objects that live as long as the process and no garbage cycle, yet set
    off about 130 collections that scan them (about 30 ms of ``health-check``'s 0.45 s of
    imports; the ``monitor`` package's own start, with the event models, comes before).
    The collector stays paused until the command's modules are loaded, then what they made
    is frozen out of later collections and collection resumes
    (``PhasewatchGroup.resolve_command``).
    """
    gc.disable()
    from monitor.app.cli.main import main as command_line

    command_line()
