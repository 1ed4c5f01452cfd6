"""Helpers for the imaging tests: base64, in-memory encoding, pixel correlation."""

from __future__ import annotations

import base64
import struct
import zlib

import cv2
import numpy as np


def b64(raw: bytes) -> str:
    return base64.b64encode(raw).decode("ascii")


def encode(img: np.ndarray, ext: str, params: list[int] | None = None) -> bytes:
    ok, buf = cv2.imencode(ext, img, params or [])
    assert ok, ext
    return buf.tobytes()


def correlation(a: np.ndarray, b: np.ndarray) -> float:
    """Pearson correlation of two images' pixels after resizing b to a's size."""
    if a.shape != b.shape:
        b = cv2.resize(b, (a.shape[1], a.shape[0]), interpolation=cv2.INTER_AREA)
    return float(np.corrcoef(a.ravel().astype(np.float64), b.ravel().astype(np.float64))[0, 1])


def png_chunk(ctype: bytes, data: bytes) -> bytes:
    crc = zlib.crc32(ctype + data) & 0xFFFFFFFF
    return struct.pack(">I", len(data)) + ctype + data + struct.pack(">I", crc)


def exif_tiff(orientation: int, little_endian: bool = True) -> bytes:
    """A minimal EXIF TIFF block whose IFD0 holds only the Orientation tag."""
    e = "<" if little_endian else ">"
    order = b"II" if little_endian else b"MM"
    entry = struct.pack(e + "HHIHH", 0x0112, 3, 1, orientation, 0)
    return order + struct.pack(e + "HI", 42, 8) + struct.pack(e + "H", 1) + entry + b"\0\0\0\0"


def png_with_exif(png: bytes, orientation: int) -> bytes:
    """Insert an eXIf chunk right after IHDR (8-byte signature + 25-byte IHDR chunk)."""
    return png[:33] + png_chunk(b"eXIf", exif_tiff(orientation)) + png[33:]
