"""The /docs page: the box has no internet, so no CDN-hosted UI. A small hand-written page
(edge/api/static: HTML, CSS, JS, shipped as package data) renders /api/v1/openapi.json and
sends requests with fetch. The three files are inlined into one answer so the page needs no
extra public routes and loads in a single request besides the document itself."""

from __future__ import annotations

from importlib import resources


def _asset(name: str) -> str:
    return resources.files("edge").joinpath("api", "static", name).read_text(encoding="utf-8")


def build_page() -> str:
    """docs.html with docs.css and docs.js put in place of their markers."""
    css, js = _asset("docs.css"), _asset("docs.js")
    # an inlined asset must not end its own <style>/<script> element early
    if "</style" in css.lower() or "</script" in js.lower():
        raise ValueError("docs assets must not contain a closing </style> or </script> tag")
    page = _asset("docs.html")
    if "/*DOCS_CSS*/" not in page or "/*DOCS_JS*/" not in page:
        raise ValueError("docs.html lacks the /*DOCS_CSS*/ or /*DOCS_JS*/ marker")
    return page.replace("/*DOCS_CSS*/", css).replace("/*DOCS_JS*/", js)


DOCS_HTML = build_page()
