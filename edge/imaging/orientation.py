"""EXIF orientation: reading the tag and turning the raw pixel grid upright.

`rotated` reporting (api.md §2.1: clockwise degrees applied to the raw grid): every one of
the 8 EXIF orientations is "optionally mirror left-right, then turn clockwise by 0/90/180/270".
For the mirrored ones (2, 4, 5, 7) `rotated` is the turn that follows the left-right mirror:
2 -> 0, 4 -> 180, 5 -> 270, 7 -> 90 (and `mirrored` is True).
"""

from __future__ import annotations

import struct

import cv2
import numpy as np

#: orientation -> (mirror left-right first, then clockwise degrees)
ORIENTATION_STEPS: dict[int, tuple[bool, int]] = {
    1: (False, 0),
    2: (True, 0),
    3: (False, 180),
    4: (True, 180),
    5: (True, 270),
    6: (False, 90),
    7: (True, 90),
    8: (False, 270),
}

_ROTATE_CODES = {
    90: cv2.ROTATE_90_CLOCKWISE,
    180: cv2.ROTATE_180,
    270: cv2.ROTATE_90_COUNTERCLOCKWISE,
}


def tiff_orientation(tiff: bytes) -> int:
    """Orientation (1..8) from an EXIF TIFF block's IFD0; 1 when absent or malformed."""
    if len(tiff) < 8:
        return 1
    order = tiff[:2]
    if order == b"II":
        e = "<"
    elif order == b"MM":
        e = ">"
    else:
        return 1
    try:
        magic, ifd = struct.unpack_from(e + "HI", tiff, 2)
        if magic != 42:
            return 1
        (count,) = struct.unpack_from(e + "H", tiff, ifd)
        pos = ifd + 2
        for _ in range(min(count, 512)):
            tag, typ, n = struct.unpack_from(e + "HHI", tiff, pos)
            if tag == 0x0112:
                if typ != 3 or n < 1:  # SHORT
                    return 1
                (value,) = struct.unpack_from(e + "H", tiff, pos + 8)
                return value if value in ORIENTATION_STEPS else 1
            pos += 12
    except struct.error:
        return 1
    return 1


def rotate_cw(bgr: np.ndarray, degrees: int) -> np.ndarray:
    """Turn an image clockwise by 0, 90, 180 or 270 degrees (0 returns it unchanged)."""
    if degrees == 0:
        return bgr
    code = _ROTATE_CODES.get(degrees)
    if code is None:
        raise ValueError(f"rotation must be 0, 90, 180 or 270, not {degrees}")
    return cv2.rotate(bgr, code)


def apply_orientation(bgr: np.ndarray, orientation: int) -> tuple[np.ndarray, int, bool]:
    """The upright image, the clockwise degrees turned, and whether it was mirrored."""
    mirror, degrees = ORIENTATION_STEPS.get(orientation, (False, 0))
    if mirror:
        bgr = cv2.flip(bgr, 1)
    return rotate_cw(bgr, degrees), degrees, mirror
