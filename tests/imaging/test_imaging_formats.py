"""Format, pixel-cap and colour rules on variants of a real photo encoded in memory."""

from __future__ import annotations

import struct
import zlib
from pathlib import Path

import cv2
import numpy as np
import pytest

from edge.api.wire import image_error
from edge.imaging import decode_bytes, rotate_cw
from edge.imaging.errors import ImageInputError
from edge.imaging.header import MAX_JPEG_SEGMENTS
from tests.imaging.imaging_helpers import encode, exif_tiff, png_chunk, png_with_exif


def _code(raw: bytes, **kwargs: object) -> int:
    with pytest.raises(ImageInputError) as err:
        decode_bytes(raw, **kwargs)  # type: ignore[arg-type]
    answered = image_error(err.value, "image")
    assert "image.data" in answered.message
    return answered.code


@pytest.mark.parametrize("ext", [".bmp", ".tiff", ".ppm", ".webp", ".jp2", ".pfm"])
def test_other_formats_in_colour_are_215(hopper_bgr: np.ndarray, ext: str) -> None:
    img = hopper_bgr.astype(np.float32) / 255 if ext == ".pfm" else hopper_bgr
    raw = encode(img, ext)
    assert cv2.imdecode(np.frombuffer(raw, np.uint8), cv2.IMREAD_COLOR) is not None
    assert _code(raw) == 215


@pytest.mark.parametrize("ext", [".pgm", ".bmp", ".tiff"])
def test_other_formats_in_gray_are_215_not_216(hopper_bgr: np.ndarray, ext: str) -> None:
    assert _code(encode(cv2.cvtColor(hopper_bgr, cv2.COLOR_BGR2GRAY), ext)) == 215


def test_sixteen_bit_png_becomes_eight_bit(hopper_bgr: np.ndarray) -> None:
    raw = encode(hopper_bgr.astype(np.uint16) * 257, ".png")
    assert raw[24] == 16  # IHDR bit depth
    img = decode_bytes(raw)
    assert img.bgr.dtype == np.uint8
    assert np.array_equal(img.bgr, hopper_bgr)


def test_rgb_png_holding_a_gray_picture_is_216(hopper_bgr: np.ndarray) -> None:
    gray3 = cv2.cvtColor(cv2.cvtColor(hopper_bgr, cv2.COLOR_BGR2GRAY), cv2.COLOR_GRAY2BGR)
    raw = encode(gray3, ".png")
    assert raw[25] == 2  # IHDR colour type: truecolour
    assert _code(raw) == 216


def test_one_coloured_pixel_in_a_gray_picture_is_colour(hopper_bgr: np.ndarray) -> None:
    gray3 = cv2.cvtColor(cv2.cvtColor(hopper_bgr, cv2.COLOR_BGR2GRAY), cv2.COLOR_GRAY2BGR)
    gray3[-1, -1] = (10, 200, 30)  # the row the sparse sample skips
    img = decode_bytes(encode(gray3, ".png"))
    assert np.array_equal(img.bgr, gray3)


def test_gray_allowed_when_colour_not_required(awkward: Path) -> None:
    img = decode_bytes((awkward / "hopper_gray.jpg").read_bytes(), require_color=False)
    assert img.bgr.shape == (128, 128, 3) and img.bgr.flags.c_contiguous
    assert np.array_equal(img.bgr[..., 0], img.bgr[..., 2])


def test_pixel_cap_wins_over_grayscale(awkward: Path) -> None:
    assert _code((awkward / "hopper_gray.jpg").read_bytes(), max_pixels=128 * 128 - 1) == 217


def test_format_wins_over_pixel_cap(awkward: Path) -> None:
    assert _code((awkward / "hopper.webp").read_bytes(), max_pixels=10) == 215


def _png_bomb(width: int, height: int) -> bytes:
    ihdr = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
    row = b"\0" + b"\0" * 3 * 16
    return (
        b"\x89PNG\r\n\x1a\n"
        + png_chunk(b"IHDR", ihdr)
        + png_chunk(b"IDAT", zlib.compress(row))
        + png_chunk(b"IEND", b"")
    )


def _jpeg_with_size(raw: bytes, width: int, height: int) -> bytes:
    pos = raw.index(b"\xff\xc0")  # baseline SOF0 of the reference photo
    return raw[: pos + 5] + struct.pack(">HH", height, width) + raw[pos + 9 :]


