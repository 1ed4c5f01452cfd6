"""Where a face's points went between two frames, by the pixels (not by a model's prior).

Why: the 468-point mesh places its points from a learned 3D face, so on a photo turned in
the hand it draws a turning head, not the plane it sees (measured: its points fit a
homography no better on a turned print than on a real head). Pyramidal Lucas-Kanade follows
the image content itself: started from the mesh points of the earlier frame, with the
later frame's mesh points as the first guess, it moves each point to where its patch went.
A forward-backward check drops the points it lost (texture-poor skin, an occluded cheek).
"""

from __future__ import annotations

import cv2
import numpy as np

__all__ = ["MIN_POINTS", "follow"]

MIN_POINTS = 12  # fewer followed points than this: no correspondence
FB_MAX = 0.02  # forward-backward error allowed, x inter-ocular distance
LEVELS = 3
WIN_IOD = 0.15  # Lucas-Kanade patch side, x inter-ocular distance
SHADE_IOD = 0.3  # blur (sigma, x inter-ocular distance) taken as shading, not texture


def _same_size(a: np.ndarray, b: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Both images padded (bottom / right, black) to a common size; coordinates unchanged."""
    h, w = max(a.shape[0], b.shape[0]), max(a.shape[1], b.shape[1])

    def pad(x: np.ndarray) -> np.ndarray:
        if x.shape[:2] == (h, w):
            return x
        out: np.ndarray = cv2.copyMakeBorder(
            x, 0, h - x.shape[0], 0, w - x.shape[1], cv2.BORDER_CONSTANT, value=0
        )
        return out

    return pad(a), pad(b)


def _flattened(gray: np.ndarray, iod: float) -> np.ndarray:
    """Light taken out: log intensity minus its blur (a gain and a smooth shading ramp
    become a constant and are removed), back on a fixed 8-bit scale for Lucas-Kanade,
    which assumes each patch keeps its brightness."""
    log = np.log1p(gray.astype(np.float32))
    sigma = max(2.0, SHADE_IOD * iod)
    hp = log - cv2.GaussianBlur(log, (0, 0), sigma)
    out: np.ndarray = np.clip(128.0 + 400.0 * hp, 0, 255).astype(np.uint8)
    return out


def follow(
    prev_gray: np.ndarray,
    prev_points: np.ndarray,
    gray: np.ndarray,
    guess: np.ndarray,
    iod: float,
) -> tuple[np.ndarray, np.ndarray]:
    """Point pairs (a in `prev_gray`, b in `gray`), (K, 2) each, of the points followed
    both ways; K may be 0. `guess`: where a model puts the points in `gray`; `iod`: the
    inter-ocular distance in pixels (sets the patch size and the forward-backward limit)."""
    a_img, b_img = _same_size(_flattened(prev_gray, iod), _flattened(gray, iod))
    p0 = np.ascontiguousarray(prev_points, np.float32).reshape(-1, 1, 2)
    init = np.ascontiguousarray(guess, np.float32).reshape(-1, 1, 2).copy()
    win = max(9, int(iod * WIN_IOD) | 1)
    crit = (cv2.TERM_CRITERIA_EPS | cv2.TERM_CRITERIA_COUNT, 30, 0.01)
    flags = cv2.OPTFLOW_USE_INITIAL_FLOW
    p1, st1, _ = cv2.calcOpticalFlowPyrLK(
        a_img, b_img, p0, init, winSize=(win, win), maxLevel=LEVELS, criteria=crit, flags=flags
    )
    back, st2, _ = cv2.calcOpticalFlowPyrLK(
        b_img,
        a_img,
        p1,
        p0.copy(),
        winSize=(win, win),
        maxLevel=LEVELS,
        criteria=crit,
        flags=flags,
    )
    fb = np.hypot(*(back - p0).reshape(-1, 2).T)
    ok = (st1.ravel() == 1) & (st2.ravel() == 1) & (fb < FB_MAX * iod)
    a = p0.reshape(-1, 2)[ok].astype(np.float64)
    b = p1.reshape(-1, 2)[ok].astype(np.float64)
    return a, b
