"""Shared test constants and helpers of the camera tests (importable, unlike conftest)."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

from edge.config import Settings
from edge.engine import Models
from edge.runtime.registry import ModelRegistry
from edge.vision.liveness import LivenessScorer
from edge.vision.pipeline import FacePipeline

# Enrolled from photo 1, shown in the video with another photo of the same person.
KNOWN = {
    "guido": ("guido_van_rossum", "1.jpg", "2.jpg"),
    "paul": ("paul_allen", "1.jpg", "3.jpg"),
    "matt": ("matt_damon", "1.jpg", "2.jpg"),
}
STRANGERS = {"kate": ("kate_winslet", "11.png"), "obama": ("barack_obama", "11.png")}
SPOOF = "liveness/spoof/doubango_spoof.jpg"  # a presentation-attack photo (not enrolled)


@dataclass
class Vision:
    """The session's settings and models (built by `edge.engine`, shared by every test)."""

    settings: Settings
    models: Models

    @property
    def registry(self) -> ModelRegistry:
        return self.models.registry

    @property
    def pipeline(self) -> FacePipeline:
        return self.models.pipeline

    @property
    def liveness(self) -> LivenessScorer:
        assert self.models.liveness is not None, "the default pack has liveness"
        return self.models.liveness


def camera_settings(vision: Vision, tmp_path: Path, **over: Any) -> Settings:
    data = vision.settings.model_dump()
    data.update({"data_dir": tmp_path / "data", "device_id": "dev-1"})
    data.update(over)
    return Settings(**data)
