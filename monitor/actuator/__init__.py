"""The actuator: health-gated, verified phase transitions and stalled-work recovery.

Import from the modules: ``engine`` (``Actuator``, ``install(host, probe=..., sinks=...)``),
``api`` (``list_actions`` and ``manual_action`` behind ``GET /v1/actions`` and
``POST /v1/actions/trigger``), ``gates``, ``sinks``, ``simulated``, and ``config`` (its
configuration models). This file re-exports nothing: the root config imports
``monitor.actuator.config``, and loading that must not load the actuator's runtime.
"""
