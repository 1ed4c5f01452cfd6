"""Helpers for the vision tests."""

from __future__ import annotations

import numpy as np


def iou(a: np.ndarray, b: np.ndarray) -> float:
    """Intersection over union of two [x1, y1, x2, y2] boxes."""
    w = max(0.0, min(a[2], b[2]) - max(a[0], b[0]))
    h = max(0.0, min(a[3], b[3]) - max(a[1], b[1]))
    inter = w * h
    return inter / ((a[2] - a[0]) * (a[3] - a[1]) + (b[2] - b[0]) * (b[3] - b[1]) - inter)


#: Frontal faces of several kinds (colour photos, studio grey) for landmark checks.
FRONTAL = [
    "faces_by_identity/barack_obama/1.jpg",
    "faces_by_identity/joe_biden/1.jpg",
    "faces_by_identity/angelina_jolie/1.jpg",
    "annotations/emotion/faceapi_neutral.jpg",
    "annotations/emotion/faceapi_happy.jpg",
    "faces_by_identity/yale_subject01/5.png",
]
