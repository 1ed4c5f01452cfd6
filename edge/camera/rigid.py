"""Rigid-motion liveness evidence on a camera track: does the face move like a plane?

Why: a printed photo or a phone held up to the camera is flat. However it is turned, the
image of a plane in one frame maps onto its image in another by a homography (a 3x3
projective map), so the face's points of two frames fit one homography almost exactly. A
real head turning out of plane shows parallax: the nose tip, the eye corners and the cheeks
lie at different depths and move differently, and a homography leaves a residual. Pure
in-plane motion (a shift, a roll, a step closer) is a similarity for a head and a plane
alike and says nothing: a frame pair counts only when its points moved at least
`MIN_MOTION` (x inter-ocular distance) away from the best similarity. The pair's score is
the homography residual over that non-similar motion: low for a plane (what is left is the
noise of following pixels), about half for a head (`edge-face eval liveness --rigid`).

The points are the mesh's rigid points (`RIGID_POINTS`), followed by their pixels
(`edge.vision.motion.follow`): the mesh alone draws a turning head even on a turned photo.

What it cannot catch: a screen replaying a video of a real moving head shows that head's
parallax (its content is not flat; only the screen is), a photo bent around a cylinder is
not a plane either, and a face that never turns leaves the cue undecided. Light changing
across a turned sheet (glare, shading) and motion blur make the pixels harder to follow:
fewer sheets are decided, and some screens read as depth.

`pair_motion`, `rigid_evidence` and `RigidMotion` are numbers only (tests with hand-built
point sets: tests/camera/test_rigid.py); `TrackMotion` keeps a track's anchor frame and is
what the camera worker and the evaluation feed, one mesh per frame.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Literal

import cv2
import numpy as np

from edge.vision.motion import MIN_POINTS, follow

__all__ = [
    "DEPTH_MIN",
    "FLAT_MAX",
    "MIN_MOTION",
    "RIGID_POINTS",
    "PairMotion",
    "RigidEvidence",
    "RigidMotion",
    "TrackMotion",
    "fit_homography",
    "homography_residual",
    "pair_motion",
    "rigid_evidence",
    "similarity_residual",
]

RigidVerdict = Literal["flat", "depth", "undecided"]

# MediaPipe 468-mesh indices that move with the skull: eye corners, nose, forehead, cheeks,
# the upper face contour. Lids, brows, lips and jaw move on their own and are left out.
RIGID_POINTS: tuple[int, ...] = (
    33, 133, 362, 263, 130, 359, 243, 463,  # eye corners
    168, 6, 197, 195, 5, 4, 1, 2, 19, 94, 98, 327, 64, 294, 48, 278, 115, 344,  # nose
    10, 151, 9, 108, 337, 67, 297, 109, 338, 69, 299, 104, 333,  # forehead
    50, 280, 101, 330, 36, 266, 205, 425, 117, 346, 118, 347, 123, 352, 187, 411,  # cheeks
    116, 345, 127, 356, 234, 454, 93, 323, 132, 361, 162, 389, 21, 251, 54, 284,  # contour
    103, 332,
)  # fmt: skip
EYE_OUTER = (33, 263)  # mesh indices of the outer eye corners: inter-ocular distance

# Thresholds read off `edge-face eval liveness --rigid` (no held-out set exists): live
# tracks scored 0.30 and up, turned sheets mostly 0.07-0.25; FLAT_MAX keeps a margin below
# the live tail because a `flat` reading turns a live verdict into spoof.
MIN_MOTION = 0.02  # a pair counts when its points left the best similarity this much (x IOD)
FLAT_MAX = 0.2  # track score (residual / non-similar motion) at or below this: flat
DEPTH_MIN = 0.35  # at or above this: depth; in between: undecided
MIN_PAIRS = 2  # counted frame pairs a verdict needs
MAX_PAIRS = 24  # pairs kept per track (the first ones)


@dataclass(frozen=True)
class PairMotion:
    """Two frames' point pairs reduced to two numbers, both x inter-ocular distance."""

    similarity: float  # RMS distance from the best similarity: motion a roll/shift can't make
    residual: float  # RMS distance from the best homography: what no plane can make

    @property
    def counts(self) -> bool:
        return self.similarity >= MIN_MOTION

    @property
    def ratio(self) -> float:
        return self.residual / self.similarity if self.similarity > 0 else float("nan")


@dataclass(frozen=True)
class RigidEvidence:
    """What a track's motion says: `flat` (a plane), `depth` (parallax), or `undecided`."""

    verdict: RigidVerdict
    score: float | None  # median residual / non-similar motion over the counted pairs
    pairs: int  # frame pairs that counted (moved out of plane enough)


UNDECIDED = RigidEvidence("undecided", None, 0)


