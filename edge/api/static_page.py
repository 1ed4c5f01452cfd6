"""Self-contained pages from `edge/api/static` (shipped as package data): the stylesheet and
the script are inlined into the HTML shell, and a Content-Security-Policy pins exactly those
two by hash and lets the page talk to its own origin only, so the browser itself refuses
anything from another host. Used by /docs and /console; a box has no CDN to load from.
"""

from __future__ import annotations

import base64
import hashlib
import re
from importlib import resources


def asset(name: str) -> str:
    """One file of edge/api/static, as text."""
    return (resources.files("edge") / "api" / "static" / name).read_text(encoding="utf-8")


def csp_hash(text: str) -> str:
    """The CSP source expression that allows exactly this inline style or script."""
    return "'sha256-" + base64.b64encode(hashlib.sha256(text.encode()).digest()).decode() + "'"


def inline_page(
    stem: str, *, css_marker: str, js_marker: str, csp_marker: str, img_src: str
) -> tuple[str, str]:
    """(`stem`.html with `stem`.css and `stem`.js put in place and its policy filled in,
    that policy). The HTML shell carries the three markers inside <style>, <script> and its
    CSP <meta>."""
    css, js, page = asset(f"{stem}.css"), asset(f"{stem}.js"), asset(f"{stem}.html")
    # an inlined asset must not end its own <style>/<script> element early
    if "</style" in css.lower() or "</script" in js.lower():
        raise ValueError(f"{stem} assets must not contain a closing </style> or </script> tag")
    missing = [m for m in (css_marker, js_marker, csp_marker) if m not in page]
    if missing:
        raise ValueError(f"{stem}.html lacks the marker(s) {missing}")
    page = page.replace(css_marker, css).replace(js_marker, js)
    style = re.search(r"<style>(.*?)</style>", page, re.S)
    script = re.search(r"<script>(.*?)</script>", page, re.S)
    if style is None or script is None:
        raise ValueError(f"{stem}.html must hold its markers inside <style> and <script>")
    policy = (
        f"default-src 'none'; connect-src 'self'; img-src {img_src}; base-uri 'none'; "
        f"form-action 'none'; style-src {csp_hash(style.group(1))}; "
        f"script-src {csp_hash(script.group(1))}"
    )
    return page.replace(csp_marker, policy), policy
