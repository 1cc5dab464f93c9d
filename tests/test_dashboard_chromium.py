"""The dashboard page in a real browser: headless Chromium's screenshot shows the run board,
the SLO budget bars and history, and the duration charts, each in its section and colour.

``PHASEWATCH_UPDATE_SCREENSHOT=1 .venv/bin/pytest tests/test_dashboard_chromium.py`` also
writes the demo's screenshot to ``docs/img/dashboard.png`` (the whole page, in the docs)
and ``docs/img/dashboard-top.png`` (down to the SLOs, in the README).
"""

from __future__ import annotations

import math
import os
import subprocess
from collections import Counter
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from monitor.app.http.server import create_app, serving
from monitor.app.page.slos import BAR_WIDTH
from monitor.app.page.style import COLOURS, SERIES
from monitor.app.phasewatch import Phasewatch
from tests.conftest import DemoRun, require_binary
from tests.factories import body

ROOT = Path(__file__).resolve().parent.parent
DOCS_IMAGE = ROOT / "docs" / "img" / "dashboard.png"
WIDTH = 1280
RGB = tuple[int, int, int]


@pytest.fixture(scope="module")
def chromium() -> str:
    return require_binary("chromium", packages="chromium")


def screenshot(chromium: str, url: str, workdir: Path, height: int) -> Image.Image:
    """The page at ``url`` in a 1280 px wide window, as TESTING.md runs Chromium (with its own
    profile, and none of its own traffic to the network)."""
    out = workdir / "shot.png"
    subprocess.run([
        chromium, "--headless=new", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage",
        "--hide-scrollbars", f"--window-size={WIDTH},{height}", "--force-device-scale-factor=1",
        f"--user-data-dir={workdir / 'profile'}", "--no-first-run", "--no-default-browser-check",
        "--disable-background-networking", "--disable-component-update", "--disable-sync",
        "--disable-extensions", f"--screenshot={out}", url,
    ], check=True, capture_output=True, timeout=120)
    return Image.open(out).convert("RGB")


def rgb(hex_colour: str) -> RGB:
    value = int(hex_colour.lstrip("#"), 16)
    return (value >> 16, (value >> 8) & 0xFF, value & 0xFF)


def sections(image: Image.Image) -> list[tuple[int, int]]:
    """(top, bottom) of each white section box, found down the column just inside their left
    edge (the page's background is grey)."""
    x = (WIDTH - 1240) // 2 + 16 + 6  # main's margin and padding, 6 px into the section
    white = [image.getpixel((x, y)) == (255, 255, 255) for y in range(image.height)]
    out, start = [], None
    for y, is_white in enumerate([*white, False]):
        if is_white and start is None:
            start = y
        elif not is_white and start is not None:
            if y - start >= 40:
                out.append((start, y))
            start = None
    return out


class Band:
    """The pixels of one horizontal band of the screenshot."""

    def __init__(self, image: Image.Image, top: int, bottom: int) -> None:
        self.pixels = np.asarray(image.crop((0, top, image.width, bottom)), dtype=np.int16)

    def count(self, colour: str, tolerance: int = 4) -> int:
        """Pixels of ``colour`` (within ``tolerance`` per channel, for anti-aliased edges)."""
        near = np.abs(self.pixels - np.array(rgb(colour))) <= tolerance
        return int(near.all(axis=2).sum())

    def runs(self, colour: str) -> Counter[int]:
        """How often each length of horizontal run of exactly ``colour`` occurs, all rows."""
        exact = (self.pixels == np.array(rgb(colour))).all(axis=2).astype(np.int8)
        edges = np.diff(np.pad(exact, ((0, 0), (1, 1))), axis=1)  # +1 a run starts, -1 it ends
        starts, ends = np.nonzero(edges == 1)[1], np.nonzero(edges == -1)[1]  # row by row
        return Counter((ends - starts).tolist())


def boxes(image: Image.Image, x: int, top: int, bottom: int) -> list[tuple[int, int]]:
    """(top, bottom) of each box whose left border (``COLOURS["line"]``) crosses column ``x``
    for at least 100 px between ``top`` and ``bottom``: the charts' frames."""
    line = rgb(COLOURS["line"])
    out, start = [], None
    for y in range(top, bottom + 1):
        on = y < bottom and image.getpixel((x, y)) == line
        if on and start is None:
            start = y
        elif not on and start is not None:
            if y - start >= 100:
                out.append((start, y))
            start = None
    return out


def crop_to_page(image: Image.Image) -> Image.Image:
    """The screenshot without the empty background below the footer."""
    background = rgb(COLOURS["page"])
    bottom = image.height
    while bottom > 1 and all(image.getpixel((x, bottom - 1)) == background
                             for x in range(0, image.width, 8)):
        bottom -= 1
    return image.crop((0, 0, image.width, min(bottom + 16, image.height)))


