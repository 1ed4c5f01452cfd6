"""Temporal liveness evidence on camera tracks: blinks, on videos assembled from test photos.

Why: a single frame cannot tell a printed photo held still from a face; a blink can. The
camera decision (`edge.camera.decision`) reads a blink as an open, then closed, then open
eye reading on one track. This measures, with the real detector, landmark, eye-state and
liveness models, how often that rule sees a real blink and how often it imagines one on a
printed photo, and what the rule does to the track verdict.

The videos are assembled from the Yale faces of the test data, whose conditions include
`sleepy` (eyes closed) next to open-eyed ones (`normal`, `happy`, `sad`, `surprised`,
`noglasses`, `centerlight`): per subject, a live track with a blink (open frames, the
sleepy frame, open frames), a live track without one, and a print attack (one synthetic
print of an open-eyed frame, moved a little from frame to frame like a sheet in a hand).
Every frame is jittered (shift, turn, scale, sensor noise) from a seed, so the face is
re-detected in each frame as a camera would. The Yale photos are grey scans: the passive
liveness verdicts on them are reported but say little about colour cameras.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import cv2
import numpy as np

from edge.camera.decision import LivenessScore, Rules, blink_seen, liveness_verdict
from edge.evaluation.attacks import synthesize
from edge.vision.details import DetailAnalyzer
from edge.vision.liveness import LivenessScorer
from edge.vision.pipeline import FacePipeline
from edge.vision.types import Face

OPEN_CONDITIONS = ("normal", "happy", "sad", "surprised", "noglasses", "centerlight")
CLOSED_CONDITION = "sleepy"
FRAMES_OPEN = 4  # open frames per track (the blink sits in the middle)

__all__ = ["Video", "assemble", "eye_openness", "format_blinks", "summarize", "track"]


@dataclass(frozen=True)
class Video:
    """One assembled track: its frames and what it is."""

    name: str
    label: str  # "live" | "spoof"
    kind: str  # "live, blink" | "live, no blink" | "print"
    frames: list[np.ndarray] = field(repr=False)


def yale_conditions(testdata: Path) -> dict[str, dict[str, Path]]:
    """Subject -> condition -> photo, from SOURCES.json (the condition is the file suffix)."""
    doc = json.loads((testdata / "SOURCES.json").read_text(encoding="utf-8"))
    out: dict[str, dict[str, Path]] = {}
    for f in doc.get("files", []):
        name = f["file"]
        if not name.startswith("faces_by_identity/yale_"):
            continue
        subject = name.split("/")[1]
        condition = f["source_path"].rsplit(".", 1)[-1]
        out.setdefault(subject, {})[condition] = testdata / name
    return out


def _jitter(bgr: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """A new camera frame of the same scene: small shift, turn, scale and sensor noise."""
    h, w = bgr.shape[:2]
    m = cv2.getRotationMatrix2D(
        (w / 2 + rng.uniform(-3, 3), h / 2 + rng.uniform(-3, 3)),
        rng.uniform(-3.0, 3.0),
        rng.uniform(0.97, 1.03),
    )
    m[:, 2] = m[:, 2] + np.asarray(rng.uniform(-4, 4, 2))
    moved = np.asarray(cv2.warpAffine(bgr, m, (w, h), borderMode=cv2.BORDER_REFLECT))
    noise = np.asarray(rng.normal(0, 2.0, moved.shape), np.float32)
    noisy = moved.astype(np.float32) + noise
    out: np.ndarray = np.clip(noisy, 0, 255).astype(np.uint8)
    return out


def _read(path: Path) -> np.ndarray:
    bgr = cv2.imread(str(path), cv2.IMREAD_COLOR)
    if bgr is None:
        raise ValueError(f"cannot decode {path}")
    return bgr


def assemble(testdata: Path, seed: int = 0) -> list[Video]:
    """The three tracks of every Yale subject that has a sleepy and enough open photos."""
    rng = np.random.default_rng(seed)
    videos = []
    for subject, cond in sorted(yale_conditions(testdata).items()):
        opened = [cond[c] for c in OPEN_CONDITIONS if c in cond]
        if CLOSED_CONDITION not in cond or len(opened) < FRAMES_OPEN:
            continue
        open_frames = [_read(p) for p in opened[:FRAMES_OPEN]]
        closed = _read(cond[CLOSED_CONDITION])
        half = FRAMES_OPEN // 2
        blink = [*open_frames[:half], closed, *open_frames[half:]]
        videos.append(
            Video(f"{subject} blink", "live", "live, blink", [_jitter(f, rng) for f in blink])
        )
        videos.append(
            Video(
                f"{subject} no blink",
                "live",
                "live, no blink",
                [_jitter(f, rng) for f in open_frames],
            )
        )
        sheet = synthesize(open_frames[0], "print", int(rng.integers(1 << 30))).image
        prints = [_jitter(sheet, rng) for _ in range(FRAMES_OPEN + 1)]
        videos.append(Video(f"{subject} print", "spoof", "print", prints))
    return videos


def eye_openness(analyzer: DetailAnalyzer, bgr: np.ndarray, face: Face) -> float | None:
    """Mean P(open) of both eyes (the eye-state model on the 106-point eye rings)."""
    if not analyzer.has_eyes:
        return None
    left, right = analyzer.eyes.predict(bgr, analyzer.landmarks.predict(bgr, face))
    return (left + right) / 2


def track(
    video: Video, pipeline: FacePipeline, analyzer: DetailAnalyzer, scorer: LivenessScorer
) -> list[LivenessScore]:
    """Each frame as the camera sees it: largest fast-detector face, liveness, eyes."""
    out = []
    for bgr in video.frames:
        faces = pipeline.detect_fast(bgr)
        if not faces:
            continue
        face = max(faces, key=lambda f: f.area)
        r = scorer.score(bgr, face)
        out.append(LivenessScore(r.spoof_score, r.reliable, eye_openness(analyzer, bgr, face)))
    return out


def summarize(
    tracks: Sequence[tuple[Video, list[LivenessScore]]], threshold: float
) -> dict[str, Any]:
    """Per kind: blink rate and the track verdicts without and with the blink rule.

    The verdicts use every frame as a vote (the Yale faces are small grey scans that the
    quality gates would mostly hold back), so the blink rule is judged on its own effect.
    """
    passive = Rules(liveness=True, spoof_threshold=threshold)
    with_blink = Rules(liveness=True, spoof_threshold=threshold, blink=True)
    kinds: dict[str, Any] = {}
    for video, scores in tracks:
        k = kinds.setdefault(
            video.kind,
            {
                "tracks": 0,
                "blinks": 0,
                "live": {"passive": 0, "withBlink": 0},
                "label": video.label,
            },
        )
        votes = [s.score for s in scores]
        blinked = blink_seen([s.eyes_open for s in scores if s.eyes_open is not None])
        k["tracks"] += 1
        k["blinks"] += int(blinked)
        for key, rules in (("passive", passive), ("withBlink", with_blink)):
            v = liveness_verdict(votes, len(scores), rules, blinked)
            k["live"][key] += int(v.verdict == "live")
    for k in kinds.values():
        n = max(k["tracks"], 1)
        k["blinkRate"] = k["blinks"] / n
        # live tracks not called live: BPCER-like; attack tracks called live: APCER-like
        rate = {key: v / n for key, v in k["live"].items()}
        rate["blinkOnly"] = k["blinkRate"]  # the rule alone: live iff a blink was seen
        k["error"] = {key: (1 - r if k["label"] == "live" else r) for key, r in rate.items()}
    return kinds


def format_blinks(kinds: dict[str, Any]) -> str:
    lines = [
        "blink evidence on assembled camera tracks (Yale subjects; every frame votes)",
        f"{'track kind':16s} {'tracks':>6s} {'blink seen':>10s} {'passive':>14s} "
        f"{'passive+blink':>14s} {'blink alone':>14s}",
    ]
    for kind, k in kinds.items():
        what = "BPCER" if k["label"] == "live" else "APCER"
        e = k["error"]
        lines.append(
            f"{kind:16s} {k['tracks']:6d} {100 * k['blinkRate']:9.0f}% "
            + " ".join(
                f"{what} {100 * e[key]:7.0f}%" for key in ("passive", "withBlink", "blinkOnly")
            )
        )
    return "\n".join(lines)


def run_blinks(
    testdata: Path,
    pipeline: FacePipeline,
    analyzer: DetailAnalyzer,
    scorer: LivenessScorer,
    seed: int,
    progress: Callable[[str], None] | None = None,
) -> dict[str, Any]:
    videos = assemble(testdata, seed)
    if not videos:
        raise FileNotFoundError(
            f"no Yale subject with sleepy and open-eyed photos under {testdata}; pass the"
            " shared testdata folder (faces_by_identity/yale_* and SOURCES.json)"
        )
    tracks = [(v, track(v, pipeline, analyzer, scorer)) for v in videos]
    if progress:
        progress(f"{len(tracks)} tracks scored")
    report = summarize(tracks, scorer.params.threshold)
    report_rows = {
        v.name: [
            {
                "spoof": round(s.score, 4),
                "eyes": None if s.eyes_open is None else round(s.eyes_open, 3),
            }
            for s in scores
        ]
        for v, scores in tracks
    }
    return {"kinds": report, "tracks": report_rows}
