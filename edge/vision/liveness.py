"""Passive (single-image) liveness: MiniFASNet ensemble fused into one calibrated spoofScore.

Why this shape:
- The two MiniFASNet models look at the same face with different amounts of context (2.7x
  and 4.0x the face box): screen bezels, paper edges and moire live in the context, so the
  crop geometry must match what the models were trained on (MANIFEST.json).
- The crops are centred on a box estimated from the 5 landmarks ("landmarks" in the JSON),
  not on the detector's own box: the landmarks' centroid and RMS spread times 4 constants,
  the mean RetinaFace box in those units over the identity test photos (never the liveness
  set). On average it is the detector's box (YuNet's and RetinaFace's agree within 2 %
  there); per image it follows the facial geometry rather than where a detector put the
  outline of hair, forehead and chin. Why that helps is not established, and it was the
  best of several boxes tried (mean + Platt, blocked CV: detector box 15.3 %, RetinaFace's
  own box 12.9 %, a pose-aware linear landmark box 16.1 %), so a selection bias is likely.
  Blocked-CV ACER on the liveness set 15.3 % -> 10.4 %
  (AUC 0.902 -> 0.926); bona fide colour photos called spoof 25/10/12 % -> 18/7/7 % (less
  than 1.5x / 1.5-2.7x / more context). The liveness set is two videos plus 4 stills, so
  a few points are within noise: constants 1-3 % different gave 10-12 % ACER.
- "pad" (nominal scale kept, context beyond the frame filled black) is implemented for the
  calibration report but not shipped: it scores the mostly tight-cropped liveness set far
  better (2.4 % CV ACER), yet calls 90 % / 84 % of bona fide colour photos with less than
  1.5x / 1.5-2.7x context spoof (shipped crop: 18 % / 7 %), so its gain is an effect of
  that set, not of the models reading the face better.
- Their softmax outputs are not calibrated against our threshold; a small logistic fusion
  fitted offline (tools/calibrate_liveness.py) turns them into P(spoof) so that 0.5 is the
  recommended threshold. The fitted numbers live in `edge/data/liveness_<pack>.json`, next
  to the figures measured with them, so code and numbers cannot drift apart silently.
- The operating point is judged leave-one-source-out (tools/calibrate_liveness.py --loso,
  edge/evaluation/liveness_loso.py): each capture setup held out in turn, candidates
  re-fitted for BPCER <= 5 % on bona fide data, and a candidate ships only if its worst
  held-out source beats the shipped point on real images AND is no worse once synthetic
  attacks are judged. A shipped point's threshold is folded into the bias, so 0.5 stays the
  published threshold; the point it replaced stays in the file (`previousOperatingPoint`).
- Model-free presentation-attack cues (`edge.vision.pad_cues`: moire, black level,
  saturation, frame lines) can enter the same logistic fusion (schema 2, `fusion.cues`),
  each standardised and read only in its physical direction. `eval liveness --loso`
  compares them with the shipped point; they ship only under the rule above.
- A score is only as good as its input; the quality gates say when it should not be trusted
  (face too small, blurred, turned) without changing the score itself.
"""

from __future__ import annotations

import json
import logging
import math
from collections.abc import Collection, Mapping
from dataclasses import dataclass, field
from functools import cached_property
from pathlib import Path
from typing import Any

import cv2
import numpy as np

from edge.config import Settings
from edge.runtime.registry import ModelRegistry
from edge.vision.geometry import Box, keypoint_pose
from edge.vision.pad_cues import CONTEXT_SCALE, CUE_SIGNS, CUES, pad_cues
from edge.vision.sharpness import RELATIVE_SIDE, relative_sharpness
from edge.vision.types import Face

log = logging.getLogger(__name__)
DATA_DIR = Path(__file__).resolve().parents[1] / "data"
LOGIT_CLIP = 12.0  # |log-odds| cap: a softmax of exactly 0/1 must not become an infinite feature

__all__ = [
    "LivenessCue",
    "LivenessModelInfo",
    "LivenessModelSpec",
    "LivenessParams",
    "LivenessQuality",
    "LivenessResult",
    "LivenessScorer",
    "celeba_crop",
    "context_crop_box",
    "face_conditions",
    "face_quality",
    "landmark_box",
    "minifas_crop",
    "padded_crop_box",
]


