"""The aiohttp application: components, middlewares and routes wired in one place.

The engine (models and store, built by `edge.engine`, the one composition site) lives in a
`cleanup_ctx`: opened when the server starts, closed on shutdown after the inference pool
drained. Models warm up in a background thread: /healthz answers at once, /readyz (and
every inference route) says 503 until warm-up finished. An engine without models (a sync
hub that does not answer the face API) is ready at once; inference routes say 503 with
`edge.engine.NO_MODELS`, which names the setting that turns them on.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import AsyncIterator, Callable
from dataclasses import replace
from typing import Any

from aiohttp import web

from edge.api import faces, liveness, models_route, ops
from edge.api.admission import Admission
from edge.api.auth import auth_middleware
from edge.api.console import add_console
from edge.api.keyring import load_keyring
from edge.api.middleware import error_middleware
from edge.api.routes import OpenApiRegistry
from edge.api.state import (
    ADMISSION,
    DEVICES,
    ENGINE,
    KEYS,
    OPENAPI,
    READY,
    SETTINGS,
    Devices,
    ReadyState,
)
from edge.config import Settings
from edge.engine import NO_MODELS, Engine, Models

log = logging.getLogger("edge.api")

#: every route the product serves, in registration order
ROUTE_TABLES = (ops.routes, faces.routes, models_route.routes, liveness.routes)
CleanupCtx = Callable[[web.Application], AsyncIterator[None]]

#: aiohttp parser backstops. The contract limits (8 KiB URI, 25 KiB headers) are enforced by
#: the middleware with a JSON answer; the parser limits sit above them so only absurd
#: requests reach the parser's own error (rendered as JSON too by `edge.api.server`).
PARSER_SLACK = 4


def parser_limits(settings: Settings) -> dict[str, Any]:
    """aiohttp connection-handler arguments.

    `auto_decompress` is off: a compressed body is refused with 415 by the middleware,
    never inflated. `keepalive_timeout` is aiohttp's idle timer between requests (its
    default is an hour). Left at aiohttp's defaults: `read_bufsize` (64 KiB: reading pauses
    when a connection buffers more, which bounds the memory of a slow reader) and
    `lingering_time` (10 s spent discarding an unread body after an early answer such as
    408/413). `client_max_size` (set on the Application) gives the 413. aiohttp has no
    timeout for a request head or body: `edge.api.server` and `middleware.read_body` add them.
    """
    s = settings.server
    return {
        "max_line_size": s.max_uri_bytes * PARSER_SLACK,
        "max_field_size": s.max_header_bytes * PARSER_SLACK,
        "max_headers": 1024,
        "auto_decompress": False,
        "keepalive_timeout": s.keepalive_s,
    }


def create_app(
    settings: Settings,
    *,
    engine: Engine | None = None,
    models: Models | None = None,
    load_models: bool = True,
    announce: Callable[[str], None] = print,
) -> web.Application:
    """Build the application; the engine opens from `settings` at startup.

    `engine` serves an engine opened by the caller (who closes it); `models` shares models
    already loaded (tests serve many data dirs with one set). `load_models=False` leaves the
    app not ready (503 on inference): for tests of the skeleton and tools that only need the
    store.
    """
    app = web.Application(
        client_max_size=settings.server.max_body_bytes,
        middlewares=[error_middleware, auth_middleware],
        handler_args=parser_limits(settings),
    )
    app[SETTINGS] = settings
    app[READY] = ReadyState()
    app[KEYS] = load_keyring(settings, announce=announce)
    app[OPENAPI] = add_routes(app.router, settings)
    add_console(app)  # /console, unless console.enabled is false
    app[ADMISSION] = Admission(
        settings.server.inference_threads,
        settings.server.queue_limit,
        settings.server.rate_limit_per_key,
    )
    app[DEVICES] = Devices()  # `edge.api.server` runs cameras and MQTT when configured

    app.cleanup_ctx.append(_engine_ctx(engine, models, load_models))
    app.cleanup_ctx.append(_purge_ctx)
    app.on_shutdown.append(_on_shutdown)
    return app


def add_routes(router: web.UrlDispatcher, settings: Settings) -> OpenApiRegistry:
    """Serve every route table; the returned registry documents what is served."""
    docs = OpenApiRegistry()
    for table in ROUTE_TABLES:
        table.add_to(router, docs, settings)
    metrics = docs.get("GET", "/metrics")
    if settings.server.metrics_need_key and metrics is not None:
        docs.add(replace(metrics, auth=True))
    return docs


# Components --------------------------------------------------------------------------------
def _engine_ctx(given: Engine | None, models: Models | None, load: bool) -> CleanupCtx:
    async def ctx(app: web.Application) -> AsyncIterator[None]:
        if given is not None:
            engine = given
        else:  # the store's file IO runs off the loop
            engine = await asyncio.to_thread(Engine.open, app[SETTINGS], models=models)
        app[ENGINE] = engine
        task: asyncio.Task[None] | None = None
        if engine.models is None:  # a sync hub without the face API: ready, inference 503
            app[READY].set_without_models(NO_MODELS)
        elif load:
            task = asyncio.create_task(_warm_up(app))
        else:
            app[READY].set_not_ready("models are not loaded (load_models=False)")
        try:
            yield
        finally:
            if task is not None and not task.done():
                task.cancel()
                with contextlib.suppress(asyncio.CancelledError, Exception):
                    await task
            await asyncio.to_thread(app[ADMISSION].shutdown)  # waits for running inference
            if given is None:
                await asyncio.to_thread(engine.close)

    return ctx


async def _warm_up(app: web.Application) -> None:
    state = app[READY]
    state.set_not_ready("models are loading")
    try:
        await asyncio.to_thread(app[ENGINE].warm_up)
    except asyncio.CancelledError:
        raise
    except Exception as e:
        log.exception("model warm-up failed; the service stays not ready")
        state.set_not_ready(f"model warm-up failed: {type(e).__name__}: {e}")
        return
    state.set_ready()
    log.info("models warmed up; ready")


async def _purge_ctx(app: web.Application) -> AsyncIterator[None]:
    """Deletes expired entities every `store.purge_interval_s` (also done lazily on reads)."""
    interval = app[SETTINGS].store.purge_interval_s

    async def loop() -> None:
        while True:
            await asyncio.sleep(interval)
            try:  # the engine context, set up before this one, always holds the engine
                n = await asyncio.to_thread(app[ENGINE].store.purge_expired)
                if n:
                    log.info("purged %s expired entities", n)
            except Exception:
                log.exception("TTL purge failed; will retry")

    task = asyncio.create_task(loop())
    yield
    task.cancel()
    with contextlib.suppress(asyncio.CancelledError):
        await task


async def _on_shutdown(app: web.Application) -> None:
    app[READY].begin_shutdown()
