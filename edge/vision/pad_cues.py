"""Model-free presentation-attack cues: cheap image statistics added to the liveness fusion.

Why: the two MiniFASNet models rank attacks of an unseen capture setup well but their
scores sit at that setup's own level, so a threshold fitted elsewhere lets many through.
The cues below measure what the physical attack chain does to the pixels, the evidence
the PAD literature finds to carry across setups, one per family, each with the direction
the physics predicts (the fit may only weigh it that way, see `CUE_SIGNS`):

- `moire`: a screen's pixel grid or a print's halftone re-sampled by the camera is a
  periodic pattern; it shows as an isolated peak in the spectrum of the face's fine
  detail (high-pass residual), where skin texture, hair and noise are broadband.
- `blackLevel`: a screen's black glows and ink never reaches black, so the darkest face
  pixels (1st luma percentile) stay brighter than on a lit real face.
- `saturation`: screens and prints have a narrower gamut than the scene; the most
  saturated face pixels (90th percentile of HSV saturation) lose colour.
- `frameLines`: a device bezel or a paper edge in the context around the face is a long
  straight edge; it concentrates the gradient directions of the context ring in one
  orientation, where rooms and bodies spread them.

Measured on the crops the scorer already makes: the face box it centres the models on
(resampled to 128 px) and the 4.0x context crop of the second model (128 px). Per face
about 0.7 ms for the three face cues, 1.2-1.7 ms with `frameLines` (whose context crop is
most of the cost, so it is only made when asked for). They never replace the models, they
only move the fused log-odds, and only once a calibration (schema 2) gives them a weight;
`frameLines` is reported, not shipped (edge/evaluation/liveness_loso.py, FIT_CUES).
"""

from __future__ import annotations

import math
from collections.abc import Collection

import cv2
import numpy as np

from edge.vision.geometry import Box

__all__ = ["CONTEXT_SCALE", "CUES", "CUE_SIDE", "CUE_SIGNS", "pad_cues"]

CUES = ("moire", "blackLevel", "saturation", "frameLines")
CUE_SIGNS = {"moire": 1.0, "blackLevel": 1.0, "saturation": -1.0, "frameLines": 1.0}
"""+1: a higher value is evidence of an attack; -1: a lower one. Fits are held to it."""
CUE_SIDE = 128  # both crops are resampled to this square: fixed cost, face-size independent
CONTEXT_SCALE = 4.0  # the v1se model's context crop; bezels and paper edges show there

_yy, _xx = np.mgrid[0:CUE_SIDE, 0:CUE_SIDE]
_RADIUS = np.hypot(_yy - CUE_SIDE // 2, _xx - CUE_SIDE // 2) / (CUE_SIDE / 2)
_BAND = (_RADIUS > 0.1) & (_RADIUS < 1.0)  # above the face's own shape, below the corners
_WINDOW = np.outer(np.hanning(CUE_SIDE), np.hanning(CUE_SIDE))  # no edge leakage
_RING = np.ones((CUE_SIDE, CUE_SIDE), bool)
_RING[CUE_SIDE * 3 // 16 : CUE_SIDE * 13 // 16, CUE_SIDE * 3 // 16 : CUE_SIDE * 13 // 16] = False


def _percentile_u8(values: np.ndarray, q: float) -> float:
    """The q-th percentile (0-100) of uint8 values by histogram (exact, no sort)."""
    counts = np.bincount(values.ravel(), minlength=256)
    return float(np.searchsorted(np.cumsum(counts), q / 100 * values.size, side="left"))


def _crop(bgr: np.ndarray, x1: int, y1: int, x2: int, y2: int) -> np.ndarray:
    """The region area-averaged to CUE_SIDE (no aliasing that could fake or hide moire).

    A large region is first box-averaged by a whole factor (OpenCV's fast path), then
    area-resampled the rest of the way: the same pixels at a fraction of the cost.
    """
    region = bgr[y1 : max(y2, y1 + 1), x1 : max(x2, x1 + 1)]
    h, w = region.shape[:2]
    k = max(1, min(h, w) // CUE_SIDE)
    if k > 1:
        region = cv2.resize(
            region[: h // k * k, : w // k * k], (w // k, h // k), interpolation=cv2.INTER_AREA
        )
    out: np.ndarray = cv2.resize(region, (CUE_SIDE, CUE_SIDE), interpolation=cv2.INTER_AREA)
    return out


def pad_cues(
    bgr: np.ndarray,
    box: np.ndarray,
    context_box: tuple[int, int, int, int],
    names: Collection[str] = CUES,
) -> dict[str, float]:
    """The cues `names` (default: all, in `CUES` order) of the face whose (landmark or
    detector) box is `box`.

    `box` is the one the liveness models' crops are centred on and `context_box` the
    inclusive pixel box of their `CONTEXT_SCALE` crop (`liveness.context_crop_box`), so
    the cues see the face and the context the models see. The context crop is only made
    when `frameLines` is asked for (it is most of the cost).
    """
    unknown = set(names) - set(CUES)
    if unknown:
        raise ValueError(f"unknown cues {sorted(unknown)}; known: {list(CUES)}")
    h, w = bgr.shape[:2]
    fb = Box.of(box).clip_nonempty(w, h)
    fx1, fy1, fx2, fy2 = (round(v) for v in fb.xyxy())
    face = _crop(bgr, fx1, fy1, fx2, fy2)
    out: dict[str, float] = {}
    if "moire" in names:
        out["moire"] = _moire(face)
    if "blackLevel" in names:
        luma = cv2.cvtColor(face, cv2.COLOR_BGR2YCrCb)[..., 0]
        out["blackLevel"] = _percentile_u8(luma, 1) / 255.0
    if "saturation" in names:
        sat = cv2.cvtColor(face, cv2.COLOR_BGR2HSV)[..., 1]
        out["saturation"] = _percentile_u8(sat, 90) / 255.0
    if "frameLines" in names:
        cx1, cy1, cx2, cy2 = context_box
        out["frameLines"] = _frame_lines(_crop(bgr, cx1, cy1, cx2 + 1, cy2 + 1))
    return out


def _moire(face: np.ndarray) -> float:
    """Log ratio of the strongest to the median power of the face's high-pass residual."""
    gray = cv2.cvtColor(face, cv2.COLOR_BGR2GRAY).astype(np.float32)
    residual = (gray - cv2.GaussianBlur(gray, (0, 0), 1.5)) * _WINDOW.astype(np.float32)
    re, im = cv2.split(cv2.dft(residual, flags=cv2.DFT_COMPLEX_OUTPUT))
    band = np.fft.fftshift(re * re + im * im)[_BAND]
    return math.log(float(band.max()) + 1e-9) - math.log(float(np.median(band)) + 1e-9)


def _frame_lines(context: np.ndarray) -> float:
    """Peak over mean of the gradient-weighted orientation histogram of the context ring."""
    c = cv2.cvtColor(context, cv2.COLOR_BGR2GRAY).astype(np.float32)
    gx, gy = cv2.Sobel(c, cv2.CV_32F, 1, 0), cv2.Sobel(c, cv2.CV_32F, 0, 1)
    mag, ang = cv2.cartToPolar(gx, gy)
    hist = np.bincount(
        (np.mod(ang[_RING], math.pi) / math.pi * 36).astype(np.int64) % 36,
        weights=mag[_RING].astype(np.float64),
        minlength=36,
    )
    return float(hist.max() / (hist.mean() + 1e-9))