# ------------------------------------------------------------------------------------------
# Crop geometry
# ------------------------------------------------------------------------------------------
def landmark_box(kps: np.ndarray, shape: tuple[float, float, float, float]) -> np.ndarray | None:
    """Face box `(x1, y1, x2, y2)` estimated from 5 landmarks; None when they are degenerate.

    `shape = (dx, dy, w, h)` in units of the landmarks' RMS distance `r` from their
    centroid `c`: box centre `c + (dx, dy) * r`, size `(w, h) * r`. Depends only on the
    landmarks, not on the box convention of whichever detector found the face.
    """
    k = np.asarray(kps, np.float64).reshape(-1, 2)
    c = k.mean(axis=0)
    r = float(np.sqrt(((k - c) ** 2).sum(axis=1).mean()))
    if not math.isfinite(r) or r < 1.0:
        return None
    dx, dy, w, h = shape
    cx, cy = c[0] + dx * r, c[1] + dy * r
    return np.array([cx - w * r / 2, cy - h * r / 2, cx + w * r / 2, cy + h * r / 2], np.float32)


def context_crop_box(
    box: np.ndarray, image_w: int, image_h: int, scale: float
) -> tuple[int, int, int, int]:
    """Inclusive pixel box `(x1, y1, x2, y2)` of the MiniFASNet context crop.

    The face box (clipped to the image) is enlarged by `scale` about its centre; the scale
    is capped so that the enlarged box fits the image, and a box crossing a border is
    shifted back inside (not cut), as the models were trained.
    """
    fx1, fy1, fx2, fy2 = Box.of(box).clip_nonempty(image_w, image_h).xyxy()
    bw, bh = fx2 - fx1, fy2 - fy1
    s = min(scale, (image_h - 1) / bh, (image_w - 1) / bw)
    nw, nh = bw * s, bh * s
    cx, cy = fx1 + bw / 2, fy1 + bh / 2
    x1, y1, x2, y2 = cx - nw / 2, cy - nh / 2, cx + nw / 2, cy + nh / 2
    if x1 < 0:
        x2 -= x1
        x1 = 0.0
    if y1 < 0:
        y2 -= y1
        y1 = 0.0
    if x2 > image_w - 1:
        x1 -= x2 - image_w + 1
        x2 = image_w - 1.0
    if y2 > image_h - 1:
        y1 -= y2 - image_h + 1
        y2 = image_h - 1.0
    return int(x1), int(y1), int(x2), int(y2)


def padded_crop_box(
    box: np.ndarray, image_w: int, image_h: int, scale: float
) -> tuple[int, int, int, int]:
    """Inclusive pixel box of the nominal-scale context crop; may extend past the image.

    Along an axis where the enlarged box fits the image it is shifted back inside, exactly
    as `context_crop_box`; along an axis where it cannot fit it stays centred on the face
    (the part outside the image is filled by `minifas_crop`), so the scale is never capped.
    """
    fx1, fy1, fx2, fy2 = Box.of(box).clip_nonempty(image_w, image_h).xyxy()
    bw, bh = fx2 - fx1, fy2 - fy1

    def axis(centre: float, n: float, length: int) -> tuple[float, float]:
        a, b = centre - n / 2, centre + n / 2
        if n <= length - 1:
            if a < 0:
                a, b = 0.0, b - a
            if b > length - 1:
                a, b = a - (b - length + 1), length - 1.0
        return a, b

    x1, x2 = axis(fx1 + bw / 2, bw * scale, image_w)
    y1, y2 = axis(fy1 + bh / 2, bh * scale, image_h)
    return math.floor(x1), math.floor(y1), math.floor(x2), math.floor(y2)


