"""POST <liveness_path> (api.md §4): passive single-image liveness of the largest face.

The face is found exactly as the face endpoints find it (fast detector, then slow; largest
face), so a client may send the same image to both services and get the same `position`.
The service returns the score only; the client applies its own threshold.
"""

from __future__ import annotations

from typing import Any

import numpy as np
from aiohttp import web

from edge.api import schemas as s
from edge.api.faces import analyze_image
from edge.api.inference import run_inference
from edge.api.middleware import json_body
from edge.api.routes import RouteTable
from edge.api.state import LIVENESS, SETTINGS
from edge.api.wire import position_json
from edge.errors import EdgeError
from edge.imaging.decode import rotate_cw

#: images the served model reads (RGB, single frame); extra items are validated, then ignored
IMAGES_NEEDED = 1

routes = RouteTable()


def score_first_image(app: web.Application, first: s.LivenessImage) -> dict[str, Any]:
    """Blocking: decode images[0], find its largest face, score it."""
    scorer = app[LIVENESS]
    img = s.ImageRequest(field=first.field, data=first.data, auto_rotate=first.auto_rotate)
    fa, decoded = analyze_image(app, img, embed=False)
    # analyze_largest may have turned the decoded pixels further (autoRotate with no face
    # upright): score the face in the very pixels it was found in.
    extra = (fa.rotated - decoded.rotated) % 360
    bgr: np.ndarray = rotate_cw(decoded.bgr, extra) if extra else decoded.bgr
    w, h = fa.image_size
    if (bgr.shape[1], bgr.shape[0]) != (w, h):
        raise RuntimeError(f"liveness frame {bgr.shape[1]}x{bgr.shape[0]} != analysed {w}x{h}")
    result = scorer.score(bgr, fa.face)
    return {
        "spoofScore": float(min(max(result.spoof_score, 0.0), 1.0)),
        "position": position_json(fa.face.position(w, h)),
    }


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
    if app[LIVENESS] is None:
        raise EdgeError(503, "the liveness model is not available on this box")
    out = await run_inference(request, score_first_image, app, req.images[0])
    return web.json_response({"model": req.model.given, **out})
