"""Wiring inside edge.api: the plain classes know nothing of aiohttp or of the app keys, and
no module-level import closes a circle (a `TYPE_CHECKING` import counts: it is a circle)."""

from __future__ import annotations

import ast
from pathlib import Path

API = Path(__file__).resolve().parents[2] / "edge" / "api"
#: classes the app keys hold: importable without aiohttp and without the keys
PLAIN = ("admission", "keyring")


def imports(module: str) -> set[str]:
    """The edge modules `module` imports at module level, TYPE_CHECKING blocks included."""
    tree = ast.parse((API / f"{module}.py").read_text(encoding="utf-8"))
    out: set[str] = set()
    for node in tree.body:
        for sub in ast.walk(node) if isinstance(node, ast.If) else [node]:
            if isinstance(sub, ast.ImportFrom) and sub.module:
                out.add(sub.module)
                out.update(f"{sub.module}.{a.name}" for a in sub.names)
            elif isinstance(sub, ast.Import):
                out.update(a.name for a in sub.names)
    return out


def api_graph() -> dict[str, set[str]]:
    names = {p.stem for p in API.glob("*.py") if p.stem != "__init__"}
    return {
        n: {d.removeprefix("edge.api.") for d in imports(n) if d.removeprefix("edge.api.") in names}
        for n in names
    }


def test_plain_classes_import_neither_aiohttp_nor_app_state() -> None:
    for module in PLAIN:
        deps = imports(module)
        assert not {d for d in deps if d.startswith(("aiohttp", "edge.api"))}, (module, deps)


def test_no_import_circle_inside_the_api_package() -> None:
    graph = api_graph()
    assert "state" in graph and graph["admission"] == set()

    def reaches(start: str, goal: str, seen: set[str]) -> bool:
        return any(n == goal or reaches(n, goal, seen | {n}) for n in graph[start] - seen)

    circles = sorted(m for m in graph if reaches(m, m, set()))
    assert circles == [], circles


def test_no_type_checking_imports_in_the_api_package() -> None:
    for path in API.glob("*.py"):
        assert "TYPE_CHECKING" not in path.read_text(encoding="utf-8"), path.name
