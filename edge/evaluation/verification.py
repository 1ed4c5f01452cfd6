"""Verification and identification metrics on the labelled identity folder.

Shared by `edge-face eval` and the similarity calibration tool so that both measure the
same pairs the same way (one embedding per image, computed once per run).
"""

from __future__ import annotations

import json
import sys
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from pathlib import Path

import cv2
import numpy as np

from edge.vision.errors import FaceError

__all__ = [
    "Sample",
    "embed_samples",
    "identity_items",
    "open_set",
    "pair_cosines",
    "roc_auc",
    "tar_at_far",
    "threshold_for_far",
]


@dataclass
class Sample:
    file: str  # relative to the testdata folder
    identity: str
    kind: str  # SOURCES.json image_kind
    embedding: np.ndarray | None = None
    error: str | None = None  # why there is no usable face (unreadable, none, too small)


def identity_items(testdata: Path) -> list[Sample]:
    """Every faces_by_identity image with its identity and image_kind labels."""
    src = json.loads((testdata / "SOURCES.json").read_text(encoding="utf-8"))
    out = []
    for f in src["files"]:
        if f.get("category") != "faces_by_identity":
            continue
        lab = f.get("labels", {})
        out.append(Sample(f["file"], lab["identity"], lab.get("image_kind", "unknown")))
    out.sort(key=lambda s: s.file)
    return out


class Progress:
    """A one-line counter on stderr (quiet when stderr is not a terminal-ish stream)."""

    def __init__(self, label: str, total: int, enabled: bool = True) -> None:
        self.label, self.total, self.enabled = label, total, enabled
        self.t0 = time.perf_counter()

    def step(self, i: int) -> None:
        if self.enabled and (i % 25 == 0 or i == self.total):
            dt = time.perf_counter() - self.t0
            sys.stderr.write(f"\r{self.label}: {i}/{self.total} ({dt:.0f}s)")
            if i == self.total:
                sys.stderr.write("\n")
            sys.stderr.flush()


def embed_samples(
    embed: Callable[[np.ndarray], np.ndarray],
    testdata: Path,
    samples: Iterable[Sample],
    progress: bool = True,
) -> list[Sample]:
    """Fill `embedding` (or `error` when no usable face) for each sample, in place."""
    items = list(samples)
    bar = Progress("embedding", len(items), progress)
    for i, s in enumerate(items, 1):
        img = cv2.imread(str(testdata / s.file), cv2.IMREAD_COLOR)
        if img is None:
            s.error = "unreadable image"
        else:
            try:
                s.embedding = embed(img)
            except FaceError as e:
                s.error = e.detail
        bar.step(i)
    return items


@dataclass
class Pairs:
    genuine: np.ndarray  # cosines of same-identity pairs
    impostor: np.ndarray  # cosines of different-identity pairs
    genuine_kind: np.ndarray  # image_kind when both images share it, else "mixed"
    impostor_kind: np.ndarray


def _stack(samples: list[Sample]) -> np.ndarray:
    """The samples' embeddings as rows; every sample given must have been embedded."""
    rows = [s.embedding for s in samples if s.embedding is not None]
    if len(rows) != len(samples):
        raise ValueError("a sample without an embedding reached a measure that needs one")
    return np.stack(rows)


def pair_cosines(samples: list[Sample]) -> Pairs:
    """All unordered pairs of embedded samples, split into genuine and impostor."""
    ok = [s for s in samples if s.embedding is not None]
    e = _stack(ok).astype(np.float32)
    ids = np.array([s.identity for s in ok])
    kinds = np.array([s.kind for s in ok])
    sim = e @ e.T
    iu, ju = np.triu_indices(len(ok), k=1)
    cos = sim[iu, ju].astype(np.float64)
    same = ids[iu] == ids[ju]
    kind = np.where(kinds[iu] == kinds[ju], kinds[iu], "mixed")
    return Pairs(cos[same], cos[~same], kind[same], kind[~same])


def threshold_for_far(impostor: np.ndarray, far: float) -> float:
    """Smallest cosine t with mean(impostor >= t) <= far (strict operating point)."""
    if len(impostor) == 0:
        return 1.0
    k = int(np.floor(far * len(impostor)))  # impostor pairs allowed at or above t
    desc = np.sort(impostor)[::-1]
    if k >= len(desc):
        return float(desc[-1])
    return float(desc[k]) + 1e-6  # just above the first impostor that must be rejected


def tar_at_far(genuine: np.ndarray, impostor: np.ndarray, far: float) -> tuple[float, float]:
    """(TAR, cosine threshold) at the strict threshold for `far`."""
    t = threshold_for_far(impostor, far)
    tar = float(np.mean(genuine >= t)) if len(genuine) else float("nan")
    return tar, t


def roc_auc(genuine: np.ndarray, impostor: np.ndarray) -> float:
    """P(genuine > impostor) + 0.5 P(tie): the Mann-Whitney form of the ROC AUC."""
    if len(genuine) == 0 or len(impostor) == 0:
        return float("nan")
    imp = np.sort(impostor)
    lo = np.searchsorted(imp, genuine, side="left")
    hi = np.searchsorted(imp, genuine, side="right")
    return float((lo + 0.5 * (hi - lo)).sum() / (len(genuine) * len(imp)))


@dataclass
class OpenSet:
    gallery: int
    known_probes: int
    unknown_probes: int
    rank1: float  # closed-set: best gallery match is the right person
    tpir: float  # known probe: right person AND score >= threshold
    rejection: float  # unknown probe: best score < threshold
    false_accept: float  # unknown probe accepted as somebody


def open_set(
    samples: list[Sample], score: Callable[[np.ndarray], np.ndarray], threshold: float
) -> OpenSet:
    """1:N with half the identities enrolled (one image each), probes from all the rest.

    Identities are split by sorted name (every other one enrolled), deterministic so that
    runs compare; never-enrolled people are the open-set impostors.
    """
    ok = [s for s in samples if s.embedding is not None]
    by_id: dict[str, list[Sample]] = {}
    for s in ok:
        by_id.setdefault(s.identity, []).append(s)
    names = sorted(by_id)
    enrolled = set(names[::2])
    gallery = [by_id[n][0] for n in names if n in enrolled]
    probes = [s for n in names for s in (by_id[n][1:] if n in enrolled else by_id[n])]
    g = _stack(gallery)
    gid = np.array([s.identity for s in gallery])
    p = _stack(probes)
    known = np.array([s.identity in enrolled for s in probes])
    cos = p @ g.T
    best = cos.argmax(1)
    best_score = np.asarray(score(cos[np.arange(len(p)), best]))
    right = gid[best] == np.array([s.identity for s in probes])
    accepted = best_score >= threshold
    kp, up = int(known.sum()), int((~known).sum())
    return OpenSet(
        gallery=len(gallery),
        known_probes=kp,
        unknown_probes=up,
        rank1=float(right[known].mean()) if kp else float("nan"),
        tpir=float((right & accepted)[known].mean()) if kp else float("nan"),
        rejection=float((~accepted)[~known].mean()) if up else float("nan"),
        false_accept=float(accepted[~known].mean()) if up else float("nan"),
    )
