"""``phasewatch anomaly scan``: run the streaming detector over a CSV and print flagged rows."""

from __future__ import annotations

import csv
import json
import sys
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Literal

import click

from monitor.app.cli.console import Advance, count_lines, print_out, progress, table
from monitor.app.cli.support import fail
from slo.anomaly import DetectorConfig, EnsembleConfig, scan

PRESETS: dict[str, DetectorConfig | EnsembleConfig] = {
    "duration": DetectorConfig(),
    "generic": EnsembleConfig(),
}
OutOfOrder = Literal["error", "keep", "skip"]


def _parse_time(text: str) -> datetime:
    """RFC 3339 / ISO 8601 (naive means UTC) or Unix seconds."""
    try:
        at = datetime.fromisoformat(text.strip())
    except ValueError:
        at = datetime.fromtimestamp(float(text), tz=UTC)
    return at if at.tzinfo else at.replace(tzinfo=UTC)


def _is_number(text: str | None) -> bool:
    try:
        float(text or "")
    except ValueError:
        return False
    return True


def _pick_value_column(path: str, header: list[str], time_column: str) -> str:
    """``value`` if present, else the first column whose first non-empty cell is numeric."""
    if "value" in header:
        return "value"
    with Path(path).open(newline="") as fh:
        for row in csv.DictReader(fh):
            for column in header:
                cell = row.get(column) or ""
                if column != time_column and cell.strip() and _is_number(cell):
                    return column
            break
    fail(
        f"{path}: no numeric value column; columns: {', '.join(header)} (use --value-column)"
    )


def _rows(path: str, time_column: str, value_column: str, out_of_order: OutOfOrder,
          skipped: list[int], advance: Advance) -> Iterator[tuple[datetime, float]]:
    with Path(path).open(newline="") as fh:
        reader = csv.reader(fh)  # not DictReader: a dict per row costs a fifth of the scan
        try:
            header = next(reader, [])
            for at, value in _parsed(path, reader, header.index(time_column),
                                     header.index(value_column), time_column, value_column,
                                     out_of_order, skipped):
                advance(1)
                yield at, value
        except (csv.Error, UnicodeDecodeError) as exc:
            fail(f"{path}:{reader.line_num + 1}: not CSV text ({exc}); "
                 "allowed: UTF-8 CSV with a header row")


def _parsed(path: str, reader: Iterator[list[str]], time_at: int, value_at: int,
            time_column: str, value_column: str, out_of_order: OutOfOrder,
            skipped: list[int]) -> Iterator[tuple[datetime, float]]:
    """The rows' (time, value); a row earlier than one before it per ``out_of_order``."""
    previous: datetime | None = None
    for line, row in enumerate(reader, start=2):
        width = len(row)
        raw_time = row[time_at] if time_at < width else ""
        raw_value = row[value_at] if value_at < width else ""
        if not raw_value.strip():
            continue  # a blank cell is a missing point, not a zero
        try:
            at = _parse_time(raw_time)
        except (ValueError, OverflowError, OSError):
            fail(f"{path}:{line}: column {time_column!r}: not a time: {raw_time!r}; "
                 "allowed: RFC 3339 / ISO 8601 or Unix seconds")
        try:
            value = float(raw_value)
        except ValueError:
            fail(f"{path}:{line}: column {value_column!r}: not a number: {raw_value!r}")
        if previous is not None and at < previous:
            if out_of_order == "error":
                fail(f"{path}:{line}: rows must be in time order ({at} after {previous}); "
                     "allowed: --out-of-order keep (file order) or skip (drop such rows)")
            if out_of_order == "skip":
                skipped.append(line)
                continue
        previous = at if previous is None else max(previous, at)
        yield at, value


@click.group("anomaly")
def anomaly() -> None:
    """Find unusual values with phasewatch's streaming detector."""


@anomaly.command("scan")
@click.argument("file", type=click.Path(dir_okay=False))
@click.option("--time-column", default="timestamp", show_default=True)
@click.option(
    "--value-column", default=None, help="default: 'value', else the first numeric column"
)
@click.option("--json", "as_json", is_flag=True, help="one JSON object per flagged row")
@click.option(
    "--preset",
    type=click.Choice(sorted(PRESETS)),
    default="duration",
    show_default=True,
    help="duration: one-sided 'slower than usual', log scale (job durations); "
    "generic: the ensemble for sub-daily metrics, two-sided (spikes, level shifts, "
    "seasonal deviations, bursts, values off their forecast)",
)
@click.option(
    "--out-of-order",
    type=click.Choice(["error", "keep", "skip"]),
    default="error",
    show_default=True,
    help="a row earlier than one before it (e.g. a repeated hour when clocks go back): "
    "error exits 2 naming it, keep reads rows in file order, skip drops it",
)
def scan_command(file: str, time_column: str, value_column: str | None, as_json: bool,
                 preset: str, out_of_order: OutOfOrder) -> None:
    """Stream FILE (CSV) through the detector; print each flagged row; exit 1 if any."""
    try:
        with Path(file).open(newline="") as fh:
            header = next(csv.reader(fh), [])
    except (OSError, UnicodeDecodeError, csv.Error) as exc:
        fail(f"{file}: cannot read: {exc}; allowed: UTF-8 CSV with a header row")
    available = ", ".join(header) or "(none)"
    if time_column not in header:
        fail(f"{file}: no time column {time_column!r}; columns: {available}")
    if value_column is None:
        value_column = _pick_value_column(file, header, time_column)
    elif value_column not in header:
        fail(f"{file}: no value column {value_column!r}; columns: {available}")

    flagged = 0
    skipped: list[int] = []
    found = table("time", "value", "expected", "range", "score", "reason", wrap=("time", "range"))
    with progress(f"scanning {Path(file).name}", lambda: count_lines(Path(file), header=True)) as advance:
        rows = _rows(file, time_column, value_column, out_of_order, skipped, advance)
        for row in scan(rows, PRESETS[preset]):
            flagged += 1
            if as_json:
                click.echo(json.dumps({"time": row.time.isoformat(), "value": row.value,
                                       "expected": row.expected, "lower": row.lower,
                                       "upper": row.upper, "score": round(row.score, 3),
                                       "kind": row.kind, "reason": row.reason}))
            else:
                found.add_row(row.time.isoformat(), f"{row.value:g}", f"{row.expected:.6g}",
                              f"{row.lower:.6g} to {row.upper:.6g}", f"{row.score:.2f}",
                              row.reason)
    if flagged and not as_json:
        print_out(found)
    note = f"; {len(skipped)} rows out of time order skipped" if skipped else ""
    click.echo(f"{file}: {flagged} flagged ({preset} preset){note}", err=True)
    if flagged:
        sys.exit(1)

