"""Plain typed values passed between the vision stages and up to their callers.

Values, not wire objects: snake_case fields, numbers as measured (rounded only where the
measure itself is defined rounded). How a client sees them (camelCase JSON, which blocks
appear) is the API's business (`edge.api.wire`); MQTT payloads are the bridge's.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, Literal

import numpy as np

from edge.imaging.types import Area
from edge.vision.geometry import Box, PixelBox

AttributeName = Literal["age", "gender", "emotions", "mask"]

__all__ = [
    "Age",
    "Area",
    "AttributeName",
    "Capabilities",
    "Completeness",
    "DetailFlags",
    "Face",
    "FaceAnalysis",
    "FaceAttributes",
    "FaceDetails",
    "FaceModelInfo",
    "FaceQuality",
    "HeadAngle",
    "Label",
]


@dataclass
class Face:
    """One detected face in the pixel grid of the image it was found in."""

    box: np.ndarray  # float32 [x1, y1, x2, y2], image pixels (may extend past the border)
    score: float
    kps: np.ndarray  # float32 (5, 2): image-left eye, image-right eye, nose, left/right mouth

    @property
    def bbox(self) -> Box:
        return Box.of(self.box)

    @property
    def width(self) -> float:
        return float(self.box[2] - self.box[0])

    @property
    def height(self) -> float:
        return float(self.box[3] - self.box[1])

    @property
    def area(self) -> float:
        return max(self.width, 0.0) * max(self.height, 0.0)

    def position(self, image_w: int, image_h: int) -> PixelBox:
        """The box clipped to the image, corners rounded to pixels (api.md §2.2)."""
        return self.bbox.pixels(image_w, image_h)


@dataclass(frozen=True)
class DetailFlags:
    """Which detail blocks a caller asked for (`returnDetails` in the API)."""

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


@dataclass(frozen=True)
class HeadAngle:
    """Head pose in degrees (-90..90; pitch + = down, yaw + = image right, roll + = counter-
    clockwise as seen) and the centre of the face's pixel box."""

    pitch: float
    yaw: float
    roll: float
    center_x: int
    center_y: int


@dataclass(frozen=True)
class Completeness:
    """Visibility 0..1 of each face part and their mean (see `quality.completeness`)."""

    total: float
    left_eye_brow: float
    right_eye_brow: float
    left_eye: float
    right_eye: float
    nose: float
    mouth: float
    face_contour: float


@dataclass(frozen=True)
class FaceQuality:
    """The quality measures of one face (0..1; brightness -1..1), rounded to 4 decimals."""

    brightness: float
    sharpness: float
    mouth_closed: float
    centered: float
    size: float
    integrity: float
    completeness: Completeness


@dataclass(frozen=True)
class Label:
    """A class and how sure the model is of it (0..1)."""

    value: str
    certainty: float


@dataclass(frozen=True)
class Age:
    value: int
    upper_limit: int
    lower_limit: int


@dataclass(frozen=True)
class FaceAttributes:
    """Only what the loaded pack can estimate; None = not estimated (or no mask match)."""

    age: Age | None = None
    gender: Label | None = None  # value "male" | "female"
    emotions: tuple[Label, ...] | None = None
    mask: Label | None = None  # value "with_mask" | "without_mask"


@dataclass(frozen=True)
class FaceDetails:
    """The requested detail blocks of one face; None = not requested."""

    position: PixelBox | None = None
    angle: HeadAngle | None = None
    landmarks: np.ndarray | None = field(default=None, compare=False)  # (106, 2) float32
    quality: FaceQuality | None = None
    attributes: FaceAttributes | None = None


@dataclass
class FaceAnalysis:
    """What the pipeline found for one face."""

    face: Face
    image_size: tuple[int, int]  # (width, height) of the (possibly turned) image analysed
    rotated: int = 0  # clockwise degrees applied to the raw pixel grid in total
    embedding: np.ndarray | None = None  # float32 (D,), L2-normalised
    details: FaceDetails = field(default_factory=FaceDetails)  # only the requested blocks


@dataclass(frozen=True)
class Capabilities:
    """Which detail blocks the loaded pack can fill."""

    position: bool
    angle: bool
    landmarks: bool
    quality: bool
    attributes: bool


@dataclass(frozen=True)
class FaceModelInfo:
    """What the face pipeline is and was measured at (read from the running components)."""

    vector_dimension: int
    recommended_threshold: float
    measured: Mapping[str, Any]  # the calibration's own figures (far, tar, pairs, dataset)
    attributes: tuple[AttributeName, ...]
    capabilities: Capabilities
