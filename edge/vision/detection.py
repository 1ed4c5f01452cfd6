"""Face detectors: one small wrapper per model kind, all returning `Face`s in input pixels.

Every wrapper does the exact pre/post-processing its model was trained with (see the shared
model MANIFEST): anchors/priors are decoded with vectorised numpy and cached per input size,
because a Python loop over ~17k anchors would cost more than the network itself on a 2-core box.
"""

from __future__ import annotations

import threading
from pathlib import Path
from typing import Protocol

import cv2
import numpy as np

from edge.config import Settings
from edge.runtime.backends import InferenceSession
from edge.runtime.registry import ModelRegistry
from edge.vision.types import Face

__all__ = [
    "FaceDetector",
    "RetinaFaceDetector",
    "ScrfdDetector",
    "TiledDetector",
    "YuNetDetector",
    "build_detectors",
    "detector_for_role",
    "nms",
]

_STRIDES = (8, 16, 32)


class FaceDetector(Protocol):
    def detect(self, bgr: np.ndarray) -> list[Face]: ...


#: A box this much covered by the union of two or more better boxes is dropped (see `nms`).
STRADDLE_COVER = 0.75
_COVER_GRID = 16  # the coverage is measured on a 16 x 16 grid over the box


def _straddles(box: np.ndarray, better: np.ndarray) -> bool:
    """Is `box` mostly covered by the union of at least two of the `better` boxes?

    A detector sometimes fires between two neighbouring faces (a cheek of each, the gap as
    a "nose"): each pairwise IoU stays under the NMS threshold, so IoU NMS keeps it, and
    its box then holds both real faces' noses. A real face mostly hidden behind two others
    is not a usable face either, so dropping such a box costs nothing the rules would keep.
    """
    x1, y1, x2, y2 = (float(v) for v in box)
    if x2 <= x1 or y2 <= y1 or len(better) < 2:
        return False
    ix1, iy1 = np.maximum(better[:, 0], x1), np.maximum(better[:, 1], y1)
    ix2, iy2 = np.minimum(better[:, 2], x2), np.minimum(better[:, 3], y2)
    hit = (ix2 > ix1) & (iy2 > iy1)
    if int(hit.sum()) < 2:
        return False
    # Cell centres of a grid over the box; a cell counts when any overlapping box holds it.
    t = (np.arange(_COVER_GRID) + 0.5) / _COVER_GRID
    xs, ys = x1 + t * (x2 - x1), y1 + t * (y2 - y1)
    covered = np.zeros((_COVER_GRID, _COVER_GRID), dtype=bool)
    for b in better[hit]:
        covered |= ((ys >= b[1]) & (ys <= b[3]))[:, None] & ((xs >= b[0]) & (xs <= b[2]))[None]
    return float(covered.mean()) >= STRADDLE_COVER


def nms(boxes: np.ndarray, scores: np.ndarray, iou: float) -> np.ndarray:
    """Greedy non-maximum suppression; indices kept, best score first.

    After the IoU pass, a box covered for `STRADDLE_COVER` or more by two or more better
    kept boxes is dropped as well (`_straddles`): IoU alone cannot see a box straddling two
    faces."""
    if len(boxes) == 0:
        return np.zeros(0, dtype=np.int64)
    x1, y1, x2, y2 = boxes[:, 0], boxes[:, 1], boxes[:, 2], boxes[:, 3]
    areas = np.maximum(x2 - x1, 0) * np.maximum(y2 - y1, 0)
    order = np.argsort(-scores, kind="stable")
    keep: list[int] = []
    while order.size:
        i = int(order[0])
        keep.append(i)
        rest = order[1:]
        w = np.maximum(0.0, np.minimum(x2[i], x2[rest]) - np.maximum(x1[i], x1[rest]))
        h = np.maximum(0.0, np.minimum(y2[i], y2[rest]) - np.maximum(y1[i], y1[rest]))
        inter = w * h
        ov = inter / np.maximum(areas[i] + areas[rest] - inter, 1e-9)
        order = rest[ov <= iou]
    if len(keep) >= 3:
        survivors: list[int] = []
        for k in keep:
            if not _straddles(boxes[k], boxes[survivors]):
                survivors.append(k)
        keep = survivors
    return np.asarray(keep, dtype=np.int64)


