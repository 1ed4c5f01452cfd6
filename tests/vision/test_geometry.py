"""Box clipping, IoU and the keypoint pose: the one home of each measure."""

from __future__ import annotations

import math

import numpy as np
from hypothesis import given
from hypothesis import strategies as st

from edge.vision.geometry import Box, PixelBox, keypoint_pose

coord = st.floats(-500, 1500, allow_nan=False)
size = st.integers(1, 1200)


@given(coord, coord, coord, coord, size, size)
def test_clip_stays_inside_and_never_grows(x1: float, y1: float, x2: float, y2: float,
                                           w: int, h: int) -> None:  # fmt: skip
    box = Box(x1, y1, x2, y2)
    c = box.clip(w, h)
    assert 0 <= c.x1 <= c.x2 and 0 <= c.y1 <= c.y2
    assert c.area <= box.area + 1e-6
    if c.area > 0:
        assert c.x2 <= w and c.y2 <= h
    assert 0.0 <= box.inside_share(w, h) <= 1.0 + 1e-9


@given(coord, coord, coord, coord, size, size)
def test_nonempty_clip_always_has_a_pixel_inside(x1: float, y1: float, x2: float, y2: float,
                                                 w: int, h: int) -> None:  # fmt: skip
    c = Box(x1, y1, x2, y2).clip_nonempty(w, h)
    assert 0 <= c.x1 <= w - 1 and 0 <= c.y1 <= h - 1
    assert c.width >= 1 - 1e-9 or c.x2 == w  # x1 + 1.0 - x1 may round to 1 - 2**-53
    assert c.x2 <= w and c.y2 <= h


def test_pixels_round_corners_not_sizes() -> None:
    # Corners 10.6 and 20.4: the width is 20 - 11 = 9, not round(9.8) = 10.
    assert Box(10.6, -5.0, 20.4, 30.5).pixels(100, 30) == PixelBox(11, 0, 9, 30)
    assert Box(150, 10, 160, 20).pixels(100, 100) == PixelBox(150, 10, 0, 10)


def test_iou_and_union() -> None:
    a, b = Box(0, 0, 10, 10), Box(5, 0, 15, 10)
    assert a.iou(b) == 50 / 150 and a.iou(a) == 1.0
    assert a.iou(Box(20, 20, 30, 30)) == 0.0 and Box(0, 0, 0, 0).iou(a) == 0.0
    assert a.union(b) == Box(0, 0, 15, 10)
    assert Box.from_ltwh(1, 2, 3, 4).xyxy() == (1, 2, 4, 6)


def test_keypoint_pose_reads_a_turned_and_a_level_face() -> None:
    frontal = np.array([[40, 50], [80, 50], [60, 70], [45, 90], [75, 90]], np.float32)
    p = keypoint_pose(frontal)
    assert p.known and p.yaw == 0.0 and p.pitch == 0.5
    turned = frontal.copy()
    turned[2, 0] += 20  # nose half an eye distance towards the image right
    assert keypoint_pose(turned).yaw == 0.5
    # Rotating the whole face in the image plane changes neither measure.
    t = math.radians(30)
    rot = np.array([[math.cos(t), -math.sin(t)], [math.sin(t), math.cos(t)]])
    r = keypoint_pose(turned @ rot.T)
    assert abs(r.yaw - 0.5) < 1e-9 and abs(r.pitch - 0.5) < 1e-9
    assert not keypoint_pose(np.zeros((5, 2), np.float32)).known
