"""MediaPipe's 468-point 3D face mesh (role `landmarks468`, Apache-2.0).

Preprocessing as the model MANIFEST states it: a square region centred on the mean of the
detector's five keypoints, turned so that the eye line is horizontal, of side 2.93 x the
inter-ocular distance (MediaPipe's 1.5 x face box), resized to 192 x 192, RGB 0..1 NHWC.
Output: 468 x (x, y, z) in crop pixels (z is relative depth on the x scale) and a face
presence probability. The mesh is returned both in crop coordinates (an upright, size-
normalised face: what the per-part occlusion measures in `occlusion.py` read) and mapped back
to the image.

Standard MediaPipe indices; "image-left" is the subject's right side on a frontal face.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import cv2
import numpy as np

from edge.runtime.registry import ModelRegistry
from edge.vision.landmarks import to_image
from edge.vision.types import Face

ROLE = "landmarks468"
INPUT_SIZE = 192
IOD_SCALE = 2.93  # crop side / inter-ocular distance (MANIFEST: = MediaPipe's 1.5 x box)
MIN_SIDE = 8.0  # pixels: below this the keypoints are degenerate; use the box instead
REFINE_PASSES = 2  # a crop turned far off yields a mesh that under-reads the tilt: iterate
REFINE_DEG = 5.0  # second pass when the mesh's eye line and the detector's disagree this much

# Part outlines (closed polygons), from MediaPipe's face_mesh_connections, named in the API's
# image-left/right sense for a frontal face.
PART_OUTLINES: dict[str, tuple[int, ...]] = {
    "leftEyeBrow": (46, 53, 52, 65, 55, 107, 66, 105, 63, 70),
    "rightEyeBrow": (276, 283, 282, 295, 285, 336, 296, 334, 293, 300),
    "leftEye": (33, 246, 161, 160, 159, 158, 157, 173, 133, 155, 154, 153, 145, 144, 163, 7),
    "rightEye": (263, 466, 388, 387, 386, 385, 384, 398, 362, 382, 381, 380, 374, 373, 390,
                 249),
    "nose": (168, 193, 245, 188, 174, 217, 198, 209, 49, 64, 98, 97, 2, 326, 327, 294, 279,
             429, 420, 437, 399, 412, 465, 417),
    "mouth": (61, 185, 40, 39, 37, 0, 267, 269, 270, 409, 291, 375, 321, 405, 314, 17, 84,
              181, 91, 146),
    "faceContour": (10, 338, 297, 332, 284, 251, 389, 356, 454, 323, 361, 288, 397, 365, 379,
                    378, 400, 377, 152, 148, 176, 149, 150, 136, 172, 58, 132, 93, 234, 127,
                    162, 21, 54, 103, 67, 109),
}  # fmt: skip
LEFT_EYE_CORNERS = (33, 133)  # image-left eye: outer, inner
RIGHT_EYE_CORNERS = (263, 362)
NOSE_TIP = 1


@dataclass(frozen=True)
class Mesh:
    """One face's mesh: crop-space points (468, 3), image points (468, 2), the 2x3 affine
    image -> crop, the crop itself (BGR, 192 px) and the presence probability."""

    crop_points: np.ndarray
    points: np.ndarray
    matrix: np.ndarray
    crop: np.ndarray
    presence: float


def roi(face: Face) -> tuple[float, float, float, float]:
    """(centre x, centre y, side, angle radians) of the model's crop for `face`.

    Centre = mean of the five keypoints, angle = the eye line, side = 2.93 x inter-ocular
    distance; when the keypoints are degenerate (eyes on top of each other) the box's centre
    and 1.5 x its longer side stand in."""
    kps = face.kps.astype(np.float64)
    (lx, ly), (rx, ry) = kps[0], kps[1]
    iod = math.hypot(rx - lx, ry - ly)
    if iod * IOD_SCALE < MIN_SIDE:
        x1, y1, x2, y2 = (float(v) for v in face.box)
        return (x1 + x2) / 2.0, (y1 + y2) / 2.0, 1.5 * max(x2 - x1, y2 - y1, 1.0), 0.0
    cx, cy = (float(v) for v in kps.mean(axis=0))
    return cx, cy, IOD_SCALE * iod, math.atan2(ry - ly, rx - lx)


class MeshModel:
    """Runs the mesh on one face; thread-safe (the session is)."""

    def __init__(self, registry: ModelRegistry) -> None:
        self.registry = registry

    @property
    def available(self) -> bool:
        return self.registry.has(ROLE)

    def predict(self, bgr: np.ndarray, face: Face) -> Mesh:
        """The mesh of `face`. The crop is turned by the detector's eye line; detector
        keypoints can be badly off on tilted faces (YuNet on a face turned 25 degrees: eyes
        level), so when the mesh's own eye line disagrees by more than REFINE_DEG the model
        runs again (at most REFINE_PASSES times) on a crop turned by the mesh's eye line."""
        cx, cy, side, angle = roi(face)
        mesh = self._run(bgr, cx, cy, side, angle)
        for _ in range(REFINE_PASSES):
            d = mesh.points[RIGHT_EYE_CORNERS[0]] - mesh.points[LEFT_EYE_CORNERS[0]]
            own = math.atan2(float(d[1]), float(d[0]))
            if abs(math.atan2(math.sin(own - angle), math.cos(own - angle))) <= math.radians(
                REFINE_DEG
            ):
                break
            angle = own
            mesh = self._run(bgr, cx, cy, side, angle)
        return mesh

    def _run(self, bgr: np.ndarray, cx: float, cy: float, side: float, angle: float) -> Mesh:
        m = cv2.getRotationMatrix2D((cx, cy), math.degrees(angle), INPUT_SIZE / side)
        m[0, 2] += INPUT_SIZE / 2.0 - cx
        m[1, 2] += INPUT_SIZE / 2.0 - cy
        crop = cv2.warpAffine(
            bgr,
            m,
            (INPUT_SIZE, INPUT_SIZE),
            flags=cv2.INTER_LINEAR,
            borderMode=cv2.BORDER_CONSTANT,
        )
        rgb = cv2.cvtColor(crop, cv2.COLOR_BGR2RGB).astype(np.float32) / 255.0
        sess = self.registry.session(ROLE)
        outs = sess.run({sess.info.inputs[0].name: np.ascontiguousarray(rgb[None])})
        flat = next(o for o in outs if o.size == 468 * 3)
        presence = next(o for o in outs if o.size == 1)
        crop_pts = flat.reshape(468, 3).astype(np.float64)
        pts = to_image(crop_pts[:, :2], m).astype(np.float32)
        return Mesh(
            crop_points=crop_pts,
            points=pts,
            matrix=m,
            crop=crop,
            presence=float(presence.reshape(-1)[0]),
        )
