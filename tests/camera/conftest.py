"""Fixtures: real models, a real SQLite store, a people video (the broker: tests/conftest.py)."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from camera_helpers import KNOWN, SPOOF, STRANGERS, Vision
from camera_video import Segment, write_video

from edge.config import Settings
from edge.runtime.registry import ModelRegistry
from edge.store.entities import EntityStore
from edge.vision.liveness import LivenessScorer
from edge.vision.pipeline import FacePipeline
from tests.support.images import read_bgr


@pytest.fixture(scope="session")
def vision(session_settings: Settings) -> Vision:
    reg = ModelRegistry(session_settings)
    return Vision(
        session_settings,
        reg,
        FacePipeline(reg, session_settings),
        LivenessScorer(reg, session_settings),
    )


@pytest.fixture
def store(tmp_path: Path, vision: Vision) -> Iterator[EntityStore]:
    s = EntityStore(tmp_path / "store.sqlite3", pack_fingerprint=vision.registry.fingerprint)
    yield s
    s.close()


@pytest.fixture
def enroll_known(
    store: EntityStore, vision: Vision, testdata: Path
) -> Callable[[], dict[str, str]]:
    """Enrols the KNOWN people from their first photo; returns key -> uuid."""

    def run() -> dict[str, str]:
        out = {}
        for key, (person, photo, _shown) in KNOWN.items():
            a = vision.pipeline.analyze_largest(
                read_bgr(testdata / "faces_by_identity" / person / photo)
            )
            e = store.create(
                instance="default",
                model=vision.settings.names.face,
                model_name=vision.settings.names.face,
                collection="staff",
                key=key,
                metadata=[],
                ttl=-1,
                vector=a.embedding,
            )
            out[key] = e.uuid
        return out

    return run


@pytest.fixture(scope="session")
def people_video(
    tmp_path_factory: pytest.TempPathFactory, testdata: Path
) -> tuple[Path, list[tuple[str, int]]]:
    """guido, kate (stranger), paul, spoof photo, matt, obama (stranger), 1.5 s each."""
    fid = testdata / "faces_by_identity"

    def seg(label: str, path: Path) -> Segment:
        return Segment(label, [read_bgr(path)], [440])

    segments = [
        seg("guido", fid / KNOWN["guido"][0] / KNOWN["guido"][2]),
        seg("kate", fid / STRANGERS["kate"][0] / STRANGERS["kate"][1]),
        seg("paul", fid / KNOWN["paul"][0] / KNOWN["paul"][2]),
        # A photo held up to the camera: it moves a little from frame to frame.
        Segment("spoof", [read_bgr(testdata / SPOOF)] * 3, [400, 420, 440]),
        seg("matt", fid / KNOWN["matt"][0] / KNOWN["matt"][2]),
        seg("obama", fid / STRANGERS["obama"][0] / STRANGERS["obama"][1]),
    ]
    d = tmp_path_factory.mktemp("video")
    return write_video(d / "people", segments)
