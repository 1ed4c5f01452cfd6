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

A large colour JPEG is first decoded at 1/2, 1/4 or 1/8 scale (libjpeg's DCT scaling, a
fraction of the full decode's cost) into `preview`; the full grid is decoded only when
something reads `bgr`. The fast detector needs 320 px, so a search on a 1 MP photo can be
served from the preview alone (see `FacePipeline.analyze_largest`). The checks are the same:
the preview answers "does it decode" and "is it colour" (a gray-looking preview is confirmed
on the full grid, so a refusal is exactly as before).
"""

from __future__ import annotations

from collections.abc import Callable

import cv2
import numpy as np

from edge.imaging.base64data import PART, decode_base64_field
from edge.imaging.color import is_grayscale
from edge.imaging.errors import NotAnImage, NotColour, TooManyPixels, UnsupportedFormat
from edge.imaging.formats import JPEG, is_other_image, sniff_format
from edge.imaging.header import read_header
from edge.imaging.orientation import apply_orientation, rotate_cw

__all__ = [
    "DEFAULT_MAX_PIXELS",
    "PREVIEW_MIN_SIDE",
    "DecodedImage",
    "decode_bytes",
    "decode_image",
    "rotate_cw",
]

DEFAULT_MAX_PIXELS = 40_000_000
#: A preview is made when a reduced decode keeps at least this long side: the fast
#: detector's input (320 px), so a 640x480 photo decodes at 320x240 (a third of the cost)
#: and needs no resize at all. The pipeline aligns from the preview only where that does
#: not magnify the face (10 of the 12 bench photos), else from the full grid.
PREVIEW_MIN_SIDE = 320

_COLOR_FLAGS = getattr(cv2, "IMREAD_COLOR_BGR", cv2.IMREAD_COLOR) | cv2.IMREAD_IGNORE_ORIENTATION
_GRAY_FLAGS = cv2.IMREAD_GRAYSCALE | cv2.IMREAD_IGNORE_ORIENTATION
_REDUCED_FLAGS = {
    8: cv2.IMREAD_REDUCED_COLOR_8 | cv2.IMREAD_IGNORE_ORIENTATION,
    4: cv2.IMREAD_REDUCED_COLOR_4 | cv2.IMREAD_IGNORE_ORIENTATION,
    2: cv2.IMREAD_REDUCED_COLOR_2 | cv2.IMREAD_IGNORE_ORIENTATION,
}


class DecodedImage:
    """Pixels ready for the vision pipeline.

    `exif_orientation` is what the file declares (1 when it declares nothing), reported even
    when it was not applied; `rotated` is the clockwise turn applied to the raw grid (0
    unless `auto_rotate`), and `mirrored` whether a left-right mirror preceded that turn
    (EXIF 2, 4, 5, 7; see `edge.imaging.orientation`).

    `preview`, when set, is the same picture (same turn) decoded at 1/`preview_scale` of
    each side; `bgr` is then decoded on first use. `width` and `height` never need it.
    """

    def __init__(
        self,
        bgr: np.ndarray | None,
        format: str,
        exif_orientation: int = 1,
        rotated: int = 0,
        mirrored: bool = False,
        *,
        preview: np.ndarray | None = None,
        preview_scale: int = 1,
        size: tuple[int, int] | None = None,
        full: Callable[[], np.ndarray] | None = None,
    ) -> None:
        if bgr is None and (full is None or size is None):
            raise ValueError("DecodedImage needs the pixels, or their size and a decoder")
        self._bgr = bgr
        self._full = full
        self.format = format
        self.exif_orientation = exif_orientation
        self.rotated = rotated
        self.mirrored = mirrored
        self.preview = preview
        self.preview_scale = preview_scale
        self._size = size if size is not None else (int(bgr.shape[1]), int(bgr.shape[0]))  # type: ignore[union-attr]

    @property
    def bgr(self) -> np.ndarray:
        """The full-resolution BGR grid (decoded now if only the preview was)."""
        if self._bgr is None:
            assert self._full is not None
            self._bgr = self._full()
            self._full = None
        return self._bgr

    @property
    def decoded_full(self) -> bool:
        return self._bgr is not None

    @property
    def width(self) -> int:
        return self._size[0]

    @property
    def height(self) -> int:
        return self._size[1]

    def __repr__(self) -> str:
        return (
            f"DecodedImage({self.width}x{self.height} {self.format}, exif_orientation="
            f"{self.exif_orientation}, rotated={self.rotated}, mirrored={self.mirrored}, "
            f"preview_scale={self.preview_scale if self.preview is not None else None})"
        )


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
    buf = np.frombuffer(raw, np.uint8)
    scale = _preview_scale(fmt, gray_file, header.width, header.height)
    if scale > 1:
        decoded = _decode_with_preview(
            buf, fmt, header.width, header.height, scale, header.orientation,
            auto_rotate=auto_rotate, require_color=require_color,
        )  # fmt: skip
        if decoded is not None:
            return decoded
    try:
        img = cv2.imdecode(buf, _GRAY_FLAGS if gray_file else _COLOR_FLAGS)
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


def _preview_scale(fmt: str, gray_file: bool, width: int, height: int) -> int:
    """The largest DCT reduction (8, 4, 2) that keeps PREVIEW_MIN_SIDE; 1 for none."""
    if fmt != JPEG or gray_file:
        return 1
    long_side = max(width, height)
    for scale in (8, 4, 2):
        if -(-long_side // scale) >= PREVIEW_MIN_SIDE:
            return scale
    return 1


def _decode_with_preview(
    buf: np.ndarray,
    fmt: str,
    width: int,
    height: int,
    scale: int,
    orientation: int,
    *,
    auto_rotate: bool,
    require_color: bool,
) -> DecodedImage | None:
    """The reduced decode now (same checks), the full one when `bgr` is first read; None
    when the reduced grid is not what the header promised (then decode the ordinary way)."""

    try:
        small = cv2.imdecode(buf, _REDUCED_FLAGS[scale])
    except cv2.error:
        return None  # the ordinary decode gives the contract's answer for a broken file
    expected = (-(-height // scale), -(-width // scale))
    if small is None or small.ndim != 3 or small.shape[:2] != expected or small.dtype != np.uint8:
        return None
    if require_color and is_grayscale(small):
        # Averaging cannot make colour disappear from a photo, but the contract is about
        # every pixel, so a gray-looking preview is decided on the full grid.
        return None

    def full(small: np.ndarray = small) -> np.ndarray:
        try:
            img = cv2.imdecode(buf, _COLOR_FLAGS)
        except cv2.error:
            img = None
        if img is None or img.shape[:2] != (height, width):
            # Not seen in practice (both decodes read the same entropy-coded data), but the
            # reduced decode already succeeded: serve its pixels rather than fail late.
            img = cv2.resize(small, (width, height), interpolation=cv2.INTER_LINEAR)
        if auto_rotate and orientation != 1:
            img = apply_orientation(img, orientation)[0]
        return np.ascontiguousarray(img)

    rotated, mirrored = 0, False
    preview = small
    if auto_rotate and orientation != 1:
        preview, rotated, mirrored = apply_orientation(preview, orientation)
    w, h = (height, width) if rotated in (90, 270) else (width, height)
    return DecodedImage(
        None,
        fmt,
        orientation,
        rotated,
        mirrored,
        preview=np.ascontiguousarray(preview),
        preview_scale=scale,
        size=(w, h),
        full=full,
    )


def _check_pixels(width: int, height: int, max_pixels: int) -> None:
    if width * height > max_pixels:
        raise TooManyPixels(
            PART, f"has {width}x{height} pixels, more than the {max_pixels} allowed"
        )
