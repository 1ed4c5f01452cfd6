"""The contract's JSON (api.md), rendered from the typed values vision returns.

Vision measures; this module names. Every camelCase key a client sees for a face's details,
a served model's description or a face error is written here and nowhere below the API, so
a wire change is one edit and a vision change cannot leak into the contract by accident.
`request_error` is the one place an imaging or vision error becomes a contract code, its
message naming the request's own field (`image`, `imageTwo`, `images[0]`).
"""

from __future__ import annotations

from typing import Any

import numpy as np

from edge.errors import EdgeError
from edge.imaging.errors import (
    ImageInputError,
    InvalidValue,
    MissingValue,
    NotAnImage,
    NotColour,
    TooManyPixels,
    UnsupportedFormat,
    WrongType,
)
from edge.vision.errors import FaceError, FaceTooSmall, NoFaceFound
from edge.vision.geometry import PixelBox
from edge.vision.liveness import LivenessModelInfo
from edge.vision.types import (
    Completeness,
    FaceAnalysis,
    FaceAttributes,
    FaceDetails,
    FaceModelInfo,
    FaceQuality,
    HeadAngle,
    Label,
)

__all__ = [
    "details_json",
    "face_error",
    "face_model_json",
    "image_error",
    "liveness_model_json",
    "position_json",
    "request_error",
    "uploaded_json",
]


# Errors ------------------------------------------------------------------------------------
#: api.md §1: the code of each image input problem.
IMAGE_CODES: dict[type[ImageInputError], int] = {
    MissingValue: 110,
    WrongType: 111,
    InvalidValue: 112,
    NotAnImage: 214,
    UnsupportedFormat: 215,
    NotColour: 216,
    TooManyPixels: 217,
}


def image_error(err: ImageInputError, field: str) -> EdgeError:
    """The contract code of an image input problem; the message names `field.part`."""
    code = IMAGE_CODES.get(type(err))
    if code is None:
        raise TypeError(f"no contract code for {type(err).__name__}") from err
    return EdgeError(code, f"{field}.{err.part} {err.problem}")


def request_error(err: ImageInputError | FaceError, field: str) -> EdgeError:
    """Any imaging or vision error about the image in request field `field`, as the
    contract's error (code, name, message): the mapping every handler goes through."""
    if isinstance(err, ImageInputError):
        return image_error(err, field)
    return face_error(err, field)


def face_error(err: FaceError, field: str) -> EdgeError:
    """223 (no face) or 224 (face too small), the message naming the request's `field`."""
    if isinstance(err, NoFaceFound):
        where = f" inside {field}.area" if err.in_area else ""
        return EdgeError(223, f"{field}: no face found{where}")
    if isinstance(err, FaceTooSmall):
        return EdgeError(224, f"{field}: {err.detail}")
    raise TypeError(f"no contract code for {type(err).__name__}") from err


# Face details ------------------------------------------------------------------------------
def position_json(p: PixelBox) -> dict[str, int]:
    return {"top": p.top, "left": p.left, "width": p.width, "height": p.height}


def _angle(a: HeadAngle) -> dict[str, float | int]:
    return {
        "pitch": a.pitch,
        "yaw": a.yaw,
        "roll": a.roll,
        "centerX": a.center_x,
        "centerY": a.center_y,
    }


def _landmarks(points: np.ndarray) -> list[dict[str, int]]:
    """Exactly 106 `{x, y}` ints."""
    return [{"x": round(float(x)), "y": round(float(y))} for x, y in points]


def _completeness(c: Completeness) -> dict[str, float]:
    return {
        "total": c.total,
        "leftEyeBrow": c.left_eye_brow,
        "rightEyeBrow": c.right_eye_brow,
        "leftEye": c.left_eye,
        "rightEye": c.right_eye,
        "nose": c.nose,
        "mouth": c.mouth,
        "faceContour": c.face_contour,
    }


def _quality(q: FaceQuality) -> dict[str, object]:
    return {
        "brightness": q.brightness,
        "sharpness": q.sharpness,
        "mouthClosed": q.mouth_closed,
        "centered": q.centered,
        "size": q.size,
        "integrity": q.integrity,
        "completeness": _completeness(q.completeness),
    }


def _label(label: Label) -> dict[str, object]:
    return {"value": label.value, "certainty": label.certainty}


def _attributes(a: FaceAttributes) -> dict[str, object]:
    """Only what was estimated: the pack's unsupported attributes are omitted, not null."""
    out: dict[str, object] = {}
    if a.age is not None:
        out["age"] = {
            "value": a.age.value,
            "upperLimit": a.age.upper_limit,
            "lowerLimit": a.age.lower_limit,
        }
    if a.gender is not None:
        out["gender"] = _label(a.gender)
    if a.emotions is not None:
        out["emotions"] = [_label(e) for e in a.emotions]
    if a.mask is not None:
        out["mask"] = _label(a.mask)
    return out


def details_json(d: FaceDetails) -> dict[str, object]:
    """The `details` object: only the requested blocks."""
    out: dict[str, object] = {}
    if d.position is not None:
        out["position"] = position_json(d.position)
    if d.angle is not None:
        out["angle"] = _angle(d.angle)
    if d.landmarks is not None:
        out["landmarks"] = _landmarks(d.landmarks)
    if d.quality is not None:
        out["quality"] = _quality(d.quality)
    if d.attributes is not None:
        out["attributes"] = _attributes(d.attributes)
    return out


def uploaded_json(fa: FaceAnalysis) -> dict[str, Any]:
    """`entityUploaded` (and each detected face): the face's details."""
    return {"details": details_json(fa.details)}


# Served models (GET /models) ---------------------------------------------------------------
def face_model_json(info: FaceModelInfo) -> dict[str, Any]:
    """The face model's own facts; the route adds name, aliases and components."""
    c = info.capabilities
    return {
        "vectorDimension": info.vector_dimension,
        "capabilities": {
            "position": c.position,
            "angle": c.angle,
            "landmarks": c.landmarks,
            "quality": c.quality,
            "attributes": c.attributes,
        },
        "attributes": list(info.attributes),
        "recommendedThreshold": info.recommended_threshold,
        "measured": dict(info.measured),
    }


def liveness_model_json(info: LivenessModelInfo) -> dict[str, Any]:
    """The liveness model's own facts, the decision rule and the reliability rules."""
    return {
        "recommendedThreshold": info.recommended_threshold,
        "measured": dict(info.measured),
        "decision": info.decision,
        "fusion": info.fusion,
        "reliability": {
            "thresholds": dict(info.gate_thresholds),
            "conditions": list(info.gate_conditions),
            "why": dict(info.gate_reasons),
            "note": info.note,
        },
    }
