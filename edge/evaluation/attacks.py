"""Synthetic presentation attacks made from bona fide images, to widen liveness calibration.

Why: the labelled attacks of the test data are one replay video and three stills, so an
operating point fitted on them learns that one setup. Re-capturing every bona fide photo
as a screen replay and as a print gives the calibration many capture chains it would
otherwise never see. The attacks model what the physical chain does to the pixels:

- screen re-capture: the display's gamma and narrower gamut, its RGB sub-pixel grid
  re-sampled by the camera (moire is that aliasing, not a pattern painted on), glare on the
  glass, defocus, the device's bezel and the room around it, sensor noise and JPEG.
- print: colour loss and a paper-white / ink-black range, an ordered halftone dot screen per
  ink, ink spread, paper fibre texture, a lighting gradient across the flat sheet, the
  paper's margin on a desk, sensor noise and JPEG.

Every draw comes from `numpy.random.default_rng(seed)`: the same image and seed give the
same attack byte for byte, so calibrations and their reports can be reproduced. Each
attack also returns the 2x3 affine map from the source pixels to the attack's pixels, so
the source face's box and landmarks can be carried over without a second detection.
These images are for calibration and evaluation only: they are never stored or logged.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass

import cv2
import numpy as np

from edge.vision.types import Face

__all__ = [
    "ATTACKS",
    "Attack",
    "map_face",
    "matched_framing",
    "print_attack",
    "screen_replay",
    "synthesize",
]

MAX_SIDE = 512  # sources are brought to this size first: cost bounded, dots still resolved


@dataclass(frozen=True)
class Attack:
    """One synthetic attack: the image a camera would capture and where the source went."""

    kind: str  # "screen" | "print"
    image: np.ndarray  # BGR uint8
    matrix: np.ndarray  # 2x3 float64 affine: source pixel (x, y, 1) -> attack pixel
    params: dict[str, float]  # the drawn parameters (for reports)


def map_face(face: Face, matrix: np.ndarray) -> Face:
    """The source `face` as it lies in the attack image (box = hull of the mapped corners)."""
    m = np.asarray(matrix, np.float64)
    x1, y1, x2, y2 = (float(v) for v in face.box[:4])
    corners = np.array([[x1, y1], [x2, y1], [x1, y2], [x2, y2]], np.float64)
    c = corners @ m[:, :2].T + m[:, 2]
    kps = np.asarray(face.kps, np.float64).reshape(-1, 2) @ m[:, :2].T + m[:, 2]
    box = np.array([c[:, 0].min(), c[:, 1].min(), c[:, 0].max(), c[:, 1].max()], np.float32)
    return Face(box=box, score=face.score, kps=kps.astype(np.float32))


def _compose(outer: np.ndarray, inner: np.ndarray) -> np.ndarray:
    """2x3 affine `outer o inner`."""
    a: np.ndarray = np.vstack([outer, [0.0, 0.0, 1.0]]) @ np.vstack([inner, [0.0, 0.0, 1.0]])
    return a[:2]


def _fit_size(bgr: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    h, w = bgr.shape[:2]
    f = min(1.0, MAX_SIDE / max(h, w))
    m = np.array([[f, 0.0, 0.0], [0.0, f, 0.0]])
    if f == 1.0:
        return bgr.copy(), m
    size = (max(1, round(w * f)), max(1, round(h * f)))
    m[0, 0], m[1, 1] = size[0] / w, size[1] / h
    return cv2.resize(bgr, size, interpolation=cv2.INTER_AREA), m


def _tone(
    img: np.ndarray, saturation: float, gamma: float, black: float, white: float
) -> np.ndarray:
    """Saturation scale, gamma and an output range [black, white] (0-1 float image)."""
    gray = img.mean(axis=2, keepdims=True)
    out = gray + (img - gray) * saturation
    out = np.clip(out, 0.0, 1.0) ** gamma
    toned: np.ndarray = black + out * (white - black)
    return toned


def _finish(img: np.ndarray, rng: np.random.Generator, noise: float, quality: int) -> np.ndarray:
    """Sensor noise and the camera's JPEG encoding."""
    out = img + rng.normal(0.0, noise, img.shape)
    u8 = np.clip(out * 255.0 + 0.5, 0, 255).astype(np.uint8)
    ok, buf = cv2.imencode(".jpg", u8, [cv2.IMWRITE_JPEG_QUALITY, quality])
    if not ok:  # pragma: no cover - OpenCV always encodes a valid uint8 image
        raise RuntimeError("JPEG encoding failed")
    dec = cv2.imdecode(buf, cv2.IMREAD_COLOR)
    if dec is None:  # pragma: no cover
        raise RuntimeError("JPEG decoding failed")
    return dec


