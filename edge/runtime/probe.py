"""Build a plausible input for any model from a real photo, for warm-up, backend
comparison and per-model benchmarks (the exact preprocessing lives in each vision wrapper)."""

from __future__ import annotations

import cv2
import numpy as np

from edge.runtime.backends import SessionInfo

#: size used for dynamic spatial dimensions (YuNet, SCRFD), as the published timings do.
DYNAMIC_SIDE = 640


def _dim(d: int | str | None, default: int) -> int:
    return d if isinstance(d, int) and d > 0 else default


def probe_inputs(info: SessionInfo, bgr: np.ndarray) -> dict[str, np.ndarray]:
    """One float32 tensor per model input, made from `bgr` resized to the input's size.

    Layout is inferred from the shape: a last dimension of 1 or 3 with a larger second one
    means NHWC (TFLite/Keras exports), otherwise NCHW.
    """
    feeds: dict[str, np.ndarray] = {}
    for t in info.inputs:
        shape = list(t.shape)
        if len(shape) != 4:
            raise ValueError(f"input {t.name} has rank {len(shape)}; expected an image tensor")
        nhwc = _dim(shape[3], 0) in (1, 3) and _dim(shape[1], 0) not in (1, 3)
        if nhwc:
            h, w, c = _dim(shape[1], DYNAMIC_SIDE), _dim(shape[2], DYNAMIC_SIDE), _dim(shape[3], 3)
        else:
            c, h, w = _dim(shape[1], 3), _dim(shape[2], DYNAMIC_SIDE), _dim(shape[3], DYNAMIC_SIDE)
        img = cv2.resize(bgr, (w, h), interpolation=cv2.INTER_AREA)
        if c == 1:
            img = cv2.cvtColor(img, cv2.COLOR_BGR2GRAY)[:, :, None]
        x = img.astype(np.float32)
        x = x[None] if nhwc else x.transpose(2, 0, 1)[None]
        feeds[t.name] = np.ascontiguousarray(x)
    return feeds
