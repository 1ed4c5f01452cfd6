"""Geometry types of image intake (below vision in the dependency graph)."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np


@dataclass(frozen=True)
class Area:
    """A request's `area`, already validated and clipped to the image."""

    left: int
    top: int
    width: int
    height: int

    def overlaps(self, box: np.ndarray) -> bool:
        return not (
            box[2] <= self.left
            or box[0] >= self.left + self.width
            or box[3] <= self.top
            or box[1] >= self.top + self.height
        )
