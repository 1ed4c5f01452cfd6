"""Face attribute models: age/gender, expression, mask, eye state.

Each wrapper does exactly the pre/post-processing the model was trained with (see the model
MANIFEST) and returns plain numbers; `details.py` turns them into typed values. Crops are turned
upright by the face's eye line, so tilted faces look like the training data.
"""

from __future__ import annotations

import math
import threading
import weakref
from dataclasses import dataclass
from typing import Protocol

import cv2
import numpy as np

from edge.runtime.backends import InferenceSession
from edge.runtime.registry import ModelRegistry
from edge.vision.align import align_face
from edge.vision.landmarks import GROUPS
from edge.vision.types import Face, Label

# API emotion order and where each comes from in the FER-2013 order
# (angry, disgust, fear, happy, sad, surprise, neutral). 'sleepy' has no FER class.
EMOTIONS = ("angry", "happy", "sad", "calm", "surprised", "scared", "disgusted", "sleepy")
FER_INDEX = {"angry": 0, "happy": 3, "sad": 4, "calm": 6, "surprised": 5, "scared": 2,
             "disgusted": 1}  # fmt: skip


def box_crop(
    img: np.ndarray,
    face: Face,
    out_w: int,
    out_h: int,
    pad: float = 0.0,
    angle: float = 0.0,
) -> np.ndarray:
    """The detector box grown by `pad` pixels per side, turned by `angle` (radians, eye line)
    about its centre, resized to out_w x out_h. Outside the image is black."""
    x1, y1, x2, y2 = (float(v) for v in face.box)
    cx, cy = (x1 + x2) / 2.0, (y1 + y2) / 2.0
    w, h = max(x2 - x1 + 2 * pad, 1.0), max(y2 - y1 + 2 * pad, 1.0)
    c, s = math.cos(angle), math.sin(angle)
    # image -> crop: rotate by -angle about the centre, scale per axis, centre the output
    sx, sy = out_w / w, out_h / h
    m = np.array(
        [
            [sx * c, sx * s, 0.0],
            [-sy * s, sy * c, 0.0],
        ]
    )
    m[0, 2] = out_w / 2.0 - (m[0, 0] * cx + m[0, 1] * cy)
    m[1, 2] = out_h / 2.0 - (m[1, 0] * cx + m[1, 1] * cy)
    return cv2.warpAffine(img, m, (out_w, out_h), flags=cv2.INTER_LINEAR)


class SessionSource(Protocol):
    """What a wrapper needs of a registry: the evaluation also serves a file outside the pack."""

    def session(self, role: str) -> InferenceSession: ...


# --------------------------------------------------------------------------------------------
class AgeGender:
    """Intel age-gender-recognition-retail-0013 (OpenVINO IR): tight box, 62x62, BGR 0-255.

    Outputs age/100 and softmax [female, male]. The model card is valid for ages 18-75."""

    ROLE = "age_gender"
    SIZE = 62

    def __init__(self, registry: ModelRegistry) -> None:
        self.registry = registry

    def predict(self, bgr: np.ndarray, face: Face, angle: float) -> tuple[float, float]:
        """(age in years, P(male))."""
        crop = box_crop(bgr, face, self.SIZE, self.SIZE, angle=angle)
        blob = np.ascontiguousarray(crop.astype(np.float32).transpose(2, 0, 1)[None])
        sess = self.registry.session(self.ROLE)
        outs = sess.run({sess.info.inputs[0].name: blob})
        age = prob = None
        for o in outs:  # identify by shape: [1,1,1,1] age, [1,2,1,1] prob
            if o.size == 1:
                age = float(o.reshape(-1)[0]) * 100.0
            elif o.size == 2:
                prob = o.reshape(-1)
        if age is None or prob is None:
            raise RuntimeError("age_gender model returned unexpected outputs")
        return age, float(prob[1])


