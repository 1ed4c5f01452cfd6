"""Fixtures for image intake: the awkward test images, read in place."""

from __future__ import annotations

from pathlib import Path

import cv2
import numpy as np
import pytest


@pytest.fixture(scope="session")
def awkward(testdata: Path) -> Path:
    return testdata / "awkward"


@pytest.fixture(scope="session")
def hopper_bgr(awkward: Path) -> np.ndarray:
    img = cv2.imread(str(awkward / "hopper_reference_upright.jpg"), cv2.IMREAD_COLOR)
    assert img is not None
    return img
