"""Rigid-motion evidence on camera tracks assembled from the test data (real models).

Why: the camera cue `edge.camera.rigid` calls a track `flat` when its face moves like a
plane (a photo or a screen turned in the hand) and `depth` when it shows parallax. This
measures, with the real fast detector, mesh and liveness models, how often the cue decides
at all, how often it is wrong, and what it does to the passive track verdict.

The tracks (every frame re-detected, as a camera would):

- live, video: consecutive frames of the one real webcam video of the test data (Apfol
  `apfol_real_*`, a person turning his head), in windows of `WINDOW` frames.
- live, poses: the ten photos of each ORL subject, taken with the head turned and tilted
  (not a video: the steps between frames are larger than a camera's).
- live, still: Yale subjects, frontal photos with changing expression (little out-of-plane
  motion: the cue should mostly stay undecided).
- print, turned / screen, turned: one bona fide photo per identity made into a synthetic
  print or screen capture (`edge.evaluation.attacks`), then turned through a smooth random
  sequence of 3D plane rotations (a homography per frame), as a hand turns a sheet, the
  light on it changing with the turn (brightness, shading, some motion blur).
- print, steady light / screen, steady light: the same, without the light changes (the
  easy case for following pixels: it bounds what the cue can do).
- replay video: the real replay attack of the test data (`apfol_fake_*`, a phone playing a
  video of a moving head, cropped to the face): its content is a real head, not a plane,
  so the cue is expected to say `depth` there; it shows what the cue cannot catch.
"""

from __future__ import annotations

import json
import math
import re
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import cv2
import numpy as np

from edge.camera.decision import LivenessScore, Rules, liveness_verdict
from edge.camera.rigid import PairMotion, RigidEvidence, TrackMotion, rigid_evidence
from edge.evaluation.attacks import synthesize
from edge.evaluation.blinks import OPEN_CONDITIONS, yale_conditions
from edge.evaluation.liveness_common import PAD_FRACTION
from edge.evaluation.report import table
from edge.vision.liveness import LivenessScorer
from edge.vision.mesh import MeshModel
from edge.vision.pipeline import FacePipeline
from edge.vision.types import Face

WINDOW = 6  # frames per track cut from a video
TURN_FRAMES = 8  # frames per turned-sheet track
MAX_TURN_DEG = 25.0  # largest yaw / pitch amplitude of a turned sheet
BLUR_P = 0.4  # share of turned-sheet frames with a little motion blur

__all__ = [
    "RigidTrack",
    "Video",
    "assemble",
    "format_rigid",
    "plane_turn",
    "run_rigid",
    "summarize",
    "track",
]


@dataclass(frozen=True)
class Video:
    """One assembled track: its frames and what it is."""

    name: str
    label: str  # "live" | "spoof"
    kind: str
    frames: list[np.ndarray] = field(repr=False)


@dataclass(frozen=True)
class RigidTrack:
    """What the camera saw on one track: per-frame liveness and mesh, and the cue."""

    video: Video
    scores: list[LivenessScore]
    pairs: list[PairMotion]  # every frame's motion from its anchor, counted or not
    evidence: RigidEvidence


def _read(path: Path) -> np.ndarray:
    bgr = cv2.imread(str(path), cv2.IMREAD_COLOR)
    if bgr is None:
        raise ValueError(f"cannot decode {path}")
    return bgr


def _largest(pipeline: FacePipeline, bgr: np.ndarray) -> Face | None:
    """The largest fast-detector face; on a face-ROI crop the detector may need a border
    (found on a black-bordered copy, mapped back), as `eval liveness` finds it."""
    faces = pipeline.detect_fast(bgr)
    if not faces:
        h, w = bgr.shape[:2]
        px, py = round(w * PAD_FRACTION), round(h * PAD_FRACTION)
        padded = cv2.copyMakeBorder(bgr, py, py, px, px, cv2.BORDER_CONSTANT, value=(0, 0, 0))
        shift = np.array([px, py], np.float32)
        faces = [
            Face(box=f.box - np.tile(shift, 2), score=f.score, kps=f.kps - shift)
            for f in pipeline.detect_fast(padded)
        ]
    return max(faces, key=lambda f: f.area) if faces else None


