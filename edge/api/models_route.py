"""GET /api/v1/models (api.md §5): what each served model is, can do, and was measured at.

Everything here is read from the running components, not written down: the vector size from
the loaded embedder, thresholds and FAR/TAR or APCER/BPCER from the calibration data the
scores are computed with, backends and devices from the sessions actually opened, so the
answer cannot disagree with what the service does.
"""

from __future__ import annotations

from typing import Any, Literal

from aiohttp import web

from edge.api import schemas as s
from edge.api.inference import check_ready
from edge.api.routes import RouteTable
from edge.api.state import ENGINE, SETTINGS
from edge.api.wire import face_model_json, liveness_model_json
from edge.config import Settings

MODELS = "/api/v1/models"
#: detectors find the face the liveness models then look at: they are part of that model too
LIVENESS_SHARED_ROLES = ("detector_fast", "detector_slow")

routes = RouteTable()


def _aliases(settings: Settings, entity: Literal["faces", "liveness"]) -> list[str]:
    names = s.model_names(settings, entity)
    canonical = settings.names.face if entity == "faces" else settings.names.liveness
    return [n for n in names if n != canonical]


def face_model(app: web.Application) -> dict[str, Any]:
    settings, engine = app[SETTINGS], app[ENGINE]
    registry = engine.registry
    info = face_model_json(engine.pipeline.model_info())
    components = [c for c in registry.components() if not c["role"].startswith("liveness")]
    return {
        "name": settings.names.face,
        "aliases": _aliases(settings, "faces"),
        "entity": "faces",
        **info,
        "components": components,
    }


def liveness_model(app: web.Application) -> dict[str, Any] | None:
    settings, engine = app[SETTINGS], app[ENGINE]
    scorer, registry = engine.liveness, engine.registry
    if scorer is None:
        return None
    model_info = scorer.model_info()
    info = liveness_model_json(model_info)
    components = registry.components()
    own = [c for c in components if c["role"] in model_info.roles]
    shared = [
        c
        for c in components
        if c["role"] in LIVENESS_SHARED_ROLES and c["role"] not in model_info.roles
    ]
    out: dict[str, Any] = {
        "name": settings.names.liveness,
        "aliases": _aliases(settings, "liveness"),
        "entity": "liveness",
        "capabilities": {"position": True},
        "attributes": [],
        "recommendedThreshold": info.pop("recommendedThreshold"),
        "measured": info.pop("measured"),
        "components": shared + own,
    }
    out.update(info)  # decision rule, reliability conditions, fusion: extra, documented facts
    return out


@routes.route(
    "GET",
    MODELS,
    summary="The served models: names, aliases, capabilities, measured accuracy, components",
    responses={200: s.ModelsOut},
    errors=(503,),
    tags=["models"],
)
async def list_models(request: web.Request) -> web.Response:
    app = request.app
    check_ready(app)  # sizes and backends are only known once the models are loaded
    models = [face_model(app)]
    live = liveness_model(app)
    if live is not None:
        models.append(live)
    return web.json_response({"models": models})
