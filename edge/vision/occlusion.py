"""Per-part visibility measured from the image, on the 468-point mesh's upright face crop.

Why: a landmark model draws every part whether or not it can be seen (it hallucinates the
eyebrows under a bar, the lips under a mask), so "the part's points are inside the image"
is a constant 1 on almost every face. Two image measures replace it:

* edge evidence (eyebrows, eyes, nose, mouth): the 30th percentile of the absolute Weber
  contrast across the part's mesh outline, (I_out - I_in) / ((I_out + I_in) / 2 + 10),
  sampled 2.5 px either side of the outline on the blurred grey crop (a low percentile, not
  the mean: on an occluded part the mesh may still lay a stretch of the outline along the
  occluder's own edge). A visible part has a border (brow against skin, lids, nostrils,
  lips); a bar, a mask, a hand or dark glasses over it replaces the border by the
  occluder's uniform surface and the contrast falls towards 0.
* skin continuity (faceContour): share of the band just inside the face oval whose colour
  matches the face's own skin, the reference being the median over upper-face patches
  (forehead, upper cheeks, nose bridge: the majority stays visible under a mask or a fringe).
  A mask, a scarf or hair over the jaw, cheeks or forehead is not skin-coloured. A grey image
  has no chroma, so the band matches on luma only (weakly).

Each raw value v maps to 1 - exp(-v / tau), tau per part = the median over 60 clean test
portraits (faces_by_identity, every fourth image from the fourth; `eval faces` measures on
the disjoint set from the second) / ln(10), so the median visible part reads 0.9 and an
occluded part near 0; values differ from face to face (a blurred or very low-contrast face
also reads lower: less of the part can be seen). Measured by `edge-face eval faces`.
"""

from __future__ import annotations

import itertools
import math

import cv2
import numpy as np

from edge.vision.mesh import PART_OUTLINES, Mesh

OFFSET = 2.5  # px in the 192-px crop, either side of the outline
STEP = 1.0  # px between samples along the outline
QUANTILE = 30.0  # a part is as visible as the weaker stretches of its border, not its best
EDGE_PARTS = ("leftEyeBrow", "rightEyeBrow", "leftEye", "rightEye", "nose", "mouth")
# tau = clean median / ln(10) (60 portraits of the shared test set): median visible -> 0.9
TAU: dict[str, float] = {
    "leftEyeBrow": 0.072,
    "rightEyeBrow": 0.072,
    "leftEye": 0.074,
    "rightEye": 0.074,
    "nose": 0.0224,
    "mouth": 0.0559,
    "faceContour": 0.208,
}
# Upper-face skin patches (forehead, upper cheeks, nose bridge) for the skin reference.
SKIN_REF = (151, 108, 337, 117, 346, 118, 347, 6, 197)
BAND_INSET = 0.12  # inner band: contour moved this share of the way to the face centre
SKIN_SIGMA = 12.0  # colour distance (YCrCb units, luma / 4) at which a match weighs e^-1


def _outline_samples(poly: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Points every STEP px along the closed polygon and their unit normals, outward."""
    closed = np.vstack([poly, poly[:1]])
    pts: list[np.ndarray] = []
    nrm: list[np.ndarray] = []
    for a, b in itertools.pairwise(closed):
        seg = b - a
        length = float(np.hypot(seg[0], seg[1]))
        if length < 1e-6:
            continue
        n = np.array([-seg[1], seg[0]]) / length
        k = max(1, int(length / STEP))
        t = np.arange(k, dtype=np.float64)[:, None] / k
        pts.append(a + t * seg)
        nrm.append(np.repeat(n[None], k, axis=0))
    if not pts:
        return np.zeros((0, 2)), np.zeros((0, 2))
    p, n = np.vstack(pts), np.vstack(nrm)
    side = np.sign(((p - poly.mean(axis=0)) * n).sum(axis=1))
    side[side == 0] = 1.0
    return p, n * side[:, None]


def _sample(img: np.ndarray, pts: np.ndarray) -> np.ndarray:
    xy = pts.astype(np.float32)
    out: np.ndarray = cv2.remap(
        img, xy[:, :1], xy[:, 1:2], cv2.INTER_LINEAR, borderMode=cv2.BORDER_REPLICATE
    )
    return out.reshape(len(pts), -1)


def edge_contrast(grey: np.ndarray, poly: np.ndarray) -> float:
    """Mean |Weber contrast| across the outline `poly` (crop px) on the float grey crop."""
    p, n = _outline_samples(poly)
    if len(p) == 0:
        return 0.0
    outer = _sample(grey, p + OFFSET * n)[:, 0]
    inner = _sample(grey, p - OFFSET * n)[:, 0]
    w = np.abs(outer - inner) / ((outer + inner) / 2.0 + 10.0)
    return float(np.percentile(w, QUANTILE))


def skin_continuity(ycrcb: np.ndarray, points: np.ndarray) -> float:
    """Mean colour match (0..1) of the inner band of the face oval to the upper-face skin."""
    ref = np.median(_sample(ycrcb, points[list(SKIN_REF)]), axis=0)
    oval = points[list(PART_OUTLINES["faceContour"])]
    centre = points[list(SKIN_REF)].mean(axis=0)
    p, _ = _outline_samples(oval + BAND_INSET * (centre - oval))
    if len(p) == 0:
        return 0.0
    d = _sample(ycrcb, p) - ref
    d[:, 0] /= 4.0
    dist = np.sqrt((d**2).sum(axis=1))
    return float(np.mean(np.exp(-((dist / SKIN_SIGMA) ** 2))))


def raw_evidence(mesh: Mesh) -> dict[str, float]:
    """Unmapped per-part evidence (edge contrast, or skin continuity for the contour)."""
    crop = mesh.crop
    grey = cv2.GaussianBlur(cv2.cvtColor(crop, cv2.COLOR_BGR2GRAY).astype(np.float32), (0, 0), 1.0)
    pts = mesh.crop_points[:, :2]
    out = {part: edge_contrast(grey, pts[list(PART_OUTLINES[part])]) for part in EDGE_PARTS}
    ycrcb = cv2.cvtColor(crop, cv2.COLOR_BGR2YCrCb).astype(np.float32)
    out["faceContour"] = skin_continuity(ycrcb, pts)
    return out


def visibility(mesh: Mesh) -> dict[str, float]:
    """Per-part visibility 0..1 from image evidence (see the module docstring)."""
    return {part: 1.0 - math.exp(-v / TAU[part]) for part, v in raw_evidence(mesh).items()}
