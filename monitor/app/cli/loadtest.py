"""``phasewatch loadtest``: drive a running phasewatch with load and judge what it did.

    phasewatch loadtest config --profile synthetic --pipelines 5 --processors 20 > load.yaml
    phasewatch serve --config load.yaml --db load.db &
    phasewatch loadtest --url http://127.0.0.1:8080 --profile synthetic --pipelines 5 ...

Exit 0 when every threshold held, 1 when one was breached (the summary names it), 2 for a
usage error. Reports (locust's stats CSV and HTML, the acknowledgement log, summary.json)
go to ``--out``.
"""

from __future__ import annotations

import importlib.util
import secrets
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from typing import Any

import click
import httpx

from alerts.silences import parse_duration
from monitor.app.cli.support import existing_file, fail
from monitor.app.load.config import PUBLISH, WORK, dump, pipeline_id, replay_config, synthetic_config
from monitor.app.load.peer import TargetPeer
from monitor.app.load.plan import MAX_RUNS, Planned, read_jsonl, recorded_day, replay_plan, synthetic_plan
from monitor.app.load.runner import LoadResult, LoadTest, rss_mb, run_load
from monitor.app.load.thresholds import load_thresholds
from monitor.config import Config, parse_config
from monitor.errors import ConfigError

PROFILES = ("replay", "synthetic")
DEFAULT_TARGET_PORT = 8799


def _profile_options(command: Any) -> Any:
    for option in reversed([
        click.option("--profile", type=click.Choice(PROFILES), default="synthetic", show_default=True,
                     help="replay: a recorded day at --speed; synthetic: --pipelines x --processors "
                     "x --runs."),
        click.option("--pipelines", type=click.IntRange(1, 99), default=3, show_default=True,
                     help="synthetic: pipelines load01..."),
        click.option("--processors", type=click.IntRange(1, 999), default=10, show_default=True,
                     help="synthetic: processors of each pipeline's work phase."),
        click.option("--target-port", type=click.IntRange(1, 65535), default=DEFAULT_TARGET_PORT,
                     show_default=True, help="Port of the load test's trigger target on 127.0.0.1."),
        click.option("--config", "config_path", type=click.Path(dir_okay=False),
                     help="replay: the pipeline config phasewatch runs (default: the bundled example)."),
    ]):
        command = option(command)
    return command


@click.group("loadtest", invoke_without_command=True)
@click.option("--url", envvar="PHASEWATCH_URL", help="The running phasewatch ($PHASEWATCH_URL).")
@click.option("--token", envvar="PHASEWATCH_TOKEN", help="Bearer token ($PHASEWATCH_TOKEN).")
@_profile_options
@click.option("--runs", type=click.IntRange(1, MAX_RUNS), default=5, show_default=True,
              help="synthetic: runs (run dates) of each pipeline.")
@click.option("--speed", type=click.FloatRange(0.1, 10_000), default=100.0, show_default=True,
              help="replay: times the recorded pace (1, 10, 100...).")
@click.option("--events", "events_path", type=click.Path(dir_okay=False, path_type=Path),
              help="replay: a JSON Lines day to replay (default: a day of the demo's simulator).")
@click.option("--duration", default="60s", show_default=True,
              help="Longest send time (30s, 2m, 1h); synthetic spreads its runs over it.")
@click.option("--users", type=click.IntRange(1, 1000), default=20, show_default=True,
              help="Concurrent locust users.")
@click.option("--push", is_flag=True, help="Send every other event through POST /v1/pubsub/push.")
@click.option("--pid", type=int, help="Process id of phasewatch, if local: its peak RSS is judged.")
@click.option("--thresholds", "thresholds_path", type=click.Path(dir_okay=False, path_type=Path),
              help="YAML/JSON limits: max_lost, max_failed, max_duplicate_triggers, "
              "max_missing_triggers, ingest_p99_ms, decision_lag_p99_s, max_rss_mb.")
@click.option("--settle", default="15s", show_default=True,
              help="After sending, how long to wait for the last triggers.")
@click.option("--out", "out_dir", type=click.Path(file_okay=False, path_type=Path),
              default="loadtest-report", show_default=True, help="Where the reports go.")
@click.pass_context
def loadtest(ctx: click.Context, url: str | None, token: str | None, profile: str, pipelines: int,
             processors: int, target_port: int, config_path: str | None, runs: int, speed: float,
             events_path: Path | None, duration: str, users: int, push: bool, pid: int | None,
             thresholds_path: Path | None, settle: str, out_dir: Path) -> None:
    """Drive a running phasewatch with load; exit 1 when a threshold is breached.

    phasewatch must run with the config `phasewatch loadtest config` prints for the same
    profile, pipelines, processors and target port, on a fresh store.
    """
    if ctx.invoked_subcommand is not None:
        return
    if not url:
        fail("--url: missing; allowed: the running phasewatch's base URL, e.g. http://127.0.0.1:8080")
    if importlib.util.find_spec("locust") is None:
        fail("loadtest needs locust, which is not installed; allowed: pip install 'phasewatch[load]'")
    limits = _thresholds(thresholds_path)
    try:
        out_dir.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        fail(f"--out {out_dir}: cannot create the report directory: {exc.strerror or exc}")
    duration_s, settle_s = _seconds(duration, "--duration"), _seconds(settle, "--settle")
    if pid is not None:
        try:
            rss_mb(pid)
        except OSError:
            fail(f"--pid {pid}: no such process on this machine; allowed: the local phasewatch's pid")
    session = secrets.token_hex(3)
    if profile == "synthetic":
        today = datetime.now(UTC).date()
        plan = synthetic_plan(pipelines, processors, runs, duration_s, today=today, session=session)
        upstream = {(pipeline_id(p), PUBLISH): frozenset({WORK}) for p in range(pipelines)}
        expected = frozenset((pipeline_id(p), (today - timedelta(days=r)).isoformat(), PUBLISH)
                             for p in range(pipelines) for r in range(runs))
        test = LoadTest(url.rstrip("/"), plan, duration_s, out_dir, upstream, token, users,
                        0.5 if push else 0.0, expected, pid, settle_s)
    else:
        config = _replay_config(config_path, target_port)
        plan = _replay(events_path, speed, config)
        test = LoadTest(url.rstrip("/"), plan, duration_s, out_dir, _upstream(config), token, users,
                        0.5 if push else 0.0, None, pid, settle_s)
    try:
        peer = TargetPeer(target_port)
    except OSError as exc:
        fail(f"--target-port {target_port}: cannot listen on 127.0.0.1: {exc.strerror or exc}")
    with peer:
        try:
            result = run_load(test, peer, limits, echo=lambda s: click.echo(s, err=True))
        except httpx.HTTPError as exc:
            fail(f"--url {url}: cannot reach phasewatch: {exc}")
        except RuntimeError as exc:
            fail(str(exc))
    click.echo(render(result, profile))
    ctx.exit(1 if result.breaches else 0)


