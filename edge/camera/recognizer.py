"""The vision and store calls a camera needs, behind one small object.

Keeps the worker free of model details: detection (fast detector only; a camera sees the
same face many times, so a miss costs one round, not an answer), alignment + embedding,
liveness, and 1:N search with the calibrated score the REST API uses.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Protocol

import numpy as np

from edge.config import Settings
from edge.vision.align import align_face
from edge.vision.detection import build_detectors
from edge.vision.types import Face


class LivenessLike(Protocol):
    def score(self, bgr: np.ndarray, face: Face) -> Any: ...


@dataclass
class SearchHit:
    uuid: str
    key: str
    collection: str
    score: float


class Recognizer:
    def __init__(
        self, settings: Settings, pipeline: Any, store: Any, liveness: LivenessLike | None
    ) -> None:
        self.settings = settings
        self.pipeline = pipeline
        self.store = store
        self.liveness = liveness
        self.model = settings.names.face
        self.detector, _slow = build_detectors(pipeline.registry, settings)
        self.threshold = float(pipeline.model_info().recommended_threshold)

    def detect(self, bgr: np.ndarray) -> list[Face]:
        d = self.settings.detection
        return [f for f in self.detector.detect(bgr) if min(f.width, f.height) >= d.min_face_px]

    def aligned(self, bgr: np.ndarray, face: Face) -> np.ndarray:
        return align_face(bgr, face.kps)

    def embed(self, aligned: np.ndarray) -> np.ndarray:
        return self.pipeline.embedder.embed(aligned)

    def spoof(self, bgr: np.ndarray, face: Face) -> tuple[float, bool] | None:
        if self.liveness is None:
            return None
        r = self.liveness.score(bgr, face)
        return float(r.spoof_score), bool(r.reliable)

    def search(self, instance: str, collection: str, vector: np.ndarray) -> SearchHit | None:
        hits = self.store.search(
            instance, self.model, vector, collection=collection or None, limit=1
        )
        if not hits:
            return None
        entity, cosine = hits[0]
        score = float(self.pipeline.cosine_to_score(float(cosine)))
        return SearchHit(entity.uuid, entity.key, entity.collection, score)

    def enroll(
        self,
        instance: str,
        vector: np.ndarray,
        *,
        key: str,
        collection: str,
        metadata: list[dict[str, object]],
        ttl: int,
    ) -> Any:
        return self.store.create(
            instance=instance,
            model=self.model,
            model_name=self.model,
            collection=collection,
            key=key,
            metadata=metadata,
            ttl=ttl,
            vector=vector,
        )
