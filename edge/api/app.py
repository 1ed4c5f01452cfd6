"""The aiohttp application: components, middlewares and routes wired in one place.

Components live in a `cleanup_ctx` so they are opened when the server starts and closed in
reverse order on shutdown. Models load and warm up in a background thread: /healthz
answers at once, /readyz (and every inference route) says 503 until warm-up finished.
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
    KEYS,
    LIVENESS,
    MODEL_REGISTRY,
    OPENAPI,
    PIPELINE,
    READY,
    SETTINGS,
    STORE,
    ReadyState,
)
from edge.config import Settings
from edge.runtime.registry import ModelRegistry
from edge.store import EntityStore, open_store
from edge.vision.liveness import LivenessScorer
from edge.vision.pipeline import FacePipeline

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
    registry: ModelRegistry | None = None,
    pipeline: FacePipeline | None = None,
    store: EntityStore | None = None,
    liveness: LivenessScorer | None = None,
    load_models: bool = True,
    announce: Callable[[str], None] = print,
) -> web.Application:
    """Build the application. Components not given are built from `settings` at startup.

    `load_models=False` leaves the app not ready (503 on inference) — for tests of the
    skeleton and for tools that only need the store.
    """
    app = web.Application(
        client_max_size=settings.server.max_body_bytes,
        middlewares=[error_middleware, auth_middleware],
        handler_args=parser_limits(settings),
    )
    app[SETTINGS] = settings
    app[MODEL_REGISTRY] = registry or ModelRegistry(settings)
    app[READY] = ReadyState()
    app[KEYS] = load_keyring(settings, announce=announce)
    app[OPENAPI] = add_routes(app.router, settings)
    add_console(app)  # /console, unless console.enabled is false
    app[ADMISSION] = Admission(
        settings.server.inference_threads,
        settings.server.queue_limit,
        settings.server.rate_limit_per_key,
    )
    if pipeline is not None:
        app[PIPELINE] = pipeline
    app[LIVENESS] = liveness
    if store is not None:
        app[STORE] = store

    app.cleanup_ctx.append(_store_ctx(store))
    app.cleanup_ctx.append(_models_ctx(load_models))
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
def _store_ctx(given: EntityStore | None) -> CleanupCtx:
    async def ctx(app: web.Application) -> AsyncIterator[None]:
        if given is not None:
            yield
            return
        store = await asyncio.to_thread(open_store, app[SETTINGS], app[MODEL_REGISTRY])
        app[STORE] = store
        yield
        await asyncio.to_thread(store.close)

    return ctx


def _models_ctx(load: bool) -> CleanupCtx:
    async def ctx(app: web.Application) -> AsyncIterator[None]:
        settings, registry = app[SETTINGS], app[MODEL_REGISTRY]
        if PIPELINE not in app:
            app[PIPELINE] = FacePipeline(registry, settings)
        if app[LIVENESS] is None:
            try:
                app[LIVENESS] = LivenessScorer(registry, settings)
            except ValueError as e:  # a pack without the liveness roles
                log.warning("liveness not available: %s", e)
        task: asyncio.Task[None] | None = None
        if load:
            task = asyncio.create_task(_warm_up(app))
        else:
            app[READY].set_not_ready("models are not loaded (load_models=False)")
        yield
        if task is not None and not task.done():
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await task
        await asyncio.to_thread(app[ADMISSION].shutdown)  # waits for running inference

    return ctx


def warm_up_models(
    pipeline: FacePipeline, liveness: LivenessScorer | None, registry: ModelRegistry
) -> None:
    """Open and run every model once (blocking); logs backend/device, fallback as WARNING.

    `liveness` is None for a pack without the liveness roles."""
    pipeline.warmup()
    if liveness is not None:
        liveness.warmup()
    for role, sess in sorted(registry.opened().items()):
        info = sess.info
        if info.fallback:
            log.warning(
                "model %s runs on %s/%s (FALLBACK: requested %s)",
                role,
                info.backend,
                info.device,
                info.requested,
            )
        else:
            log.info("model %s runs on %s/%s", role, info.backend, info.device)


async def _warm_up(app: web.Application) -> None:
    state = app[READY]
    state.set_not_ready("models are loading")
    try:
        await asyncio.to_thread(warm_up_models, app[PIPELINE], app[LIVENESS], app[MODEL_REGISTRY])
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
            try:  # the store context, set up before this one, always holds a store
                n = await asyncio.to_thread(app[STORE].purge_expired)
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
