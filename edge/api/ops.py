"""Operational endpoints (api.md §6): health, readiness, metrics, OpenAPI and its docs page."""

from __future__ import annotations

from aiohttp import web
from pydantic import BaseModel, Field

from edge.api.docs import DOCS_HTML
from edge.api.openapi import build_document
from edge.api.routes import RouteTable
from edge.api.state import READY
from edge.errors import EdgeError
from edge.metrics import REGISTRY
from edge.sync.service import SYNC

routes = RouteTable()


class Health(BaseModel):
    """The process is alive."""

    status: str = Field(examples=["ok"])


class Readiness(BaseModel):
    """Whether models are loaded and warmed up."""

    ready: bool = Field(description="always true; not ready is a 503 error body")


@routes.route(
    "GET",
    "/healthz",
    summary="Liveness of the process",
    responses={200: Health},
    auth=False,
    tags=["ops"],
)
async def healthz(request: web.Request) -> web.Response:
    return web.json_response({"status": "ok"})


@routes.route(
    "GET",
    "/readyz",
    summary="Ready once models are loaded and a warm-up inference ran",
    responses={200: Readiness},
    errors=[503],
    auth=False,
    tags=["ops"],
)
async def readyz(request: web.Request) -> web.Response:
    state = request.app[READY]
    if state.ready:
        sync = request.app.get(SYNC)
        if sync is None:
            return web.json_response({"ready": True})
        # Still ready (a box recognises offline from its own gallery), but says so.
        return web.json_response({"ready": True, "gallery_stale": sync.stale})
    # api.md §1: every non-2xx body is exactly {code, name, message}; the reason rides in it.
    raise EdgeError(503, f"not ready: {state.reason}")


@routes.route(
    "GET",
    "/metrics",
    summary="Prometheus metrics (route latency, model inference time)",
    responses={200: "Prometheus text exposition format 0.0.4"},
    auth=False,
    tags=["ops"],
    content_type="text/plain",
)
async def metrics(request: web.Request) -> web.Response:
    return web.Response(
        text=REGISTRY.render(), content_type="text/plain", headers={"x-prometheus": "0.0.4"}
    )


@routes.route(
    "GET",
    "/api/v1/openapi.json",
    summary="This OpenAPI 3.1 document",
    responses={200: "the OpenAPI document"},
    auth=False,
    tags=["ops"],
)
async def openapi_json(request: web.Request) -> web.Response:
    return web.json_response(build_document(request.app))


@routes.route(
    "GET",
    "/docs",
    summary="Browsable API documentation (self-contained HTML, no CDN)",
    responses={200: "HTML page"},
    auth=False,
    tags=["ops"],
    content_type="text/html",
)
async def docs(request: web.Request) -> web.Response:
    return web.Response(text=DOCS_HTML, content_type="text/html")
