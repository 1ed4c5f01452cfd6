"""Is a decoded BGR image really grayscale (api.md §1: R, G and B planes equal everywhere)?

Every request pays for this check, so it looks at a sparse set of rows first: in a colour
photograph almost any row already holds a pixel whose channels differ, and the answer comes
after a few thousand comparisons. Only when the sample is gray everywhere (a gray picture, or
colour confined to a small region) does it walk the whole image, in blocks of rows so that it
still stops at the first coloured block and never allocates a full-size mask.
"""

from __future__ import annotations

import numpy as np

_SAMPLE_ROWS = 16
_BLOCK_ROWS = 256


def _has_colour(rows: np.ndarray) -> bool:
    b = rows[..., 0]
    g = rows[..., 1]
    return bool(np.any(b != g)) or bool(np.any(g != rows[..., 2]))


def is_grayscale(bgr: np.ndarray) -> bool:
    """True when B == G == R at every pixel of an (H, W, 3) image."""
    h = bgr.shape[0]
    step = max(1, h // _SAMPLE_ROWS)
    if _has_colour(bgr[::step]):
        return False
    return not any(_has_colour(bgr[y : y + _BLOCK_ROWS]) for y in range(0, h, _BLOCK_ROWS))
