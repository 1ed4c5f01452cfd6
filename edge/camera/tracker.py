"""Follows faces across detection rounds so that each person gets one identity decision.

Association is greedy on IoU (best pairs first); a face whose box moved too far for any
overlap (low detection rate, fast walk) still joins a track when its centre is within half
a face width of the track's last centre and the sizes agree. Tracks not seen for
`timeout_s` end.
"""

from __future__ import annotations

import itertools
from dataclasses import dataclass

import numpy as np

from edge.vision.types import Face


def iou(a: np.ndarray, b: np.ndarray) -> float:
    w = max(0.0, min(a[2], b[2]) - max(a[0], b[0]))
    h = max(0.0, min(a[3], b[3]) - max(a[1], b[1]))
    inter = w * h
    union = (a[2] - a[0]) * (a[3] - a[1]) + (b[2] - b[0]) * (b[3] - b[1]) - inter
    return float(inter / union) if union > 0 else 0.0


@dataclass
class Track:
    id: int
    face: Face
    first_ts: float  # source time of the first detection
    first_captured: float  # monotonic capture time of that frame
    last_ts: float
    hits: int = 1


class Tracker:
    def __init__(self, *, timeout_s: float = 1.0, min_iou: float = 0.3) -> None:
        self.timeout_s = timeout_s
        self.min_iou = min_iou
        self.tracks: dict[int, Track] = {}
        self._ids = itertools.count(1)

    def update(
        self, faces: list[Face], ts: float, captured: float
    ) -> tuple[list[Track], list[Track]]:
        """Returns (tracks updated by this round, tracks that ended)."""
        live = list(self.tracks.values())
        pairs = sorted(
            (
                (iou(t.face.box, f.box), ti, fi)
                for ti, t in enumerate(live)
                for fi, f in enumerate(faces)
            ),
            reverse=True,
        )
        used_t: set[int] = set()
        used_f: set[int] = set()
        matched: list[Track] = []

        def take(ti: int, fi: int) -> None:
            t = live[ti]
            t.face, t.last_ts = faces[fi], ts
            t.hits += 1
            used_t.add(ti)
            used_f.add(fi)
            matched.append(t)

        for score, ti, fi in pairs:
            if score < self.min_iou:
                break
            if ti not in used_t and fi not in used_f:
                take(ti, fi)
        for ti, t in enumerate(live):  # centroid fallback for what IoU could not pair
            if ti in used_t:
                continue
            best, best_d = None, float("inf")
            tc = (t.face.box[:2] + t.face.box[2:]) / 2
            for fi, f in enumerate(faces):
                if fi in used_f:
                    continue
                ratio = f.width / max(t.face.width, 1e-6)
                d = float(np.hypot(*((f.box[:2] + f.box[2:]) / 2 - tc)))
                if 0.67 < ratio < 1.5 and d < 0.5 * t.face.width and d < best_d:
                    best, best_d = fi, d
            if best is not None:
                take(ti, best)
        for fi, f in enumerate(faces):
            if fi not in used_f:
                t = Track(next(self._ids), f, ts, captured, ts)
                self.tracks[t.id] = t
                matched.append(t)
        ended = [t for t in live if t.id not in {m.id for m in matched}]
        ended = [t for t in ended if ts - t.last_ts > self.timeout_s]
        for t in ended:
            del self.tracks[t.id]
        return matched, ended

    def end_all(self) -> list[Track]:
        out = list(self.tracks.values())
        self.tracks.clear()
        return out
