"""The one wire form of a timestamp (api.md §0), shared by the API and the change log.

It lives at the bottom of the dependency graph, like `edge.errors`, so that the store's
change payloads and the API's entity objects cannot drift apart.
"""

from __future__ import annotations

from datetime import datetime


def iso_utc(t: datetime) -> str:
    """ISO-8601 UTC at second precision with a `Z` suffix; `t` must already be UTC."""
    return t.strftime("%Y-%m-%dT%H:%M:%SZ")