def test_decompression_bombs_are_refused_from_the_header(awkward: Path) -> None:
    """Headers claiming billions of pixels over a few bytes of data: 217, nothing allocated
    (a decoder would fail on these bodies, so 217 can only come from the header check)."""
    assert _code(_png_bomb(60_000, 60_000)) == 217
    jpeg = (awkward / "hopper_reference_upright.jpg").read_bytes()
    assert _code(_jpeg_with_size(jpeg, 65_000, 65_000)) == 217
    gif = (awkward / "hopper_static.gif").read_bytes()
    assert _code(gif[:6] + struct.pack("<HH", 65_535, 65_535) + gif[10:]) == 217
    assert _code(_png_bomb(16, 1)[:60]) == 214  # same file, small header, truncated


@pytest.mark.parametrize("orientation", range(1, 9))
def test_png_exif_orientation(hopper_bgr: np.ndarray, orientation: int) -> None:
    # store the picture so that applying `orientation` turns it back upright
    stored = {
        1: hopper_bgr,
        2: cv2.flip(hopper_bgr, 1),
        3: rotate_cw(hopper_bgr, 180),
        4: cv2.flip(hopper_bgr, 0),
        5: cv2.transpose(hopper_bgr),
        6: rotate_cw(hopper_bgr, 270),
        7: rotate_cw(cv2.transpose(hopper_bgr), 180),
        8: rotate_cw(hopper_bgr, 90),
    }[orientation]
    raw = png_with_exif(encode(stored, ".png"), orientation)
    assert raw[37:41] == b"eXIf"
    kept = decode_bytes(raw)
    assert kept.exif_orientation == orientation and np.array_equal(kept.bgr, stored)
    turned = decode_bytes(raw, auto_rotate=True)
    assert np.array_equal(turned.bgr, hopper_bgr)


def test_big_endian_exif_and_malformed_exif(hopper_bgr: np.ndarray) -> None:
    png = encode(hopper_bgr, ".png")
    big = png[:33] + png_chunk(b"eXIf", exif_tiff(6, little_endian=False)) + png[33:]
    assert decode_bytes(big).exif_orientation == 6
    for junk in (b"", b"II*\0", b"XX*\0\x08\0\0\0", exif_tiff(9), exif_tiff(6)[:14]):
        bad = png[:33] + png_chunk(b"eXIf", junk) + png[33:]
        img = decode_bytes(bad, auto_rotate=True)
        assert (img.exif_orientation, img.rotated) == (1, 0)


def test_rotate_cw_maps_pixels_clockwise(hopper_bgr: np.ndarray) -> None:
    img = hopper_bgr[:40, :70]  # 40 rows x 70 columns, non-square
    r90 = rotate_cw(img, 90)
    assert r90.shape == (70, 40, 3)
    assert np.array_equal(r90[0, -1], img[0, 0])  # top-left goes to top-right
    assert np.array_equal(r90[-1, -1], img[0, -1])  # top-right goes to bottom-right
    assert np.array_equal(rotate_cw(img, 180), img[::-1, ::-1])
    assert np.array_equal(rotate_cw(rotate_cw(img, 90), 270), img)
    assert rotate_cw(img, 0) is img
    with pytest.raises(ValueError):
        rotate_cw(img, 45)


def test_jpeg_with_many_segments_or_fill_bytes_before_the_frame(awkward: Path) -> None:
    """Legal padding before the frame header decodes; a header hidden past the scan's bound
    is refused, so a bomb cannot slip past the pixel cap that way."""
    raw = (awkward / "hopper_reference_upright.jpg").read_bytes()
    expected = decode_bytes(raw).bgr
    comment = b"\xff\xfe\x00\x04hi"
    some = raw[:2] + comment * 1000 + raw[2:]
    assert np.array_equal(decode_bytes(some).bgr, expected)
    fill = b"\xff" * 100_000  # fill bytes are legal before any marker
    assert np.array_equal(decode_bytes(raw[:2] + fill + raw[2:]).bgr, expected)
    hidden = raw[:2] + comment * (MAX_JPEG_SEGMENTS + 1) + raw[2:]
    assert _code(hidden) == 214
    assert _code(_jpeg_with_size(hidden, 20_000, 20_000)) == 214
