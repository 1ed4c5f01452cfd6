"""Which frame of a track is best for recognition: size x sharpness x pose, each in 0..1.

The measures are real image measurements, the very ones the liveness gates judge: the face
box's shorter side, `relative_sharpness` (the Laplacian of the face resampled to 96x96, so it
does not grow with face size) and the keypoint head pose. Embeddings of small, blurred
or turned faces match worse, so each term falls as those get worse.
"""

from __future__ import annotations

import math

import numpy as np

from edge.vision.liveness import face_quality
from edge.vision.sharpness import saturate
from edge.vision.types import Face

FULL_SIZE_PX = 112.0  # the embedder's input side: larger faces add no detail
SHARP_HALF = 0.05  # face_quality sharpness (Laplacian variance, 0..1 pixels) giving 0.5
PITCH_FRONTAL = 0.45  # nose position between eye line and mouth line for a level head


def frame_quality(bgr: np.ndarray, face: Face) -> float:
    q = face_quality(bgr, face)
    size = min(1.0, q.min_side / FULL_SIZE_PX)
    sharp = saturate(q.sharpness, SHARP_HALF)
    yaw, pitch = q.yaw, q.pitch
    if math.isnan(yaw) or math.isnan(pitch):
        return 0.0
    pose = max(0.0, 1.0 - abs(yaw) / 0.6) * max(0.0, 1.0 - abs(pitch - PITCH_FRONTAL) / 0.6)
    return float(size * sharp * pose)
