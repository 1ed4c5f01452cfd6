"""Real test photos, read in place (never copied into the repo), as arrays or request bodies."""

from __future__ import annotations

import base64
import functools
from pathlib import Path
from typing import Any

import cv2
import numpy as np


def read_bgr(path: Path) -> np.ndarray:
    """The photo as OpenCV reads it; a test fails on an unreadable file instead of on None."""
    img = cv2.imread(str(path), cv2.IMREAD_COLOR)
    assert img is not None, f"cannot read {path}"
    return img


@functools.lru_cache(maxsize=256)
def b64(path: Path) -> str:
    return base64.b64encode(path.read_bytes()).decode("ascii")


def img(path: Path, **opts: Any) -> dict[str, Any]:
    """An `image` request object for a test photo (read in place)."""
    return {"data": b64(path), **opts}


def pic(folder: Path, stem: str) -> Path:
    """The photo `stem.*` of a faces_by_identity folder (extensions differ per person)."""
    found = sorted(folder.glob(f"{stem}.*"))
    assert found, f"no {stem}.* in {folder}"
    return found[0]
