"""``phasewatch serve``: run the HTTP service until interrupted (DESIGN §5)."""

from __future__ import annotations

import logging

import click

from monitor.app.cli.support import db_option, fail
from monitor.app.http import server
from monitor.config import apply_environment, default_log_format, load_config
from monitor.errors import ConfigError, StoreError
from monitor.telemetry.exporters import build_resource, gcp_project
from monitor.telemetry.logs import LOG_FORMATS, CloudLoggingFormatter, LogFormat, configure_logging

log = logging.getLogger(__name__)


@click.command("serve")
@click.option("--config", "config_path", type=click.Path(dir_okay=False),
              help="Pipeline config (default: the bundled example).")
@db_option(help="The event store (PostgreSQL for several instances)")
@click.option("--host", default="127.0.0.1", show_default=True, help="Address to bind.")
@click.option("--port", type=click.IntRange(0, 65535), default=8080, show_default=True,
              envvar="PORT", help="Port to bind ($PORT when the option is not given).")
@click.option("--log-format", type=click.Choice(LOG_FORMATS), envvar="PHASEWATCH_LOG_FORMAT",
              help="json: one object per line for Cloud Logging (the default on Cloud Run, where "
              "K_SERVICE is set); text: key=value lines for a terminal (the default elsewhere).")
def serve_command(
    config_path: str | None, db_path: str, host: str, port: int, log_format: LogFormat | None,
) -> None:
    """Run the HTTP service: ingest events, serve metrics, run the periodic jobs."""
    handler = configure_logging(log_format or default_log_format())
    logging.getLogger("httpx").setLevel(logging.WARNING)  # one line per probe and trigger is noise
    try:
        config = apply_environment(load_config(config_path))
        if isinstance(handler.formatter, CloudLoggingFormatter):  # the project names the traces
            handler.formatter.project = gcp_project(config.telemetry, build_resource(config.telemetry))
        server.serve(config, db_path, host, port)
    except KeyboardInterrupt:  # Ctrl-C: uvicorn has shut down cleanly and re-raised it
        log.info("event=serve.stopped signal=SIGINT")
    except (ConfigError, StoreError) as exc:
        fail(exc)
    except OSError as exc:  # the address: in use, not local, not permitted
        fail(f"cannot serve on {host}:{port}: {exc.strerror or exc}")