@loadtest.command("config")
@_profile_options
def loadtest_config(profile: str, pipelines: int, processors: int, target_port: int,
                    config_path: str | None) -> None:
    """Print the config phasewatch must run with for a load test (YAML)."""
    target = f"http://127.0.0.1:{target_port}"
    if profile == "synthetic":
        click.echo(dump(synthetic_config(pipelines, processors, target)), nl=False)
    else:
        text = Path(existing_file(config_path, "--config")).read_text("utf-8") if config_path else None
        click.echo(dump(replay_config(target, text)), nl=False)


def _thresholds(path: Path | None) -> Any:
    if path is not None:
        existing_file(path, "--thresholds")
    try:
        return load_thresholds(path)
    except ConfigError as exc:
        fail(exc)


def _seconds(text: str, option: str) -> float:
    try:
        seconds = parse_duration(text).total_seconds()
    except ValueError:
        fail(f"{option} {text!r}: not a duration; allowed: e.g. 20s, 2m, 1h or seconds")
    if seconds <= 0:
        fail(f"{option} {text!r}: must be longer than 0 s")
    return seconds


def _replay_config(path: str | None, target_port: int) -> Config:
    text = Path(existing_file(path, "--config")).read_text("utf-8") if path else None
    data = replay_config(f"http://127.0.0.1:{target_port}", text)
    try:
        return parse_config(dump(data), path or "<bundled example>")
    except ConfigError as exc:
        fail(exc)


def _replay(events_path: Path | None, speed: float, config: Config) -> list[Planned]:
    if events_path is not None:
        existing_file(events_path, "--events")
        try:
            lines = read_jsonl(events_path)
        except ValueError as exc:
            fail(f"--events {events_path}: {exc}")
    else:
        lines = recorded_day()
    names = {p.id for p in config.pipelines}
    timezone = next((p.timezone for p in config.pipelines), "UTC")
    unknown = sorted({str(line.get("pipeline")) for line in lines if "type" not in line} - names)
    if unknown:
        fail(f"--events: pipeline {unknown[0]!r} is not in the config; allowed: {', '.join(sorted(names))}")
    try:
        return replay_plan(lines, speed, today=_today(timezone), session=secrets.token_hex(3),
                           timezone=timezone)
    except (ValueError, KeyError) as exc:
        fail(f"--events: {exc}")


def _today(timezone: str) -> date:
    from zoneinfo import ZoneInfo

    return datetime.now(ZoneInfo(timezone)).date()


def _upstream(config: Config) -> dict[tuple[str, str], frozenset[str]]:
    return {(p.id, phase.id): frozenset(p.upstream_of(phase.id)) for p in config.pipelines
            for phase in p.phases}


def render(result: LoadResult, profile: str) -> str:
    """The summary a person reads: figures, then PASS or the breaches."""
    f = result.figures
    lines = [f"loadtest ({profile}): {f['acknowledged']:,} of {f['sent']:,} events acknowledged "
             f"({f['via_push']:,} by push), {f['failed']:,} failed, {f['unsent']:,} not sent in time; "
             f"{_num(f.get('events_per_s'))} events/s",
             f"  lost (acknowledged, not stored): {f['lost']}   unverified: {f['unverified']}",
             f"  ingest ms: p50 {_num(f['ingest_p50_ms'])}  p99 {_num(f['ingest_p99_ms'])}  "
             f"max {_num(f['ingest_max_ms'])}",
             f"  triggers: {f['triggers']} ({f['triggers_not_on_an_event']} not decided on an event), "
             f"duplicates {f['duplicate_triggers']}"
             + (f", missing {f['missing_triggers']} of {f['runs_complete']} complete runs"
                if "missing_triggers" in f else ""),
             f"  decision lag s: p50 {_num(f['decision_lag_p50_s'])}  p99 {_num(f['decision_lag_p99_s'])}"
             f"  max {_num(f['decision_lag_max_s'])}"]
    if "peak_rss_mb" in f:
        lines.append(f"  RSS MB: start {f['rss_start_mb']}  peak {f['peak_rss_mb']}  end {f['rss_end_mb']}")
    lines.append("  reports: " + ", ".join(str(p) for p in result.files))
    lines.append("PASS" if not result.breaches else
                 "FAIL: " + "; ".join(str(b) for b in result.breaches))
    return "\n".join(lines)


def _num(value: float | None) -> str:
    return "-" if value is None else f"{value:g}"
