"""The request side of image work: a validated request image as a recognition query, and
the recognition's domain errors as contract codes naming the request's field.

`edge.recognition` does not know which request field an image came from; every handler that
sends one image runs it through `on_image`, so "image.data is not base64" or "imageTwo: no
face found" is written in one place (`edge.api.wire.request_error`). Both helpers run inside
the inference pool.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TypeVar

from edge.api.schemas import ImageRequest
from edge.api.wire import request_error
from edge.imaging.errors import ImageInputError
from edge.recognition import ImageQuery
from edge.vision.errors import FaceError

T = TypeVar("T")


def image_query(img: ImageRequest) -> ImageQuery:
    """What recognition needs of a request image (its data, area, rotation and details)."""
    return ImageQuery(data=img.data, area=img.area, auto_rotate=img.auto_rotate, flags=img.flags)


def on_image(field: str, work: Callable[[], T]) -> T:
    """Run `work` on the image of request field `field`: 110-112, 214-217, 223 and 224
    name that field."""
    try:
        return work()
    except (ImageInputError, FaceError) as e:
        raise request_error(e, field) from None
