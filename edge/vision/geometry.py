"""Face-box geometry and the keypoint measures, each written once.

Detectors report boxes that may extend past the image border (a face cut by the frame);
every consumer then needs the part inside the image: the pipeline to pick the largest face
and enforce the minimum size, the quality block for `size` and `integrity`, liveness for
its context crops, the API for `position`. One `Box` with one clipping rule keeps those
answers identical. The keypoint head pose (nose against the eye/mouth midline) is shared
by the liveness gates and the camera's best-frame choice for the same reason.

Pure geometry: no models, no images beyond their size, nothing about the wire format.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

__all__ = ["Box", "KeypointPose", "PixelBox", "keypoint_pose"]


@dataclass(frozen=True)
class PixelBox:
    """An integer box inside an image: what a client is told (`position`)."""

    left: int
    top: int
    width: int
    height: int

    @property
    def center_x(self) -> int:
        return self.left + self.width // 2

    @property
    def center_y(self) -> int:
        return self.top + self.height // 2


@dataclass(frozen=True)
class Box:
    """A float box by its corners, in image pixels; it may extend past the image."""

    x1: float
    y1: float
    x2: float
    y2: float

    @classmethod
    def of(cls, xyxy: Sequence[float] | np.ndarray) -> Box:
        """From `[x1, y1, x2, y2]` (a detector's array or any sequence)."""
        return cls(float(xyxy[0]), float(xyxy[1]), float(xyxy[2]), float(xyxy[3]))

    @classmethod
    def from_ltwh(cls, left: float, top: float, width: float, height: float) -> Box:
        return cls(left, top, left + width, top + height)

    @property
    def left(self) -> float:
        return self.x1

    @property
    def top(self) -> float:
        return self.y1

    @property
    def width(self) -> float:
        return self.x2 - self.x1

    @property
    def height(self) -> float:
        return self.y2 - self.y1

    @property
    def area(self) -> float:
        """Zero for an empty or inverted box."""
        return max(self.width, 0.0) * max(self.height, 0.0)

    @property
    def center(self) -> tuple[float, float]:
        return (self.x1 + self.x2) / 2.0, (self.y1 + self.y2) / 2.0

    def xyxy(self) -> tuple[float, float, float, float]:
        return self.x1, self.y1, self.x2, self.y2

    def array(self) -> np.ndarray:
        """float32 `[x1, y1, x2, y2]`, the detectors' own convention."""
        return np.array(self.xyxy(), np.float32)

    def clip(self, image_w: float, image_h: float) -> Box:
        """The part inside a `image_w` x `image_h` image; empty (zero area) when none is."""
        x1, y1 = max(self.x1, 0.0), max(self.y1, 0.0)
        x2, y2 = min(self.x2, float(image_w)), min(self.y2, float(image_h))
        return Box(x1, y1, max(x2, x1), max(y2, y1))

    def clip_nonempty(self, image_w: int, image_h: int) -> Box:
        """Clipped to the image but at least one pixel wide and high, starting inside it:
        a crop always has pixels to read, even for a box that is (almost) outside."""
        x1 = min(max(self.x1, 0.0), image_w - 1.0)
        y1 = min(max(self.y1, 0.0), image_h - 1.0)
        x2 = min(max(self.x2, x1 + 1.0), float(image_w))
        y2 = min(max(self.y2, y1 + 1.0), float(image_h))
        return Box(x1, y1, x2, y2)

    def clipped_size(self, image_w: float, image_h: float) -> tuple[float, float]:
        """Width and height of the part inside the image (0 when outside)."""
        c = self.clip(image_w, image_h)
        return c.width, c.height

    def inside_share(self, image_w: float, image_h: float) -> float:
        """Share 0..1 of the box's area inside the image; 0 for an empty box."""
        full = self.area
        return self.clip(image_w, image_h).area / full if full > 0 else 0.0

    def union(self, other: Box) -> Box:
        """The smallest box enclosing both."""
        return Box(
            min(self.x1, other.x1),
            min(self.y1, other.y1),
            max(self.x2, other.x2),
            max(self.y2, other.y2),
        )

    def iou(self, other: Box) -> float:
        """Intersection over union; 0 when either box is empty."""
        ix = max(min(self.x2, other.x2) - max(self.x1, other.x1), 0.0)
        iy = max(min(self.y2, other.y2) - max(self.y1, other.y1), 0.0)
        inter = ix * iy
        union = self.area + other.area - inter
        return inter / union if union > 0 else 0.0

    def pixels(self, image_w: int, image_h: int) -> PixelBox:
        """Clipped to the image and rounded edge by edge (api.md §2.2 `position`): the
        corners are rounded, not the size, so adjacent boxes share an edge."""
        x1 = round(max(0.0, self.x1))
        y1 = round(max(0.0, self.y1))
        x2 = round(min(float(image_w), self.x2))
        y2 = round(min(float(image_h), self.y2))
        return PixelBox(left=x1, top=y1, width=max(x2 - x1, 0), height=max(y2 - y1, 0))


@dataclass(frozen=True)
class KeypointPose:
    """Head turn read from the 5 detector keypoints, in face units (not degrees).

    `yaw`: horizontal nose offset from the eye/mouth midline over the eye distance, in the
    frame where the eyes are level (0 = frontal, about 0.5 near 45 degrees). `pitch`:
    vertical nose position between the eye line (0) and the mouth line (1). NaN when the
    keypoints are degenerate (eyes on one point, eye and mouth lines level).
    """

    yaw: float
    pitch: float

    @property
    def known(self) -> bool:
        return not (math.isnan(self.yaw) or math.isnan(self.pitch))


def keypoint_pose(kps: np.ndarray) -> KeypointPose:
    """Yaw and pitch from the keypoints (image-left eye, image-right eye, nose, mouth l/r)."""
    k = np.asarray(kps, np.float64).reshape(5, 2)
    eye_l, eye_r, nose, mouth_l, mouth_r = k
    d = eye_r - eye_l
    eye_dist = float(np.hypot(*d))
    yaw = pitch = float("nan")
    if eye_dist > 1e-6:
        c, s = d / eye_dist
        rot = np.array([[c, s], [-s, c]])  # rotates the eye line onto the x axis
        e_mid = rot @ ((eye_l + eye_r) / 2)
        m_mid = rot @ ((mouth_l + mouth_r) / 2)
        n = rot @ nose
        yaw = float((n[0] - (e_mid[0] + m_mid[0]) / 2) / eye_dist)
        span = float(m_mid[1] - e_mid[1])
        if abs(span) > 1e-6:
            pitch = float((n[1] - e_mid[1]) / span)
    return KeypointPose(yaw=yaw, pitch=pitch)