def minifas_crop(
    bgr: np.ndarray, box: np.ndarray, scale: float, size: int, context: str = "cap"
) -> np.ndarray:
    """`size`x`size` BGR uint8 context crop for a MiniFASNet model.

    `context="cap"`: the manifest's geometry (scale capped so the crop fits the frame).
    `context="pad"`: nominal scale kept, context missing beyond the frame filled black
    (only the crop's own pixels are copied, never the whole frame).
    """
    h, w = bgr.shape[:2]
    if context == "cap":
        x1, y1, x2, y2 = context_crop_box(box, w, h, scale)
        return cv2.resize(bgr[y1 : y2 + 1, x1 : x2 + 1], (size, size))
    if context != "pad":
        raise ValueError(f"unknown context mode {context!r}")
    x1, y1, x2, y2 = padded_crop_box(box, w, h, scale)
    left, top = max(0, -x1), max(0, -y1)
    right, bottom = max(0, x2 - (w - 1)), max(0, y2 - (h - 1))
    patch = bgr[y1 + top : y2 + 1 - bottom, x1 + left : x2 + 1 - right]
    if left or top or right or bottom:
        patch = cv2.copyMakeBorder(
            patch, top, bottom, left, right, cv2.BORDER_CONSTANT, value=(0, 0, 0)
        )
    return cv2.resize(patch, (size, size))


def celeba_crop(bgr: np.ndarray, box: np.ndarray, scale: float, size: int) -> np.ndarray:
    """Square crop of side `scale` x the long box side, black outside the image (RGB)."""
    h, w = bgr.shape[:2]
    bx1, by1, bx2, by2 = (float(v) for v in box[:4])
    side = max(bx2 - bx1, by2 - by1) * scale
    cx, cy = (bx1 + bx2) / 2, (by1 + by2) / 2
    x1, y1 = round(cx - side / 2), round(cy - side / 2)
    n = max(round(side), 1)
    canvas = np.zeros((n, n, 3), np.uint8)
    sx1, sy1 = max(x1, 0), max(y1, 0)
    sx2, sy2 = min(x1 + n, w), min(y1 + n, h)
    if sx2 > sx1 and sy2 > sy1:
        canvas[sy1 - y1 : sy2 - y1, sx1 - x1 : sx2 - x1] = bgr[sy1:sy2, sx1:sx2]
    return cv2.cvtColor(cv2.resize(canvas, (size, size)), cv2.COLOR_BGR2RGB)


# ------------------------------------------------------------------------------------------
# Quality gates
# ------------------------------------------------------------------------------------------
@dataclass(frozen=True)
class LivenessQuality:
    """Image measurements the reliability gates are judged on.

    - `min_side`: shorter side of the face box inside the image (px).
    - `sharpness`: `relative_sharpness` of the face box: the share of high-frequency energy,
      independent of the face's size in pixels and of its contrast (a dim face is not a
      blurred one).
    - `yaw`, `pitch`: the keypoint head pose (`geometry.KeypointPose`, face units).
    - `context`: the largest enlargement of the face box the frame allows (min of frame
      side / box side). The models were trained on 2.7x and 4.0x context, where screen
      bezels and paper edges show; a face filling the frame hides those cues.
    """

    min_side: float
    sharpness: float
    yaw: float
    pitch: float
    context: float


def face_quality(bgr: np.ndarray, face: Face) -> LivenessQuality:
    """The gate measurements of `face` in `bgr` (see `LivenessQuality`)."""
    h, w = bgr.shape[:2]
    box = face.bbox.clip_nonempty(w, h)
    pose = keypoint_pose(face.kps)
    return LivenessQuality(
        min_side=float(min(box.width, box.height)),
        sharpness=relative_sharpness(bgr, box),
        yaw=pose.yaw,
        pitch=pose.pitch,
        context=float(min(w / max(box.width, 1.0), h / max(box.height, 1.0))),
    )


def face_conditions(quality: LivenessQuality, gates: Mapping[str, float]) -> list[str]:
    """Reasons (human text) why a score computed on this face should not be trusted."""
    out = []
    if quality.min_side < gates["min_face_px"]:
        out.append(f"face too small (< {gates['min_face_px']:g} px)")
    if quality.sharpness < gates["min_sharpness"]:
        out.append(f"face too blurred (sharpness < {gates['min_sharpness']:g})")
    yaw, pitch = quality.yaw, quality.pitch
    if not math.isfinite(yaw) or abs(yaw) > gates["max_abs_yaw"]:
        out.append(f"face too turned (|yaw| > {gates['max_abs_yaw']:g})")
    if not math.isfinite(pitch) or not gates["min_pitch"] <= pitch <= gates["max_pitch"]:
        out.append(
            f"face too tilted (pitch outside {gates['min_pitch']:g}..{gates['max_pitch']:g})"
        )
    if quality.context < gates["min_context"]:
        out.append(f"too little context around the face (< {gates['min_context']:g}x the box)")
    return out


