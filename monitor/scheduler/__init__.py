"""Scheduler outcomes: the pipeline's Cloud Scheduler jobs, their attempts and missed fires.

Import from the modules: ``watch`` (``SchedulerWatch``, ``install_scheduler(host)``),
``attempt`` (``Attempt``, the ``POST /v1/scheduler-outcomes`` body), ``logentry`` (Cloud
Scheduler's log entries), ``store``, and ``config`` (its configuration models). This file
re-exports nothing: the root config imports ``monitor.scheduler.config``, and loading that
must not load the component's runtime.
"""
