"""What can go wrong with an image's face, as the vision layer sees it.

Vision knows neither the request nor its field names nor the contract's numbers: it says
what it found ("no face", "a face too small") with the measured facts, and the caller maps
that to its own language (the API to a contract code naming the request's field, the
evaluation to a skipped sample, the camera to "no face in view").
"""

from __future__ import annotations

__all__ = ["FaceError", "FaceTooSmall", "NoFaceFound"]


class FaceError(Exception):
    """Base of the face-finding failures; `detail` is human text without a field name."""

    @property
    def detail(self) -> str:
        return str(self)


class NoFaceFound(FaceError):
    """No face (inside the requested area, when one was given)."""

    def __init__(self, *, in_area: bool = False) -> None:
        self.in_area = in_area
        super().__init__("no face found" + (" inside the area" if in_area else ""))


class FaceTooSmall(FaceError):
    """The largest face is under the minimum size, in pixels or as a share of the image.

    `width`/`height` are the face box's part inside the image; `min_px` / `min_ratio` the
    limits; `image_size` the (width, height) the ratio is judged against.
    """

    def __init__(
        self,
        *,
        width: float,
        height: float,
        min_px: int,
        min_ratio: float,
        image_size: tuple[int, int],
        by_ratio: bool,
    ) -> None:
        self.width, self.height = width, height
        self.min_px, self.min_ratio = min_px, min_ratio
        self.image_size, self.by_ratio = image_size, by_ratio
        if by_ratio:
            w, h = image_size
            text = (
                f"the face found ({width:.0f}x{height:.0f} px) is under {min_ratio:.0%}"
                f" of the image width or height ({w}x{h})"
            )
        else:
            text = f"the face found is {width:.0f}x{height:.0f} px, under {min_px}"
        super().__init__(text)
