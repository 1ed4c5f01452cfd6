"""Face alignment: 5 keypoints -> the 112x112 ArcFace template by a similarity transform.

The recognition network was trained on crops made this way, so embeddings are only
comparable when every face goes through exactly the same geometry.
"""

from __future__ import annotations

import cv2
import numpy as np

__all__ = ["ARCFACE_TEMPLATE", "align_face", "similarity_transform"]

ARCFACE_TEMPLATE = np.array(
    [
        [38.2946, 51.6963],
        [73.5318, 51.5014],
        [56.0252, 71.7366],
        [41.5493, 92.3655],
        [70.7299, 92.2041],
    ],
    dtype=np.float32,
)


def similarity_transform(src: np.ndarray, dst: np.ndarray) -> np.ndarray:
    """2x3 matrix M (rotation+uniform scale+translation) minimising sum |M src - dst|^2.

    Umeyama's closed form: centre both point sets, take the SVD of their covariance; the
    reflection guard keeps it a proper rotation so a mirrored keypoint order cannot flip faces.
    """
    src = np.asarray(src, dtype=np.float64)
    dst = np.asarray(dst, dtype=np.float64)
    mu_s, mu_d = src.mean(0), dst.mean(0)
    s0, d0 = src - mu_s, dst - mu_d
    var_s = (s0**2).sum() / len(src)
    cov = d0.T @ s0 / len(src)
    u, sig, vt = np.linalg.svd(cov)
    e = np.ones(2)
    if np.linalg.det(u) * np.linalg.det(vt) < 0:
        e[-1] = -1
    r = u @ np.diag(e) @ vt
    scale = (sig * e).sum() / var_s if var_s > 0 else 1.0
    t = mu_d - scale * r @ mu_s
    return np.hstack([scale * r, t[:, None]]).astype(np.float32)


def align_face(bgr: np.ndarray, kps: np.ndarray, size: int = 112) -> np.ndarray:
    """The (size, size, 3) BGR crop with the keypoints moved onto the ArcFace template."""
    template = ARCFACE_TEMPLATE * (size / 112.0)
    m = similarity_transform(kps, template)
    return cv2.warpAffine(bgr, m, (size, size), flags=cv2.INTER_LINEAR, borderValue=0)
