"""Why a client's image input cannot be used, as imaging sees it.

Imaging knows the image object's own parts (`data`, `area`, `area.top`) but not which
request field holds the image (`image`, `imageTwo`, `images[0]`) nor the contract's error
numbers: the API maps each type to its code and prefixes the field, in one place
(`edge.api.wire.request_error`). Messages describe the problem only, never the data.
"""

from __future__ import annotations

__all__ = [
    "ImageInputError",
    "InvalidValue",
    "MissingValue",
    "NotAnImage",
    "NotColour",
    "TooManyPixels",
    "UnsupportedFormat",
    "WrongType",
]


class ImageInputError(Exception):
    """`part` is where in the image object ("data", "area.top"); `problem` what is wrong,
    worded to follow the part's full name ("is required")."""

    def __init__(self, part: str, problem: str) -> None:
        self.part, self.problem = part, problem
        super().__init__(f"{part} {problem}")


class MissingValue(ImageInputError):
    """A required value is absent or empty."""


class WrongType(ImageInputError):
    """A value of the wrong JSON type."""


class InvalidValue(ImageInputError):
    """A well-typed value outside what is allowed (an area off the image)."""


class NotAnImage(ImageInputError):
    """Not base64, not an image file, or a file that does not decode."""


class UnsupportedFormat(ImageInputError):
    """An image, but not JPG, PNG or GIF."""


class NotColour(ImageInputError):
    """A grayscale image where colour is required."""


class TooManyPixels(ImageInputError):
    """More pixels than the configured cap (judged from the header before decoding)."""
