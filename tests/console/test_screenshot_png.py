"""The screenshot tool's palette PNG: a valid PNG that OpenCV reads back as the picture."""

from __future__ import annotations

from pathlib import Path

import cv2
import numpy as np

from tests.support.images import read_bgr
from tests.support.paths import TESTDATA
from tools.console_screenshots import palette_png


def test_flat_colours_come_back_exactly(tmp_path: Path) -> None:
    img = np.zeros((120, 200, 3), np.uint8)
    colours = [(0, 0, 0), (255, 255, 255), (0, 0, 255), (0, 255, 0), (255, 0, 255)]
    for i, c in enumerate(colours):
        img[:, i * 40 : (i + 1) * 40] = c
    size = palette_png(img, tmp_path / "flat.png")
    back = cv2.imread(str(tmp_path / "flat.png"), cv2.IMREAD_COLOR)
    assert back is not None and np.array_equal(back, img)
    assert size == (tmp_path / "flat.png").stat().st_size < 2000


def test_a_photo_stays_close_with_256_colours(tmp_path: Path) -> None:
    photo = read_bgr(TESTDATA / "faces_by_identity" / "guido_van_rossum" / "2.jpg")
    palette_png(photo, tmp_path / "photo.png")
    back = cv2.imread(str(tmp_path / "photo.png"), cv2.IMREAD_COLOR)
    assert back is not None and back.shape == photo.shape
    error = np.abs(back.astype(np.int16) - photo.astype(np.int16)).mean()
    assert error < 8, error  # mean error per channel, of 255
