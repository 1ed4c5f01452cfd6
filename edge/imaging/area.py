"""A request's `image.area` -> a rectangle clipped to the image (api.md §1, §2.1).

The rectangle is validated against the image it refers to (after any EXIF turn), so the
caller parses it once the image is decoded.
"""

from __future__ import annotations

from edge.imaging.errors import InvalidValue, MissingValue, WrongType
from edge.imaging.types import Area

_KEYS = ("top", "left", "width", "height")
PART = "area"


def parse_area(obj: object, image_w: int, image_h: int) -> Area | None:
    """None when absent; else the clipped Area (`MissingValue` key, `WrongType`,
    `InvalidValue`)."""
    if obj is None:
        return None
    if not isinstance(obj, dict):
        raise WrongType(PART, "must be an object with top, left, width, height")
    values: dict[str, int] = {}
    for key in _KEYS:
        v = obj.get(key)
        if v is None:
            raise MissingValue(f"{PART}.{key}", "is required")
        if not isinstance(v, int) or isinstance(v, bool):
            raise WrongType(f"{PART}.{key}", "must be an integer")
        values[key] = v
    for key in ("width", "height"):
        if values[key] < 1:
            raise InvalidValue(f"{PART}.{key}", "must be > 0")
    x1, y1 = values["left"], values["top"]
    x2, y2 = x1 + values["width"], y1 + values["height"]
    if x1 >= image_w or y1 >= image_h or x2 <= 0 or y2 <= 0:
        raise InvalidValue(PART, f"does not overlap the {image_w}x{image_h} image")
    x1, y1 = max(x1, 0), max(y1, 0)
    x2, y2 = min(x2, image_w), min(y2, image_h)
    return Area(left=x1, top=y1, width=x2 - x1, height=y2 - y1)
