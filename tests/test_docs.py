"""The docs show what the code does: demo samples match a real run, snippets validate."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from monitor.config import load_config
from tests.conftest import DemoRun

ROOT = Path(__file__).resolve().parent.parent
PAGES = [ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md"))]
BLOCK = re.compile(r"<!-- demo-output -->\s*```[^\n]*\n(.*?)```\s*<!-- /demo-output -->", re.S)
ELIDED = "..."  # a sample line of its own: lines left out here
CUT = "…"  # a sample line ending in it: the real line starts with what comes before


def demo_samples() -> list[tuple[str, int, str]]:
    """(page, block number, text) of every ``<!-- demo-output -->`` block in the docs."""
    return [(page.relative_to(ROOT).as_posix(), n, match.group(1))
            for page in PAGES for n, match in enumerate(BLOCK.finditer(page.read_text("utf-8")))]


def unmatched_lines(sample: str, output: str) -> list[str]:
    """Sample lines that do not appear, in this order, in the real output.

    Whitespace at either end of a line is ignored (the daily summary is indented in the
    demo's output), but not inside it: the run table's columns must line up as shown.
    """
    real = [line.strip() for line in output.splitlines()]
    missing: list[str] = []
    at = 0
    for raw in sample.splitlines():
        want = raw.strip()
        if not want or want == ELIDED:
            continue
        prefix = want[:-1] if want.endswith(CUT) else None
        found = next((i for i in range(at, len(real))
                      if real[i] == want or (prefix is not None and real[i].startswith(prefix))),
                     None)
        if found is None:
            missing.append(raw)
        else:
            at = found + 1
    return missing


def test_docs_have_demo_samples() -> None:
    pages = {page for page, _, _ in demo_samples()}
    assert "README.md" in pages and "docs/alerting.md" in pages


@pytest.mark.parametrize(("page", "block", "sample"), demo_samples(),
                         ids=[f"{p}#{n}" for p, n, _ in demo_samples()])
def test_demo_sample_matches_a_real_run(demo_run: DemoRun, page: str, block: int,
                                        sample: str) -> None:
    shown = [line for line in sample.splitlines() if line.strip() not in ("", ELIDED)]
    assert len(shown) >= 10, f"{page}: demo-output block {block} shows almost nothing"
    missing = unmatched_lines(sample, demo_run.output)
    assert not missing, (
        f"{page}: demo-output block {block} is stale; these lines are not in a real "
        "`phasewatch demo` run's output (in this order):\n" + "\n".join(missing)
        + "\n\nThe real output:\n" + demo_run.output
    )


def test_a_stale_sample_fails() -> None:
    output = "a\n  b 1\nc\n"
    assert unmatched_lines("a\n...\nc", output) == []
    assert unmatched_lines("  b …", output) == []
    assert unmatched_lines("b 2", output) == ["b 2"]  # a changed figure
    assert unmatched_lines("c\na", output) == ["a"]  # lines out of order


def test_readme_is_a_front_page() -> None:
    size = len((ROOT / "README.md").read_bytes())
    assert size <= 12_500, f"README.md is {size} bytes: move detail into docs/"


def test_readme_config_snippet_validates(tmp_path: Path) -> None:
    readme = (ROOT / "README.md").read_text("utf-8")
    (snippet,) = [s for s in re.findall(r"```yaml\n(.*?)```", readme, re.S)
                  if s.startswith("version: 1")]
    path = tmp_path / "pipeline.yaml"
    path.write_text(snippet, "utf-8")
    config = load_config(str(path))
    assert [p.id for p in config.pipelines] == ["nba"]