class AgeGenderHse:
    """HSE FaceRes age/gender (licence unclear: research-nc pack only): the 5-point ArcFace
    crop at 224 px (the template x2, the framing its authors' check used), RGB 0-255, NHWC.

    Outputs P(male) (sigmoid) and a softmax over ages 0..99; the age is its expected value,
    which is smoother than the arg-max on the 100 one-year bins."""

    ROLE = "age_gender_hse"
    SIZE = 224

    def __init__(self, registry: SessionSource) -> None:
        self.registry = registry

    def predict(self, bgr: np.ndarray, face: Face) -> tuple[float, float]:
        """(age in years, P(male))."""
        crop = align_face(bgr, face.kps, self.SIZE)
        blob = np.ascontiguousarray(cv2.cvtColor(crop, cv2.COLOR_BGR2RGB)[None], np.float32)
        sess = self.registry.session(self.ROLE)
        outs = sess.run({sess.info.inputs[0].name: blob})
        ages = next((o.reshape(-1) for o in outs if o.size == 100), None)
        male = next((o.reshape(-1) for o in outs if o.size == 1), None)
        if ages is None or male is None:
            raise RuntimeError("age_gender_hse model returned unexpected outputs")
        p = np.clip(ages.astype(np.float64), 0.0, None)
        years = float(p @ np.arange(100)) / max(float(p.sum()), 1e-9)
        return years, float(male[0])


# --------------------------------------------------------------------------------------------
class Emotion:
    """FER-2013 mini-Xception (.tflite via OpenVINO): grey box padded 10 px, 64x64,
    (x/255 - 0.5) * 2, NHWC. Output: softmax over the 7 FER-2013 classes."""

    ROLE = "emotion"
    SIZE = 64
    PAD_PX = 10.0

    def __init__(self, registry: ModelRegistry) -> None:
        self.registry = registry

    def predict(self, bgr: np.ndarray, face: Face, angle: float) -> np.ndarray:
        crop = box_crop(bgr, face, self.SIZE, self.SIZE, pad=self.PAD_PX, angle=angle)
        grey = cv2.cvtColor(crop, cv2.COLOR_BGR2GRAY).astype(np.float32)
        blob = np.ascontiguousarray(((grey / 255.0 - 0.5) * 2.0)[None, :, :, None])
        sess = self.registry.session(self.ROLE)
        p = sess.run({sess.info.inputs[0].name: blob})[0].reshape(-1)[:7].astype(np.float64)
        p = np.clip(p, 0.0, None)
        return p / max(float(p.sum()), 1e-9)


def fuse_emotions(fer7: np.ndarray, eyes_closed: float) -> tuple[Label, ...]:
    """The API's 8 emotions from FER's 7 plus the eye-closure signal for 'sleepy'.

    Fusion: closed eyes on a relaxed face (FER neutral or sad) read as sleepy; closed or
    squinting eyes with an active expression (anger, disgust, laughter squint) keep that
    expression. So sleepy = P(both eyes closed) x (calm + sad); calm and sad keep the rest
    of their mass, the other classes are unchanged. The eight values sum to 1 by
    construction (renormalised once more against rounding)."""
    closed = float(np.clip(eyes_closed, 0.0, 1.0))
    vals = {name: float(fer7[i]) for name, i in FER_INDEX.items()}
    relaxed = vals["calm"] + vals["sad"]
    vals["sleepy"] = closed * relaxed
    vals["calm"] *= 1.0 - closed
    vals["sad"] *= 1.0 - closed
    total = sum(vals.values()) or 1.0
    return tuple(Label(name, round(vals[name] / total, 4)) for name in EMOTIONS)


