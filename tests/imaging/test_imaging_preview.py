"""Large JPEGs: a DCT-reduced preview now, the full grid only when something reads `bgr`."""

from __future__ import annotations

import struct

import cv2
import numpy as np
import pytest

from edge.imaging import decode_bytes, rotate_cw
from edge.imaging.decode import PREVIEW_MIN_SIDE
from edge.imaging.errors import NotColour
from tests.imaging.imaging_helpers import correlation, encode, exif_tiff


def _jpeg_with_exif(jpeg: bytes, orientation: int) -> bytes:
    """The JPEG with an APP1 Exif segment (Orientation only) right after SOI."""
    payload = b"Exif\0\0" + exif_tiff(orientation)
    return jpeg[:2] + b"\xff\xe1" + struct.pack(">H", len(payload) + 2) + payload + jpeg[2:]


@pytest.fixture(scope="module")
def large(hopper_bgr: np.ndarray) -> np.ndarray:
    """The real photo at 1200x900: a size phone and kiosk cameras send."""
    return cv2.resize(hopper_bgr, (1200, 900), interpolation=cv2.INTER_CUBIC)


def test_large_jpeg_decodes_a_preview_and_the_full_grid_on_demand(large: np.ndarray) -> None:
    raw = encode(large, ".jpg", [cv2.IMWRITE_JPEG_QUALITY, 92])
    img = decode_bytes(raw)
    assert img.preview is not None and not img.decoded_full
    s = img.preview_scale
    assert s == 2  # 1/4 would be 300 px, under the fast detector's 320
    assert img.preview.shape == (450, 600, 3) and max(img.preview.shape) >= PREVIEW_MIN_SIDE
    assert (img.width, img.height) == (1200, 900) and not img.decoded_full
    # the full grid is exactly what an ordinary decode gives, and the preview is its picture
    full = cv2.imdecode(np.frombuffer(raw, np.uint8), cv2.IMREAD_COLOR)
    assert np.array_equal(img.bgr, full) and img.decoded_full
    assert correlation(img.preview, full) > 0.99


def test_small_photos_and_other_formats_have_no_preview(
    hopper_bgr: np.ndarray, large: np.ndarray
) -> None:
    small = cv2.resize(hopper_bgr, (600, 450), interpolation=cv2.INTER_AREA)
    for raw in (encode(small, ".jpg"), encode(large, ".png")):
        img = decode_bytes(raw)
        assert img.preview is None and img.decoded_full
        assert (img.width, img.height) == (img.bgr.shape[1], img.bgr.shape[0])


@pytest.mark.parametrize("orientation", [3, 6, 7, 8])
def test_preview_and_full_grid_follow_exif_orientation(large: np.ndarray, orientation: int) -> None:
    raw = _jpeg_with_exif(encode(large, ".jpg"), orientation)
    as_stored = cv2.IMREAD_COLOR | cv2.IMREAD_IGNORE_ORIENTATION
    stored = cv2.imdecode(np.frombuffer(raw, np.uint8), as_stored)
    kept = decode_bytes(raw)
    assert kept.exif_orientation == orientation and kept.rotated == 0
    assert np.array_equal(kept.bgr, stored)
    turned = decode_bytes(raw, auto_rotate=True)
    assert turned.preview is not None
    sideways = turned.rotated in (90, 270)
    assert (turned.width, turned.height) == ((900, 1200) if sideways else (1200, 900))
    ph, pw = turned.preview.shape[:2]
    assert (pw, ph) == (turned.width // 2, turned.height // 2)
    upright = stored if not turned.mirrored else cv2.flip(stored, 1)
    assert np.array_equal(turned.bgr, rotate_cw(upright, turned.rotated))
    assert correlation(turned.preview, turned.bgr) > 0.99


def test_large_gray_jpeg_is_still_216_and_colour_is_decided_on_every_pixel(
    large: np.ndarray,
) -> None:
    gray3 = cv2.cvtColor(cv2.cvtColor(large, cv2.COLOR_BGR2GRAY), cv2.COLOR_GRAY2BGR)
    with pytest.raises(NotColour):
        decode_bytes(encode(gray3, ".jpg"))
    # a coloured patch far smaller than a preview pixel's share of the picture
    gray3[-4:, -4:] = (10, 200, 30)
    raw = encode(gray3, ".jpg", [cv2.IMWRITE_JPEG_QUALITY, 100])
    assert np.array_equal(
        decode_bytes(raw).bgr, cv2.imdecode(np.frombuffer(raw, np.uint8), cv2.IMREAD_COLOR)
    )