def _background(h: int, w: int, rng: np.random.Generator) -> np.ndarray:
    """A room or desk behind the device: a smooth two-colour gradient plus coarse texture."""
    c1, c2 = rng.uniform(0.15, 0.85, 3), rng.uniform(0.15, 0.85, 3)
    ang = rng.uniform(0, 2 * math.pi)
    yy, xx = np.mgrid[0:h, 0:w].astype(np.float64)
    t = (xx * math.cos(ang) + yy * math.sin(ang)) / max(h, w)
    t = (t - t.min()) / max(float(np.ptp(t)), 1e-9)
    bg = c1[None, None] * (1 - t[..., None]) + c2[None, None] * t[..., None]
    raw = np.asarray(cv2.GaussianBlur(rng.normal(0, 1, (h, w)), (0, 0), max(h, w) / 40))
    tex = raw / max(float(np.abs(raw).max()), 1e-9)
    out: np.ndarray = np.clip(bg + 0.06 * tex[..., None], 0.0, 1.0)
    return out


def _place(
    content: np.ndarray,
    rng: np.random.Generator,
    fill: tuple[float, float],
    border: float,
    border_colour: np.ndarray,
) -> tuple[np.ndarray, np.ndarray]:
    """`content` framed by a border of `border` x its short side, on a background.

    The framed object covers a `fill` share (drawn) of the output's width or height, is
    slightly rotated and off centre. Returns the image (0-1 float) and the content->output
    affine map.
    """
    h, w = content.shape[:2]
    b = max(1, round(border * min(h, w)))
    framed = np.empty((h + 2 * b, w + 2 * b, 3), np.float64)
    framed[:] = border_colour
    framed[b : b + h, b : b + w] = content
    fh, fw = framed.shape[:2]
    share = rng.uniform(*fill)
    out_w, out_h = round(fw / share), round(fh / share)
    angle = rng.uniform(-6.0, 6.0)
    cx = out_w / 2 + rng.uniform(-0.08, 0.08) * out_w
    cy = out_h / 2 + rng.uniform(-0.08, 0.08) * out_h
    rot = cv2.getRotationMatrix2D((fw / 2, fh / 2), angle, 1.0)
    rot[0, 2] += cx - fw / 2
    rot[1, 2] += cy - fh / 2
    bg = _background(out_h, out_w, rng)
    warped = cv2.warpAffine(framed, rot, (out_w, out_h), flags=cv2.INTER_LINEAR)
    mask = cv2.warpAffine(np.ones((fh, fw), np.float64), rot, (out_w, out_h))
    out = bg * (1 - mask[..., None]) + warped * mask[..., None]
    shift = np.array([[1.0, 0.0, b], [0.0, 1.0, b]])
    return out, _compose(rot, shift)