# --------------------------------------------------------------------------------------------
class EyeState:
    """Eye open/closed CNN: grey eye patch 34x26, /255, NHWC; output sigmoid, high = open.

    Patches come from the 106-point eye rings, turned by the eye's own corner line: centred
    on the ring's extent, 1.2 x its width wide, 26/34 of that high, the image-right eye
    mirrored (the model was trained with both eyes facing one way). Measured on the Yale
    set (sleepy vs open-eyed conditions): raw output mean 0.02 on closed, 0.77 on open eyes;
    1.0 / 1.4 widths or no mirroring separated them worse. The raw output is badly centred
    (open eyes often score 0.1-0.5), so it is re-centred on the decision threshold 0.1:
    P(open) = sigmoid(logit(raw) - logit(0.1)); with it 95 % of sleepy and 84 % of open
    Yale eyes fall on the right side of 0.5."""

    ROLE = "eye_state"
    W, H = 34, 26
    WIDTH_SCALE = 1.2
    FLIP_RIGHT = True

    def __init__(self, registry: ModelRegistry) -> None:
        self.registry = registry

    def patches(self, bgr: np.ndarray, points: np.ndarray) -> np.ndarray:
        grey = cv2.cvtColor(bgr, cv2.COLOR_BGR2GRAY)
        out = []
        for group, (a, b) in (("leftEye", (52, 55)), ("rightEye", (58, 61))):
            d = points[b] - points[a]
            angle = math.atan2(float(d[1]), float(d[0]))
            c, s = math.cos(angle), math.sin(angle)
            ring = points[list(GROUPS[group])]
            # extent of the ring along / across the eye line, in an eye-aligned frame
            u = ring @ np.array([c, s])
            v = ring @ np.array([-s, c])
            uc, vc = (u.min() + u.max()) / 2.0, (v.min() + v.max()) / 2.0
            centre = np.array([c * uc - s * vc, s * uc + c * vc])
            width = max(float(u.max() - u.min()) * self.WIDTH_SCALE, 2.0)
            m = cv2.getRotationMatrix2D((float(centre[0]), float(centre[1])),
                                        math.degrees(angle), self.W / width)  # fmt: skip
            m[0, 2] += self.W / 2.0 - centre[0]
            m[1, 2] += self.H / 2.0 - centre[1]
            patch = cv2.warpAffine(grey, m, (self.W, self.H), flags=cv2.INTER_LINEAR)
            out.append(patch[:, ::-1] if group == "rightEye" and self.FLIP_RIGHT else patch)
        return np.stack(out).astype(np.float32)[..., None] / 255.0

    def predict(self, bgr: np.ndarray, points: np.ndarray) -> tuple[float, float]:
        """(P(image-left eye open), P(image-right eye open))."""
        sess = self.registry.session(self.ROLE)
        raw = sess.run({sess.info.inputs[0].name: self.patches(bgr, points)})[0].reshape(-1)
        return recentre(float(raw[0])), recentre(float(raw[1]))


def recentre(raw: float, threshold: float = 0.1) -> float:
    """Probability re-centred so that the decision threshold maps to 0.5."""
    raw = min(max(raw, 1e-7), 1 - 1e-7)
    z = math.log(raw / (1 - raw)) - math.log(threshold / (1 - threshold))
    return 1.0 / (1.0 + math.exp(-z))


# --------------------------------------------------------------------------------------------
@dataclass(frozen=True)
class MaskHit:
    box: np.ndarray  # x1, y1, x2, y2 image pixels
    p_face: float  # softmax score of the "face" class
    p_mask: float  # softmax score of the "masked face" class

    @property
    def mask_share(self) -> float:
        """P(masked | a face is there)."""
        return self.p_mask / max(self.p_face + self.p_mask, 1e-9)


