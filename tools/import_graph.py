"""The package import graph of edge-face, and the rule it must keep: dependencies point one way.

    python tools/import_graph.py            # violations only (exit 1 if any)
    python tools/import_graph.py --graph    # every unit and what it imports

Imports are read with `ast` from the source (no import runs), including imports inside
functions and under `if TYPE_CHECKING:`: an import hidden in a function still ties the two
modules together, it only moves the failure to run time. A *unit* is a sub-package of
`edge` (`edge.api`, `edge.vision`, ...) or a top-level module (`edge.config`).

The rule: a unit imports only units in its own layer or below (never above), the units form
no cycle, and no module imports `benchmarks` (measurement code outside the product).
`tests/test_import_graph.py` runs the same check; `KNOWN_VIOLATIONS` lists the edges still
being reworked, each with its reason, so that everything else is held strictly.
"""

from __future__ import annotations

import argparse
import ast
import sys
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
PACKAGES = ("edge", "edge_face")

#: Top layer first. A unit may import units of its own layer or of any layer below.
LAYERS: list[tuple[str, tuple[str, ...]]] = [
    ("entry points", ("edge.cli", "edge.commands", "edge_face")),
    ("front ends", ("edge.api", "edge.evaluation", "edge.client")),
    ("devices", ("edge.camera", "edge.mqtt", "edge.sync")),
    ("services", ("edge.engine", "edge.recognition")),
    ("domain", ("edge.vision", "edge.store")),
    ("runtime", ("edge.runtime",)),
    ("imaging", ("edge.imaging",)),
    (
        "foundation",
        (
            "edge",
            "edge.config",
            "edge.errors",
            "edge.usererror",
            "edge.logsetup",
            "edge.metrics",
            "edge.timefmt",
            "edge.sdnotify",
            "edge.vendor_telemetry",
        ),
    ),
]

#: Module prefixes that no product module may import.
FORBIDDEN = ("benchmarks", "tests", "tools")

#: (importing module, imported unit): reason. Keep it short; delete a line once it is fixed.
#: None left: keep it empty.
KNOWN_VIOLATIONS: dict[tuple[str, str], str] = {}

#: Module import cycles still being removed; each set must match a cycle found exactly, and
#: any other module cycle fails. None left: keep it empty.
KNOWN_MODULE_CYCLES: list[frozenset[str]] = []


@dataclass(frozen=True)
class Edge:
    """`source` (a module) imports `target` (a module) at `line`."""

    source: str
    target: str
    line: int


