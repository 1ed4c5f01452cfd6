"""Recognizers of a pack: one network (V1), or several fused into one vector (V2, CC0).

A pack names its recognition networks by role: `embedding` (the entry) and
`embedding_<x>` partners. With partners, the stored vector is the weighted pair

    v = [sqrt(w1) * e1  ⊕  sqrt(w2) * e2],   w1 + w2 = 1,   |e1| = |e2| = 1

so `v · v'` = w1 cos1 + w2 cos2: the dot product the store and every caller already
compute IS the fused score, an affine function of the z-normalised score sum the weights
were fitted for (w_k proportional to alpha_k / impostor std_k). Search, compare and the
camera need no second code path, and each part stays recoverable (`split`). The weights
live in the pack (manifest `embedding_weights`) and enter the pack fingerprint, so vectors
made with other weights never mix with these.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Protocol

import numpy as np

from edge.runtime.registry import ModelRegistry
from edge.vision.align import ARCFACE_TEMPLATE
from edge.vision.dlib_embedding import DLIB_FILE, DlibEmbedder
from edge.vision.embedding import Embedder

__all__ = [
    "FaceEmbedder",
    "FusedEmbedder",
    "PartEmbedder",
    "build_embedder",
    "embedding_roles",
    "fuse",
    "split",
]


class FaceEmbedder(Protocol):
    """A recognizer: a face of an image (5 keypoints) -> unit vector, directly
    (`embed_face`) or in two steps (`align` now, `embed` later: cameras keep the crop)."""

    @property
    def dim(self) -> int: ...

    def align(self, bgr: np.ndarray, kps: np.ndarray) -> np.ndarray: ...

    def embed(self, crop_bgr: np.ndarray) -> np.ndarray: ...

    def embed_face(self, bgr: np.ndarray, kps: np.ndarray) -> np.ndarray: ...


class PartEmbedder(FaceEmbedder, Protocol):
    """One network of a fused recognizer; it reads a square crop of `size` pixels."""

    @property
    def size(self) -> int: ...


def embedding_roles(roles: Mapping[str, object]) -> list[str]:
    """The pack's recognition roles: `embedding` first, then partners by name."""
    partners = sorted(r for r in roles if r.startswith("embedding_"))
    return (["embedding"] if "embedding" in roles else []) + partners


def fuse(parts: Sequence[np.ndarray], weights: Sequence[float]) -> np.ndarray:
    """The stored vector of unit parts: each scaled by sqrt(weight), weights summing to 1."""
    w = np.asarray(weights, dtype=np.float64)
    if len(w) != len(parts) or np.any(w < 0) or w.sum() <= 0:
        raise ValueError(f"need one non-negative weight per part, got {list(weights)}")
    w = w / w.sum()
    out = [np.sqrt(wk) * np.asarray(p, dtype=np.float32) for wk, p in zip(w, parts, strict=True)]
    return np.concatenate(out).astype(np.float32)


def split(vector: np.ndarray, dims: Sequence[int]) -> list[np.ndarray]:
    """The unit parts of a fused vector (a zero part stays zero)."""
    if sum(dims) != vector.shape[-1]:
        raise ValueError(f"vector of {vector.shape[-1]} values is not parts of {list(dims)}")
    out, at = [], 0
    for d in dims:
        p = np.asarray(vector[..., at : at + d], dtype=np.float32)
        n = np.linalg.norm(p, axis=-1, keepdims=True)
        out.append(np.divide(p, n, out=np.zeros_like(p), where=n > 0))
        at += d
    return out


class FusedEmbedder:
    """Several networks, one vector (see the module docstring); one part = that network."""

    def __init__(self, parts: Sequence[PartEmbedder], weights: Sequence[float]) -> None:
        if not parts:
            raise ValueError("a fused embedder needs at least one network")
        self.parts = list(parts)
        w = np.asarray(weights, dtype=np.float64)
        self.weights = tuple(float(x) for x in w / w.sum())
        fuse([np.zeros(1)] * len(self.parts), self.weights)  # validates the weights
        self.dims = tuple(p.dim for p in self.parts)
        self.dim = sum(self.dims)
        #: (height, width) of `align`'s image: the parts' square crops side by side
        self.packed = (max(p.size for p in self.parts), sum(p.size for p in self.parts))

    def embed_face(self, bgr: np.ndarray, kps: np.ndarray) -> np.ndarray:
        """Each network aligns the face its own way from the image, then the parts fuse."""
        return fuse([p.embed_face(bgr, kps) for p in self.parts], self.weights)

    def align(self, bgr: np.ndarray, kps: np.ndarray) -> np.ndarray:
        """Every network's own crop side by side in one image (zero-padded to the tallest),
        so a caller that keeps one crop per face keeps what each network reads."""
        crops = [p.align(bgr, kps) for p in self.parts]
        out = np.zeros((max(c.shape[0] for c in crops), sum(c.shape[1] for c in crops), 3),
                       dtype=crops[0].dtype)  # fmt: skip
        at = 0
        for c in crops:
            out[: c.shape[0], at : at + c.shape[1]] = c
            at += c.shape[1]
        return out

    def embed(self, crop_bgr: np.ndarray) -> np.ndarray:
        """From `align`'s image (exact), or from a square ArcFace-aligned crop as older
        callers pass: its keypoints are the template, so each network re-aligns from it,
        which is lossier (the dlib chip reaches below the ArcFace crop's chin line)."""
        h, w = crop_bgr.shape[:2]
        if (h, w) == self.packed:
            vecs, at = [], 0
            for p in self.parts:
                vecs.append(p.embed(crop_bgr[: p.size, at : at + p.size]))
                at += p.size
            return fuse(vecs, self.weights)
        if h != w:
            raise ValueError(f"a {w}x{h} crop is neither this embedder's `align` output nor square")
        return self.embed_face(crop_bgr, ARCFACE_TEMPLATE * (h / 112.0))

    def embed_many(self, crops: Sequence[np.ndarray]) -> np.ndarray:
        if not crops:
            return np.zeros((0, self.dim), dtype=np.float32)
        return np.stack([self.embed(c) for c in crops])


def _part(registry: ModelRegistry, role: str) -> PartEmbedder:
    session = registry.session(role)
    if registry.files(role)[0].file == DLIB_FILE:
        return DlibEmbedder(session)
    return Embedder(session)


def build_embedder(registry: ModelRegistry) -> FaceEmbedder:
    """The pack's recognizer: the MobileFaceNet alone keeps V1's exact code path."""
    roles = embedding_roles(registry.pack.roles)
    if roles == ["embedding"] and registry.files("embedding")[0].file != DLIB_FILE:
        return Embedder(registry.session("embedding"))
    weights = registry.pack.embedding_weights or {}
    missing = [r for r in roles if r not in weights] if len(roles) > 1 else []
    if missing:
        raise ValueError(
            f"model pack {registry.pack_name!r} fuses {roles} but gives no embedding_weights "
            f"for {missing}; add them to the manifest pack"
        )
    parts = [_part(registry, r) for r in roles]
    return FusedEmbedder(parts, [weights.get(r, 1.0) for r in roles])
