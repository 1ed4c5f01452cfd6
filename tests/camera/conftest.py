"""Fixtures: real models, a real SQLite store, a people video (the broker: tests/conftest.py)."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from camera_helpers import KNOWN, SPOOF, STRANGERS, Vision, camera_settings
from camera_video import Segment, write_video

from edge.config import Settings
from edge.engine import Engine, Models
from edge.store.entities import EntityStore
from tests.support.images import read_bgr


@pytest.fixture(scope="session")
def vision(session_settings: Settings) -> Vision:
    return Vision(session_settings, Models.load(session_settings))


@pytest.fixture
def open_engine(vision: Vision, tmp_path: Path) -> Iterator[Callable[..., Engine]]:
    """Opens this test's engine: `camera_settings(**over)` (one store under tmp_path) over the
    session's models, or over `models` when given; closed after the test."""
    opened: list[Engine] = []

    def open_(*, models: Models | None = None, **over: Any) -> Engine:
        engine = Engine.open(
            camera_settings(vision, tmp_path, **over), models=models or vision.models
        )
        opened.append(engine)
        return engine

    yield open_
    for engine in opened:
        engine.close()


@pytest.fixture
def engine(open_engine: Callable[..., Engine]) -> Engine:
    """An engine with the camera test settings and no camera configured."""
    return open_engine()


@pytest.fixture
def enroll_known(vision: Vision, testdata: Path) -> Callable[[EntityStore], dict[str, str]]:
    """Enrols the KNOWN people from their first photo into a store; returns key -> uuid."""

    def run(store: EntityStore) -> dict[str, str]:
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
