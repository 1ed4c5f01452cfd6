"""The /docs page: the box has no internet, so no CDN-hosted UI. A small hand-written page
(edge/api/static: HTML, CSS, JS, shipped as package data) renders /api/v1/openapi.json and
sends requests with fetch. The three files are inlined into one answer so the page needs no
extra public routes and loads in a single request besides the document itself.

A Content-Security-Policy pins the inlined script and style by hash and lets the page talk
to its own origin only (`edge.api.static_page`).
"""

from __future__ import annotations

from edge.api.static_page import inline_page


def build_page() -> str:
    """docs.html with docs.css, docs.js and the policy allowing exactly them put in place."""
    page, _ = inline_page(
        "docs",
        css_marker="/*DOCS_CSS*/",
        js_marker="/*DOCS_JS*/",
        csp_marker="/*DOCS_CSP*/",
        img_src="'self' data:",
    )
    return page


DOCS_HTML = build_page()