# ------------------------------------------------------------------------------------------
# Parameters (fitted offline, shipped as data)
# ------------------------------------------------------------------------------------------
@dataclass(frozen=True)
class LivenessModelSpec:
    """How one model of the ensemble is fed and read (MANIFEST.json)."""

    role: str
    kind: str  # "minifasnet" | "celeba"
    scale: float
    size: int
    live_index: int  # softmax index of the live class
    context: str = "cap"  # MiniFASNet only: "cap" (manifest) | "pad" (black fill, see top)
    box: str = "detector"  # "detector" | "landmarks" (LivenessParams.landmark_box, see top)


@dataclass(frozen=True)
class LivenessCue:
    """One model-free cue in the fusion (`edge.vision.pad_cues`): it adds
    `weight * (value - mean) / scale` to the fused log-odds of spoof."""

    name: str
    mean: float
    scale: float
    weight: float

    @classmethod
    def from_dict(cls, name: str, d: Mapping[str, Any]) -> LivenessCue:
        if name not in CUES:
            raise ValueError(f"unknown liveness cue {name!r}; known cues: {list(CUES)}")
        cue = cls(name, float(d["mean"]), float(d["scale"]), float(d["weight"]))
        if not (math.isfinite(cue.mean) and math.isfinite(cue.weight)) or not cue.scale > 0:
            raise ValueError(f"liveness cue {name!r}: mean/weight must be finite, scale > 0")
        if cue.weight * CUE_SIGNS[name] < 0:
            raise ValueError(
                f"liveness cue {name!r}: weight {cue.weight:g} reads the cue against its"
                " physics (pad_cues.CUE_SIGNS); re-fit with tools/calibrate_liveness.py --loso"
            )
        return cue


@dataclass(frozen=True)
class LivenessParams:
    """Contents of `edge/data/liveness_<pack>.json` (schema 1, or 2 with `fusion.cues`)."""

    models: tuple[LivenessModelSpec, ...]
    weights: tuple[float, ...]  # logistic weights on each model's live log-odds
    bias: float
    threshold: float
    gates: dict[str, float]
    measured: dict[str, Any]
    raw: dict[str, Any] = field(repr=False)
    landmark_box: tuple[float, float, float, float] | None = None  # (dx, dy, w, h), see top
    cues: tuple[LivenessCue, ...] = ()  # model-free cues in the fusion (schema 2)

    @classmethod
    def load(cls, pack: str) -> LivenessParams:
        path = DATA_DIR / f"liveness_{pack}.json"
        if not path.is_file():
            log.warning("no liveness calibration for pack %s; using the default pack's", pack)
            path = DATA_DIR / "liveness_default.json"
        return cls.from_dict(json.loads(path.read_text(encoding="utf-8")))

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> LivenessParams:
        models = tuple(LivenessModelSpec(**m) for m in d["models"])
        fusion = d["fusion"]
        weights = tuple(float(fusion["weights"][m.role]) for m in models)
        lb = d.get("landmarkBox")
        shape = tuple(float(lb[k]) for k in ("dx", "dy", "w", "h")) if lb else None
        if shape is None and any(m.box == "landmarks" for m in models):
            raise ValueError("a model crops from the landmark box but landmarkBox is missing")
        schema = int(d.get("schema", 1))
        if schema not in (1, 2):
            raise ValueError(f"liveness calibration schema {schema} is not 1 or 2; update edge")
        cues = tuple(LivenessCue.from_dict(k, v) for k, v in fusion.get("cues", {}).items())
        if cues and schema < 2:
            raise ValueError("fusion.cues needs schema 2 (older readers would ignore them)")
        return cls(
            models=models,
            weights=weights,
            bias=float(fusion["bias"]),
            threshold=float(d["recommendedThreshold"]),
            gates={k: float(v) for k, v in d["reliability"]["thresholds"].items()},
            measured=dict(d.get("measured", {})),
            raw=d,
            landmark_box=shape,  # type: ignore[arg-type]
            cues=cues,
        )


