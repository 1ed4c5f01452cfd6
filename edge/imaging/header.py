"""Dimensions, channel count and EXIF orientation read from a file's header.

Reading these before decoding lets intake refuse a decompression bomb (217) without
allocating its pixels, decode single-channel files straight to one plane, and report the
EXIF orientation without a second metadata pass through the decoder. Every parser is bounded
and returns `None` fields rather than raising on malformed input: the decoder has the last word
on whether the bytes are an image.
"""

from __future__ import annotations

import re
import struct
from dataclasses import dataclass

from edge.imaging.formats import GIF, JPEG, PNG
from edge.imaging.orientation import tiff_orientation

# Start-of-frame markers (baseline, extended, progressive, lossless, arithmetic variants).
_SOF = frozenset((0xC0, 0xC1, 0xC2, 0xC3, 0xC5, 0xC6, 0xC7, 0xC9, 0xCA, 0xCB, 0xCD, 0xCE, 0xCF))
# Markers without a length field.
_STANDALONE = frozenset((0x01, 0xD0, 0xD1, 0xD2, 0xD3, 0xD4, 0xD5, 0xD6, 0xD7, 0xD8))
_FILL = re.compile(rb"\xff+")
# Real files carry a few dozen segments/chunks before the frame header; the bounds keep a
# crafted file of millions of tiny segments from costing seconds of Python.
MAX_JPEG_SEGMENTS = 4096
_MAX_PNG_CHUNKS = 64


@dataclass(frozen=True)
class ImageHeader:
    width: int | None = None
    height: int | None = None
    channels: int | None = None  # samples per pixel as stored (1 = gray); None if unknown
    orientation: int = 1


def read_header(raw: bytes, fmt: str) -> ImageHeader:
    if fmt == JPEG:
        return _jpeg(raw)
    if fmt == PNG:
        return _png(raw)
    if fmt == GIF:
        return _gif(raw)
    return ImageHeader()


def _jpeg(raw: bytes) -> ImageHeader:
    orientation = 1
    n = len(raw)
    pos = 2
    for _ in range(MAX_JPEG_SEGMENTS):
        fill = _FILL.search(raw, pos)  # skips garbage between segments, like libjpeg
        if fill is None or fill.end() >= n:
            break
        pos = fill.end()
        marker = raw[pos]
        pos += 1
        if marker in _STANDALONE:
            continue
        if marker in (0xD9, 0xDA):  # EOI / SOS before any SOF: no frame header
            break
        if pos + 2 > n:
            break
        (length,) = struct.unpack_from(">H", raw, pos)
        if length < 2:
            break
        seg_start, seg_end = pos + 2, pos + length
        if marker == 0xE1 and orientation == 1 and raw[seg_start : seg_start + 6] == b"Exif\0\0":
            orientation = tiff_orientation(raw[seg_start + 6 : seg_end])
        elif marker in _SOF:
            if seg_start + 6 > n:
                break
            height, width, comps = struct.unpack_from(">HHB", raw, seg_start + 1)
            return ImageHeader(width or None, height or None, comps, orientation)
        pos = seg_end
    return ImageHeader(orientation=orientation)


def _png(raw: bytes) -> ImageHeader:
    if len(raw) < 26 or raw[12:16] != b"IHDR":
        return ImageHeader()
    width, height, _depth, color_type = struct.unpack_from(">IIBB", raw, 16)
    channels = {0: 1, 2: 3, 3: 3, 4: 1, 6: 3}.get(color_type)
    orientation = 1
    pos = 8
    for _ in range(_MAX_PNG_CHUNKS):
        if pos + 8 > len(raw):
            break
        length, ctype = struct.unpack_from(">I4s", raw, pos)
        if ctype in (b"IDAT", b"IEND"):
            break
        if ctype == b"eXIf":
            orientation = tiff_orientation(raw[pos + 8 : pos + 8 + length])
            break
        pos += 12 + length
    return ImageHeader(width or None, height or None, channels, orientation)


def _gif(raw: bytes) -> ImageHeader:
    if len(raw) < 10:
        return ImageHeader()
    width, height = struct.unpack_from("<HH", raw, 6)
    return ImageHeader(width or None, height or None, None, 1)
