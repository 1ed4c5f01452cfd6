"""docs/api.md stays the reference of what the service really serves and answers."""

from __future__ import annotations

import re
from pathlib import Path

from aiohttp import web

from edge.api.faces import setup_face_routes
from edge.api.liveness import setup_liveness_routes
from edge.api.ops import setup_ops_routes
from edge.api.state import SETTINGS
from edge.config import load_settings
from edge.errors import ERROR_CATALOGUE

DOC = Path(__file__).resolve().parents[1] / "docs" / "api.md"


def _rows(text: str) -> set[tuple[str, str, str]]:
    """(HTTP, code, name) of every row of the error code table."""
    table = text.split("## Error code table", 1)[1]
    return set(re.findall(r"^\| (\d{3}) \| (\d{3}) \| `([a-z_]+)` \|", table, re.M))


def test_every_error_code_is_documented_with_its_status_and_name() -> None:
    rows = _rows(DOC.read_text(encoding="utf-8"))
    expected = {(str(http), str(code), name) for code, (http, name) in ERROR_CATALOGUE.items()}
    assert expected <= rows, sorted(expected - rows)
    assert ("404", "404", "route_not_found") in rows


def test_every_route_is_documented() -> None:
    app = web.Application()
    app[SETTINGS] = load_settings(None)
    setup_face_routes(app)
    setup_liveness_routes(app)
    setup_ops_routes(app)
    text = DOC.read_text(encoding="utf-8")
    routes = {
        (r.method, r.resource.canonical)
        for r in app.router.routes()
        if r.method != "HEAD" and r.resource is not None
    }
    assert len(routes) >= 15
    missing = []
    for method, path in sorted(routes):
        short = path.removeprefix("/api/v1")
        if f"{method} {path}" not in text and f"{method} {short}" not in text:
            missing.append(f"{method} {path}")
    assert missing == []
