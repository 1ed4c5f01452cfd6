"""The tracker keeps identities across rounds and ends tracks that left the view."""

from __future__ import annotations

import numpy as np

from edge.camera.tracker import Tracker
from edge.vision.types import Face


def face(x: float, y: float, size: float = 100) -> Face:
    box = np.array([x, y, x + size, y + size], np.float32)
    kps = np.zeros((5, 2), np.float32)
    return Face(box=box, score=0.9, kps=kps)


def test_overlapping_boxes_keep_their_track_and_new_faces_get_new_ids() -> None:
    t = Tracker(timeout_s=0.5)
    (a,), _ = t.update([face(100, 100)], 0.0, 0.0)
    updated, ended = t.update([face(110, 105), face(600, 100)], 0.125, 0.125)
    assert [u.id for u in updated] == [a.id, a.id + 1] and not ended
    assert updated[0].hits == 2


def test_a_fast_move_without_overlap_joins_by_centre_distance() -> None:
    t = Tracker(timeout_s=0.5)
    (a,), _ = t.update([face(100, 100)], 0.0, 0.0)
    (b,), _ = t.update([face(145, 100)], 0.125, 0.125)  # IoU ~0.38 -> still matched
    (c,), _ = t.update([face(190, 100, 110)], 0.25, 0.25)  # IoU < 0.3, centre 0.5 width away
    assert a.id == b.id == c.id


def test_tracks_end_after_the_timeout_not_before() -> None:
    t = Tracker(timeout_s=0.5)
    (a,), _ = t.update([face(100, 100)], 0.0, 0.0)
    _, ended = t.update([], 0.4, 0.4)
    assert ended == [] and a.id in t.tracks
    _, ended = t.update([], 0.6, 0.6)
    assert [e.id for e in ended] == [a.id] and not t.tracks
