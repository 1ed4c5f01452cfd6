"""Image format by magic number, never by a file name or a declared media type.

Only JPEG, PNG and GIF are accepted. Bytes that are recognisably another image format
(WebP, BMP, TIFF, PNM/PGM, ...) are 215 "not supported"; bytes that are no known image at all
(text, a 5-byte stub, random data) are 214 "does not decode": api.md's table defines 215 as
"decodes, but the format is not JPG, PNG or GIF", which needs the bytes to *be* an image.
"""

from __future__ import annotations

import re

JPEG = "jpeg"
PNG = "png"
GIF = "gif"

_PNG_MAGIC = b"\x89PNG\r\n\x1a\n"

# Other raster formats an image library would decode, by their leading bytes.
_OTHER_IMAGE = re.compile(
    rb"""(?xs)
    RIFF....WEBP                      # WebP
  | BM....\x00\x00\x00\x00            # BMP (reserved words are zero)
  | II\*\x00 | MM\x00\*               # TIFF (also DNG and most camera raws)
  | II\+\x00 | MM\x00\+               # BigTIFF
  | P[1-7][\ \t\r\n#]                  # PBM/PGM/PPM/PAM
  | P[Ff][\ \t\r\n]                    # PFM
  | \x00\x00\x00\x0cjP\x20\x20\r\n\x87\n   # JPEG 2000 (JP2)
  | \xff\x4f\xff\x51                  # JPEG 2000 codestream
  | \xff\x0a | \x00\x00\x00\x0cJXL\x20    # JPEG XL
  | ....ftyp(?:avif|avis|heic|heix|hevc|hevx|mif1|msf1|heim|heis)   # AVIF / HEIF
  | \x76\x2f\x31\x01                  # OpenEXR
  | \#\?(?:RADIANCE|RGBE)             # Radiance HDR
  | \x59\xa6\x6a\x95                  # Sun raster
  | \x00\x00[\x01\x02]\x00[\x01-\xff]\x00   # ICO / CUR
  | 8BPS                              # Photoshop
  | qoif                              # QOI
  | DDS\x20                           # DirectDraw surface
  | \x0a[\x00-\x05]\x01               # PCX
  """
)


def sniff_format(raw: bytes) -> str | None:
    """'jpeg', 'png' or 'gif' when the leading bytes say so, else None."""
    if raw[:3] == b"\xff\xd8\xff":
        return JPEG
    if raw[:8] == _PNG_MAGIC:
        return PNG
    if raw[:6] in (b"GIF87a", b"GIF89a"):
        return GIF
    return None


def is_other_image(raw: bytes) -> bool:
    """True when the bytes start like a raster format other than JPEG/PNG/GIF."""
    return _OTHER_IMAGE.match(raw[:16]) is not None