def _normalise(p: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Hartley normalisation: centred, mean distance sqrt(2); returns points and the 3x3."""
    c = p.mean(axis=0)
    d = float(np.sqrt(((p - c) ** 2).sum(axis=1)).mean()) or 1.0
    s = math.sqrt(2.0) / d
    t = np.array([[s, 0.0, -s * c[0]], [0.0, s, -s * c[1]], [0.0, 0.0, 1.0]])
    return (p - c) * s, t


def fit_homography(src: np.ndarray, dst: np.ndarray) -> np.ndarray:
    """Least-squares homography src -> dst (normalised DLT; no sampling, so deterministic)."""
    a, ta = _normalise(np.asarray(src, np.float64))
    b, tb = _normalise(np.asarray(dst, np.float64))
    n = len(a)
    m = np.zeros((2 * n, 9))
    m[0::2, 0:2], m[0::2, 2] = a, 1.0
    m[0::2, 6:8], m[0::2, 8] = -b[:, :1] * a, -b[:, 0]
    m[1::2, 3:5], m[1::2, 5] = a, 1.0
    m[1::2, 6:8], m[1::2, 8] = -b[:, 1:] * a, -b[:, 1]
    h = np.linalg.svd(m)[2][-1].reshape(3, 3)
    out: np.ndarray = np.linalg.inv(tb) @ h @ ta
    return out / out[2, 2] if abs(out[2, 2]) > 1e-12 else out


def _apply(h: np.ndarray, p: np.ndarray) -> np.ndarray:
    q = np.c_[p, np.ones(len(p))] @ h.T
    w = np.where(np.abs(q[:, 2:]) < 1e-12, 1e-12, q[:, 2:])
    out: np.ndarray = q[:, :2] / w
    return out


def homography_residual(src: np.ndarray, dst: np.ndarray) -> float:
    """RMS distance of dst from the homography-mapped src, in dst pixels.

    One refit without the worst tenth of the points, so one badly followed point does not
    read as parallax (parallax moves whole regions, not one point)."""
    src, dst = np.asarray(src, np.float64), np.asarray(dst, np.float64)
    e = np.hypot(*(_apply(fit_homography(src, dst), src) - dst).T)
    keep = e <= np.quantile(e, 0.9)
    e = np.hypot(*(_apply(fit_homography(src[keep], dst[keep]), src[keep]) - dst[keep]).T)
    return float(np.sqrt((e**2).mean()))


def similarity_residual(src: np.ndarray, dst: np.ndarray) -> float:
    """RMS distance of dst from the least-squares similarity (shift, turn, scale) of src."""
    src, dst = np.asarray(src, np.float64), np.asarray(dst, np.float64)
    a = np.zeros((2 * len(src), 4))
    a[0::2] = np.c_[src[:, 0], -src[:, 1], np.ones(len(src)), np.zeros(len(src))]
    a[1::2] = np.c_[src[:, 1], src[:, 0], np.zeros(len(src)), np.ones(len(src))]
    x = np.linalg.lstsq(a, dst.reshape(-1), rcond=None)[0]
    e = (a @ x - dst.reshape(-1)).reshape(-1, 2)
    return float(np.sqrt((e**2).sum(axis=1).mean()))


def pair_motion(src: np.ndarray, dst: np.ndarray, iod: float) -> PairMotion | None:
    """The pair's non-similar motion and homography residual over `iod` pixels; None with
    too few points to tell (a homography has 8 degrees of freedom)."""
    if len(src) < MIN_POINTS or iod <= 0:
        return None
    return PairMotion(similarity_residual(src, dst) / iod, homography_residual(src, dst) / iod)


def rigid_evidence(
    pairs: Sequence[PairMotion],
    *,
    flat_max: float = FLAT_MAX,
    depth_min: float = DEPTH_MIN,
    min_pairs: int = MIN_PAIRS,
) -> RigidEvidence:
    """The track's verdict: the median ratio over the pairs that moved out of plane."""
    ratios = [p.ratio for p in pairs if p.counts and math.isfinite(p.ratio)]
    if len(ratios) < min_pairs:
        return RigidEvidence("undecided", None, len(ratios))
    score = float(np.median(ratios))
    verdict: RigidVerdict = (
        "flat" if score <= flat_max else "depth" if score >= depth_min else "undecided"
    )
    return RigidEvidence(verdict, round(score, 4), len(ratios))


class RigidMotion:
    """A track's frame-pair motions, in order, and the evidence they add up to (cached)."""

    def __init__(self, max_pairs: int = MAX_PAIRS) -> None:
        self.max_pairs = max_pairs
        self._pairs: list[PairMotion] = []
        self._cached: RigidEvidence | None = UNDECIDED

    def add(self, pair: PairMotion) -> None:
        """Keep `pair` if it counts (moved out of plane enough) and there is room."""
        if pair.counts and len(self._pairs) < self.max_pairs:
            self._pairs.append(pair)
            self._cached = None

    @property
    def pairs(self) -> int:
        return len(self._pairs)

    def evidence(self) -> RigidEvidence:
        if self._cached is None:
            self._cached = rigid_evidence(self._pairs)
        return self._cached


class TrackMotion:
    """One track's anchor frame (grey image, rigid mesh points) and the pairs it yields.

    Each new frame is compared with the anchor; the frame becomes the new anchor once the
    pair counted (so slow turns add up over frames) or could not be followed (so the next
    pair starts from what the face looks like now). The grey image lives only in memory,
    only while the track does.
    """

    def __init__(self) -> None:
        self._anchor: tuple[np.ndarray, np.ndarray, float] | None = None

    def see(self, bgr: np.ndarray, mesh_points: np.ndarray) -> PairMotion | None:
        """This frame's motion from the anchor; `mesh_points`: the 468 image points."""
        pts = np.asarray(mesh_points, np.float64)[:, :2]
        gray = cv2.cvtColor(bgr, cv2.COLOR_BGR2GRAY) if bgr.ndim == 3 else bgr
        rigid = pts[list(RIGID_POINTS)]
        anchor, self._anchor = self._anchor, (gray, rigid, _iod(pts))
        if anchor is None:
            return None
        iod = (anchor[2] + self._anchor[2]) / 2
        a, b = follow(anchor[0], anchor[1], gray, rigid, iod)
        pair = pair_motion(a, b, iod)
        if pair is not None and not pair.counts:
            self._anchor = anchor  # not enough motion yet: keep comparing with the anchor
        return pair


def _iod(points: np.ndarray) -> float:
    a, b = points[EYE_OUTER[0]], points[EYE_OUTER[1]]
    return float(np.hypot(*(b - a)))