def live_logodds(logits: np.ndarray, live_index: int) -> np.ndarray:
    """log P(live) / P(not live) from raw logits (N, C), clipped to +-LOGIT_CLIP."""
    z = logits.astype(np.float64)
    z = z - z.max(axis=1, keepdims=True)
    p = np.exp(z)
    p /= p.sum(axis=1, keepdims=True)
    pl = np.clip(p[:, live_index], 1e-12, 1 - 1e-12)
    out: np.ndarray = np.clip(np.log(pl) - np.log1p(-pl), -LOGIT_CLIP, LOGIT_CLIP)
    return out


def fuse(features: np.ndarray, weights: np.ndarray, bias: float) -> np.ndarray:
    """P(spoof) from per-model live log-odds (N, M): logistic regression, fitted offline."""
    z = bias + features @ weights
    p: np.ndarray = 1.0 / (1.0 + np.exp(-z))
    return p


# ------------------------------------------------------------------------------------------
# Scorer
# ------------------------------------------------------------------------------------------
@dataclass(frozen=True)
class LivenessResult:
    """One face scored: the fused score and whether the gates say it can be trusted."""

    spoof_score: float  # fused, calibrated P(spoof); >= threshold => spoof
    per_model: Mapping[str, float]  # role -> that model's own P(spoof) (1 - softmax live)
    reliable: bool
    conditions: tuple[str, ...]  # why not reliable; empty when reliable
    quality: LivenessQuality


@dataclass(frozen=True)
class LivenessModelInfo:
    """What the scorer is and was measured at, read from its calibration data."""

    recommended_threshold: float
    decision: str  # the threshold rule, in words
    measured: Mapping[str, Any]  # the calibration file's own figures, passed through
    fusion: str  # how the models' outputs are combined, in words
    gate_thresholds: Mapping[str, float]
    gate_conditions: tuple[str, ...]  # each gate, in words with its threshold
    gate_reasons: Mapping[str, str]  # why each gate exists (calibration file)
    note: str
    roles: frozenset[str]  # the registry roles of the ensemble


