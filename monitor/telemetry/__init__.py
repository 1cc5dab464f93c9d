"""Telemetry: Prometheus metrics, OpenTelemetry traces, and metric export (Cloud Monitoring).

Import from the modules: ``metrics`` (``Metrics``, ``DURATION_BUCKETS``), ``tracing``
(``RunTracer``, ``build_tracer_provider``, ``run_trace_id``), ``export_config``,
``snapshot``, ``periodic`` and ``cloud_monitoring``. This file re-exports nothing: the root
config imports ``monitor.telemetry.export_config``, and loading that must not load tracing
(which imports the root config) nor google-cloud-monitoring.
"""
