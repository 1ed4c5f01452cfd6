"""Request image -> validated, upright-if-asked BGR pixels (api.md §1 precedence, §2.1).

Checks run in the contract's order and the first failure wins: not base64 (214), format by
its bytes not JPG/PNG/GIF (215, or 214 for bytes that are no image at all), does not decode
(214; a file whose header gives no size is refused here too), over the pixel cap (217, judged
from the header before any pixel is allocated), grayscale (216). Each failure is raised as
its own type (`edge.imaging.errors`); the API maps the types to those codes.

Everything is done with OpenCV 5, no Pillow: its GIF reader returns the first frame of an
animation, IMREAD_COLOR turns palette, gray+alpha, RGBA and 16-bit files into 8-bit BGR, and
the EXIF orientation is read from the header bytes here (one pass we already make for the
pixel cap) and applied only when the request asks, so that `rotated` always matches what was
actually done to the pixels.
"""

from __future__ import annotations

from dataclasses import dataclass

import cv2
import numpy as np

from edge.imaging.base64data import PART, decode_base64_field
from edge.imaging.color import is_grayscale
from edge.imaging.errors import NotAnImage, NotColour, TooManyPixels, UnsupportedFormat
from edge.imaging.formats import is_other_image, sniff_format
from edge.imaging.header import read_header
from edge.imaging.orientation import apply_orientation, rotate_cw

__all__ = ["DEFAULT_MAX_PIXELS", "DecodedImage", "decode_bytes", "decode_image", "rotate_cw"]

DEFAULT_MAX_PIXELS = 40_000_000

_COLOR_FLAGS = getattr(cv2, "IMREAD_COLOR_BGR", cv2.IMREAD_COLOR) | cv2.IMREAD_IGNORE_ORIENTATION
_GRAY_FLAGS = cv2.IMREAD_GRAYSCALE | cv2.IMREAD_IGNORE_ORIENTATION


@dataclass
class DecodedImage:
    """Pixels ready for the vision pipeline.

    `exif_orientation` is what the file declares (1 when it declares nothing), reported even
    when it was not applied; `rotated` is the clockwise turn applied to the raw grid (0
    unless `auto_rotate`), and `mirrored` whether a left-right mirror preceded that turn
    (EXIF 2, 4, 5, 7; see `edge.imaging.orientation`).
    """

    bgr: np.ndarray
    format: str
    exif_orientation: int = 1
    rotated: int = 0
    mirrored: bool = False

    @property
    def width(self) -> int:
        return int(self.bgr.shape[1])

    @property
    def height(self) -> int:
        return int(self.bgr.shape[0])


def decode_image(
    data: object,
    *,
    auto_rotate: bool = False,
    max_pixels: int = DEFAULT_MAX_PIXELS,
    require_color: bool = True,
) -> DecodedImage:
    """Decode the raw JSON value of an image's `data` (base64, optional data-URL prefix)."""
    raw = decode_base64_field(data)
    return decode_bytes(
        raw,
        auto_rotate=auto_rotate,
        max_pixels=max_pixels,
        require_color=require_color,
    )


def decode_bytes(
    raw: bytes | bytearray | memoryview,
    *,
    auto_rotate: bool = False,
    max_pixels: int = DEFAULT_MAX_PIXELS,
    require_color: bool = True,
) -> DecodedImage:
    """Decode image file bytes (no base64) with the same checks as `decode_image`."""
    if not isinstance(raw, bytes):
        raw = bytes(raw)
    fmt = sniff_format(raw)
    if fmt is None:
        if is_other_image(raw):
            raise UnsupportedFormat(PART, "is not a JPG, PNG or GIF image")
        raise NotAnImage(PART, "is not an image")
    header = read_header(raw, fmt)
    if not (header.width and header.height):
        # Every decoder needs this header too; refusing here also means a bomb cannot slip
        # past the pixel cap by hiding its frame header from the scan.
        raise NotAnImage(PART, f"does not decode as a {fmt.upper()} image (no size)")
    _check_pixels(header.width, header.height, max_pixels)

    gray_file = header.channels == 1
    try:
        img = cv2.imdecode(np.frombuffer(raw, np.uint8), _GRAY_FLAGS if gray_file else _COLOR_FLAGS)
    except cv2.error:
        img = None
    if img is None or img.size == 0:
        raise NotAnImage(PART, f"does not decode as a {fmt.upper()} image")
    _check_pixels(img.shape[1], img.shape[0], max_pixels)
    if img.dtype != np.uint8:  # defensive: IMREAD_COLOR already yields 8 bits
        img = cv2.convertScaleAbs(img, alpha=255.0 / 65535.0)

    if img.ndim == 2 or img.shape[2] == 1:
        if require_color:
            raise NotColour(PART, "is a grayscale image; a colour image is required")
        img = cv2.cvtColor(img, cv2.COLOR_GRAY2BGR)
    elif require_color and is_grayscale(img):
        raise NotColour(PART, "is a grayscale image; a colour image is required")

    rotated, mirrored = 0, False
    if auto_rotate and header.orientation != 1:
        img, rotated, mirrored = apply_orientation(img, header.orientation)
    if not img.flags.c_contiguous:
        img = np.ascontiguousarray(img)
    return DecodedImage(img, fmt, header.orientation, rotated, mirrored)


def _check_pixels(width: int, height: int, max_pixels: int) -> None:
    if width * height > max_pixels:
        raise TooManyPixels(
            PART, f"has {width}x{height} pixels, more than the {max_pixels} allowed"
        )
