"""Cosine similarity -> `similarityScore` (0..1) through a calibrated monotone map.

The map is fitted offline (`tools/calibrate_similarity.py`) on genuine/impostor pairs and kept
as data in `edge/data/similarity_<pack>.json`, so re-calibrating a pack never touches code.
It is piecewise linear through knots anchored at measured operating points: the cosine at
FAR = 1e-4 maps to the recommended threshold 0.9, which makes 0.9 a strict operating point.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
from pydantic import BaseModel, ConfigDict, Field, model_validator

__all__ = ["DATA_DIR", "Calibration", "Measured", "calibration_path", "load_calibration"]

DATA_DIR = Path(__file__).resolve().parents[1] / "data"


class Measured(BaseModel):
    model_config = ConfigDict(extra="forbid")

    far: float
    tar: float
    pairs: dict[str, int]  # {"genuine": n, "impostor": n}
    dataset: str


class Calibration(BaseModel):
    """Knots of the monotone map plus what was measured at the recommended threshold."""

    model_config = ConfigDict(extra="allow")

    pack: str
    embedding_file: str
    method: str = "piecewise_linear"
    knots_cos: list[float] = Field(min_length=2)
    knots_score: list[float] = Field(min_length=2)
    recommended_threshold: float = Field(ge=0, le=1)
    cos_at_threshold: float
    measured: Measured

    @model_validator(mode="after")
    def _monotone(self) -> Calibration:
        c, s = np.asarray(self.knots_cos), np.asarray(self.knots_score)
        if len(c) != len(s):
            raise ValueError("knots_cos and knots_score differ in length")
        if np.any(np.diff(c) <= 0) or np.any(np.diff(s) < 0):
            raise ValueError("similarity knots must increase")
        if s[0] < 0 or s[-1] > 1:
            raise ValueError("similarity scores must lie in 0..1")
        return self

    def score(self, cos: float | np.ndarray) -> float | np.ndarray:
        out = np.interp(np.clip(cos, -1.0, 1.0), self.knots_cos, self.knots_score)
        return float(out) if np.ndim(out) == 0 else out

    def to_json(self) -> str:
        return json.dumps(self.model_dump(mode="json"), indent=1) + "\n"


def calibration_path(pack: str) -> Path:
    return DATA_DIR / f"similarity_{pack}.json"


def load_calibration(pack: str, path: Path | None = None) -> Calibration:
    """The pack's calibration; packs sharing the embedding model may fall back to 'default'."""
    p = path or calibration_path(pack)
    if not p.is_file() and path is None:
        p = calibration_path("default")
    return Calibration.model_validate_json(p.read_text(encoding="utf-8"))
