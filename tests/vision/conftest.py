"""Fixtures shared by the vision tests: one set of models per module (built by the engine's
rule) and a largest-face finder."""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pytest

from edge.config import Settings
from edge.engine import Models
from edge.runtime.registry import ModelRegistry
from edge.vision.details import DetailAnalyzer
from edge.vision.detection import build_detectors
from edge.vision.liveness import LivenessScorer
from edge.vision.types import Face
from tests.support.images import read_bgr

#: A sharp full-frame bona fide photo (the liveness attack and cue tests start from it).
GENUINE = "liveness/live/doubango_genuine.jpg"


@pytest.fixture(scope="module")
def models(session_settings: Settings) -> Models:
    return Models.load(session_settings)


@pytest.fixture(scope="module")
def registry(models: Models) -> ModelRegistry:
    return models.registry


@pytest.fixture(scope="module")
def analyzer(registry: ModelRegistry) -> DetailAnalyzer:
    return DetailAnalyzer(registry)


@pytest.fixture(scope="module")
def detectors(registry: ModelRegistry, session_settings: Settings):  # type: ignore[no-untyped-def]
    return build_detectors(registry, session_settings)


@pytest.fixture(scope="module")
def largest_face(detectors) -> Callable[..., Face]:  # type: ignore[no-untyped-def]
    """The largest face of a test image (fast detector, slow fallback), as the API picks it."""
    fast, slow = detectors

    def find(bgr: np.ndarray) -> Face:
        faces = fast.detect(bgr) or slow.detect(bgr)
        assert faces, "test image must contain a detectable face"
        return max(faces, key=lambda f: f.area)

    return find


@pytest.fixture(scope="session")
def yale(testdata: Path) -> Callable[[str], list[Path]]:
    """Yale face images recorded in one condition (`sleepy`, `normal`, ...: SOURCES.json)."""
    files = json.loads((testdata / "SOURCES.json").read_text())["files"]

    def of(condition: str) -> list[Path]:
        return [
            testdata / f["file"]
            for f in files
            if f["file"].startswith("faces_by_identity/yale_")
            and f["source_path"].endswith("." + condition)
        ]

    return of


@pytest.fixture(scope="module")
def genuine(testdata: Path) -> np.ndarray:
    return read_bgr(testdata / GENUINE)


@pytest.fixture(scope="module")
def liveness_scorer(registry: ModelRegistry, session_settings: Settings) -> LivenessScorer:
    """The pack's liveness scorer built directly (the unit under test in these modules)."""
    return LivenessScorer(registry, session_settings)