def _faces(
    boxes: np.ndarray, scores: np.ndarray, kps: np.ndarray, iou: float, scale: float
) -> list[Face]:
    """NMS, then map from network pixels back to input pixels (divide by `scale`)."""
    keep = nms(boxes, scores, iou)
    out = []
    for i in keep:
        out.append(
            Face(
                box=(boxes[i] / scale).astype(np.float32),
                score=float(scores[i]),
                kps=(kps[i].reshape(5, 2) / scale).astype(np.float32),
            )
        )
    return out


def _faces_of_levels(
    boxes: list[np.ndarray],
    scores: list[np.ndarray],
    kps: list[np.ndarray],
    iou: float,
    scale: float,
) -> list[Face]:
    """`_faces` over the per-stride candidates of a multi-level head ([] when none)."""
    if not boxes:
        return []
    return _faces(np.concatenate(boxes), np.concatenate(scores), np.concatenate(kps), iou, scale)


def _grid(h: int, w: int, stride: int, repeat: int = 1) -> np.ndarray:
    """(rows*cols*repeat, 2) cell (col, row) indices in row-major order, each repeated."""
    rows, cols = h // stride, w // stride
    yy, xx = np.mgrid[0:rows, 0:cols]
    g = np.stack([xx.ravel(), yy.ravel()], axis=1).astype(np.float32)
    return np.repeat(g, repeat, axis=0) if repeat > 1 else g


class _Cache:
    """Per-input-size anchor cache; a lock only around the (rare) first build."""

    def __init__(self) -> None:
        self._d: dict[tuple[int, int], object] = {}
        self._lock = threading.Lock()

    def get(self, key: tuple[int, int], build):  # type: ignore[no-untyped-def]
        v = self._d.get(key)
        if v is None:
            with self._lock:
                v = self._d.get(key)
                if v is None:
                    v = self._d[key] = build()
        return v


def _letterbox(bgr: np.ndarray, scale: float, out_h: int, out_w: int) -> np.ndarray:
    """Resize by `scale` and place at the top-left of a zero canvas (out_h, out_w)."""
    h, w = bgr.shape[:2]
    nw, nh = max(1, round(w * scale)), max(1, round(h * scale))
    nw, nh = min(nw, out_w), min(nh, out_h)
    interp = cv2.INTER_AREA if scale < 1 else cv2.INTER_LINEAR
    resized = cv2.resize(bgr, (nw, nh), interpolation=interp) if (nw, nh) != (w, h) else bgr
    canvas = np.zeros((out_h, out_w, 3), dtype=np.uint8)
    canvas[:nh, :nw] = resized
    return canvas


