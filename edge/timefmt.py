"""The one wire form of a timestamp (api.md §0), shared by the API and the change log.

It lives at the bottom of the dependency graph, like `edge.errors`, so that the store's
change payloads and the API's entity objects cannot drift apart.
"""

from __future__ import annotations

from datetime import datetime, timezone


def iso_utc(t: datetime) -> str:
    """ISO-8601 UTC at second precision with a `Z` suffix; `t` must already be UTC."""
    return t.strftime("%Y-%m-%dT%H:%M:%SZ")


def iso_utc_ms(t: datetime) -> str:
    """ISO-8601 UTC at millisecond precision with a `Z` suffix (MQTT events, log lines)."""
    return t.astimezone(timezone.utc).isoformat(timespec="milliseconds").replace("+00:00", "Z")


def utc_now_ms() -> str:
    """Now, as `iso_utc_ms`."""
    return iso_utc_ms(datetime.now(timezone.utc))
