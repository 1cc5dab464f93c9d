"""Terminal output of the CLI: tables that fit the width, progress on a terminal, plain text in pipes.

Tables are rich tables rendered to the width of the terminal (``COLUMNS`` when set, 80 when
stdout is not a terminal): long cells wrap, never widen the line. Output is plain text with
no colour codes unless stdout is a terminal. Progress goes to stderr and only when stderr
is a terminal, so piped and redirected output is exactly what it was without it.
"""

from __future__ import annotations

import io
import re
import sys
import textwrap
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path

from rich.console import Console, RenderableType
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn
from rich.table import Table

Advance = Callable[[int], None]


def stdout_console() -> Console:
    """A console on the (current) stdout: plain, no markup or highlighting of cell text."""
    return Console(file=sys.stdout, highlight=False, markup=False, emoji=False, soft_wrap=False)


def stderr_console() -> Console:
    """A console on the (current) stderr, for progress."""
    return Console(file=sys.stderr, highlight=False, markup=False, emoji=False)


def bare_table(*, show_header: bool = True) -> Table:
    """A table without borders or edge padding: columns two spaces apart."""
    return Table(box=None, pad_edge=False, show_edge=False, header_style="bold",
                 show_header=show_header)


def table(*headers: str, wrap: tuple[str, ...] = ()) -> Table:
    """A borderless table; columns named in ``wrap`` fold long text, the others never break."""
    t = bare_table()
    for name in headers:
        if name in wrap:
            t.add_column(name, overflow="fold", ratio=1)
        else:
            t.add_column(name, no_wrap=True, overflow="ellipsis")
    return t


def labelled_table() -> Table:
    """Label and text rows without a header: the label never breaks, the text folds."""
    t = bare_table(show_header=False)
    t.add_column(no_wrap=True)
    t.add_column(overflow="fold", ratio=1)
    return t


def natural_width(renderable: RenderableType) -> int:
    """How wide ``renderable`` is when nothing makes it narrower."""
    console = Console(width=1_000_000, color_system=None, highlight=False, markup=False)
    return console.measure(renderable).maximum


def render_text(*renderables: RenderableType, width: int | None = None) -> str:
    """Renderables as plain text lines no wider than ``width`` (default: the terminal's)."""
    width = width or stdout_console().width
    buffer = io.StringIO()
    console = Console(file=buffer, width=width, color_system=None, force_terminal=False,
                      highlight=False, markup=False, emoji=False, soft_wrap=False)
    for item in renderables:
        console.print(item)
    return "\n".join(line.rstrip() for line in buffer.getvalue().splitlines())


_MARKER = re.compile(r"^( *)(\[[a-z]+\] )?")


def fit_lines(text: str, width: int | None = None) -> str:
    """Text whose long lines wrap to ``width``, continued under the text after a ``[level]`` mark."""
    width = width or stdout_console().width
    out: list[str] = []
    for line in text.splitlines():
        if len(line) <= width:
            out.append(line)
            continue
        match = _MARKER.match(line)
        indent = len(match.group(0)) if match and match.group(2) else len(line) - len(line.lstrip()) + 2
        out.append(textwrap.fill(line, width=width, subsequent_indent=" " * min(indent, width // 2),
                                 break_on_hyphens=False))
    return "\n".join(out)


def print_out(*renderables: RenderableType) -> None:
    """Print to stdout: styled on a terminal, plain text otherwise, always within its width."""
    console = stdout_console()
    if not console.is_terminal:
        text = render_text(*renderables, width=console.width)
        sys.stdout.write(text + "\n")
        sys.stdout.flush()
        return
    for item in renderables:
        console.print(item)


@contextmanager
def progress(description: str, total: Callable[[], int | None],
             console: Console | None = None) -> Iterator[Advance]:
    """Yield ``advance(n)``; a progress bar on ``console`` (stderr) only when it is a terminal.

    ``total`` is asked only when the bar is drawn: counting costs a pass over the input that
    piped output does not need.
    """
    console = console or stderr_console()
    if not console.is_terminal:
        yield _ignore
        return
    columns = (TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(),
               TimeElapsedColumn())
    with Progress(*columns, console=console, transient=True) as bar:
        task = bar.add_task(description, total=total())
        yield lambda n: bar.advance(task, n)


def count_lines(path: Path, *, header: bool = False) -> int:
    """Non-blank lines of a text file, less its header line (a progress bar's total)."""
    with path.open("rb") as fh:
        count = sum(1 for line in fh if line.strip())
    return max(count - 1, 0) if header else count


def _ignore(_n: int) -> None:
    return None
