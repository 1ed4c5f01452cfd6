"""What `edge-face eval liveness` and its leave-one-source-out protocol share: the labelled
samples, finding the face the endpoint would score, and the error rates (ISO/IEC 30107-3).

Kept apart from the command modules so that the protocols can use them without importing
each other.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import cv2
import numpy as np

from edge.vision.errors import FaceTooSmall, NoFaceFound
from edge.vision.geometry import Box
from edge.vision.pipeline import FacePipeline
from edge.vision.types import Face

PAD_FRACTION = 0.35  # border added on every side for the second detection attempt

__all__ = ["PAD_FRACTION", "Sample", "error_rates", "find_face", "load_samples", "roc_auc"]


# ------------------------------------------------------------------------------------------
# Data
# ------------------------------------------------------------------------------------------
@dataclass(frozen=True)
class Sample:
    path: Path
    label: str  # "live" | "spoof"
    source: str  # source repository (or "unknown")
    attack: str | None = None  # attack type for spoofs, when known


def load_samples(data_dir: Path) -> list[Sample]:
    """Every image under `live/` and `spoof/`, labelled by SOURCES.json where it exists.

    SOURCES.json is looked up in the folder and its parent (the shared testdata layout);
    its label wins over the folder name, and a disagreement is an error, not a guess.
    """
    data_dir = Path(data_dir)
    meta: dict[str, dict[str, Any]] = {}
    for cand in (data_dir / "SOURCES.json", data_dir.parent / "SOURCES.json"):
        if cand.is_file():
            root = cand.parent
            for f in json.loads(cand.read_text(encoding="utf-8")).get("files", []):
                meta[str((root / f["file"]).resolve())] = f
            break
    samples = []
    for folder in ("live", "spoof"):
        d = data_dir / folder
        if not d.is_dir():
            continue
        for p in sorted(d.iterdir()):
            if p.suffix.lower() not in (".png", ".jpg", ".jpeg", ".bmp", ".webp"):
                continue
            m = meta.get(str(p.resolve()), {})
            labels = m.get("labels", {})
            label = labels.get("label", folder)
            if label != folder:
                raise ValueError(f"{p.name}: SOURCES.json says {label!r} but it is in {folder}/")
            samples.append(
                Sample(p, label, m.get("source_repo", "unknown"), labels.get("attack_type"))
            )
    if not samples:
        raise FileNotFoundError(f"no images under {data_dir}/live or {data_dir}/spoof")
    return samples


# ------------------------------------------------------------------------------------------
# Face finding
# ------------------------------------------------------------------------------------------
def find_face(
    bgr: np.ndarray, pipeline: FacePipeline, pad_fraction: float = PAD_FRACTION
) -> tuple[Face | None, str]:
    """The face the endpoint would score, and how it was found.

    "direct" (as the endpoint finds it), "padded" (found only on a black-bordered copy; box
    and keypoints mapped back), "none" (223 even padded) or "too small" (224).
    """
    try:
        return pipeline.analyze_largest(bgr, embed=False).face, "direct"
    except FaceTooSmall:
        return None, "too small"
    except NoFaceFound:
        pass
    h, w = bgr.shape[:2]
    px, py = round(w * pad_fraction), round(h * pad_fraction)
    padded = cv2.copyMakeBorder(bgr, py, py, px, px, cv2.BORDER_CONSTANT, value=(0, 0, 0))
    try:
        face = pipeline.analyze_largest(padded, embed=False).face
    except NoFaceFound:
        return None, "none"
    except FaceTooSmall:
        return None, "too small"
    shift = np.array([px, py], np.float32)
    box = face.box.astype(np.float32) - np.tile(shift, 2)
    box = Box.of(box).clip(w, h).array()
    return Face(box=box, score=face.score, kps=face.kps.astype(np.float32) - shift), "padded"


# ------------------------------------------------------------------------------------------
# Metrics
# ------------------------------------------------------------------------------------------
def error_rates(live: np.ndarray, spoof: np.ndarray, threshold: float) -> dict[str, float]:
    """APCER (spoof scored < threshold), BPCER (live scored >= threshold), ACER."""
    apcer = float(np.mean(spoof < threshold)) if spoof.size else float("nan")
    bpcer = float(np.mean(live >= threshold)) if live.size else float("nan")
    return {"apcer": apcer, "bpcer": bpcer, "acer": (apcer + bpcer) / 2}


def roc_auc(live: np.ndarray, spoof: np.ndarray) -> float:
    """P(a random spoof scores above a random live), ties counting one half (Mann-Whitney)."""
    if not live.size or not spoof.size:
        return float("nan")
    scores = np.concatenate([live, spoof])
    order = scores.argsort(kind="mergesort")
    ranks = np.empty(len(scores), np.float64)
    sorted_scores = scores[order]
    i = 0
    while i < len(scores):  # average ranks over ties
        j = i
        while j + 1 < len(scores) and sorted_scores[j + 1] == sorted_scores[i]:
            j += 1
        ranks[order[i : j + 1]] = (i + j) / 2 + 1
        i = j + 1
    r_spoof = ranks[len(live) :].sum()
    n_s, n_l = len(spoof), len(live)
    return float((r_spoof - n_s * (n_s + 1) / 2) / (n_s * n_l))
