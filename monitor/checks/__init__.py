"""Data checks: results from anywhere (runners, HTTP, CLI, replay), thresholds, schedules.

Import from the modules: ``engine`` (``Checks``, ``install_checks``), ``result``
(``CheckResult``), ``store`` (``CheckStore``), ``config`` (the ``checks:`` section),
``runners`` (``RUNNERS``, ``MemoryRunner``), ``api`` (the HTTP endpoints' functions).
This package's ``__init__`` imports nothing, so that the actuator can use ``result``
without loading the runners.
"""
