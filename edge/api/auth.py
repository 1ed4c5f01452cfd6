"""api-key authentication middleware: 401 for a missing or unknown key, then the per-key
rate limit (429). The keys themselves are `edge.api.keyring`."""

from __future__ import annotations

from collections.abc import Awaitable, Callable

from aiohttp import web

from edge.api.console_session import session_secret
from edge.api.state import ADMISSION, API_KEY_ID, INSTANCE, KEYS, SETTINGS
from edge.errors import EdgeError

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]

#: Paths served without a key (api.md §6). /metrics is added unless metrics_need_key.
PUBLIC_PATHS = frozenset({"/healthz", "/readyz", "/api/v1/openapi.json", "/docs"})
HEADER_NAMES = ("api-key", "x-api-key")  # aiohttp header lookup is case-insensitive


def is_public(request: web.Request) -> bool:
    resource = request.match_info.route.resource
    path = resource.canonical if resource is not None else request.path
    if path in PUBLIC_PATHS or path == "/console" or path.startswith("/console/"):
        return True  # the console's own routes check its session themselves
    return path == "/metrics" and not request.app[SETTINGS].server.metrics_need_key


@web.middleware
async def auth_middleware(request: web.Request, handler: Handler) -> web.StreamResponse:
    """401 for a missing/unknown key; then the per-key rate limit (429)."""
    if request.match_info.http_exception is not None or is_public(request):
        return await handler(request)  # unknown routes answer 404/405 whatever the key
    presented = None
    for name in HEADER_NAMES:
        presented = request.headers.get(name)
        if presented:
            break
    ring = request.app[KEYS]
    if not presented:  # a console page: its session cookie + CSRF header stand for its key
        presented = session_secret(request, ring)
    if not presented:
        raise EdgeError(401, f"missing api-key header (api-key or x-api-key); send {ring.where}")
    key = ring.lookup(presented.strip())
    if key is None:
        raise EdgeError(401, f"unknown api-key; send {ring.where}")
    request[INSTANCE] = key.instance
    request[API_KEY_ID] = key.key_id
    request.app[ADMISSION].check_rate(key.key_id)
    return await handler(request)
