"""106-point landmarks in the API order (PFLD-106, role `landmarks106`).

The model emits the InsightFace 2d106 order; the API wants the order of the seed's group
table. `edge/data/landmarks106_map.json` holds the permutation (see landmarks106.md §5):
`api[j] = model[jd_from_insightface[j]]`. Left/right are image left/right throughout.

The mapping was checked here by drawing the API indices on frontal, turned and sideways faces
(the 90/270-degree pixel-rotated test images included) and is guarded by geometric tests.
Points of a face cut by the image border may lie outside the image: they are the model's
extrapolation of the hidden part and are returned as they are (the quality block uses them).
"""

from __future__ import annotations

import json
import math
from functools import lru_cache
from pathlib import Path

import cv2
import numpy as np

from edge.runtime.registry import ModelRegistry
from edge.vision.types import Face

ROLE = "landmarks106"
INPUT_SIZE = 112
CROP_SCALE = 1.1  # square side / max(box w, h); manifest: 1.0-1.2 works, 1.1 verified
REFINE_DEG = 20.0  # second pass when own eye line and detector eye line disagree this much

# Seed table groups (API indices). Eye rings list the 8 ring points then the centre.
GROUPS: dict[str, tuple[int, ...]] = {
    "leftEyeBrow": (33, 34, 35, 36, 37, 64, 65, 66, 67),
    "rightEyeBrow": (38, 39, 40, 41, 42, 68, 69, 70, 71),
    "leftEye": (52, 53, 72, 54, 55, 56, 73, 57, 74),
    "rightEye": (61, 60, 75, 59, 58, 63, 76, 62, 77),
    "nose": (43, 44, 45, 46, 47, 48, 49, 50, 51, 80, 81, 82, 83),
    "mouth": tuple(range(84, 104)),
    "faceContour": tuple(range(33)),
}
# Single points used by other blocks.
LEFT_EYE_CENTRE, RIGHT_EYE_CENTRE = 74, 77
NOSE_TIP = 46
MOUTH_LEFT, MOUTH_RIGHT = 84, 90
INNER_UPPER_LIP, INNER_LOWER_LIP = 98, 102
CHIN = 16


@lru_cache(maxsize=1)
def api_from_model() -> np.ndarray:
    """The permutation model order -> API order, checked to be a true permutation."""
    text = (Path(__file__).resolve().parent.parent / "data" / "landmarks106_map.json").read_text()
    perm = np.asarray(json.loads(text)["jd_from_insightface"], dtype=np.intp)
    if perm.shape != (106,) or sorted(perm.tolist()) != list(range(106)):
        raise ValueError("landmarks106_map.json is not a permutation of 0..105")
    perm.setflags(write=False)
    return perm


def eye_angle(face: Face) -> float:
    """In-plane angle (radians, image y down) of the line image-left eye -> image-right eye
    from the detector's keypoints; 0 upright, positive when the image-right eye sits lower
    (face turned clockwise as seen)."""
    (lx, ly), (rx, ry) = face.kps[0], face.kps[1]
    return math.atan2(float(ry - ly), float(rx - lx))


def points_angle(points: np.ndarray) -> float:
    """Same angle as `eye_angle`, from the API-order eye centres (74 -> 77)."""
    d = points[RIGHT_EYE_CENTRE] - points[LEFT_EYE_CENTRE]
    return math.atan2(float(d[1]), float(d[0]))


def similarity_crop(
    bgr: np.ndarray, face: Face, size: int, scale: float, angle: float | None = None
) -> tuple[np.ndarray, np.ndarray]:
    """Square crop of side `scale * max(w, h)` around the box centre, resized to `size`,
    rotated by `angle` (radians, see `eye_angle`) so that the eye line is horizontal.

    The models were trained on upright faces; turning the crop keeps them working on tilted
    and sideways faces. Pixels outside the image are black, which is what a face cut by the
    border looks like. Returns the crop and the 2x3 affine matrix image -> crop."""
    x1, y1, x2, y2 = (float(v) for v in face.box)
    cx, cy = (x1 + x2) / 2.0, (y1 + y2) / 2.0
    side = max(x2 - x1, y2 - y1, 1.0) * scale
    m = cv2.getRotationMatrix2D((cx, cy), math.degrees(angle or 0.0), size / side)
    m[0, 2] += size / 2.0 - cx
    m[1, 2] += size / 2.0 - cy
    crop = cv2.warpAffine(
        bgr, m, (size, size), flags=cv2.INTER_LINEAR, borderMode=cv2.BORDER_CONSTANT
    )
    return crop, m


def to_image(points: np.ndarray, m: np.ndarray) -> np.ndarray:
    """Map crop coordinates back to the image with the inverse of affine `m`."""
    inv = cv2.invertAffineTransform(m)
    mapped: np.ndarray = points @ inv[:, :2].T + inv[:, 2]
    return mapped


class LandmarkModel:
    """PFLD-106 lite: BGR/255 at 112x112, output "output" = 106 normalised (x, y) pairs."""

    def __init__(self, registry: ModelRegistry) -> None:
        self.registry = registry

    def predict(self, bgr: np.ndarray, face: Face) -> np.ndarray:
        """(106, 2) float32 image coordinates in the API order.

        The crop is turned by the detector's eye line. Detector keypoints can be badly off on
        sideways faces; when the predicted eye centres disagree with them by more than
        `REFINE_DEG`, the model runs once more on a crop turned by its own eye line."""
        angle = eye_angle(face)
        pts = self._run(bgr, face, angle)
        own = points_angle(pts)
        if abs(_wrap(own - angle)) > math.radians(REFINE_DEG):
            pts = self._run(bgr, face, own)
        return pts

    def _run(self, bgr: np.ndarray, face: Face, angle: float) -> np.ndarray:
        crop, m = similarity_crop(bgr, face, INPUT_SIZE, CROP_SCALE, angle)
        blob = (crop.astype(np.float32) / 255.0).transpose(2, 0, 1)[None]
        sess = self.registry.session(ROLE)
        outs = sess.run({sess.info.inputs[0].name: np.ascontiguousarray(blob)})
        flat = next(o for o in outs if o.size == 212)
        pts = flat.reshape(106, 2).astype(np.float64) * INPUT_SIZE
        out: np.ndarray = to_image(pts, m)[api_from_model()].astype(np.float32)
        return out


def _wrap(a: float) -> float:
    """Angle difference folded into (-pi, pi]."""
    return math.atan2(math.sin(a), math.cos(a))
