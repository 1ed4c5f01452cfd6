"""Recognition: what REST handlers, cameras and commands ask of the engine, in one service.

Analyze (decode + the largest face), search (calibrated score + the threshold rule), enrol,
compare and liveness, each written once and returning typed values; the callers only
render them (`edge.api.wire` for REST, `edge.camera.payload` for camera events).

Errors stay domain errors (`ImageInputError`, `FaceError`): this layer does not know which
request field an image came from, so the API maps them to contract codes with the field's
name (`edge.api.images.on_image`). Every method blocks (decode, inference, SQLite): call
it off the event loop.

Two ways to find a face, on purpose: `analyze` (fast detector, slow fallback, largest face:
api.md §3) answers a request that has one chance; `detect_frame` (fast detector only) serves
a camera, which sees the same face many times, so a miss costs one frame, not an answer.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np

from edge.engine import Engine
from edge.imaging.area import parse_area
from edge.imaging.decode import DecodedImage, decode_image
from edge.imaging.orientation import rotate_cw
from edge.store.entities import Entity, EntityStore
from edge.vision.geometry import PixelBox
from edge.vision.liveness import LivenessResult
from edge.vision.pipeline import FacePipeline, face_side_px
from edge.vision.types import Area, DetailFlags, Face, FaceAnalysis

__all__ = [
    "Analyzed",
    "Comparison",
    "Enrolled",
    "ImageQuery",
    "LivenessCheck",
    "LivenessUnavailable",
    "Match",
    "Recognition",
    "SearchResult",
]


class LivenessUnavailable(RuntimeError):
    """The pack has no liveness models (see `edge.engine`)."""


@dataclass(frozen=True)
class ImageQuery:
    """One image of a request: still base64, and how to read it."""

    data: str
    area: dict[str, Any] | None = None  # as sent; checked against the decoded size
    auto_rotate: bool = False
    flags: DetailFlags = field(default_factory=DetailFlags)


@dataclass(frozen=True)
class Analyzed:
    """The largest face of an image and the decoded image it was found in."""

    face: FaceAnalysis
    image: DecodedImage

    @property
    def embedding(self) -> np.ndarray:
        if self.face.embedding is None:
            raise ValueError("this face was analysed without an embedding")
        return self.face.embedding


@dataclass(frozen=True)
class Match:
    """An enrolled entity and its calibrated similarity score (0..1) to the query face."""

    entity: Entity
    score: float


@dataclass(frozen=True)
class SearchResult:
    matches: list[Match]  # best first, every score >= the threshold asked for
    face: FaceAnalysis  # the query face


@dataclass(frozen=True)
class Enrolled:
    entity: Entity
    face: FaceAnalysis  # the face whose embedding was stored


@dataclass(frozen=True)
class Comparison:
    score: float  # calibrated similarity 0..1, symmetric
    one: FaceAnalysis
    two: FaceAnalysis


@dataclass(frozen=True)
class LivenessCheck:
    """The largest face of an image scored for liveness."""

    spoof_score: float  # clamped to 0..1 (the contract's range)
    position: PixelBox  # of the face scored, in the analysed image
    result: LivenessResult  # per-model scores and the quality gates


class Recognition:
    """Recognition over one engine's models and store; thread-safe like its parts."""

    def __init__(self, engine: Engine) -> None:
        self.engine = engine
        self.settings = engine.settings
        self.model = engine.settings.names.face  # the face model a camera enrols and searches

    @property
    def pipeline(self) -> FacePipeline:
        return self.engine.pipeline

    @property
    def store(self) -> EntityStore:
        return self.engine.store

    @property
    def has_liveness(self) -> bool:
        return self.engine.liveness is not None

    @property
    def threshold(self) -> float:
        """The calibrated score at and above which a face is the enrolled person."""
        return float(self.pipeline.calibration.recommended_threshold)

    # Images -------------------------------------------------------------------------------
    def decode(self, query: ImageQuery) -> tuple[DecodedImage, Area | None]:
        """The decoded pixels and `area` checked against them (`ImageInputError`)."""
        decoded = decode_image(
            query.data,
            auto_rotate=query.auto_rotate,
            max_pixels=self.settings.server.max_pixels,
            require_color=True,
        )
        return decoded, parse_area(query.area, decoded.width, decoded.height)

    def analyze(self, query: ImageQuery, *, embed: bool = True) -> Analyzed:
        """Decode, then the largest face (fast detector, slow fallback); raises
        `ImageInputError`, `NoFaceFound` or `FaceTooSmall`."""
        decoded, area = self.decode(query)
        fa = self.pipeline.analyze_largest(
            decoded, area=area, flags=query.flags, embed=embed, auto_rotate=query.auto_rotate
        )
        return Analyzed(fa, decoded)

    def detect_all(self, query: ImageQuery) -> list[FaceAnalysis]:
        """Every face (slow detector), largest first; [] when none."""
        decoded, area = self.decode(query)
        return self.pipeline.detect_all(
            decoded, area=area, flags=query.flags, auto_rotate=query.auto_rotate
        )

    # Search and enrolment -----------------------------------------------------------------
    def search(
        self,
        instance: str,
        vector: np.ndarray,
        *,
        model: str | None = None,
        collection: str | None = None,
        key: str | None = None,
        limit: int = 1,
        threshold: float | None = None,
    ) -> list[Match]:
        """Entities by calibrated score, best first, keeping those `>= threshold` (the
        recommended threshold when not given). The one place a cosine becomes a score."""
        hits = self.store.search(
            instance, model or self.model, vector, collection=collection, key=key, limit=limit
        )
        thr = self.threshold if threshold is None else threshold
        scores = self.pipeline.cosines_to_scores([cos for _, cos in hits])
        matches = [Match(ent, score) for (ent, _), score in zip(hits, scores, strict=True)]
        return [m for m in matches if m.score >= thr]

    def search_image(
        self,
        instance: str,
        query: ImageQuery,
        *,
        model: str,
        collection: str | None,
        key: str | None,
        limit: int,
        threshold: float,
    ) -> SearchResult:
        """1:N search with the largest face of an image."""
        analyzed = self.analyze(query)
        matches = self.search(
            instance,
            analyzed.embedding,
            model=model,
            collection=collection,
            key=key,
            limit=limit,
            threshold=threshold,
        )
        return SearchResult(matches, analyzed.face)

    def enrol(
        self,
        instance: str,
        vector: np.ndarray,
        *,
        key: str,
        collection: str,
        metadata: list[dict[str, object]],
        ttl: int,
        model: str | None = None,
        model_name: str | None = None,
    ) -> Entity:
        """Store `vector` as a new entity (durable before this returns)."""
        model = model or self.model
        return self.store.create(
            instance=instance,
            model=model,
            model_name=model_name or model,
            collection=collection,
            key=key,
            metadata=metadata,
            ttl=ttl,
            vector=vector,
        )

    def enrol_image(
        self,
        instance: str,
        query: ImageQuery,
        *,
        model: str,
        model_name: str,
        key: str,
        collection: str,
        metadata: list[dict[str, object]],
        ttl: int,
    ) -> Enrolled:
        """Enrol the largest face of an image; nothing is written when the image fails."""
        analyzed = self.analyze(query)
        entity = self.enrol(
            instance,
            analyzed.embedding,
            model=model,
            model_name=model_name,
            key=key,
            collection=collection,
            metadata=metadata,
            ttl=ttl,
        )
        return Enrolled(entity, analyzed.face)

    # Compare ------------------------------------------------------------------------------
    def similarity(self, a: np.ndarray, b: np.ndarray) -> float:
        """Calibrated similarity 0..1 of two embeddings (symmetric, monotone in the cosine)."""
        return self.pipeline.similarity(a, b)

    def compare(self, one: Analyzed, two: Analyzed) -> Comparison:
        return Comparison(self.similarity(one.embedding, two.embedding), one.face, two.face)

    def comparable_entity(self, instance: str, uuid: str, model: str) -> Entity | None:
        """The entity with its vector, or None unless it is of `model` and this pack: only
        vectors of the same weights can be compared."""
        ent = self.store.get(instance, uuid, with_vector=True)
        if ent is None or ent.model != model or ent.pack_fingerprint != self.store.pack_fingerprint:
            return None
        return ent

    # Liveness -----------------------------------------------------------------------------
    def liveness(self, query: ImageQuery) -> LivenessCheck:
        """Passive liveness of the largest face, found exactly as `analyze` finds it."""
        scorer = self.engine.liveness
        if scorer is None:
            raise LivenessUnavailable("the liveness model is not available on this box")
        analyzed = self.analyze(query, embed=False)
        fa, decoded = analyzed.face, analyzed.image
        # analyze_largest may have turned the decoded pixels further (autoRotate with no face
        # upright): score the face in the very pixels it was found in.
        extra = (fa.rotated - decoded.rotated) % 360
        bgr: np.ndarray = rotate_cw(decoded.bgr, extra) if extra else decoded.bgr
        w, h = fa.image_size
        if (bgr.shape[1], bgr.shape[0]) != (w, h):
            raise RuntimeError(f"liveness frame {bgr.shape[1]}x{bgr.shape[0]} != analysed {w}x{h}")
        result = scorer.score(bgr, fa.face)
        spoof = float(min(max(result.spoof_score, 0.0), 1.0))
        return LivenessCheck(spoof, fa.face.position(w, h), result)

    # Frames (cameras) ---------------------------------------------------------------------
    def detect_frame(self, bgr: np.ndarray) -> list[Face]:
        """Faces of a camera frame: fast detector only, at least `min_face_px` (measured as
        every call measures it: `face_side_px`)."""
        min_px = self.settings.detection.min_face_px
        h, w = bgr.shape[:2]
        return [f for f in self.pipeline.detect_fast(bgr) if face_side_px(f, w, h) >= min_px]

    def align(self, bgr: np.ndarray, face: Face) -> np.ndarray:
        """The crop the embedder reads (kept per track; embedded only if needed)."""
        return self.pipeline.embedder.align(bgr, face.kps)

    def embed(self, aligned: np.ndarray) -> np.ndarray:
        return self.pipeline.embedder.embed(aligned)

    def spoof(self, bgr: np.ndarray, face: Face) -> LivenessResult | None:
        """The face's liveness result, or None when the pack has no liveness models."""
        scorer = self.engine.liveness
        return None if scorer is None else scorer.score(bgr, face)

    def best_match(self, instance: str, collection: str, vector: np.ndarray) -> Match | None:
        """The one entity a camera's face is (score >= the recommended threshold), if any."""
        found = self.search(instance, vector, collection=collection or None, limit=1)
        return found[0] if found else None
