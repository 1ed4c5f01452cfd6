"""Per-request inference: the aiohttp glue between a handler and the `Admission` pool.

A handler calls `run_inference(request, fn, ...)` (or holds `admitted(request)` around
several calls): 503 until the models are warm, 429 at once when the queue is full, and the
blocking work runs in the pool, never on the event loop.
"""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator, Callable
from typing import Any, TypeVar

from aiohttp import web

from edge.api.state import ADMISSION, ADMITTED, READY
from edge.errors import EdgeError

T = TypeVar("T")


def _app_of(request_or_app: web.Request | web.Application) -> web.Application:
    return request_or_app if isinstance(request_or_app, web.Application) else request_or_app.app


def check_ready(app: web.Application) -> None:
    """503 while models load. (Requests arriving after shutdown began are refused by the
    middleware; those already in flight may still run inference to finish.)"""
    state = app[READY]
    if not state.models_ready:
        raise EdgeError(503, f"service unavailable: {state.reason}")


@contextlib.asynccontextmanager
async def admitted(request: web.Request) -> AsyncIterator[None]:
    """Hold one admission slot for a whole handler (several inference calls, one slot)."""
    app = request.app
    check_ready(app)
    if request.get(ADMITTED):
        yield
        return
    with app[ADMISSION].slot():
        request[ADMITTED] = True
        try:
            yield
        finally:
            request[ADMITTED] = False


async def run_inference(
    request_or_app: web.Request | web.Application, fn: Callable[..., T], *args: Any
) -> T:
    """Run blocking `fn(*args)` in the inference pool.

    503 when not ready; 429 at once when `queue_limit` calls are already admitted (unless
    this request already holds a slot via `admitted`).
    """
    app = _app_of(request_or_app)
    check_ready(app)
    adm = app[ADMISSION]
    if isinstance(request_or_app, web.Request) and request_or_app.get(ADMITTED):
        return await adm.run(fn, *args)
    with adm.slot():
        return await adm.run(fn, *args)
