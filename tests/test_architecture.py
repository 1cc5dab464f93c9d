"""The import graph: no circles, and the actuator's config is light.

The layer and forbidden-import contracts are import-linter's (``[tool.importlinter]`` in
pyproject.toml, run by scripts/test). These tests check what its contracts cannot say.
"""

from __future__ import annotations

import subprocess
import sys
from collections.abc import Iterator

import grimp
import pytest

PACKAGES = ("monitor", "slo", "alerts", "phasewatch_client")
Graph = dict[str, set[str]]


@pytest.fixture(scope="module")
def runtime_graph() -> Graph:
    """Who imports whom when the code runs.

    Imports under ``if TYPE_CHECKING:`` are left out: they never execute, so they cannot
    make a circle at run time. Importing ``a.b.c`` also runs ``a/__init__.py`` and
    ``a/b/__init__.py``, so each import is an edge to those packages too (grimp records only
    the module named), except to the importer's own packages, which are loaded already.
    """
    graph = grimp.build_graph(*PACKAGES, exclude_type_checking_imports=True, cache_dir=None)
    edges: Graph = {}
    for module in graph.modules:
        own = _packages_of(module)
        targets: set[str] = set()
        for imported in graph.find_modules_directly_imported_by(module):
            targets.add(imported)
            targets |= _packages_of(imported) - own - {module}
        edges[module] = targets
    return edges


def _packages_of(module: str) -> set[str]:
    parts = module.split(".")
    return {".".join(parts[:i]) for i in range(1, len(parts))}


def _circles(edges: Graph) -> list[list[str]]:
    """Strongly connected components of more than one module (Tarjan, iterative)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    found: list[list[str]] = []
    for start in sorted(edges):
        if start in index:
            continue
        work: list[tuple[str, Iterator[str]]] = [(start, iter(sorted(edges[start])))]
        index[start] = low[start] = len(index)
        stack.append(start)
        on_stack.add(start)
        while work:
            node, children = work[-1]
            child = next(children, None)
            if child is not None:
                if child not in index:
                    index[child] = low[child] = len(index)
                    stack.append(child)
                    on_stack.add(child)
                    work.append((child, iter(sorted(edges.get(child, ())))))
                elif child in on_stack:
                    low[node] = min(low[node], index[child])
                continue
            work.pop()
            if work:
                low[work[-1][0]] = min(low[work[-1][0]], low[node])
            if low[node] == index[node]:
                component = []
                while True:
                    member = stack.pop()
                    on_stack.discard(member)
                    component.append(member)
                    if member == node:
                        break
                if len(component) > 1:
                    found.append(sorted(component))
    return found


def _path(edges: Graph, start: str, members: set[str]) -> list[str]:
    """One circle through ``start`` inside ``members`` (breadth-first), for the message."""
    paths = {child: [start, child] for child in edges[start] if child in members}
    queue = list(paths)
    while queue:
        node = queue.pop(0)
        if node == start:
            return paths[node]
        for child in sorted(edges[node]):
            if child in members and child not in paths:
                paths[child] = [*paths[node], child]
                queue.append(child)
    return [start]


def test_circles_are_found() -> None:
    edges: Graph = {"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}, "e": {"e", "d"}}
    assert _circles(edges) == [["a", "b", "c"]]
    assert _path(edges, "a", {"a", "b", "c"}) == ["a", "b", "c", "a"]


def test_package_inits_count_as_imports() -> None:
    assert _packages_of("monitor.actuator.config") == {"monitor", "monitor.actuator"}


def test_no_import_circles(runtime_graph: Graph) -> None:
    circles = _circles(runtime_graph)
    described = [" -> ".join(_path(runtime_graph, c[0], set(c))) for c in circles]
    assert circles == [], "import circles:\n" + "\n".join(described)


def _loaded_by(module: str) -> set[str]:
    """Every phasewatch module that ``import module`` loads, in a fresh interpreter."""
    code = (f"import sys, {module}; "
            "print('\\n'.join(m for m in sys.modules if m.split('.')[0] in {'monitor', 'slo', 'alerts'}))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    return set(out.stdout.split())


def test_actuator_config_loads_no_actuator_runtime() -> None:
    loaded = _loaded_by("monitor.actuator.config")
    actuator = sorted(m for m in loaded if m.startswith("monitor.actuator."))
    assert actuator == ["monitor.actuator.config"]
    assert not any(m == "monitor.app" or m.startswith("monitor.app.") for m in loaded)