def module_name(path: Path, root: Path = ROOT) -> str:
    parts = list(path.relative_to(root).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


def iter_modules(root: Path = ROOT) -> Iterator[tuple[str, Path]]:
    for package in PACKAGES:
        for path in sorted((root / package).rglob("*.py")):
            yield module_name(path, root), path


def imports_of(module: str, path: Path) -> Iterator[Edge]:
    """Every module `module` imports, wherever in the file the import statement sits."""
    is_package = path.name == "__init__.py"
    tree = ast.parse(path.read_text(encoding="utf-8"), str(path))
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            for alias in node.names:
                yield Edge(module, alias.name, node.lineno)
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                anchor = module.split(".")
                anchor = anchor if is_package else anchor[:-1]
                anchor = anchor[: len(anchor) - (node.level - 1)]
                base = ".".join([*anchor, base] if base else anchor)
            for alias in node.names:
                # `from edge.vision import pipeline` imports the submodule when there is one.
                yield Edge(module, f"{base}.{alias.name}", node.lineno)


def unit_of(module: str) -> str | None:
    """The layered unit holding `module`, or None for a module outside the product."""
    units = sorted((u for _, us in LAYERS for u in us), key=len, reverse=True)
    for unit in units:
        # The root `edge` is only edge/__init__.py; its sub-modules are units of their own.
        if module == unit or (unit != "edge" and module.startswith(unit + ".")):
            return unit
    if module.split(".")[0] in PACKAGES:
        return module.split(".")[0] + "." + module.split(".")[1]  # unlisted: reported
    return None


def layer_of(unit: str) -> int:
    for rank, (_, units) in enumerate(LAYERS):
        if unit in units:
            return rank
    raise KeyError(unit)


def all_edges(root: Path = ROOT) -> list[Edge]:
    """Every import of the product, its target resolved to the module it loads.

    `from edge import __version__` names `edge.__version__`, which is the module `edge`.
    """
    modules = {name for name, _ in iter_modules(root)}
    edges = []
    for module, path in iter_modules(root):
        for e in imports_of(module, path):
            target = e.target
            while target not in modules and "." in target:
                target = target.rpartition(".")[0]
            if target in modules:
                e = Edge(e.source, target, e.line)
            edges.append(e)
    return edges


def module_graph(edges: Iterable[Edge], modules: set[str]) -> dict[str, set[str]]:
    """Module -> modules it imports (`from edge.x import name` counts as importing edge.x)."""
    graph: dict[str, set[str]] = {}
    for e in edges:
        target = e.target
        while target and target not in modules:
            target = target.rpartition(".")[0]
        graph.setdefault(e.source, set())
        if target and target != e.source:
            graph[e.source].add(target)
    return graph


def unit_graph(edges: Iterable[Edge]) -> dict[str, set[str]]:
    graph: dict[str, set[str]] = {}
    for e in edges:
        src, dst = unit_of(e.source), unit_of(e.target)
        if src is None:
            continue
        graph.setdefault(src, set())
        if dst is not None and dst != src:
            graph[src].add(dst)
    return graph


def find_cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """One cycle per strongly connected component larger than one node (Tarjan)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    components: list[list[str]] = []

    def visit(v: str) -> None:
        index[v] = low[v] = len(index)
        stack.append(v)
        on_stack.add(v)
        for w in sorted(graph.get(v, ())):
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in on_stack:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            component = []
            while True:
                w = stack.pop()
                on_stack.discard(w)
                component.append(w)
                if w == v:
                    break
            if len(component) > 1:
                components.append(sorted(component))

    for v in sorted(graph):
        if v not in index:
            visit(v)
    return components


def violations(root: Path = ROOT) -> list[str]:
    """Every broken rule as one line; KNOWN_VIOLATIONS are left out (and must still occur)."""
    edges = all_edges(root)
    out: list[str] = []
    seen_known: set[tuple[str, str]] = set()
    for e in edges:
        if e.target.split(".")[0] in FORBIDDEN:
            out.append(f"{e.source}:{e.line} imports {e.target} (not part of the product)")
            continue
        src, dst = unit_of(e.source), unit_of(e.target)
        if src is None or dst is None or src == dst:
            continue
        try:
            upward = layer_of(dst) < layer_of(src)
        except KeyError as missing:
            out.append(f"{missing.args[0]} is in no layer: add it to LAYERS in this file")
            continue
        if not upward:
            continue
        known = (e.source, dst) if (e.source, dst) in KNOWN_VIOLATIONS else (src, dst)
        if known in KNOWN_VIOLATIONS:
            seen_known.add(known)
            continue
        out.append(f"{e.source}:{e.line} imports {e.target}: {src} may not import {dst} (upward)")
    for a, b in KNOWN_VIOLATIONS.keys() - seen_known:
        out.append(f"KNOWN_VIOLATIONS lists {a} -> {b}, which no longer occurs: delete the line")
    for unit_cycle in find_cycles(unit_graph(edges)):
        out.append(f"import cycle between units: {' <-> '.join(unit_cycle)}")
    modules = {name for name, _ in iter_modules(root)}
    cycles = [frozenset(c) for c in find_cycles(module_graph(edges, modules))]
    for cycle in cycles:
        if cycle not in KNOWN_MODULE_CYCLES:
            out.append(f"import cycle between modules: {' <-> '.join(sorted(cycle))}")
    for listed in KNOWN_MODULE_CYCLES:
        if listed not in cycles:
            out.append(
                f"KNOWN_MODULE_CYCLES lists {' <-> '.join(sorted(listed))}, "
                "which no longer occurs as such: delete or update the entry"
            )
    return sorted(set(out))


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--graph", action="store_true", help="print every unit's imports")
    args = parser.parse_args(argv)
    if args.graph:
        graph = unit_graph(all_edges())
        for name, units in LAYERS:
            print(f"[{name}]")
            for unit in units:
                if unit in graph:
                    print(f"  {unit} -> {', '.join(sorted(graph[unit])) or '-'}")
    found = violations()
    for line in found:
        print(line, file=sys.stderr)
    return 1 if found else 0


if __name__ == "__main__":
    raise SystemExit(main())