def iou(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """IoU of boxes `a` (N,4) against one box `b` (4,)."""
    ix1 = np.maximum(a[:, 0], b[0])
    iy1 = np.maximum(a[:, 1], b[1])
    ix2 = np.minimum(a[:, 2], b[2])
    iy2 = np.minimum(a[:, 3], b[3])
    inter = np.clip(ix2 - ix1, 0, None) * np.clip(iy2 - iy1, 0, None)
    area_a = (a[:, 2] - a[:, 0]) * (a[:, 3] - a[:, 1])
    area_b = (b[2] - b[0]) * (b[3] - b[1])
    out: np.ndarray = inter / np.maximum(area_a + area_b - inter, 1e-9)
    return out


class MaskDetector:
    """Ultra-Light RFB-640 masked-face detector: whole frame to 640x480, RGB, (x-127)/128.

    Outputs softmaxed [background, face, masked face] and normalised corner boxes per
    anchor. A face is matched to the anchors overlapping its detector box (IoU >= MATCH_IOU)
    and the strongest of those decides. The frame result is cached per image (weakly, by
    object identity) so several faces of one image cost one run. When no anchor matches (a
    small face in a big frame), the detector runs again on a crop around the face."""

    ROLE = "mask"
    W, H = 640, 480
    MATCH_IOU = 0.4
    MIN_SCORE = 0.5
    CROP_SCALE = 1.6  # `classify` window height / face box side

    def __init__(self, registry: ModelRegistry) -> None:
        self.registry = registry
        self._lock = threading.Lock()
        self._cache: dict[int, tuple[weakref.ref[np.ndarray], np.ndarray, np.ndarray]] = {}

    def raw(self, bgr: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """(scores (N,3), boxes (N,4) in pixels of `bgr`)."""
        h, w = bgr.shape[:2]
        rgb = cv2.cvtColor(cv2.resize(bgr, (self.W, self.H)), cv2.COLOR_BGR2RGB)
        blob = ((rgb.astype(np.float32) - 127.0) / 128.0).transpose(2, 0, 1)[None]
        sess = self.registry.session(self.ROLE)
        outs = sess.run({sess.info.inputs[0].name: np.ascontiguousarray(blob)})
        scores = next(o for o in outs if o.shape[-1] == 3).reshape(-1, 3)
        boxes = next(o for o in outs if o.shape[-1] == 4).reshape(-1, 4) * [w, h, w, h]
        return scores, boxes

    def _frame(self, bgr: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        key = id(bgr)
        with self._lock:
            hit = self._cache.get(key)
            if hit is not None and hit[0]() is bgr:
                return hit[1], hit[2]
        scores, boxes = self.raw(bgr)
        with self._lock:
            self._cache = {k: v for k, v in self._cache.items() if v[0]() is not None}
            if len(self._cache) >= 8:
                self._cache.pop(next(iter(self._cache)))
            self._cache[key] = (weakref.ref(bgr), scores, boxes)
        return scores, boxes

    def _match(self, scores: np.ndarray, boxes: np.ndarray, box: np.ndarray) -> MaskHit | None:
        ov = iou(boxes, box)
        conf = scores[:, 1] + scores[:, 2]
        ok = (ov >= self.MATCH_IOU) & (conf >= self.MIN_SCORE)
        if not ok.any():
            return None
        i = int(np.flatnonzero(ok)[np.argmax(conf[ok] * ov[ok])])
        return MaskHit(boxes[i].astype(np.float32), float(scores[i, 1]), float(scores[i, 2]))

    def match(self, bgr: np.ndarray, face: Face) -> MaskHit | None:
        scores, boxes = self._frame(bgr)
        hit = self._match(scores, boxes, face.box)
        if hit is not None:
            return hit
        # Second look at a 3x window around the face (small faces vanish at 640x480).
        x1, y1, x2, y2 = (float(v) for v in face.box)
        bw, bh = x2 - x1, y2 - y1
        ox, oy = max(0, int(x1 - bw)), max(0, int(y1 - bh))
        ex, ey = min(bgr.shape[1], int(x2 + bw)), min(bgr.shape[0], int(y2 + bh))
        if ex - ox < 8 or ey - oy < 8:
            return None
        scores, boxes = self.raw(bgr[oy:ey, ox:ex])
        shift = np.array([ox, oy, ox, oy], dtype=np.float32)
        return self._match(scores, boxes + shift, face.box)

    def classify(self, bgr: np.ndarray, face: Face) -> MaskHit:
        """Mask verdict from the face's own crop, for a face `match` found no anchor for.

        The attribute must not depend on the frame-level detector agreeing with the face
        detector (a crowd of masked faces, a face cut by the border): the face box grown
        to a 4:3 window of CROP_SCALE x its height (black outside the image) is given to
        the detector at its own input size, and the anchor that best covers the face box
        (confidence x IoU, no thresholds) decides. Always returns a verdict."""
        x1, y1, x2, y2 = (float(v) for v in face.box)
        cx, cy = (x1 + x2) / 2.0, (y1 + y2) / 2.0
        ch = self.CROP_SCALE * max(x2 - x1, y2 - y1, 1.0)
        cw = ch * self.W / self.H
        ox, oy = cx - cw / 2.0, cy - ch / 2.0
        s = self.W / cw
        m = np.array([[s, 0.0, -ox * s], [0.0, s, -oy * s]], np.float64)
        crop = cv2.warpAffine(bgr, m, (self.W, self.H), flags=cv2.INTER_LINEAR)
        scores, boxes = self.raw(crop)
        target = np.array([(x1 - ox) * s, (y1 - oy) * s, (x2 - ox) * s, (y2 - oy) * s])
        rank = (scores[:, 1] + scores[:, 2]) * iou(boxes, target)
        i = int(np.argmax(rank))
        box = boxes[i] / s + np.array([ox, oy, ox, oy])
        return MaskHit(box.astype(np.float32), float(scores[i, 1]), float(scores[i, 2]))
