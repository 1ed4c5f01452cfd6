"""Sharpness of a face, measured once: the variance of the Laplacian.

Two readings of the same measure serve different masters. The `quality` block reads it on
the upright 112 px face crop, absolute (a small face blown up reads as blurred, which is what
a client asks). The liveness gates and the camera's best-frame choice divide it by the
region's own variance at 96x96 gray, so that neither face size nor a dim scene (contrast)
moves it: only the share of high-frequency energy counts.
"""

from __future__ import annotations

import math

import cv2
import numpy as np

from edge.vision.geometry import Box

__all__ = ["RELATIVE_SIDE", "laplacian_variance", "relative_sharpness", "saturate"]

RELATIVE_SIDE = 96  # the face region is resampled to this square before `relative_sharpness`


def laplacian_variance(grey: np.ndarray) -> float:
    """Variance of the 3x3 Laplacian of a one-channel image (float64 math)."""
    return float(cv2.Laplacian(grey, cv2.CV_64F).var())


def relative_sharpness(bgr: np.ndarray, box: Box) -> float:
    """Laplacian variance over pixel variance of the box's region resampled to 96x96 gray;
    0 for a flat region. `box` must lie inside the image (see `Box.clip_nonempty`)."""
    x1, y1 = int(box.x1), int(box.y1)
    region = bgr[y1 : max(math.ceil(box.y2), y1 + 1), x1 : max(int(box.x2), x1 + 1)]
    gray = cv2.cvtColor(region, cv2.COLOR_BGR2GRAY) if region.ndim == 3 else region
    size = (RELATIVE_SIDE, RELATIVE_SIDE)
    gray = cv2.resize(gray, size, interpolation=cv2.INTER_AREA).astype(np.float64)
    contrast = float(gray.var())
    return laplacian_variance(gray) / contrast if contrast > 1e-6 else 0.0


def saturate(value: float, half: float) -> float:
    """`value / (value + half)`: 0..1, 0.5 at `half`, for a measure that grows unbounded."""
    return value / (value + half)
