"""Plain data passed between the vision stages and up to the API layer."""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from edge.imaging.types import Area

__all__ = ["Area", "DetailFlags", "Face", "FaceAnalysis"]


@dataclass
class Face:
    """One detected face in the pixel grid of the image it was found in."""

    box: np.ndarray  # float32 [x1, y1, x2, y2], image pixels (may extend past the border)
    score: float
    kps: np.ndarray  # float32 (5, 2): image-left eye, image-right eye, nose, left/right mouth

    @property
    def width(self) -> float:
        return float(self.box[2] - self.box[0])

    @property
    def height(self) -> float:
        return float(self.box[3] - self.box[1])

    @property
    def area(self) -> float:
        return max(self.width, 0.0) * max(self.height, 0.0)

    def position(self, image_w: int, image_h: int) -> dict[str, int]:
        """`{top, left, width, height}` ints, clipped to the image (api.md §2.2)."""
        x1 = round(max(0.0, float(self.box[0])))
        y1 = round(max(0.0, float(self.box[1])))
        x2 = round(min(float(image_w), float(self.box[2])))
        y2 = round(min(float(image_h), float(self.box[3])))
        return {"top": y1, "left": x1, "width": max(x2 - x1, 0), "height": max(y2 - y1, 0)}


@dataclass(frozen=True)
class DetailFlags:
    """Which `details` blocks a request asked for (`returnDetails`)."""

    position: bool = False
    angle: bool = False
    landmarks: bool = False
    quality: bool = False
    attributes: bool = False

    @property
    def any(self) -> bool:
        return self.position or self.angle or self.landmarks or self.quality or self.attributes

    @classmethod
    def all(cls) -> DetailFlags:
        return cls(True, True, True, True, True)


@dataclass
class FaceAnalysis:
    """What the pipeline found for one face."""

    face: Face
    image_size: tuple[int, int]  # (width, height) of the (possibly turned) image analysed
    rotated: int = 0  # clockwise degrees applied to the raw pixel grid in total
    embedding: np.ndarray | None = None  # float32 (D,), L2-normalised
    details: dict[str, object] = field(default_factory=dict)  # only the requested blocks
