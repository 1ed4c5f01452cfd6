"""Image intake: base64 -> validated BGR pixels, per api.md §2.1 and its error table."""

from edge.imaging.area import parse_area
from edge.imaging.decode import DecodedImage, decode_bytes, decode_image, rotate_cw
from edge.imaging.types import Area

__all__ = ["Area", "DecodedImage", "decode_bytes", "decode_image", "parse_area", "rotate_cw"]
