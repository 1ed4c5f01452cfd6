"""Builds test videos: photos shown one after another on a 1280x720 canvas.

Written with FFV1 (lossless) when the OpenCV build has it, so a frame is analysed exactly as
composed; MJPG otherwise.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import cv2
import numpy as np

W, H = 1280, 720


@dataclass
class Segment:
    label: str
    images: list[np.ndarray]  # cycled frame by frame (a hand-held photo moving slightly)
    heights: list[int]  # on-canvas height of the photo, cycled with the images
    seconds: float = 1.5


def background() -> np.ndarray:
    """A smooth wall-like gradient: compresses well and gives the liveness crops context."""
    y = np.linspace(70, 130, H, dtype=np.float32)[:, None]
    x = np.linspace(0, 30, W, dtype=np.float32)[None, :]
    g = (y + x).astype(np.uint8)
    return np.dstack([g, g + 5, g + 10])


def place(canvas: np.ndarray, img: np.ndarray, height: int, cx: int = W // 2) -> np.ndarray:
    out = canvas.copy()
    sc = height / img.shape[0]
    im = cv2.resize(img, (max(1, round(img.shape[1] * sc)), height), interpolation=cv2.INTER_AREA)
    im = im[:, : min(im.shape[1], W)]
    y = (H - im.shape[0]) // 2
    x = min(max(cx - im.shape[1] // 2, 0), W - im.shape[1])
    out[y : y + im.shape[0], x : x + im.shape[1]] = im
    return out


def write_video(
    path: Path, segments: list[Segment], *, fps: float = 25.0, gap_s: float = 0.6
) -> tuple[Path, list[tuple[str, int]]]:
    """Writes the video; returns the path used and (label, first frame index) per segment."""
    bg = background()
    writer = cv2.VideoWriter(
        str(path.with_suffix(".mkv")), cv2.VideoWriter_fourcc(*"FFV1"), fps, (W, H)
    )
    if writer.isOpened():
        path = path.with_suffix(".mkv")
    else:
        path = path.with_suffix(".avi")
        writer = cv2.VideoWriter(str(path), cv2.VideoWriter_fourcc(*"MJPG"), fps, (W, H))
    assert writer.isOpened(), "no usable video codec"
    starts = []
    n = 0
    gap = round(gap_s * fps)
    for _ in range(gap):
        writer.write(bg)
        n += 1
    for seg in segments:
        starts.append((seg.label, n))
        frames = [place(bg, im, h) for im, h in zip(seg.images, seg.heights, strict=True)]
        for i in range(round(seg.seconds * fps)):
            writer.write(frames[i % len(frames)])
            n += 1
        for _ in range(gap):
            writer.write(bg)
            n += 1
    writer.release()
    return path, starts