def save_picture(image: Image.Image, path: Path) -> None:
    """A picture for the docs in 128 colours (the octree keeps the legend's small swatches)."""
    image.quantize(colors=128, method=Image.Quantize.FASTOCTREE).save(path, optimize=True)


def test_the_demo_page_shows_board_bars_and_charts(
    chromium: str, demo_run: DemoRun, tmp_path: Path
) -> None:
    page = demo_run.out_dir / "dashboard.html"
    image = screenshot(chromium, page.resolve().as_uri(), tmp_path, height=3800)
    found = sections(image)
    assert len(found) == 4, found  # runs, SLOs, alerts (beside actions), durations
    runs, slos, alerts = (Band(image, top, bottom) for top, bottom in found[:3])
    c = COLOURS
    # The board: rows of complete phases, the degraded phase2 of 01-22, pending cells; no
    # phase failed for good in the demo's last days (red only in the legend's 10 px swatch).
    assert runs.count(c["good"]) > 30_000
    assert 1_000 < runs.count(c["warn"]) < 4_000
    assert runs.count(c["idle"]) > 10_000
    assert runs.count(c["bad"]) < 100
    # SLO bars, rows of exactly their fill: the breached SLO's red across, the warning one's
    # 17% in amber (0.2 of 1.2 runs left), the seven ok ones green across; the history's red
    # day (the late run) besides.
    red, amber, green = (slos.runs(c[tone]) for tone in ("bad", "warn", "good"))
    assert red[BAR_WIDTH] >= 8 and amber[round(BAR_WIDTH / 6)] >= 8 and green[BAR_WIDTH] >= 7 * 8
    assert slos.count(c["bad"]) > BAR_WIDTH * 12 + 7 * 12
    # Alerts: the budget ticket's amber badge (a warning since issue 12), nothing critical.
    assert alerts.count(c["bad"]) < 100 and alerts.count(c["warn"]) > 300
    # Charts: a frame per chart down the first column, every processor's colour in them, and
    # the three anomaly rings (anti-aliased strokes: near the tone, not exactly it).
    section_left = (WIDTH - 1240) // 2 + 16 + 1 + 14
    frames = boxes(image, section_left, *found[3])
    charts_drawn = page.read_text("utf-8").count('<figure class="chart">')
    assert charts_drawn >= 12 and len(frames) == math.ceil(charts_drawn / 3)
    plots = Band(image, frames[0][0], frames[-1][1])
    assert plots.count(SERIES[0], tolerance=0) > 600
    assert plots.count(SERIES[4], tolerance=0) > 100  # five processors in one chart
    assert plots.count(c["bad"], tolerance=40) > 40 and plots.count(c["warn"], tolerance=40) > 40
    first_row = Band(image, *frames[0])  # the rings are on phase3 · overnight, in the first row
    assert first_row.count(c["bad"], tolerance=40) == plots.count(c["bad"], tolerance=40)
    if os.environ.get("PHASEWATCH_UPDATE_SCREENSHOT") == "1":  # the docs' pictures
        DOCS_IMAGE.parent.mkdir(parents=True, exist_ok=True)
        save_picture(crop_to_page(image), DOCS_IMAGE)
        top = image.crop((0, 0, WIDTH, found[1][1] + 12))  # down to the SLOs, for the README
        save_picture(top, DOCS_IMAGE.with_name("dashboard-top.png"))


@pytest.fixture
def served(app: Phasewatch) -> Iterator[str]:
    with serving(create_app(app, None)) as url:
        yield url


def test_the_served_page_is_styled_under_its_policy_and_loads_nothing_else(
    chromium: str, app: Phasewatch, served: str, tmp_path: Path
) -> None:
    app.collector.ingest_body(body(*[
        {"event_id": f"c{i}", "pipeline": "nba", "run_date": "2026-01-17", "mode": "overnight",
         "phase": phase, "status": status, "timestamp": at, **extra}
        for i, (phase, status, at, extra) in enumerate([
            ("phase1", "started", "2026-01-18T05:00:00Z", {}),
            ("phase1", "succeeded", "2026-01-18T05:30:00Z", {}),
            ("phase2", "failed", "2026-01-18T05:45:00Z",
             {"processor": "p2_odds_game_lines", "error": "HTTP 503"}),
        ])]))
    image = screenshot(chromium, served + "/", tmp_path, height=900)
    runs = Band(image, *sections(image)[0])
    # Only the header's policy lets the inline stylesheet apply: the cells are coloured.
    assert runs.count(COLOURS["good"]) > 1_000 and runs.count(COLOURS["bad"]) > 1_000
    # The browser asked for nothing but the page: a favicon or asset request would be a 404,
    # and every 404 is counted as a rejection.
    assert sum(s.value for f in app.metrics.registry.collect()
               if f.name == "phasewatch_events_rejected" for s in f.samples
               if s.name.endswith("_total")) == 0