def _ceil32(v: int) -> int:
    return max(32, (v + 31) // 32 * 32)


class _LongSideDetector:
    """A detector fed the frame scaled to `input_long` px on its long side (padded to 32),
    with per-input-size anchors cached: the shared half of YuNet and SCRFD."""

    def __init__(
        self, session: InferenceSession, score: float, iou: float, input_long: int
    ) -> None:
        self.session = session
        self.score = score
        self.iou = iou
        self.input_long = input_long
        self._input = session.info.inputs[0].name
        self._anchors = _Cache()

    def _frame(self, bgr: np.ndarray) -> tuple[np.ndarray, float, int, int]:
        """(network image, scale, height, width): letterboxed to multiples of 32."""
        h, w = bgr.shape[:2]
        scale = self.input_long / max(h, w)
        ih, iw = _ceil32(round(h * scale)), _ceil32(round(w * scale))
        return _letterbox(bgr, scale, ih, iw), scale, ih, iw


class YuNetDetector(_LongSideDetector):
    """YuNet (fast path). Runs on a frame downscaled to `input_long` px on the long side.

    Why 320: the fast path only has to find faces that will pass the selection rules
    (>= 10 % of the image side and >= 32 px). At a 320 px long side such a face is still
    >= 32 network pixels, comfortably above YuNet's smallest (stride-8) anchors, so the
    smaller frame loses nothing the rules would accept while costing ~4x less than 640.
    """

    kind = "yunet"

    def __init__(
        self, session: InferenceSession, score: float = 0.6, iou: float = 0.4, input_long: int = 320
    ) -> None:
        super().__init__(session, score, iou, input_long)

    def detect(self, bgr: np.ndarray) -> list[Face]:
        img, scale, ih, iw = self._frame(bgr)
        # Planar float32 in one pass (astype of the transposed view kept its strides, so the
        # runtime made a second copy to get a contiguous input).
        blob = np.ascontiguousarray(img.transpose(2, 0, 1), dtype=np.float32)[None]
        # Outputs by position (OpenVINO may rename cls/obj): cls x3, obj x3, bbox x3, kps x3.
        out = self.session.run({self._input: blob})
        grids = self._anchors.get((ih, iw), lambda: [_grid(ih, iw, s) for s in _STRIDES])
        boxes, scores, kps = [], [], []
        for j, (s, g) in enumerate(zip(_STRIDES, grids, strict=True)):
            cls = np.clip(out[j].reshape(-1), 0, 1)
            obj = np.clip(out[3 + j].reshape(-1), 0, 1)
            sc = np.sqrt(cls * obj)
            m = sc >= self.score
            if not m.any():
                continue
            gm = g[m]
            bb = out[6 + j].reshape(-1, 4)[m]
            kp = out[9 + j].reshape(-1, 10)[m]
            c = (gm + bb[:, :2]) * s
            wh = np.exp(bb[:, 2:]) * s
            boxes.append(np.concatenate([c - wh / 2, c + wh / 2], axis=1))
            k = (np.tile(gm, 5) + kp) * s
            kps.append(k)
            scores.append(sc[m])
        return _faces_of_levels(boxes, scores, kps, self.iou, scale)


class RetinaFaceDetector:
    """RetinaFace-MobileNet-0.25: fixed square input (640), letterboxed, BGR minus mean."""

    kind = "retinaface"
    _MIN_SIZES = ((16, 32), (64, 128), (256, 512))
    _MEAN = np.array([104, 117, 123], dtype=np.float32)

    def __init__(self, session: InferenceSession, score: float = 0.6, iou: float = 0.4) -> None:
        self.session = session
        self.score = score
        self.iou = iou
        inp = session.info.inputs[0]
        self._input = inp.name
        shape = inp.shape
        self.size = int(shape[2]) if isinstance(shape[2], int) else 640
        self._priors = self._build_priors(self.size)

    @classmethod
    def _build_priors(cls, size: int) -> np.ndarray:
        parts = []
        for s, mins in zip(_STRIDES, cls._MIN_SIZES, strict=True):
            g = _grid(size, size, s, repeat=len(mins))
            centre = (g + 0.5) * s / size
            wh = np.tile(np.asarray(mins, np.float32), len(g) // len(mins))[:, None] / size
            parts.append(np.concatenate([centre, np.repeat(wh, 2, axis=1)], axis=1))
        return np.concatenate(parts).astype(np.float32)  # (N, 4) cx, cy, w, h normalised

    def detect(self, bgr: np.ndarray) -> list[Face]:
        h, w = bgr.shape[:2]
        scale = self.size / max(h, w)
        img = _letterbox(bgr, scale, self.size, self.size).astype(np.float32) - self._MEAN
        blob = img.transpose(2, 0, 1)[None]
        outs = self.session.run({self._input: np.ascontiguousarray(blob)})
        loc, conf, ldm = self._split(outs)
        sc = conf[:, 1]
        m = sc >= self.score
        if not m.any():
            return []
        p = self._priors[m]
        loc, ldm, sc = loc[m], ldm[m], sc[m]
        c = p[:, :2] + loc[:, :2] * 0.1 * p[:, 2:]
        wh = p[:, 2:] * np.exp(loc[:, 2:] * 0.2)
        boxes = np.concatenate([c - wh / 2, c + wh / 2], axis=1) * self.size
        kps = (np.tile(p[:, :2], 5) + ldm * 0.1 * np.tile(p[:, 2:], 5)) * self.size
        return _faces(boxes, sc, kps, self.iou, scale)

    @staticmethod
    def _split(outs: list[np.ndarray]) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        by_c = {o.shape[-1]: o.reshape(-1, o.shape[-1]) for o in outs}
        return by_c[4], by_c[2], by_c[10]


class ScrfdDetector(_LongSideDetector):
    """SCRFD (InsightFace): dynamic input, RGB (x-127.5)/128, 2 anchors per cell, distances.

    The frame is scaled so its long side is `input_long` and padded to multiples of 32 rather
    than to a full square: same detections, fewer pixels for landscape photos.
    """

    kind = "scrfd"

    def __init__(
        self, session: InferenceSession, score: float = 0.5, iou: float = 0.4, input_long: int = 640
    ) -> None:
        super().__init__(session, score, iou, input_long)

    def detect(self, bgr: np.ndarray) -> list[Face]:
        img, scale, ih, iw = self._frame(bgr)
        blob = cv2.dnn.blobFromImage(img, 1.0 / 128, (iw, ih), (127.5, 127.5, 127.5), swapRB=True)
        outs = self.session.run({self._input: blob})
        flat = [o.reshape(-1, o.shape[-1]) for o in outs]
        scs = [o for o in flat if o.shape[1] == 1]
        bbs = [o for o in flat if o.shape[1] == 4]
        kks = [o for o in flat if o.shape[1] == 10]
        anchors = self._anchors.get((ih, iw), lambda: [_grid(ih, iw, s, 2) * s for s in _STRIDES])
        boxes, scores, kps = [], [], []
        for s, a, sc, bb, kp in zip(_STRIDES, anchors, scs, bbs, kks, strict=True):
            sc = sc[:, 0]
            m = sc >= self.score
            if not m.any():
                continue
            am, d, k = a[m], bb[m] * s, kp[m] * s
            boxes.append(np.concatenate([am - d[:, :2], am + d[:, 2:]], axis=1))
            kps.append(np.tile(am, 5) + k)
            scores.append(sc[m])
        return _faces_of_levels(boxes, scores, kps, self.iou, scale)


class TiledDetector:
    """Finds faces down to `min_px` image pixels in large images with a fixed-scale detector.

    The slow detectors see the whole frame at ~640 px, where a 32 px face of a 4000 px photo
    shrinks to 5 px, below their smallest anchors (16 px). Past that size the frame is
    covered by overlapping tiles at the scale where `min_px` reaches the smallest anchor,
    plus the whole-frame pass for faces larger than the overlap; NMS merges them. Only
    `detect` (all faces) needs this; the largest-face path only accepts faces >= 10 %.
    """

    def __init__(
        self,
        inner: FaceDetector,
        input_size: int,
        min_px: int,
        iou: float = 0.4,
        smallest_anchor: int = 16,
        overlap: int = 160,
    ) -> None:
        self.inner = inner
        self.tile = max(input_size, int(input_size * min_px / smallest_anchor))
        self.overlap = min(overlap, self.tile // 2)
        self.iou = iou

    def _starts(self, n: int) -> list[int]:
        step = self.tile - self.overlap
        starts = list(range(0, max(n - self.tile, 0) + 1, step))
        if starts[-1] + self.tile < n:
            starts.append(n - self.tile)
        return starts

    def detect(self, bgr: np.ndarray) -> list[Face]:
        h, w = bgr.shape[:2]
        if max(h, w) <= self.tile:
            return self.inner.detect(bgr)
        found = list(self.inner.detect(bgr))
        for y0 in self._starts(h):
            for x0 in self._starts(w):
                off = np.array([x0, y0], dtype=np.float32)
                for f in self.inner.detect(bgr[y0 : y0 + self.tile, x0 : x0 + self.tile]):
                    found.append(Face(f.box + np.tile(off, 2), f.score, f.kps + off))
        if not found:
            return []
        boxes = np.stack([f.box for f in found])
        keep = nms(boxes, np.array([f.score for f in found]), self.iou)
        return [found[i] for i in keep]


def detector_for_role(
    registry: ModelRegistry, role: str, settings: Settings, *, fast: bool
) -> FaceDetector:
    """Pick the wrapper from the role's file name (one class per model kind)."""
    name = Path(registry.path(role)).name.lower()
    det = settings.detection
    score = det.fast_score if fast else det.slow_score
    sess = registry.session(role)
    size = det.fast_input if fast else det.slow_input
    return detector_for_file(name, sess, score=score, iou=det.nms_iou, input_long=size)


def detector_for_file(
    name: str, session: InferenceSession, *, score: float, iou: float, input_long: int
) -> FaceDetector:
    name = name.lower()
    if "yunet" in name:
        return YuNetDetector(session, score, iou, input_long)
    if "retinaface" in name:
        return RetinaFaceDetector(session, score, iou)
    if "scrfd" in name:
        return ScrfdDetector(session, score, iou, input_long)
    raise ValueError(f"no detector wrapper for model file {name!r}")


def build_detectors(
    registry: ModelRegistry, settings: Settings
) -> tuple[FaceDetector, FaceDetector]:
    """(fast, slow) detectors of the configured pack."""
    fast = detector_for_role(registry, "detector_fast", settings, fast=True)
    slow = detector_for_role(registry, "detector_slow", settings, fast=False)
    return fast, slow
