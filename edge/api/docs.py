"""The /docs page: the box has no internet, so no CDN-hosted UI. A small hand-written page
(edge/api/static: HTML, CSS, JS, shipped as package data) renders /api/v1/openapi.json and
sends requests with fetch. The three files are inlined into one answer so the page needs no
extra public routes and loads in a single request besides the document itself.

A Content-Security-Policy pins the inlined script and style by hash and lets the page talk
to its own origin only: the browser itself refuses anything from another host.
"""

from __future__ import annotations

import base64
import hashlib
import re
from importlib import resources

_MARKERS = ("/*DOCS_CSP*/", "/*DOCS_CSS*/", "/*DOCS_JS*/")


def _asset(name: str) -> str:
    return (resources.files("edge") / "api" / "static" / name).read_text(encoding="utf-8")


def _sha256(text: str) -> str:
    return "'sha256-" + base64.b64encode(hashlib.sha256(text.encode()).digest()).decode() + "'"


def build_page() -> str:
    """docs.html with docs.css, docs.js and the policy allowing exactly them put in place."""
    css, js, page = _asset("docs.css"), _asset("docs.js"), _asset("docs.html")
    # an inlined asset must not end its own <style>/<script> element early
    if "</style" in css.lower() or "</script" in js.lower():
        raise ValueError("docs assets must not contain a closing </style> or </script> tag")
    missing = [m for m in _MARKERS if m not in page]
    if missing:
        raise ValueError(f"docs.html lacks the marker(s) {missing}")
    page = page.replace("/*DOCS_CSS*/", css).replace("/*DOCS_JS*/", js)
    style = re.search(r"<style>(.*?)</style>", page, re.S)
    script = re.search(r"<script>(.*?)</script>", page, re.S)
    assert style is not None and script is not None  # the markers sit inside them
    policy = (
        "default-src 'none'; connect-src 'self'; img-src 'self' data:; base-uri 'none'; "
        f"form-action 'none'; style-src {_sha256(style.group(1))}; "
        f"script-src {_sha256(script.group(1))}"
    )
    return page.replace("/*DOCS_CSP*/", policy)


DOCS_HTML = build_page()