class LivenessScorer:
    """Scores the face of an image with the pack's liveness ensemble."""

    def __init__(
        self, registry: ModelRegistry, settings: Settings, params: LivenessParams | None = None
    ) -> None:
        self.registry = registry
        self.settings = settings
        self.params = params or LivenessParams.load(registry.pack_name)
        missing = [m.role for m in self.params.models if not registry.has(m.role)]
        if missing:
            raise ValueError(
                f"liveness fusion for pack {registry.pack_name!r} needs roles {missing}"
            )

    @cached_property
    def _input_names(self) -> dict[str, str]:
        return {
            m.role: self.registry.session(m.role).info.inputs[0].name for m in self.params.models
        }

    def crop_box(self, spec: LivenessModelSpec, face: Face) -> np.ndarray:
        """The box the model's context crop is centred on (detector box as fallback)."""
        if spec.box == "landmarks" and self.params.landmark_box is not None:
            box = landmark_box(face.kps, self.params.landmark_box)
            if box is not None:
                return box
        return face.box

    def _tensor(self, spec: LivenessModelSpec, bgr: np.ndarray, face: Face) -> np.ndarray:
        if spec.kind == "minifasnet":
            box = self.crop_box(spec, face)
            patch = minifas_crop(bgr, box, spec.scale, spec.size, spec.context)
            raw: np.ndarray = patch.transpose(2, 0, 1)[None].astype(np.float32)
            return raw  # BGR, raw 0-255
        if spec.kind == "celeba":
            patch = celeba_crop(bgr, face.box, spec.scale, spec.size)
            scaled: np.ndarray = patch.transpose(2, 0, 1)[None].astype(np.float32) / 255.0
            return scaled
        raise ValueError(f"unknown liveness model kind {spec.kind!r}")

    def logits(self, bgr: np.ndarray, face: Face) -> dict[str, np.ndarray]:
        """Raw (1, C) logits of every model of the ensemble (for calibration and tests)."""
        names = self._input_names
        out = {}
        for spec in self.params.models:
            sess = self.registry.session(spec.role)
            out[spec.role] = sess.run({names[spec.role]: self._tensor(spec, bgr, face)})[0]
        return out

    def cue_values(
        self, bgr: np.ndarray, face: Face, names: Collection[str] = CUES
    ) -> dict[str, float]:
        """The model-free cues `names` (`pad_cues`) on the box and context the models see."""
        box = face.box
        if self.params.landmark_box is not None:
            lb = landmark_box(face.kps, self.params.landmark_box)
            box = face.box if lb is None else lb
        h, w = bgr.shape[:2]
        return pad_cues(bgr, box, context_crop_box(box, w, h, CONTEXT_SCALE), names)

    def score_logits(
        self, logits: dict[str, np.ndarray], cues: Mapping[str, float] | None = None
    ) -> tuple[float, dict[str, float]]:
        """Fused P(spoof) and each model's own P(spoof), from (1, C) logits per role and,
        when the fusion has cues, their values (`cue_values`).

        The same `live_logodds` and `fuse` the calibration tool fits with, so the shipped
        numbers mean here what they meant there.
        """
        models = self.params.models
        features = np.array(
            [
                float(live_logodds(np.asarray(logits[m.role]).reshape(1, -1), m.live_index)[0])
                for m in models
            ]
        )
        weights = np.asarray(self.params.weights, np.float64)
        if self.params.cues:
            if cues is None:
                raise ValueError("this liveness fusion has cues: pass cue_values(bgr, face)")
            cs = self.params.cues
            features = np.append(features, [(cues[c.name] - c.mean) / c.scale for c in cs])
            weights = np.append(weights, [c.weight for c in cs])
        spoof = float(fuse(features[None], weights, self.params.bias)[0])
        per_model = {
            m.role: 1.0 / (1.0 + math.exp(float(f)))
            for m, f in zip(models, features[: len(models)], strict=True)
        }
        return spoof, per_model

    def score(self, bgr: np.ndarray, face: Face) -> LivenessResult:
        if bgr.ndim != 3 or bgr.shape[2] != 3:
            raise ValueError("liveness needs a 3-channel BGR image")
        cs = self.params.cues
        cues = self.cue_values(bgr, face, [c.name for c in cs]) if cs else None
        spoof, per_model = self.score_logits(self.logits(bgr, face), cues)
        quality = face_quality(bgr, face)
        conditions = face_conditions(quality, self.params.gates)
        return LivenessResult(
            spoof_score=spoof,
            per_model=per_model,
            reliable=not conditions,
            conditions=tuple(conditions),
            quality=quality,
        )

    def warmup(self) -> None:
        """One inference per model on a synthetic frame: compiles kernels before traffic."""
        img = np.full((240, 320, 3), 128, np.uint8)
        box = np.array([110, 70, 210, 190], np.float32)
        kps = np.array([[140, 115], [180, 115], [160, 140], [145, 165], [175, 165]], np.float32)
        self.score(img, Face(box=box, score=1.0, kps=kps))

    def model_info(self) -> LivenessModelInfo:
        """Threshold, measured error rates and reliability rules, for `GET /models`."""
        p = self.params
        g = p.gates
        return LivenessModelInfo(
            recommended_threshold=p.threshold,
            decision=f"spoofScore >= {p.threshold:g} means spoof",
            measured=p.measured,
            fusion=p.raw["fusion"].get("description", "logistic regression"),
            gate_thresholds=dict(g),
            gate_conditions=(
                f"face too small: shorter face-box side < {g['min_face_px']:g} px",
                f"face too blurred: var(Laplacian) / var(pixels) of the face resampled to"
                f" {RELATIVE_SIDE}x{RELATIVE_SIDE} gray < {g['min_sharpness']:g}",
                f"face too turned: |nose offset from the eye/mouth midline| / eye distance"
                f" > {g['max_abs_yaw']:g} (roughly 30 degrees of yaw)",
                f"face too tilted: nose height between eye line (0) and mouth line (1)"
                f" outside {g['min_pitch']:g}..{g['max_pitch']:g}",
                f"too little context: the frame allows less than {g['min_context']:g}x the"
                " face box around the face (tight crops; the models use 2.7x and 4.0x)",
            ),
            gate_reasons=dict(p.raw["reliability"].get("why", {})),
            note="the score is still returned when unreliable; it is just less trustworthy",
            roles=frozenset(m.role for m in p.models),
        )
