"""The `quality` block: each field measured from the image (api.md §2.2).

All functions are pure: they take the image, the face, its 106 API-order landmarks and, for
completeness, the per-face model signals computed once by `details.py` (mask share, eye-open
probabilities). Every value is a float in 0..1 (brightness -1..1), rounded to 4 decimals.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import cv2
import numpy as np

from edge.vision.geometry import Box
from edge.vision.landmarks import (
    GROUPS,
    INNER_LOWER_LIP,
    INNER_UPPER_LIP,
    MOUTH_LEFT,
    MOUTH_RIGHT,
    points_angle,
    similarity_crop,
)
from edge.vision.sharpness import laplacian_variance, saturate
from edge.vision.types import Completeness, Face

SHARP_SIZE = 112  # face crop side for the blur measure: makes it independent of face size
SHARP_HALF = 150.0  # Laplacian variance mapped to 0.5 (calibrated on the test portraits)
MOUTH_OPEN_RATIO = 0.35  # inner-lip gap / mouth width at which mouthClosed reaches 0
PARTS = ("leftEyeBrow", "rightEyeBrow", "leftEye", "rightEye", "nose", "mouth", "faceContour")


def _r(v: float) -> float:
    return round(float(min(max(v, 0.0), 1.0)), 4)


_SKIN = (*GROUPS["faceContour"], *GROUPS["leftEyeBrow"], *GROUPS["rightEyeBrow"])


def _grey(bgr: np.ndarray, x1: int, y1: int, x2: int, y2: int) -> np.ndarray:
    return cv2.cvtColor(np.ascontiguousarray(bgr[y1:y2, x1:x2]), cv2.COLOR_BGR2GRAY)


def brightness(bgr: np.ndarray, face: Face, points: np.ndarray) -> float:
    """Mean luma (BT.601 grey) of the face skin region (landmark hull clipped to the image,
    the box when the hull is empty), mapped linearly 0..255 -> -1..1, so 0 = mid grey.

    Only the hull's bounding rectangle is converted and masked, not the whole frame: the
    same pixels and the same mean, without a full-size grey copy and mask per face."""
    h, w = bgr.shape[:2]
    hull = cv2.convexHull(np.round(points[list(_SKIN)]).astype(np.int32))
    hx, hy, hw, hh = cv2.boundingRect(hull)
    x1, y1 = max(0, hx), max(0, hy)
    x2, y2 = min(w, hx + hw), min(h, hy + hh)
    mean: float | None = None
    if x2 > x1 and y2 > y1:
        mask = np.zeros((y2 - y1, x2 - x1), np.uint8)
        cv2.fillConvexPoly(mask, hull - np.array([x1, y1], np.int32), 1)
        if mask.any():
            mean = float(cv2.mean(_grey(bgr, x1, y1, x2, y2), mask=mask)[0])
    if mean is None:
        x1, y1 = max(0, int(face.box[0])), max(0, int(face.box[1]))
        x2, y2 = min(w, int(face.box[2])), min(h, int(face.box[3]))
        mean = float(_grey(bgr, x1, y1, x2, y2).mean()) if x2 > x1 and y2 > y1 else 127.5
    return round(max(-1.0, min(1.0, (mean - 127.5) / 127.5)), 4)


def sharpness(bgr: np.ndarray, face: Face, points: np.ndarray) -> float:
    """Variance of the Laplacian of the upright face crop at a fixed 112 px (so a small face
    blown up reads as blurred), on the inner 60 % of the crop (skin, eyes, mouth; no hair or
    background edges), mapped v / (v + SHARP_HALF) to 0..1."""
    crop, _ = similarity_crop(bgr, face, SHARP_SIZE, 1.0, points_angle(points))
    grey = cv2.cvtColor(crop, cv2.COLOR_BGR2GRAY)
    a, b = int(SHARP_SIZE * 0.2), int(SHARP_SIZE * 0.8)
    return _r(saturate(laplacian_variance(grey[a:b, a:b]), SHARP_HALF))


def mouth_closed(points: np.ndarray) -> float:
    """1 - (inner-lip gap 98->102 / mouth width 84->90) / 0.35, clipped: 1 = lips together,
    0 = a gap of a third of the mouth width or more (a wide-open mouth)."""
    gap = float(np.linalg.norm(points[INNER_LOWER_LIP] - points[INNER_UPPER_LIP]))
    width = float(np.linalg.norm(points[MOUTH_RIGHT] - points[MOUTH_LEFT]))
    if width <= 1e-6:
        return 0.0
    return _r(1.0 - (gap / width) / MOUTH_OPEN_RATIO)


def centered(face: Face, w: int, h: int) -> float:
    """1 - distance of the face-box centre from the image centre, each axis in half-image
    units, divided by the corner distance sqrt(2): 1 = centred, 0 = centre in a corner."""
    cx, cy = face.bbox.center
    dx, dy = (cx - w / 2.0) / (w / 2.0), (cy - h / 2.0) / (h / 2.0)
    return _r(1.0 - math.hypot(dx, dy) / math.sqrt(2.0))


def size(face: Face, w: int, h: int) -> float:
    """Face-box area inside the image / image area."""
    return _r(face.bbox.clip(w, h).area / float(w * h))


def integrity(face: Face, w: int, h: int, points: np.ndarray) -> float:
    """Share of the face region inside the image. The region is the box enclosing both the
    detector box and the 106 landmarks: detectors often clip their box at the border, while
    the landmark model extrapolates the cut-off contour past it."""
    lo, hi = points.min(axis=0), points.max(axis=0)
    region = face.bbox.union(Box.of(np.array([lo[0], lo[1], hi[0], hi[1]], np.float32)))
    return _r(region.inside_share(w, h))


@dataclass(frozen=True)
class OcclusionSignals:
    """Per-face model outputs the completeness needs (computed once in details.py)."""

    mask_share: float | None  # P(masked | face) from the mask detector; None = no mask model
    eye_open: tuple[float, float] | None  # P(open) of image-left, image-right eye; None = no model
    visible: dict[str, float] | None = None  # per-part evidence (occlusion.py); None = no mesh


def completeness(points: np.ndarray, w: int, h: int, signals: OcclusionSignals) -> Completeness:
    """Visibility 0..1 per part, each the product of the signals that apply to it:

    * in-image share: fraction of the part's landmarks inside the image (all parts);
    * mask: nose and mouth x (1 - P(masked)) from the mask detector (its frame-level box, or
      the face's own crop when no box matches);
    * eyes: x P(open) of the eye-state CNN on the eye patch: a hand, hair, dark glasses or
      closed lids all hide the eye from the recogniser;
    * image evidence (all parts, when the pack has the mesh): x the part's visibility from
      `occlusion.visibility` (its border contrast, the contour's skin continuity), which is
      what tells a bar over the eyebrows or a scarf over the jaw from a visible part;
    total = mean of the seven parts."""
    inside = (points[:, 0] >= 0) & (points[:, 0] < w) & (points[:, 1] >= 0) & (points[:, 1] < h)
    out: dict[str, float] = {}
    for part in PARTS:
        out[part] = float(inside[list(GROUPS[part])].mean())
    if signals.mask_share is not None:
        for part in ("nose", "mouth"):
            out[part] *= 1.0 - signals.mask_share
    if signals.eye_open is not None:
        out["leftEye"] *= signals.eye_open[0]
        out["rightEye"] *= signals.eye_open[1]
    if signals.visible is not None:
        for part in PARTS:
            out[part] *= signals.visible[part]
    return Completeness(
        total=_r(sum(out.values()) / len(out)),
        left_eye_brow=_r(out["leftEyeBrow"]),
        right_eye_brow=_r(out["rightEyeBrow"]),
        left_eye=_r(out["leftEye"]),
        right_eye=_r(out["rightEye"]),
        nose=_r(out["nose"]),
        mouth=_r(out["mouth"]),
        face_contour=_r(out["faceContour"]),
    )