def _numbered(folder: Path, prefix: str) -> list[Path]:
    """`prefix_N.png` files of `folder`, in frame order N."""
    pat = re.compile(rf"^{re.escape(prefix)}_(\d+)\.png$")
    found = [
        (int(m.group(1)), p) for p in folder.glob(f"{prefix}_*.png") if (m := pat.match(p.name))
    ]
    return [p for _, p in sorted(found)]


def _jitter(bgr: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """A new camera frame of the same scene: small shift and sensor noise (no turn)."""
    h, w = bgr.shape[:2]
    m = np.array([[1.0, 0.0, rng.uniform(-3, 3)], [0.0, 1.0, rng.uniform(-3, 3)]])
    moved = np.asarray(cv2.warpAffine(bgr, m, (w, h), borderMode=cv2.BORDER_REFLECT))
    noisy = moved.astype(np.float32) + rng.normal(0, 2.0, moved.shape).astype(np.float32)
    out: np.ndarray = np.clip(noisy, 0, 255).astype(np.uint8)
    return out


def plane_turn(
    w: int, h: int, yaw: float, pitch: float, roll: float, shift: tuple[float, float] = (0, 0)
) -> np.ndarray:
    """The homography that shows a w x h sheet facing the camera turned by yaw / pitch /
    roll (degrees) about its centre, seen by a pinhole of focal length 1.2 x w (a webcam's
    ~45 degree view), the sheet's distance chosen so the unturned sheet keeps its size."""
    f = 1.2 * w
    y, p, r = (math.radians(v) for v in (yaw, pitch, roll))
    ry = np.array([[math.cos(y), 0, math.sin(y)], [0, 1, 0], [-math.sin(y), 0, math.cos(y)]])
    rx = np.array([[1, 0, 0], [0, math.cos(p), -math.sin(p)], [0, math.sin(p), math.cos(p)]])
    rz = np.array([[math.cos(r), -math.sin(r), 0], [math.sin(r), math.cos(r), 0], [0, 0, 1]])
    rot = ry @ rx @ rz
    corners = np.array([[0, 0], [w, 0], [w, h], [0, h]], np.float64)
    local = np.c_[corners - (w / 2, h / 2), np.zeros(4)]
    cam = local @ rot.T + (0.0, 0.0, f)
    img = f * cam[:, :2] / cam[:, 2:] + (w / 2 + shift[0], h / 2 + shift[1])
    hom: np.ndarray = cv2.getPerspectiveTransform(
        corners.astype(np.float32), img.astype(np.float32)
    )
    return hom


def _lit(img: np.ndarray, yaw: float, pitch: float, rng: np.random.Generator) -> np.ndarray:
    """The light a turned sheet catches: brighter as it faces the lamp, a gradient across
    it that follows the turn, and now and then a little motion blur (so the pixels the
    cue follows change from frame to frame, as on a real sheet, not only move)."""
    h, w = img.shape[:2]
    gain = 1.0 + 0.25 * math.sin(math.radians(yaw + pitch)) + rng.uniform(-0.05, 0.05)
    xs = np.linspace(-1.0, 1.0, w, dtype=np.float32)[None, :]
    ys = np.linspace(-1.0, 1.0, h, dtype=np.float32)[:, None]
    ramp = 1.0 + 0.2 * (math.sin(math.radians(yaw)) * xs + math.sin(math.radians(pitch)) * ys)
    lit: np.ndarray = img.astype(np.float32) * (gain * ramp)[..., None]
    if rng.random() < BLUR_P:
        k = int(rng.integers(3, 6))
        kernel = np.zeros((k, k), np.float32)
        kernel[k // 2, :] = 1.0 / k
        m = cv2.getRotationMatrix2D((k / 2 - 0.5, k / 2 - 0.5), rng.uniform(0, 180), 1.0)
        lit = np.asarray(cv2.filter2D(lit, -1, cv2.warpAffine(kernel, m, (k, k))))
    out: np.ndarray = np.clip(lit, 0, 255).astype(np.uint8)
    return out


def _turned(
    sheet: np.ndarray, rng: np.random.Generator, frames: int, lit: bool = True
) -> list[np.ndarray]:
    """The sheet turned through a smooth random path of yaw and pitch, a little roll; with
    `lit`, lit differently at every turn (else the light on it never changes)."""
    h, w = sheet.shape[:2]
    amp_y, amp_p = rng.uniform(10, MAX_TURN_DEG), rng.uniform(5, MAX_TURN_DEG * 0.6)
    ph_y, ph_p = rng.uniform(0, 2 * math.pi, 2)
    out = []
    for k in range(frames):
        t = 2 * math.pi * k / frames
        yaw, pitch = amp_y * math.sin(t + ph_y), amp_p * math.sin(t + ph_p)
        hom = plane_turn(
            w,
            h,
            yaw,
            pitch,
            rng.uniform(-3, 3),
            (rng.uniform(-0.03, 0.03) * w, rng.uniform(-0.03, 0.03) * h),
        )
        warped = cv2.warpPerspective(sheet, hom, (w, h), borderMode=cv2.BORDER_REPLICATE)
        frame = _lit(np.asarray(warped), yaw, pitch, rng) if lit else np.asarray(warped)
        out.append(_jitter(frame, rng))
    return out


def _stills(testdata: Path) -> list[tuple[str, Path]]:
    """One colour bona fide photo per named identity (faces_by_identity, not ORL / Yale)."""
    out = []
    for d in sorted((testdata / "faces_by_identity").iterdir()):
        if not d.is_dir() or d.name.startswith(("orl_", "yale_")):
            continue
        files = sorted(p for p in d.iterdir() if p.suffix.lower() in (".jpg", ".jpeg", ".png"))
        if files:
            out.append((d.name, files[0]))
    return out


def assemble(testdata: Path, seed: int = 0, per_kind: int | None = None) -> list[Video]:
    """Every kind of track (module docstring); `per_kind` caps each kind (tests)."""
    rng = np.random.default_rng(seed)
    cap = per_kind if per_kind is not None else 10**6
    videos: list[Video] = []

    def windows(prefix: str, folder: Path, label: str, kind: str) -> None:
        frames = _numbered(folder, prefix)
        for n, i in enumerate(range(0, len(frames) - WINDOW + 1, WINDOW)):
            if n >= cap:
                break
            chunk = [_read(p) for p in frames[i : i + WINDOW]]
            videos.append(Video(f"{prefix} {i}-{i + WINDOW - 1}", label, kind, chunk))

    windows("apfol_real", testdata / "liveness" / "live", "live", "live, video")
    orl = sorted(d for d in (testdata / "faces_by_identity").glob("orl_s*") if d.is_dir())
    for d in orl[:cap]:
        files = sorted(d.glob("*.png"), key=lambda p: int(p.stem) if p.stem.isdigit() else 0)
        frames = [_jitter(cv2.resize(_read(p), None, fx=2.5, fy=2.5), rng) for p in files]
        videos.append(Video(f"{d.name} poses", "live", "live, poses", frames))
    for subject, cond in sorted(yale_conditions(testdata).items())[:cap]:
        opened = [_read(cond[c]) for c in OPEN_CONDITIONS if c in cond]
        if len(opened) >= 3:
            frames = [_jitter(f, rng) for f in opened]
            videos.append(Video(f"{subject} still", "live", "live, still", frames))
    for name, path in _stills(testdata)[:cap]:
        photo = _read(path)
        for kind in ("print", "screen"):
            sheet = synthesize(photo, kind, int(rng.integers(1 << 30))).image
            frames = _turned(sheet, rng, TURN_FRAMES)
            videos.append(Video(f"{name} {kind}", "spoof", f"{kind}, turned", frames))
            steady = _turned(sheet, rng, TURN_FRAMES, lit=False)
            videos.append(Video(f"{name} {kind} steady", "spoof", f"{kind}, steady light", steady))
    windows("apfol_fake", testdata / "liveness" / "spoof", "spoof", "replay video")
    return videos


def track(
    video: Video, pipeline: FacePipeline, mesh: MeshModel, scorer: LivenessScorer
) -> RigidTrack:
    """Each frame as the camera sees it: largest fast-detector face, liveness, mesh."""
    scores: list[LivenessScore] = []
    pairs: list[PairMotion] = []
    motion = TrackMotion()
    for bgr in video.frames:
        face = _largest(pipeline, bgr)
        if face is None:
            continue
        r = scorer.score(bgr, face)
        scores.append(LivenessScore(r.spoof_score, r.reliable))
        pair = motion.see(bgr, mesh.predict(bgr, face).points)
        if pair is not None:
            pairs.append(pair)
    return RigidTrack(video, scores, pairs, rigid_evidence(pairs))


def summarize(tracks: Sequence[RigidTrack], threshold: float) -> dict[str, Any]:
    """Per kind: share decided, the cue's own error, passive and fused track verdicts.

    Every frame votes (the assembled frames are not all camera-sized faces), so the rule is
    judged on its own effect. Errors: live kinds BPCER (not called live), attack kinds APCER
    (called live). The cue alone calls `flat` spoof and `depth` live; undecided tracks have
    no cue verdict and are left out of its error (they are the `decided` share).
    """
    passive = Rules(liveness=True, spoof_threshold=threshold)
    fused = Rules(liveness=True, spoof_threshold=threshold, rigid=True)
    kinds: dict[str, Any] = {}
    for t in tracks:
        v = t.video
        k = kinds.setdefault(
            v.kind,
            {"label": v.label, "tracks": 0, "decided": 0, "flat": 0, "depth": 0,
             "live": {"passive": 0, "withRigid": 0}},
        )  # fmt: skip
        k["tracks"] += 1
        ev = t.evidence.verdict
        if ev != "undecided":
            k["decided"] += 1
            k[ev] += 1
        votes = [s.score for s in t.scores]
        for key, rules in (("passive", passive), ("withRigid", fused)):
            verdict = liveness_verdict(votes, len(t.scores), rules, rigid=ev)
            k["live"][key] += int(verdict.verdict == "live")
    for k in kinds.values():
        n = max(k["tracks"], 1)
        k["decidedRate"] = k["decided"] / n
        wrong = k["flat"] if k["label"] == "live" else k["depth"]
        cue = wrong / k["decided"] if k["decided"] else float("nan")
        rate = {key: x / n for key, x in k["live"].items()}
        k["error"] = {key: (1 - r if k["label"] == "live" else r) for key, r in rate.items()}
        k["error"]["rigidOnly"] = cue
    return kinds


def _pct(x: float) -> str:
    return "  -" if math.isnan(x) else f"{100 * x:.0f}%"


HEADERS = (
    "track kind", "tracks", "decided", "flat/depth", "error", "cue alone", "passive",
    "passive+rigid",
)  # fmt: skip


def format_rigid(kinds: dict[str, Any]) -> str:
    rows = []
    for kind, k in kinds.items():
        what = "BPCER" if k["label"] == "live" else "APCER"
        e = k["error"]
        rows.append(
            [kind, k["tracks"], _pct(k["decidedRate"]), f"{k['flat']}/{k['depth']}", what,
             _pct(e["rigidOnly"]), _pct(e["passive"]), _pct(e["withRigid"])]
        )  # fmt: skip
    return "\n".join(
        [
            "rigid-motion evidence on assembled camera tracks (every frame votes; cue alone:"
            " flat = spoof, depth = live, over decided tracks)",
            table(HEADERS, rows),
        ]
    )


def run_rigid(
    testdata: Path,
    pipeline: FacePipeline,
    mesh: MeshModel,
    scorer: LivenessScorer,
    seed: int,
    per_kind: int | None = None,
    progress: Callable[[str], None] | None = None,
) -> dict[str, Any]:
    if not mesh.available:
        raise FileNotFoundError(
            "the model pack has no landmarks468 (mesh) role; choose a pack with the mesh"
        )
    videos = assemble(testdata, seed, per_kind)
    if not videos:
        raise FileNotFoundError(
            f"no tracks could be assembled from {testdata}; pass the shared testdata folder"
            " (liveness/live, liveness/spoof, faces_by_identity)"
        )
    tracks = [track(v, pipeline, mesh, scorer) for v in videos]
    if progress:
        progress(f"{len(tracks)} tracks scored")
    kinds = summarize(tracks, scorer.params.threshold)
    rows = {
        t.video.name: {
            "kind": t.video.kind,
            "frames": len(t.scores),
            "rigid": t.evidence.verdict,
            "score": t.evidence.score,
            "pairs": t.evidence.pairs,
            "motion": [[round(p.similarity, 4), round(p.residual, 4)] for p in t.pairs],
            "spoof": [round(s.score, 4) for s in t.scores],
        }
        for t in tracks
    }
    return {"kinds": kinds, "tracks": rows}


def write(report: dict[str, Any], out: Path) -> None:
    out.write_text(json.dumps(report, indent=1), encoding="utf-8")