def screen_replay(bgr: np.ndarray, rng: np.random.Generator) -> Attack:
    """The image shown on a phone/tablet/monitor and captured by a camera."""
    src, m0 = _fit_size(bgr)
    img = src.astype(np.float32) / np.float32(255.0)
    p = {
        "saturation": rng.uniform(0.65, 0.95),  # narrower gamut than the scene
        "gamma": rng.uniform(0.7, 1.4),
        "black": rng.uniform(0.03, 0.15),  # screen black glows; white is the backlight
        "white": rng.uniform(0.82, 1.0),
        "pitch": rng.uniform(0.9, 1.25),  # camera pixels per screen pixel (moire beat)
        "subpixel": rng.uniform(0.3, 0.7),  # depth of the RGB stripe grid
        "optics": rng.uniform(0.3, 0.5),  # lens blur before sampling, in camera pixels
        "glare": rng.uniform(0.0, 0.55),
        "blur": rng.uniform(0.3, 1.4),
        "noise": rng.uniform(0.005, 0.025),
        "bezel": rng.uniform(0.03, 0.12),
    }
    img = _tone(img, p["saturation"], p["gamma"], p["black"], p["white"])
    # Each screen pixel is three vertical sub-pixel stripes (B, G, R in BGR order).
    h, w = img.shape[:2]
    up = np.repeat(np.repeat(img, 3, axis=0), 3, axis=1)
    stripe = np.full((3, 3), 1.0 - p["subpixel"])  # [column in the pixel, channel]
    for ch in range(3):
        stripe[2 - ch, ch] = 1.0  # R leftmost, as in most panels
    stripe /= stripe.mean(axis=0, keepdims=True)
    up *= np.tile(stripe, (w, 1)).astype(np.float32)[None, :, :]
    # The camera's optics blur the grid (a lens is a low-pass filter, so the aliased beat is
    # faint), then its pixels sample it at a slightly different pitch and angle: moire.
    up = cv2.GaussianBlur(up, (0, 0), 3.0 * p["pitch"] * p["optics"])
    scale = 1.0 / (3.0 * p["pitch"])
    angle = rng.uniform(-4.0, 4.0)
    rot = cv2.getRotationMatrix2D((0.0, 0.0), angle, scale)
    corners = np.array([[0, 0], [3 * w, 0], [0, 3 * h], [3 * w, 3 * h]], np.float64)
    mapped = corners @ rot[:, :2].T + rot[:, 2]
    rot[:, 2] -= mapped.min(axis=0)
    out_w, out_h = (np.ceil(mapped.max(axis=0) - mapped.min(axis=0))).astype(int)
    shot = cv2.warpAffine(up, rot, (int(out_w), int(out_h)), flags=cv2.INTER_LINEAR)
    to_shot = _compose(rot, np.array([[3.0, 0.0, 1.0], [0.0, 3.0, 1.0]]))  # pixel centres
    # Glare: a soft highlight reflected by the glass.
    sh, sw = shot.shape[:2]
    gx, gy = rng.uniform(0, sw), rng.uniform(0, sh)
    sig = rng.uniform(0.15, 0.45) * max(sh, sw)
    gxs = np.exp(-((np.arange(sw) - gx) ** 2) / (2 * sig**2)).astype(np.float32)
    gys = np.exp(-((np.arange(sh) - gy) ** 2) / (2 * sig**2)).astype(np.float32)
    glow = gys[:, None] * gxs[None, :]  # separable Gaussian
    shot = shot + np.float32(p["glare"]) * glow[..., None] * (1.0 - shot)
    bezel = np.full(3, rng.uniform(0.02, 0.2))
    framed, to_frame = _place(np.clip(shot, 0, 1), rng, (0.55, 0.9), p["bezel"], bezel)
    framed = cv2.GaussianBlur(framed, (0, 0), p["blur"])
    out = _finish(framed, rng, p["noise"], int(rng.integers(60, 92)))
    matrix = _compose(to_frame, _compose(to_shot, m0))
    return Attack("screen", out, matrix, {k: float(v) for k, v in p.items()})


def _halftone(channel: np.ndarray, pitch: float, angle: float) -> np.ndarray:
    """Ordered dot screen: ink where the tone is darker than a rotated periodic dot field."""
    h, w = channel.shape
    yy, xx = np.mgrid[0:h, 0:w].astype(np.float64)
    c, s = math.cos(angle), math.sin(angle)
    u, v = (xx * c + yy * s) / pitch, (-xx * s + yy * c) / pitch
    field = (np.cos(2 * math.pi * u) + np.cos(2 * math.pi * v) + 2.0) / 4.0  # 0..1
    ink: np.ndarray = (channel > field).astype(np.float64)
    return ink


