"""POST <liveness_path> (api.md §4): passive single-image liveness of the largest face.

The face is found exactly as the face endpoints find it (fast detector, then slow; largest
face), so a client may send the same image to both services and get the same `position`.
The service returns the score only; the client applies its own threshold.
"""

from __future__ import annotations

from typing import Any

from aiohttp import web

from edge.api import schemas as s
from edge.api.images import on_image
from edge.api.inference import run_inference
from edge.api.middleware import json_body
from edge.api.routes import RouteTable
from edge.api.state import SETTINGS, recognition
from edge.api.wire import position_json
from edge.errors import EdgeError
from edge.recognition import ImageQuery, Recognition

#: images the served model reads (RGB, single frame); extra items are validated, then ignored
IMAGES_NEEDED = 1

routes = RouteTable()


def score_first_image(rec: Recognition, first: s.LivenessImage) -> dict[str, Any]:
    """Blocking: decode images[0], find its largest face, score it."""
    query = ImageQuery(data=first.data, auto_rotate=first.auto_rotate)
    check = on_image(first.field, lambda: rec.liveness(query))
    return {"spoofScore": check.spoof_score, "position": position_json(check.position)}


@routes.route(
    "POST",
    "/api/v1/liveness",
    served_at=lambda settings: settings.server.liveness_path,
    summary="Passive liveness: probability that the largest face of images[0] is a spoof",
    description="The path is configurable (server.liveness_path).",
    request=s.LivenessIn,
    responses={200: s.LivenessOut},
    errors=(110, 111, 112, 113, 116, 214, 215, 216, 217, 219, 223, 224),
    inference=True,
    tags=["liveness"],
)
async def liveness(request: web.Request) -> web.Response:
    app = request.app
    req = s.parse_liveness(await json_body(request), app[SETTINGS], IMAGES_NEEDED)
    rec = recognition(app)
    if not rec.has_liveness:
        raise EdgeError(503, "the liveness model is not available on this box")
    out = await run_inference(request, score_first_image, rec, req.images[0])
    return web.json_response({"model": req.model.given, **out})