def print_attack(bgr: np.ndarray, rng: np.random.Generator) -> Attack:
    """The image printed on paper (ink-jet / laser halftone) and held up to a camera."""
    src, m0 = _fit_size(bgr)
    img = src.astype(np.float32) / np.float32(255.0)
    p = {
        "saturation": rng.uniform(0.3, 0.8),  # colour loss of the inks
        "gamma": rng.uniform(0.85, 1.3),
        "black": rng.uniform(0.08, 0.22),  # ink never reaches black
        "white": rng.uniform(0.78, 0.95),  # nor paper white
        "pitch": rng.uniform(2.5, 5.0),  # dot pitch in source pixels
        "halftone": rng.uniform(0.5, 1.0),  # how much of the tone is carried by dots
        "fibre": rng.uniform(0.02, 0.07),
        "light": rng.uniform(0.05, 0.3),  # lighting gradient across the flat sheet
        "blur": rng.uniform(0.5, 1.5),
        "noise": rng.uniform(0.005, 0.025),
        "margin": rng.uniform(0.02, 0.1),
    }
    tone = _tone(img, p["saturation"], 1.0, 0.0, 1.0)
    # Subtractive inks, one rotated screen per channel (C, M, Y act on R, G, B).
    dots = np.empty_like(tone)
    for ch, ang in zip(range(3), (15.0, 75.0, 0.0), strict=True):
        dots[..., ch] = _halftone(tone[..., ch], p["pitch"], math.radians(ang))
    dots = cv2.GaussianBlur(dots, (0, 0), 0.35 * p["pitch"] / 2.5)  # ink spread
    tone = p["halftone"] * dots + (1 - p["halftone"]) * tone
    tone = _tone(tone, 1.0, p["gamma"], p["black"], p["white"])
    warm = np.array([rng.uniform(0.88, 0.98), rng.uniform(0.95, 1.0), 1.0])  # BGR paper tint
    tone = tone * warm
    h, w = tone.shape[:2]
    grain = np.asarray(cv2.GaussianBlur(rng.normal(0, 1, (h, w)), (0, 0), rng.uniform(0.8, 2.5)))
    fibre = grain / max(float(grain.std()), 1e-9)
    tone = tone * (1.0 + p["fibre"] * 0.3 * fibre[..., None])
    paper = np.full(3, 0.9) * warm
    framed, to_frame = _place(np.clip(tone, 0, 1), rng, (0.6, 0.92), p["margin"], paper)
    fh, fw = framed.shape[:2]
    ang = rng.uniform(0, 2 * math.pi)
    yy, xx = np.mgrid[0:fh, 0:fw].astype(np.float64)
    t = (xx * math.cos(ang) + yy * math.sin(ang)) / max(fh, fw)
    framed = framed * (1.0 - p["light"] * (t - t.min()))[..., None]
    framed = cv2.GaussianBlur(framed, (0, 0), p["blur"])
    out = _finish(framed, rng, p["noise"], int(rng.integers(60, 92)))
    return Attack("print", out, _compose(to_frame, m0), {k: float(v) for k, v in p.items()})


ATTACKS: dict[str, Callable[[np.ndarray, np.random.Generator], Attack]] = {
    "screen": screen_replay,
    "print": print_attack,
}


def matched_framing(attack: Attack, source_w: int, source_h: int) -> Attack:
    """The attack cropped to the source image's own framing (its rectangle, axis-aligned).

    A scene with the whole device shows bezels and room; a replay cropped as tightly as the
    bona fide photo was (a face ROI cut by a detector, a selfie filling the frame) shows
    none, and must be caught all the same. Cropping to the source's rectangle keeps each
    attack's framing and face size equal to its bona fide twin's, so a calibration cannot
    learn "more context = attack" from the synthetic set.
    """
    m = attack.matrix
    corners = np.array([[0, 0], [source_w, 0], [0, source_h], [source_w, source_h]], np.float64)
    c = corners @ m[:, :2].T + m[:, 2]
    h, w = attack.image.shape[:2]
    x1, y1 = max(0, math.ceil(c[:, 0].min())), max(0, math.ceil(c[:, 1].min()))
    x2, y2 = min(w, math.floor(c[:, 0].max())), min(h, math.floor(c[:, 1].max()))
    if x2 - x1 < 2 or y2 - y1 < 2:
        raise ValueError("the source rectangle lies outside the attack image")
    crop = np.ascontiguousarray(attack.image[y1:y2, x1:x2])
    shifted = m.copy()
    shifted[:, 2] -= (x1, y1)
    return Attack(attack.kind, crop, shifted, {**attack.params, "matched": 1.0})


def synthesize(bgr: np.ndarray, kind: str, seed: int) -> Attack:
    """The `kind` attack of `bgr`, drawn from `seed` (same inputs, same bytes)."""
    if kind not in ATTACKS:
        raise ValueError(f"unknown attack {kind!r}; choose one of {sorted(ATTACKS)}")
    if bgr.ndim != 3 or bgr.shape[2] != 3 or bgr.dtype != np.uint8:
        raise ValueError("attacks are made from a BGR uint8 image")
    return ATTACKS[kind](bgr, np.random.default_rng(seed))
